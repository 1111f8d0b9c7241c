//! A reference model of the [`CacheStore`] contract, and a checker that runs one sequence of
//! operations on a store and on the model and compares every result.
//!
//! The model is a plain ordered map with a per-key expiry and a clock that only [`Op::Advance`]
//! moves. It answers each method as the trait docs say, nothing more: where the docs leave a
//! choice (which of two invalid arguments is reported), it accepts every allowed answer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{
    CacheStore, ErrorKind, KeyTtl, Limits, MAX_TTL, ScanCursor, SetCondition, SetOptions,
};

/// One call of the contract, or time passing.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// [`CacheStore::get`].
    Get(String),
    /// [`CacheStore::get_many`].
    GetMany(Vec<String>),
    /// [`CacheStore::set`].
    Set(String, Bytes, SetCondition, Option<Duration>),
    /// [`CacheStore::set_many`].
    SetMany(Vec<(String, Bytes)>, Option<Duration>),
    /// [`CacheStore::delete`].
    Delete(String),
    /// [`CacheStore::delete_many`].
    DeleteMany(Vec<String>),
    /// [`CacheStore::exists`].
    Exists(String),
    /// [`CacheStore::ttl`].
    Ttl(String),
    /// [`CacheStore::expire`].
    Expire(String, Duration),
    /// [`CacheStore::persist`].
    Persist(String),
    /// [`CacheStore::incr_by`].
    IncrBy(String, i64, Option<Duration>),
    /// [`CacheStore::compare_and_swap`].
    CompareAndSwap(String, Option<Bytes>, Option<Bytes>, Option<Duration>),
    /// A whole [`CacheStore::scan`], page after page, with this count hint.
    Scan(String, usize),
    /// [`CacheStore::clear`].
    Clear(String),
    /// Store time passes (a manual clock; never generated against a real one).
    Advance(Duration),
    /// A [`CollectionStore`](cache_core::CollectionStore) call.
    Collection(String, CollectionOp),
}

/// A [`CollectionStore`](cache_core::CollectionStore) call on one key. Scores are kept as `f64` bits, so that ops compare.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CollectionOp {
    HSet(Vec<(String, Bytes)>),
    HGet(String),
    HDel(Vec<String>),
    HIncrBy(String, i64),
    HLen,
    LPush(Vec<Bytes>),
    RPush(Vec<Bytes>),
    LPop(usize),
    RPop(usize),
    LRange(i64, usize),
    LLen,
    SAdd(Vec<Bytes>),
    SRem(Vec<Bytes>),
    SIsMember(Bytes),
    SCard,
    ZAdd(Vec<(u64, Bytes)>),
    ZIncrBy(Bytes, u64),
    ZRem(Vec<Bytes>),
    ZScore(Bytes),
    ZRank(Bytes, bool),
    ZCard,
}

/// Short forms, so that a shrunk failing sequence reads as a script.
impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn short(key: &str) -> String {
            if key.len() > 12 {
                let start: String = key.chars().take(6).collect();
                format!("{start:?}…({} bytes)", key.len())
            } else {
                format!("{key:?}")
            }
        }
        fn value(v: &Bytes) -> String {
            if v.len() > 12 {
                format!("<{} bytes>", v.len())
            } else {
                format!("{v:?}")
            }
        }
        fn keys(keys: &[String]) -> String {
            keys.iter().map(|k| short(k)).collect::<Vec<_>>().join(", ")
        }
        match self {
            Op::Get(k) => write!(f, "get({})", short(k)),
            Op::GetMany(ks) => write!(f, "get_many([{}])", keys(ks)),
            Op::Set(k, v, c, t) => write!(f, "set({}, {}, {c:?}, {t:?})", short(k), value(v)),
            Op::SetMany(es, t) => {
                let es: Vec<String> = es
                    .iter()
                    .map(|(k, v)| format!("({}, {})", short(k), value(v)))
                    .collect();
                write!(f, "set_many([{}], {t:?})", es.join(", "))
            }
            Op::Delete(k) => write!(f, "delete({})", short(k)),
            Op::DeleteMany(ks) => write!(f, "delete_many([{}])", keys(ks)),
            Op::Exists(k) => write!(f, "exists({})", short(k)),
            Op::Ttl(k) => write!(f, "ttl({})", short(k)),
            Op::Expire(k, t) => write!(f, "expire({}, {t:?})", short(k)),
            Op::Persist(k) => write!(f, "persist({})", short(k)),
            Op::IncrBy(k, d, t) => write!(f, "incr_by({}, {d}, {t:?})", short(k)),
            Op::CompareAndSwap(k, e, n, t) => write!(
                f,
                "compare_and_swap({}, {:?}, {:?}, {t:?})",
                short(k),
                e.as_ref().map(value),
                n.as_ref().map(value)
            ),
            Op::Scan(p, c) => write!(f, "scan({}, count {c})", short(p)),
            Op::Clear(p) => write!(f, "clear({})", short(p)),
            Op::Advance(by) => write!(f, "advance({by:?})"),
            Op::Collection(k, op) => write!(f, "{op:?} at {}", short(k)),
        }
    }
}

/// What a call returned, in a form both sides can be compared in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `get`.
    Value(Option<Bytes>),
    /// `get_many`.
    Values(Vec<Option<Bytes>>),
    /// `set`, `delete`, `exists`, `expire`, `persist`, `compare_and_swap`.
    Bool(bool),
    /// `delete_many`, `clear`.
    Count(u64),
    /// `incr_by`.
    Int(i64),
    /// `ttl`.
    Ttl(KeyTtl),
    /// A whole scan: the distinct keys.
    Keys(BTreeSet<String>),
    /// Values a list read or pop returned.
    Items(Vec<Bytes>),
    /// A score (as `f64` bits), or none.
    Score(Option<u64>),
    /// A rank, or none.
    Rank(Option<u64>),
    /// `set_many`, `advance`.
    Done,
    /// An error: from the store, its kind; from the model, every kind the contract allows.
    Failed(Vec<ErrorKind>),
}

/// What a key holds.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    String(Bytes),
    Hash(BTreeMap<String, Bytes>),
    List(std::collections::VecDeque<Bytes>),
    Set(BTreeSet<Bytes>),
    SortedSet(BTreeMap<Bytes, f64>),
}

impl Data {
    fn is_empty(&self) -> bool {
        match self {
            Data::String(_) => false,
            Data::Hash(h) => h.is_empty(),
            Data::List(l) => l.is_empty(),
            Data::Set(s) => s.is_empty(),
            Data::SortedSet(z) => z.is_empty(),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Data,
    /// Model time (ms) from which the entry is gone.
    expires_at: Option<u64>,
}

/// The contract as a plain map; see the module docs.
#[derive(Debug, Clone)]
pub struct Model {
    entries: BTreeMap<String, Entry>,
    now: u64,
    limits: Limits,
}

type Checked<T> = Result<T, Vec<ErrorKind>>;

impl Model {
    /// An empty model enforcing `limits` (pass the store's own).
    pub fn new(limits: Limits) -> Self {
        Model {
            entries: BTreeMap::new(),
            now: 0,
            limits,
        }
    }

    /// The live keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|(_, e)| self.live(e))
            .map(|(k, _)| k.as_str())
    }

    /// Whether `key` holds something live.
    pub fn holds(&self, key: &str) -> bool {
        self.live_entry(key).is_some()
    }

    /// Drops `key` as a store that evicts may do at any time.
    pub fn evict(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Answers `op` as the contract says, changing the model only when the call succeeds.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        self.try_apply(op).unwrap_or_else(Outcome::Failed)
    }

    fn try_apply(&mut self, op: &Op) -> Checked<Outcome> {
        Ok(match op {
            Op::Get(k) => {
                self.key(k)?;
                Outcome::Value(self.string(k)?)
            }
            Op::GetMany(ks) => {
                all_ok(ks.iter().map(|k| self.key(k)))?;
                // A collection reads as absent, as Redis `MGET` reads it.
                Outcome::Values(ks.iter().map(|k| self.string(k).ok().flatten()).collect())
            }
            Op::Set(k, v, condition, ttl) => {
                all_ok([self.key(k), self.value_fits(v), ttl_ok(*ttl)])?;
                let present = self.live_entry(k).is_some();
                let write = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => !present,
                    SetCondition::IfPresent => present,
                    other => unreachable!("a condition the model does not know: {other:?}"),
                };
                if write {
                    self.put(k, v.clone(), *ttl);
                }
                Outcome::Bool(write)
            }
            Op::SetMany(entries, ttl) => {
                let checks = entries
                    .iter()
                    .flat_map(|(k, v)| [self.key(k), self.value_fits(v)]);
                all_ok(checks.chain([ttl_ok(*ttl)]))?;
                for (k, v) in entries {
                    self.put(k, v.clone(), *ttl);
                }
                Outcome::Done
            }
            Op::Delete(k) => {
                self.key(k)?;
                Outcome::Bool(self.remove(k))
            }
            Op::DeleteMany(ks) => {
                all_ok(ks.iter().map(|k| self.key(k)))?;
                Outcome::Count(ks.iter().filter(|k| self.remove(k)).count() as u64)
            }
            Op::Exists(k) => {
                self.key(k)?;
                Outcome::Bool(self.live_entry(k).is_some())
            }
            Op::Ttl(k) => {
                self.key(k)?;
                Outcome::Ttl(match self.live_entry(k) {
                    None => KeyTtl::Missing,
                    Some(Entry {
                        expires_at: None, ..
                    }) => KeyTtl::Persistent,
                    Some(Entry {
                        expires_at: Some(at),
                        ..
                    }) => KeyTtl::ExpiresIn(Duration::from_millis(at - self.now)),
                })
            }
            Op::Expire(k, ttl) => {
                all_ok([self.key(k), ttl_ok(Some(*ttl))])?;
                let at = self.now + millis(*ttl);
                let now = self.now;
                Outcome::Bool(match self.live_entry_mut(k, now) {
                    Some(entry) => {
                        entry.expires_at = Some(at);
                        true
                    }
                    None => false,
                })
            }
            Op::Persist(k) => {
                self.key(k)?;
                let now = self.now;
                Outcome::Bool(match self.live_entry_mut(k, now) {
                    Some(entry) => entry.expires_at.take().is_some(),
                    None => false,
                })
            }
            Op::IncrBy(k, delta, ttl) => {
                all_ok([self.key(k), ttl_ok(*ttl)])?;
                let current = match self.string(k)? {
                    None => None,
                    Some(v) => Some(parse_counter(&v).ok_or(vec![ErrorKind::NotAnInteger])?),
                };
                let new = current
                    .unwrap_or(0)
                    .checked_add(*delta)
                    .ok_or(vec![ErrorKind::Overflow])?;
                let bytes = Bytes::from(new.to_string());
                match current {
                    None => self.put(k, bytes, *ttl),
                    Some(_) => {
                        let now = self.now;
                        if let Some(entry) = self.live_entry_mut(k, now) {
                            entry.value = Data::String(bytes);
                        }
                    }
                }
                Outcome::Int(new)
            }
            Op::CompareAndSwap(k, expected, new, ttl) => {
                let fits = new.as_ref().map_or(Ok(()), |v| self.value_fits(v));
                all_ok([self.key(k), fits, ttl_ok(*ttl)])?;
                if self.string(k)? != *expected {
                    return Ok(Outcome::Bool(false));
                }
                match new {
                    Some(v) => self.put(k, v.clone(), *ttl),
                    None => {
                        self.remove(k);
                    }
                }
                Outcome::Bool(true)
            }
            Op::Scan(prefix, _) => Outcome::Keys(
                self.keys()
                    .filter(|k| k.starts_with(prefix.as_str()))
                    .map(str::to_owned)
                    .collect(),
            ),
            Op::Clear(prefix) => {
                let doomed: Vec<String> = self
                    .keys()
                    .filter(|k| k.starts_with(prefix.as_str()))
                    .map(str::to_owned)
                    .collect();
                for k in &doomed {
                    self.entries.remove(k);
                }
                Outcome::Count(doomed.len() as u64)
            }
            Op::Advance(by) => {
                self.now += millis(*by);
                self.entries
                    .retain(|_, e| e.expires_at.is_none_or(|at| self.now < at));
                Outcome::Done
            }
            Op::Collection(k, op) => self.collection(k, op)?,
        })
    }

    /// A collection call on `key`, as [`CollectionStore`](cache_core::CollectionStore)'s docs say.
    fn collection(&mut self, key: &str, op: &CollectionOp) -> Checked<Outcome> {
        use CollectionOp as C;
        let max_key = self.limits.max_key_len;
        let max_value = self.limits.max_value_len;
        let field = |f: &[u8]| field_bytes(f, max_key);
        let value = |v: &[u8]| -> Checked<()> {
            if v.len() > max_value {
                Err(vec![ErrorKind::ValueTooLarge])
            } else {
                Ok(())
            }
        };
        let not_empty = |n: usize| -> Checked<()> {
            if n == 0 {
                Err(vec![ErrorKind::InvalidArgument])
            } else {
                Ok(())
            }
        };
        let count = |n: usize| -> Checked<()> {
            if (1..=cache_core::MAX_COLLECTION_PAGE).contains(&n) {
                Ok(())
            } else {
                Err(vec![ErrorKind::InvalidArgument])
            }
        };
        let score = |bits: u64| -> Checked<()> {
            if f64::from_bits(bits).is_nan() {
                Err(vec![ErrorKind::InvalidArgument])
            } else {
                Ok(())
            }
        };
        let hash = || Data::Hash(BTreeMap::new());
        let list = || Data::List(Default::default());
        let set = || Data::Set(BTreeSet::new());
        let zset = || Data::SortedSet(BTreeMap::new());
        // The argument checks, and the kind of collection the call needs.
        let (mut checks, empty): (Vec<Checked<()>>, Data) = match op {
            C::HSet(fs) => (
                std::iter::once(not_empty(fs.len()))
                    .chain(fs.iter().flat_map(|(f, v)| [field(f.as_bytes()), value(v)]))
                    .collect(),
                hash(),
            ),
            C::HGet(f) | C::HIncrBy(f, _) => (vec![field(f.as_bytes())], hash()),
            C::HDel(fs) => (
                std::iter::once(not_empty(fs.len()))
                    .chain(fs.iter().map(|f| field(f.as_bytes())))
                    .collect(),
                hash(),
            ),
            C::HLen => (vec![], hash()),
            C::LPush(vs) | C::RPush(vs) => (
                std::iter::once(not_empty(vs.len()))
                    .chain(vs.iter().map(|v| value(v)))
                    .collect(),
                list(),
            ),
            C::LPop(n) | C::RPop(n) | C::LRange(_, n) => (vec![count(*n)], list()),
            C::LLen => (vec![], list()),
            C::SAdd(ms) | C::SRem(ms) => (
                std::iter::once(not_empty(ms.len()))
                    .chain(ms.iter().map(|m| field(m)))
                    .collect(),
                set(),
            ),
            C::SIsMember(m) => (vec![field(m)], set()),
            C::SCard => (vec![], set()),
            C::ZAdd(ms) => (
                std::iter::once(not_empty(ms.len()))
                    .chain(ms.iter().flat_map(|(s, m)| [score(*s), field(m)]))
                    .collect(),
                zset(),
            ),
            C::ZIncrBy(m, d) => (vec![field(m), score(*d)], zset()),
            C::ZRem(ms) => (
                std::iter::once(not_empty(ms.len()))
                    .chain(ms.iter().map(|m| field(m)))
                    .collect(),
                zset(),
            ),
            C::ZScore(m) | C::ZRank(m, _) => (vec![field(m)], zset()),
            C::ZCard => (vec![], zset()),
        };
        checks.push(self.key(key));
        let now = self.now;
        if let Some(e) = self.live_entry(key) {
            if std::mem::discriminant(&e.value) != std::mem::discriminant(&empty) {
                checks.push(Err(vec![ErrorKind::WrongType]));
            }
        }
        all_ok(checks)?;
        // Work on the live collection, or a new empty one; write it back unless it ends empty.
        let (mut data, expires_at) = match self.live_entry_mut(key, now) {
            Some(e) => (e.value.clone(), e.expires_at),
            None => (empty, None),
        };
        let outcome = match (&mut data, op) {
            (Data::Hash(h), C::HSet(fs)) => {
                let mut new = 0;
                for (f, v) in fs {
                    new += u64::from(h.insert(f.clone(), v.clone()).is_none());
                }
                Outcome::Count(new)
            }
            (Data::Hash(h), C::HGet(f)) => Outcome::Value(h.get(f).cloned()),
            (Data::Hash(h), C::HDel(fs)) => {
                Outcome::Count(fs.iter().filter(|f| h.remove(*f).is_some()).count() as u64)
            }
            (Data::Hash(h), C::HIncrBy(f, d)) => {
                let current = match h.get(f) {
                    None => 0,
                    Some(v) => parse_counter(v).ok_or(vec![ErrorKind::NotAnInteger])?,
                };
                let new = current.checked_add(*d).ok_or(vec![ErrorKind::Overflow])?;
                h.insert(f.clone(), Bytes::from(new.to_string()));
                Outcome::Int(new)
            }
            (Data::Hash(h), C::HLen) => Outcome::Count(h.len() as u64),
            (Data::List(l), C::LPush(vs)) => {
                for v in vs {
                    l.push_front(v.clone());
                }
                Outcome::Count(l.len() as u64)
            }
            (Data::List(l), C::RPush(vs)) => {
                l.extend(vs.iter().cloned());
                Outcome::Count(l.len() as u64)
            }
            (Data::List(l), C::LPop(n)) => {
                let n = (*n).min(l.len());
                Outcome::Items(l.drain(..n).collect())
            }
            (Data::List(l), C::RPop(n)) => {
                let n = (*n).min(l.len());
                Outcome::Items((0..n).filter_map(|_| l.pop_back()).collect())
            }
            (Data::List(l), C::LRange(start, n)) => {
                // The indices start..start + n (from the end if negative), those that exist.
                let len = l.len() as i64;
                let from = if *start < 0 { len + start } else { *start };
                let to = from.saturating_add(*n as i64).min(len);
                let from = from.max(0);
                Outcome::Items(if from >= to {
                    Vec::new()
                } else {
                    l.range(from as usize..to as usize).cloned().collect()
                })
            }
            (Data::List(l), C::LLen) => Outcome::Count(l.len() as u64),
            (Data::Set(s), C::SAdd(ms)) => {
                Outcome::Count(ms.iter().filter(|m| s.insert((*m).clone())).count() as u64)
            }
            (Data::Set(s), C::SRem(ms)) => {
                Outcome::Count(ms.iter().filter(|m| s.remove(*m)).count() as u64)
            }
            (Data::Set(s), C::SIsMember(m)) => Outcome::Bool(s.contains(m)),
            (Data::Set(s), C::SCard) => Outcome::Count(s.len() as u64),
            (Data::SortedSet(z), C::ZAdd(ms)) => {
                let mut new = 0;
                for (score, m) in ms {
                    new += u64::from(z.insert(m.clone(), f64::from_bits(*score)).is_none());
                }
                Outcome::Count(new)
            }
            (Data::SortedSet(z), C::ZIncrBy(m, d)) => {
                let new = z.get(m).copied().unwrap_or(0.0) + f64::from_bits(*d);
                if new.is_nan() {
                    return Err(vec![ErrorKind::InvalidArgument]);
                }
                z.insert(m.clone(), new);
                Outcome::Score(Some(new.to_bits()))
            }
            (Data::SortedSet(z), C::ZRem(ms)) => {
                Outcome::Count(ms.iter().filter(|m| z.remove(*m).is_some()).count() as u64)
            }
            (Data::SortedSet(z), C::ZScore(m)) => Outcome::Score(z.get(m).map(|s| s.to_bits())),
            (Data::SortedSet(z), C::ZRank(m, descending)) => {
                let mut ranked: Vec<(&Bytes, f64)> = z.iter().map(|(m, s)| (m, *s)).collect();
                ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
                if *descending {
                    ranked.reverse();
                }
                Outcome::Rank(ranked.iter().position(|(x, _)| *x == m).map(|r| r as u64))
            }
            (Data::SortedSet(z), C::ZCard) => Outcome::Count(z.len() as u64),
            (data, op) => unreachable!("{op:?} checked against {data:?}"),
        };
        if data.is_empty() {
            self.entries.remove(key);
        } else {
            let value = data;
            self.entries
                .insert(key.to_owned(), Entry { value, expires_at });
        }
        Ok(outcome)
    }

    fn key(&self, key: &str) -> Checked<()> {
        if key.is_empty() || key.len() > self.limits.max_key_len {
            Err(vec![ErrorKind::InvalidKey])
        } else {
            Ok(())
        }
    }

    fn value_fits(&self, value: &[u8]) -> Checked<()> {
        if value.len() > self.limits.max_value_len {
            Err(vec![ErrorKind::ValueTooLarge])
        } else {
            Ok(())
        }
    }

    fn live(&self, entry: &Entry) -> bool {
        entry.expires_at.is_none_or(|at| self.now < at)
    }

    fn live_entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key).filter(|e| self.live(e))
    }

    fn live_entry_mut(&mut self, key: &str, now: u64) -> Option<&mut Entry> {
        self.entries
            .get_mut(key)
            .filter(|e| e.expires_at.is_none_or(|at| now < at))
    }

    /// The string at `key`; a collection there is [`ErrorKind::WrongType`].
    fn string(&self, key: &str) -> Checked<Option<Bytes>> {
        match self.live_entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Data::String(v)) => Ok(Some(v.clone())),
            Some(_) => Err(vec![ErrorKind::WrongType]),
        }
    }

    fn put(&mut self, key: &str, value: Bytes, ttl: Option<Duration>) {
        let expires_at = ttl.map(|t| self.now + millis(t));
        let value = Data::String(value);
        self.entries
            .insert(key.to_owned(), Entry { value, expires_at });
    }

    fn remove(&mut self, key: &str) -> bool {
        let existed = self.live_entry(key).is_some();
        self.entries.remove(key);
        existed
    }
}

/// Every check passes, or the kinds of all that failed: the contract does not say which of two
/// problems a call reports.
fn all_ok(checks: impl IntoIterator<Item = Checked<()>>) -> Checked<()> {
    let kinds: Vec<ErrorKind> = checks
        .into_iter()
        .filter_map(Result::err)
        .flatten()
        .collect();
    if kinds.is_empty() { Ok(()) } else { Err(kinds) }
}

fn ttl_ok(ttl: Option<Duration>) -> Checked<()> {
    match ttl {
        Some(t) if t.is_zero() || t > MAX_TTL => Err(vec![ErrorKind::InvalidArgument]),
        _ => Ok(()),
    }
}

/// A member: as a key's bytes.
fn field_bytes(member: &[u8], max: usize) -> Checked<()> {
    if member.is_empty() || member.len() > max {
        Err(vec![ErrorKind::InvalidKey])
    } else {
        Ok(())
    }
}

/// Whole milliseconds, rounded up, as every TTL is.
fn millis(ttl: Duration) -> u64 {
    ttl.as_nanos().div_ceil(1_000_000) as u64
}

/// A decimal `i64` as Redis reads one: an optional `-`, digits, no leading zero, no `-0`.
fn parse_counter(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if canonical { text.parse().ok() } else { None }
}

/// How a store's answers may differ from the model's.
#[derive(Debug, Clone, Copy)]
pub struct Leeway {
    /// The store may drop any entry at any time ([`Capabilities::evicts`](cache_core::Capabilities)):
    /// a key the model holds may read as absent, never as another value.
    pub evicts: bool,
    /// Real time passes on the store between the model's steps: a TTL it reports may be this much
    /// shorter than the model's.
    pub ttl_slack: Duration,
}

impl Leeway {
    /// Exact agreement: a store that never evicts, on a manual clock.
    pub const EXACT: Leeway = Leeway {
        evicts: false,
        ttl_slack: Duration::ZERO,
    };
}

/// Runs `op` on `store`.
pub async fn run(store: &dyn CacheStore, op: &Op) -> Outcome {
    let failed = |e: cache_core::Error| Outcome::Failed(vec![e.kind()]);
    let refs = |ks: &[String]| -> Vec<String> { ks.to_vec() };
    let result = match op {
        Op::Get(k) => store.get(k).await.map(Outcome::Value),
        Op::GetMany(ks) => {
            let ks = refs(ks);
            let ks: Vec<&str> = ks.iter().map(String::as_str).collect();
            store.get_many(&ks).await.map(Outcome::Values)
        }
        Op::Set(k, v, condition, ttl) => {
            let mut options = SetOptions::new().maybe_ttl(*ttl);
            options.condition = *condition;
            store.set(k, v.clone(), options).await.map(Outcome::Bool)
        }
        Op::SetMany(entries, ttl) => {
            let entries: Vec<(&str, Bytes)> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            store.set_many(&entries, *ttl).await.map(|()| Outcome::Done)
        }
        Op::Delete(k) => store.delete(k).await.map(Outcome::Bool),
        Op::DeleteMany(ks) => {
            let ks: Vec<&str> = ks.iter().map(String::as_str).collect();
            store.delete_many(&ks).await.map(Outcome::Count)
        }
        Op::Exists(k) => store.exists(k).await.map(Outcome::Bool),
        Op::Ttl(k) => store.ttl(k).await.map(Outcome::Ttl),
        Op::Expire(k, ttl) => store.expire(k, *ttl).await.map(Outcome::Bool),
        Op::Persist(k) => store.persist(k).await.map(Outcome::Bool),
        Op::IncrBy(k, delta, ttl) => store.incr_by(k, *delta, *ttl).await.map(Outcome::Int),
        Op::CompareAndSwap(k, expected, new, ttl) => store
            .compare_and_swap(k, expected.as_deref(), new.clone(), *ttl)
            .await
            .map(Outcome::Bool),
        Op::Scan(prefix, count) => scan_all(store, prefix, *count).await.map(Outcome::Keys),
        Op::Clear(prefix) => store.clear(prefix).await.map(Outcome::Count),
        Op::Advance(_) => Ok(Outcome::Done),
        Op::Collection(k, op) => match store.collections() {
            Some(c) => run_collection(c, k, op).await,
            None => Err(cache_core::Error::new(
                ErrorKind::Unsupported,
                "the store holds no collections",
            )),
        },
    };
    result.unwrap_or_else(failed)
}

async fn run_collection(
    c: &dyn cache_core::CollectionStore,
    key: &str,
    op: &CollectionOp,
) -> cache_core::Result<Outcome> {
    use CollectionOp as C;
    use cache_core::Order;
    fn strs(fs: &[String]) -> Vec<&str> {
        fs.iter().map(String::as_str).collect()
    }
    Ok(match op {
        C::HSet(fs) => {
            let fs: Vec<(&str, Bytes)> = fs.iter().map(|(f, v)| (f.as_str(), v.clone())).collect();
            Outcome::Count(c.hset(key, &fs).await?)
        }
        C::HGet(f) => Outcome::Value(c.hget(key, f).await?),
        C::HDel(fs) => Outcome::Count(c.hdel(key, &strs(fs)).await?),
        C::HIncrBy(f, d) => Outcome::Int(c.hincr_by(key, f, *d).await?),
        C::HLen => Outcome::Count(c.hlen(key).await?),
        C::LPush(vs) => Outcome::Count(c.lpush(key, vs).await?),
        C::RPush(vs) => Outcome::Count(c.rpush(key, vs).await?),
        C::LPop(n) => Outcome::Items(c.lpop(key, *n).await?),
        C::RPop(n) => Outcome::Items(c.rpop(key, *n).await?),
        C::LRange(start, n) => Outcome::Items(c.lrange(key, *start, *n).await?),
        C::LLen => Outcome::Count(c.llen(key).await?),
        C::SAdd(ms) => Outcome::Count(c.sadd(key, ms).await?),
        C::SRem(ms) => Outcome::Count(c.srem(key, ms).await?),
        C::SIsMember(m) => Outcome::Bool(c.sismember(key, m).await?),
        C::SCard => Outcome::Count(c.scard(key).await?),
        C::ZAdd(ms) => {
            let ms: Vec<(f64, Bytes)> = ms
                .iter()
                .map(|(s, m)| (f64::from_bits(*s), m.clone()))
                .collect();
            Outcome::Count(c.zadd(key, &ms).await?)
        }
        C::ZIncrBy(m, d) => Outcome::Score(Some(
            c.zincr_by(key, m, f64::from_bits(*d)).await?.to_bits(),
        )),
        C::ZRem(ms) => Outcome::Count(c.zrem(key, ms).await?),
        C::ZScore(m) => Outcome::Score(c.zscore(key, m).await?.map(f64::to_bits)),
        C::ZRank(m, descending) => {
            let order = if *descending {
                Order::Descending
            } else {
                Order::Ascending
            };
            Outcome::Rank(c.zrank(key, m, order).await?)
        }
        C::ZCard => Outcome::Count(c.zcard(key).await?),
    })
}

async fn scan_all(
    store: &dyn CacheStore,
    prefix: &str,
    count: usize,
) -> cache_core::Result<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    let mut cursor = ScanCursor::start();
    // A scan that never ends is a failure too; no test holds more than a few thousand keys.
    for _ in 0..100_000 {
        let page = store.scan(prefix, cursor, count).await?;
        keys.extend(page.keys);
        match page.next {
            Some(next) => cursor = next,
            None => return Ok(keys),
        }
    }
    Err(cache_core::Error::new(
        ErrorKind::Backend,
        "scan did not end after 100 000 pages",
    ))
}

/// Checks the store's answer to `op` against the model's, and moves the model on. `Err` explains
/// the difference.
pub fn check(model: &mut Model, op: &Op, got: &Outcome, leeway: Leeway) -> Result<(), String> {
    let mut next = model.clone();
    let want = next.apply(op);
    if agrees(&want, got, leeway) {
        *model = next;
        return Ok(());
    }
    if leeway.evicts {
        if let Some(next) = explained_by_eviction(model, op, got, leeway) {
            *model = next;
            return Ok(());
        }
    }
    Err(format!(
        "{op:?}: the store answered {got:?}, the model {want:?}"
    ))
}

fn agrees(want: &Outcome, got: &Outcome, leeway: Leeway) -> bool {
    match (want, got) {
        (Outcome::Failed(allowed), Outcome::Failed(kind)) => {
            kind.iter().all(|k| allowed.contains(k))
        }
        (Outcome::Ttl(KeyTtl::ExpiresIn(want)), Outcome::Ttl(KeyTtl::ExpiresIn(got))) => {
            got <= want && *want - *got <= leeway.ttl_slack && !got.is_zero()
        }
        _ => want == got,
    }
}

/// The model after the evictions that would make `got` right, if some would.
fn explained_by_eviction(model: &Model, op: &Op, got: &Outcome, leeway: Leeway) -> Option<Model> {
    let exact = Leeway {
        evicts: false,
        ..leeway
    };
    let mut evicted = model.clone();
    match (op, got) {
        // Every key the store found absent but the model holds was evicted.
        (Op::GetMany(keys), Outcome::Values(values)) if keys.len() == values.len() => {
            for (k, v) in keys.iter().zip(values) {
                if v.is_none() && matches!(evicted.string(k), Ok(Some(_))) {
                    evicted.evict(k);
                }
            }
        }
        (Op::DeleteMany(keys), Outcome::Count(n)) => {
            let most = evicted.clone().apply(op);
            let Outcome::Count(most) = most else {
                return None;
            };
            for k in keys {
                evicted.evict(k);
            }
            return (*n <= most).then_some(evicted);
        }
        (Op::Clear(_), Outcome::Count(n)) => {
            let Outcome::Count(most) = evicted.apply(op) else {
                return None;
            };
            return (*n <= most).then_some(evicted);
        }
        (Op::Scan(prefix, _), Outcome::Keys(found)) => {
            let held: Vec<String> = evicted
                .keys()
                .filter(|k| k.starts_with(prefix.as_str()))
                .map(str::to_owned)
                .collect();
            if !found.iter().all(|k| held.contains(k)) {
                return None;
            }
            for k in held.iter().filter(|k| !found.contains(*k)) {
                evicted.evict(k);
            }
        }
        (op, _) => {
            for k in single_key(op)? {
                evicted.evict(&k);
            }
        }
    }
    let want = evicted.apply(op);
    agrees(&want, got, exact).then_some(evicted)
}

fn single_key(op: &Op) -> Option<Vec<String>> {
    Some(match op {
        Op::Get(k)
        | Op::Set(k, ..)
        | Op::Delete(k)
        | Op::Exists(k)
        | Op::Ttl(k)
        | Op::Expire(k, _)
        | Op::Persist(k)
        | Op::IncrBy(k, ..)
        | Op::CompareAndSwap(k, ..)
        | Op::Collection(k, _) => vec![k.clone()],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_as_redis_reads_them() {
        for ok in [
            "0",
            "-1",
            "42",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert!(parse_counter(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in [
            "",
            "-",
            "+1",
            " 1",
            "01",
            "-0",
            "1.5",
            "9223372036854775808",
        ] {
            assert!(parse_counter(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_model_expires_at_the_ttl_and_not_before() {
        let mut model = Model::new(Limits::default());
        let k = || "k".to_owned();
        let ttl = Some(Duration::from_micros(1_500));
        model.apply(&Op::Set(k(), Bytes::from("v"), SetCondition::Always, ttl));
        assert_eq!(
            model.apply(&Op::Ttl(k())),
            Outcome::Ttl(KeyTtl::ExpiresIn(Duration::from_millis(2)))
        );
        model.apply(&Op::Advance(Duration::from_millis(1)));
        assert_eq!(model.apply(&Op::Exists(k())), Outcome::Bool(true));
        model.apply(&Op::Advance(Duration::from_millis(1)));
        assert_eq!(model.apply(&Op::Get(k())), Outcome::Value(None));
    }

    #[test]
    fn an_eviction_explains_an_absent_key_but_never_another_value() {
        let mut model = Model::new(Limits::default());
        let set = Op::Set("k".into(), Bytes::from("v"), SetCondition::Always, None);
        model.apply(&set);
        let leeway = Leeway {
            evicts: true,
            ttl_slack: Duration::ZERO,
        };
        let get = Op::Get("k".into());
        let other = Outcome::Value(Some(Bytes::from("w")));
        assert!(check(&mut model.clone(), &get, &other, leeway).is_err());
        assert!(
            check(
                &mut model.clone(),
                &get,
                &Outcome::Value(None),
                Leeway::EXACT
            )
            .is_err()
        );
        check(&mut model, &get, &Outcome::Value(None), leeway).unwrap();
        assert_eq!(model.keys().count(), 0);
    }
}
