//! Counters of the typed facade.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::ErrorKind;

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
    /// `errors` by kind, indexed as [`ErrorKind::ALL`]; see
    /// [`errors_of`](Self::errors_of).
    pub errors_by_kind: [u64; ErrorKind::ALL.len()],
    /// Entries the store evicted to stay within its bounds, if it counts them (a `MemoryStore`
    /// does): the whole store's, not only this cache's.
    pub evictions: Option<u64>,
    /// Entries the store removed because their TTL passed, if it counts them; the whole store's.
    pub expirations: Option<u64>,
}

impl CacheStats {
    /// Calls that returned an error of `kind`.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors_by_kind[kind as usize]
    }

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
    pub(crate) hits: StripedCounter,
    pub(crate) misses: StripedCounter,
    pub(crate) sets: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) loader_runs: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) errors_by_kind: [AtomicU64; ErrorKind::ALL.len()],
}

impl StatsCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: self.hits.sum(),
            misses: self.misses.sum(),
            sets: load(&self.sets),
            deletes: load(&self.deletes),
            loader_runs: load(&self.loader_runs),
            errors: load(&self.errors),
            errors_by_kind: std::array::from_fn(|i| load(&self.errors_by_kind[i])),
            evictions: None,
            expirations: None,
        }
    }
}

const STRIPES: usize = 8;

/// A counter bumped on every hit, split over cache lines so that threads reading the same hot
/// keys do not fight over one line: on two threads one shared atomic cost more than the lookup.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter([CachePadded<AtomicU64>; STRIPES]);

impl StripedCounter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        if n != 0 {
            self.0[this_threads_stripe()].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn sum(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Threads take stripes in turn, so that the first `STRIPES` threads never share one.
fn this_threads_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| {
        if stripe.get() == usize::MAX {
            stripe.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        stripe.get()
    })
}
