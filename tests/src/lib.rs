#![doc = include_str!("../README.md")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cache_core::{CacheStore, Capabilities, Codec, CodecError, Json, MsgPack};

pub mod cases;
pub mod linearizable;
pub mod model;
#[cfg(not(target_arch = "wasm32"))]
pub mod sequences;

/// What a backend supplies to the suite.
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// The store under test. It may be shared by every case: each case works under its own random
    /// key namespace and never touches keys outside it.
    fn store(&self) -> Arc<dyn CacheStore>;

    /// Lets `by` of store time pass: advances a manual clock, or sleeps on a real one.
    async fn advance(&self, by: Duration);
}

/// What a case gets: the store, a random namespace, control over time, and the codec of the typed
/// facade's cases.
pub struct Ctx {
    store: Arc<dyn CacheStore>,
    fixture: Arc<dyn Fixture>,
    ns: String,
    codec: CaseCodec,
}

/// The codec the facade's cases run with: JSON, or MessagePack (the `facade_msgpack` group runs
/// every facade case again with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaseCodec {
    /// [`Json`].
    #[default]
    Json,
    /// [`MsgPack`].
    MsgPack,
}

impl Codec for CaseCodec {
    const NAME: &'static str = "case";

    fn encode<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            CaseCodec::Json => Json.encode(value),
            CaseCodec::MsgPack => MsgPack.encode(value),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            CaseCodec::Json => Json.decode(bytes),
            CaseCodec::MsgPack => MsgPack.decode(bytes),
        }
    }
}

impl Ctx {
    /// A context with a fresh random namespace.
    pub fn new(fixture: impl Fixture) -> Self {
        let fixture: Arc<dyn Fixture> = Arc::new(fixture);
        let ns = format!("conf-{:016x}:", fastrand::u64(..));
        Ctx {
            store: fixture.store(),
            fixture,
            ns,
            codec: CaseCodec::Json,
        }
    }

    /// The same context, whose facade cases use MessagePack.
    pub fn with_msgpack(&self) -> Self {
        Ctx {
            store: self.store.clone(),
            fixture: self.fixture.clone(),
            ns: self.ns.clone(),
            codec: CaseCodec::MsgPack,
        }
    }

    /// The codec of the facade's cases.
    pub fn codec(&self) -> CaseCodec {
        self.codec
    }

    /// The store under test.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.store
    }

    /// What the store declares.
    pub fn caps(&self) -> Capabilities {
        self.store.capabilities()
    }

    /// This case's namespace, a prefix of every key it uses (ends with `:`).
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// `name` inside this case's namespace.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.ns, name)
    }

    /// Lets `by` of store time pass.
    pub async fn advance(&self, by: Duration) {
        self.fixture.advance(by).await
    }
}

/// Runs futures concurrently and in parallel where the platform can (tokio tasks on native, one
/// thread on wasm32), and returns their outputs in order.
pub async fn run_concurrently<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[cfg(not(target_arch = "wasm32"))]
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(handle.await.expect("a concurrent task panicked"));
        }
        out
    }
    #[cfg(target_arch = "wasm32")]
    {
        futures::future::join_all(futures).await
    }
}

/// Runs a case's future on a fresh multi-threaded tokio runtime (native tests).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// Turns a fixture factory into one test per conformance case, named `group::case`.
///
/// The factory is an `async fn` in the calling module that returns a [`Fixture`]:
/// `conformance_tests!(memory)` emits native `#[test]`s, `conformance_tests!(wasm: memory)`
/// `wasm-bindgen-test` cases. The [crate docs](crate) show a whole test file.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:ident) => {
        $crate::__for_each_case!(__emit_native_tests!($factory));
    };
    (wasm: $factory:ident) => {
        $crate::__for_each_case!(__emit_wasm_tests!($factory));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_native_tests {
    (($factory:ident) $( $group:ident { $($case:ident),* $(,)? } )*) => {
        $(
            mod $group {
                $(
                    #[test]
                    fn $case() {
                        $crate::block_on(async {
                            let ctx = $crate::Ctx::new(super::$factory().await);
                            $crate::cases::$group::$case(&ctx).await;
                        })
                    }
                )*
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_wasm_tests {
    (($factory:ident) $( $group:ident { $($case:ident),* $(,)? } )*) => {
        $(
            mod $group {
                $(
                    #[::wasm_bindgen_test::wasm_bindgen_test]
                    async fn $case() {
                        let ctx = $crate::Ctx::new(super::$factory().await);
                        $crate::cases::$group::$case(&ctx).await;
                    }
                )*
            }
        )*
    };
}
