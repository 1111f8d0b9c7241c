//! The memory backend compiled to wasm32 runs the whole conformance suite under wasm-bindgen-test
//! (in Node): `cargo xtask conformance --backend wasm`. Time is a manual clock, as in `memory.rs`.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;
use std::time::Duration;

use backend_memory::MemoryStore;
use cache_conformance::Fixture;
use cache_core::{CacheStore, ManualClock};

struct WasmMemoryFixture {
    store: MemoryStore,
    clock: ManualClock,
}

#[async_trait::async_trait]
impl Fixture for WasmMemoryFixture {
    fn store(&self) -> Arc<dyn CacheStore> {
        Arc::new(self.store.clone())
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

async fn memory() -> WasmMemoryFixture {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .max_entries(100_000)
        .max_bytes(256 << 20)
        .clock(clock.clone())
        .build()
        .unwrap();
    WasmMemoryFixture { store, clock }
}

cache_conformance::conformance_tests!(wasm: memory);

/// The real clock works on wasm32 (`std::time::Instant::now()` would panic here).
#[wasm_bindgen_test::wasm_bindgen_test]
fn system_clock_runs_on_wasm32() {
    let store = MemoryStore::builder().max_entries(10).build().unwrap();
    store
        .set(
            "k",
            "v",
            cache_core::SetOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap();
    assert!(matches!(
        store.ttl("k").unwrap(),
        cache_core::KeyTtl::ExpiresIn(d) if d <= Duration::from_secs(60)
    ));
}
