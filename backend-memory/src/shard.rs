//! One lock shard: a hash table of entries (keys and values) over the slot [`Engine`], which makes
//! every policy decision (S3-FIFO admission and eviction, expiry, both bounds). Each entry holds
//! its slot; the engine holds the slot's frequency, expiry, size and key hash.

use std::cell::Cell;

use bytes::Bytes;
use cache_core::{Clock, SharedObject};
use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::collections::{Collection, Kind, Slot};
pub(crate) use crate::engine::Removal;
use crate::engine::{self, Engine};

/// The expiry of an entry that never expires, in the store's `u64` milliseconds.
pub(crate) const NEVER: u64 = u64::MAX;

/// A value to store: shared bytes kept as they are, or a slice copied in next to the key; or shared
/// bytes charged as a given number of bytes (a handle to data kept elsewhere); or a collection.
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Shared(Bytes),
    Slice(&'a [u8]),
    Weighted(Bytes, usize),
    /// Shared bytes and their decoded value, charged twice the bytes.
    Object(Bytes, SharedObject),
    Collection(Box<Collection>),
}

impl Value<'_> {
    /// The bytes the value is charged as.
    pub(crate) fn len(&self) -> usize {
        match self {
            Value::Shared(b) => b.len(),
            Value::Slice(s) => s.len(),
            Value::Weighted(_, weight) => *weight,
            Value::Object(b, _) => b.len().saturating_mul(2),
            Value::Collection(c) => c.bytes(),
        }
    }
}

/// What an entry holds besides its key.
#[derive(Debug)]
enum Body {
    /// The value follows the key in `data`.
    Inline,
    /// Shared bytes (a weighted value's weight follows the key in `data`).
    Shared(Bytes),
    /// Shared bytes and their decoded value; boxed, so that other entries stay small.
    Object(Box<(Bytes, SharedObject)>),
    /// A hash, list, set or sorted set.
    Collection(Box<Collection>),
}

/// Bytes of an entry's data kept in the entry itself: most keys fit, so that a lookup compares the
/// key without following a pointer, and an insert allocates nothing for it.
const INLINE_DATA: usize = 24;

#[derive(Debug)]
pub(crate) struct Entry {
    /// The key's bytes (valid UTF-8), followed by the value's if it was written from a slice: at most
    /// one allocation per entry (none if it fits inline), and the value next to the key a lookup has
    /// just compared. For a weighted value the key is followed by its weight (a native-endian
    /// `usize`) instead.
    data: SmallVec<[u8; INLINE_DATA]>,
    /// The value, unless it follows the key in `data`.
    body: Body,
    key_len: u32,
    /// The entry's slot in the shard's engine.
    slot: u32,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    /// The value of a string entry; `None` for a collection.
    pub(crate) fn value(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Inline => Some(&self.data[self.key_len as usize..]),
            Body::Shared(bytes) => Some(bytes),
            Body::Object(object) => Some(&object.0),
            Body::Collection(_) => None,
        }
    }

    /// The decoded value written with the bytes, if any.
    pub(crate) fn object(&self) -> Option<&SharedObject> {
        match &self.body {
            Body::Object(object) => Some(&object.1),
            _ => None,
        }
    }

    /// The value as [`Bytes`]: shared if it was written so, else a copy; `None` for a collection.
    pub(crate) fn value_bytes(&self) -> Option<Bytes> {
        match &self.body {
            Body::Shared(bytes) => Some(bytes.clone()),
            Body::Object(object) => Some(object.0.clone()),
            _ => self.value().map(Bytes::copy_from_slice),
        }
    }

    /// The collection of a collection entry.
    pub(crate) fn collection(&self) -> Option<&Collection> {
        match &self.body {
            Body::Collection(c) => Some(c),
            _ => None,
        }
    }

    fn truncate_to_key(&mut self) {
        if self.data.len() != self.key_len as usize {
            self.data.truncate(self.key_len as usize);
            self.data.shrink_to_fit();
        }
    }

    /// Replaces the value, keeping the key.
    fn set_value(&mut self, value: Value<'_>) {
        match value {
            Value::Shared(bytes) => {
                self.truncate_to_key();
                self.body = Body::Shared(bytes);
            }
            Value::Slice(slice) => {
                self.data = joined(self.key(), slice);
                self.body = Body::Inline;
            }
            Value::Weighted(bytes, weight) => {
                self.data = joined(self.key(), &weight.to_ne_bytes());
                self.body = Body::Shared(bytes);
            }
            Value::Object(bytes, object) => {
                self.truncate_to_key();
                self.body = Body::Object(Box::new((bytes, object)));
            }
            Value::Collection(collection) => {
                self.truncate_to_key();
                self.body = Body::Collection(collection);
            }
        }
    }
}

/// `key` then `value` in one allocation, and the value kept apart if shared.
fn entry_data(key: &str, value: Value<'_>) -> (SmallVec<[u8; INLINE_DATA]>, Body) {
    match value {
        Value::Shared(bytes) => (SmallVec::from_slice(key.as_bytes()), Body::Shared(bytes)),
        Value::Slice(slice) => (joined(key.as_bytes(), slice), Body::Inline),
        Value::Weighted(bytes, weight) => (
            joined(key.as_bytes(), &weight.to_ne_bytes()),
            Body::Shared(bytes),
        ),
        Value::Object(bytes, object) => (
            SmallVec::from_slice(key.as_bytes()),
            Body::Object(Box::new((bytes, object))),
        ),
        Value::Collection(collection) => (
            SmallVec::from_slice(key.as_bytes()),
            Body::Collection(collection),
        ),
    }
}

fn joined(key: &[u8], value: &[u8]) -> SmallVec<[u8; INLINE_DATA]> {
    let len = key.len() + value.len();
    if len <= INLINE_DATA {
        // Two copies into a stack buffer: SmallVec's growing `extend_from_slice` costs more.
        let mut buf = [0; INLINE_DATA];
        buf[..key.len()].copy_from_slice(key);
        buf[key.len()..len].copy_from_slice(value);
        return SmallVec::from_buf_and_len(buf, len);
    }
    let mut data = Vec::with_capacity(len);
    data.extend_from_slice(key);
    data.extend_from_slice(value);
    SmallVec::from_vec(data)
}

/// The current time, read from the clock at most once and only if an entry with a TTL needs it.
pub(crate) struct Now<'a> {
    clock: &'a dyn Clock,
    millis: Cell<Option<u64>>,
}

impl<'a> Now<'a> {
    pub(crate) fn new(clock: &'a dyn Clock) -> Self {
        Now {
            clock,
            millis: Cell::new(None),
        }
    }

    pub(crate) fn get(&self) -> u64 {
        match self.millis.get() {
            Some(m) => m,
            None => {
                let m = self.clock.now_millis();
                self.millis.set(Some(m));
                m
            }
        }
    }
}

/// Counts of entries that left the shard, for the store's stats.
pub(crate) type Departures = engine::Departures;

#[derive(Debug)]
pub(crate) struct Shard {
    table: HashTable<Entry>,
    engine: Engine<u64>,
}

/// A time of the store's clock (whole milliseconds) as the engine counts it.
fn engine_time(ms: u64) -> f64 {
    if ms == NEVER {
        engine::NEVER
    } else {
        ms as f64
    }
}

impl Shard {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Shard {
            table: HashTable::new(),
            engine: Engine::new(max_entries, max_bytes as u64),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        usize::try_from(self.engine.bytes()).unwrap_or(usize::MAX)
    }

    pub(crate) fn departures(&self) -> Departures {
        self.engine.departures()
    }

    /// The entry under `key`, live or not.
    pub(crate) fn find(&self, hash: u64, key: &str) -> Option<&Entry> {
        self.find_bytes(hash, key.as_bytes())
    }

    /// [`find`](Self::find) of a key's bytes.
    #[inline]
    pub(crate) fn find_bytes(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.table.find(hash, |e| key_eq(e.key(), key))
    }

    /// Whether `entry` has not expired at `now` (which is read only if it has an expiry).
    pub(crate) fn is_live(&self, entry: &Entry, now: &Now<'_>) -> bool {
        match self.engine.expires_at(entry.slot) {
            engine::NEVER => true,
            at => (now.get() as f64) < at,
        }
    }

    /// When `entry` expires, in clock milliseconds ([`NEVER`] if it does not).
    pub(crate) fn expires_at(&self, entry: &Entry) -> u64 {
        match self.engine.expires_at(entry.slot) {
            engine::NEVER => NEVER,
            at => at as u64,
        }
    }

    /// Records a read of `entry`.
    pub(crate) fn touch(&self, entry: &Entry) {
        self.engine.touch(entry.slot);
    }

    /// The live entry under `key`; an expired one is removed.
    pub(crate) fn find_live_mut(
        &mut self,
        hash: u64,
        key: &str,
        now: &Now<'_>,
    ) -> Option<&mut Entry> {
        let live = self.is_live(self.find(hash, key)?, now);
        if !live {
            self.remove(hash, key, Removal::Expired);
            return None;
        }
        self.table
            .find_mut(hash, |e| key_eq(e.key(), key.as_bytes()))
    }

    /// The time the engine needs for a change: the clock's, unless no entry has an expiry (then
    /// every entry is live whatever the time, and the clock is not read).
    fn engine_now(&self, now: &Now<'_>, expires_at: u64) -> f64 {
        if self.engine.expires_ptr().is_null() && expires_at == NEVER {
            0.0
        } else {
            now.get() as f64
        }
    }

    /// Writes `value` under `key`. A live entry keeps its place and frequency (and is never evicted
    /// to make room for its own growth); a new one is admitted by the engine, which evicts as needed
    /// to respect both bounds. The caller has checked that the entry fits in the shard.
    pub(crate) fn upsert(
        &mut self,
        hash: u64,
        key: &str,
        value: Value<'_>,
        expires_at: u64,
        now: &Now<'_>,
    ) {
        let size = entry_size(key.len() + value.len());
        let at = engine_time(expires_at);
        let t = self.engine_now(now, expires_at);
        let Shard { table, engine } = self;
        if let Some(slot) = table
            .find(hash, |e| key_eq(e.key(), key.as_bytes()))
            .map(|e| e.slot)
        {
            if t < engine.expires_at(slot) {
                // Allocation failures abort natively, so the engine only refuses what the caller
                // has already checked.
                let updated = engine.update(slot, size, at, t, usize::MAX, |s, h, _| {
                    remove_slot(table, s, h)
                });
                debug_assert!(updated.is_ok(), "{updated:?}");
                if let Some(entry) = table.find_mut(hash, |e| e.slot == slot) {
                    entry.set_value(value);
                }
                return;
            }
            engine.remove(slot, Removal::Expired);
            remove_slot(table, slot, hash);
        }
        let inserted = engine.insert(hash, size, at, t, usize::MAX, |s, h, _| {
            remove_slot(table, s, h)
        });
        let Ok(slot) = inserted else {
            debug_assert!(
                false,
                "the engine refused an entry the store checked: {inserted:?}"
            );
            return;
        };
        let (data, body) = entry_data(key, value);
        let entry = Entry {
            data,
            body,
            key_len: key.len() as u32,
            slot,
        };
        let engine = &*engine;
        table.insert_unique(hash, entry, |e| engine.hash(e.slot));
    }

    /// Runs `op` on the live collection of `kind` under `key`, and charges the entry what it holds
    /// afterwards: a collection left empty is removed; an absent one is made (empty) first if
    /// `create`, and stored if `op` left something in it. Returns `None` if absent and not
    /// `create`. A key of another type is [`ErrorKind::WrongType`](cache_core::ErrorKind::WrongType),
    /// and an `op` that fails has changed nothing (ops check before they change).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn collection_op<R>(
        &mut self,
        hash: u64,
        key: &str,
        kind: Kind,
        create: bool,
        room: usize,
        now: &Now<'_>,
        op: impl FnOnce(Slot<'_>) -> cache_core::Result<R>,
    ) -> cache_core::Result<Option<R>> {
        let room = room.saturating_sub(key.len());
        let Some(entry) = self.find_live_mut(hash, key, now) else {
            if !create {
                return Ok(None);
            }
            let mut collection = Box::new(Collection::new(kind));
            let result = op(Slot {
                collection: &mut collection,
                room,
            })?;
            if !collection.is_empty() {
                self.upsert(hash, key, Value::Collection(collection), NEVER, now);
            }
            return Ok(Some(result));
        };
        let slot = entry.slot;
        let Body::Collection(collection) = &mut entry.body else {
            return Err(wrong_type(key, kind));
        };
        if collection.kind() != kind {
            return Err(wrong_type(key, kind));
        }
        let result = op(Slot { collection, room })?;
        let (empty, size) = (collection.is_empty(), key.len() + collection.bytes());
        if empty {
            self.remove(hash, key, Removal::Deleted);
        } else {
            let t = self.engine_now(now, NEVER);
            let at = self.engine.expires_at(slot);
            let Shard { table, engine } = self;
            let updated = engine.update(slot, entry_size(size), at, t, usize::MAX, |s, h, _| {
                remove_slot(table, s, h)
            });
            debug_assert!(updated.is_ok(), "{updated:?}");
        }
        Ok(Some(result))
    }

    /// Sets the expiry of a live entry; returns whether it existed.
    pub(crate) fn set_expiry(
        &mut self,
        hash: u64,
        key: &str,
        expires_at: u64,
        now: &Now<'_>,
    ) -> bool {
        let Some(slot) = self.find_live_mut(hash, key, now).map(|e| e.slot) else {
            return false;
        };
        let t = self.engine_now(now, expires_at);
        let set = self.engine.set_expiry(slot, engine_time(expires_at), t);
        debug_assert!(set.is_ok(), "{set:?}");
        true
    }

    /// Removes `key` if present (live or not); returns the entry.
    pub(crate) fn remove(&mut self, hash: u64, key: &str, why: Removal) -> Option<Entry> {
        let entry = self
            .table
            .find_entry(hash, |e| key_eq(e.key(), key.as_bytes()))
            .ok()?
            .remove()
            .0;
        self.engine.remove(entry.slot, why);
        Some(entry)
    }

    /// Deletes `key`; returns whether it was live. An expired one still held counts as expired.
    pub(crate) fn delete(&mut self, hash: u64, key: &str, now: &Now<'_>) -> bool {
        let Some(entry) = self.find(hash, key) else {
            return false;
        };
        let live = self.is_live(entry, now);
        let why = if live {
            Removal::Deleted
        } else {
            Removal::Expired
        };
        self.remove(hash, key, why);
        live
    }

    /// Removes every entry whose key starts with `prefix`; returns how many live ones it removed.
    pub(crate) fn remove_prefix(&mut self, prefix: &str, now: &Now<'_>) -> u64 {
        let t = if self.engine.expires_ptr().is_null() {
            0.0
        } else {
            now.get() as f64
        };
        let Shard { table, engine } = self;
        let mut live = 0;
        table.retain(|e| {
            if !e.key().starts_with(prefix.as_bytes()) {
                return true;
            }
            if t < engine.expires_at(e.slot) {
                live += 1;
                engine.remove(e.slot, Removal::Deleted);
            } else {
                engine.remove(e.slot, Removal::Expired);
            }
            false
        });
        live
    }

    /// Live keys with `prefix` that sort after `after`, the `count` smallest of them, sorted.
    pub(crate) fn keys_after(
        &self,
        prefix: &str,
        after: &str,
        count: usize,
        now: &Now<'_>,
    ) -> Vec<String> {
        let (prefix, after) = (prefix.as_bytes(), after.as_bytes());
        let mut keys: Vec<&[u8]> = self
            .table
            .iter()
            .filter(|e| e.key().starts_with(prefix) && e.key() > after && self.is_live(e, now))
            .map(Entry::key)
            .collect();
        if keys.len() > count {
            keys.select_nth_unstable(count);
            keys.truncate(count);
        }
        keys.sort_unstable();
        // Keys were written from `&str`s, so this never replaces anything.
        keys.into_iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    /// Removes up to `budget` entries whose TTL has passed; returns whether any expired entry may remain.
    pub(crate) fn purge_expired(&mut self, now: &Now<'_>, budget: usize) -> bool {
        let t = now.get() as f64;
        let Shard { table, engine } = self;
        engine.purge_expired(t, budget, |slot, hash, _| remove_slot(table, slot, hash))
    }

    /// Whether the shard has expiry work due (cheap check before taking a write lock).
    pub(crate) fn has_due_expiry(&self, now: &Now<'_>) -> bool {
        !self.engine.expires_ptr().is_null() && self.engine.has_due_expiry(now.get() as f64)
    }

    /// Expiry records held, stale ones included.
    #[cfg(test)]
    pub(crate) fn expiry_records(&self) -> usize {
        self.engine.expiry_records()
    }

    /// Ghost slots allocated.
    #[cfg(test)]
    pub(crate) fn ghost_slots(&self) -> usize {
        self.engine.ghost_slots()
    }

    /// Checks the engine's invariants and that the table and the engine agree.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        self.engine.check()?;
        if self.table.len() != self.engine.len() {
            return Err(format!(
                "{} entries in the table, {} in the engine",
                self.table.len(),
                self.engine.len()
            ));
        }
        for e in &self.table {
            if !self.engine.in_use(e.slot) {
                return Err(format!("entry {:?} holds a free slot", e.key()));
            }
        }
        Ok(())
    }
}

/// The error of using `key` as `kind` when it holds something else.
pub(crate) fn wrong_type(key: &str, kind: Kind) -> cache_core::Error {
    cache_core::Error::new(
        cache_core::ErrorKind::WrongType,
        format!(
            "key {key:?} holds another type of value than {}",
            kind.name()
        ),
    )
}

/// Drops the table's entry of `slot` (whose key hash is `hash`), which the engine has let go of.
fn remove_slot(table: &mut HashTable<Entry>, slot: u32, hash: u64) {
    if let Ok(found) = table.find_entry(hash, |e| e.slot == slot) {
        found.remove();
    }
}

/// An entry's size for the engine, which counts in `u32` (the store caps entries below that).
fn entry_size(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}

/// Key equality. On wasm32 `memcmp` is a byte-at-a-time loop behind a call, so compare 8 bytes at a
/// time there; elsewhere the platform's `memcmp` is faster.
#[inline]
fn key_eq(stored: &[u8], key: &[u8]) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        let (a, b) = (stored, key);
        if a.len() != b.len() {
            return false;
        }
        let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
        for (x, y) in (&mut ca).zip(&mut cb) {
            let x = u64::from_ne_bytes(x.try_into().unwrap_or_default());
            let y = u64::from_ne_bytes(y.try_into().unwrap_or_default());
            if x != y {
                return false;
            }
        }
        ca.remainder()
            .iter()
            .zip(cb.remainder())
            .all(|(x, y)| x == y)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        stored == key
    }
}
