//! [`Memoized`]: an async function whose results are cached by argument.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Cache, Codec, Error, ErrorKind, Json, Result};

/// Arguments whose JSON is longer than this are keyed by a 128-bit hash of it instead.
const MAX_INLINE_ARGS: usize = 256;

/// An async function whose results are cached in a [`Cache`], keyed by the function's name and its
/// serialized arguments, with a TTL and single-flight: concurrent calls with equal arguments run the
/// function once.
///
/// The key is `"{name}:{args as JSON}"` inside the cache's namespace, or `"{name}:#{hash}"` for
/// arguments longer than 256 bytes of JSON. Results are kept as the cache keeps values: shared, on a
/// store in this process, so a repeated call decodes nothing. Errors are not cached. Two memoized functions must not
/// share a name in one namespace. Arguments that JSON writes alike share a result: serde_json writes
/// `NaN`, the infinities and `None` all as `null`. The hash of long arguments (128-bit FNV-1a) keeps
/// apart arguments that differ by accident, not ones chosen to collide: do not memoize on arguments
/// an attacker picks when a shared result would leak or poison data.
///
/// ```
/// # futures::executor::block_on(async {
/// use backend_memory::MemoryStore;
/// use cache_core::{Cache, Memoized};
/// use std::time::Duration;
///
/// let cache = Cache::builder(MemoryStore::new()).namespace("memo").build()?;
/// let area = Memoized::new(cache, "area", Some(Duration::from_secs(60)), |(w, h): (u32, u32)| async move {
///     Ok::<_, std::io::Error>(w * h)
/// });
/// assert_eq!(area.call(&(3, 4)).await?, 12);
/// assert_eq!(area.call(&(3, 4)).await?, 12); // from the cache
/// # Ok::<_, cache_core::Error>(()) }).unwrap();
/// ```
pub struct Memoized<A, T, F, C: Codec = Json> {
    cache: Cache<C>,
    name: String,
    ttl: Option<Duration>,
    function: F,
    types: PhantomData<fn(A) -> T>,
}

impl<A, T, F, C: Codec> fmt::Debug for Memoized<A, T, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memoized")
            .field("cache", &self.cache)
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<A, T, F, Fut, E, C> Memoized<A, T, F, C>
where
    A: Serialize + Clone,
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    F: Fn(A) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: Into<Box<dyn StdError + Send + Sync>>,
    C: Codec,
{
    /// Memoizes `function` as `name` in `cache`, each result kept for `ttl` (`None`: the cache's
    /// default TTL).
    pub fn new(
        cache: Cache<C>,
        name: impl Into<String>,
        ttl: Option<Duration>,
        function: F,
    ) -> Self {
        Memoized {
            cache,
            name: name.into(),
            ttl,
            function,
            types: PhantomData,
        }
    }

    /// The cached result for `args`, or the function's, which is then cached.
    pub async fn call(&self, args: &A) -> Result<T> {
        let key = self.key(args)?;
        let function = &self.function;
        self.cache
            .get_or_insert_with(&key, self.ttl, || function(args.clone()))
            .await
    }

    /// Forgets the cached result for `args`; returns whether there was one.
    pub async fn invalidate(&self, args: &A) -> Result<bool> {
        self.cache.delete(&self.key(args)?).await
    }

    /// The cache key of `args` (without the cache's namespace).
    pub fn key(&self, args: &A) -> Result<String> {
        let json = serde_json::to_string(args).map_err(|e| {
            Error::new(
                ErrorKind::Codec,
                format!("cannot serialize the arguments of memoized {:?}", self.name),
            )
            .with_source(e)
        })?;
        Ok(if json.len() <= MAX_INLINE_ARGS {
            format!("{}:{json}", self.name)
        } else {
            format!("{}:#{:032x}", self.name, fnv1a_128(json.as_bytes()))
        })
    }
}

/// FNV-1a, 128 bits: stable across processes and Rust versions, unlike `std`'s hasher.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ b as u128).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::fnv1a_128;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }
}
