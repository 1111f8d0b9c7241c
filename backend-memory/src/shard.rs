//! One lock shard: a hash table plus the S3-FIFO queues and the expiry records.
//!
//! S3-FIFO (Yang et al., SOSP 2023): new keys enter a small FIFO; a key read again while there moves to
//! the main FIFO, the rest leave and are remembered in a ghost table of hashes; a key in the ghost
//! re-enters straight into main. Main is a CLOCK with a 2-bit frequency. Reads only bump an atomic
//! counter, so they run under a shared lock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};

use std::cell::Cell;

use bytes::Bytes;
use cache_core::Clock;
use hashbrown::HashTable;
use smallvec::SmallVec;

pub(crate) const NEVER: u64 = u64::MAX;
const MAX_FREQ: u8 = 3;
/// Share of a shard's capacity (entries and bytes) given to the small FIFO, in percent. The paper uses
/// 10%; on the Zipf(1.0) benchmark 3–5% scored higher (0.797 vs 0.786).
const SMALL_PERCENT: usize = 5;
/// The ghost's slots, in percent of the shard's entry capacity (rounded up to a power of two). The
/// paper remembers as many keys as the main FIFO holds (90%); a short memory readmits only keys that
/// come back soon, which scored best on the benchmark (15%: 0.797; 30%: 0.7956; 90–100%: 0.786).
const GHOST_PERCENT: usize = 15;
/// Most ghost slots allocated when a shard is built (32 KiB). A larger ghost is allocated once evictions
/// start, sized from the entries the shard then holds: a huge `max_entries` (that the byte bound may
/// keep from ever filling) must not cost memory up front.
const GHOST_SLOTS_UP_FRONT: usize = 1 << 12;

/// `percent`% of `n`, rounded down, without overflowing for any `n`.
fn percent_of(n: usize, percent: usize) -> usize {
    n / 100 * percent + n % 100 * percent / 100
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

/// A value to store: shared bytes kept as they are, or a slice copied in next to the key; or shared
/// bytes charged as a given number of bytes (a handle to data kept elsewhere).
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Shared(Bytes),
    Slice(&'a [u8]),
    Weighted(Bytes, usize),
}

impl Value<'_> {
    /// The bytes the value is charged as.
    pub(crate) fn len(&self) -> usize {
        match self {
            Value::Shared(b) => b.len(),
            Value::Slice(s) => s.len(),
            Value::Weighted(_, weight) => *weight,
        }
    }
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
    /// The value, if it was written as shared [`Bytes`] (then `data` holds the key only).
    shared: Option<Bytes>,
    key_len: u32,
    /// Clock millisecond at which the entry expires, or [`NEVER`].
    pub(crate) expires_at: u64,
    freq: AtomicU8,
    hash: u64,
    id: u64,
    queue: Queue,
}

impl Entry {
    pub(crate) fn is_live(&self, now: &Now<'_>) -> bool {
        self.expires_at == NEVER || now.get() < self.expires_at
    }

    pub(crate) fn touch(&self) {
        let f = self.freq.load(Ordering::Relaxed);
        if f < MAX_FREQ {
            self.freq.store(f + 1, Ordering::Relaxed);
        }
    }

    fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    pub(crate) fn value(&self) -> &[u8] {
        match &self.shared {
            Some(bytes) => bytes,
            None => &self.data[self.key_len as usize..],
        }
    }

    /// The value as [`Bytes`]: shared if it was written so, else a copy.
    pub(crate) fn value_bytes(&self) -> Bytes {
        match &self.shared {
            Some(bytes) => bytes.clone(),
            None => Bytes::copy_from_slice(self.value()),
        }
    }

    /// Replaces the value, keeping the key.
    fn set_value(&mut self, value: Value<'_>) {
        match value {
            Value::Shared(bytes) => {
                if self.data.len() != self.key_len as usize {
                    self.data.truncate(self.key_len as usize);
                    self.data.shrink_to_fit();
                }
                self.shared = Some(bytes);
            }
            Value::Slice(slice) => {
                self.data = joined(self.key(), slice);
                self.shared = None;
            }
            Value::Weighted(bytes, weight) => {
                self.data = joined(self.key(), &weight.to_ne_bytes());
                self.shared = Some(bytes);
            }
        }
    }

    /// The bytes the entry is charged as: its key plus its value (or the value's weight).
    fn size(&self) -> usize {
        let key_len = self.key_len as usize;
        match &self.shared {
            // Shared with a weight after the key.
            Some(_) if self.data.len() > key_len => {
                let mut weight = [0; size_of::<usize>()];
                weight.copy_from_slice(&self.data[key_len..]);
                key_len + usize::from_ne_bytes(weight)
            }
            Some(bytes) => key_len + bytes.len(),
            None => self.data.len(),
        }
    }
}

/// `key` then `value` in one allocation, and the value kept apart if shared.
fn entry_data(key: &str, value: Value<'_>) -> (SmallVec<[u8; INLINE_DATA]>, Option<Bytes>) {
    match value {
        Value::Shared(bytes) => (SmallVec::from_slice(key.as_bytes()), Some(bytes)),
        Value::Slice(slice) => (joined(key.as_bytes(), slice), None),
        Value::Weighted(bytes, weight) => {
            (joined(key.as_bytes(), &weight.to_ne_bytes()), Some(bytes))
        }
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

/// When an entry (by hash and id) expires. Records of entries since removed or given another expiry
/// are skipped when they come due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Expiry {
    at: u64,
    hash: u64,
    id: u64,
}

/// Expiry records, earliest first. Most records arrive in order (one TTL for many writes, as in a
/// tiered cache's L1), and those go to a FIFO, where a push or a pop touches one cache line; the rest
/// go to a heap, where each costs a walk of its height.
#[derive(Debug, Default)]
struct Expiries {
    in_order: VecDeque<Expiry>,
    out_of_order: BinaryHeap<Reverse<Expiry>>,
}

impl Expiries {
    fn push(&mut self, expiry: Expiry) {
        match self.in_order.back() {
            Some(last) if last.at > expiry.at => self.out_of_order.push(Reverse(expiry)),
            _ => self.in_order.push_back(expiry),
        }
    }

    fn peek(&self) -> Option<Expiry> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => Some(*a.min(b)),
            (a, b) => a.copied().or(b.map(|Reverse(b)| *b)),
        }
    }

    fn pop(&mut self) {
        let from_heap = match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => b < a,
            (a, _) => a.is_none(),
        };
        if from_heap {
            self.out_of_order.pop();
        } else {
            self.in_order.pop_front();
        }
    }

    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    fn retain(&mut self, mut keep: impl FnMut(&Expiry) -> bool) {
        self.in_order.retain(&mut keep);
        self.out_of_order.retain(|Reverse(e)| keep(e));
    }
}

/// A queue slot: which entry, by hash and id (stale slots of removed entries are skipped).
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    id: u64,
}

#[derive(Debug, Default)]
struct Fifo {
    slots: VecDeque<Slot>,
    len: usize,
    bytes: usize,
}

/// Why an entry left the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Evicted,
    Expired,
    Deleted,
}

/// Counts of entries that left the shard, for the store's stats.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Departures {
    pub(crate) evicted: u64,
    pub(crate) expired: u64,
}

#[derive(Debug)]
pub(crate) struct Shard {
    table: HashTable<Entry>,
    small: Fifo,
    main: Fifo,
    ghost: Ghost,
    expiries: Expiries,
    next_id: u64,
    max_entries: usize,
    max_bytes: usize,
    small_max_entries: usize,
    small_max_bytes: usize,
    pub(crate) departures: Departures,
}

impl Shard {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Shard {
            table: HashTable::new(),
            small: Fifo::default(),
            main: Fifo::default(),
            ghost: Ghost::new(percent_of(max_entries, GHOST_PERCENT)),
            expiries: Expiries::default(),
            next_id: 0,
            max_entries,
            max_bytes,
            small_max_entries: percent_of(max_entries, SMALL_PERCENT).max(1),
            small_max_bytes: (max_bytes / 100 * SMALL_PERCENT).max(1),
            departures: Departures::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.small.bytes + self.main.bytes
    }

    /// The entry under `key`, live or not.
    pub(crate) fn find(&self, hash: u64, key: &str) -> Option<&Entry> {
        self.table.find(hash, |e| key_eq(e.key(), key))
    }

    /// The live entry under `key`; an expired one is removed.
    pub(crate) fn find_live_mut(
        &mut self,
        hash: u64,
        key: &str,
        now: &Now<'_>,
    ) -> Option<&mut Entry> {
        let live = self.find(hash, key)?.is_live(now);
        if !live {
            self.remove(hash, key, Removal::Expired);
            return None;
        }
        self.table.find_mut(hash, |e| key_eq(e.key(), key))
    }

    /// Writes `value` under `key`. `keep_position` entries stay in their queue; new ones are admitted
    /// through S3-FIFO, evicting as needed to respect both bounds. The caller has checked that the
    /// entry fits in the shard.
    pub(crate) fn upsert(
        &mut self,
        hash: u64,
        key: &str,
        value: Value<'_>,
        expires_at: u64,
        now: &Now<'_>,
    ) {
        let size = key.len() + value.len();
        // The queue of a live entry taken out to grow; a new entry is admitted through the ghost.
        let mut readmit = None;
        // One probe: update a live entry in place, or drop an expired one and insert anew.
        match self.table.find_entry(hash, |e| key_eq(e.key(), key)) {
            Ok(mut found) if found.get().is_live(now) => {
                let entry = found.get_mut();
                let old_size = entry.size();
                let held = self.small.bytes + self.main.bytes - old_size;
                let fits = held.checked_add(size).is_some_and(|b| b <= self.max_bytes);
                if fits {
                    // Fits: no eviction, so the entry keeps its place and its frequency.
                    let (old_expiry, queue, id) = (entry.expires_at, entry.queue, entry.id);
                    entry.set_value(value);
                    entry.expires_at = expires_at;
                    debug_assert_eq!(entry.size(), size);
                    let fifo = self.fifo_mut(queue);
                    fifo.bytes = fifo.bytes - old_size + size;
                    if expires_at != NEVER && expires_at != old_expiry {
                        self.expiries.push(Expiry {
                            at: expires_at,
                            hash,
                            id,
                        });
                        self.compact_expiries_if_sparse();
                    }
                    return;
                }
                // Growing past max_bytes. Making room with the entry in place could evict the entry
                // itself, so take it out, and write it back at the tail of its queue once the others
                // have made room (it fits alone: the caller checked it against the shard's share).
                let entry = found.remove().0;
                readmit = Some(entry.queue);
                self.account_removal(&entry, Removal::Deleted);
            }
            Ok(found) => {
                let entry = found.remove().0;
                self.account_removal(&entry, Removal::Expired);
            }
            Err(_) => {}
        }
        self.make_room(size, now);
        let id = self.next_id;
        self.next_id += 1;
        let queue = match readmit {
            Some(queue) => queue,
            None if self.ghost.remove(hash) => Queue::Main,
            None => Queue::Small,
        };
        let fifo = self.fifo_mut(queue);
        fifo.slots.push_back(Slot { hash, id });
        fifo.len += 1;
        fifo.bytes += size;
        if expires_at != NEVER {
            self.expiries.push(Expiry {
                at: expires_at,
                hash,
                id,
            });
        }
        let (data, shared) = entry_data(key, value);
        let entry = Entry {
            data,
            shared,
            key_len: key.len() as u32,
            expires_at,
            freq: AtomicU8::new(0),
            hash,
            id,
            queue,
        };
        self.table.insert_unique(hash, entry, |e| e.hash);
    }

    /// Sets the expiry of a live entry; returns whether it existed.
    pub(crate) fn set_expiry(
        &mut self,
        hash: u64,
        key: &str,
        expires_at: u64,
        now: &Now<'_>,
    ) -> bool {
        let Some(entry) = self.find_live_mut(hash, key, now) else {
            return false;
        };
        // An unchanged deadline keeps its record: a record per call would pile up under a sliding TTL.
        if entry.expires_at == expires_at {
            return true;
        }
        entry.expires_at = expires_at;
        let id = entry.id;
        if expires_at != NEVER {
            self.expiries.push(Expiry {
                at: expires_at,
                hash,
                id,
            });
            // The entry's previous record is now stale, and nothing else drops stale records while
            // no entry leaves.
            self.compact_expiries_if_sparse();
        }
        true
    }

    /// Removes `key` if present (live or not); returns the entry.
    pub(crate) fn remove(&mut self, hash: u64, key: &str, why: Removal) -> Option<Entry> {
        let entry = self
            .table
            .find_entry(hash, |e| key_eq(e.key(), key))
            .ok()?
            .remove()
            .0;
        self.account_removal(&entry, why);
        Some(entry)
    }

    /// Deletes `key`; returns whether it was live. An expired one still held counts as expired.
    pub(crate) fn delete(&mut self, hash: u64, key: &str, now: &Now<'_>) -> bool {
        let Ok(found) = self.table.find_entry(hash, |e| key_eq(e.key(), key)) else {
            return false;
        };
        let entry = found.remove().0;
        let live = entry.is_live(now);
        let why = if live {
            Removal::Deleted
        } else {
            Removal::Expired
        };
        self.account_removal(&entry, why);
        live
    }

    /// Removes every entry whose key starts with `prefix`; returns how many live ones it removed.
    pub(crate) fn remove_prefix(&mut self, prefix: &str, now: &Now<'_>) -> u64 {
        let mut removed = Vec::new();
        self.table.retain(|e| {
            let hit = e.key().starts_with(prefix.as_bytes());
            if hit {
                removed.push((e.size(), e.queue, e.is_live(now)));
            }
            !hit
        });
        let mut live = 0;
        for (size, queue, is_live) in removed {
            let fifo = self.fifo_mut(queue);
            fifo.len -= 1;
            fifo.bytes -= size;
            if is_live {
                live += 1;
            } else {
                self.departures.expired += 1;
            }
        }
        self.compact_if_sparse();
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
            .filter(|e| e.key().starts_with(prefix) && e.key() > after && e.is_live(now))
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
        for _ in 0..budget {
            let Some(Expiry { at, hash, id }) = self.expiries.peek() else {
                return false;
            };
            if at > now.get() {
                return false;
            }
            self.expiries.pop();
            // One probe: the entry is removed only if this record is still its expiry.
            if let Ok(found) = self
                .table
                .find_entry(hash, |e| e.id == id && e.expires_at == at)
            {
                let entry = found.remove().0;
                self.account_removal(&entry, Removal::Expired);
            }
        }
        true
    }

    /// Whether the shard has expiry work due (cheap check before taking a write lock).
    pub(crate) fn has_due_expiry(&self, now: &Now<'_>) -> bool {
        self.expiries.peek().is_some_and(|e| e.at <= now.get())
    }

    fn make_room(&mut self, incoming: usize, now: &Now<'_>) {
        let extra_entry = usize::from(incoming > 0);
        while !self.table.is_empty()
            && (self.table.len() + extra_entry > self.max_entries
                // Checked: with weights, `incoming` can be near `usize::MAX` (4 GiB on wasm32).
                || self.bytes().checked_add(incoming).is_none_or(|b| b > self.max_bytes))
        {
            let small_over =
                self.small.len > self.small_max_entries || self.small.bytes > self.small_max_bytes;
            if small_over || self.main.len == 0 {
                self.evict_from_small(now);
            } else {
                self.evict_from_main(now);
            }
        }
    }

    fn evict_from_small(&mut self, now: &Now<'_>) {
        while let Some(slot) = self.small.slots.pop_front() {
            let Ok(mut found) = self.table.find_entry(slot.hash, |e| e.id == slot.id) else {
                continue;
            };
            let entry = found.get_mut();
            if entry.is_live(now) && entry.freq.load(Ordering::Relaxed) > 0 {
                *entry.freq.get_mut() = 0;
                entry.queue = Queue::Main;
                let size = entry.size();
                self.small.len -= 1;
                self.small.bytes -= size;
                self.main.len += 1;
                self.main.bytes += size;
                self.main.slots.push_back(slot);
                return;
            }
            let (entry, _) = found.remove();
            if entry.is_live(now) {
                self.account_removal(&entry, Removal::Evicted);
                self.ghost.insert(slot.hash, self.table.len() + 1);
            } else {
                self.account_removal(&entry, Removal::Expired);
            }
            return;
        }
    }

    fn evict_from_main(&mut self, now: &Now<'_>) {
        while let Some(slot) = self.main.slots.pop_front() {
            let Ok(mut found) = self.table.find_entry(slot.hash, |e| e.id == slot.id) else {
                continue;
            };
            let entry = found.get_mut();
            let live = entry.is_live(now);
            let freq = entry.freq.get_mut();
            if live && *freq > 0 {
                *freq -= 1;
                self.main.slots.push_back(slot);
                continue;
            }
            let (entry, _) = found.remove();
            let why = if live {
                Removal::Evicted
            } else {
                Removal::Expired
            };
            self.account_removal(&entry, why);
            return;
        }
    }

    fn account_removal(&mut self, entry: &Entry, why: Removal) {
        let fifo = self.fifo_mut(entry.queue);
        fifo.len -= 1;
        fifo.bytes -= entry.size();
        match why {
            Removal::Evicted => self.departures.evicted += 1,
            Removal::Expired => self.departures.expired += 1,
            Removal::Deleted => {}
        }
        self.compact_if_sparse();
    }

    /// Drops stale slots once they outnumber live ones, so deletes cannot grow the queues forever.
    fn compact_if_sparse(&mut self) {
        for queue in [Queue::Small, Queue::Main] {
            let fifo = match queue {
                Queue::Small => &self.small,
                Queue::Main => &self.main,
            };
            if fifo.slots.len() > 2 * fifo.len + 64 {
                let (table, fifo) = match queue {
                    Queue::Small => (&self.table, &mut self.small),
                    Queue::Main => (&self.table, &mut self.main),
                };
                fifo.slots.retain(|s| {
                    table
                        .find(s.hash, |e| e.id == s.id)
                        .is_some_and(|e| e.queue == queue)
                });
            }
        }
        self.compact_expiries_if_sparse();
    }

    /// Drops stale expiry records once they outnumber live entries, so that TTL rewrites and removals
    /// keep the records O(live entries). Amortized O(1): after a pass, 64 + `len` pushes come first.
    fn compact_expiries_if_sparse(&mut self) {
        if self.expiries.len() > 2 * self.table.len() + 64 {
            let table = &self.table;
            self.expiries.retain(|x| {
                table
                    .find(x.hash, |e| e.id == x.id)
                    .is_some_and(|e| e.expires_at == x.at)
            });
        }
    }

    /// Expiry records held, stale ones included.
    #[cfg(test)]
    pub(crate) fn expiry_records(&self) -> usize {
        self.expiries.len()
    }

    /// Ghost slots allocated.
    #[cfg(test)]
    pub(crate) fn ghost_slots(&self) -> usize {
        self.ghost.slots.len()
    }

    fn fifo_mut(&mut self, queue: Queue) -> &mut Fifo {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }
}

/// Key equality. On wasm32 `memcmp` is a byte-at-a-time loop behind a call, so compare 8 bytes at a
/// time there; elsewhere the platform's `memcmp` is faster.
#[inline]
fn key_eq(stored: &[u8], key: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        let (a, b) = (stored, key.as_bytes());
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
        stored == key.as_bytes()
    }
}

/// Hashes of recently evicted keys, in a direct-mapped table: a newer hash overwrites an older one in
/// its slot, so the ghost forgets roughly in eviction order, at one memory access per insert or
/// lookup and no allocation (past the few times a large ghost grows, see [`GHOST_SLOTS_UP_FRONT`]). A
/// false "remembered" (two keys with one hash) only admits a key to the main queue early.
#[derive(Debug)]
struct Ghost {
    slots: Box<[u64]>,
    /// The most slots it grows to (a power of two).
    max_slots: usize,
}

/// Slots for `capacity` hashes: a power of two, at least 1, and no overflow.
fn ghost_slots(capacity: usize) -> usize {
    capacity
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or(1 << (usize::BITS - 1))
}

/// An empty slot. A key whose hash is 0 is never remembered, which costs it nothing but the shortcut.
const NO_HASH: u64 = 0;

impl Ghost {
    /// A ghost of up to `capacity` hashes, of which at most [`GHOST_SLOTS_UP_FRONT`] are allocated now.
    fn new(capacity: usize) -> Self {
        let max_slots = ghost_slots(capacity);
        Ghost {
            slots: vec![NO_HASH; max_slots.min(GHOST_SLOTS_UP_FRONT)].into_boxed_slice(),
            max_slots,
        }
    }

    /// Grows to [`GHOST_PERCENT`] of `entries` (within `max_slots`), keeping what it remembers.
    #[cold]
    fn grow(&mut self, entries: usize) {
        let len = ghost_slots(percent_of(entries, GHOST_PERCENT)).min(self.max_slots);
        if len <= self.slots.len() {
            return;
        }
        let mut slots = vec![NO_HASH; len].into_boxed_slice();
        for &hash in self.slots.iter().filter(|&&h| h != NO_HASH) {
            slots[hash as usize & (len - 1)] = hash;
        }
        self.slots = slots;
    }

    fn slot(&mut self, hash: u64) -> &mut u64 {
        // Low bits: the shard was chosen by bits 32 and up, so these vary within a shard.
        let mask = self.slots.len() - 1;
        &mut self.slots[hash as usize & mask]
    }

    /// Remembers `hash`, evicted from a shard of `entries` entries (then the shard is full, so this
    /// is its capacity, and what a lazily allocated ghost is sized from).
    fn insert(&mut self, hash: u64, entries: usize) {
        if self.slots.len() < self.max_slots {
            self.grow(entries);
        }
        *self.slot(hash) = hash;
    }

    /// Forgets `hash`; returns whether it was remembered.
    fn remove(&mut self, hash: u64) -> bool {
        let slot = self.slot(hash);
        let remembered = *slot == hash && hash != NO_HASH;
        if remembered {
            *slot = NO_HASH;
        }
        remembered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ghost_allocates_little_up_front_and_grows_keeping_what_it_remembers() {
        let mut ghost = Ghost::new(percent_of(usize::MAX, GHOST_PERCENT));
        assert_eq!(ghost.slots.len(), GHOST_SLOTS_UP_FRONT);
        let hashes: Vec<u64> = (1..=100u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for &hash in &hashes {
            ghost.insert(hash, 1_000);
        }
        // Hashes that shared a slot: the later one won.
        let mask = ghost.slots.len() - 1;
        let remembered: Vec<u64> = hashes
            .into_iter()
            .filter(|&h| ghost.slots[h as usize & mask] == h)
            .collect();
        // A shard that holds 100 000 entries when it evicts gets 15% of that, rounded up.
        ghost.insert(7, 100_000);
        assert_eq!(ghost.slots.len(), 16_384);
        assert!(ghost.remove(7));
        for hash in remembered {
            assert!(ghost.remove(hash), "{hash:x} was forgotten by growing");
        }
        // A small ghost is allocated whole and never grows.
        let mut ghost = Ghost::new(100);
        ghost.insert(7, 1_000_000);
        assert_eq!(ghost.slots.len(), 128);
    }
}
