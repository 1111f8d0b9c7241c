#![doc = include_str!("../README.md")]
//!
//! # The Rust side
//!
//! This crate is the wasm-bindgen layer only: [`RawEngine`] wraps the memory store's slot
//! [`Engine`], the one eviction and expiry policy of the project (`MemoryStore` runs on it too, so
//! the conformance suite checks it). The package's hand-written wrapper (`js/src/api.js`, exported
//! as `MemoryCache`) keeps the keys (a `Map` from key to slot) and the values (by slot), and asks
//! the engine which slots stay.
//!
//! ## The calling convention
//!
//! Every argument and result is a number. A hit calls nothing here: JS reads the slot's expiry
//! and bumps its frequency through typed arrays over wasm memory, at the addresses in the
//! [header](RawEngine::header_ptr). After every call that changes the engine, the header holds:
//!
//! | word | meaning |
//! |---|---|
//! | [`H_LAYOUT`] | changes when the per-slot arrays move: read the addresses again |
//! | [`H_STATE`] | address of the state bytes (frequency in bits 0–1, a queue in bits 2–3) |
//! | [`H_EXPIRES`] | address of the expiries (`f64` ms, `Infinity`: never), or 0 while none |
//! | [`H_VICTIMS`], [`H_VICTIM_COUNT`] | the slots the call removed, each `slot << 1 \| expired` |
//! | [`H_NEED_SLOT`], [`H_NEED_EXPIRY`], [`H_NEED_COMPACT`] | non-zero when the next insert (with an expiry), or any change, needs [`reserve`](RawEngine::reserve) first |
//! | [`H_SLOTS`] | slots allocated: every slot number is below it |
//!
//! ## Calls that cannot be cut short
//!
//! A call can be cut short half way by an exception it does not throw itself: a stack overflow
//! (`RangeError`) when it is made from deep recursion. wasm-bindgen then refuses every later call
//! on the object ("recursive use of an object"), and an allocator cut short may leave its heap
//! broken. So the calls that change entries (`insert`, `update`, `setExpiry`, `remove`, `purge`,
//! `clear`) make no function call at all on their usual path: the engine's code is inlined into
//! them, they never allocate (JS calls [`reserve`](RawEngine::reserve), which does, when a `NEED`
//! word says so, after checking the stack has room), and they remove at most [`VICTIMS`] entries
//! before returning [`ERR_AGAIN`]. A wasm function checks the stack only when it is entered, so
//! such a call either fails at its start, having changed nothing, or completes.
//!
//! Time comes in as an argument (`now`, in the milliseconds JS measures expiries in); nothing here
//! calls out to JS. Nothing here panics on bad input either: slot numbers, sizes and times are all
//! checked.

use backend_memory::engine::{Engine, Refused, Removal};
use wasm_bindgen::prelude::*;

/// The size is not a whole number of bytes from 0 to 2^32 − 1, or over `maxBytes`.
pub const ERR_VALUE_TOO_LARGE: i32 = -4;
/// An argument is out of range (a `NaN` time, a fractional size).
pub const ERR_INVALID_ARGUMENT: i32 = -8;
/// Wasm memory could not grow.
pub const ERR_OUT_OF_MEMORY: i32 = -11;
/// The slot holds no entry.
pub const ERR_NO_SUCH_SLOT: i32 = -12;
/// [`VICTIMS`] entries left and there is still no room: take the victims and call again.
pub const ERR_AGAIN: i32 = -13;

/// The most entries one call removes (and reports as victims) before it returns [`ERR_AGAIN`].
pub const VICTIMS: usize = 256;

/// The most entries a cache holds: a JS `Map` holds at most 2^24.
pub const MAX_ENTRIES: usize = 1 << 24;

/// Header word: changes when the per-slot arrays move.
pub const H_LAYOUT: usize = 0;
/// Header word: address of the state bytes.
pub const H_STATE: usize = 1;
/// Header word: address of the expiries, or 0.
pub const H_EXPIRES: usize = 2;
/// Header word: address of the victims of the last call.
pub const H_VICTIMS: usize = 3;
/// Header word: how many victims the last call left.
pub const H_VICTIM_COUNT: usize = 4;
/// Header word: non-zero if the next insert would allocate a slot.
pub const H_NEED_SLOT: usize = 5;
/// Header word: non-zero if the next insert with an expiry would allocate.
pub const H_NEED_EXPIRY: usize = 6;
/// Header word: slots allocated (every slot number is below it).
pub const H_SLOTS: usize = 7;
/// Header word: non-zero if the next change would compact the expiry records.
pub const H_NEED_COMPACT: usize = 8;
/// How many `u32` words the header has.
pub const HEADER_WORDS: usize = 9;

/// The engine of one `MemoryCache`, with its header and victim list.
#[wasm_bindgen]
#[derive(Debug)]
pub struct RawEngine {
    engine: Engine<u32>,
    header: Box<[u32; HEADER_WORDS]>,
    /// The slots the last call removed (`slot << 1 | expired`); room for one per slot is
    /// reserved, so recording them never allocates.
    victims: Vec<u32>,
}

#[wasm_bindgen]
impl RawEngine {
    /// `new RawEngine(maxEntries, maxBytes)`: at most `maxEntries` entries (a whole number from 1
    /// to 2^24) and `maxBytes` bytes (a whole number from 1 to 2^53 − 1, or `Infinity`).
    #[wasm_bindgen(constructor)]
    pub fn new(max_entries: f64, max_bytes: f64) -> Result<RawEngine, JsError> {
        RawEngine::with_bounds(max_entries, max_bytes).map_err(|e| JsError::new(&e))
    }

    /// Address of the header: [`HEADER_WORDS`] `u32`s (see the module docs). It never moves.
    #[wasm_bindgen(js_name = headerPtr)]
    #[inline(always)]
    pub fn header_ptr(&self) -> usize {
        self.header.as_ptr() as usize
    }

    /// Allocates what the next insert (if `slot`) or write of an expiry (if `expiry`) needs, and
    /// compacts the expiry records if they are due. Returns 0, or [`ERR_OUT_OF_MEMORY`] with
    /// nothing changed.
    pub fn reserve(&mut self, slot: bool, expiry: bool) -> i32 {
        self.victims.clear();
        let status = match self.engine.reserve(slot, expiry) {
            Ok(()) => 0,
            Err(refused) => code(refused),
        };
        self.publish();
        status
    }

    /// Admits an entry with key hash `hash`, charged `size` bytes, expiring at `expires_at`
    /// (`Infinity`: never) on the clock that reads `now`. Returns its slot, or an error code with
    /// nothing admitted. The entries that left to make room are the victims; with [`ERR_AGAIN`],
    /// take them and call again.
    #[inline(always)]
    pub fn insert(&mut self, hash: u32, size: f64, expires_at: f64, now: f64) -> i32 {
        self.victims.clear();
        let status = match checked(size, expires_at, now) {
            Ok(size) => {
                let victims = &mut self.victims;
                let budget = victims.capacity();
                match self
                    .engine
                    .insert(hash, size, expires_at, now, budget, |slot, _, why| {
                        victims.push(victim(slot, why));
                    }) {
                    Ok(slot) => slot as i32,
                    Err(refused) => code(refused),
                }
            }
            Err(code) => code,
        };
        self.publish();
        status
    }

    /// Sets the size and expiry of the entry in `slot` (an overwrite). Returns 0 or an error code;
    /// victims and [`ERR_AGAIN`] as for [`insert`](Self::insert) (`slot` is never a victim).
    #[inline(always)]
    pub fn update(&mut self, slot: u32, size: f64, expires_at: f64, now: f64) -> i32 {
        self.victims.clear();
        let status = match checked(size, expires_at, now) {
            Ok(size) => {
                let victims = &mut self.victims;
                let budget = victims.capacity();
                match self
                    .engine
                    .update(slot, size, expires_at, now, budget, |slot, _, why| {
                        victims.push(victim(slot, why));
                    }) {
                    Ok(()) => 0,
                    Err(refused) => code(refused),
                }
            }
            Err(code) => code,
        };
        self.publish();
        status
    }

    /// Sets when `slot` expires (`Infinity`: never). Returns 0 or an error code.
    #[wasm_bindgen(js_name = setExpiry)]
    #[inline(always)]
    pub fn set_expiry(&mut self, slot: u32, expires_at: f64, now: f64) -> i32 {
        self.victims.clear();
        let status = if expires_at.is_nan() || now.is_nan() {
            ERR_INVALID_ARGUMENT
        } else {
            match self.engine.set_expiry(slot, expires_at, now) {
                Ok(()) => 0,
                Err(refused) => code(refused),
            }
        };
        self.publish();
        status
    }

    /// Removes the entry in `slot`, as expired or deleted. Returns 1, or 0 if it held none.
    #[inline(always)]
    pub fn remove(&mut self, slot: u32, expired: bool) -> i32 {
        self.victims.clear();
        let why = if expired {
            Removal::Expired
        } else {
            Removal::Deleted
        };
        let removed = self.engine.remove(slot, why);
        self.publish();
        i32::from(removed)
    }

    /// Removes up to [`VICTIMS`] entries whose expiry has passed at `now`; they are the victims.
    /// Returns how many, or an error code; when it is [`VICTIMS`], more may be due.
    #[inline(always)]
    pub fn purge(&mut self, now: f64) -> i32 {
        self.victims.clear();
        if now.is_nan() {
            return ERR_INVALID_ARGUMENT;
        }
        let victims = &mut self.victims;
        let budget = victims.capacity();
        self.engine.purge_expired(now, budget, |slot, _, why| {
            victims.push(victim(slot, why));
        });
        let removed = self.victims.len() as i32;
        self.publish();
        removed
    }

    /// Removes every entry.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.victims.clear();
        self.engine.clear();
        self.publish();
    }

    /// Entries held (expired ones not yet removed included).
    #[inline(always)]
    pub fn len(&self) -> u32 {
        self.engine.len() as u32
    }

    /// Whether no entry is held.
    #[wasm_bindgen(js_name = isEmpty)]
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.engine.is_empty()
    }

    /// Bytes charged to the entries held.
    #[inline(always)]
    pub fn bytes(&self) -> f64 {
        self.engine.bytes() as f64
    }

    /// Entries evicted since the engine was made.
    #[inline(always)]
    pub fn evictions(&self) -> f64 {
        self.engine.departures().evicted as f64
    }

    /// Entries removed as expired since the engine was made.
    #[inline(always)]
    pub fn expirations(&self) -> f64 {
        self.engine.departures().expired as f64
    }
}

impl RawEngine {
    /// [`new`](Self::new), with the error as a message.
    pub fn with_bounds(max_entries: f64, max_bytes: f64) -> Result<RawEngine, String> {
        if !(max_entries.fract() == 0.0 && (1.0..=MAX_ENTRIES as f64).contains(&max_entries)) {
            return Err(format!(
                "maxEntries must be a whole number from 1 to {MAX_ENTRIES}, got {max_entries}"
            ));
        }
        let max_bytes = if max_bytes == f64::INFINITY {
            u64::MAX
        } else if max_bytes.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&max_bytes) {
            max_bytes as u64
        } else {
            return Err(format!(
                "maxBytes must be a whole number from 1 to 2^53 - 1, or Infinity, got {max_bytes}"
            ));
        };
        let mut raw = RawEngine {
            engine: Engine::new(max_entries as usize, max_bytes),
            header: Box::new([0; HEADER_WORDS]),
            victims: Vec::with_capacity(VICTIMS),
        };
        raw.publish();
        Ok(raw)
    }

    /// The engine, for tests.
    pub fn engine(&self) -> &Engine<u32> {
        &self.engine
    }

    /// The victims of the last call, for tests.
    pub fn victims(&self) -> &[u32] {
        &self.victims
    }

    /// The header as JS reads it, for tests.
    pub fn header(&self) -> [u32; HEADER_WORDS] {
        *self.header
    }

    /// Writes the header words (see the module docs).
    #[inline(always)]
    fn publish(&mut self) {
        let e = &self.engine;
        let header = &mut *self.header;
        header[H_LAYOUT] = e.layout();
        header[H_STATE] = e.state_ptr() as usize as u32;
        header[H_EXPIRES] = e.expires_ptr() as usize as u32;
        header[H_VICTIMS] = self.victims.as_ptr() as usize as u32;
        header[H_VICTIM_COUNT] = self.victims.len() as u32;
        header[H_NEED_SLOT] = u32::from(e.needs_reserve(true, false));
        header[H_NEED_EXPIRY] = u32::from(e.needs_reserve(false, true));
        header[H_NEED_COMPACT] = u32::from(e.needs_reserve(false, false));
        header[H_SLOTS] = e.slots() as u32;
    }
}

/// A size and two times from JS, checked.
#[inline(always)]
fn checked(size: f64, expires_at: f64, now: f64) -> Result<u32, i32> {
    if expires_at.is_nan() || now.is_nan() || size.is_nan() || size < 0.0 || size.fract() != 0.0 {
        return Err(ERR_INVALID_ARGUMENT);
    }
    if size > f64::from(u32::MAX) {
        return Err(ERR_VALUE_TOO_LARGE);
    }
    Ok(size as u32)
}

#[inline(always)]
fn victim(slot: u32, why: Removal) -> u32 {
    slot << 1 | u32::from(why == Removal::Expired)
}

#[inline(always)]
fn code(refused: Refused) -> i32 {
    match refused {
        Refused::NoSuchSlot => ERR_NO_SUCH_SLOT,
        Refused::TooLarge => ERR_VALUE_TOO_LARGE,
        Refused::OutOfMemory => ERR_OUT_OF_MEMORY,
        Refused::Again => ERR_AGAIN,
    }
}

/// The `WebAssembly.Memory` the engines' arrays live in.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_memory::engine::NEVER;

    #[test]
    fn a_call_removes_at_most_victims_entries_then_asks_to_be_called_again() {
        let mut raw = engine(1_000.0, 1_000.0);
        for i in 0..1_000 {
            raw.reserve(true, false);
            assert!(raw.insert(i, 1.0, NEVER, 0.0) >= 0);
        }
        let victims = raw.victims.as_ptr();
        let mut again = 0;
        let slot = loop {
            match raw.insert(5_000, 600.0, NEVER, 0.0) {
                ERR_AGAIN => {
                    assert_eq!(raw.victims().len(), VICTIMS);
                    again += 1;
                }
                slot => break slot,
            }
        };
        assert!(slot >= 0);
        assert_eq!(again, 600 / VICTIMS);
        assert_eq!(raw.victims.as_ptr(), victims, "the victim list never moves");
        assert_eq!(raw.bytes(), 1_000.0);
        raw.engine().check().unwrap();
    }

    fn engine(max_entries: f64, max_bytes: f64) -> RawEngine {
        RawEngine::with_bounds(max_entries, max_bytes).unwrap()
    }

    #[test]
    fn evictions_are_reported_as_victims_before_their_slots_are_reused() {
        let mut raw = engine(2.0, f64::INFINITY);
        assert_eq!(raw.insert(1, 1.0, NEVER, 0.0), 0);
        assert_eq!(raw.insert(2, 1.0, NEVER, 0.0), 1);
        assert!(raw.victims().is_empty());
        // Full: the oldest unread entry (slot 0) leaves, and its slot takes the new one.
        assert_eq!(raw.insert(3, 1.0, NEVER, 0.0), 0);
        assert_eq!(raw.victims(), [0 << 1]);
        assert_eq!(raw.header()[H_VICTIM_COUNT], 1);
        raw.engine().check().unwrap();
    }

    #[test]
    fn expired_entries_leave_as_expired_victims() {
        let mut raw = engine(10.0, f64::INFINITY);
        assert_eq!(raw.header()[H_EXPIRES], 0);
        let slot = raw.insert(1, 1.0, 10.0, 0.0);
        assert_ne!(raw.header()[H_EXPIRES], 0);
        assert_eq!(raw.purge(5.0), 0);
        assert_eq!(raw.purge(10.0), 1);
        assert_eq!(raw.victims(), [(slot as u32) << 1 | 1]);
        assert_eq!(raw.expirations(), 1.0);
    }

    #[test]
    fn bad_arguments_return_codes_and_change_nothing() {
        let mut raw = engine(10.0, 100.0);
        for (size, at, now) in [
            (0.5, NEVER, 0.0),
            (-1.0, NEVER, 0.0),
            (f64::NAN, NEVER, 0.0),
            (1.0, f64::NAN, 0.0),
            (1.0, NEVER, f64::NAN),
        ] {
            assert_eq!(raw.insert(1, size, at, now), ERR_INVALID_ARGUMENT);
        }
        assert_eq!(raw.insert(1, 101.0, NEVER, 0.0), ERR_VALUE_TOO_LARGE);
        assert_eq!(raw.insert(1, 1e10, NEVER, 0.0), ERR_VALUE_TOO_LARGE);
        assert_eq!(raw.update(3, 1.0, NEVER, 0.0), ERR_NO_SUCH_SLOT);
        assert_eq!(raw.set_expiry(u32::MAX, 1.0, 0.0), ERR_NO_SUCH_SLOT);
        assert_eq!(raw.remove(7, false), 0);
        assert_eq!(raw.purge(f64::NAN), ERR_INVALID_ARGUMENT);
        assert_eq!(raw.len(), 0);
        raw.engine().check().unwrap();
        for (entries, bytes) in [(0.0, 1.0), (1.5, 1.0), (2e7, 1.0), (1.0, 0.0), (1.0, -1.0)] {
            assert!(
                RawEngine::with_bounds(entries, bytes).is_err(),
                "{entries} {bytes}"
            );
        }
    }

    #[test]
    fn after_reserve_nothing_needs_allocating() {
        let mut raw = engine(1_000.0, f64::INFINITY);
        for i in 0..1_000 {
            let h = raw.header();
            if h[H_NEED_SLOT] != 0 || h[H_NEED_EXPIRY] != 0 {
                assert_eq!(raw.reserve(true, true), 0);
                let h = raw.header();
                assert_eq!((h[H_NEED_SLOT], h[H_NEED_EXPIRY]), (0, 0));
            }
            let (layout, victims) = (raw.header()[H_LAYOUT], raw.victims.as_ptr());
            assert!(raw.insert(i, 1.0, 100.0 + f64::from(i), 0.0) >= 0);
            assert_eq!(
                raw.header()[H_LAYOUT],
                layout,
                "insert {i} moved the arrays"
            );
            assert_eq!(raw.victims.as_ptr(), victims);
        }
        raw.engine().check().unwrap();
    }
}
