//! Fixed-window and GCRA rate limiters on any [`CacheStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::WallClock;
use crate::{CacheStore, Clock, Error, ErrorKind, IntoStore, KeyTtl, Result};

/// How a [`RateLimiter`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RateLimitAlgorithm {
    /// At most `limit` per window; a client's window starts with its first request and lasts `period`.
    /// One atomic `incr_by` per decision (plus a `ttl` read when denied). Allows a burst of up to
    /// `2 × limit` across a window boundary. A denied request's cost counts too, as in every
    /// `INCR`-based limiter: once a request is denied, the client waits for the next window, even if
    /// a cheaper request would have fitted.
    #[default]
    FixedWindow,
    /// The generic cell rate algorithm: requests are spaced `period / limit` apart with a burst of up to
    /// `limit`, so the limit holds over every sliding `period`. One read plus one compare-and-swap per
    /// decision (retried under contention). Uses the [clock](RateLimiterBuilder::clock), so the hosts'
    /// clocks must agree.
    Gcra,
}

/// The outcome of one [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitDecision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The configured limit per period.
    pub limit: u64,
    /// How many more requests would be admitted right now.
    pub remaining: u64,
    /// When denied, how long until a request of the same cost can be admitted; zero when allowed.
    pub retry_after: Duration,
}

/// A rate limiter whose state lives in a [`CacheStore`], so every instance sharing the store shares
/// the limit.
///
/// Decisions are atomic: however many callers race, no more than `limit` requests are admitted in a
/// window (fixed window) or in any `period` (GCRA). State keys are `"{namespace}:{client}"` and expire
/// on their own.
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
///     .algorithm(RateLimitAlgorithm::Gcra)
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
    period: Duration,
    algorithm: RateLimitAlgorithm,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("store", &self.inner.store)
            .field("namespace", &self.inner.namespace)
            .field("limit", &self.inner.limit)
            .field("period", &self.inner.period)
            .field("algorithm", &self.inner.algorithm)
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
                period: Duration::from_secs(1),
                algorithm: RateLimitAlgorithm::default(),
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

    /// Requests admitted per period. Default: 100.
    pub fn limit(mut self, limit: u64) -> Self {
        self.inner.limit = limit;
        self
    }

    /// The period (window length) the limit applies to. Default: 1 s.
    pub fn period(mut self, period: Duration) -> Self {
        self.inner.period = period;
        self
    }

    /// How requests are counted. Default: [`RateLimitAlgorithm::FixedWindow`].
    pub fn algorithm(mut self, algorithm: RateLimitAlgorithm) -> Self {
        self.inner.algorithm = algorithm;
        self
    }

    /// The clock of the GCRA algorithm (the fixed window uses the store's TTLs instead). It must have
    /// the same origin on every instance. Default: [`WallClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.inner.clock = Arc::new(clock);
        self
    }

    /// Builds the limiter; fails if the limit is zero or the period is not a valid TTL.
    pub fn build(self) -> Result<RateLimiter> {
        crate::ttl_millis(self.inner.period)?;
        if self.inner.limit == 0 || self.inner.limit > i64::MAX as u64 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "rate limit must be between 1 and i64::MAX, got {}",
                    self.inner.limit
                ),
            ));
        }
        Ok(RateLimiter {
            inner: Arc::new(self.inner),
        })
    }
}

/// How many times GCRA re-reads the state after losing a compare-and-swap before giving up.
const MAX_CAS_ATTEMPTS: usize = 1_000;

impl RateLimiter {
    /// Decides on one request of `client`.
    pub async fn check(&self, client: &str) -> Result<RateLimitDecision> {
        self.check_n(client, 1).await
    }

    /// Decides on a request that costs `cost` units of `client`'s limit. A cost of zero or above the
    /// limit is [`ErrorKind::InvalidArgument`].
    pub async fn check_n(&self, client: &str, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        if cost == 0 || cost > inner.limit {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "rate limit cost must be between 1 and the limit {}, got {cost}",
                    inner.limit
                ),
            ));
        }
        let key = format!("{}:{client}", inner.namespace);
        let decision = match inner.algorithm {
            RateLimitAlgorithm::FixedWindow => self.fixed_window(&key, cost).await?,
            RateLimitAlgorithm::Gcra => self.gcra(&key, cost).await?,
        };
        tracing::debug!(
            client,
            allowed = decision.allowed,
            remaining = decision.remaining,
            "rate limit decision"
        );
        Ok(decision)
    }

    async fn fixed_window(&self, key: &str, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        let count = inner
            .store
            .incr_by(key, cost as i64, Some(inner.period))
            .await?
            .max(0) as u64;
        let allowed = count <= inner.limit;
        let retry_after = if allowed {
            Duration::ZERO
        } else {
            match inner.store.ttl(key).await? {
                KeyTtl::ExpiresIn(left) => left,
                // The window ended between the two calls.
                KeyTtl::Missing => Duration::ZERO,
                // Only if something else persisted our key: repair it so the client is not locked out.
                KeyTtl::Persistent => {
                    inner.store.expire(key, inner.period).await?;
                    inner.period
                }
            }
        };
        Ok(RateLimitDecision {
            allowed,
            limit: inner.limit,
            remaining: inner.limit.saturating_sub(count),
            retry_after,
        })
    }

    async fn gcra(&self, key: &str, cost: u64) -> Result<RateLimitDecision> {
        let inner = &self.inner;
        // Time is counted in ticks of 1/limit µs, so that the emission interval (one request every
        // period / limit) is exact: rounding it would admit more or fewer than `limit` per period.
        let limit = u128::from(inner.limit);
        let interval = inner.period.as_micros();
        let burst = interval * limit;
        // Ticks to a duration, rounded up so that a retry is never early.
        let duration = |ticks: u128| {
            Duration::from_micros(u64::try_from(ticks.div_ceil(limit)).unwrap_or(u64::MAX))
        };
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = u128::from(inner.clock.now_millis()) * 1_000 * limit;
            let current = inner.store.get(key).await?;
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
                    remaining: requests(burst.saturating_sub(tat - now) / interval),
                    retry_after: duration(allow_at - now),
                });
            }
            let ttl = duration(new_tat - now);
            let swapped = inner
                .store
                .compare_and_swap(
                    key,
                    current.as_deref(),
                    Some(Bytes::from(new_tat.to_string())),
                    Some(ttl),
                )
                .await?;
            if swapped {
                return Ok(RateLimitDecision {
                    allowed: true,
                    limit: inner.limit,
                    remaining: requests(burst.saturating_sub(new_tat - now) / interval),
                    retry_after: Duration::ZERO,
                });
            }
        }
        Err(Error::new(
            ErrorKind::Backend,
            format!(
                "rate limit state of key {key:?} changed on each of {MAX_CAS_ATTEMPTS} attempts"
            ),
        )
        .with_retryable(true))
    }
}

/// A count of requests, at most `limit` (a `u64`) whenever it is computed from valid state.
fn requests(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
