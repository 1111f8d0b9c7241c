//! [`MemoryConfig`]: the bounds, limits, clock and sharding of a [`MemoryStore`](crate::MemoryStore).

use std::sync::Arc;

use cache_core::{Clock, Error, ErrorKind, Limits, Result, SystemClock};

/// Settings of a [`MemoryStore`](crate::MemoryStore). Build one with [`MemoryStore::builder`](crate::MemoryStore::builder).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// Most entries held at once, in total over the shards. Default: 10 000.
    pub max_entries: usize,
    /// Most bytes held at once, counting keys plus values, in total over the shards. Default: 64 MiB.
    pub max_bytes: usize,
    /// Key and value limits. Default: [`Limits::default`] (1 KiB keys). The effective limits are also
    /// capped so that a key and a value at the limits fit in the smallest shard's share of
    /// `max_bytes`: the key limit at half the share, the value limit at the share minus the key limit.
    pub limits: Limits,
    /// Where time comes from. Default: [`SystemClock`]; tests use [`ManualClock`](cache_core::ManualClock).
    pub clock: Arc<dyn Clock>,
    /// Number of lock shards, a power of two. Default: `None`, which picks 4 × the CPU count
    /// (at most 64), fewer for small capacities, and 1 on wasm32. Either way the store uses no more
    /// shards than `max_entries` or `max_bytes` (rounded down to a power of two), so that every shard
    /// gets a share of both bounds.
    pub shards: Option<usize>,
    /// Whether reads count [`hits`](crate::MemoryStats::hits) and
    /// [`misses`](crate::MemoryStats::misses). Default: `false`, as in Caffeine and quick_cache: the
    /// count is an atomic write on every read, which costs single-threaded reads about a tenth of
    /// their speed. The `Cache` and `TieredCache` layers count their own hits either way.
    pub count_hits_and_misses: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            limits: Limits::default(),
            clock: Arc::new(SystemClock::new()),
            shards: None,
            count_hits_and_misses: false,
        }
    }
}

impl MemoryConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::new(ErrorKind::Config, msg));
        if self.max_entries == 0 {
            return bad("max_entries must be at least 1".into());
        }
        if self.max_bytes == 0 {
            return bad("max_bytes must be at least 1".into());
        }
        if let Some(n) = self.shards {
            if n == 0 || !n.is_power_of_two() || n > 1024 {
                return bad(format!(
                    "shards must be a power of two between 1 and 1024, got {n}"
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn shard_count(&self) -> usize {
        if let Some(n) = self.shards {
            return n;
        }
        if cfg!(target_arch = "wasm32") {
            return 1;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wanted = (cpus * 4).next_power_of_two().min(64);
        // Keep at least 256 entries per shard, so that small caches keep a global-ish policy.
        let by_capacity = (self.max_entries / 256).max(1).next_power_of_two();
        wanted.min(by_capacity)
    }
}
