//! Counters of the typed facade.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a [`Cache`](crate::Cache)'s counters since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing (including single-flight waiters).
    pub misses: u64,
    /// Values written.
    pub sets: u64,
    /// Keys deleted (that existed).
    pub deletes: u64,
    /// Times a `get_or_insert_with` loader ran.
    pub loader_runs: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Entries the store evicted to stay within its bounds, if it counts them (a `MemoryStore`
    /// does): the whole store's, not only this cache's.
    pub evictions: Option<u64>,
    /// Entries the store removed because their TTL passed, if it counts them; the whole store's.
    pub expirations: Option<u64>,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 when nothing was read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) loader_runs: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            sets: load(&self.sets),
            deletes: load(&self.deletes),
            loader_runs: load(&self.loader_runs),
            errors: load(&self.errors),
            evictions: None,
            expirations: None,
        }
    }
}
