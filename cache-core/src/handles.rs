//! Typed handles on a [`Cache`]'s collections: [`HashOf`], [`ListOf`], [`SetOf`] and
//! [`SortedSetOf`]. Values (and set members) go through the cache's codec; keys carry its namespace.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    Cache, Codec, CollectionStore, Error, ErrorKind, Json, Order, Page, Result, ScanCursor,
    ScoreBound,
};

impl<C: Codec> Cache<C> {
    /// The hash at `key`, its field values of type `V`:
    /// `cache.hash::<Profile>("profile:123").set("home", &p)`.
    pub fn hash<V>(&self, key: &str) -> Result<HashOf<V, C>> {
        Ok(HashOf(Handle::new(self, key)?))
    }

    /// The list at `key`, of values of type `V`: a queue, a recent-items list.
    pub fn list<V>(&self, key: &str) -> Result<ListOf<V, C>> {
        Ok(ListOf(Handle::new(self, key)?))
    }

    /// The set at `key`, of members of type `V` (encoded, each at most the key limit): tags.
    pub fn set_of<V>(&self, key: &str) -> Result<SetOf<V, C>> {
        Ok(SetOf(Handle::new(self, key)?))
    }

    /// The sorted set at `key`, of members of type `V` with `f64` scores: a leaderboard.
    pub fn sorted_set<V>(&self, key: &str) -> Result<SortedSetOf<V, C>> {
        Ok(SortedSetOf(Handle::new(self, key)?))
    }
}

/// What every handle holds: the cache and the full key.
struct Handle<V, C: Codec> {
    cache: Cache<C>,
    full: String,
    key: String,
    values: PhantomData<fn() -> V>,
}

impl<V, C: Codec> Handle<V, C> {
    fn new(cache: &Cache<C>, key: &str) -> Result<Self> {
        Ok(Handle {
            full: cache.full_key(key)?,
            cache: cache.clone(),
            key: key.to_owned(),
            values: PhantomData,
        })
    }

    fn store(&self) -> Result<&dyn CollectionStore> {
        self.cache.store().collections().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the store of this cache holds no collections (key {:?})",
                    self.key
                ),
            )
        })
    }
}

impl<V: Serialize + DeserializeOwned, C: Codec> Handle<V, C> {
    fn encode(&self, value: &V) -> Result<Bytes> {
        self.cache.encode(&self.key, value)
    }

    fn encode_all(&self, values: &[V]) -> Result<Vec<Bytes>> {
        values.iter().map(|v| self.encode(v)).collect()
    }

    fn decode(&self, bytes: &[u8]) -> Result<V> {
        self.cache.decode(&self.key, bytes)
    }

    fn decode_all(&self, values: Vec<Bytes>) -> Result<Vec<V>> {
        values.iter().map(|b| self.decode(b)).collect()
    }

    fn decode_scored(&self, members: Vec<(Bytes, f64)>) -> Result<Vec<(V, f64)>> {
        members
            .into_iter()
            .map(|(m, score)| Ok((self.decode(&m)?, score)))
            .collect()
    }
}

impl<V, C: Codec> fmt::Debug for Handle<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("key", &self.full)
            .field("type", &std::any::type_name::<V>())
            .finish()
    }
}

/// A hash of `V` values by field name. See [`Cache::hash`].
#[derive(Debug)]
pub struct HashOf<V, C: Codec = Json>(Handle<V, C>);

impl<V: Serialize + DeserializeOwned, C: Codec> HashOf<V, C> {
    /// Sets a field; returns whether it is new.
    pub async fn set(&self, field: &str, value: &V) -> Result<bool> {
        let value = self.0.encode(value)?;
        Ok(self
            .0
            .store()?
            .hset(&self.0.full, &[(field, value)])
            .await?
            == 1)
    }

    /// Sets many fields; returns how many are new.
    pub async fn set_many(&self, fields: &[(&str, V)]) -> Result<u64> {
        let encoded = fields
            .iter()
            .map(|(f, v)| Ok((*f, self.0.encode(v)?)))
            .collect::<Result<Vec<_>>>()?;
        self.0.store()?.hset(&self.0.full, &encoded).await
    }

    /// A field's value.
    pub async fn get(&self, field: &str) -> Result<Option<V>> {
        let found = self.0.store()?.hget(&self.0.full, field).await?;
        found.map(|b| self.0.decode(&b)).transpose()
    }

    /// Many fields' values, in order.
    pub async fn get_many(&self, fields: &[&str]) -> Result<Vec<Option<V>>> {
        let found = self.0.store()?.hmget(&self.0.full, fields).await?;
        found
            .into_iter()
            .map(|b| b.map(|b| self.0.decode(&b)).transpose())
            .collect()
    }

    /// Deletes fields; returns how many existed.
    pub async fn delete(&self, fields: &[&str]) -> Result<u64> {
        self.0.store()?.hdel(&self.0.full, fields).await
    }

    /// Adds `delta` to an integer field (stored as decimal, whatever the codec); returns it.
    pub async fn incr_by(&self, field: &str, delta: i64) -> Result<i64> {
        self.0.store()?.hincr_by(&self.0.full, field, delta).await
    }

    /// Whether a field exists.
    pub async fn exists(&self, field: &str) -> Result<bool> {
        self.0.store()?.hexists(&self.0.full, field).await
    }

    /// How many fields there are.
    pub async fn len(&self) -> Result<u64> {
        self.0.store()?.hlen(&self.0.full).await
    }

    /// Whether the hash is empty (then it does not exist).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// One page of fields and values; pass `next` back until it is `None`.
    pub async fn scan(&self, cursor: ScanCursor, count: usize) -> Result<Page<(String, V)>> {
        let page = self.0.store()?.hscan(&self.0.full, cursor, count).await?;
        let items = page
            .items
            .into_iter()
            .map(|(f, b)| Ok((f, self.0.decode(&b)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }
}

/// A list of `V` values. See [`Cache::list`].
#[derive(Debug)]
pub struct ListOf<V, C: Codec = Json>(Handle<V, C>);

impl<V: Serialize + DeserializeOwned, C: Codec> ListOf<V, C> {
    /// Pushes values at the head, in order; returns the new length.
    pub async fn push_front(&self, values: &[V]) -> Result<u64> {
        let values = self.0.encode_all(values)?;
        self.0.store()?.lpush(&self.0.full, &values).await
    }

    /// Pushes values at the tail, in order; returns the new length.
    pub async fn push_back(&self, values: &[V]) -> Result<u64> {
        let values = self.0.encode_all(values)?;
        self.0.store()?.rpush(&self.0.full, &values).await
    }

    /// Takes up to `count` values from the head.
    pub async fn pop_front(&self, count: usize) -> Result<Vec<V>> {
        let taken = self.0.store()?.lpop(&self.0.full, count).await?;
        self.0.decode_all(taken)
    }

    /// Takes up to `count` values from the tail, last first.
    pub async fn pop_back(&self, count: usize) -> Result<Vec<V>> {
        let taken = self.0.store()?.rpop(&self.0.full, count).await?;
        self.0.decode_all(taken)
    }

    /// Up to `count` values from index `start` (negative: from the end).
    pub async fn range(&self, start: i64, count: usize) -> Result<Vec<V>> {
        let values = self.0.store()?.lrange(&self.0.full, start, count).await?;
        self.0.decode_all(values)
    }

    /// How many values there are.
    pub async fn len(&self) -> Result<u64> {
        self.0.store()?.llen(&self.0.full).await
    }

    /// Whether the list is empty (then it does not exist).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Keeps only indices `start..=stop` (negative: from the end).
    pub async fn trim(&self, start: i64, stop: i64) -> Result<()> {
        self.0.store()?.ltrim(&self.0.full, start, stop).await
    }
}

/// A set of `V` members. See [`Cache::set_of`].
#[derive(Debug)]
pub struct SetOf<V, C: Codec = Json>(Handle<V, C>);

impl<V: Serialize + DeserializeOwned, C: Codec> SetOf<V, C> {
    /// Adds members; returns how many are new.
    pub async fn add(&self, members: &[V]) -> Result<u64> {
        let members = self.0.encode_all(members)?;
        self.0.store()?.sadd(&self.0.full, &members).await
    }

    /// Removes members; returns how many were in the set.
    pub async fn remove(&self, members: &[V]) -> Result<u64> {
        let members = self.0.encode_all(members)?;
        self.0.store()?.srem(&self.0.full, &members).await
    }

    /// Whether `member` is in the set.
    pub async fn contains(&self, member: &V) -> Result<bool> {
        let member = self.0.encode(member)?;
        self.0.store()?.sismember(&self.0.full, &member).await
    }

    /// How many members there are.
    pub async fn len(&self) -> Result<u64> {
        self.0.store()?.scard(&self.0.full).await
    }

    /// Whether the set is empty (then it does not exist).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// One page of members; pass `next` back until it is `None`.
    pub async fn scan(&self, cursor: ScanCursor, count: usize) -> Result<Page<V>> {
        let page = self.0.store()?.sscan(&self.0.full, cursor, count).await?;
        Ok(Page {
            items: self.0.decode_all(page.items)?,
            next: page.next,
        })
    }
}

/// A sorted set of `V` members with `f64` scores. See [`Cache::sorted_set`].
#[derive(Debug)]
pub struct SortedSetOf<V, C: Codec = Json>(Handle<V, C>);

impl<V: Serialize + DeserializeOwned, C: Codec> SortedSetOf<V, C> {
    /// Adds members with scores (or gives existing ones their new score); returns how many are new.
    pub async fn add(&self, members: &[(f64, V)]) -> Result<u64> {
        let members = members
            .iter()
            .map(|(score, m)| Ok((*score, self.0.encode(m)?)))
            .collect::<Result<Vec<_>>>()?;
        self.0.store()?.zadd(&self.0.full, &members).await
    }

    /// Adds `delta` to a member's score (0 if absent); returns the new score.
    pub async fn incr_by(&self, member: &V, delta: f64) -> Result<f64> {
        let member = self.0.encode(member)?;
        self.0.store()?.zincr_by(&self.0.full, &member, delta).await
    }

    /// Removes members; returns how many were in the set.
    pub async fn remove(&self, members: &[V]) -> Result<u64> {
        let members = self.0.encode_all(members)?;
        self.0.store()?.zrem(&self.0.full, &members).await
    }

    /// A member's score.
    pub async fn score(&self, member: &V) -> Result<Option<f64>> {
        let member = self.0.encode(member)?;
        self.0.store()?.zscore(&self.0.full, &member).await
    }

    /// A member's rank in `order` (0: first).
    pub async fn rank(&self, member: &V, order: Order) -> Result<Option<u64>> {
        let member = self.0.encode(member)?;
        self.0.store()?.zrank(&self.0.full, &member, order).await
    }

    /// Up to `count` members with scores from rank `start` in `order`: the top 10 is
    /// `range_by_rank(0, 10, Order::Descending)`.
    pub async fn range_by_rank(
        &self,
        start: i64,
        count: usize,
        order: Order,
    ) -> Result<Vec<(V, f64)>> {
        let members = self
            .0
            .store()?
            .zrange_by_rank(&self.0.full, start, count, order)
            .await?;
        self.0.decode_scored(members)
    }

    /// Up to `count` members with scores between `min` and `max`, after `offset`, in `order`.
    pub async fn range_by_score(
        &self,
        min: ScoreBound,
        max: ScoreBound,
        offset: usize,
        count: usize,
        order: Order,
    ) -> Result<Vec<(V, f64)>> {
        let members = self
            .0
            .store()?
            .zrange_by_score(&self.0.full, min, max, offset, count, order)
            .await?;
        self.0.decode_scored(members)
    }

    /// How many members there are.
    pub async fn len(&self) -> Result<u64> {
        self.0.store()?.zcard(&self.0.full).await
    }

    /// Whether the set is empty (then it does not exist).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }
}
