//! Fixed-window, sliding-window and GCRA rate limiters on any [`CacheStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::WallClock;
use crate::{CacheStore, Clock, Error, ErrorKind, IntoStore, Result};

/// How a [`RateLimiter`] counts. Each says how many units it admits in the worst case, over any
/// window of `period` (a *sliding* window: any start time, not only the starts of fixed windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RateLimitAlgorithm {
    /// At most `limit` per fixed window of `period`. Each client's windows follow one another
    /// without gaps, offset by a hash of the client's name so that clients do not all reset at
    /// once. One atomic `incr_by` per decision. A denied request's cost counts too, as in every
    /// `INCR`-based limiter. **Over a sliding window of `period`, up to `2 × limit`**: the end of
    /// one window and the start of the next.
    #[default]
    FixedWindow,
    /// **At most `limit` in any window of `period`**, exactly: the admission times of the last
    /// `period` are kept (12 bytes per distinct millisecond), and a request is admitted only if they
    /// leave room for it. A read plus a compare-and-swap per decision (retried under contention);
    /// denied requests cost nothing. For limits up to [`MAX_SLIDING_WINDOW_LIMIT`].
    SlidingWindow,
    /// The generic cell rate algorithm: a steady rate of `limit` per `period` (one unit every
    /// `period / limit`), with bursts of up to [`burst`](RateLimiterBuilder::burst) units (default:
    /// `limit`). **Over a sliding window of `period`, up to `limit + burst − 1`**: a full burst,
    /// then the steady rate. With `burst(1)`, at most `limit`, evenly spaced. Constant state (one
    /// number), a read plus a compare-and-swap per decision; denied requests cost nothing.
    Gcra,
}

/// The largest `limit` of [`RateLimitAlgorithm::SlidingWindow`], whose state grows with it.
pub const MAX_SLIDING_WINDOW_LIMIT: u64 = 10_000;

/// What [`RateLimiter::check`] does when the store fails with a retryable error (it is down or
/// timed out). Other errors (an invalid client name, say) are always returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnStoreFailure {
    /// Return the error; the caller decides. The default.
    #[default]
    ReturnError,
    /// Fail open: admit the request, as if the limit were not reached. The decision says
    /// [`degraded`](RateLimitDecision::degraded). Availability first.
    Allow,
    /// Fail closed: refuse the request, with a `retry_after` of one second (or the period, if
    /// shorter). The decision says [`degraded`](RateLimitDecision::degraded). Protection first.
    Deny,
}

/// The outcome of one [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitDecision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The configured limit per period.
    pub limit: u64,
    /// How many more units would be admitted right now.
    pub remaining: u64,
    /// When denied, how long until a request of the same cost can be admitted; zero when allowed.
    pub retry_after: Duration,
    /// How long until the client's whole limit is available again (the `RateLimit-Reset` of HTTP
    /// APIs).
    pub reset_after: Duration,
    /// The store failed, and this decision is the [`OnStoreFailure`] policy's, not the shared
    /// state's.
    pub degraded: bool,
}

/// A rate limiter whose state lives in a [`CacheStore`], so every instance sharing the store shares
/// the limit.
///
/// Decisions are atomic: however many callers race, no more are admitted than the
/// [algorithm](RateLimitAlgorithm) states. State keys start with `"{namespace}:{client}"` and expire
/// on their own. Time comes from the [clock](RateLimiterBuilder::clock), the wall clock by default,
/// so the hosts sharing a limit need clocks in agreement (NTP).
///
/// **When the store loses its data** (a restart without persistence, a failover that loses the last
/// writes, an eviction), every client starts afresh, as if its window had just ended: up to one more
/// full limit may be admitted. While the store is unreachable, [`OnStoreFailure`] decides.
///
/// ```
/// # futures::executor::block_on(async {
/// use backend_memory::MemoryStore;
/// use cache_core::{RateLimitAlgorithm, RateLimiter};
/// use std::time::Duration;
///
/// let limiter = RateLimiter::builder(MemoryStore::new())
///     .limit(2)
///     .period(Duration::from_secs(1))
///     .algorithm(RateLimitAlgorithm::SlidingWindow)
///     .build()?;
/// assert!(limiter.check("client-a").await?.allowed);
/// assert!(limiter.check("client-a").await?.allowed);
/// let third = limiter.check("client-a").await?;
/// assert!(!third.allowed);
/// assert!(third.retry_after > Duration::ZERO);
/// # Ok::<_, cache_core::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CacheStore>,
    namespace: String,
    limit: u64,
    burst: Option<u64>,
    period: Duration,
    algorithm: RateLimitAlgorithm,
    on_store_failure: OnStoreFailure,
    clock: Arc<dyn Clock>,
}

impl Inner {
    fn burst(&self) -> u64 {
        self.burst.unwrap_or(self.limit)
    }

    fn period_millis(&self) -> u64 {
        u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("store", &self.inner.store)
            .field("namespace", &self.inner.namespace)
            .field("limit", &self.inner.limit)
            .field("burst", &self.inner.burst())
            .field("period", &self.inner.period)
            .field("algorithm", &self.inner.algorithm)
            .field("on_store_failure", &self.inner.on_store_failure)
            .finish()
    }
}

/// Builds a [`RateLimiter`]. Start with [`RateLimiter::builder`].
#[must_use]
pub struct RateLimiterBuilder {
    inner: Inner,
}

impl fmt::Debug for RateLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("namespace", &self.inner.namespace)
            .field("limit", &self.inner.limit)
            .field("period", &self.inner.period)
            .field("algorithm", &self.inner.algorithm)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A builder over `store`: 100 requests per second, fixed window, namespace `"rl"`.
    pub fn builder(store: impl IntoStore) -> RateLimiterBuilder {
        RateLimiterBuilder {
            inner: Inner {
                store: store.into_store(),
                namespace: "rl".into(),
                limit: 100,
                burst: None,
                period: Duration::from_secs(1),
                algorithm: RateLimitAlgorithm::default(),
                on_store_failure: OnStoreFailure::default(),
                clock: Arc::new(WallClock),
            },
        }
    }
}

impl RateLimiterBuilder {
    /// The prefix of state keys. Default: `"rl"`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.inner.namespace = namespace.into();
        self
    }

    /// Units admitted per period. Default: 100.
    pub fn limit(mut self, limit: u64) -> Self {
        self.inner.limit = limit;
        self
    }

    /// The period the limit applies to. Default: 1 s.
    pub fn period(mut self, period: Duration) -> Self {
        self.inner.period = period;
        self
    }

    /// How requests are counted. Default: [`RateLimitAlgorithm::FixedWindow`].
    pub fn algorithm(mut self, algorithm: RateLimitAlgorithm) -> Self {
        self.inner.algorithm = algorithm;
        self
    }

    /// The largest burst [`RateLimitAlgorithm::Gcra`] admits at once, between 1 and `limit`; the
    /// other algorithms refuse this setting. Default: `limit`.
    pub fn burst(mut self, burst: u64) -> Self {
        self.inner.burst = Some(burst);
        self
    }

    /// What a check does when the store is unreachable. Default: [`OnStoreFailure::ReturnError`].
    pub fn on_store_failure(mut self, policy: OnStoreFailure) -> Self {
        self.inner.on_store_failure = policy;
        self
    }

    /// The clock that places requests in time. It must have the same origin on every instance.
    /// Default: [`WallClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.inner.clock = Arc::new(clock);
        self
    }

    /// Builds the limiter, or explains which setting is invalid.
    pub fn build(self) -> Result<RateLimiter> {
        let inner = &self.inner;
        crate::ttl_millis(inner.period)?;
        let invalid = |message: String| Err(Error::new(ErrorKind::InvalidArgument, message));
        if inner.limit == 0 || inner.limit > i64::MAX as u64 {
            return invalid(format!(
                "rate limit must be between 1 and i64::MAX, got {}",
                inner.limit
            ));
        }
        match (inner.algorithm, inner.burst) {
            (RateLimitAlgorithm::Gcra, Some(burst)) if burst == 0 || burst > inner.limit => {
                return invalid(format!(
                    "the GCRA burst must be between 1 and the limit {}, got {burst}",
                    inner.limit
                ));
            }
            (RateLimitAlgorithm::Gcra, _) => {}
            (algorithm, Some(_)) => {
                return invalid(format!(
                    "burst is a setting of the GCRA algorithm, not of {algorithm:?}"
                ));
            }
            (RateLimitAlgorithm::SlidingWindow, None) if inner.limit > MAX_SLIDING_WINDOW_LIMIT => {
                return invalid(format!(
                    "the sliding window keeps every admission of the period, so its limit is at \
                     most {MAX_SLIDING_WINDOW_LIMIT}, got {}; use Gcra with burst(1) for an exact \
                     bound on higher limits",
                    inner.limit
                ));
            }
            _ => {}
        }
        Ok(RateLimiter {
            inner: Arc::new(self.inner),
        })
    }
}

/// How long state keys outlive the time they matter. The store expires them by its own clock; one
/// running ahead of the limiter's (another host's, or rounded differently) must not forget
/// admissions that still count, which would admit more than the bound.
const STATE_TTL_SLACK: Duration = Duration::from_secs(1);

/// How many times a read-then-swap algorithm re-reads the state after losing a compare-and-swap
/// before giving up.
const MAX_CAS_ATTEMPTS: usize = 1_000;

impl RateLimiter {
    /// Decides on one request of `client`.
    pub async fn check(&self, client: &str) -> Result<RateLimitDecision> {
        self.check_n(client, 1).await
    }

    /// Decides on a request that costs `cost` units of `client`'s limit. A cost of zero, or above
    /// the limit (the burst, for GCRA), is [`ErrorKind::InvalidArgument`]: it could never pass.
    pub async fn check_n(&self, client: &str, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        let most = match inner.algorithm {
            RateLimitAlgorithm::Gcra => inner.burst(),
            _ => inner.limit,
        };
        if cost == 0 || cost > most {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("rate limit cost must be between 1 and {most}, got {cost}"),
            ));
        }
        let key = format!("{}:{client}", inner.namespace);
        let decided = match inner.algorithm {
            RateLimitAlgorithm::FixedWindow => self.fixed_window(&key, client, cost).await,
            RateLimitAlgorithm::SlidingWindow => self.sliding_window(&key, cost).await,
            RateLimitAlgorithm::Gcra => self.gcra(&key, cost).await,
        };
        let decision = match decided {
            Ok(decision) => decision,
            Err(e) if e.is_retryable() => self.when_store_fails(e, cost)?,
            Err(e) => return Err(e),
        };
        tracing::debug!(
            client,
            allowed = decision.allowed,
            remaining = decision.remaining,
            degraded = decision.degraded,
            "rate limit decision"
        );
        Ok(decision)
    }

    fn when_store_fails(&self, error: Error, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        let allowed = match inner.on_store_failure {
            OnStoreFailure::ReturnError => return Err(error),
            OnStoreFailure::Allow => true,
            OnStoreFailure::Deny => false,
        };
        tracing::warn!(error = %error, allowed, "rate limit store failed; deciding by policy");
        let wait = Duration::from_secs(1).min(inner.period);
        Ok(RateLimitDecision {
            allowed,
            limit: inner.limit,
            remaining: if allowed { inner.limit - cost } else { 0 },
            retry_after: if allowed { Duration::ZERO } else { wait },
            reset_after: wait,
            degraded: true,
        })
    }

    async fn fixed_window(&self, key: &str, client: &str, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        let period = inner.period_millis();
        // Windows start at `phase + k × period`: each client's own offset, so that not every
        // client's window resets at the same instant.
        let phase = fnv1a(client.as_bytes()) % period;
        let now = inner.clock.now_millis();
        let window = (now.saturating_add(period) - phase) / period;
        let end = window.saturating_mul(period).saturating_add(phase);
        let reset_after = Duration::from_millis(end.saturating_sub(now).max(1));
        let ttl = reset_after.saturating_add(STATE_TTL_SLACK);
        let count = inner
            .store
            .incr_by(&format!("{key}:{window}"), cost as i64, Some(ttl))
            .await?
            .max(0) as u64;
        let allowed = count <= inner.limit;
        Ok(RateLimitDecision {
            allowed,
            limit: inner.limit,
            remaining: inner.limit.saturating_sub(count),
            retry_after: if allowed { Duration::ZERO } else { reset_after },
            reset_after,
            degraded: false,
        })
    }

    async fn sliding_window(&self, key: &str, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        let period = inner.period_millis();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = inner.store.get(key).await?;
            // Read after the state, never before: a time read earlier could be older than
            // admissions that a later caller made, and pruned, meanwhile; the compare-and-swap
            // then guarantees that nothing changed between this state and the decision.
            let now = inner.clock.now_millis();
            // Admissions still inside the window (now - period, now]; unreadable state is reset.
            let mut log = current
                .as_deref()
                .map(AdmissionLog::parse)
                .unwrap_or_default();
            log.0.retain(|&(at, _)| at.saturating_add(period) > now);
            let used = log.units();
            if used + cost > inner.limit {
                let mut sorted = log.0.clone();
                sorted.sort_unstable();
                // The oldest admissions whose expiry makes room for `cost` more.
                let mut freed = 0;
                let mut room_at = now;
                for (at, units) in sorted {
                    freed += units;
                    room_at = at.saturating_add(period);
                    if used - freed + cost <= inner.limit {
                        break;
                    }
                }
                return Ok(RateLimitDecision {
                    allowed: false,
                    limit: inner.limit,
                    remaining: inner.limit.saturating_sub(used),
                    retry_after: Duration::from_millis(room_at.saturating_sub(now).max(1)),
                    reset_after: log.reset_after(now, period),
                    degraded: false,
                });
            }
            log.admit(now, cost);
            let swapped = inner
                .store
                .compare_and_swap(
                    key,
                    current.as_deref(),
                    Some(log.to_bytes()),
                    Some(inner.period.saturating_add(STATE_TTL_SLACK)),
                )
                .await?;
            if swapped {
                return Ok(RateLimitDecision {
                    allowed: true,
                    limit: inner.limit,
                    remaining: inner.limit - used - cost,
                    retry_after: Duration::ZERO,
                    reset_after: log.reset_after(now, period),
                    degraded: false,
                });
            }
        }
        Err(contended(key))
    }

    async fn gcra(&self, key: &str, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        // Time is counted in ticks of 1/limit µs, so that the emission interval (one unit every
        // period / limit) is exact: rounding it would admit more or fewer than `limit` per period.
        let limit = u128::from(inner.limit);
        let interval = inner.period.as_micros();
        let burst = interval * u128::from(inner.burst());
        // Ticks to a duration, rounded up so that a retry is never early.
        let duration = |ticks: u128| {
            Duration::from_micros(u64::try_from(ticks.div_ceil(limit)).unwrap_or(u64::MAX))
        };
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = inner.store.get(key).await?;
            // After the state, as for the sliding window.
            let now = u128::from(inner.clock.now_millis()) * 1_000 * limit;
            // The theoretical arrival time, in ticks of the clock. Unreadable state is reset.
            let stored = current
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<u128>().ok());
            let tat = stored.unwrap_or(now).max(now);
            let new_tat = tat.saturating_add(u128::from(cost) * interval);
            let allow_at = new_tat.saturating_sub(burst);
            if now < allow_at {
                return Ok(RateLimitDecision {
                    allowed: false,
                    limit: inner.limit,
                    remaining: units(burst.saturating_sub(tat - now) / interval),
                    retry_after: duration(allow_at - now),
                    reset_after: duration(tat - now),
                    degraded: false,
                });
            }
            let reset_after = duration(new_tat - now);
            let swapped = inner
                .store
                .compare_and_swap(
                    key,
                    current.as_deref(),
                    Some(Bytes::from(new_tat.to_string())),
                    Some(reset_after.saturating_add(STATE_TTL_SLACK)),
                )
                .await?;
            if swapped {
                return Ok(RateLimitDecision {
                    allowed: true,
                    limit: inner.limit,
                    remaining: units(burst.saturating_sub(new_tat - now) / interval),
                    retry_after: Duration::ZERO,
                    reset_after,
                    degraded: false,
                });
            }
        }
        Err(contended(key))
    }
}

fn contended(key: &str) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("rate limit state of key {key:?} changed on each of {MAX_CAS_ATTEMPTS} attempts"),
    )
    .with_retryable(true)
}

/// A count of units, at most `limit` (a `u64`) whenever it is computed from valid state.
fn units(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// FNV-1a: a hash that every instance, of every build, computes alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The sliding window's state: `(millisecond, units)` per admission time, stored as 8 + 4
/// little-endian bytes each.
#[derive(Debug, Default)]
struct AdmissionLog(Vec<(u64, u64)>);

impl AdmissionLog {
    fn parse(bytes: &[u8]) -> Self {
        if bytes.len() % 12 != 0 {
            return AdmissionLog::default();
        }
        AdmissionLog(
            bytes
                .chunks_exact(12)
                .map(|entry| {
                    let (at, units) = entry.split_at(8);
                    let at = u64::from_le_bytes(at.try_into().expect("8 bytes"));
                    let units = u32::from_le_bytes(units.try_into().expect("4 bytes"));
                    (at, u64::from(units))
                })
                .collect(),
        )
    }

    fn units(&self) -> u64 {
        self.0.iter().map(|&(_, units)| units).sum()
    }

    /// Records `units` at `now`, merged with an admission of the same millisecond.
    fn admit(&mut self, now: u64, units: u64) {
        match self.0.iter_mut().find(|(at, _)| *at == now) {
            Some((_, total)) => *total += units,
            None => self.0.push((now, units)),
        }
    }

    /// When the newest admission leaves the window.
    fn reset_after(&self, now: u64, period: u64) -> Duration {
        let newest = self.0.iter().map(|&(at, _)| at).max().unwrap_or(now);
        Duration::from_millis(newest.saturating_add(period).saturating_sub(now))
    }

    fn to_bytes(&self) -> Bytes {
        let mut bytes = Vec::with_capacity(self.0.len() * 12);
        for &(at, units) in &self.0 {
            bytes.extend_from_slice(&at.to_le_bytes());
            // At most the limit, which MAX_SLIDING_WINDOW_LIMIT keeps far below u32::MAX.
            bytes.extend_from_slice(&(units as u32).to_le_bytes());
        }
        Bytes::from(bytes)
    }
}
