//! Hashes, lists, sets and sorted sets in the memory store: each is one entry, charged the bytes of
//! its fields, members and values, evicted and expired whole.
//!
//! The cost of each operation is in the crate's README ("Collections").

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    CollectionStore, Error, ErrorKind, MAX_COLLECTION_PAGE, Order, Page, Result, ScanCursor,
    ScoreBound,
};

use crate::MemoryStore;

/// Which collection a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Hash,
    List,
    Set,
    SortedSet,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Hash => "a hash",
            Kind::List => "a list",
            Kind::Set => "a set",
            Kind::SortedSet => "a sorted set",
        }
    }
}

/// A score with a total order (never NaN here: writes refuse NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Members by score (ties in byte order) and scores by member.
#[derive(Debug, Default)]
struct SortedSet {
    by_member: HashMap<Bytes, f64>,
    by_score: BTreeMap<Score, BTreeSet<Bytes>>,
}

impl SortedSet {
    /// Members with their scores, lowest first.
    fn ascending(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.by_score
            .iter()
            .flat_map(|(s, members)| members.iter().map(move |m| (m, s.0)))
    }

    /// Members ranked before `member` (of score `score`), lowest first.
    fn rank(&self, member: &[u8], score: f64) -> usize {
        let below: usize = self
            .by_score
            .range(..Score(score))
            .map(|(_, members)| members.len())
            .sum();
        let tied = self.by_score.get(&Score(score)).map_or(0, |members| {
            members
                .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(member)))
                .count()
        });
        below + tied
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.by_member.remove(member)?;
        if let Some(members) = self.by_score.get_mut(&Score(score)) {
            members.remove(member);
            if members.is_empty() {
                self.by_score.remove(&Score(score));
            }
        }
        Some(score)
    }
}

#[derive(Debug)]
enum Elements {
    Hash(BTreeMap<Box<str>, Bytes>),
    List(VecDeque<Bytes>),
    Set(BTreeSet<Bytes>),
    SortedSet(SortedSet),
}

/// What a sorted-set member's score is charged, besides the member's bytes.
const SCORE_BYTES: usize = 8;

/// A collection, with the bytes it is charged (fields, members and values; a sorted set's
/// scores at [`SCORE_BYTES`] each).
#[derive(Debug)]
pub(crate) struct Collection {
    elements: Elements,
    bytes: usize,
}

impl Collection {
    pub(crate) fn new(kind: Kind) -> Self {
        let elements = match kind {
            Kind::Hash => Elements::Hash(BTreeMap::new()),
            Kind::List => Elements::List(VecDeque::new()),
            Kind::Set => Elements::Set(BTreeSet::new()),
            Kind::SortedSet => Elements::SortedSet(SortedSet::default()),
        };
        Collection { elements, bytes: 0 }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self.elements {
            Elements::Hash(_) => Kind::Hash,
            Elements::List(_) => Kind::List,
            Elements::Set(_) => Kind::Set,
            Elements::SortedSet(_) => Kind::SortedSet,
        }
    }

    /// The bytes it is charged.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        match &self.elements {
            Elements::Hash(h) => h.len(),
            Elements::List(l) => l.len(),
            Elements::Set(s) => s.len(),
            Elements::SortedSet(z) => z.by_member.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Refuses a write that would make a collection larger than `room` bytes.
fn fits(grown: usize, room: usize, key: &str) -> Result<()> {
    if grown > room {
        return Err(Error::new(
            ErrorKind::ValueTooLarge,
            format!(
                "collection {key:?} would be {grown} bytes, more than one shard's share of max_bytes allows ({room})"
            ),
        ));
    }
    Ok(())
}

/// A collection read's or write's view of one entry: the collection, whether the entry existed,
/// and how large the collection may grow.
pub(crate) struct Slot<'a> {
    pub(crate) collection: &'a mut Collection,
    /// The most bytes the collection may be charged (the entry's room minus its key).
    pub(crate) room: usize,
}

fn hash(c: &mut Collection) -> &mut BTreeMap<Box<str>, Bytes> {
    match &mut c.elements {
        Elements::Hash(h) => h,
        _ => unreachable!("the kind was checked"),
    }
}

fn list(c: &mut Collection) -> &mut VecDeque<Bytes> {
    match &mut c.elements {
        Elements::List(l) => l,
        _ => unreachable!("the kind was checked"),
    }
}

fn set(c: &mut Collection) -> &mut BTreeSet<Bytes> {
    match &mut c.elements {
        Elements::Set(s) => s,
        _ => unreachable!("the kind was checked"),
    }
}

fn sorted(c: &mut Collection) -> &mut SortedSet {
    match &mut c.elements {
        Elements::SortedSet(z) => z,
        _ => unreachable!("the kind was checked"),
    }
}

fn parse_i64(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    canonical.then(|| text.parse().ok()).flatten()
}

/// Resolves Redis-style inclusive indices `start..=stop` (negative: from the end) over `len`.
fn resolve_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = i64::try_from(len).ok()?;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

/// A cursor of a hash or set read: the last field or member returned, hex-encoded (members are
/// bytes).
fn encode_cursor(last: &[u8]) -> ScanCursor {
    use std::fmt::Write;
    let mut hex = String::with_capacity(2 * last.len() + 1);
    hex.push('>');
    for b in last {
        let _ = write!(hex, "{b:02x}");
    }
    ScanCursor::from_backend(hex)
}

fn decode_cursor(op: &str, cursor: &ScanCursor) -> Result<Option<Vec<u8>>> {
    if cursor.is_start() {
        return Ok(None);
    }
    let bad = || {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{op} cursor {:?} was not made by this store",
                cursor.as_str()
            ),
        )
    };
    let hex = cursor.as_str().strip_prefix('>').ok_or_else(bad)?;
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()
        .map(Some)
}

#[async_trait]
impl CollectionStore for MemoryStore {
    async fn hset(&self, key: &str, fields: &[(&str, Bytes)]) -> Result<u64> {
        let args = self.collection_args();
        args.not_empty("fields", fields)?;
        for (field, value) in fields {
            args.field(field)?;
            args.value(key, value)?;
        }
        self.write(key, Kind::Hash, |slot| {
            // The growth first, with a field given twice counted at its later value.
            let mut latest: BTreeMap<&str, &Bytes> = BTreeMap::new();
            for (field, value) in fields {
                latest.insert(field, value);
            }
            let mut grown = slot.collection.bytes;
            for (field, value) in &latest {
                match hash(slot.collection).get(*field) {
                    Some(old) => grown = grown - old.len() + value.len(),
                    None => grown += field.len() + value.len(),
                }
            }
            fits(grown, slot.room, key)?;
            let h = hash(slot.collection);
            let mut added = 0;
            for (field, value) in latest {
                if h.insert(field.into(), value.clone()).is_none() {
                    added += 1;
                }
            }
            slot.collection.bytes = grown;
            Ok(added)
        })
        .map(Option::unwrap_or_default)
    }

    async fn hget(&self, key: &str, field: &str) -> Result<Option<Bytes>> {
        self.collection_args().field(field)?;
        self.read(key, Kind::Hash, |c| match &c.elements {
            Elements::Hash(h) => h.get(field).cloned(),
            _ => unreachable!("the kind was checked"),
        })
        .map(Option::flatten)
    }

    async fn hmget(&self, key: &str, fields: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let args = self.collection_args();
        for field in fields {
            args.field(field)?;
        }
        let found = self.read(key, Kind::Hash, |c| match &c.elements {
            Elements::Hash(h) => fields.iter().map(|f| h.get(*f).cloned()).collect(),
            _ => unreachable!("the kind was checked"),
        })?;
        Ok(found.unwrap_or_else(|| vec![None; fields.len()]))
    }

    async fn hdel(&self, key: &str, fields: &[&str]) -> Result<u64> {
        let args = self.collection_args();
        args.not_empty("fields", fields)?;
        for field in fields {
            args.field(field)?;
        }
        self.update(key, Kind::Hash, |slot| {
            let mut removed = 0;
            for field in fields {
                if let Some(old) = hash(slot.collection).remove(*field) {
                    slot.collection.bytes -= field.len() + old.len();
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .map(Option::unwrap_or_default)
    }

    async fn hincr_by(&self, key: &str, field: &str, delta: i64) -> Result<i64> {
        self.collection_args().field(field)?;
        self.write(key, Kind::Hash, |slot| {
            let old = hash(slot.collection).get(field).cloned();
            let current = match &old {
                Some(value) => parse_i64(value).ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotAnInteger,
                        format!("hash field {field:?} of {key:?} is not a decimal i64"),
                    )
                })?,
                None => 0,
            };
            let next = current.checked_add(delta).ok_or_else(|| {
                Error::new(
                    ErrorKind::Overflow,
                    format!("incrementing hash field {field:?} of {key:?} ({current}) by {delta} overflows an i64"),
                )
            })?;
            let text = Bytes::from(next.to_string());
            let grown = match &old {
                Some(old) => slot.collection.bytes - old.len() + text.len(),
                None => slot.collection.bytes + field.len() + text.len(),
            };
            fits(grown, slot.room, key)?;
            hash(slot.collection).insert(field.into(), text);
            slot.collection.bytes = grown;
            Ok(next)
        })
        .map(|n| n.expect("a write always runs"))
    }

    async fn hexists(&self, key: &str, field: &str) -> Result<bool> {
        self.collection_args().field(field)?;
        self.read(key, Kind::Hash, |c| match &c.elements {
            Elements::Hash(h) => h.contains_key(field),
            _ => unreachable!("the kind was checked"),
        })
        .map(Option::unwrap_or_default)
    }

    async fn hlen(&self, key: &str) -> Result<u64> {
        self.read(key, Kind::Hash, |c| c.len() as u64)
            .map(Option::unwrap_or_default)
    }

    async fn hscan(
        &self,
        key: &str,
        cursor: ScanCursor,
        count: usize,
    ) -> Result<Page<(String, Bytes)>> {
        let after = decode_cursor("hscan", &cursor)?;
        let count = count.clamp(1, MAX_COLLECTION_PAGE);
        let page = self.read(key, Kind::Hash, |c| {
            let Elements::Hash(h) = &c.elements else {
                unreachable!("the kind was checked")
            };
            let after = after.as_deref().map(String::from_utf8_lossy);
            let from = match &after {
                Some(after) => Bound::Excluded(after.as_ref()),
                None => Bound::Unbounded,
            };
            let mut items: Vec<(String, Bytes)> = h
                .range::<str, _>((from, Bound::Unbounded))
                .take(count + 1)
                .map(|(f, v)| (f.to_string(), v.clone()))
                .collect();
            let next = if items.len() > count {
                items.truncate(count);
                items.last().map(|(f, _)| encode_cursor(f.as_bytes()))
            } else {
                None
            };
            Page { items, next }
        })?;
        Ok(page.unwrap_or(Page {
            items: Vec::new(),
            next: None,
        }))
    }

    async fn lpush(&self, key: &str, values: &[Bytes]) -> Result<u64> {
        self.push(key, values, true)
    }

    async fn rpush(&self, key: &str, values: &[Bytes]) -> Result<u64> {
        self.push(key, values, false)
    }

    async fn lpop(&self, key: &str, count: usize) -> Result<Vec<Bytes>> {
        self.pop(key, count, true)
    }

    async fn rpop(&self, key: &str, count: usize) -> Result<Vec<Bytes>> {
        self.pop(key, count, false)
    }

    async fn lrange(&self, key: &str, start: i64, count: usize) -> Result<Vec<Bytes>> {
        self.collection_args().count(count)?;
        let (start, stop) = cache_core::index_range(start, count);
        self.read(key, Kind::List, |c| {
            let Elements::List(l) = &c.elements else {
                unreachable!("the kind was checked")
            };
            match resolve_range(l.len(), start, stop) {
                Some((from, to)) => l.range(from..=to).cloned().collect(),
                None => Vec::new(),
            }
        })
        .map(Option::unwrap_or_default)
    }

    async fn llen(&self, key: &str) -> Result<u64> {
        self.read(key, Kind::List, |c| c.len() as u64)
            .map(Option::unwrap_or_default)
    }

    async fn ltrim(&self, key: &str, start: i64, stop: i64) -> Result<()> {
        self.update(key, Kind::List, |slot| {
            let l = list(slot.collection);
            let (from, to) = resolve_range(l.len(), start, stop).unwrap_or((1, 0));
            let removed: usize = if from > to {
                l.drain(..).map(|v| v.len()).sum()
            } else {
                let tail: usize = l.drain(to + 1..).map(|v| v.len()).sum();
                tail + l.drain(..from).map(|v| v.len()).sum::<usize>()
            };
            slot.collection.bytes -= removed;
            Ok(())
        })
        .map(drop)
    }

    async fn sadd(&self, key: &str, members: &[Bytes]) -> Result<u64> {
        let args = self.collection_args();
        args.not_empty("members", members)?;
        for member in members {
            args.member(member)?;
        }
        self.write(key, Kind::Set, |slot| {
            let s = set(slot.collection);
            let new: BTreeSet<&Bytes> = members.iter().filter(|m| !s.contains(*m)).collect();
            let grown = slot.collection.bytes + new.iter().map(|m| m.len()).sum::<usize>();
            fits(grown, slot.room, key)?;
            let added = new.len() as u64;
            let s = set(slot.collection);
            for member in new {
                s.insert(member.clone());
            }
            slot.collection.bytes = grown;
            Ok(added)
        })
        .map(Option::unwrap_or_default)
    }

    async fn srem(&self, key: &str, members: &[Bytes]) -> Result<u64> {
        let args = self.collection_args();
        args.not_empty("members", members)?;
        for member in members {
            args.member(member)?;
        }
        self.update(key, Kind::Set, |slot| {
            let mut removed = 0;
            for member in members {
                if set(slot.collection).remove(member) {
                    slot.collection.bytes -= member.len();
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .map(Option::unwrap_or_default)
    }

    async fn sismember(&self, key: &str, member: &[u8]) -> Result<bool> {
        self.collection_args().member(member)?;
        self.read(key, Kind::Set, |c| match &c.elements {
            Elements::Set(s) => s.contains(member),
            _ => unreachable!("the kind was checked"),
        })
        .map(Option::unwrap_or_default)
    }

    async fn scard(&self, key: &str) -> Result<u64> {
        self.read(key, Kind::Set, |c| c.len() as u64)
            .map(Option::unwrap_or_default)
    }

    async fn sscan(&self, key: &str, cursor: ScanCursor, count: usize) -> Result<Page<Bytes>> {
        let after = decode_cursor("sscan", &cursor)?;
        let count = count.clamp(1, MAX_COLLECTION_PAGE);
        let page = self.read(key, Kind::Set, |c| {
            let Elements::Set(s) = &c.elements else {
                unreachable!("the kind was checked")
            };
            let from = match &after {
                Some(after) => Bound::Excluded(after.as_slice()),
                None => Bound::Unbounded,
            };
            let mut items: Vec<Bytes> = s
                .range::<[u8], _>((from, Bound::Unbounded))
                .take(count + 1)
                .cloned()
                .collect();
            let next = if items.len() > count {
                items.truncate(count);
                items.last().map(|m| encode_cursor(m))
            } else {
                None
            };
            Page { items, next }
        })?;
        Ok(page.unwrap_or(Page {
            items: Vec::new(),
            next: None,
        }))
    }

    async fn zadd(&self, key: &str, members: &[(f64, Bytes)]) -> Result<u64> {
        let args = self.collection_args();
        args.not_empty("members", members)?;
        for (score, member) in members {
            args.score(*score)?;
            args.member(member)?;
        }
        self.write(key, Kind::SortedSet, |slot| {
            let mut latest: BTreeMap<&Bytes, f64> = BTreeMap::new();
            for (score, member) in members {
                latest.insert(member, *score);
            }
            let bytes = slot.collection.bytes;
            let z = sorted(slot.collection);
            let grown = bytes
                + latest
                    .keys()
                    .filter(|m| !z.by_member.contains_key(**m))
                    .map(|m| m.len() + SCORE_BYTES)
                    .sum::<usize>();
            fits(grown, slot.room, key)?;
            let z = sorted(slot.collection);
            let mut added = 0;
            for (member, score) in latest {
                if set_score(z, member, score) {
                    added += 1;
                }
            }
            slot.collection.bytes = grown;
            Ok(added)
        })
        .map(Option::unwrap_or_default)
    }

    async fn zincr_by(&self, key: &str, member: &[u8], delta: f64) -> Result<f64> {
        let args = self.collection_args();
        args.member(member)?;
        args.score(delta)?;
        self.write(key, Kind::SortedSet, |slot| {
            let z = sorted(slot.collection);
            let current = z.by_member.get(member).copied();
            let next = current.unwrap_or(0.0) + delta;
            if next.is_nan() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("incrementing a score of {key:?} by {delta} gives NaN"),
                ));
            }
            let grown = slot.collection.bytes
                + if current.is_none() {
                    member.len() + SCORE_BYTES
                } else {
                    0
                };
            fits(grown, slot.room, key)?;
            set_score(
                sorted(slot.collection),
                &Bytes::copy_from_slice(member),
                next,
            );
            slot.collection.bytes = grown;
            Ok(next)
        })
        .map(|n| n.expect("a write always runs"))
    }

    async fn zrem(&self, key: &str, members: &[Bytes]) -> Result<u64> {
        let args = self.collection_args();
        args.not_empty("members", members)?;
        for member in members {
            args.member(member)?;
        }
        self.update(key, Kind::SortedSet, |slot| {
            let mut removed = 0;
            for member in members {
                if sorted(slot.collection).remove(member).is_some() {
                    slot.collection.bytes -= member.len() + SCORE_BYTES;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .map(Option::unwrap_or_default)
    }

    async fn zscore(&self, key: &str, member: &[u8]) -> Result<Option<f64>> {
        self.collection_args().member(member)?;
        self.read(key, Kind::SortedSet, |c| match &c.elements {
            Elements::SortedSet(z) => z.by_member.get(member).copied(),
            _ => unreachable!("the kind was checked"),
        })
        .map(Option::flatten)
    }

    async fn zrank(&self, key: &str, member: &[u8], order: Order) -> Result<Option<u64>> {
        self.collection_args().member(member)?;
        self.read(key, Kind::SortedSet, |c| {
            let Elements::SortedSet(z) = &c.elements else {
                unreachable!("the kind was checked")
            };
            let score = *z.by_member.get(member)?;
            let below = z.rank(member, score) as u64;
            Some(match order {
                Order::Ascending => below,
                Order::Descending => z.by_member.len() as u64 - 1 - below,
            })
        })
        .map(Option::flatten)
    }

    async fn zrange_by_rank(
        &self,
        key: &str,
        start: i64,
        count: usize,
        order: Order,
    ) -> Result<Vec<(Bytes, f64)>> {
        self.collection_args().count(count)?;
        let (start, stop) = cache_core::index_range(start, count);
        self.read(key, Kind::SortedSet, |c| {
            let Elements::SortedSet(z) = &c.elements else {
                unreachable!("the kind was checked")
            };
            let Some((from, to)) = resolve_range(z.by_member.len(), start, stop) else {
                return Vec::new();
            };
            let items = z.ascending().map(|(m, s)| (m.clone(), s));
            match order {
                Order::Ascending => items.skip(from).take(to - from + 1).collect(),
                Order::Descending => items.rev().skip(from).take(to - from + 1).collect(),
            }
        })
        .map(Option::unwrap_or_default)
    }

    async fn zrange_by_score(
        &self,
        key: &str,
        min: ScoreBound,
        max: ScoreBound,
        offset: usize,
        count: usize,
        order: Order,
    ) -> Result<Vec<(Bytes, f64)>> {
        let args = self.collection_args();
        args.count(count)?;
        for bound in [min, max] {
            if let ScoreBound::Inclusive(s) | ScoreBound::Exclusive(s) = bound {
                args.score(s)?;
            }
        }
        let bound = |b: ScoreBound| match b {
            ScoreBound::Inclusive(s) => Bound::Included(Score(s)),
            ScoreBound::Exclusive(s) => Bound::Excluded(Score(s)),
            ScoreBound::Unbounded => Bound::Unbounded,
        };
        let (lo, hi) = (bound(min), bound(max));
        self.read(key, Kind::SortedSet, |c| {
            let Elements::SortedSet(z) = &c.elements else {
                unreachable!("the kind was checked")
            };
            // An empty or inverted range (BTreeMap::range would panic on it) holds nothing.
            let empty = match (&lo, &hi) {
                (Bound::Included(a), Bound::Included(b)) => a > b,
                (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
                | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
                _ => false,
            };
            if empty {
                return Vec::new();
            }
            let range = z
                .by_score
                .range((lo, hi))
                .flat_map(|(s, members)| members.iter().map(move |m| (m.clone(), s.0)));
            match order {
                Order::Ascending => range.skip(offset).take(count).collect(),
                Order::Descending => range.rev().skip(offset).take(count).collect(),
            }
        })
        .map(Option::unwrap_or_default)
    }

    async fn zcard(&self, key: &str) -> Result<u64> {
        self.read(key, Kind::SortedSet, |c| c.len() as u64)
            .map(Option::unwrap_or_default)
    }
}

/// Sets `member`'s score; returns whether it is new.
fn set_score(z: &mut SortedSet, member: &Bytes, score: f64) -> bool {
    let new = z.remove(member).is_none();
    z.by_member.insert(member.clone(), score);
    z.by_score
        .entry(Score(score))
        .or_default()
        .insert(member.clone());
    new
}

impl MemoryStore {
    fn push(&self, key: &str, values: &[Bytes], head: bool) -> Result<u64> {
        let args = self.collection_args();
        args.not_empty("values", values)?;
        for value in values {
            args.value(key, value)?;
        }
        self.write(key, Kind::List, |slot| {
            let grown = slot.collection.bytes + values.iter().map(Bytes::len).sum::<usize>();
            fits(grown, slot.room, key)?;
            let l = list(slot.collection);
            for value in values {
                if head {
                    l.push_front(value.clone());
                } else {
                    l.push_back(value.clone());
                }
            }
            let len = l.len() as u64;
            slot.collection.bytes = grown;
            Ok(len)
        })
        .map(|n| n.expect("a write always runs"))
    }

    fn pop(&self, key: &str, count: usize, head: bool) -> Result<Vec<Bytes>> {
        self.collection_args().count(count)?;
        self.update(key, Kind::List, |slot| {
            let l = list(slot.collection);
            let taken: Vec<Bytes> = if head {
                let n = count.min(l.len());
                l.drain(..n).collect()
            } else {
                let n = count.min(l.len());
                let from = l.len() - n;
                l.drain(from..).rev().collect()
            };
            slot.collection.bytes -= taken.iter().map(Bytes::len).sum::<usize>();
            Ok(taken)
        })
        .map(Option::unwrap_or_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_any_bytes() {
        for last in [&b""[..], b"a", b"\x00\xff\x10"] {
            let cursor = encode_cursor(last);
            assert_eq!(decode_cursor("t", &cursor).unwrap().as_deref(), Some(last));
        }
        assert_eq!(decode_cursor("t", &ScanCursor::start()).unwrap(), None);
        for bad in ["x", ">0", ">zz"] {
            let e = decode_cursor("t", &ScanCursor::from_backend(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn a_sorted_set_is_charged_its_members_and_scores() {
        let store = MemoryStore::new();
        futures::executor::block_on(async {
            let members = [
                (1.0, Bytes::from_static(b"ab")),
                (2.0, Bytes::from_static(b"c")),
            ];
            store.zadd("z", &members).await.unwrap();
            assert_eq!(store.bytes(), 1 + 3 + 2 * SCORE_BYTES);
            store.zincr_by("z", b"def", 1.0).await.unwrap();
            assert_eq!(store.bytes(), 1 + 6 + 3 * SCORE_BYTES);
            store.zrem("z", &[Bytes::from_static(b"ab")]).await.unwrap();
            assert_eq!(store.bytes(), 1 + 4 + 2 * SCORE_BYTES);
        });
    }

    #[test]
    fn ranges_resolve_as_redis_does() {
        assert_eq!(resolve_range(5, 0, -1), Some((0, 4)));
        assert_eq!(resolve_range(5, -2, -1), Some((3, 4)));
        assert_eq!(resolve_range(5, 1, 100), Some((1, 4)));
        assert_eq!(resolve_range(5, 5, 6), None);
        assert_eq!(resolve_range(5, 3, 1), None);
        assert_eq!(resolve_range(0, 0, -1), None);
        assert_eq!(resolve_range(5, -100, 0), Some((0, 0)));
    }
}
