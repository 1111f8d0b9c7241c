//! [`CollectionStore`]: hashes, lists, sets and sorted sets, each stored under one key, as Redis
//! has them.

use async_trait::async_trait;
use bytes::Bytes;

use crate::{CacheStore, Error, ErrorKind, Limits, Result, ScanCursor};

/// The most elements one call reads or takes: ranges, pops and pages are bounded by it, so no single
/// call returns an unbounded collection.
pub const MAX_COLLECTION_PAGE: usize = 10_000;

/// The order of a sorted-set read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Lowest score first (ties: members in byte order).
    #[default]
    Ascending,
    /// Highest score first (ties: members in reverse byte order).
    Descending,
}

/// One end of a score range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreBound {
    /// Scores from (or up to) this one, included.
    Inclusive(f64),
    /// Scores beyond this one, excluded.
    Exclusive(f64),
    /// No bound at this end.
    Unbounded,
}

/// One page of a collection read with a cursor ([`CollectionStore::hscan`],
/// [`CollectionStore::sscan`]). Start with [`ScanCursor::start`] and pass `next` back until it is
/// `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// What this page holds; may be empty even when `next` is `Some`.
    pub items: Vec<T>,
    /// The cursor of the next page, or `None` when the collection has been read through.
    pub next: Option<ScanCursor>,
}

/// Hashes, lists, sets and sorted sets, each stored under one key of a [`CacheStore`].
///
/// Rules that hold for every method, besides those of [`CacheStore`]:
///
/// - **A collection is one key.** [`ttl`](CacheStore::ttl), [`expire`](CacheStore::expire),
///   [`persist`](CacheStore::persist), [`delete`](CacheStore::delete),
///   [`exists`](CacheStore::exists), [`scan`](CacheStore::scan) and [`clear`](CacheStore::clear)
///   treat it as such; a write keeps the key's TTL; once its TTL passes, the whole collection is gone.
/// - **An empty collection does not exist.** Removing its last element removes the key, so a read
///   of it finds nothing and `exists` says `false`.
/// - **Wrong types.** Using a key as a type it does not hold (a list as a hash, a string as a set)
///   fails with [`ErrorKind::WrongType`] and changes nothing; so does a [`CacheStore::get`] (or any
///   string operation) of a collection.
/// - **Limits.** Hash field names and set and sorted-set members obey the key limits
///   ([`Limits::max_key_len`], not empty); values obey [`Limits::max_value_len`]. A bad one is
///   [`ErrorKind::InvalidKey`] or [`ErrorKind::ValueTooLarge`] and writes nothing.
/// - **Bounded reads.** No call reads or takes more than [`MAX_COLLECTION_PAGE`] elements; whole
///   hashes and sets are read a page at a time.
/// - **Atomicity.** Every write is atomic and linearizable per key, as the string operations are.
/// - **Scores** are `f64` and never NaN ([`ErrorKind::InvalidArgument`]).
#[async_trait]
pub trait CollectionStore: CacheStore {
    /// Sets hash fields; returns how many were new.
    ///
    /// Behavior:
    /// - creates the hash if absent; an existing field takes its new value;
    /// - a field given twice takes its later value;
    /// - an empty `fields` is [`ErrorKind::InvalidArgument`].
    async fn hset(&self, key: &str, fields: &[(&str, Bytes)]) -> Result<u64>;

    /// A hash field's value; `None` if the hash or the field is absent.
    async fn hget(&self, key: &str, field: &str) -> Result<Option<Bytes>>;

    /// Many fields' values, one per field in the order asked (`None` for absent ones).
    async fn hmget(&self, key: &str, fields: &[&str]) -> Result<Vec<Option<Bytes>>>;

    /// Deletes hash fields; returns how many existed. The hash goes when its last field does.
    async fn hdel(&self, key: &str, fields: &[&str]) -> Result<u64>;

    /// Adds `delta` to the integer in a hash field (0 if absent), atomically; returns the result.
    ///
    /// Behavior:
    /// - a field that is not a decimal `i64` is [`ErrorKind::NotAnInteger`], unchanged;
    /// - a result outside `i64` is [`ErrorKind::Overflow`], unchanged;
    /// - concurrent calls never lose an update.
    async fn hincr_by(&self, key: &str, field: &str, delta: i64) -> Result<i64>;

    /// Whether a hash has a field.
    async fn hexists(&self, key: &str, field: &str) -> Result<bool>;

    /// How many fields a hash has (0 if absent).
    async fn hlen(&self, key: &str) -> Result<u64>;

    /// One page of a hash's fields and values, about `count` of them (a hint, at most
    /// [`MAX_COLLECTION_PAGE`]). Every field present for the whole read is returned at least once.
    async fn hscan(
        &self,
        key: &str,
        cursor: ScanCursor,
        count: usize,
    ) -> Result<Page<(String, Bytes)>>;

    /// Pushes values at the head of a list, in order (so the last one ends up first); returns the
    /// list's new length. An empty `values` is [`ErrorKind::InvalidArgument`].
    async fn lpush(&self, key: &str, values: &[Bytes]) -> Result<u64>;

    /// Pushes values at the tail of a list, in order; returns the list's new length.
    async fn rpush(&self, key: &str, values: &[Bytes]) -> Result<u64>;

    /// Takes up to `count` (1 to [`MAX_COLLECTION_PAGE`]) values from the head of a list; an absent
    /// list gives none. Concurrent pops never return one element twice.
    async fn lpop(&self, key: &str, count: usize) -> Result<Vec<Bytes>>;

    /// Takes up to `count` values from the tail of a list, last first.
    async fn rpop(&self, key: &str, count: usize) -> Result<Vec<Bytes>>;

    /// Up to `count` (at most [`MAX_COLLECTION_PAGE`]) values of a list from index `start` on; a
    /// negative `start` counts from the end (`-1`: the last). Out of range gives fewer, or none.
    async fn lrange(&self, key: &str, start: i64, count: usize) -> Result<Vec<Bytes>>;

    /// How many values a list has (0 if absent).
    async fn llen(&self, key: &str) -> Result<u64>;

    /// Keeps only the values of a list from index `start` to `stop`, both included (negative: from
    /// the end); an empty range removes the list.
    async fn ltrim(&self, key: &str, start: i64, stop: i64) -> Result<()>;

    /// Adds members to a set; returns how many were new.
    async fn sadd(&self, key: &str, members: &[Bytes]) -> Result<u64>;

    /// Removes members from a set; returns how many were in it.
    async fn srem(&self, key: &str, members: &[Bytes]) -> Result<u64>;

    /// Whether a set has a member.
    async fn sismember(&self, key: &str, member: &[u8]) -> Result<bool>;

    /// How many members a set has (0 if absent).
    async fn scard(&self, key: &str) -> Result<u64>;

    /// One page of a set's members, about `count` of them (a hint, at most
    /// [`MAX_COLLECTION_PAGE`]). Every member present for the whole read is returned at least once.
    async fn sscan(&self, key: &str, cursor: ScanCursor, count: usize) -> Result<Page<Bytes>>;

    /// Adds members with scores to a sorted set, or gives existing members their new score;
    /// returns how many were new.
    async fn zadd(&self, key: &str, members: &[(f64, Bytes)]) -> Result<u64>;

    /// Adds `delta` to a member's score (0 if absent), atomically; returns the new score. A result
    /// that is NaN is [`ErrorKind::InvalidArgument`], unchanged.
    async fn zincr_by(&self, key: &str, member: &[u8], delta: f64) -> Result<f64>;

    /// Removes members from a sorted set; returns how many were in it.
    async fn zrem(&self, key: &str, members: &[Bytes]) -> Result<u64>;

    /// A member's score; `None` if absent.
    async fn zscore(&self, key: &str, member: &[u8]) -> Result<Option<f64>>;

    /// A member's rank (0: the first in `order`); `None` if absent.
    async fn zrank(&self, key: &str, member: &[u8], order: Order) -> Result<Option<u64>>;

    /// Up to `count` (at most [`MAX_COLLECTION_PAGE`]) members with their scores, from rank `start`
    /// in `order` (negative: from the other end, `-1` being the last).
    async fn zrange_by_rank(
        &self,
        key: &str,
        start: i64,
        count: usize,
        order: Order,
    ) -> Result<Vec<(Bytes, f64)>>;

    /// Up to `count` (at most [`MAX_COLLECTION_PAGE`]) members with scores between `min` and `max`,
    /// skipping the first `offset`, in `order`.
    #[allow(clippy::too_many_arguments)]
    async fn zrange_by_score(
        &self,
        key: &str,
        min: ScoreBound,
        max: ScoreBound,
        offset: usize,
        count: usize,
        order: Order,
    ) -> Result<Vec<(Bytes, f64)>>;

    /// How many members a sorted set has (0 if absent).
    async fn zcard(&self, key: &str) -> Result<u64>;
}

/// Argument checks shared by every [`CollectionStore`], so that each backend refuses the same
/// input with the same error.
#[derive(Debug, Clone, Copy)]
pub struct CollectionArgs<'a> {
    limits: &'a Limits,
}

impl<'a> CollectionArgs<'a> {
    /// Checks against `limits`.
    pub fn new(limits: &'a Limits) -> Self {
        CollectionArgs { limits }
    }

    /// A hash field name: as a key.
    pub fn field(&self, field: &str) -> Result<()> {
        self.limits
            .check_key(field)
            .map_err(|e| Error::new(e.kind(), format!("hash field: {}", e.message())))
    }

    /// A set or sorted-set member: as a key's bytes.
    pub fn member(&self, member: &[u8]) -> Result<()> {
        if member.is_empty() || member.len() > self.limits.max_key_len {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                format!(
                    "a member is {} bytes; members are 1 to {} bytes (max_key_len)",
                    member.len(),
                    self.limits.max_key_len
                ),
            ));
        }
        Ok(())
    }

    /// A value stored in a collection.
    pub fn value(&self, key: &str, value: &[u8]) -> Result<()> {
        self.limits.check_entry(key, value.len())
    }

    /// A score.
    pub fn score(&self, score: f64) -> Result<()> {
        if score.is_nan() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a score must not be NaN",
            ));
        }
        Ok(())
    }

    /// A list of elements a write takes: not empty.
    pub fn not_empty<T>(&self, what: &str, items: &[T]) -> Result<()> {
        if items.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{what} is empty: give at least one"),
            ));
        }
        Ok(())
    }

    /// A count of elements to read or take: 1 to [`MAX_COLLECTION_PAGE`].
    pub fn count(&self, count: usize) -> Result<()> {
        if !(1..=MAX_COLLECTION_PAGE).contains(&count) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("count must be from 1 to {MAX_COLLECTION_PAGE}, got {count}"),
            ));
        }
        Ok(())
    }
}

/// The inclusive index range `[start, stop]` (negative: from the end) that reads `count` elements
/// from `start`, for list and rank reads.
pub fn index_range(start: i64, count: usize) -> (i64, i64) {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let stop = start.saturating_add(count).saturating_sub(1);
    // From the end, a range never wraps round past the last element.
    if start < 0 && stop >= 0 {
        (start, -1)
    } else {
        (start, stop)
    }
}
