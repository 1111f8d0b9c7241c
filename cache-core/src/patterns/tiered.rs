//! [`TieredCache`]: a local L1 in front of a shared L2, coherent across instances.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use futures::future::{self, Either};
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::circuit::CircuitBreaker;
use super::{BusEvent, Invalidation, InvalidationBus, InvalidationOp, Sleeper, random_token};
use crate::single_flight::{Leader, Role, SingleFlight};
use crate::stats::StripedCounter;
use crate::{
    CacheStore, Clock, Codec, Error, ErrorKind, IntoStore, Json, KeyTtl, LocalStore, MAX_TTL,
    PrefixedKey, Result, SetCondition, SetOptions, SharedObject, SystemClock, ToShared,
};

/// A two-level cache: a fast local L1 (normally a small `MemoryStore`) in front of a shared L2 (any
/// [`CacheStore`], normally Redis), for values that many instances read often.
///
/// **Reads** try L1, then L2, then the loader (for
/// [`get_or_insert_with`](Self::get_or_insert_with)). A value found in L2 is copied into L1 for at most
/// [`l1_ttl`](TieredCacheBuilder::l1_ttl) and never longer than it has left in L2. Concurrent
/// misses of one key in one instance make one trip to L2 and run the loader once (single-flight
/// over the whole tier).
///
/// **Writes and deletes** go to L2 first, then L1, then are announced on the
/// [`InvalidationBus`](TieredCacheBuilder::bus) so that every other instance drops its L1 copy. An
/// instance ignores its own announcements, and clears its L1 when the bus says it may have missed
/// some. Without a bus, other instances see a change once their L1 copy expires (after at most
/// `l1_ttl`). An L1 copy made while an invalidation was in flight (a racing write or delete, here or
/// announced by another instance) is dropped again, and a read that starts after a write or delete
/// returned never gets the answer of an L2 read made before it. A value loaded by
/// `get_or_insert_with` is stored in L2 only if the key is still absent there, so a write made while
/// the loader ran is not overwritten. A write, delete or clear whose announcement fails returns that
/// error although the change was made: other instances may serve the old value until they resync
/// or their copy expires, so it must not report success. Retrying the call announces it again.
///
/// **Fail-safe.** When L2 fails (a connection error or the [`l2_timeout`](TieredCacheBuilder::l2_timeout))
/// a read serves the L1 copy, even one that expired up to
/// [`fail_safe_grace`](TieredCacheBuilder::fail_safe_grace) ago, and `get_or_insert_with` runs the
/// loader rather than fail. Writes report the failure; when the write may still have reached L2 (a
/// timeout or a dropped connection), the L1 copy is dropped and the change is announced anyway. After
/// [`circuit_breaker`](TieredCacheBuilder::circuit_breaker) failures in a row, L2 is not called at all
/// for a while; then one probe call decides whether to resume.
///
/// ```
/// # futures::executor::block_on(async {
/// use backend_memory::MemoryStore;
/// use cache_core::{InProcessBus, TieredCache};
/// use std::time::Duration;
///
/// let l2 = MemoryStore::new(); // in production: a RedisStore shared by every instance
/// let bus = InProcessBus::default(); // in production: backend_redis::RedisBus
/// let cache = TieredCache::builder(MemoryStore::new(), l2)
///     .namespace("products")
///     .l1_ttl(Duration::from_secs(30))
///     .default_ttl(Duration::from_secs(600))
///     .bus(bus)
///     .build()?;
/// // Apply other instances' invalidations (with tokio: `tokio::spawn(listener.run())`).
/// let listener = cache.listen().await?;
/// # drop(listener);
///
/// let name: String = cache
///     .get_or_insert_with("42", None, || async { Ok::<_, std::io::Error>("lamp".to_string()) })
///     .await?;
/// assert_eq!(name, "lamp");
/// assert_eq!(cache.get::<String>("42").await?.as_deref(), Some("lamp"));
/// assert_eq!(cache.stats().l1_hits, 1);
/// # Ok::<_, cache_core::Error>(()) }).unwrap();
/// ```
///
/// # Stored format
///
/// L2 values start with a 12-byte stamp: 4 magic bytes (`FF 54 43 01`) and
/// their expiry as Unix milliseconds (little-endian u64; `u64::MAX`: none). It tells an L2 hit how
/// long the value has left, so a hit costs one `GET` instead of `GET` plus `PTTL`. Instances
/// should have clocks in sync (NTP): an L1 copy may outlive L2's by the skew between them. Values
/// without the stamp (written by other clients) are read too, with a `ttl` call to L2. Choose
/// [`plain_l2_values`](TieredCacheBuilder::plain_l2_values) to write the codec's bytes unchanged,
/// for other readers, at the cost of that second call on every L2 hit. With a
/// [`fail_safe_grace`](TieredCacheBuilder::fail_safe_grace), L1 entries carry an 8-byte header (their
/// freshness deadline), so give the cache an L1 store of its own.
pub struct TieredCache<C: Codec = Json> {
    core: Arc<Core>,
    codec: Arc<C>,
}

impl<C: Codec> Clone for TieredCache<C> {
    fn clone(&self) -> Self {
        TieredCache {
            core: self.core.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl<C: Codec> fmt::Debug for TieredCache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = &self.core;
        f.debug_struct("TieredCache")
            .field("id", &core.id)
            .field("l1", &core.l1)
            .field("l2", &core.l2)
            .field("prefix", &core.prefix)
            .field("l1_ttl", &core.l1_ttl)
            .field("default_ttl", &core.default_ttl)
            .field("fail_safe_grace", &core.grace)
            .field("l2_timeout", &core.l2_timeout)
            .field("bus", &core.bus)
            .field("codec", &C::NAME)
            .finish()
    }
}

/// A snapshot of a [`TieredCache`]'s counters since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct TieredStats {
    /// Reads answered by a fresh L1 copy.
    pub l1_hits: u64,
    /// Reads answered by L2 (and copied into L1).
    pub l2_hits: u64,
    /// Reads that found the key in neither tier.
    pub misses: u64,
    /// Times a loader ran.
    pub loader_runs: u64,
    /// L2 calls that failed with a connection error or a timeout.
    pub l2_errors: u64,
    /// L2 calls not made because the circuit breaker was open.
    pub l2_rejected: u64,
    /// Reads answered despite an L2 failure: from L1 (fresh or stale within the grace period), or by
    /// running the loader.
    pub fail_safe_activations: u64,
    /// Invalidations received from other instances and applied to L1.
    pub bus_messages: u64,
    /// Times L1 was cleared because the bus may have lost messages.
    pub bus_resyncs: u64,
    /// Invalidations this instance failed to publish.
    pub bus_publish_errors: u64,
    /// Whether the bus fell back to another mechanism than its own (see
    /// [`InvalidationBus::fell_back`]).
    pub bus_fell_back: bool,
    /// Entries L1 evicted to stay within its bounds, if it counts them (a `MemoryStore` does).
    pub l1_evictions: Option<u64>,
    /// Entries L1 removed because their TTL passed, if it counts them.
    pub l1_expirations: Option<u64>,
}

#[derive(Debug, Default)]
struct Counters {
    l1_hits: StripedCounter,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    loader_runs: AtomicU64,
    l2_errors: AtomicU64,
    l2_rejected: AtomicU64,
    fail_safe_activations: AtomicU64,
    bus_messages: AtomicU64,
    bus_resyncs: AtomicU64,
    bus_publish_errors: AtomicU64,
}

/// Awaits `future` in the span `span`, if anyone listens at debug level. With nobody listening,
/// wrapping the future would still cost about 110 instructions per call. A macro, not a function:
/// one more async layer costs about as much on the L2-hit path.
macro_rules! traced {
    ($future:expr, $span:expr) => {
        if tracing::enabled!(tracing::Level::DEBUG) {
            $future.instrument($span).await
        } else {
            $future.await
        }
    };
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Core {
    id: String,
    l1: Arc<dyn LocalStore>,
    l2: Arc<dyn CacheStore>,
    prefix: String,
    l1_ttl: Duration,
    default_ttl: Option<Duration>,
    grace: Duration,
    l2_timeout: Option<Duration>,
    sleeper: Option<Arc<dyn Sleeper>>,
    clock: Arc<dyn Clock>,
    breaker: CircuitBreaker,
    bus: Option<Arc<dyn InvalidationBus>>,
    stamp_l2_values: bool,
    /// Bumped before every L1 invalidation, so that a fill racing with one can undo itself.
    generation: AtomicU64,
    /// Flights carry the generation read before their L2 read, so that a caller that saw a later
    /// invalidation does not take their answer.
    reads: SingleFlight<(u64, Result<Option<Held>>)>,
    loads: SingleFlight<(u64, Result<Held>)>,
    stats: Counters,
}

/// Builds a [`TieredCache`]. Start with [`TieredCache::builder`].
#[must_use]
pub struct TieredCacheBuilder<C: Codec = Json> {
    l1: Arc<dyn LocalStore>,
    l2: Arc<dyn CacheStore>,
    namespace: String,
    l1_ttl: Duration,
    default_ttl: Option<Duration>,
    grace: Duration,
    l2_timeout: Option<Duration>,
    sleeper: Option<Arc<dyn Sleeper>>,
    clock: Arc<dyn Clock>,
    breaker_threshold: u32,
    breaker_open_for: Duration,
    bus: Option<Arc<dyn InvalidationBus>>,
    stamp_l2_values: bool,
    codec: C,
}

impl<C: Codec> fmt::Debug for TieredCacheBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCacheBuilder")
            .field("l1", &self.l1)
            .field("l2", &self.l2)
            .field("namespace", &self.namespace)
            .field("l1_ttl", &self.l1_ttl)
            .finish_non_exhaustive()
    }
}

impl TieredCache<Json> {
    /// A builder with `l1` (a [`LocalStore`]: give it a `MemoryStore` of its own) in front of `l2`.
    pub fn builder(l1: impl LocalStore + 'static, l2: impl IntoStore) -> TieredCacheBuilder<Json> {
        TieredCacheBuilder {
            l1: Arc::new(l1),
            l2: l2.into_store(),
            namespace: String::new(),
            l1_ttl: Duration::from_secs(60),
            default_ttl: None,
            grace: Duration::ZERO,
            l2_timeout: None,
            sleeper: None,
            clock: Arc::new(SystemClock::new()),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(5),
            bus: None,
            stamp_l2_values: true,
            codec: Json,
        }
    }
}

impl<C: Codec> TieredCacheBuilder<C> {
    /// Prefixes every key (in both tiers) with `"{namespace}:"`. Default: no prefix.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The longest an L1 copy stays fresh; it is also capped by the key's remaining TTL in L2.
    /// Default: 60 s.
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = ttl;
        self
    }

    /// The L2 TTL of writes and loaded values that do not give one. Default: none (no expiry).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// How long past its freshness an L1 copy is kept, to be served only while L2 fails.
    /// Default: zero (an L1 copy is served only while fresh).
    pub fn fail_safe_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Gives up on an L2 call after `timeout` (treated like a connection failure). Needs a
    /// [sleeper](Self::sleeper). Default: none (wait as long as the L2 store does).
    pub fn l2_timeout(mut self, timeout: Duration) -> Self {
        self.l2_timeout = Some(timeout);
        self
    }

    /// What the L2 timeout waits with, e.g. `tokio::time::sleep`.
    pub fn sleeper(mut self, sleeper: impl Sleeper + 'static) -> Self {
        self.sleeper = Some(Arc::new(sleeper));
        self
    }

    /// Opens the circuit after `failures` L2 failures in a row (0: never), and keeps it open for
    /// `open_for` before letting one probe call through. Default: 5 failures, 5 s.
    pub fn circuit_breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.breaker_threshold = failures;
        self.breaker_open_for = open_for;
        self
    }

    /// The bus that carries invalidations between instances. Default: none.
    pub fn bus(mut self, bus: impl InvalidationBus + 'static) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// A bus shared with other caches.
    pub fn shared_bus(mut self, bus: Arc<dyn InvalidationBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Writes L2 values exactly as the codec made them (plain JSON by default), for other clients to
    /// read, instead of [stamped](TieredCache#stored-format) with their expiry. Every L2 hit then
    /// also asks L2 for the key's TTL: two commands instead of one. Default: stamped.
    pub fn plain_l2_values(mut self) -> Self {
        self.stamp_l2_values = false;
        self
    }

    /// The clock of L1 freshness, L2 expiry stamps and the circuit breaker; use the L1 store's
    /// clock. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The serialization format of the typed methods. Default: [`Json`].
    pub fn codec<C2: Codec>(self, codec: C2) -> TieredCacheBuilder<C2> {
        TieredCacheBuilder {
            l1: self.l1,
            l2: self.l2,
            namespace: self.namespace,
            l1_ttl: self.l1_ttl,
            default_ttl: self.default_ttl,
            grace: self.grace,
            l2_timeout: self.l2_timeout,
            sleeper: self.sleeper,
            clock: self.clock,
            breaker_threshold: self.breaker_threshold,
            breaker_open_for: self.breaker_open_for,
            bus: self.bus,
            stamp_l2_values: self.stamp_l2_values,
            codec,
        }
    }

    /// Builds the cache, or explains which setting is invalid.
    pub fn build(self) -> Result<TieredCache<C>> {
        crate::ttl_millis(self.l1_ttl)?;
        crate::opt_ttl_millis(self.default_ttl)?;
        if self
            .l1_ttl
            .checked_add(self.grace)
            .is_none_or(|longest| longest > MAX_TTL)
        {
            return Err(Error::new(
                ErrorKind::Config,
                "l1_ttl plus fail_safe_grace is longer than MAX_TTL",
            ));
        }
        if self.l2_timeout.is_some() && self.sleeper.is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                "l2_timeout needs a sleeper: set TieredCacheBuilder::sleeper",
            ));
        }
        let prefix = if self.namespace.is_empty() {
            String::new()
        } else {
            format!("{}:", self.namespace)
        };
        Ok(TieredCache {
            core: Arc::new(Core {
                id: random_token(),
                l1: self.l1,
                l2: self.l2,
                prefix,
                l1_ttl: self.l1_ttl,
                default_ttl: self.default_ttl,
                grace: self.grace,
                l2_timeout: self.l2_timeout,
                sleeper: self.sleeper,
                clock: self.clock,
                breaker: CircuitBreaker::new(
                    self.breaker_threshold,
                    u64::try_from(self.breaker_open_for.as_millis()).unwrap_or(u64::MAX),
                ),
                bus: self.bus,
                stamp_l2_values: self.stamp_l2_values,
                generation: AtomicU64::new(0),
                reads: SingleFlight::default(),
                loads: SingleFlight::default(),
                stats: Counters::default(),
            }),
            codec: Arc::new(self.codec),
        })
    }
}

/// Applies other instances' invalidations to a [`TieredCache`]'s L1. Get one from
/// [`TieredCache::listen`] and run it on your runtime, e.g. `tokio::spawn(listener.run())`.
#[must_use = "a listener does nothing until run"]
pub struct InvalidationListener {
    core: Weak<Core>,
    events: BoxStream<'static, BusEvent>,
}

impl fmt::Debug for InvalidationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidationListener")
            .finish_non_exhaustive()
    }
}

impl InvalidationListener {
    /// Applies events until the bus ends or the cache is dropped.
    pub async fn run(mut self) {
        while let Some(event) = self.events.next().await {
            let Some(core) = self.core.upgrade() else {
                return;
            };
            core.apply(event).await;
        }
    }
}

enum L1Lookup {
    Fresh(Bytes),
    Stale(Bytes),
    Miss,
}

/// A value as the tiers pass it around: the codec's bytes, and the decoded value once a typed call
/// has decoded or written it (which L1 then keeps, shared).
#[derive(Clone)]
struct Held {
    bytes: Bytes,
    object: Option<SharedObject>,
}

impl Held {
    fn bytes(bytes: Bytes) -> Self {
        Held {
            bytes,
            object: None,
        }
    }
}

/// Turns the bytes of an L2 hit into the value L1 keeps next to them (`None`: keep the bytes
/// alone, e.g. for the raw-bytes API, or bytes that do not decode).
type Decoder<'a> = &'a (dyn Fn(&[u8]) -> Option<SharedObject> + Send + Sync);

/// The decoder of the raw-bytes API: nothing to keep.
fn no_object(_: &[u8]) -> Option<SharedObject> {
    None
}

const HEADER: usize = 8;

/// The start of an L2 value's [stamp](TieredCache#stored-format). `FF` never starts UTF-8 text, and in
/// MessagePack it is a whole one-byte value, so no JSON or MessagePack value begins with the stamp.
const STAMP_MAGIC: [u8; 4] = [0xFF, b'T', b'C', 1];
const STAMP: usize = STAMP_MAGIC.len() + 8;
/// A stamp's expiry for a value that does not expire.
const NEVER: u64 = u64::MAX;

/// The codec's bytes behind a stamp with their expiry (Unix ms, or [`NEVER`]).
fn stamp(expires_at: u64, value: &[u8]) -> Bytes {
    let mut stamped = Vec::with_capacity(STAMP + value.len());
    stamped.extend_from_slice(&STAMP_MAGIC);
    stamped.extend_from_slice(&expires_at.to_le_bytes());
    stamped.extend_from_slice(value);
    Bytes::from(stamped)
}

/// Splits a stamped L2 value into its expiry (Unix ms) and the codec's bytes.
fn unstamp(raw: &Bytes) -> Option<(u64, Bytes)> {
    let (magic, rest) = raw.split_first_chunk::<4>()?;
    let (expires_at, _) = rest.split_first_chunk::<8>()?;
    (*magic == STAMP_MAGIC).then(|| (u64::from_le_bytes(*expires_at), raw.slice(STAMP..)))
}

/// What [`Core::join`] found.
enum Joined<'a, T> {
    /// A flight's answer, fresh enough for this call.
    Answered(T),
    /// This call leads a new flight; L2 is read at this generation.
    Leads(Leader<'a, (u64, T)>, u64),
}

fn unavailable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) || e.is_retryable()
}

/// Whether an L2 write may have changed L2: it succeeded, or its reply was lost (it may have been
/// applied). Other errors (a refused value, say) left L2 as it was.
fn may_have_changed_l2<T>(result: &Result<T>) -> bool {
    result.as_ref().map_or_else(unavailable, |_| true)
}

impl Core {
    fn l1_lookup(&self, key: &str) -> Result<L1Lookup> {
        let Some(mut entry) = self.l1.get_now(key)? else {
            return Ok(L1Lookup::Miss);
        };
        // Without a grace period L1 keeps an entry exactly as long as it is fresh, and entries have
        // no header.
        if self.grace.is_zero() {
            return Ok(L1Lookup::Fresh(entry));
        }
        let Some(header) = entry.get(..HEADER) else {
            return Ok(L1Lookup::Miss);
        };
        let fresh_until = u64::from_le_bytes(header.try_into().expect("8 bytes"));
        // Cheaper than `slice`: no reference count changes.
        entry.advance(HEADER);
        Ok(if self.clock.now_millis() < fresh_until {
            L1Lookup::Fresh(entry)
        } else {
            L1Lookup::Stale(entry)
        })
    }

    /// Copies a value into L1, fresh for `fresh_for` (at most `l1_ttl`). If an invalidation happened
    /// since `generation` was read, the copy may be older than what the invalidation announced, so it
    /// is removed again.
    fn fill_l1(&self, key: &str, value: &Held, fresh_for: Duration, generation: u64) {
        let fresh_for = fresh_for.min(self.l1_ttl);
        let entry = if self.grace.is_zero() {
            // L1's own TTL is the freshness deadline: share the bytes, no header.
            value.bytes.clone()
        } else {
            let fresh_until = self
                .clock
                .now_millis()
                .saturating_add(fresh_for.as_millis() as u64);
            let mut entry = Vec::with_capacity(HEADER + value.bytes.len());
            entry.extend_from_slice(&fresh_until.to_le_bytes());
            entry.extend_from_slice(&value.bytes);
            Bytes::from(entry)
        };
        let options = SetOptions::new().ttl(fresh_for + self.grace);
        let filled = match &value.object {
            Some(object) => {
                self.l1
                    .set_shared_now(PrefixedKey::new("", key), entry, object.clone(), options)
            }
            None => self.l1.set_now(key, entry, options),
        };
        if let Err(e) = filled {
            // Too large for L1, for example: serve from L2 only, and drop any older copy.
            tracing::debug!(key, error = %e.kind(), "L1 fill failed");
            let _ = self.l1.delete_now(key);
            return;
        }
        if self.generation.load(Ordering::SeqCst) != generation {
            let _ = self.l1.delete_now(key);
        }
    }

    /// Calls L2 through the circuit breaker and the timeout.
    async fn l2_call<T>(&self, op: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.l2_admit(op)?;
        self.l2_send(op, call).await
    }

    /// Whether the circuit breaker lets an L2 call through; the error says it does not.
    fn l2_admit(&self, op: &str) -> Result<()> {
        if self.breaker.allow(|| self.clock.now_millis()) {
            return Ok(());
        }
        bump(&self.stats.l2_rejected);
        Err(Error::new(
            ErrorKind::Connection,
            format!("L2 {op} not sent: the L2 circuit breaker is open after repeated failures"),
        ))
    }

    /// Sends an admitted L2 call within the timeout, and tells the breaker how it went.
    async fn l2_send<T>(&self, op: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let result = match (self.l2_timeout, &self.sleeper) {
            (Some(timeout), Some(sleeper)) => {
                match future::select(pin!(call), sleeper.sleep(timeout)).await {
                    Either::Left((result, _)) => result,
                    Either::Right(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        format!("L2 {op} took longer than the l2_timeout of {timeout:?}"),
                    )),
                }
            }
            _ => call.await,
        };
        match &result {
            Err(e) if unavailable(e) => {
                bump(&self.stats.l2_errors);
                tracing::debug!(op, error = %e.kind(), "L2 call failed");
                self.breaker.record_failure(self.clock.now_millis());
            }
            _ => self.breaker.record_success(),
        }
        result
    }

    /// Reads L2's value and how long it has left (`None`: expired, so do not copy it). A stamped value
    /// says so itself; for a plain one L2 is asked.
    async fn l2_get(&self, key: &str) -> Result<Option<(Bytes, Option<Duration>)>> {
        self.l2_call("get", async {
            let Some(raw) = self.l2.get(key).await? else {
                return Ok(None);
            };
            if let Some((expires_at, value)) = unstamp(&raw) {
                let left = match expires_at {
                    NEVER => Some(MAX_TTL),
                    at => at
                        .checked_sub(self.clock.unix_millis())
                        .filter(|&ms| ms > 0)
                        .map(Duration::from_millis),
                };
                return Ok(Some((value, left)));
            }
            let left = match self.l2.ttl(key).await? {
                KeyTtl::ExpiresIn(left) => Some(left),
                KeyTtl::Persistent => Some(MAX_TTL),
                // Expired between the two reads.
                KeyTtl::Missing => None,
            };
            Ok(Some((raw, left)))
        })
        .await
    }

    /// The L2 write of a value (to send through [`l2_call`](Self::l2_call)), if `condition`
    /// holds in L2.
    fn l2_set<'a>(
        &'a self,
        key: &'a str,
        value: &Bytes,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> impl Future<Output = Result<bool>> + 'a {
        let mut options = SetOptions::new().maybe_ttl(ttl);
        options.condition = condition;
        self.l2.set(key, self.l2_value(value, ttl), options)
    }

    /// A value as L2 stores it: [stamped](TieredCache#stored-format) with its expiry, unless the
    /// cache writes plain values.
    fn l2_value(&self, value: &Bytes, ttl: Option<Duration>) -> Bytes {
        if !self.stamp_l2_values {
            return value.clone();
        }
        let expires_at = ttl.map_or(NEVER, |ttl| {
            self.clock
                .unix_millis()
                .saturating_add(ttl.as_millis() as u64)
        });
        stamp(expires_at, value)
    }

    async fn get(&self, key: &str, decode: Decoder<'_>) -> Result<Option<Held>> {
        let stale = match self.l1_lookup(key)? {
            L1Lookup::Fresh(value) => {
                self.stats.l1_hits.add(1);
                return Ok(Some(Held::bytes(value)));
            }
            L1Lookup::Stale(value) => Some(value),
            L1Lookup::Miss => None,
        };
        let (leader, generation) = match self.join(&self.reads, key).await {
            Joined::Answered(result) => return result,
            Joined::Leads(leader, generation) => (leader, generation),
        };
        let result = traced!(
            self.read_through(key, stale, generation, decode),
            tracing::debug_span!("tiered.get", key)
        );
        leader.finish(|| (generation, result.clone()));
        result
    }

    /// Joins the flight of `key` in `flights`: the answer of one that read L2 after every
    /// invalidation this call has seen, or the lead of a new one, with the generation read before
    /// its L2 read.
    async fn join<'a, T: Clone>(
        &self,
        flights: &'a SingleFlight<(u64, T)>,
        key: &'a str,
    ) -> Joined<'a, T> {
        let started = self.generation.load(Ordering::SeqCst);
        loop {
            match flights.join(key).await {
                Role::Follower((read_at, answer)) if read_at >= started => {
                    return Joined::Answered(answer);
                }
                // That flight read L2 before an invalidation this call saw: wait for the next one.
                Role::Follower(_) => {}
                Role::Leader(leader) => {
                    let generation = self.generation.load(Ordering::SeqCst);
                    return Joined::Leads(leader, generation);
                }
            }
        }
    }

    /// Reads L2 on an L1 miss; `generation` was read before the L2 read.
    async fn read_through(
        &self,
        key: &str,
        stale: Option<Bytes>,
        generation: u64,
        decode: Decoder<'_>,
    ) -> Result<Option<Held>> {
        match self.l2_get(key).await {
            Ok(Some((bytes, left))) => {
                bump(&self.stats.l2_hits);
                tracing::debug!("L2 hit");
                let value = Held {
                    object: decode(&bytes),
                    bytes,
                };
                if let Some(left) = left {
                    self.fill_l1(key, &value, left, generation);
                }
                Ok(Some(value))
            }
            Ok(None) => {
                bump(&self.stats.misses);
                tracing::debug!("miss");
                Ok(None)
            }
            Err(e) if unavailable(&e) => match stale {
                Some(value) => {
                    bump(&self.stats.fail_safe_activations);
                    tracing::debug!(error = %e.kind(), "fail-safe: serving the L1 copy");
                    Ok(Some(Held::bytes(value)))
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn get_or_load<F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        decode: Decoder<'_>,
        loader: F,
    ) -> Result<Held>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Held>>,
    {
        let stale = match self.l1_lookup(key)? {
            L1Lookup::Fresh(value) => {
                self.stats.l1_hits.add(1);
                return Ok(Held::bytes(value));
            }
            L1Lookup::Stale(value) => Some(value),
            L1Lookup::Miss => None,
        };
        let (leader, generation) = match self.join(&self.loads, key).await {
            Joined::Answered(result) => return result,
            Joined::Leads(leader, generation) => (leader, generation),
        };
        let result = traced!(
            self.load_through(key, ttl, stale, decode, loader, generation),
            tracing::debug_span!("tiered.get_or_load", key)
        );
        leader.finish(|| (generation, result.clone()));
        result
    }

    /// Reads L2, then runs the loader, on an L1 miss; `generation` was read before the L2 read.
    async fn load_through<F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        stale: Option<Bytes>,
        decode: Decoder<'_>,
        loader: F,
        generation: u64,
    ) -> Result<Held>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Held>>,
    {
        // A flight that ended between our L1 miss and our turn to lead may have filled L1.
        if let L1Lookup::Fresh(value) = self.l1_lookup(key)? {
            self.stats.l1_hits.add(1);
            return Ok(Held::bytes(value));
        }
        let l2_up = match self.l2_get(key).await {
            Ok(Some((bytes, left))) => {
                bump(&self.stats.l2_hits);
                tracing::debug!("L2 hit");
                let value = Held {
                    object: decode(&bytes),
                    bytes,
                };
                if let Some(left) = left {
                    self.fill_l1(key, &value, left, generation);
                }
                return Ok(value);
            }
            Ok(None) => true,
            Err(e) if unavailable(&e) => {
                bump(&self.stats.fail_safe_activations);
                if let Some(value) = stale {
                    tracing::debug!(error = %e.kind(), "fail-safe: serving the L1 copy");
                    return Ok(Held::bytes(value));
                }
                tracing::debug!(error = %e.kind(), "fail-safe: L2 unavailable, running the loader");
                false
            }
            Err(e) => return Err(e),
        };
        bump(&self.stats.misses);
        bump(&self.stats.loader_runs);
        tracing::debug!("loader running");
        let value = loader().await?;
        let ttl = ttl.or(self.default_ttl);
        if l2_up {
            match self
                .l2_call(
                    "set",
                    self.l2_set(key, &value.bytes, ttl, SetCondition::IfAbsent),
                )
                .await
            {
                Ok(true) => {}
                // Written while the loader ran, so newer than ours: keep it, and ours out of L1.
                Ok(false) => return Ok(value),
                // The value is still good: serve it, and let the next reader fill L2.
                Err(e) if unavailable(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.fill_l1(key, &value, ttl.unwrap_or(MAX_TTL), generation);
        Ok(value)
    }

    async fn set(&self, key: &str, value: Held, ttl: Option<Duration>) -> Result<()> {
        self.set_if(key, value, ttl, SetCondition::Always)
            .await
            .map(drop)
    }

    /// Writes `value` to L2 if `condition` holds there, then to L1, and announces it; returns
    /// whether it wrote.
    async fn set_if(
        &self,
        key: &str,
        value: Held,
        ttl: Option<Duration>,
        condition: SetCondition,
    ) -> Result<bool> {
        let ttl = ttl.or(self.default_ttl);
        // Not sent: L2 is as it was, and so is L1 (a fail-safe read may still serve it).
        self.l2_admit("set")?;
        // Read before the write: an invalidation during the L2 round trip (a racing write or delete)
        // may be newer than this value, and then the L1 copy undoes itself.
        let before = self.generation.load(Ordering::SeqCst);
        let written = traced!(
            self.l2_send("set", self.l2_set(key, &value.bytes, ttl, condition)),
            tracing::debug_span!("tiered.set", key)
        );
        if !may_have_changed_l2(&written) || matches!(written, Ok(false)) {
            return written;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        if written.is_ok() {
            self.fill_l1(key, &value, ttl.unwrap_or(MAX_TTL), before + 1);
        } else {
            // The reply was lost, not necessarily the write: no copy of the key can be trusted.
            let _ = self.l1.delete_now(key);
        }
        let announced = self.publish(InvalidationOp::Set, key).await;
        let written = written?;
        announced?;
        Ok(written)
    }

    /// Runs an L2 call that may change `key`, drops the L1 copy, and announces the change as
    /// `op`; returns L2's answer.
    async fn change<T>(
        &self,
        key: &str,
        op: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = traced!(
            self.l2_call(op, call),
            tracing::debug_span!("tiered.change", key, op)
        );
        // Whatever L2 said, the local copy can no longer be trusted.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.l1.delete_now(key)?;
        if may_have_changed_l2(&result) {
            let announced = self.publish(InvalidationOp::Delete, key).await;
            let answer = result?;
            announced?;
            return Ok(answer);
        }
        result
    }

    /// Replaces `key`'s value with `new` only if its value (without the expiry stamp) is
    /// `expected`: the stamp makes the stored bytes unknown to the caller, so they are read first,
    /// and the swap is conditional on them.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Bytes>,
        new: Option<Held>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let ttl = ttl.or(self.default_ttl);
        let current = self.l2_call("get", self.l2.get(key)).await?;
        let payload = |raw: &Bytes| unstamp(raw).map_or_else(|| raw.clone(), |(_, value)| value);
        if current.as_ref().map(payload) != expected {
            return Ok(false);
        }
        let stored = new.as_ref().map(|value| self.l2_value(&value.bytes, ttl));
        let before = self.generation.load(Ordering::SeqCst);
        let swapped = self
            .l2_call(
                "compare_and_swap",
                self.l2
                    .compare_and_swap(key, current.as_deref(), stored, ttl),
            )
            .await;
        if !may_have_changed_l2(&swapped) || matches!(swapped, Ok(false)) {
            return swapped;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        match (&swapped, &new) {
            (Ok(true), Some(value)) => self.fill_l1(key, value, ttl.unwrap_or(MAX_TTL), before + 1),
            _ => {
                let _ = self.l1.delete_now(key);
            }
        }
        let announced = self.publish(InvalidationOp::Set, key).await;
        let swapped = swapped?;
        announced?;
        Ok(swapped)
    }

    /// Writes many values to L2 in one call, then to L1, and announces each.
    async fn set_many(&self, entries: Vec<(String, Held)>, ttl: Option<Duration>) -> Result<()> {
        let ttl = ttl.or(self.default_ttl);
        let stored: Vec<(&str, Bytes)> = entries
            .iter()
            .map(|(key, value)| (key.as_str(), self.l2_value(&value.bytes, ttl)))
            .collect();
        let before = self.generation.load(Ordering::SeqCst);
        let written = self
            .l2_call("set_many", self.l2.set_many(&stored, ttl))
            .await;
        if !may_have_changed_l2(&written) {
            return written;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        for (key, value) in &entries {
            match &written {
                Ok(()) => self.fill_l1(key, value, ttl.unwrap_or(MAX_TTL), before + 1),
                Err(_) => {
                    let _ = self.l1.delete_now(key);
                }
            }
        }
        let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
        let announced = self.publish_each(InvalidationOp::Set, &keys).await;
        written?;
        announced
    }

    /// Deletes many keys from L2 in one call and from L1, and announces each.
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        let result = self.l2_call("delete_many", self.l2.delete_many(keys)).await;
        self.generation.fetch_add(1, Ordering::SeqCst);
        for key in keys {
            self.l1.delete_now(key)?;
        }
        if may_have_changed_l2(&result) {
            let announced = self.publish_each(InvalidationOp::Delete, keys).await;
            let deleted = result?;
            announced?;
            return Ok(deleted);
        }
        result
    }

    /// Announces each key in turn; the first failure is returned, after trying them all.
    async fn publish_each(&self, op: InvalidationOp, keys: &[&str]) -> Result<()> {
        let mut first_error = None;
        for key in keys {
            if let Err(e) = self.publish(op, key).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes every key starting with `prefix` from both tiers, and announces it.
    async fn clear(&self, prefix: &str) -> Result<u64> {
        let removed = traced!(
            self.l2_call("clear", self.l2.clear(prefix)),
            tracing::debug_span!("tiered.clear", prefix)
        );
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.l1.clear_now(prefix)?;
        if may_have_changed_l2(&removed) {
            let announced = self.publish(InvalidationOp::Clear, prefix).await;
            let removed = removed?;
            announced?;
            return Ok(removed);
        }
        removed
    }

    /// Deletes every key of the namespace that matches `pattern` from both tiers, and announces it.
    async fn clear_matching(&self, pattern: &str) -> Result<u64> {
        let removed = traced!(
            self.l2_call(
                "clear_matching",
                self.l2.clear_matching(&self.prefix, pattern)
            ),
            tracing::debug_span!("tiered.clear_matching", pattern)
        );
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.l1.clear_matching(&self.prefix, pattern).await?;
        if may_have_changed_l2(&removed) {
            let full = format!("{}{pattern}", crate::glob_escape(&self.prefix));
            let announced = self.publish(InvalidationOp::Match, &full).await;
            let removed = removed?;
            announced?;
            return Ok(removed);
        }
        removed
    }

    /// Announces a change. A failure is returned: the change is made, but other instances may
    /// still serve what it replaced, so the write must not report success.
    async fn publish(&self, op: InvalidationOp, key: &str) -> Result<()> {
        let Some(bus) = &self.bus else { return Ok(()) };
        let message = Invalidation::new(self.id.clone(), op, key);
        bus.publish(&message).await.map_err(|e| {
            bump(&self.stats.bus_publish_errors);
            tracing::debug!(key, error = %e.kind(), "invalidation publish failed");
            Error::new(
                e.kind(),
                format!(
                    "the change of key {} was made, but announcing it to other instances failed, \
                     so they may serve the old value until they resync or their L1 copy expires; \
                     retry the call to announce it again",
                    crate::limits::preview(key)
                ),
            )
            .with_retryable(e.is_retryable())
            .with_source(e)
        })
    }

    async fn apply(&self, event: BusEvent) {
        match event {
            BusEvent::Message(message) if message.origin == self.id => {}
            BusEvent::Message(message) => {
                bump(&self.stats.bus_messages);
                self.generation.fetch_add(1, Ordering::SeqCst);
                let result = match message.op {
                    InvalidationOp::Clear => self.l1.clear_now(&message.key).map(drop),
                    InvalidationOp::Match => {
                        self.l1.clear_matching("", &message.key).await.map(drop)
                    }
                    _ => self.l1.delete_now(&message.key).map(drop),
                };
                tracing::debug!(key = %message.key, op = ?message.op, ok = result.is_ok(), "invalidation applied");
            }
            BusEvent::Resync => {
                bump(&self.stats.bus_resyncs);
                self.generation.fetch_add(1, Ordering::SeqCst);
                let result = self.l1.clear_now(&self.prefix);
                tracing::debug!(
                    ok = result.is_ok(),
                    "bus may have lost messages: L1 cleared"
                );
            }
        }
    }
}

impl<C: Codec> TieredCache<C> {
    /// This instance's id, the `origin` of its invalidations.
    pub fn instance_id(&self) -> &str {
        &self.core.id
    }

    /// The key prefix derived from the namespace (`""` or `"{namespace}:"`).
    pub fn prefix(&self) -> &str {
        &self.core.prefix
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TieredStats {
        let s = &self.core.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let departures = self.core.l1.departures();
        TieredStats {
            l1_hits: s.l1_hits.sum(),
            l2_hits: load(&s.l2_hits),
            misses: load(&s.misses),
            loader_runs: load(&s.loader_runs),
            l2_errors: load(&s.l2_errors),
            l2_rejected: load(&s.l2_rejected),
            fail_safe_activations: load(&s.fail_safe_activations),
            bus_messages: load(&s.bus_messages),
            bus_resyncs: load(&s.bus_resyncs),
            bus_publish_errors: load(&s.bus_publish_errors),
            bus_fell_back: self.core.bus.as_ref().is_some_and(|bus| bus.fell_back()),
            l1_evictions: departures.map(|d| d.evictions),
            l1_expirations: departures.map(|d| d.expirations),
        }
    }

    /// Whether the L2 circuit breaker is open now (L2 calls are being skipped).
    pub fn is_l2_circuit_open(&self) -> bool {
        self.core.breaker.is_open(self.core.clock.now_millis())
    }

    /// Subscribes to the bus. Once this returns, invalidations are queued for the returned listener;
    /// run it (e.g. `tokio::spawn(listener.run())`) to apply them. Fails with [`ErrorKind::Config`]
    /// if the cache has no bus.
    pub async fn listen(&self) -> Result<InvalidationListener> {
        let Some(bus) = &self.core.bus else {
            return Err(Error::new(
                ErrorKind::Config,
                "this TieredCache has no invalidation bus: set TieredCacheBuilder::bus",
            ));
        };
        Ok(InvalidationListener {
            core: Arc::downgrade(&self.core),
            events: bus.subscribe().await?,
        })
    }

    /// Drops every L1 copy of this instance's namespace, and only those: L2 and the other
    /// instances are untouched. The next reads go to L2.
    pub fn clear_local(&self) -> Result<u64> {
        self.core.generation.fetch_add(1, Ordering::SeqCst);
        self.core.l1.clear_now(&self.core.prefix)
    }

    /// Reads the raw bytes of a key: L1, then L2. A miss is `Ok(None)`.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>> {
        let held = self.core.get(&self.full_key(key)?, &no_object).await?;
        Ok(held.map(|held| held.bytes))
    }

    /// Writes raw bytes to L2 and L1 and announces the change; `ttl: None` uses the default TTL.
    /// An L2 failure is returned. If the write may still have reached L2 (a timeout or a dropped
    /// connection), the L1 copy is dropped and the change is announced; otherwise L1 is left as it
    /// was.
    pub async fn set_bytes(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.core
            .set(&self.full_key(key)?, Held::bytes(value), ttl)
            .await
    }

    /// Reads a value, shared: L1, then L2. A fresh L1 copy written or loaded as a `T` by this
    /// codec is handed out as L1 keeps it, without decoding or allocating; an L2 hit is decoded
    /// once, and L1 keeps the decoded value. A miss is `Ok(None)`.
    ///
    /// The value is immutable behind its [`Arc`]: nobody can change what the cache holds.
    pub async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(hit) = self.l1_fresh::<T>(key)? {
            self.core.stats.l1_hits.add(1);
            return hit.map(Some);
        }
        // Boxed, so that the future of an L1 hit stays a few words long.
        Box::pin(self.read_through::<T>(key)).await
    }

    /// `get_shared` past L1: L2, then L1 keeps what L2 had.
    async fn read_through<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let full = self.full_key(key)?;
        let decode = |bytes: &[u8]| self.object_of::<T>(bytes);
        let held = self.core.get(&full, &decode).await?;
        held.map(|held| self.value_of(key, held)).transpose()
    }

    /// Reads a value: a clone of [`get_shared`](Self::get_shared)'s. A miss is `Ok(None)`.
    pub async fn get<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Ok(self.get_shared::<T>(key).await?.map(Arc::unwrap_or_clone))
    }

    /// Reads many values, each as [`get`](Self::get) does; one slot per key, in order.
    pub async fn get_many<T>(&self, keys: &[&str]) -> Result<Vec<Option<T>>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get::<T>(key).await?);
        }
        Ok(values)
    }

    /// Whether L2 holds `key`.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key)?;
        self.core
            .l2_call("exists", self.core.l2.exists(&full))
            .await
    }

    /// How long `key` has left in L2.
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let full = self.full_key(key)?;
        self.core.l2_call("ttl", self.core.l2.ttl(&full)).await
    }

    /// Writes a value with the default TTL to L2 and L1, and announces the change. L1 keeps it
    /// shared, for [`get_shared`](Self::get_shared) to hand out.
    pub async fn set<T>(&self, key: &str, value: &T) -> Result<()>
    where
        T: Serialize + ToShared + ?Sized,
    {
        self.set_with_optional_ttl(key, value, None).await
    }

    /// Writes a value that expires after `ttl` to L2 and L1, and announces the change.
    pub async fn set_with_ttl<T>(&self, key: &str, value: &T, ttl: Duration) -> Result<()>
    where
        T: Serialize + ToShared + ?Sized,
    {
        self.set_with_optional_ttl(key, value, Some(ttl)).await
    }

    /// Writes a value with a TTL (`None`: the default TTL) to L2 and L1, and announces the change.
    /// An L2 failure is returned, with L1 handled as by [`set_bytes`](Self::set_bytes).
    pub async fn set_with_optional_ttl<T>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()>
    where
        T: Serialize + ToShared + ?Sized,
    {
        let held = self.held(key, value, || value.to_shared())?;
        self.core.set(&self.full_key(key)?, held, ttl).await
    }

    /// Writes a shared value with the default TTL without cloning it: L1 keeps this very `Arc`.
    pub async fn set_shared<T>(&self, key: &str, value: Arc<T>) -> Result<()>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let held = self.held(key, &*value, || value.clone())?;
        self.core.set(&self.full_key(key)?, held, None).await
    }

    /// Writes a value with the default TTL only if L2 holds none for `key`; returns whether it
    /// wrote (and then announced it).
    pub async fn set_if_absent<T>(&self, key: &str, value: &T) -> Result<bool>
    where
        T: Serialize + ToShared + ?Sized,
    {
        let held = self.held(key, value, || value.to_shared())?;
        self.core
            .set_if(&self.full_key(key)?, held, None, SetCondition::IfAbsent)
            .await
    }

    /// Writes a value with the default TTL only if L2 holds one for `key`; returns whether it
    /// wrote (and then announced it).
    pub async fn set_if_present<T>(&self, key: &str, value: &T) -> Result<bool>
    where
        T: Serialize + ToShared + ?Sized,
    {
        let held = self.held(key, value, || value.to_shared())?;
        self.core
            .set_if(&self.full_key(key)?, held, None, SetCondition::IfPresent)
            .await
    }

    /// Replaces the value of `key` in L2 with `new` (`None`: deletes it) only if it is `expected`
    /// now (`None`: absent), updates L1 and announces it; returns whether it swapped. Values are
    /// compared by their encoding, as [`Cache::compare_and_swap`](crate::Cache::compare_and_swap)
    /// does. A new value gets the default TTL.
    pub async fn compare_and_swap<T>(
        &self,
        key: &str,
        expected: Option<&T>,
        new: Option<&T>,
    ) -> Result<bool>
    where
        T: Serialize + ToShared + ?Sized,
    {
        let expected = expected.map(|v| self.encode(key, v)).transpose()?;
        let new = new
            .map(|v| self.held(key, v, || v.to_shared()))
            .transpose()?;
        self.core
            .compare_and_swap(&self.full_key(key)?, expected, new, None)
            .await
    }

    /// Writes many values with the default TTL to L2 (in one call) and L1, and announces each.
    pub async fn set_many<T>(&self, entries: &[(&str, T)]) -> Result<()>
    where
        T: Serialize + ToShared,
    {
        self.set_many_with_optional_ttl(entries, None).await
    }

    /// Writes many values that expire after `ttl`, as [`set_many`](Self::set_many) does.
    pub async fn set_many_with_ttl<T>(&self, entries: &[(&str, T)], ttl: Duration) -> Result<()>
    where
        T: Serialize + ToShared,
    {
        self.set_many_with_optional_ttl(entries, Some(ttl)).await
    }

    async fn set_many_with_optional_ttl<T>(
        &self,
        entries: &[(&str, T)],
        ttl: Option<Duration>,
    ) -> Result<()>
    where
        T: Serialize + ToShared,
    {
        let held = entries
            .iter()
            .map(|(key, value)| {
                Ok((
                    self.full_key(key)?,
                    self.held(key, value, || value.to_shared())?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.core.set_many(held, ttl).await
    }

    /// Sets `key` to expire after `ttl` in L2; returns whether it exists. The L1 copies (here and,
    /// announced, elsewhere) are dropped, since they could outlive the new TTL.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let full = self.full_key(key)?;
        self.core
            .change(&full, "expire", self.core.l2.expire(&full, ttl))
            .await
    }

    /// Removes the TTL of `key` in L2; returns whether it had one. L1 copies stay: they are
    /// fresh for at most `l1_ttl` anyway.
    pub async fn persist(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key)?;
        self.core
            .l2_call("persist", self.core.l2.persist(&full))
            .await
    }

    /// Adds `delta` to a counter in L2 and returns the new value; the L1 copies are dropped and the
    /// change announced. Counters are decimal text in L2, without the expiry stamp.
    pub async fn incr_by(
        &self,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Duration>,
    ) -> Result<i64> {
        let full = self.full_key(key)?;
        self.core
            .change(
                &full,
                "incr_by",
                self.core.l2.incr_by(&full, delta, ttl_on_create),
            )
            .await
    }

    /// Deletes a key from L2 and L1, and announces it; returns whether it existed in L2. The L1 copy is
    /// dropped even if L2 fails.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key)?;
        self.core
            .change(&full, "delete", self.core.l2.delete(&full))
            .await
    }

    /// Deletes many keys from L2 (in one call) and L1, and announces each; returns how many
    /// existed in L2.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        let full = keys
            .iter()
            .map(|key| self.full_key(key))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        self.core.delete_many(&refs).await
    }

    /// Deletes every key of the namespace that starts with `prefix` from both tiers, and announces
    /// it, so that every instance drops its copies; returns how many L2 deleted.
    pub async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        let full = format!("{}{prefix}", self.core.prefix);
        self.core.clear(&full).await
    }

    /// Deletes every key of the namespace matching the glob `pattern` (Redis `MATCH` semantics,
    /// on keys without the namespace) from both tiers, and announces it, so that every instance
    /// drops its matching copies; returns how many L2 deleted. Not atomic.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.core.clear_matching(pattern).await
    }

    /// Deletes every key of the namespace (of the whole L2 store if there is no namespace) from both
    /// tiers and announces it; returns how many L2 deleted.
    pub async fn clear(&self) -> Result<u64> {
        self.core.clear(&self.core.prefix).await
    }

    /// Returns the value of `key` from L1 or L2, or runs `loader`, stores its value in both tiers (L2
    /// with `ttl`, or the default TTL) and returns it: a clone of
    /// [`get_shared_or_insert_with`](Self::get_shared_or_insert_with)'s.
    pub async fn get_or_insert_with<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.get_shared_or_insert_with(key, ttl, loader)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// Returns the value of `key`, shared, from L1 or L2, or runs `loader`, stores its value in
    /// both tiers (L2 with `ttl`, or the default TTL) and returns it.
    ///
    /// Concurrent calls for one key in this instance run one L2 read and at most one loader. If L2 is
    /// unavailable the stale L1 copy is served, or else the loader runs and its value goes to L1 only.
    /// A loader error is an [`ErrorKind::Loader`] error for every waiting caller, and nothing is cached.
    pub async fn get_shared_or_insert_with<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<Arc<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if let Some(hit) = self.l1_fresh::<T>(key)? {
            self.core.stats.l1_hits.add(1);
            return hit;
        }
        // Boxed, so that the future of an L1 hit stays a few words long.
        Box::pin(async {
            let decode = |bytes: &[u8]| self.object_of::<T>(bytes);
            let held = self
                .core
                .get_or_load(&self.full_key(key)?, ttl, &decode, || async {
                    let value = Arc::new(loader().await.map_err(|e| Error::loader_failed(key, e))?);
                    self.held(key, &*value, || value.clone())
                })
                .await?;
            self.value_of(key, held)
        })
        .await
    }

    /// A fresh L1 hit, answered without awaiting, building the key or decoding when L1 keeps a
    /// `T`: `None` on a miss or a stale copy (the full path decides what to serve).
    fn l1_fresh<T>(&self, key: &str) -> Result<Option<Result<Arc<T>>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if key.is_empty() {
            return Err(crate::codec::empty_key());
        }
        let core = &self.core;
        let mut found = None;
        core.l1
            .read_now(PrefixedKey::new(&core.prefix, key), &mut |entry, object| {
                let value = if core.grace.is_zero() {
                    entry
                } else {
                    let Some((header, value)) = entry.split_first_chunk::<HEADER>() else {
                        return;
                    };
                    if core.clock.now_millis() >= u64::from_le_bytes(*header) {
                        return;
                    }
                    value
                };
                found = Some(match object.and_then(|o| o.downcast::<T>(C::NAME)) {
                    Some(shared) => Ok(shared),
                    None => self.decode::<T>(key, value).map(Arc::new),
                });
            })?;
        Ok(found)
    }

    /// The decoded value of an L2 hit, for L1 to keep; `None` if the bytes are not a `T`.
    fn object_of<T>(&self, bytes: &[u8]) -> Option<SharedObject>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let value = self.codec.decode::<T>(bytes).ok()?;
        Some(SharedObject::new(Arc::new(value), C::NAME))
    }

    /// The value of a held value: its object if that is a `T`, else its bytes decoded.
    fn value_of<T>(&self, key: &str, held: Held) -> Result<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        match held.object.and_then(|o| o.downcast::<T>(C::NAME)) {
            Some(value) => Ok(value),
            None => self.decode(key, &held.bytes).map(Arc::new),
        }
    }

    /// `value` encoded, with the shared object `object` makes for L1.
    fn held<T, O>(&self, key: &str, value: &T, object: impl FnOnce() -> Arc<O>) -> Result<Held>
    where
        T: Serialize + ?Sized,
        O: std::any::Any + Send + Sync,
    {
        Ok(Held {
            bytes: self.encode(key, value)?,
            object: Some(SharedObject::new(object(), C::NAME)),
        })
    }

    fn full_key(&self, key: &str) -> Result<String> {
        crate::codec::prefixed(&self.core.prefix, key)
    }

    fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Bytes> {
        crate::codec::encode_for(&*self.codec, key, value)
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T> {
        crate::codec::decode_for(&*self.codec, key, bytes)
    }
}
