#![doc = include_str!("../README.md")]
//!
//! # The Rust side
//!
//! This crate is the wasm-bindgen layer only: [`RawCache`] wraps a [`MemoryStore`] and forwards
//! every call to its direct, synchronous API. It is exported to JS as `RawCache`, which the
//! package's hand-written wrapper (`js/src/api.js`, exported as `MemoryCache`) drives. The
//! wrapper does what only JS can do (type checks, holding string and byte values, encoding JSON
//! values, building `Error` objects and merging concurrent `getOrSet` loads); every cache decision
//! is made here or in the store.
//!
//! ## The calling convention
//!
//! Strings and bytes do not cross the boundary as arguments: that would cost an allocation and a
//! free per call. Instead each `RawCache` owns two scratch buffers in wasm memory, whose addresses
//! JS reads once ([`RawCache::key_ptr`], [`RawCache::val_ptr`]). JS writes the UTF-8 key there and
//! passes its length. Results are numbers: `>= 0` for success, [`MISS`] for a miss, and the other
//! negative `ERR_*` codes for errors, whose message [`RawCache::error_message`] returns. Nothing
//! here panics on bad input: lengths, TTLs, slots and numbers are all checked first.
//!
//! All caches of the module share one wasm32 memory of at most 4 GiB, and an allocation that
//! fails there aborts the module and leaves the cache in use borrowed for good. So `maxBytes` is
//! at most [`MAX_MAX_BYTES`], the scratch buffers grow to at most 64 MiB, and both they and large
//! inline values are allocated fallibly: a full memory gives [`ERR_OUT_OF_MEMORY`].
//!
//! ## Values: handles to the JS heap, or inline bytes
//!
//! Strings and `Uint8Array`s stay in the JS heap: the wrapper keeps them in a value table (an
//! array plus a free list of slot numbers) and stores only a *handle* here, with
//! [`RawCache::set_handle`]: the slot number, as the 5 bytes `[HANDLE_TAG, slot (u32, LE)]`, charged
//! as the value's real size (the `weight` JS passes) through [`MemoryStore::set_weighted`]. A hit
//! on a handle makes [`RawCache::get`] return the slot number, so a read copies and decodes
//! nothing. Every policy decision (admission, eviction, TTLs, both bounds, counters) is still made
//! by the store, which charges the weight against `maxBytes` and reports it in `stats().bytes`.
//!
//! The store drops a handle when its entry leaves for any reason (evicted, expired, deleted,
//! cleared, overwritten, or a refused write); the handle then records its slot as freed. JS must
//! not reuse a slot before it comes back from [`RawCache::drain_freed`] (read them at
//! [`RawCache::freed_ptr`]), which it calls after calls that free slots in bulk (`delete`, `clear`,
//! `deletePrefix`, `size`, `stats`, a failed write) and whenever the byte at
//! [`RawCache::drain_flag_ptr`] is non-zero: it is set once [`DRAIN_AT`] slots are waiting, or one
//! slot of a value of [`LARGE_WEIGHT`] bytes or more, so the common path costs a one-byte read and
//! dead values linger in the JS heap only briefly.
//!
//! JSON values and `incr` counters are stored inline, as bytes: JS writes the value into the value
//! buffer and passes its length to [`RawCache::set`]; an inline hit makes [`RawCache::get`] return
//! [`INLINE`], with the value copied into the value buffer and its length in
//! [`RawCache::value_len`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backend_memory::{MemoryStore, MemoryStoreBuilder};
use bytes::Bytes;
use cache_core::{Error, ErrorKind, KeyTtl, Limits, MAX_TTL, ScanCursor, SetOptions};
use wasm_bindgen::prelude::*;

/// A read found nothing.
pub const MISS: i32 = -1;
/// The key is empty or not valid UTF-8 (JS: `TypeError`, code `ERR_INVALID_KEY`).
pub const ERR_INVALID_KEY: i32 = -2;
/// The key (with its namespace) is longer than the limit (JS: `RangeError`, `ERR_KEY_TOO_LONG`).
pub const ERR_KEY_TOO_LONG: i32 = -3;
/// The value (or key plus value) is larger than the limit (JS: `RangeError`, `ERR_VALUE_TOO_LARGE`).
pub const ERR_VALUE_TOO_LARGE: i32 = -4;
/// The TTL is negative, not finite or longer than 100 years (JS: `RangeError`, `ERR_INVALID_TTL`).
pub const ERR_INVALID_TTL: i32 = -5;
/// `incr` found a value that is not an integer (JS: `TypeError`, `ERR_NOT_AN_INTEGER`).
pub const ERR_NOT_AN_INTEGER: i32 = -6;
/// `incr` would leave the safe integer range (JS: `RangeError`, `ERR_OVERFLOW`).
pub const ERR_OVERFLOW: i32 = -7;
/// Another argument is out of range (JS: `RangeError`, `ERR_INVALID_ARGUMENT`).
pub const ERR_INVALID_ARGUMENT: i32 = -8;
/// Anything else the store reports (JS: `Error`, `ERR_CACHE`).
pub const ERR_OTHER: i32 = -9;
/// [`RawCache::get`] found an inline value: it is in the value buffer, [`RawCache::value_len`] bytes.
pub const INLINE: i32 = -10;
/// Wasm memory could not grow for a buffer or a value (JS: `Error`, `ERR_OUT_OF_MEMORY`).
pub const ERR_OUT_OF_MEMORY: i32 = -11;

/// The first byte of a stored handle, followed by the slot number (u32, little-endian). Inline
/// values never start with it (JSON text and decimal counters cannot), and `set` refuses ones that do.
pub const HANDLE_TAG: u8 = 3;
/// How many freed slots may wait before the drain flag asks JS to take them.
pub const DRAIN_AT: usize = 64;
/// A freed slot of a value this large (bytes) raises the drain flag at once.
pub const LARGE_WEIGHT: usize = 64 << 10;
/// The largest slot number: slots come back from [`RawCache::get`] as a non-negative `i32`.
const MAX_SLOT: u32 = i32::MAX as u32;

/// The largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
/// What the scratch buffers start with; they grow on demand.
const INITIAL_BUFFER: usize = 256;
/// Scratch buffers larger than this are shrunk after use.
const SHRINK_ABOVE: usize = 1 << 20;
/// The most a scratch buffer grows to (past the namespace prefix): the largest value.
const MAX_BUFFER: usize = 64 << 20;
/// Inline values larger than this are copied into the store with a fallible allocation, so that a
/// full wasm memory gives [`ERR_OUT_OF_MEMORY`] rather than an abort.
const FALLIBLE_COPY_ABOVE: usize = 64 << 10;

/// Default `maxEntries`.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// Default `maxBytes`: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// The largest `maxBytes`: 1 GiB. A wasm32 module has 4 GiB of memory for every cache it holds,
/// their scratch buffers and copies in flight; past that an allocation aborts the module.
pub const MAX_MAX_BYTES: usize = 1 << 30;

/// The settings `new MemoryCache(options)` passes, already type-checked by the JS wrapper.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RawOptions {
    /// Most entries; `None`: [`DEFAULT_MAX_ENTRIES`].
    pub max_entries: Option<f64>,
    /// Most bytes (keys plus values); `None`: [`DEFAULT_MAX_BYTES`].
    pub max_bytes: Option<f64>,
    /// Default TTL in milliseconds for writes without one; `None` or `0`: no expiry.
    pub ttl: Option<f64>,
    /// Key prefix (`namespace:`) of every key; `None` or empty: no prefix.
    pub namespace: Option<String>,
}

/// Where handles record their slot when the store drops them.
#[derive(Debug, Default)]
struct Sink {
    freed: Mutex<Vec<u32>>,
    /// Non-zero when JS should call [`RawCache::drain_freed`]; JS reads it in wasm memory.
    drain: AtomicU8,
}

/// A stored handle: the bytes the store holds (`[HANDLE_TAG, slot (LE)]`, then a flag byte saying
/// the value is large), and the sink that learns when the store drops it.
struct Handle {
    bytes: [u8; 6],
    sink: Arc<Sink>,
}

impl AsRef<[u8]> for Handle {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..5]
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let [_, a, b, c, d, large] = self.bytes;
        let mut freed = self
            .sink
            .freed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        freed.push(u32::from_le_bytes([a, b, c, d]));
        if large != 0 || freed.len() >= DRAIN_AT {
            self.sink.drain.store(1, Ordering::Relaxed);
        }
    }
}

/// The cache as JS sees it: a [`MemoryStore`] plus the scratch buffers of the calling convention.
#[wasm_bindgen]
#[derive(Debug)]
pub struct RawCache {
    store: MemoryStore,
    /// Slots of handles the store has dropped, not yet drained.
    sink: Arc<Sink>,
    /// The slots the last [`drain_freed`](Self::drain_freed) took, for JS to read.
    freed: Vec<u32>,
    /// Length of the inline value the last [`get`](Self::get) left in the value buffer.
    value_len: usize,
    /// `namespace:` (or nothing), kept at the start of `key_buf` so keys need no copy.
    prefix_len: usize,
    /// `[prefix][user key]`; its length always equals its capacity, so any prefix is in bounds.
    key_buf: Vec<u8>,
    /// Encoded values, both ways.
    val_buf: Vec<u8>,
    default_ttl: Option<Duration>,
    error: String,
    number: f64,
}

#[wasm_bindgen]
impl RawCache {
    /// `new RawCache(maxEntries, maxBytes, ttl, namespace)`; a `NaN` number means "the default".
    /// Throws an `Error` naming the invalid setting. The JS wrapper passes a `NaN` `ttl` and calls
    /// [`set_default_ttl`](Self::set_default_ttl), which reports a bad TTL as [`ERR_INVALID_TTL`].
    #[wasm_bindgen(constructor)]
    pub fn new(
        max_entries: f64,
        max_bytes: f64,
        ttl: f64,
        namespace: String,
    ) -> Result<RawCache, JsError> {
        let some = |n: f64| (!n.is_nan()).then_some(n);
        RawCache::with_options(RawOptions {
            max_entries: some(max_entries),
            max_bytes: some(max_bytes),
            ttl: some(ttl),
            namespace: Some(namespace),
        })
        .map_err(|e| JsError::new(e.message()))
    }

    /// Sets the TTL in milliseconds of writes that give none (`0`: none). Returns `0`, or
    /// [`ERR_INVALID_TTL`] (and keeps the old one).
    #[wasm_bindgen(js_name = setDefaultTtl)]
    pub fn set_default_ttl(&mut self, ms: f64) -> i32 {
        match ttl_from_millis(ms) {
            Ok(ttl) => {
                self.default_ttl = ttl;
                0
            }
            Err(msg) => self.fail_with(ERR_INVALID_TTL, &format!("ttl: {msg}")),
        }
    }

    /// Address of the user-key part of the key buffer (after the namespace prefix).
    #[wasm_bindgen(js_name = keyPtr)]
    pub fn key_ptr(&self) -> usize {
        self.key_buf[self.prefix_len..].as_ptr() as usize
    }

    /// How many key bytes fit at [`key_ptr`](Self::key_ptr).
    #[wasm_bindgen(js_name = keyCap)]
    pub fn key_cap(&self) -> usize {
        self.key_buf.len() - self.prefix_len
    }

    /// Address of the value buffer.
    #[wasm_bindgen(js_name = valPtr)]
    pub fn val_ptr(&self) -> usize {
        self.val_buf.as_ptr() as usize
    }

    /// How many value bytes fit at [`val_ptr`](Self::val_ptr).
    #[wasm_bindgen(js_name = valCap)]
    pub fn val_cap(&self) -> usize {
        self.val_buf.len()
    }

    /// Grows the key buffer to hold at least `n` key bytes. Moves it: read `keyPtr` again.
    /// Returns `0`, or [`ERR_VALUE_TOO_LARGE`] (over 64 MiB) or [`ERR_OUT_OF_MEMORY`], leaving
    /// the buffer as it was.
    #[wasm_bindgen(js_name = reserveKey)]
    pub fn reserve_key(&mut self, n: usize) -> i32 {
        let result = grow(&mut self.key_buf, self.prefix_len, n);
        self.buffer_status(result)
    }

    /// Grows the value buffer to hold at least `n` bytes. Moves it: read `valPtr` again. Returns
    /// as [`reserve_key`](Self::reserve_key) does.
    #[wasm_bindgen(js_name = reserveVal)]
    pub fn reserve_val(&mut self, n: usize) -> i32 {
        let result = grow(&mut self.val_buf, 0, n);
        self.buffer_status(result)
    }

    /// Shrinks scratch buffers that grew past 1 MiB for one large key or value back to their
    /// initial size. Moves them: read `keyPtr` and `valPtr` again.
    pub fn shrink(&mut self) {
        if self.val_buf.len() > SHRINK_ABOVE {
            self.val_buf = vec![0; INITIAL_BUFFER];
        }
        if self.key_buf.len() > SHRINK_ABOVE {
            self.key_buf.truncate(self.prefix_len + INITIAL_BUFFER);
            self.key_buf.shrink_to_fit();
        }
    }

    /// The largest value this cache accepts, in bytes (64 MiB, or less with a small `maxBytes`).
    #[wasm_bindgen(js_name = maxValueLen)]
    pub fn max_value_len(&self) -> usize {
        cache_core::CacheStore::limits(&self.store).max_value_len
    }

    /// Reads the key of `key_len` bytes. Returns the slot number (`>= 0`) of a handle; or
    /// [`INLINE`] for an inline value, copied into the value buffer (growing it if needed), whose
    /// length [`value_len`](Self::value_len) gives; or [`MISS`], or an error code
    /// ([`ERR_OUT_OF_MEMORY`] if the buffer cannot grow; the entry stays).
    pub fn get(&mut self, key_len: usize) -> i32 {
        let key = match key_in(&self.key_buf, self.prefix_len, key_len) {
            Ok(key) => key,
            Err(message) => return self.fail_with(ERR_INVALID_KEY, message),
        };
        // Copy straight from the entry into the value buffer, under the store's read lock.
        let val_buf = &mut self.val_buf;
        let value_len = &mut self.value_len;
        let result = self.store.get_with(key, |value| {
            if let [HANDLE_TAG, a, b, c, d] = *value {
                return Ok(u32::from_le_bytes([a, b, c, d]) as i32);
            }
            grow(val_buf, 0, value.len())?;
            val_buf[..value.len()].copy_from_slice(value);
            *value_len = value.len();
            Ok(INLINE)
        });
        match result {
            Ok(Some(Ok(n))) => n,
            Ok(Some(Err(code))) => self.buffer_status(Err(code)),
            Ok(None) => MISS,
            Err(e) => self.fail(key_len, &e),
        }
    }

    /// Length of the inline value the last [`get`](Self::get) that returned [`INLINE`] copied.
    #[wasm_bindgen(js_name = valueLen)]
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    /// Writes the key of `key_len` bytes with a handle to JS value `slot`, charged `weight` bytes
    /// (a whole number) against `maxBytes` and the value limit. `ttl` as in [`set`](Self::set).
    /// Returns `0` or an error code. Whatever happens, `slot` comes back from
    /// [`drain_freed`](Self::drain_freed) once the store lets go of it (at once if the write fails).
    #[wasm_bindgen(js_name = setHandle)]
    pub fn set_handle(&mut self, key_len: usize, slot: u32, weight: f64, ttl: f64) -> i32 {
        // The handle first: from here on, any failure drops it and so frees `slot`.
        let [a, b, c, d] = slot.to_le_bytes();
        let large = u8::from(weight >= LARGE_WEIGHT as f64);
        let value = Bytes::from_owner(Handle {
            bytes: [HANDLE_TAG, a, b, c, d, large],
            sink: self.sink.clone(),
        });
        if slot > MAX_SLOT {
            return self.fail_with(ERR_INVALID_ARGUMENT, "slot numbers must be below 2^31");
        }
        if !(weight.fract() == 0.0 && weight >= 0.0) {
            return self.fail_with(ERR_INVALID_ARGUMENT, "a weight is a whole number of bytes");
        }
        let ttl = match self.ttl_arg(ttl) {
            Ok(ttl) => ttl,
            Err(code) => return code,
        };
        // `as` saturates: a weight beyond usize is refused as too large by the store.
        let weight = weight as usize;
        let result = match self.key(key_len) {
            Ok(key) => {
                self.store
                    .set_weighted(key, value, weight, SetOptions::new().maybe_ttl(ttl))
            }
            Err(message) => return self.fail_with(ERR_INVALID_KEY, message),
        };
        match result {
            Ok(_) => 0,
            Err(e) => self.fail(key_len, &e),
        }
    }

    /// Takes the slots freed since the last call (see the module docs); returns how many. They are
    /// at [`freed_ptr`](Self::freed_ptr), as little-endian `u32`s, until the next call.
    #[wasm_bindgen(js_name = drainFreed)]
    pub fn drain_freed(&mut self) -> usize {
        self.freed.clear();
        let mut freed = self
            .sink
            .freed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *freed, &mut self.freed);
        self.sink.drain.store(0, Ordering::Relaxed);
        self.freed.len()
    }

    /// Address of the slots the last [`drain_freed`](Self::drain_freed) took.
    #[wasm_bindgen(js_name = freedPtr)]
    pub fn freed_ptr(&self) -> usize {
        self.freed.as_ptr() as usize
    }

    /// Address of the drain flag: a byte that is non-zero when JS should call
    /// [`drain_freed`](Self::drain_freed). It does not move.
    #[wasm_bindgen(js_name = drainFlagPtr)]
    pub fn drain_flag_ptr(&self) -> usize {
        self.sink.drain.as_ptr() as usize
    }

    /// Writes the key of `key_len` bytes with the first `val_len` bytes of the value buffer, stored
    /// inline. `ttl`: milliseconds; negative means the default TTL, `0` none. Returns `0` or an
    /// error code.
    pub fn set(&mut self, key_len: usize, val_len: usize, ttl: f64) -> i32 {
        let ttl = match self.ttl_arg(ttl) {
            Ok(ttl) => ttl,
            Err(code) => return code,
        };
        if val_len > self.val_buf.len() {
            return self.fail_with(ERR_INVALID_ARGUMENT, "value length beyond the value buffer");
        }
        let value = &self.val_buf[..val_len];
        if value.first() == Some(&HANDLE_TAG) {
            return self.fail_with(
                ERR_INVALID_ARGUMENT,
                "inline values cannot start with byte 3",
            );
        }
        let key = match key_in(&self.key_buf, self.prefix_len, key_len) {
            Ok(key) => key,
            Err(message) => return self.fail_with(ERR_INVALID_KEY, message),
        };
        let options = SetOptions::new().maybe_ttl(ttl);
        // `set_slice` copies with an allocation that aborts when memory is full; a large value
        // (that the store would accept) is copied here instead, where that is an error code.
        let result = if val_len > FALLIBLE_COPY_ABOVE && val_len <= self.max_value_len() {
            let mut owned = Vec::new();
            if owned.try_reserve_exact(val_len).is_err() {
                return self.buffer_status(Err(ERR_OUT_OF_MEMORY));
            }
            owned.extend_from_slice(value);
            self.store.set(key, owned, options)
        } else {
            self.store.set_slice(key, value, options)
        };
        match result {
            Ok(_) => 0,
            Err(e) => self.fail(key_len, &e),
        }
    }

    /// `1` if the key exists and has not expired, `0` if not, or an error code.
    pub fn has(&mut self, key_len: usize) -> i32 {
        let result = match self.key(key_len) {
            Ok(key) => self.store.exists(key),
            Err(message) => return self.fail_with(ERR_INVALID_KEY, message),
        };
        match result {
            Ok(found) => i32::from(found),
            Err(e) => self.fail(key_len, &e),
        }
    }

    /// `1` if the key existed (and was live) and is now deleted, `0` if not, or an error code.
    pub fn delete(&mut self, key_len: usize) -> i32 {
        let result = match self.key(key_len) {
            Ok(key) => self.store.delete(key),
            Err(message) => return self.fail_with(ERR_INVALID_KEY, message),
        };
        match result {
            Ok(found) => i32::from(found),
            Err(e) => self.fail(key_len, &e),
        }
    }

    /// Remaining lifetime in milliseconds: `Infinity` if the key never expires, [`MISS`] if it is
    /// absent, or another (negative) error code.
    pub fn ttl(&mut self, key_len: usize) -> f64 {
        let result = match self.key(key_len) {
            Ok(key) => self.store.ttl(key),
            Err(message) => return f64::from(self.fail_with(ERR_INVALID_KEY, message)),
        };
        match result {
            Ok(KeyTtl::Missing) => f64::from(MISS),
            Ok(KeyTtl::Persistent) => f64::INFINITY,
            Ok(KeyTtl::ExpiresIn(left)) => left.as_millis() as f64,
            Err(e) => f64::from(self.fail(key_len, &e)),
        }
    }

    /// Adds `delta` (a safe integer) to the integer at the key, creating it at `0` (with `ttl`, as
    /// in [`set`](Self::set)) if absent. Returns `0` and leaves the result in
    /// [`number`](Self::number), or an error code. A result outside ±(2^53 − 1) is undone and
    /// reported as [`ERR_OVERFLOW`], since a JS number could not hold it exactly.
    pub fn incr(&mut self, key_len: usize, delta: f64, ttl: f64) -> i32 {
        if !(delta.fract() == 0.0 && delta.abs() <= MAX_SAFE_INTEGER) {
            return self.fail_with(
                ERR_INVALID_ARGUMENT,
                &format!("incr delta must be a safe integer, got {delta}"),
            );
        }
        let delta = delta as i64;
        let ttl = match self.ttl_arg(ttl) {
            Ok(ttl) => ttl,
            Err(code) => return code,
        };
        let result = match self.key(key_len) {
            Ok(key) => match self.store.incr_by(key, delta, ttl) {
                Ok(n) if (n as f64).abs() > MAX_SAFE_INTEGER => {
                    // Only an existing counter gets here (a new one holds `delta`, which is
                    // safe), so undoing it keeps its TTL.
                    let undo = self.store.incr_by(key, -delta, None);
                    debug_assert!(undo.is_ok());
                    Err(Error::new(
                        ErrorKind::Overflow,
                        format!(
                            "incrementing counter {key:?} by {delta} gives {n}, beyond Number.MAX_SAFE_INTEGER"
                        ),
                    ))
                }
                other => other,
            },
            Err(message) => return self.fail_with(ERR_INVALID_KEY, message),
        };
        match result {
            Ok(n) => {
                self.number = n as f64;
                0
            }
            Err(e) => self.fail(key_len, &e),
        }
    }

    /// The number the last successful [`incr`](Self::incr) produced.
    pub fn number(&self) -> f64 {
        self.number
    }

    /// Deletes every key of this cache (of its namespace); returns how many it deleted.
    pub fn clear(&mut self) -> f64 {
        let prefix = self.prefix().to_owned();
        self.store.clear(&prefix) as f64
    }

    /// Deletes every key that starts with `prefix` (inside the namespace); returns how many.
    #[wasm_bindgen(js_name = deletePrefix)]
    pub fn delete_prefix(&mut self, prefix: &str) -> f64 {
        let full = format!("{}{prefix}", self.prefix());
        self.store.clear(&full) as f64
    }

    /// The live keys (without the namespace prefix), sorted.
    pub fn keys(&self) -> Vec<String> {
        let prefix = self.prefix();
        let mut keys = Vec::new();
        let mut cursor = ScanCursor::start();
        loop {
            let count = self.store.len().max(1);
            let Ok(page) = self.store.scan(prefix, &cursor, count) else {
                break;
            };
            keys.extend(page.keys.into_iter().map(|k| k[prefix.len()..].to_owned()));
            match page.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        keys
    }

    /// Live entries: reclaims expired ones first.
    pub fn size(&self) -> f64 {
        self.store.purge_expired();
        self.store.len() as f64
    }

    /// `[hits, misses, evictions, expirations, entries, bytes]`, after reclaiming expired entries.
    pub fn stats(&self) -> Vec<f64> {
        self.store.purge_expired();
        let s = self.store.stats();
        [
            s.hits,
            s.misses,
            s.evictions,
            s.expirations,
            s.entries,
            s.bytes,
        ]
        .map(|n| n as f64)
        .to_vec()
    }

    /// The message of the last error code returned.
    #[wasm_bindgen(js_name = errorMessage)]
    pub fn error_message(&self) -> String {
        self.error.clone()
    }
}

/// The `WebAssembly.Memory` the scratch buffers live in.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

impl RawCache {
    /// A cache with `options`, or a [`ErrorKind::Config`] error naming the invalid setting.
    pub fn with_options(options: RawOptions) -> Result<RawCache, Error> {
        let max_entries = count_option(
            "maxEntries",
            options.max_entries,
            DEFAULT_MAX_ENTRIES,
            u32::MAX as usize,
        )?;
        let max_bytes = count_option(
            "maxBytes",
            options.max_bytes,
            DEFAULT_MAX_BYTES,
            MAX_MAX_BYTES,
        )?;
        let default_ttl = match options.ttl {
            None => None,
            Some(ms) => ttl_from_millis(ms)
                .map_err(|msg| Error::new(ErrorKind::Config, format!("ttl: {msg}")))?,
        };
        let namespace = options.namespace.unwrap_or_default();
        let prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}:")
        };
        let store = MemoryStoreBuilder::default()
            .max_entries(max_entries)
            .max_bytes(max_bytes)
            // `stats()` promises hits and misses; without threads the count is a plain add.
            .count_hits_and_misses(true)
            // The namespace prefix does not count against the key limit users see.
            .limits(Limits::new(
                Limits::default().max_key_len + prefix.len(),
                Limits::default().max_value_len,
            ))
            .try_build()?;
        let mut key_buf = prefix.clone().into_bytes();
        key_buf.resize(prefix.len() + INITIAL_BUFFER, 0);
        Ok(RawCache {
            store,
            sink: Arc::default(),
            freed: Vec::new(),
            value_len: 0,
            prefix_len: prefix.len(),
            key_buf,
            val_buf: vec![0; INITIAL_BUFFER],
            default_ttl,
            error: String::new(),
            number: 0.0,
        })
    }

    /// The store behind this cache.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// Copies `key` into the key buffer and `value` into the value buffer; returns their lengths.
    /// This is what the JS wrapper does by writing to wasm memory (for Rust callers and tests).
    ///
    /// # Panics
    /// If a buffer cannot grow to hold them (over 64 MiB, or memory is full).
    pub fn stage(&mut self, key: &str, value: &[u8]) -> (usize, usize) {
        assert_eq!(self.reserve_key(key.len()), 0, "key too long to stage");
        assert_eq!(self.reserve_val(value.len()), 0, "value too large to stage");
        let start = self.prefix_len;
        self.key_buf[start..start + key.len()].copy_from_slice(key.as_bytes());
        self.val_buf[..value.len()].copy_from_slice(value);
        (key.len(), value.len())
    }

    /// The first `len` bytes of the value buffer.
    pub fn value(&self, len: usize) -> &[u8] {
        &self.val_buf[..len]
    }

    fn prefix(&self) -> &str {
        // The prefix was copied from a `String` and is never written to again.
        std::str::from_utf8(&self.key_buf[..self.prefix_len]).unwrap_or_default()
    }

    /// The full key: the prefix plus `len` bytes written by JS.
    fn key(&self, len: usize) -> Result<&str, &'static str> {
        key_in(&self.key_buf, self.prefix_len, len)
    }

    /// A TTL argument in milliseconds: negative is the default, `0` none.
    fn ttl_arg(&mut self, ms: f64) -> Result<Option<Duration>, i32> {
        if ms < 0.0 {
            return Ok(self.default_ttl);
        }
        ttl_from_millis(ms).map_err(|msg| self.fail_with(ERR_INVALID_TTL, &format!("ttl: {msg}")))
    }

    fn fail_with(&mut self, code: i32, message: &str) -> i32 {
        message.clone_into(&mut self.error);
        code
    }

    /// `0`, or the error code of a scratch buffer that could not grow.
    fn buffer_status(&mut self, result: Result<(), i32>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(ERR_OUT_OF_MEMORY) => self.fail_with(
                ERR_OUT_OF_MEMORY,
                "out of memory: the wasm memory (at most 4 GiB, shared by every cache) is full",
            ),
            Err(code) => self.fail_with(
                code,
                &format!("a key or value is at most {MAX_BUFFER} bytes"),
            ),
        }
    }

    fn fail(&mut self, key_len: usize, error: &Error) -> i32 {
        let code = match error.kind() {
            ErrorKind::InvalidKey if key_len == 0 => ERR_INVALID_KEY,
            ErrorKind::InvalidKey => {
                // The store's limit includes the prefix (and is lower in a cache under 2 KiB).
                let limit = cache_core::CacheStore::limits(&self.store)
                    .max_key_len
                    .saturating_sub(self.prefix_len);
                return self.fail_with(
                    ERR_KEY_TOO_LONG,
                    &format!("key is {key_len} bytes, longer than the limit of {limit} bytes"),
                );
            }
            ErrorKind::ValueTooLarge => ERR_VALUE_TOO_LARGE,
            ErrorKind::InvalidArgument => ERR_INVALID_ARGUMENT,
            ErrorKind::NotAnInteger => ERR_NOT_AN_INTEGER,
            ErrorKind::Overflow => ERR_OVERFLOW,
            _ => ERR_OTHER,
        };
        self.fail_with(code, error.message())
    }
}

/// The key in `key_buf`: the prefix of `prefix_len` bytes plus `len` bytes written by JS.
fn key_in(key_buf: &[u8], prefix_len: usize, len: usize) -> Result<&str, &'static str> {
    let end = prefix_len.saturating_add(len);
    if len == 0 {
        return Err("key is empty");
    }
    if end > key_buf.len() {
        return Err("key length beyond the key buffer");
    }
    std::str::from_utf8(&key_buf[..end]).map_err(|_| "key is not valid UTF-8")
}

/// Grows `buf` (zero-filled, length = capacity), which keeps `start` bytes before its scratch
/// part, to at least `n` scratch bytes: to the next power of two, within [`MAX_BUFFER`]. Fails
/// with an error code, leaving `buf` as it was, if `n` is over that cap or memory is full.
fn grow(buf: &mut Vec<u8>, start: usize, n: usize) -> Result<(), i32> {
    if start.saturating_add(n) <= buf.len() {
        return Ok(());
    }
    if n > MAX_BUFFER {
        return Err(ERR_VALUE_TOO_LARGE);
    }
    let len = start + n.next_power_of_two().min(MAX_BUFFER);
    buf.try_reserve_exact(len - buf.len())
        .map_err(|_| ERR_OUT_OF_MEMORY)?;
    buf.resize(len, 0);
    Ok(())
}

/// A whole number option from 1 to `max`, or its default.
fn count_option(
    name: &str,
    value: Option<f64>,
    default: usize,
    max: usize,
) -> Result<usize, Error> {
    match value {
        None => Ok(default),
        Some(n) if n.fract() == 0.0 && (1.0..=max as f64).contains(&n) => Ok(n as usize),
        Some(n) => Err(Error::new(
            ErrorKind::Config,
            format!("{name} must be a whole number between 1 and {max}, got {n}"),
        )),
    }
}

/// Milliseconds (possibly fractional) to a TTL; `0` means none.
fn ttl_from_millis(ms: f64) -> Result<Option<Duration>, String> {
    if !(ms.is_finite() && ms >= 0.0) {
        return Err(format!(
            "must be a finite, non-negative number of milliseconds, got {ms}"
        ));
    }
    if ms == 0.0 {
        return Ok(None);
    }
    if ms > MAX_TTL.as_millis() as f64 {
        return Err(format!(
            "{ms} ms is longer than the maximum of {} ms (100 years)",
            MAX_TTL.as_millis()
        ));
    }
    Ok(Some(if ms.fract() == 0.0 {
        Duration::from_millis(ms as u64)
    } else {
        Duration::from_nanos((ms * 1e6).ceil() as u64)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(namespace: &str) -> RawCache {
        RawCache::with_options(RawOptions {
            max_entries: Some(100.0),
            max_bytes: Some(10_000.0),
            ttl: None,
            namespace: Some(namespace.to_owned()),
        })
        .unwrap()
    }

    fn set(c: &mut RawCache, key: &str, value: &[u8], ttl: f64) -> i32 {
        let (k, v) = c.stage(key, value);
        c.set(k, v, ttl)
    }

    fn get(c: &mut RawCache, key: &str) -> Option<Vec<u8>> {
        let (k, _) = c.stage(key, b"");
        let n = c.get(k);
        assert!(n == INLINE || n == MISS, "{n}");
        (n == INLINE).then(|| c.value(c.value_len()).to_vec())
    }

    fn set_handle(c: &mut RawCache, key: &str, slot: u32, weight: f64, ttl: f64) -> i32 {
        let (k, _) = c.stage(key, b"");
        c.set_handle(k, slot, weight, ttl)
    }

    fn get_slot(c: &mut RawCache, key: &str) -> i32 {
        let (k, _) = c.stage(key, b"");
        c.get(k)
    }

    fn drained(c: &mut RawCache) -> Vec<u32> {
        let n = c.drain_freed();
        let mut slots = c.freed[..n].to_vec();
        slots.sort_unstable();
        slots
    }

    fn drain_flag(c: &RawCache) -> u8 {
        c.sink.drain.load(Ordering::Relaxed)
    }

    #[test]
    fn handles_are_charged_their_weight_and_come_back_when_dropped() {
        let mut c = cache("ns");
        assert_eq!(set_handle(&mut c, "a", 7, 65.0, -1.0), 0);
        assert_eq!(get_slot(&mut c, "a"), 7);
        assert_eq!(c.stats()[..2], [1.0, 0.0]);
        // Keys (with the namespace) plus weights, not the 5-byte handles.
        assert_eq!(c.stats()[5], 4.0 + 65.0);
        assert!(drained(&mut c).is_empty());
        // Overwritten by a handle, then by an inline value; deleted; cleared.
        assert_eq!(set_handle(&mut c, "a", 8, 10.0, -1.0), 0);
        assert_eq!(drained(&mut c), [7]);
        assert_eq!(set(&mut c, "a", b"42", -1.0), 0);
        assert_eq!(drained(&mut c), [8]);
        assert_eq!(get(&mut c, "a").as_deref(), Some(&b"42"[..]));
        let (k, _) = c.stage("a", b"");
        assert_eq!(c.incr(k, 1.0, 0.0), 0);
        assert_eq!(set_handle(&mut c, "b", 9, 10.0, 0.0), 0);
        let (k, _) = c.stage("b", b"");
        assert_eq!(c.incr(k, 1.0, 0.0), ERR_NOT_AN_INTEGER);
        assert_eq!(c.delete(k), 1);
        assert_eq!(drained(&mut c), [9]);
        for slot in 0..3 {
            assert_eq!(set_handle(&mut c, &format!("k{slot}"), slot, 1.0, 0.0), 0);
        }
        assert_eq!(c.clear(), 4.0);
        assert_eq!(drained(&mut c), [0, 1, 2]);
        assert_eq!(c.stats()[5], 0.0);
    }

    #[test]
    fn a_refused_handle_comes_back_at_once() {
        let mut c = cache("");
        assert_eq!(
            set_handle(&mut c, "a", 1, 20_000.0, 0.0),
            ERR_VALUE_TOO_LARGE
        );
        assert_eq!(set_handle(&mut c, "", 2, 1.0, 0.0), ERR_INVALID_KEY);
        assert_eq!(set_handle(&mut c, "a", 3, 1.0, f64::NAN), ERR_INVALID_TTL);
        assert_eq!(set_handle(&mut c, "a", 4, 0.5, 0.0), ERR_INVALID_ARGUMENT);
        assert_eq!(
            set_handle(&mut c, "a", 5, f64::INFINITY, 0.0),
            ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            set_handle(&mut c, "a", 1 << 31, 1.0, 0.0),
            ERR_INVALID_ARGUMENT
        );
        assert_eq!(set_handle(&mut c, "a", 6, 1e300, 0.0), ERR_VALUE_TOO_LARGE);
        assert_eq!(drained(&mut c), [1, 2, 3, 4, 5, 6, 1 << 31]);
        assert_eq!(c.size(), 0.0);
        // Inline values cannot pass for handles.
        assert_eq!(
            set(&mut c, "a", &[HANDLE_TAG, 1, 0, 0, 0], 0.0),
            ERR_INVALID_ARGUMENT
        );
    }

    #[test]
    fn evictions_and_expiries_free_slots_and_raise_the_drain_flag() {
        let mut c = cache("");
        // 100 entries at most: 100 + DRAIN_AT writes evict DRAIN_AT of them.
        let total = 100 + DRAIN_AT as u32;
        for slot in 0..total {
            assert_eq!(drain_flag(&c), 0, "{slot}");
            assert_eq!(set_handle(&mut c, &format!("k{slot}"), slot, 1.0, 0.0), 0);
        }
        assert_eq!(drain_flag(&c), 1);
        let freed = drained(&mut c);
        assert_eq!(freed.len(), DRAIN_AT);
        assert_eq!(drain_flag(&c), 0);
        // Every freed slot is gone from the store, every other one is still there.
        for slot in 0..total {
            let found = get_slot(&mut c, &format!("k{slot}"));
            if freed.contains(&slot) {
                assert_eq!(found, MISS, "{slot}");
            } else {
                assert_eq!(found, slot as i32);
            }
        }
        // One large value raises the flag as soon as it leaves.
        assert_eq!(c.clear(), 100.0);
        drained(&mut c);
        assert_eq!(
            set_handle(&mut c, "big", 1, LARGE_WEIGHT as f64, 0.0),
            ERR_VALUE_TOO_LARGE
        );
        assert_eq!(drain_flag(&c), 1);
        assert_eq!(drained(&mut c), [1]);
        // An expired handle is freed when it is reclaimed.
        assert_eq!(set_handle(&mut c, "t", 2, 1.0, 0.001), 0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.size(), 0.0);
        assert_eq!(drained(&mut c), [2]);
    }

    #[test]
    fn round_trips_under_a_namespace() {
        let mut c = cache("ns");
        assert_eq!(set(&mut c, "a", b"\x01hello", -1.0), 0);
        assert_eq!(get(&mut c, "a").as_deref(), Some(&b"\x01hello"[..]));
        assert_eq!(
            c.store().get("ns:a").unwrap().as_deref(),
            Some(&b"\x01hello"[..])
        );
        assert_eq!(c.keys(), vec!["a".to_owned()]);
        assert_eq!(get(&mut c, "b"), None);
        assert_eq!(c.stats()[..2], [2.0, 1.0]);
        assert_eq!(c.clear(), 1.0);
        assert_eq!(c.size(), 0.0);
    }

    #[test]
    fn values_larger_than_the_buffer_grow_it() {
        let mut c = cache("");
        let big = vec![7u8; 5_000];
        assert_eq!(set(&mut c, "big", &big, 0.0), 0);
        assert_eq!(get(&mut c, "big"), Some(big));
    }

    #[test]
    fn large_inline_values_are_copied_fallibly_and_round_trip() {
        let mut c = RawCache::with_options(RawOptions::default()).unwrap();
        let big = vec![b'7'; FALLIBLE_COPY_ABOVE + 1];
        assert_eq!(set(&mut c, "big", &big, 0.0), 0);
        assert_eq!(get(&mut c, "big"), Some(big));
        let (k, _) = c.stage("big", b"");
        assert_eq!(c.incr(k, 1.0, 0.0), ERR_NOT_AN_INTEGER);
        // Too large for the store: refused as before, not copied.
        let (k, _) = c.stage("huge", b"");
        assert_eq!(c.reserve_val(MAX_BUFFER), 0);
        assert_eq!(c.set(k, MAX_BUFFER, 0.0), ERR_VALUE_TOO_LARGE);
    }

    #[test]
    fn buffers_grow_within_a_cap_and_report_failures() {
        let mut c = cache("ns");
        let (key_cap, val_cap) = (c.key_cap(), c.val_cap());
        for n in [MAX_BUFFER + 1, usize::MAX] {
            assert_eq!(c.reserve_val(n), ERR_VALUE_TOO_LARGE, "{n}");
            assert_eq!(c.reserve_key(n), ERR_VALUE_TOO_LARGE, "{n}");
        }
        assert_eq!((c.key_cap(), c.val_cap()), (key_cap, val_cap));
        assert_eq!(c.reserve_key(3_000), 0);
        assert_eq!(c.key_cap(), 4_096);
        assert_eq!(c.prefix(), "ns:");
        assert_eq!(c.reserve_val(MAX_BUFFER), 0);
        assert_eq!(c.val_cap(), MAX_BUFFER);
        assert_eq!(c.buffer_status(Err(ERR_OUT_OF_MEMORY)), ERR_OUT_OF_MEMORY);
        assert!(c.error_message().contains("out of memory"));
    }

    #[test]
    fn max_bytes_is_capped_below_the_wasm32_address_space() {
        let with = |max_bytes: f64| {
            RawCache::with_options(RawOptions {
                max_bytes: Some(max_bytes),
                ..RawOptions::default()
            })
        };
        assert!(with(MAX_MAX_BYTES as f64).is_ok());
        for n in [MAX_MAX_BYTES as f64 + 1.0, u32::MAX as f64] {
            let err = with(n).unwrap_err();
            assert!(err.message().contains("between 1 and 1073741824"), "{err}");
        }
    }

    #[test]
    fn the_default_ttl_is_checked_like_a_write_ttl() {
        let mut c = cache("");
        for ms in [-1.0, f64::NAN, f64::INFINITY, 1e15] {
            assert_eq!(c.set_default_ttl(ms), ERR_INVALID_TTL, "{ms}");
        }
        assert_eq!(c.set_default_ttl(60_000.0), 0);
        set(&mut c, "t", b"v", -1.0);
        let (k, _) = c.stage("t", b"");
        assert!((59_000.0..=60_000.0).contains(&c.ttl(k)));
    }

    #[test]
    fn key_too_long_names_the_real_limit() {
        let mut c = RawCache::with_options(RawOptions {
            max_bytes: Some(1_000.0),
            namespace: Some("ns".to_owned()),
            ..RawOptions::default()
        })
        .unwrap();
        // Half of a shard's share of maxBytes holds the key with its `ns:` prefix (on wasm32, one
        // shard: 500 bytes).
        let limit = cache_core::CacheStore::limits(c.store()).max_key_len - 3;
        assert!(limit < 500, "{limit}");
        assert_eq!(set(&mut c, &"k".repeat(limit), b"1", 0.0), 0);
        assert_eq!(
            set(&mut c, &"k".repeat(limit + 1), b"1", 0.0),
            ERR_KEY_TOO_LONG
        );
        assert!(
            c.error_message()
                .contains(&format!("limit of {limit} bytes")),
            "{}",
            c.error_message()
        );
    }

    #[test]
    fn bad_input_returns_codes_not_panics() {
        let mut c = cache("");
        assert_eq!(c.get(0), ERR_INVALID_KEY);
        assert_eq!(c.get(usize::MAX), ERR_INVALID_KEY);
        let long = "k".repeat(2_000);
        assert_eq!(set(&mut c, &long, b"v", 0.0), ERR_KEY_TOO_LONG);
        assert!(
            c.error_message().contains("limit of 1024 bytes"),
            "{}",
            c.error_message()
        );
        assert_eq!(set(&mut c, "k", &[0; 20_000], 0.0), ERR_VALUE_TOO_LARGE);
        for ttl in [f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(set(&mut c, "k", b"v", ttl), ERR_INVALID_TTL, "{ttl}");
        }
        let (k, v) = c.stage("k", b"v");
        assert_eq!(c.set(k, v + (1 << 20), 0.0), ERR_INVALID_ARGUMENT);
        assert_eq!(c.incr(k, 0.5, 0.0), ERR_INVALID_ARGUMENT);
        assert_eq!(c.size(), 0.0);
        let zero = RawOptions {
            max_entries: Some(0.0),
            ..RawOptions::default()
        };
        assert!(RawCache::with_options(zero).is_err());
    }

    #[test]
    fn incr_counts_and_refuses_unsafe_results() {
        let mut c = cache("");
        let (k, _) = c.stage("n", b"");
        assert_eq!(c.incr(k, 5.0, 0.0), 0);
        assert_eq!(c.number(), 5.0);
        assert_eq!(c.incr(k, -7.0, 0.0), 0);
        assert_eq!(c.number(), -2.0);
        assert_eq!(c.incr(k, MAX_SAFE_INTEGER, 0.0), 0);
        assert_eq!(c.incr(k, 10.0, 0.0), ERR_OVERFLOW);
        assert_eq!(get(&mut c, "n").as_deref(), Some(&b"9007199254740989"[..]));
        assert_eq!(set(&mut c, "s", b"\x01x", 0.0), 0);
        let (k, _) = c.stage("s", b"");
        assert_eq!(c.incr(k, 1.0, 0.0), ERR_NOT_AN_INTEGER);
    }

    #[test]
    fn ttl_reports_remaining_time() {
        let mut c = cache("");
        set(&mut c, "t", b"v", 60_000.0);
        set(&mut c, "p", b"v", 0.0);
        let (k, _) = c.stage("t", b"");
        assert!((59_000.0..=60_000.0).contains(&c.ttl(k)));
        let (k, _) = c.stage("p", b"");
        assert_eq!(c.ttl(k), f64::INFINITY);
        let (k, _) = c.stage("zz", b"");
        assert_eq!(c.ttl(k), f64::from(MISS));
    }
}
