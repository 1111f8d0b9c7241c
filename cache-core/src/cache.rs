//! The typed facade: [`Cache`], built with [`CacheBuilder`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::single_flight::{Role, SingleFlight};
use crate::stats::StatsCounters;
use crate::{CacheStats, CacheStore, Codec, Error, Json, Result, SetOptions};

/// A typed cache over any [`CacheStore`]: a namespace, a default TTL and a [`Codec`].
///
/// Keys are prefixed with `"{namespace}:"`, so caches with different namespaces on one store never
/// see each other's entries, except that namespaces nest: namespace `"a"` contains namespace
/// `"a:b"`, whose key `"1"` it reads as `"b:1"`, and whose entries its [`clear`](Self::clear)
/// deletes. Give unrelated caches namespaces that do not nest. Cloning is cheap and clones share stats
/// and in-flight loads.
///
/// ```
/// # futures::executor::block_on(async {
/// use backend_memory::MemoryStore;
/// use cache_core::Cache;
/// use std::time::Duration;
///
/// let cache = Cache::builder(MemoryStore::new())
///     .namespace("users")
///     .default_ttl(Duration::from_secs(60))
///     .build()?;
/// cache.set("42", &"Ada").await?;
/// assert_eq!(cache.get::<String>("42").await?.as_deref(), Some("Ada"));
/// # Ok::<_, cache_core::Error>(()) }).unwrap();
/// ```
pub struct Cache<C: Codec = Json> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    store: Arc<dyn CacheStore>,
    prefix: String,
    default_ttl: Option<Duration>,
    codec: C,
    stats: StatsCounters,
    loads: SingleFlight<Result<Bytes>>,
}

impl<C: Codec> Clone for Cache<C> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Codec> fmt::Debug for Cache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.store)
            .field("prefix", &self.inner.prefix)
            .field("default_ttl", &self.inner.default_ttl)
            .field("codec", &C::NAME)
            .finish()
    }
}

/// Builds a [`Cache`]. Start with [`Cache::builder`].
#[derive(Debug)]
#[must_use]
pub struct CacheBuilder<C: Codec = Json> {
    store: Arc<dyn CacheStore>,
    namespace: String,
    default_ttl: Option<Duration>,
    codec: C,
}

impl Cache<Json> {
    /// A builder over `store`, with no namespace, no default TTL and the JSON codec.
    pub fn builder(store: impl IntoStore) -> CacheBuilder<Json> {
        CacheBuilder {
            store: store.into_store(),
            namespace: String::new(),
            default_ttl: None,
            codec: Json,
        }
    }
}

/// Anything that can serve as a [`Cache`]'s store: a concrete store or an `Arc<dyn CacheStore>`.
pub trait IntoStore {
    /// Converts into a shared trait object.
    fn into_store(self) -> Arc<dyn CacheStore>;
}

impl<S: CacheStore + 'static> IntoStore for S {
    fn into_store(self) -> Arc<dyn CacheStore> {
        Arc::new(self)
    }
}

impl<S: CacheStore + 'static> IntoStore for Arc<S> {
    fn into_store(self) -> Arc<dyn CacheStore> {
        self
    }
}

impl IntoStore for Arc<dyn CacheStore> {
    fn into_store(self) -> Arc<dyn CacheStore> {
        self
    }
}

impl<C: Codec> CacheBuilder<C> {
    /// Prefixes every key with `"{namespace}:"`. Default: no prefix.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The TTL of writes that do not give one. Default: none (entries never expire).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The serialization format. Default: [`Json`].
    pub fn codec<C2: Codec>(self, codec: C2) -> CacheBuilder<C2> {
        CacheBuilder {
            store: self.store,
            namespace: self.namespace,
            default_ttl: self.default_ttl,
            codec,
        }
    }

    /// Builds the cache. Fails if the default TTL is zero or too long.
    pub fn build(self) -> Result<Cache<C>> {
        crate::limits::opt_ttl_millis(self.default_ttl)?;
        let prefix = if self.namespace.is_empty() {
            String::new()
        } else {
            format!("{}:", self.namespace)
        };
        Ok(Cache {
            inner: Arc::new(Inner {
                store: self.store,
                prefix,
                default_ttl: self.default_ttl,
                codec: self.codec,
                stats: StatsCounters::default(),
                loads: SingleFlight::default(),
            }),
        })
    }
}

impl<C: Codec> Cache<C> {
    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.inner.store
    }

    /// The key prefix derived from the namespace (`""` or `"{namespace}:"`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// A snapshot of this cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }

    /// Reads and decodes a value. A miss is `Ok(None)`.
    ///
    /// Bytes that do not decode as `T` are an [`ErrorKind::Codec`](crate::ErrorKind::Codec) error naming the key and `T`; the
    /// stored entry is left untouched.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.track(async {
            let full = self.full_key(key)?;
            let found = self.inner.store.get(&full).await?;
            self.count_lookups(found.is_some() as u64, found.is_none() as u64);
            found.map(|bytes| self.decode(key, &bytes)).transpose()
        })
        .await
    }

    /// Reads many values; one slot per key, in order.
    pub async fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<Vec<Option<T>>> {
        self.track(async {
            let full = keys
                .iter()
                .map(|k| self.full_key(k))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            let found = self.inner.store.get_many(&refs).await?;
            let hits = found.iter().filter(|v| v.is_some()).count() as u64;
            self.count_lookups(hits, found.len() as u64 - hits);
            keys.iter()
                .zip(found)
                .map(|(key, bytes)| bytes.map(|b| self.decode(key, &b)).transpose())
                .collect()
        })
        .await
    }

    /// Writes a value with the default TTL.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set_with_ttl(key, value, self.inner.default_ttl).await
    }

    /// Writes a value with an explicit TTL (`None`: never expires).
    pub async fn set_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.track(async {
            let bytes = self.encode(key, value)?;
            self.inner
                .store
                .set(
                    &self.full_key(key)?,
                    bytes,
                    SetOptions::new().maybe_ttl(ttl),
                )
                .await?;
            StatsCounters::add(&self.inner.stats.sets, 1);
            Ok(())
        })
        .await
    }

    /// Writes many values with the default TTL.
    pub async fn set_many<T: Serialize>(&self, entries: &[(&str, T)]) -> Result<()> {
        self.track(async {
            let encoded = entries
                .iter()
                .map(|(key, value)| Ok((self.full_key(key)?, self.encode(key, value)?)))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<(&str, Bytes)> = encoded
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            self.inner
                .store
                .set_many(&refs, self.inner.default_ttl)
                .await?;
            StatsCounters::add(&self.inner.stats.sets, refs.len() as u64);
            Ok(())
        })
        .await
    }

    /// Deletes a key; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.track(async {
            let existed = self.inner.store.delete(&self.full_key(key)?).await?;
            StatsCounters::add(&self.inner.stats.deletes, existed as u64);
            Ok(existed)
        })
        .await
    }

    /// Adds `delta` to a counter and returns the new value; `ttl_on_create` applies only when this
    /// call creates the counter. See [`CacheStore::incr_by`].
    pub async fn incr_by(
        &self,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Duration>,
    ) -> Result<i64> {
        self.track(
            self.inner
                .store
                .incr_by(&self.full_key(key)?, delta, ttl_on_create),
        )
        .await
    }

    /// Deletes every key of this cache's namespace (or of the whole store if it has none) and returns
    /// how many it deleted.
    pub async fn clear(&self) -> Result<u64> {
        self.track(async {
            let removed = self.inner.store.clear(&self.inner.prefix).await?;
            StatsCounters::add(&self.inner.stats.deletes, removed);
            Ok(removed)
        })
        .await
    }

    /// Returns the cached value of `key`, or runs `loader`, caches its value for `ttl` (`None`: the
    /// default TTL) and returns it.
    ///
    /// Concurrent misses on the same key in this `Cache` (and its clones) run the loader once; every
    /// caller gets the value. If the loader fails, every waiting caller gets the same
    /// [`ErrorKind::Loader`](crate::ErrorKind::Loader) error (with the loader's error as its source) and nothing is cached. If the
    /// caller running the loader is cancelled, one of the waiters runs it instead.
    ///
    /// The loaded value is stored only if the key is still absent: a value written while the loader
    /// ran (by [`set`](Self::set) or another process) is newer, so it stays, and the callers get the
    /// loaded value without it being stored.
    pub async fn get_or_insert_with<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.track(async {
            let full = self.full_key(key)?;
            if let Some(bytes) = self.inner.store.get(&full).await? {
                self.count_lookups(1, 0);
                return self.decode(key, &bytes);
            }
            self.count_lookups(0, 1);
            let leader = match self.inner.loads.join(&full).await {
                Role::Follower(result) => return self.decode(key, &result?),
                Role::Leader(leader) => leader,
            };
            // A previous flight may have filled the key between our miss and our turn to lead.
            let result = match self.inner.store.get(&full).await {
                Ok(Some(bytes)) => Ok((bytes, None)),
                Ok(None) => self
                    .load_and_store(key, &full, ttl, loader)
                    .await
                    .map(|(b, v)| (b, Some(v))),
                Err(e) => Err(e),
            };
            leader.finish(|| {
                result
                    .as_ref()
                    .map(|(bytes, _)| bytes.clone())
                    .map_err(Clone::clone)
            });
            let (bytes, value) = result?;
            match value {
                Some(value) => Ok(value),
                None => self.decode(key, &bytes),
            }
        })
        .await
    }

    async fn load_and_store<T, F, Fut, E>(
        &self,
        key: &str,
        full: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<(Bytes, T)>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        StatsCounters::add(&self.inner.stats.loader_runs, 1);
        tracing::debug!(key = full, "cache loader running");
        let value = loader().await.map_err(|e| Error::loader_failed(key, e))?;
        let bytes = self.encode(key, &value)?;
        let ttl = ttl.or(self.inner.default_ttl);
        let options = SetOptions::new().maybe_ttl(ttl).if_absent();
        if self.inner.store.set(full, bytes.clone(), options).await? {
            StatsCounters::add(&self.inner.stats.sets, 1);
        } else {
            tracing::debug!(
                key = full,
                "a newer value was written while loading; kept it"
            );
        }
        Ok((bytes, value))
    }

    pub(crate) fn full_key(&self, key: &str) -> Result<String> {
        crate::codec::prefixed(&self.inner.prefix, key)
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Bytes> {
        crate::codec::encode_for(&self.inner.codec, key, value)
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T> {
        crate::codec::decode_for(&self.inner.codec, key, bytes)
    }

    fn count_lookups(&self, hits: u64, misses: u64) {
        StatsCounters::add(&self.inner.stats.hits, hits);
        StatsCounters::add(&self.inner.stats.misses, misses);
    }

    async fn track<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        let result = op.await;
        if result.is_err() {
            StatsCounters::add(&self.inner.stats.errors, 1);
        }
        result
    }
}
