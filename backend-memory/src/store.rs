//! [`MemoryStore`]: a direct synchronous API, and the [`CacheStore`] implementation on top of it.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    CacheStore, Capabilities, Clock, Error, ErrorKind, KeyTtl, Limits, LocalStore, PrefixedKey,
    Result, ScanCursor, ScanPage, SetCondition, SetOptions, SharedObject, opt_ttl_millis,
    ttl_millis,
};
use crossbeam_utils::CachePadded;
use hashbrown::DefaultHashBuilder;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::MemoryConfig;
use crate::collections::{Collection, Kind, Slot};
use crate::shard::{Entry, NEVER, Now, Removal, Shard, Value, wrong_type};

/// How many expired entries a write may reclaim on the side.
const EXPIRY_BUDGET_PER_WRITE: usize = 16;

/// A bounded, concurrent, in-memory [`CacheStore`] with per-entry TTL and S3-FIFO eviction.
///
/// Cloning is cheap: clones share the same entries. Every operation is available both as a direct,
/// synchronous method (used by the wasm binding and hot paths) and through the async [`CacheStore`]
/// trait.
///
/// ```
/// use backend_memory::MemoryStore;
/// use cache_core::SetOptions;
/// use std::time::Duration;
///
/// let store = MemoryStore::builder().max_entries(1_000).max_bytes(1 << 20).build()?;
/// store.set("greeting", "hello", SetOptions::new().ttl(Duration::from_secs(60)))?;
/// assert_eq!(store.get("greeting")?.as_deref(), Some(&b"hello"[..]));
/// # Ok::<_, cache_core::Error>(())
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[CachePadded<ShardCell>]>,
    hasher: DefaultHashBuilder,
    shard_bits: u32,
    clock: Arc<dyn Clock>,
    limits: Limits,
    shard_max_bytes: usize,
    config: MemoryConfig,
}

struct ShardCell {
    shard: RwLock<Shard>,
    /// On a cache line of their own: every read bumps one, and the lock word is contended enough.
    hits: CachePadded<AtomicU64>,
    misses: CachePadded<AtomicU64>,
}

/// A snapshot of a [`MemoryStore`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Reads that found a live entry; 0 unless the store was built with
    /// [`count_hits_and_misses`](MemoryStoreBuilder::count_hits_and_misses).
    pub hits: u64,
    /// Reads that found nothing (or an expired entry); 0 unless counted, as `hits`.
    pub misses: u64,
    /// Live entries removed to respect `max_entries` or `max_bytes`.
    pub evictions: u64,
    /// Entries removed because their TTL passed.
    pub expirations: u64,
    /// Entries held now (including expired ones not yet reclaimed).
    pub entries: u64,
    /// Bytes held now: keys plus values.
    pub bytes: u64,
}

/// Builds a [`MemoryStore`]; see [`MemoryConfig`] for the defaults.
#[derive(Debug, Default)]
#[must_use]
pub struct MemoryStoreBuilder {
    config: MemoryConfig,
}

impl MemoryStoreBuilder {
    /// Most entries held at once, across all shards: each shard holds at most its share, and the
    /// shares add up to `n`.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.config.max_entries = n;
        self
    }

    /// Most bytes (keys plus values) held at once, across all shards: each shard holds at most its
    /// share, and the shares add up to `n`. One entry must fit in the smallest share, which also caps
    /// [`CacheStore::limits`].
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.config.max_bytes = n;
        self
    }

    /// Key and value limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// The clock that TTLs are measured against.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// Number of lock shards (a power of two, at most 1024). A store never uses more shards than
    /// `max_entries` or `max_bytes`, so that no shard gets a share of zero: with
    /// `max_entries(3).shards(8)` it uses 2 (the largest power of two within the bounds).
    pub fn shards(mut self, n: usize) -> Self {
        self.config.shards = Some(n);
        self
    }

    /// Counts hits and misses in [`MemoryStats`] (off by default; see
    /// [`MemoryConfig::count_hits_and_misses`]).
    pub fn count_hits_and_misses(mut self, on: bool) -> Self {
        self.config.count_hits_and_misses = on;
        self
    }

    /// Builds the store, or explains which setting is invalid.
    pub fn build(self) -> Result<MemoryStore> {
        MemoryStore::with_config(self.config)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.inner.config.max_entries)
            .field("max_bytes", &self.inner.config.max_bytes)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store with the default [`MemoryConfig`] (10 000 entries, 64 MiB).
    pub fn new() -> Self {
        MemoryStore::with_config(MemoryConfig::default()).expect("the default config is valid")
    }

    /// A builder with the default settings.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// A store with `config`, or an [`ErrorKind::Config`] error naming the invalid setting.
    pub fn with_config(config: MemoryConfig) -> Result<Self> {
        config.validate()?;
        // No more shards than either bound (both are at least 1), so that every share is at least 1.
        let fewest = config.max_entries.min(config.max_bytes);
        let n = floor_power_of_two(config.shard_count().min(fewest));
        // Each shard gets the floor of its share, and the first ones the remainder, one each: the
        // shards' bounds add up to the store's exactly.
        let share = |total: usize, i: usize| total / n + usize::from(i < total % n);
        let shards = (0..n)
            .map(|i| {
                let shard = Shard::new(share(config.max_entries, i), share(config.max_bytes, i));
                CachePadded::new(ShardCell {
                    shard: RwLock::new(shard),
                    hits: CachePadded::new(AtomicU64::new(0)),
                    misses: CachePadded::new(AtomicU64::new(0)),
                })
            })
            .collect();
        // The smallest share: an entry must fit whichever shard its key falls in. The engine
        // charges an entry at most 4 GiB.
        let shard_max_bytes = (config.max_bytes / n).min(u32::MAX as usize);
        // An entry (key plus value) must fit in one shard. Advertise limits that fit together, so that
        // a key of `max_key_len` with a value of `max_value_len` is accepted: the key gets at most half
        // the shard in tiny stores (at least 1 byte), the value what is left.
        let mut limits = config.limits;
        let key_room = limits.max_key_len.min((shard_max_bytes / 2).max(1));
        limits.max_key_len = key_room;
        limits.max_value_len = limits.max_value_len.min(shard_max_bytes - key_room);
        Ok(MemoryStore {
            inner: Arc::new(Inner {
                shards,
                hasher: DefaultHashBuilder::default(),
                shard_bits: n.trailing_zeros(),
                clock: config.clock.clone(),
                limits,
                shard_max_bytes,
                config,
            }),
        })
    }

    /// The settings this store was built with.
    pub fn config(&self) -> &MemoryConfig {
        &self.inner.config
    }

    /// Reads a key; `None` if it is missing or expired.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.read_value(key, |entry| {
            entry.value_bytes().ok_or_else(|| string_wrong_type(key))
        })?
        .transpose()
    }

    /// Reads a key without copying its value out: runs `f` on the value (under the shard's read
    /// lock, so keep it short and do not call back into the store), and returns what `f` returns;
    /// `None` if the key is missing or expired. Counts as a hit or a miss like [`get`](Self::get).
    ///
    /// ```
    /// # let store = backend_memory::MemoryStore::new();
    /// store.set("k", "hello", cache_core::SetOptions::new())?;
    /// assert_eq!(store.get_with("k", |v| v.len())?, Some(5));
    /// # Ok::<_, cache_core::Error>(())
    /// ```
    pub fn get_with<R>(&self, key: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.read_value(key, |entry| entry.value().map(f))?
            .map(|found| found.ok_or_else(|| string_wrong_type(key)))
            .transpose()
    }

    fn read_value<R>(&self, key: &str, f: impl FnOnce(&Entry) -> R) -> Result<Option<R>> {
        self.inner.limits.check_key(key)?;
        self.read_checked(key.as_bytes(), f)
    }

    /// [`read_value`](Self::read_value) of a key (valid UTF-8) whose length was checked.
    #[inline]
    fn read_checked<R>(&self, key: &[u8], f: impl FnOnce(&Entry) -> R) -> Result<Option<R>> {
        let (hash, cell) = self.locate_bytes(key);
        let now = self.now();
        {
            let shard = cell.shard.read();
            match shard.find_bytes(hash, key) {
                Some(entry) if shard.is_live(entry, &now) => {
                    shard.touch(entry);
                    self.count(&cell.hits);
                    return Ok(Some(f(entry)));
                }
                Some(_) => {}
                None => {
                    self.count(&cell.misses);
                    return Ok(None);
                }
            }
        }
        // Expired: reclaim it now rather than at the next write.
        self.count(&cell.misses);
        let mut shard = cell.shard.write();
        if let Ok(key) = std::str::from_utf8(key) {
            shard.find_live_mut(hash, key, &now);
        }
        Ok(None)
    }

    fn count(&self, counter: &AtomicU64) {
        if self.inner.config.count_hits_and_misses {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads many keys; one slot per key, in order. A collection reads as `None`, as Redis `MGET`
    /// reads it.
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        for key in keys {
            self.inner.limits.check_key(key)?;
        }
        keys.iter()
            .map(|key| {
                let found = self.read_value(key, Entry::value_bytes)?;
                Ok(found.flatten())
            })
            .collect()
    }

    /// Runs `f` on the live collection of `kind` at `key` (a read: it counts as one); `None` if
    /// absent; [`ErrorKind::WrongType`] if the key holds something else.
    pub(crate) fn read<R>(
        &self,
        key: &str,
        kind: Kind,
        f: impl FnOnce(&Collection) -> R,
    ) -> Result<Option<R>> {
        self.read_value(key, |entry| match entry.collection() {
            Some(c) if c.kind() == kind => Ok(f(c)),
            _ => Err(wrong_type(key, kind)),
        })?
        .transpose()
    }

    /// A change that may create the collection of `kind` at `key` (empty, then filled by `op`).
    pub(crate) fn write<R>(
        &self,
        key: &str,
        kind: Kind,
        op: impl FnOnce(Slot<'_>) -> Result<R>,
    ) -> Result<Option<R>> {
        self.change(key, kind, true, op)
    }

    /// A change of the collection of `kind` at `key` that never creates it: `None` if absent.
    pub(crate) fn update<R>(
        &self,
        key: &str,
        kind: Kind,
        op: impl FnOnce(Slot<'_>) -> Result<R>,
    ) -> Result<Option<R>> {
        self.change(key, kind, false, op)
    }

    pub(crate) fn collection_args(&self) -> cache_core::CollectionArgs<'_> {
        cache_core::CollectionArgs::new(&self.inner.limits)
    }

    fn change<R>(
        &self,
        key: &str,
        kind: Kind,
        create: bool,
        op: impl FnOnce(Slot<'_>) -> Result<R>,
    ) -> Result<Option<R>> {
        self.inner.limits.check_key(key)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let mut shard = cell.shard.write();
        let room = self.inner.shard_max_bytes;
        let result = shard.collection_op(hash, key, kind, create, room, &now, op);
        Self::reclaim_expired(&mut shard, &now);
        result
    }

    /// Writes a key; returns whether the condition let it write. See [`CacheStore::set`].
    pub fn set(&self, key: &str, value: impl Into<Bytes>, options: SetOptions) -> Result<bool> {
        self.set_value(key, Value::Shared(value.into()), options)
    }

    /// Like [`set`](Self::set), but copies `value` in, next to the key in one allocation. Cheaper
    /// than building a [`Bytes`] for it when the caller has a borrowed slice (the wasm binding);
    /// [`get`](Self::get) then returns a copy, while [`get_with`](Self::get_with) borrows it.
    pub fn set_slice(&self, key: &str, value: &[u8], options: SetOptions) -> Result<bool> {
        self.set_value(key, Value::Slice(value), options)
    }

    /// Like [`set`](Self::set), but charges the entry `weight` bytes for its value (against
    /// `max_bytes`, the value limit, [`bytes`](Self::bytes) and [`stats`](Self::stats)) instead of
    /// `value.len()`. For callers that keep the real data elsewhere and store a small handle to it:
    /// the wasm binding keeps values in the JS heap and stores their slot numbers here.
    ///
    /// The store drops its `value` when the entry leaves for any reason (evicted, expired, deleted,
    /// cleared, overwritten) or when a write is refused, and holds no other reference to it; a
    /// value made with [`Bytes::from_owner`] can tell its owner when the entry is gone. Values read
    /// with [`get`](Self::get) are clones that keep it alive until they are dropped too.
    ///
    /// ```
    /// # let store = backend_memory::MemoryStore::new();
    /// use bytes::Bytes;
    /// store.set_weighted("k", Bytes::from_static(b"#7"), 1_000, cache_core::SetOptions::new())?;
    /// assert_eq!(store.bytes(), 1 + 1_000);
    /// assert_eq!(store.get("k")?.as_deref(), Some(&b"#7"[..]));
    /// # Ok::<_, cache_core::Error>(())
    /// ```
    pub fn set_weighted(
        &self,
        key: &str,
        value: Bytes,
        weight: usize,
        options: SetOptions,
    ) -> Result<bool> {
        self.set_value(key, Value::Weighted(value, weight), options)
    }

    fn set_value(&self, key: &str, value: Value<'_>, options: SetOptions) -> Result<bool> {
        self.check_entry(key, value.len())?;
        let ttl = opt_ttl_millis(options.ttl)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let mut shard = cell.shard.write();
        let exists = |shard: &Shard| {
            shard
                .find(hash, key)
                .is_some_and(|e| shard.is_live(e, &now))
        };
        let allowed = match options.condition {
            SetCondition::IfAbsent => !exists(&shard),
            SetCondition::IfPresent => exists(&shard),
            // `upsert` probes for the key itself.
            _ => true,
        };
        if allowed {
            let expires_at = ttl.map_or(NEVER, |ms| now.get().saturating_add(ms));
            shard.upsert(hash, key, value, expires_at, &now);
        }
        Self::reclaim_expired(&mut shard, &now);
        Ok(allowed)
    }

    /// Writes many keys with one optional TTL; validates all of them first.
    pub fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.check_entry(key, value.len())?;
        }
        opt_ttl_millis(ttl)?;
        for (key, value) in entries {
            self.set(key, value.clone(), SetOptions::new().maybe_ttl(ttl))?;
        }
        Ok(())
    }

    /// Deletes a key; returns whether it existed (and had not expired).
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.inner.limits.check_key(key)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let mut shard = cell.shard.write();
        Ok(shard.delete(hash, key, &now))
    }

    /// Deletes many keys; returns how many existed.
    pub fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        for key in keys {
            self.inner.limits.check_key(key)?;
        }
        let mut existed = 0;
        for key in keys {
            existed += u64::from(self.delete(key)?);
        }
        Ok(existed)
    }

    /// Whether a key exists and has not expired.
    pub fn exists(&self, key: &str) -> Result<bool> {
        self.inner.limits.check_key(key)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let shard = cell.shard.read();
        Ok(shard
            .find(hash, key)
            .is_some_and(|e| shard.is_live(e, &now)))
    }

    /// The remaining lifetime of a key.
    pub fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.inner.limits.check_key(key)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let shard = cell.shard.read();
        Ok(match shard.find(hash, key) {
            Some(e) if shard.is_live(e, &now) => match shard.expires_at(e) {
                NEVER => KeyTtl::Persistent,
                at => KeyTtl::ExpiresIn(Duration::from_millis(at - now.get())),
            },
            _ => KeyTtl::Missing,
        })
    }

    /// Sets a key's TTL; returns `false` if the key is missing.
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.inner.limits.check_key(key)?;
        let ms = ttl_millis(ttl)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let mut shard = cell.shard.write();
        let expires_at = now.get().saturating_add(ms);
        Ok(shard.set_expiry(hash, key, expires_at, &now))
    }

    /// Removes a key's TTL; returns `true` only if it existed and had one.
    pub fn persist(&self, key: &str) -> Result<bool> {
        self.inner.limits.check_key(key)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let mut shard = cell.shard.write();
        let live = shard.find_live_mut(hash, key, &now).is_some();
        let had_ttl = live
            && shard
                .find(hash, key)
                .is_some_and(|e| shard.expires_at(e) != NEVER);
        if had_ttl {
            shard.set_expiry(hash, key, NEVER, &now);
        }
        Ok(had_ttl)
    }

    /// Adds `delta` to a decimal counter and returns the new value. See [`CacheStore::incr_by`].
    pub fn incr_by(&self, key: &str, delta: i64, ttl_on_create: Option<Duration>) -> Result<i64> {
        self.inner.limits.check_key(key)?;
        let ttl = opt_ttl_millis(ttl_on_create)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let mut shard = cell.shard.write();
        let (current, expires_at) = match shard.find_live_mut(hash, key, &now) {
            Some(entry) => {
                let value = entry.value().ok_or_else(|| string_wrong_type(key))?;
                let current = parse_counter(key, value)?;
                let entry = shard.find(hash, key).expect("found just above");
                (current, shard.expires_at(entry))
            }
            None => (0, ttl.map_or(NEVER, |ms| now.get().saturating_add(ms))),
        };
        let next = current.checked_add(delta).ok_or_else(|| {
            Error::new(
                ErrorKind::Overflow,
                format!("incrementing counter {key:?} ({current}) by {delta} overflows an i64"),
            )
        })?;
        let text = next.to_string();
        // A longer counter must fit the shard like any other value.
        self.check_entry(key, text.len())?;
        shard.upsert(hash, key, Value::Slice(text.as_bytes()), expires_at, &now);
        Self::reclaim_expired(&mut shard, &now);
        Ok(next)
    }

    /// Replaces (or, with `new: None`, deletes) a value only if it currently equals `expected`
    /// (`None`: absent). See [`CacheStore::compare_and_swap`].
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.check_entry(key, new.as_ref().map_or(0, Bytes::len))?;
        let ttl = opt_ttl_millis(ttl)?;
        let (hash, cell) = self.locate(key);
        let now = self.now();
        let mut shard = cell.shard.write();
        let current = match shard.find_live_mut(hash, key, &now) {
            Some(entry) => Some(entry.value().ok_or_else(|| string_wrong_type(key))?),
            None => None,
        };
        if current != expected {
            return Ok(false);
        }
        match new {
            Some(value) => {
                let expires_at = ttl.map_or(NEVER, |ms| now.get().saturating_add(ms));
                shard.upsert(hash, key, Value::Shared(value), expires_at, &now);
            }
            None => {
                shard.remove(hash, key, Removal::Deleted);
            }
        }
        Self::reclaim_expired(&mut shard, &now);
        Ok(true)
    }

    /// One page of the keys that start with `prefix`. The cursor walks the shards in order and, within
    /// a shard, the keys in sorted order, so every key present for the whole scan is returned exactly
    /// once; each call looks at one shard only.
    pub fn scan(&self, prefix: &str, cursor: &ScanCursor, count: usize) -> Result<ScanPage> {
        let (index, after) = self.parse_cursor(cursor)?;
        let count = count.max(1);
        let now = self.now();
        let keys = self.inner.shards[index]
            .shard
            .read()
            .keys_after(prefix, after, count, &now);
        let next = if keys.len() >= count {
            Some(ScanCursor::from_backend(format!(
                "{index}:{}",
                keys[keys.len() - 1]
            )))
        } else if index + 1 < self.inner.shards.len() {
            Some(ScanCursor::from_backend(format!("{}:", index + 1)))
        } else {
            None
        };
        Ok(ScanPage { keys, next })
    }

    /// Deletes every key that starts with `prefix` (all keys for `""`); returns how many it deleted.
    pub fn clear(&self, prefix: &str) -> u64 {
        let now = self.now();
        self.inner
            .shards
            .iter()
            .map(|cell| cell.shard.write().remove_prefix(prefix, &now))
            .sum()
    }

    /// Reclaims every expired entry now. Expired entries are otherwise reclaimed lazily: when read,
    /// and a few at a time by every write.
    pub fn purge_expired(&self) {
        let now = self.now();
        for cell in self.inner.shards.iter() {
            while cell.shard.write().purge_expired(&now, 1024) {}
        }
    }

    /// Entries held now (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|c| c.shard.read().len()).sum()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held now: keys plus values.
    pub fn bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|c| c.shard.read().bytes())
            .sum()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MemoryStats {
        let mut stats = MemoryStats::default();
        for cell in self.inner.shards.iter() {
            stats.hits += cell.hits.load(Ordering::Relaxed);
            stats.misses += cell.misses.load(Ordering::Relaxed);
            let shard = cell.shard.read();
            stats.evictions += shard.departures().evicted;
            stats.expirations += shard.departures().expired;
            stats.entries += shard.len() as u64;
            stats.bytes += shard.bytes() as u64;
        }
        stats
    }

    fn now(&self) -> Now<'_> {
        Now::new(&*self.inner.clock)
    }

    fn locate(&self, key: &str) -> (u64, &ShardCell) {
        self.locate_bytes(key.as_bytes())
    }

    /// Keys are hashed as bytes, so that a key joined from parts in a byte buffer needs no UTF-8
    /// check to be found.
    #[inline]
    fn locate_bytes(&self, key: &[u8]) -> (u64, &ShardCell) {
        let hash = self.inner.hasher.hash_one(key);
        // Bits 32.. pick the shard: hashbrown uses the low bits for buckets and the top 7 as tags.
        let index = if self.inner.shard_bits == 0 {
            0
        } else {
            (hash >> 32) as usize & ((1 << self.inner.shard_bits) - 1)
        };
        (hash, &self.inner.shards[index])
    }

    #[inline]
    fn check_entry(&self, key: &str, value_len: usize) -> Result<()> {
        self.inner.limits.check_entry(key, value_len)?;
        // Checked: a weight can be near `usize::MAX` (4 GiB on wasm32).
        let size = key.len().checked_add(value_len);
        if size.is_none_or(|size| size > self.inner.shard_max_bytes)
            || u32::try_from(key.len()).is_err()
        {
            return Err(self.entry_too_large(key, value_len));
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn entry_too_large(&self, key: &str, value_len: usize) -> Error {
        if u32::try_from(key.len()).is_err() {
            return Error::new(
                ErrorKind::InvalidKey,
                format!("key is {} bytes, more than 4 GiB", key.len()),
            );
        }
        Error::new(
            ErrorKind::ValueTooLarge,
            format!(
                "entry for key {key:?} is {} bytes (key plus value), more than one shard's share of max_bytes ({})",
                key.len().saturating_add(value_len),
                self.inner.shard_max_bytes
            ),
        )
    }

    fn parse_cursor<'c>(&self, cursor: &'c ScanCursor) -> Result<(usize, &'c str)> {
        if cursor.is_start() {
            return Ok((0, ""));
        }
        let invalid = || {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid scan cursor {:?}", cursor.as_str()),
            )
        };
        let (index, after) = cursor.as_str().split_once(':').ok_or_else(invalid)?;
        let index: usize = index.parse().map_err(|_| invalid())?;
        if index >= self.inner.shards.len() {
            return Err(invalid());
        }
        Ok((index, after))
    }

    fn reclaim_expired(shard: &mut RwLockWriteGuard<'_, Shard>, now: &Now<'_>) {
        if shard.has_due_expiry(now) {
            shard.purge_expired(now, EXPIRY_BUDGET_PER_WRITE);
        }
    }
}

/// The error of a string operation on a collection.
fn string_wrong_type(key: &str) -> Error {
    Error::new(
        ErrorKind::WrongType,
        format!("key {key:?} holds a collection, not a string value"),
    )
}

/// The largest power of two at most `n` (which is at least 1).
fn floor_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

/// Parses a counter as Redis does: optional `-`, decimal digits, no `+`, spaces or leading zeros.
fn parse_counter(key: &str, value: &[u8]) -> Result<i64> {
    let not_integer = || {
        Error::new(
            ErrorKind::NotAnInteger,
            format!("the value at key {key:?} is not a decimal i64 counter"),
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| not_integer())?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return Err(not_integer());
    }
    text.parse().map_err(|_| not_integer())
}

#[async_trait]
impl CacheStore for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCAL_BOUNDED
    }

    fn limits(&self) -> Limits {
        self.inner.limits
    }

    fn collections(&self) -> Option<&dyn cache_core::CollectionStore> {
        Some(self)
    }

    fn as_local(&self) -> Option<&dyn LocalStore> {
        Some(self)
    }

    fn departures(&self) -> Option<cache_core::Departures> {
        let stats = self.stats();
        Some(cache_core::Departures::new(
            stats.evictions,
            stats.expirations,
        ))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        MemoryStore::get(self, key)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        MemoryStore::get_many(self, keys)
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<bool> {
        MemoryStore::set(self, key, value, options)
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        MemoryStore::set_many(self, entries, ttl)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        MemoryStore::delete(self, key)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        MemoryStore::delete_many(self, keys)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        MemoryStore::exists(self, key)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        MemoryStore::ttl(self, key)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        MemoryStore::expire(self, key, ttl)
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        MemoryStore::persist(self, key)
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl_on_create: Option<Duration>) -> Result<i64> {
        MemoryStore::incr_by(self, key, delta, ttl_on_create)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        MemoryStore::compare_and_swap(self, key, expected, new, ttl)
    }

    async fn scan(&self, prefix: &str, cursor: ScanCursor, count: usize) -> Result<ScanPage> {
        MemoryStore::scan(self, prefix, &cursor, count)
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        Ok(MemoryStore::clear(self, prefix))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

impl MemoryStore {
    /// [`LocalStore::read_now`] of a joined key (valid UTF-8: two strings end to end).
    #[inline]
    fn read_joined(
        &self,
        full: &[u8],
        read: &mut dyn FnMut(&[u8], Option<&SharedObject>),
    ) -> Result<bool> {
        if full.is_empty() || full.len() > self.inner.limits.max_key_len {
            return Err(self
                .inner
                .limits
                .check_key(&String::from_utf8_lossy(full))
                .unwrap_err());
        }
        let found = self.read_checked(full, |entry| match entry.value() {
            Some(bytes) => {
                read(bytes, entry.object());
                true
            }
            None => false,
        })?;
        match found {
            Some(false) => Err(string_wrong_type(&String::from_utf8_lossy(full))),
            found => Ok(found.is_some()),
        }
    }
}

/// The same direct methods, for a [`TieredCache`](cache_core::TieredCache)'s L1.
impl LocalStore for MemoryStore {
    fn get_now(&self, key: &str) -> Result<Option<Bytes>> {
        MemoryStore::get(self, key)
    }

    fn set_now(&self, key: &str, value: Bytes, options: SetOptions) -> Result<bool> {
        MemoryStore::set(self, key, value, options)
    }

    fn delete_now(&self, key: &str) -> Result<bool> {
        MemoryStore::delete(self, key)
    }

    fn clear_now(&self, prefix: &str) -> Result<u64> {
        Ok(MemoryStore::clear(self, prefix))
    }

    fn read_now(
        &self,
        key: PrefixedKey<'_>,
        read: &mut dyn FnMut(&[u8], Option<&SharedObject>),
    ) -> Result<bool> {
        key.with_joined_bytes(|full| self.read_joined(full, read))
    }

    fn set_shared_now(
        &self,
        key: PrefixedKey<'_>,
        bytes: Bytes,
        object: SharedObject,
        options: SetOptions,
    ) -> Result<bool> {
        key.with_joined(|full| {
            // The value limit is the bytes'; an entry too large to carry its object as well keeps
            // the bytes alone.
            self.check_entry(full, bytes.len())?;
            let value = if self.check_entry(full, bytes.len() * 2).is_ok() {
                Value::Object(bytes, object)
            } else {
                Value::Shared(bytes)
            };
            self.set_value(full, value, options)
        })
    }
}

#[cfg(feature = "metrics")]
impl cache_core::metrics::ReportMetrics for MemoryStore {
    fn report_metrics(&self, name: &str) {
        use cache_core::metrics::{
            CACHE_BYTES, CACHE_ENTRIES, CACHE_EVICTIONS, CACHE_EXPIRATIONS, CACHE_HITS,
            CACHE_MISSES, set_counter, set_gauge,
        };
        let stats = self.stats();
        set_counter(CACHE_EVICTIONS, name, stats.evictions);
        set_counter(CACHE_EXPIRATIONS, name, stats.expirations);
        set_gauge(CACHE_ENTRIES, name, stats.entries as f64);
        set_gauge(CACHE_BYTES, name, stats.bytes as f64);
        if stats.hits + stats.misses > 0 {
            set_counter(CACHE_HITS, name, stats.hits);
            set_counter(CACHE_MISSES, name, stats.misses);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_like_redis() {
        for ok in [
            "0",
            "-1",
            "42",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert!(parse_counter("k", ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-",
            "+1",
            " 1",
            "01",
            "-0",
            "1.5",
            "abc",
            "9223372036854775808",
        ] {
            assert_eq!(
                parse_counter("k", bad.as_bytes()).unwrap_err().kind(),
                ErrorKind::NotAnInteger,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_value_of_max_value_len_fits_with_a_key_of_max_key_len() {
        let store = MemoryStore::builder()
            .max_entries(100)
            .max_bytes(64 * 1024)
            .shards(2)
            .build()
            .unwrap();
        let limits = CacheStore::limits(&store);
        assert!(limits.max_value_len < 32 * 1024);
        let key = "k".repeat(limits.max_key_len);
        store
            .set(&key, vec![1u8; limits.max_value_len], SetOptions::new())
            .expect("a value of max_value_len under a key of max_key_len must be accepted");
        let err = store
            .set(&key, vec![1u8; limits.max_value_len + 1], SetOptions::new())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueTooLarge);
    }

    #[test]
    fn writes_reclaim_expired_entries_in_expiry_order_whatever_the_write_order() {
        let clock = cache_core::ManualClock::new();
        let store = MemoryStore::builder()
            .shards(1)
            .clock(clock.clone())
            .build()
            .unwrap();
        // Expiries in seconds, written out of order: some go to the in-order FIFO, some to the heap.
        let ttls = [5u64, 9, 2, 7, 7, 1, 12, 3, 10, 4];
        for (i, secs) in ttls.iter().enumerate() {
            let ttl = Duration::from_secs(*secs);
            store
                .set(&format!("k{i}"), "v", SetOptions::new().ttl(ttl))
                .unwrap();
        }
        for second in 1..=12 {
            clock.advance(Duration::from_secs(1));
            // A write to another key reclaims what has come due (up to its budget of 16).
            store.set("writer", "v", SetOptions::new()).unwrap();
            let expired = ttls.iter().filter(|&&t| t <= second).count() as u64;
            let stats = store.stats();
            assert_eq!(stats.expirations, expired, "at {second}s");
            assert_eq!(
                stats.entries,
                1 + ttls.len() as u64 - expired,
                "at {second}s"
            );
        }
    }

    #[test]
    fn hits_and_misses_are_counted_only_when_asked() {
        for counted in [false, true] {
            let store = MemoryStore::builder()
                .count_hits_and_misses(counted)
                .build()
                .unwrap();
            store.set("k", "v", SetOptions::new()).unwrap();
            for key in ["k", "k", "missing"] {
                store.get(key).unwrap();
            }
            store.get_with("k", |_| ()).unwrap();
            let stats = store.stats();
            let (hits, misses) = if counted { (3, 1) } else { (0, 0) };
            assert_eq!(
                (stats.hits, stats.misses),
                (hits, misses),
                "counted: {counted}"
            );
        }
    }

    /// A handle value that records its number in `freed` when the store drops it.
    fn handle(n: u8, freed: &Arc<std::sync::Mutex<Vec<u8>>>) -> Bytes {
        struct Handle([u8; 1], Arc<std::sync::Mutex<Vec<u8>>>);
        impl AsRef<[u8]> for Handle {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl Drop for Handle {
            fn drop(&mut self) {
                self.1.lock().unwrap().push(self.0[0]);
            }
        }
        Bytes::from_owner(Handle([n], freed.clone()))
    }

    #[test]
    fn weighted_values_are_charged_their_weight_and_dropped_when_they_leave() {
        let clock = cache_core::ManualClock::new();
        let store = MemoryStore::builder()
            .max_entries(100)
            .max_bytes(1_000)
            .shards(1)
            .clock(clock.clone())
            .build()
            .unwrap();
        let freed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let taken = || std::mem::take(&mut *freed.lock().unwrap());
        let set = |key: &str, n: u8, weight: usize| {
            store.set_weighted(key, handle(n, &freed), weight, SetOptions::new())
        };

        set("a", 1, 300).unwrap();
        assert_eq!(store.bytes(), 301);
        assert_eq!(store.stats().bytes, 301);
        assert_eq!(store.get_with("a", <[u8]>::to_vec).unwrap(), Some(vec![1]));
        // Overwritten by another weighted value, then by a plain one.
        set("a", 2, 200).unwrap();
        assert_eq!((taken(), store.bytes()), (vec![1], 201));
        store.set_slice("a", b"xyz", SetOptions::new()).unwrap();
        assert_eq!((taken(), store.bytes()), (vec![2], 4));
        set("a", 3, 100).unwrap();
        store
            .set("a", Bytes::from_static(b"shared"), SetOptions::new())
            .unwrap();
        assert_eq!((taken(), store.bytes()), (vec![3], 7));
        // The weight, not the 1-byte handle, counts against max_bytes: the third 400 evicts one.
        store.delete("a").unwrap();
        for (i, key) in ["b", "c", "d"].into_iter().enumerate() {
            set(key, 10 + i as u8, 400).unwrap();
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.bytes(), 802);
        assert_eq!(taken(), vec![10]);
        assert_eq!(store.stats().evictions, 1);
        // Refused: heavier than the value limit. Deleted, expired, cleared.
        assert_eq!(
            set("e", 20, 5_000).unwrap_err().kind(),
            ErrorKind::ValueTooLarge
        );
        assert_eq!(taken(), vec![20]);
        assert!(store.delete("c").unwrap());
        assert_eq!(taken(), vec![11]);
        store
            .set_weighted(
                "t",
                handle(30, &freed),
                10,
                SetOptions::new().ttl(Duration::from_secs(1)),
            )
            .unwrap();
        clock.advance(Duration::from_secs(2));
        store.purge_expired();
        assert_eq!(taken(), vec![30]);
        assert_eq!(store.clear(""), 1);
        assert_eq!(taken(), vec![12]);
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn weights_of_every_width_are_charged_exactly() {
        let store = MemoryStore::builder()
            .max_entries(10)
            .max_bytes(1 << 30)
            .shards(1)
            .build()
            .unwrap();
        let mut total = 0;
        for (i, weight) in [0, 1, 255, 256, 65_535, 65_536, (1 << 24) + 3, 60 << 20]
            .into_iter()
            .enumerate()
        {
            let key = format!("w{i}");
            let value = Bytes::from_static(b"h");
            store
                .set_weighted(&key, value, weight, SetOptions::new())
                .unwrap();
            total += key.len() + weight;
            assert_eq!(store.bytes(), total, "weight {weight}");
        }
        // Overwriting swaps one weight for another; deleting gives it back.
        store
            .set_weighted("w0", Bytes::new(), 70_000, SetOptions::new())
            .unwrap();
        total += 70_000;
        assert_eq!(store.bytes(), total);
        store.delete("w0").unwrap();
        assert_eq!(store.bytes(), total - 2 - 70_000);
    }

    #[test]
    fn slice_and_shared_values_mix_under_one_key() {
        let store = MemoryStore::builder()
            .max_entries(10)
            .shards(1)
            .build()
            .unwrap();
        store.set_slice("k", b"one", SetOptions::new()).unwrap();
        assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(
            store.get_with("k", <[u8]>::to_vec).unwrap(),
            Some(b"one".to_vec())
        );
        assert_eq!(store.bytes(), 4);
        store.set("k", "shared-two", SetOptions::new()).unwrap();
        assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"shared-two"[..]));
        assert_eq!(store.bytes(), 11);
        store.set_slice("k", b"3", SetOptions::new()).unwrap();
        assert_eq!(store.incr_by("k", 4, None).unwrap(), 7);
        assert!(
            store
                .compare_and_swap("k", Some(b"7"), Some(Bytes::from_static(b"x")), None)
                .unwrap()
        );
        assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"x"[..]));
        store.set_slice("k2", b"v", SetOptions::new()).unwrap();
        let page = store.scan("k", &ScanCursor::start(), 10).unwrap();
        assert_eq!(page.keys, vec!["k".to_owned(), "k2".to_owned()]);
        assert_eq!(store.clear("k2"), 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn growing_an_entry_in_place_at_the_byte_bound_never_evicts_it() {
        let store = MemoryStore::builder()
            .max_entries(100)
            .max_bytes(100)
            .shards(1)
            .build()
            .unwrap();
        for key in ["a", "b", "c", "d"] {
            store.set(key, vec![0u8; 19], SetOptions::new()).unwrap();
        }
        // "a" is the oldest entry, first in line for eviction; growing it needs room from the others.
        assert!(store.set("a", vec![1u8; 49], SetOptions::new()).unwrap());
        assert_eq!(store.get("a").unwrap(), Some(Bytes::from(vec![1u8; 49])));
        assert!(store.bytes() <= 100);
        assert_eq!(store.stats().evictions, 1);

        // A counter that gains a digit while its shard is exactly full keeps counting.
        let store = MemoryStore::builder()
            .max_entries(100)
            .max_bytes(200)
            .shards(1)
            .build()
            .unwrap();
        store.incr_by("n", 9, None).unwrap();
        store.set("x", vec![0u8; 99], SetOptions::new()).unwrap();
        store.set("y", vec![0u8; 97], SetOptions::new()).unwrap();
        assert_eq!(store.bytes(), 200);
        assert_eq!(store.incr_by("n", 1, None).unwrap(), 10);
        assert_eq!(store.get("n").unwrap().as_deref(), Some(&b"10"[..]));
        assert_eq!(store.incr_by("n", 1, None).unwrap(), 11);
        assert!(store.bytes() <= 200);
    }

    fn expiry_records(store: &MemoryStore) -> usize {
        let shards = store.inner.shards.iter();
        shards.map(|c| c.shard.read().expiry_records()).sum()
    }

    #[test]
    fn expiry_records_stay_bounded_under_sliding_ttls() {
        let clock = cache_core::ManualClock::new();
        let store = MemoryStore::builder()
            .shards(1)
            .clock(clock.clone())
            .build()
            .unwrap();
        let hour = Duration::from_secs(3_600);
        store.set("session", "v", SetOptions::new()).unwrap();
        store
            .set("other", "v", SetOptions::new().ttl(hour))
            .unwrap();
        // The same deadline again adds no record.
        for _ in 0..1_000 {
            assert!(store.expire("session", hour).unwrap());
        }
        assert_eq!(expiry_records(&store), 2);
        // Sliding deadlines, later each time (in order) or earlier (out of order), through expire,
        // set and incr_by's rewrite: stale records are dropped as they pile up.
        let bound = 2 * store.len() + 64 + 1;
        for i in 0..10_000u64 {
            clock.advance(Duration::from_millis(1));
            store.expire("session", hour).unwrap();
            store
                .expire("other", hour - Duration::from_millis(i))
                .unwrap();
            let ttl = SetOptions::new().ttl(hour + Duration::from_millis(i));
            store.set("session", "v", ttl).unwrap();
            assert!(
                expiry_records(&store) <= bound,
                "{} records",
                expiry_records(&store)
            );
        }
        // The records that count survived the compactions.
        clock.advance(2 * hour);
        store.purge_expired();
        assert_eq!(store.len(), 0);
        assert_eq!(store.stats().expirations, 2);
        assert_eq!(expiry_records(&store), 0);
    }

    #[test]
    fn huge_max_entries_build_and_work() {
        let huge = usize::try_from(100_000_000_000u64).unwrap_or(usize::MAX);
        for max_entries in [huge, usize::MAX] {
            for shards in [None, Some(1)] {
                let mut builder = MemoryStore::builder()
                    .max_entries(max_entries)
                    .max_bytes(1 << 20);
                if let Some(n) = shards {
                    builder = builder.shards(n);
                }
                let store = builder.build().unwrap();
                for cell in store.inner.shards.iter() {
                    assert!(cell.shard.read().ghost_slots() <= 4_096, "{max_entries}");
                }
                store.set("k", "v", SetOptions::new()).unwrap();
                assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
                assert_eq!(store.incr_by("n", 2, None).unwrap(), 2);
            }
        }
        // Once full (here by bytes), the ghost grows to its share of what the shard holds.
        let store = MemoryStore::builder()
            .max_entries(usize::MAX)
            .max_bytes(1 << 20)
            .shards(1)
            .build()
            .unwrap();
        for i in 0..80_000 {
            store
                .set(&format!("key{i:06}"), "12345678", SetOptions::new())
                .unwrap();
        }
        assert!(store.stats().evictions > 0);
        let held = store.len();
        let ghost = store.inner.shards[0].shard.read().ghost_slots();
        assert!(
            ghost > 4_096 && ghost >= held * 15 / 100,
            "{ghost} for {held}"
        );
    }

    #[test]
    fn bounds_hold_in_total_across_shards() {
        // Fewer entries than shards: fewer shards.
        let store = MemoryStore::builder()
            .max_entries(1)
            .shards(8)
            .build()
            .unwrap();
        for i in 0..1_000 {
            store.set(&format!("k{i}"), "v", SetOptions::new()).unwrap();
            assert_eq!(store.len(), 1);
        }
        assert_eq!(store.get("k999").unwrap().as_deref(), Some(&b"v"[..]));
        // Bounds that do not divide by the shard count.
        let store = MemoryStore::builder()
            .max_entries(10)
            .shards(8)
            .build()
            .unwrap();
        for i in 0..1_000 {
            store.set(&format!("k{i}"), "v", SetOptions::new()).unwrap();
            assert!(store.len() <= 10);
        }
        assert_eq!(store.len(), 10);
        let store = MemoryStore::builder()
            .max_entries(1_000)
            .max_bytes(100)
            .shards(8)
            .build()
            .unwrap();
        for i in 0..1_000 {
            // Entries of 3 to 23 bytes; those bigger than the smallest share are refused.
            let _ = store.set(&format!("k{i:02}"), vec![0u8; i % 21], SetOptions::new());
            assert!(store.bytes() <= 100, "{} bytes", store.bytes());
        }
    }

    #[test]
    fn incr_by_refuses_a_counter_larger_than_the_shard() {
        let store = MemoryStore::builder()
            .max_bytes(10)
            .shards(1)
            .build()
            .unwrap();
        let err = store.incr_by("key", i64::MIN + 1, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueTooLarge);
        assert_eq!((store.len(), store.bytes()), (0, 0));
        // 5 digits fit (the value limit leaves 5 bytes for the key); 6 do not, and the counter is left
        // as it was.
        assert_eq!(store.incr_by("key", 10_000, None).unwrap(), 10_000);
        let err = store.incr_by("key", 90_000, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueTooLarge);
        assert_eq!(store.get("key").unwrap().as_deref(), Some(&b"10000"[..]));
        assert_eq!(store.bytes(), 8);
    }

    #[test]
    fn limits_of_a_small_store_fit_together() {
        for max_bytes in [1, 2, 999, 1_000, 2_047, 2_048, 2_049] {
            let store = MemoryStore::builder()
                .max_bytes(max_bytes)
                .shards(1)
                .build()
                .unwrap();
            let limits = CacheStore::limits(&store);
            assert!(limits.max_key_len >= 1, "{max_bytes}");
            let key = "k".repeat(limits.max_key_len);
            store
                .set(&key, "", SetOptions::new())
                .unwrap_or_else(|e| panic!("max_bytes {max_bytes}, key of max_key_len: {e}"));
            store
                .set(&key, vec![0u8; limits.max_value_len], SetOptions::new())
                .unwrap_or_else(|e| panic!("max_bytes {max_bytes}, both at the limits: {e}"));
            let err = store.set(&format!("{key}k"), "", SetOptions::new());
            assert_eq!(err.unwrap_err().kind(), ErrorKind::InvalidKey);
            let too_big = vec![0u8; limits.max_value_len + 1];
            let err = store.set("k", too_big, SetOptions::new());
            assert_eq!(err.unwrap_err().kind(), ErrorKind::ValueTooLarge);
        }
    }

    #[test]
    fn deleting_an_expired_entry_counts_as_an_expiration() {
        let clock = cache_core::ManualClock::new();
        let store = MemoryStore::builder()
            .shards(1)
            .clock(clock.clone())
            .build()
            .unwrap();
        let ttl = SetOptions::new().ttl(Duration::from_secs(1));
        store.set("k", "v", ttl).unwrap();
        clock.advance(Duration::from_secs(2));
        assert!(!store.delete("k").unwrap());
        let stats = store.stats();
        assert_eq!((stats.expirations, stats.entries), (1, 0));
        // A live one is not an expiration.
        store.set("k", "v", SetOptions::new()).unwrap();
        assert!(store.delete("k").unwrap());
        assert_eq!(store.stats().expirations, 1);
    }

    #[test]
    fn weights_near_the_entry_cap_evict_instead_of_overflowing() {
        // The engine charges an entry at most 4 GiB (a `u32`), and the limits say so.
        let store = MemoryStore::builder()
            .max_bytes(usize::MAX)
            .limits(Limits::new(1_024, usize::MAX))
            .shards(1)
            .build()
            .unwrap();
        assert_eq!(
            CacheStore::limits(&store).max_value_len,
            u32::MAX as usize - 1_024
        );
        let err = store.set_weighted("c", Bytes::new(), u32::MAX as usize, SetOptions::new());
        assert_eq!(err.unwrap_err().kind(), ErrorKind::ValueTooLarge);
        // Two entries of just over half the byte bound: the second evicts the first.
        let store = MemoryStore::builder()
            .max_bytes(u32::MAX as usize)
            .limits(Limits::new(1_024, usize::MAX))
            .shards(1)
            .build()
            .unwrap();
        let weight = u32::MAX as usize / 2 + 1;
        let set = |key: &str| store.set_weighted(key, Bytes::new(), weight, SetOptions::new());
        set("a").unwrap();
        set("b").unwrap();
        assert_eq!((store.len(), store.bytes()), (1, 1 + weight));
        assert_eq!(store.stats().evictions, 1);
        assert!(store.exists("b").unwrap());
    }

    #[test]
    fn stays_within_both_bounds() {
        let store = MemoryStore::builder()
            .max_entries(100)
            .max_bytes(4_000)
            .shards(1)
            .build()
            .unwrap();
        for i in 0..1_000 {
            store
                .set(&format!("k{i}"), vec![0u8; 50], SetOptions::new())
                .unwrap();
            assert!(store.len() <= 100);
            assert!(store.bytes() <= 4_000);
        }
        assert!(store.stats().evictions >= 900);
    }

    /// A small random-number generator, so that the sequences are the same on every run.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_operations_keep_table_and_engine_in_step_and_never_read_a_wrong_value() {
        for seed in 1..=10u64 {
            let clock = cache_core::ManualClock::new();
            let store = MemoryStore::builder()
                .max_entries(64)
                .max_bytes(3_000)
                .shards(2)
                .clock(clock.clone())
                .build()
                .unwrap();
            // The last value written under each key, and when it expires (ms on the clock).
            let mut model: std::collections::HashMap<String, (Vec<u8>, u64)> = Default::default();
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for step in 0..4_000 {
                let r = xorshift(&mut rng);
                let key = format!("k{}", r % 97);
                let now = clock.now_millis();
                let ttl = (r % 3 == 0).then(|| Duration::from_millis(1 + (r >> 8) % 300));
                match (r >> 4) % 10 {
                    0..=3 => {
                        let value = vec![b'v'; (r >> 12) as usize % 90];
                        store
                            .set(&key, value.clone(), SetOptions::new().maybe_ttl(ttl))
                            .unwrap();
                        let at = ttl.map_or(NEVER, |t| now + t.as_millis() as u64);
                        model.insert(key, (value, at));
                    }
                    4..=6 => {
                        let got = store.get(&key).unwrap();
                        if let Some(got) = got {
                            let (value, at) = &model[&key];
                            assert_eq!(&got[..], &value[..], "seed {seed} step {step}");
                            assert!(now < *at, "seed {seed} step {step}: read an expired entry");
                        }
                    }
                    7 => {
                        store.delete(&key).unwrap();
                        model.remove(&key);
                    }
                    8 => {
                        let existed = store.exists(&key).unwrap();
                        if let Ok(n) = store.incr_by(&key, 1, ttl) {
                            let at = match model.get(&key) {
                                Some((_, at)) if existed => *at,
                                _ => ttl.map_or(NEVER, |t| now + t.as_millis() as u64),
                            };
                            model.insert(key, (n.to_string().into_bytes(), at));
                        }
                    }
                    _ => clock.advance(Duration::from_millis((r >> 20) % 50)),
                }
                for cell in store.inner.shards.iter() {
                    cell.shard
                        .read()
                        .check()
                        .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                }
                let stats = store.stats();
                assert!(stats.entries <= 64 && stats.bytes <= 3_000, "{stats:?}");
            }
        }
    }
}
