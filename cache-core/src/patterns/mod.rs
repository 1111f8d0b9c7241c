//! Patterns built only on the [`CacheStore`](crate::CacheStore) trait, so they work on every backend:
//!
//! - [`LockManager`]: a lease-based distributed lock with fencing tokens;
//! - [`RateLimiter`]: fixed-window, exact sliding-window and GCRA rate limits;
//! - [`TieredCache`]: a local L1 in front of a shared L2, kept coherent across instances by an
//!   [`InvalidationBus`], with fail-safe reads and a circuit breaker;
//! - [`Memoized`]: an async function whose results are cached by argument.
//!
//! `cache-core` has no async runtime, so whatever has to wait (a lock's backoff, an L2 timeout) takes a
//! [`Sleeper`]. Any `Fn(Duration) -> impl Future<Output = ()>` is one, so with tokio you pass
//! `tokio::time::sleep`.

mod bus;
mod circuit;
mod lock;
mod memoize;
mod rate_limit;
mod tiered;

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::Clock;

pub use bus::{BusEvent, InProcessBus, Invalidation, InvalidationBus, InvalidationOp};
pub use lock::{LockGuard, LockManager, LockManagerBuilder};
pub use memoize::Memoized;
pub use rate_limit::{
    MAX_SLIDING_WINDOW_LIMIT, OnStoreFailure, RateLimitAlgorithm, RateLimitDecision, RateLimiter,
    RateLimiterBuilder,
};
pub use tiered::{InvalidationListener, TieredCache, TieredCacheBuilder, TieredStats};

/// Waits for a duration. Patterns that back off or time out take one, because `cache-core` does not
/// depend on a runtime's timer.
///
/// Every `Fn(Duration) -> F` where `F: Future<Output = ()> + Send + 'static` is a sleeper:
///
/// ```
/// # fn with(sleeper: impl cache_core::Sleeper) {}
/// with(tokio::time::sleep);
/// ```
pub trait Sleeper: Send + Sync {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

impl<F, Fut> Sleeper for F
where
    F: Fn(Duration) -> Fut + Send + Sync,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(self(duration))
    }
}

/// Wall-clock time: milliseconds since the Unix epoch.
///
/// Patterns whose state is shared by several processes (the [`RateLimiter`]) need a clock with a
/// common origin; their accuracy is bounded by how well the hosts' clocks agree (NTP keeps it within a
/// few milliseconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_millis(&self) -> u64 {
        web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A random owner token in hex: 64 random bits fixed per process, a process-wide counter (so tokens
/// never repeat within a process, even with a weak random source) and 64 random bits per call.
pub(crate) fn random_token() -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| fastrand::u64(..));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{process:016x}{n:016x}{:016x}", fastrand::u64(..))
}
