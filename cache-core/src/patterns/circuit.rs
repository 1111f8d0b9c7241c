//! A small circuit breaker that stops calls to a store that keeps failing.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy)]
enum State {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`.
    Open { until: u64 },
    /// One probe call went through; the others are refused until it reports or `probe_again_at`.
    HalfOpen { probe_again_at: u64 },
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    threshold: u32,
    open_millis: u64,
    state: Mutex<State>,
    /// Whether `state` is `Closed { failures: 0 }`: the hot path reads only this, no lock or clock.
    /// Written only with the lock held.
    clean: AtomicBool,
}

impl CircuitBreaker {
    /// Opens after `threshold` failures in a row (0: never) and stays open for `open_millis`.
    pub(crate) fn new(threshold: u32, open_millis: u64) -> Self {
        CircuitBreaker {
            threshold,
            open_millis,
            state: Mutex::new(State::Closed { failures: 0 }),
            clean: AtomicBool::new(true),
        }
    }

    /// Whether a call may go through now. After the open period one probe is let through; if that
    /// probe never reports (it was cancelled), another is let through after another period.
    pub(crate) fn allow(&self, now: impl FnOnce() -> u64) -> bool {
        if self.clean.load(Ordering::Acquire) {
            return true;
        }
        let now = now();
        let mut state = self.state.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until }
            | State::HalfOpen {
                probe_again_at: until,
            } if now < until => false,
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen {
                    probe_again_at: now.saturating_add(self.open_millis),
                };
                true
            }
        }
    }

    pub(crate) fn record_success(&self) {
        if self.clean.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock();
        if !matches!(*state, State::Closed { .. }) {
            tracing::debug!("L2 circuit closed");
        }
        *state = State::Closed { failures: 0 };
        self.clean.store(true, Ordering::Release);
    }

    /// Records a failure; returns whether this opened the circuit.
    pub(crate) fn record_failure(&self, now: u64) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let mut state = self.state.lock();
        self.clean.store(false, Ordering::Release);
        let open = match *state {
            State::Closed { failures } => failures + 1 >= self.threshold,
            State::HalfOpen { .. } => true,
            State::Open { .. } => false,
        };
        *state = if open {
            tracing::debug!(open_millis = self.open_millis, "L2 circuit opened");
            State::Open {
                until: now.saturating_add(self.open_millis),
            }
        } else if let State::Closed { failures } = *state {
            State::Closed {
                failures: failures + 1,
            }
        } else {
            *state
        };
        open
    }

    pub(crate) fn is_open(&self, now: u64) -> bool {
        matches!(*self.state.lock(), State::Open { until } if now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_the_period() {
        let breaker = CircuitBreaker::new(3, 100);
        assert!(breaker.allow(|| 0));
        assert!(!breaker.record_failure(0));
        assert!(!breaker.record_failure(0));
        assert!(breaker.record_failure(10));
        assert!(!breaker.allow(|| 50));
        assert!(breaker.is_open(50));
        // One probe after the period, the others wait for it.
        assert!(breaker.allow(|| 110));
        assert!(!breaker.allow(|| 111));
        // The probe fails: open again.
        assert!(breaker.record_failure(111));
        assert!(!breaker.allow(|| 150));
        assert!(breaker.allow(|| 211));
        breaker.record_success();
        assert!(breaker.allow(|| 212));
        assert!(!breaker.is_open(212));
    }

    #[test]
    fn a_cancelled_probe_does_not_keep_it_half_open() {
        let breaker = CircuitBreaker::new(1, 100);
        breaker.record_failure(0);
        assert!(breaker.allow(|| 100));
        assert!(!breaker.allow(|| 150));
        assert!(breaker.allow(|| 200));
    }
}
