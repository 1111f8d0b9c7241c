//! Time, injectable so tests can move it by hand and so it works on `wasm32` (where
//! `std::time::Instant::now()` panics).

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic clock, in milliseconds since an arbitrary origin.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since this clock's origin. Never goes backwards.
    fn now_millis(&self) -> u64;

    /// Milliseconds since the Unix epoch: for deadlines that other processes read, such as the expiry
    /// a [`TieredCache`](crate::TieredCache) stamps on its L2 values. Default: the wall clock
    /// (`web_time::SystemTime`, which works on wasm32 too).
    fn unix_millis(&self) -> u64 {
        self.unix_micros() / 1_000
    }

    /// Microseconds since the Unix epoch: the floor of a [`LockManager`](crate::LockManager)'s
    /// fencing tokens. Default: the wall clock, as for [`unix_millis`](Self::unix_millis).
    fn unix_micros(&self) -> u64 {
        web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as u64)
    }
}

/// Real, monotonic time: `quanta::Instant` on native (the CPU's time-stamp counter where it is
/// stable, else the OS clock), `performance.now()` on wasm32 (through `web_time`).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: MonotonicInstant,
}

#[cfg(not(target_arch = "wasm32"))]
type MonotonicInstant = quanta::Instant;
#[cfg(target_arch = "wasm32")]
type MonotonicInstant = web_time::Instant;

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: MonotonicInstant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        MonotonicInstant::now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use cache_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_millis(), 2_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves time forward by `by` (rounded down to milliseconds).
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }

    /// The same hand-moved time, so that tests control wall-clock deadlines too.
    fn unix_millis(&self) -> u64 {
        self.now_millis()
    }

    fn unix_micros(&self) -> u64 {
        self.now_millis().saturating_mul(1_000)
    }
}
