//! The [`CacheStore`] trait: the contract every backend implements, bytes in and bytes out.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::{Capabilities, Limits, PrefixedKey, Result, SharedObject};

/// When a [`CacheStore::set`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SetCondition {
    /// Always write (Redis `SET`).
    #[default]
    Always,
    /// Write only if the key is absent (Redis `SET NX`).
    IfAbsent,
    /// Write only if the key is present (Redis `SET XX`).
    IfPresent,
}

/// Options of [`CacheStore::set`]: a TTL and a [`SetCondition`].
///
/// ```
/// use cache_core::SetOptions;
/// use std::time::Duration;
///
/// let opts = SetOptions::new().ttl(Duration::from_secs(30)).if_absent();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SetOptions {
    /// How long the entry lives; `None` means no expiry.
    pub ttl: Option<Duration>,
    /// When to write.
    pub condition: SetCondition,
}

impl SetOptions {
    /// Unconditional, no expiry.
    pub fn new() -> Self {
        SetOptions::default()
    }

    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets an optional TTL.
    pub fn maybe_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Write only if the key is absent.
    pub fn if_absent(mut self) -> Self {
        self.condition = SetCondition::IfAbsent;
        self
    }

    /// Write only if the key is present.
    pub fn if_present(mut self) -> Self {
        self.condition = SetCondition::IfPresent;
        self
    }
}

/// The remaining lifetime of a key, from [`CacheStore::ttl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// The key does not exist (or has expired).
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key exists and expires after this long.
    ExpiresIn(Duration),
}

/// Where a [`CacheStore::scan`] resumes. Opaque: pass back what the previous page returned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ScanCursor(String);

impl ScanCursor {
    /// The cursor that starts a scan.
    pub fn start() -> Self {
        ScanCursor(String::new())
    }

    /// A cursor from a backend's own encoding. Backends use this; callers pass cursors back unchanged.
    pub fn from_backend(raw: impl Into<String>) -> Self {
        ScanCursor(raw.into())
    }

    /// The backend's encoding of this cursor (empty for the start).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the starting cursor.
    pub fn is_start(&self) -> bool {
        self.0.is_empty()
    }
}

/// One page of a [`CacheStore::scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// Keys found on this page; may be empty even when `next` is `Some`.
    pub keys: Vec<String>,
    /// The cursor of the next page, or `None` when the scan is complete.
    pub next: Option<ScanCursor>,
}

/// The storage contract: an async key-value store of bytes with TTLs.
///
/// Keys are UTF-8 strings and values are [`Bytes`]. Every backend (memory, Redis, Redis Cluster, the
/// memory store in wasm32) implements every method with the behaviour listed in its docs, and the
/// conformance crate (`cache-conformance`) checks each line of those lists against each backend.
///
/// Rules that hold for every method:
/// - A key that is empty or longer than [`Limits::max_key_len`] is rejected with
///   [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey), a value larger than
///   [`Limits::max_value_len`] with [`ErrorKind::ValueTooLarge`](crate::ErrorKind::ValueTooLarge). The
///   error names the key and the limit, and nothing is written.
/// - A TTL has millisecond precision and is rounded up. A zero TTL or one above
///   [`MAX_TTL`](crate::MAX_TTL) is [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
/// - An entry whose TTL has passed is indistinguishable from an absent one.
/// - A miss is `Ok(None)`, never an error.
/// - Single-key operations are atomic and linearizable (on Redis: per master; a failover may lose
///   the last writes that had not reached the replica).
/// - A store whose [`Capabilities::evicts`](crate::Capabilities::evicts) is set may drop any entry
///   to stay within its bounds; the guarantees that a key "reads back" its value below hold until
///   then.
///
/// The trait is object safe: stores are usually held as `Arc<dyn CacheStore>`.
#[async_trait]
pub trait CacheStore: Send + Sync + Debug {
    /// What this store supports.
    fn capabilities(&self) -> Capabilities;

    /// The key and value limits this store enforces.
    fn limits(&self) -> Limits;

    /// Reads one key.
    ///
    /// Behavior:
    /// - a key that was never set reads as `None`;
    /// - a key reads back exactly the bytes last written, including empty values and 1 MiB values;
    /// - after its TTL a key reads as `None`.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Reads many keys at once.
    ///
    /// Behavior:
    /// - returns exactly one slot per requested key, in the order requested, `None` for missing keys;
    /// - a key requested twice fills two slots;
    /// - an empty request returns an empty vector;
    /// - any invalid key fails the whole call.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>>;

    /// Writes one key, replacing its value and its TTL.
    ///
    /// Behavior:
    /// - returns `true` if it wrote, `false` if the condition prevented it;
    /// - [`SetCondition::IfAbsent`] writes only when the key is absent (an expired key is absent);
    /// - [`SetCondition::IfPresent`] writes only when the key is present;
    /// - without a TTL the entry never expires, even if the old one had a TTL;
    /// - with a TTL the entry reads as absent once the TTL has passed.
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<bool>;

    /// Writes many keys, each with the same optional TTL.
    ///
    /// Behavior:
    /// - every key is validated before anything is written, so an invalid entry writes nothing;
    /// - afterwards every key reads back its value; when a key appears twice, the later value wins;
    /// - an empty batch is a no-op.
    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()>;

    /// Deletes one key. Returns whether it existed.
    ///
    /// Behavior:
    /// - deleting a missing (or expired) key returns `false`;
    /// - afterwards the key reads as `None`.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Deletes many keys. Returns how many of them existed.
    ///
    /// Behavior:
    /// - missing keys count zero;
    /// - afterwards every key reads as `None`.
    async fn delete_many(&self, keys: &[&str]) -> Result<u64>;

    /// Whether a key exists (and has not expired).
    async fn exists(&self, key: &str) -> Result<bool>;

    /// The remaining lifetime of a key.
    ///
    /// Behavior:
    /// - a missing or expired key is [`KeyTtl::Missing`];
    /// - a key set without TTL is [`KeyTtl::Persistent`];
    /// - a key set with TTL `t` is `ExpiresIn(d)` with `0 < d <= t`, where `t` is rounded up to whole
    ///   milliseconds as every TTL is (so `ExpiresIn(151ms)` right after a `150.5ms` TTL).
    async fn ttl(&self, key: &str) -> Result<KeyTtl>;

    /// Sets a key's TTL. Returns `false` if the key is missing.
    ///
    /// Behavior:
    /// - an existing key expires after `ttl` and keeps its value until then;
    /// - a missing key is not created.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool>;

    /// Removes a key's TTL. Returns `true` only if the key existed and had a TTL.
    async fn persist(&self, key: &str) -> Result<bool>;

    /// Adds `delta` to a counter and returns the new value, atomically.
    ///
    /// Behavior:
    /// - a missing key starts at 0, so the first call returns `delta`;
    /// - `ttl_on_create` is applied only when this call creates the key; an existing key keeps its TTL;
    /// - counters are stored as decimal ASCII (as Redis `INCRBY` does), so `get` reads e.g. `b"42"`;
    /// - a stored value that is not a decimal `i64` fails with
    ///   [`ErrorKind::NotAnInteger`](crate::ErrorKind::NotAnInteger) and is left unchanged;
    /// - a result outside `i64` fails with [`ErrorKind::Overflow`](crate::ErrorKind::Overflow) and leaves
    ///   the value unchanged;
    /// - concurrent calls never lose an update.
    async fn incr_by(&self, key: &str, delta: i64, ttl_on_create: Option<Duration>) -> Result<i64>;

    /// Atomically replaces a value only if the current value equals `expected`.
    ///
    /// `expected: None` means "the key must be absent"; `new: None` deletes the key. `ttl` is the TTL
    /// of the new value (`None`: no expiry). Returns whether the swap happened.
    ///
    /// Behavior:
    /// - if the current value (or absence) differs from `expected`, nothing changes and it returns `false`;
    /// - among concurrent swaps from the same expected value, exactly one succeeds.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool>;

    /// Lists keys that start with `prefix`, one page at a time. Start with [`ScanCursor::start`] and pass
    /// each page's `next` back until it is `None`.
    ///
    /// Behavior:
    /// - every key that exists with the prefix for the whole scan is returned at least once;
    /// - no key without the prefix is ever returned;
    /// - `count` is a hint of the page size, not a bound: pages may be smaller, larger or empty; any
    ///   value is accepted (`0` and `usize::MAX` included), and backends cap it as they see fit;
    /// - no single call walks the whole keyspace.
    async fn scan(&self, prefix: &str, cursor: ScanCursor, count: usize) -> Result<ScanPage>;

    /// Deletes every key that starts with `prefix` and returns how many it deleted. Keys without the
    /// prefix are never touched. An empty prefix clears the whole store.
    async fn clear(&self, prefix: &str) -> Result<u64>;

    /// Deletes every key that starts with `prefix` and whose remainder after it matches the glob
    /// `pattern` ([Redis `MATCH` semantics](crate::glob_matches)), and returns how many it deleted.
    /// Keys without the prefix are never touched.
    ///
    /// Behavior:
    /// - `*` in the pattern matches any run of bytes, `?` one byte, `[…]` one byte of a class, and
    ///   `\` escapes; nothing else is special (see [`glob_matches`](crate::glob_matches));
    /// - the prefix is literal: glob characters in it match only themselves;
    /// - not atomic: a key written while it runs may or may not be deleted.
    ///
    /// Default: a [`scan`](Self::scan) of `prefix` plus the pattern's literal start, and
    /// [`delete_many`](Self::delete_many) of the keys that match, 1000 at a time.
    async fn clear_matching(&self, prefix: &str, pattern: &str) -> Result<u64> {
        // Matched as Redis matches `SCAN MATCH {escaped prefix}{pattern}`, quirks included.
        let full_pattern = format!("{}{pattern}", crate::glob_escape(prefix));
        let start = format!("{prefix}{}", crate::glob::literal_prefix(pattern));
        let mut keys = std::pin::pin!(scan_stream(self, &start, 1000));
        let mut batch = Vec::new();
        let mut deleted = 0;
        while let Some(key) = keys.next().await {
            let key = key?;
            if crate::glob_matches(&full_pattern, &key) {
                batch.push(key);
            }
            if batch.len() >= 1000 {
                let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                deleted += self.delete_many(&refs).await?;
                batch.clear();
            }
        }
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        if !refs.is_empty() {
            deleted += self.delete_many(&refs).await?;
        }
        Ok(deleted)
    }

    /// Checks that the store answers.
    async fn ping(&self) -> Result<()>;

    /// This store as a [`CollectionStore`](crate::CollectionStore), if it holds collections (hashes,
    /// lists, sets, sorted sets). Default: `None`.
    fn collections(&self) -> Option<&dyn crate::CollectionStore> {
        None
    }

    /// This store as a [`LocalStore`], if it lives in this process: the typed facade then reads
    /// and writes it without awaiting, and keeps decoded values in it. Default: `None`.
    fn as_local(&self) -> Option<&dyn LocalStore> {
        None
    }

    /// How many entries this store evicted and expired, if it counts them (a `MemoryStore` does;
    /// Redis counts per server, in `INFO`). Default: `None`.
    fn departures(&self) -> Option<Departures> {
        None
    }
}

/// Entries a store removed on its own, from [`CacheStore::departures`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Departures {
    /// Live entries removed to stay within the store's bounds.
    pub evictions: u64,
    /// Entries removed because their TTL passed.
    pub expirations: u64,
}

impl Departures {
    /// Evictions and expirations.
    pub fn new(evictions: u64, expirations: u64) -> Self {
        Departures {
            evictions,
            expirations,
        }
    }
}

/// A [`CacheStore`] in this process that answers at once, without awaiting: what a
/// [`TieredCache`](crate::TieredCache) keeps as its L1. `backend-memory`'s `MemoryStore` is one.
///
/// Each method behaves exactly as the [`CacheStore`] method it is named after, and should run the
/// same code, so that the conformance suite's run of the async methods checks these too. They exist
/// because an async trait call allocates its future, which costs an L1 as much as its lookup.
pub trait LocalStore: CacheStore {
    /// [`CacheStore::get`], answered at once.
    fn get_now(&self, key: &str) -> Result<Option<Bytes>>;

    /// [`CacheStore::set`], answered at once.
    fn set_now(&self, key: &str, value: Bytes, options: SetOptions) -> Result<bool>;

    /// [`CacheStore::delete`], answered at once.
    fn delete_now(&self, key: &str) -> Result<bool>;

    /// [`CacheStore::clear`], answered at once.
    fn clear_now(&self, prefix: &str) -> Result<u64>;

    /// Reads `key` at once and hands its value to `read`: the bytes, and the [`SharedObject`]
    /// written with them, if any. Returns whether the key was found. It looks `prefix + key` up
    /// without building that string on the heap, and copies nothing out.
    ///
    /// Default: [`get_now`](Self::get_now) of the joined key, without an object.
    fn read_now(
        &self,
        key: PrefixedKey<'_>,
        read: &mut dyn FnMut(&[u8], Option<&SharedObject>),
    ) -> Result<bool> {
        let value = key.with_joined(|full| self.get_now(full))?;
        Ok(value.map(|bytes| read(&bytes, None)).is_some())
    }

    /// [`CacheStore::set`] of `bytes` at once, keeping `object` (their decoded value) next to
    /// them for [`read_now`](Self::read_now). Every other read sees the bytes. The entry is charged
    /// twice the length of `bytes`: the bytes, and as much again for the object, whose heap size
    /// the store cannot see.
    ///
    /// Default: [`set_now`](Self::set_now) of the bytes alone.
    fn set_shared_now(
        &self,
        key: PrefixedKey<'_>,
        bytes: Bytes,
        object: SharedObject,
        options: SetOptions,
    ) -> Result<bool> {
        let _ = object;
        key.with_joined(|full| self.set_now(full, bytes, options))
    }
}

/// Conveniences every [`CacheStore`] gets for free.
pub trait CacheStoreExt: CacheStore {
    /// Streams every key with `prefix`, fetching pages of about `page_size` keys as the stream is
    /// polled. Keys may repeat (as with Redis `SCAN`); collect into a set when that matters.
    fn scan_stream<'a>(&'a self, prefix: &'a str, page_size: usize) -> BoxStream<'a, Result<String>>
    where
        Self: Sized,
    {
        scan_stream(self, prefix, page_size)
    }
}

impl<S: CacheStore + ?Sized> CacheStoreExt for S {}

/// [`CacheStoreExt::scan_stream`] for trait objects.
pub fn scan_stream<'a, S: CacheStore + ?Sized>(
    store: &'a S,
    prefix: &'a str,
    page_size: usize,
) -> BoxStream<'a, Result<String>> {
    let pages = stream::try_unfold(Some(ScanCursor::start()), move |cursor| async move {
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        let page = store.scan(prefix, cursor, page_size).await?;
        Ok(Some((
            stream::iter(page.keys.into_iter().map(Ok)),
            page.next,
        )))
    });
    pages.try_flatten().boxed()
}
