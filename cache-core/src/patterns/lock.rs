//! A lease-based distributed lock with fencing tokens, on any [`CacheStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Sleeper, random_token};
use crate::{CacheStore, Clock, Error, ErrorKind, IntoStore, Result, SetOptions, SystemClock};

/// How many times the fencing counter is re-read after losing a compare-and-swap.
const MAX_FENCE_ATTEMPTS: usize = 1_000;

/// Hands out leases on named locks stored in a [`CacheStore`].
///
/// A lock named `name` is the key `"{namespace}:l:{name}"`; while held, its value is the holder's
/// random owner token and its fencing token, and it expires after the lease. Its fencing counter is
/// the persistent key `"{namespace}:f:{name}"`.
///
/// What it guarantees, given a store whose single-key operations are linearizable (every backend's
/// contract) and that never evicts the lock's keys:
/// - at most one holder per name while leases have not expired;
/// - only the holder can [`release`](LockGuard::release) or [`extend`](LockGuard::extend) its lease:
///   both are one atomic compare-and-swap on the owner token;
/// - each successful acquisition gets a [fencing token](LockGuard::fencing_token) larger than every
///   earlier holder's, so a resource that remembers the largest token it has seen can reject a holder
///   whose lease expired while it was paused.
///
/// What it does not guarantee: a holder paused longer than its lease (a GC pause, a lost network)
/// loses the lock without being told. Keep leases comfortably longer than the critical section, extend
/// them from long sections, and pass the fencing token to the resource you protect.
///
/// **When the store loses data, mutual exclusion is lost, but fencing is not.** A store restarted
/// without persistence, a Redis failover that loses the last writes (replication is asynchronous),
/// or an eviction can drop a held lease. Another caller can then take the lock while the first
/// still runs its critical section: two holders at once. The first holder is not told;
/// [`is_held`](LockGuard::is_held), [`extend`](LockGuard::extend) and
/// [`release`](LockGuard::release) report `false` from then on. Fencing tokens still grow across
/// such a loss: each is one more than the last, and at least the wall clock in microseconds (about
/// 1.8 × 10¹⁵ today, below 2⁵³ so JavaScript reads it exactly), so a counter that was lost starts
/// again above every earlier token, as long as the hosts' clocks agree to within the time between
/// the last acquisition before the loss and the first after it. A resource that rejects tokens smaller than the largest it has seen therefore
/// refuses the older holder's writes. Use fencing wherever two holders would do harm.
///
/// **Give it a store that does not evict.** A `MemoryStore` evicts when it is full, so give the
/// locks one of their own with room for two keys per lock name (fencing counters never expire); on
/// Redis, set `maxmemory-policy noeviction` (the `volatile-*` policies evict leases, which have
/// TTLs).
///
/// ```
/// # futures::executor::block_on(async {
/// use backend_memory::MemoryStore;
/// use cache_core::LockManager;
/// use std::time::Duration;
///
/// let locks = LockManager::builder(MemoryStore::new())
///     .lease(Duration::from_secs(10))
///     .build()?;
/// let guard = locks.try_acquire("order:42").await?.expect("the lock is free");
/// assert!(locks.try_acquire("order:42").await?.is_none());
/// let fence = guard.fencing_token(); // hand this to the protected resource
/// assert!(guard.release().await?);
/// # let _ = fence;
/// # Ok::<_, cache_core::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct LockManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CacheStore>,
    namespace: String,
    lease: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    sleeper: Option<Arc<dyn Sleeper>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for LockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockManager")
            .field("store", &self.inner.store)
            .field("namespace", &self.inner.namespace)
            .field("lease", &self.inner.lease)
            .field("backoff_min", &self.inner.backoff_min)
            .field("backoff_max", &self.inner.backoff_max)
            .field("sleeper", &self.inner.sleeper.is_some())
            .finish()
    }
}

/// Builds a [`LockManager`]. Start with [`LockManager::builder`].
#[must_use]
pub struct LockManagerBuilder {
    inner: Inner,
}

impl fmt::Debug for LockManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockManagerBuilder")
            .field("namespace", &self.inner.namespace)
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

impl LockManager {
    /// A builder over `store` with the defaults listed on each setter.
    pub fn builder(store: impl IntoStore) -> LockManagerBuilder {
        LockManagerBuilder {
            inner: Inner {
                store: store.into_store(),
                namespace: "lock".into(),
                lease: Duration::from_secs(30),
                backoff_min: Duration::from_millis(2),
                backoff_max: Duration::from_millis(200),
                sleeper: None,
                clock: Arc::new(SystemClock::new()),
            },
        }
    }
}

impl LockManagerBuilder {
    /// The prefix of lock keys. Default: `"lock"`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.inner.namespace = namespace.into();
        self
    }

    /// How long a lease lasts unless released or extended. Default: 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.inner.lease = lease;
        self
    }

    /// The first and the largest pause between attempts of [`LockManager::acquire`]; each pause is a
    /// random time up to the current bound, which doubles after every failed attempt. Default: 2 ms and
    /// 200 ms.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.inner.backoff_min = min;
        self.inner.backoff_max = max.max(min);
        self
    }

    /// What [`LockManager::acquire`] waits with, e.g. `tokio::time::sleep`. Default: none, and
    /// `acquire` with a non-zero timeout fails with [`ErrorKind::Config`].
    pub fn sleeper(mut self, sleeper: impl Sleeper + 'static) -> Self {
        self.inner.sleeper = Some(Arc::new(sleeper));
        self
    }

    /// The clock that measures `acquire`'s timeout, and whose [`unix_micros`](Clock::unix_micros)
    /// is the floor of fencing tokens. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.inner.clock = Arc::new(clock);
        self
    }

    /// Builds the manager; fails if the lease is not a valid TTL.
    pub fn build(self) -> Result<LockManager> {
        crate::ttl_millis(self.inner.lease)?;
        Ok(LockManager {
            inner: Arc::new(self.inner),
        })
    }
}

impl LockManager {
    /// Tries once to take the lock `name`. `Ok(None)` means someone else holds it.
    ///
    /// It takes four store operations: a conditional set of the owner token (the only one when the
    /// lock is held), a read and a compare-and-swap of the fencing counter, and a compare-and-swap
    /// that records the fencing token while confirming the lease is still ours. The last step is what
    /// makes fencing tokens grow in the order holders actually held the lock.
    pub async fn try_acquire(&self, name: &str) -> Result<Option<LockGuard>> {
        let inner = &self.inner;
        let key = format!("{}:l:{name}", inner.namespace);
        let token = random_token();
        let claimed = inner
            .store
            .set(
                &key,
                Bytes::from(token.clone()),
                SetOptions::new().ttl(inner.lease).if_absent(),
            )
            .await?;
        if !claimed {
            tracing::debug!(lock = name, "lock busy");
            return Ok(None);
        }
        let fence = match self.next_fence(name).await {
            Ok(fence) => fence,
            Err(e) => {
                // Give the lease back rather than leave it to expire.
                let _ = inner
                    .store
                    .compare_and_swap(&key, Some(token.as_bytes()), None, None)
                    .await;
                return Err(e);
            }
        };
        let value = Bytes::from(format!("{token}:{fence}"));
        let confirmed = inner
            .store
            .compare_and_swap(
                &key,
                Some(token.as_bytes()),
                Some(value.clone()),
                Some(inner.lease),
            )
            .await?;
        if !confirmed {
            // Our lease expired between the claim and the confirmation; the lock is someone else's.
            tracing::debug!(lock = name, "lock lease lost while acquiring");
            return Ok(None);
        }
        tracing::debug!(lock = name, fence, "lock acquired");
        Ok(Some(LockGuard {
            store: inner.store.clone(),
            name: name.to_owned(),
            key,
            value,
            fence,
        }))
    }

    /// The next fencing token of `name`: one more than the last, and at least the wall clock in
    /// microseconds, so that tokens still grow after the store lost the counter. A compare-and-swap
    /// loop on the counter key.
    async fn next_fence(&self, name: &str) -> Result<u64> {
        let inner = &self.inner;
        let key = format!("{}:f:{name}", inner.namespace);
        for _ in 0..MAX_FENCE_ATTEMPTS {
            let current = inner.store.get(&key).await?;
            let last = current
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let floor = inner.clock.unix_micros();
            let next = last.saturating_add(1).max(floor);
            if inner
                .store
                .compare_and_swap(
                    &key,
                    current.as_deref(),
                    Some(Bytes::from(next.to_string())),
                    None,
                )
                .await?
            {
                return Ok(next);
            }
        }
        Err(Error::new(
            ErrorKind::Backend,
            format!("the fencing counter {key:?} changed on each of {MAX_FENCE_ATTEMPTS} attempts"),
        )
        .with_retryable(true))
    }

    /// Takes the lock `name`, retrying with jittered exponential backoff until `timeout` has passed.
    /// `Ok(None)` means it was still held by someone else at the deadline.
    ///
    /// It tries at least once; with a zero timeout it is [`try_acquire`](Self::try_acquire). A non-zero
    /// timeout needs a [sleeper](LockManagerBuilder::sleeper).
    pub async fn acquire(&self, name: &str, timeout: Duration) -> Result<Option<LockGuard>> {
        let inner = &self.inner;
        let sleeper = match (&inner.sleeper, timeout.is_zero()) {
            (_, true) => return self.try_acquire(name).await,
            (Some(sleeper), false) => sleeper,
            (None, false) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "waiting for lock {name:?} needs a sleeper: set LockManagerBuilder::sleeper"
                    ),
                ));
            }
        };
        // The clock reads whole milliseconds, so "now" may really be up to 1 ms later than it
        // says: one more millisecond, and a sub-millisecond timeout rounded up, keep the wait from
        // ending before `timeout` has passed.
        let timeout_millis =
            u64::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        let deadline = inner
            .clock
            .now_millis()
            .saturating_add(timeout_millis)
            .saturating_add(1);
        let mut bound = inner.backoff_min;
        loop {
            if let Some(guard) = self.try_acquire(name).await? {
                return Ok(Some(guard));
            }
            let now = inner.clock.now_millis();
            if now >= deadline {
                tracing::debug!(lock = name, "lock wait timed out");
                return Ok(None);
            }
            // Capped before the jitter, which could not multiply a bound near `Duration::MAX`.
            let pause = bound
                .min(Duration::from_millis(deadline - now))
                .mul_f64(0.5 + fastrand::f64() * 0.5);
            sleeper.sleep(pause).await;
            bound = bound.saturating_mul(2).min(inner.backoff_max);
        }
    }
}

/// A held lease on a lock, from [`LockManager::try_acquire`] or [`LockManager::acquire`].
///
/// **Dropping a guard does not release the lock.** Rust has no async drop, so a guard dropped without
/// [`release`](Self::release) (including by a panic or a cancelled task) leaves the lock held until its
/// lease expires, after the TTL given by [`LockManagerBuilder::lease`] (or the last
/// [`extend`](Self::extend)). Nobody else can take it before then. Call `release` on every normal path.
#[must_use = "dropping a LockGuard keeps the lock held until its lease expires; call release()"]
pub struct LockGuard {
    store: Arc<dyn CacheStore>,
    name: String,
    key: String,
    value: Bytes,
    fence: u64,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token of this acquisition: larger than that of every earlier holder of this lock.
    /// Give it to the resource you protect, which should reject a token smaller than the largest it
    /// has seen.
    pub fn fencing_token(&self) -> u64 {
        self.fence
    }

    /// Whether this guard's lease is still the one stored (one read). `false` after it expired.
    pub async fn is_held(&self) -> Result<bool> {
        Ok(self.store.get(&self.key).await?.as_deref() == Some(&self.value[..]))
    }

    /// Renews the lease to `lease` from now. Returns `false`, changing nothing, if the lease has
    /// already expired (and perhaps been taken by someone else). Atomic: a compare-and-swap on the
    /// owner token.
    pub async fn extend(&self, lease: Duration) -> Result<bool> {
        let extended = self
            .store
            .compare_and_swap(
                &self.key,
                Some(&self.value),
                Some(self.value.clone()),
                Some(lease),
            )
            .await?;
        tracing::debug!(lock = %self.name, extended, "lock extend");
        Ok(extended)
    }

    /// Releases the lock. Returns `true` if this guard still held it; `false` if its lease had expired,
    /// in which case nothing is changed (a lock taken over by another holder stays theirs). Atomic: a
    /// compare-and-swap on the owner token.
    pub async fn release(self) -> Result<bool> {
        let released = self
            .store
            .compare_and_swap(&self.key, Some(&self.value), None, None)
            .await?;
        tracing::debug!(lock = %self.name, released, "lock release");
        Ok(released)
    }
}
