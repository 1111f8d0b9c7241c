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
use crate::{
    CacheStats, CacheStore, Codec, Error, Json, KeyTtl, LocalStore, PrefixedKey, Result,
    SetOptions, SharedObject, ToShared,
};

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
    loads: SingleFlight<Result<Loaded>>,
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

/// A loaded value as the waiters of one load share it: its bytes, and the value itself.
#[derive(Clone)]
struct Loaded {
    bytes: Bytes,
    object: SharedObject,
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

    /// A snapshot of this cache's counters, with the store's evictions and expirations if it counts
    /// them (those are the whole store's, not this namespace's).
    pub fn stats(&self) -> CacheStats {
        let mut stats = self.inner.stats.snapshot();
        if let Some(departures) = self.inner.store.departures() {
            stats.evictions = Some(departures.evictions);
            stats.expirations = Some(departures.expirations);
        }
        stats
    }

    // ---------------------------------------------------------------------------------------------
    // Reads

    /// Reads a value, shared: on a store in this process ([`CacheStore::as_local`], e.g. a
    /// `MemoryStore`), a value written or loaded as a `T` by this codec is handed out as it was
    /// kept, without decoding or allocating; otherwise the bytes are decoded. A miss is `Ok(None)`.
    ///
    /// The value is immutable behind its [`Arc`]: nobody can change what the cache holds, and a
    /// change is a new write.
    ///
    /// Bytes that do not decode as `T` are an [`ErrorKind::Codec`](crate::ErrorKind::Codec) error
    /// naming the key and `T`; the stored entry is left untouched.
    pub async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let found = match self.inner.store.as_local() {
            Some(local) => self.read_local::<T>(local, key),
            // Boxed, so that the future of a local hit stays a few words long.
            None => Box::pin(self.read_remote(key)).await,
        };
        self.tracked(found)
    }

    /// Reads a value: a clone of [`get_shared`](Self::get_shared)'s. A miss is `Ok(None)`.
    pub async fn get<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        Ok(self.get_shared::<T>(key).await?.map(unshare))
    }

    /// Reads many values; one slot per key, in order.
    pub async fn get_many<T>(&self, keys: &[&str]) -> Result<Vec<Option<T>>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let found = match self.inner.store.as_local() {
            Some(local) => keys
                .iter()
                .map(|key| self.read_local::<T>(local, key))
                .collect(),
            None => self.read_many_remote::<T>(keys).await,
        };
        self.tracked(found)
            .map(|values| values.into_iter().map(|v| v.map(unshare)).collect())
    }

    /// Whether `key` holds a value.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key);
        self.track(async { self.inner.store.exists(&full?).await })
            .await
    }

    /// How long `key` has left: [`KeyTtl::Missing`], [`KeyTtl::Persistent`] or
    /// [`KeyTtl::ExpiresIn`].
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let full = self.full_key(key);
        self.track(async { self.inner.store.ttl(&full?).await })
            .await
    }

    // ---------------------------------------------------------------------------------------------
    // Writes

    /// Writes a value with the default TTL. On a store in this process, a shared copy is kept next
    /// to its bytes, for [`get_shared`](Self::get_shared) and [`get`](Self::get) to hand out.
    pub async fn set<T>(&self, key: &str, value: &T) -> Result<()>
    where
        T: Serialize + ToShared + ?Sized,
    {
        self.set_with_optional_ttl(key, value, self.inner.default_ttl)
            .await
    }

    /// Writes a value that expires after `ttl`.
    pub async fn set_with_ttl<T>(&self, key: &str, value: &T, ttl: Duration) -> Result<()>
    where
        T: Serialize + ToShared + ?Sized,
    {
        self.set_with_optional_ttl(key, value, Some(ttl)).await
    }

    /// Writes a value that expires after `ttl`, or never if `ttl` is `None` (the default TTL does
    /// not apply).
    pub async fn set_with_optional_ttl<T>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()>
    where
        T: Serialize + ToShared + ?Sized,
    {
        let options = SetOptions::new().maybe_ttl(ttl);
        self.tracked(self.write(key, value, || value.to_shared(), options).await)
            .map(drop)
    }

    /// Writes a shared value with the default TTL, without cloning it: a store in this process
    /// keeps this very `Arc`.
    pub async fn set_shared<T>(&self, key: &str, value: Arc<T>) -> Result<()>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let options = SetOptions::new().maybe_ttl(self.inner.default_ttl);
        self.tracked(self.write(key, &*value, || value.clone(), options).await)
            .map(drop)
    }

    /// Writes a value with the default TTL only if `key` holds none; returns whether it wrote.
    pub async fn set_if_absent<T>(&self, key: &str, value: &T) -> Result<bool>
    where
        T: Serialize + ToShared + ?Sized,
    {
        let options = SetOptions::new()
            .maybe_ttl(self.inner.default_ttl)
            .if_absent();
        self.tracked(self.write(key, value, || value.to_shared(), options).await)
    }

    /// Writes a value with the default TTL only if `key` holds one; returns whether it wrote.
    pub async fn set_if_present<T>(&self, key: &str, value: &T) -> Result<bool>
    where
        T: Serialize + ToShared + ?Sized,
    {
        let options = SetOptions::new()
            .maybe_ttl(self.inner.default_ttl)
            .if_present();
        self.tracked(self.write(key, value, || value.to_shared(), options).await)
    }

    /// Replaces the value of `key` with `new` (`None`: deletes it) only if it is `expected` now
    /// (`None`: absent); returns whether it did. Atomic. A new value gets the default TTL.
    ///
    /// Values are compared by their encoding, so use types that always encode alike (not a
    /// `HashMap`, whose order varies). The new value is kept as bytes only: reads of it decode.
    pub async fn compare_and_swap<T: Serialize>(
        &self,
        key: &str,
        expected: Option<&T>,
        new: Option<&T>,
    ) -> Result<bool> {
        self.track(async {
            let full = self.full_key(key)?;
            let expected = expected.map(|v| self.encode(key, v)).transpose()?;
            let new = new.map(|v| self.encode(key, v)).transpose()?;
            let wrote_value = new.is_some();
            let swapped = self
                .inner
                .store
                .compare_and_swap(&full, expected.as_deref(), new, self.inner.default_ttl)
                .await?;
            if swapped {
                let counter = match wrote_value {
                    true => &self.inner.stats.sets,
                    false => &self.inner.stats.deletes,
                };
                StatsCounters::add(counter, 1);
            }
            Ok(swapped)
        })
        .await
    }

    /// Writes many values with the default TTL. Every key and value is checked before any is
    /// written.
    pub async fn set_many<T>(&self, entries: &[(&str, T)]) -> Result<()>
    where
        T: Serialize + ToShared,
    {
        self.set_many_with_optional_ttl(entries, self.inner.default_ttl)
            .await
    }

    /// Writes many values that expire after `ttl`.
    pub async fn set_many_with_ttl<T>(&self, entries: &[(&str, T)], ttl: Duration) -> Result<()>
    where
        T: Serialize + ToShared,
    {
        self.set_many_with_optional_ttl(entries, Some(ttl)).await
    }

    async fn set_many_with_optional_ttl<T>(
        &self,
        entries: &[(&str, T)],
        ttl: Option<Duration>,
    ) -> Result<()>
    where
        T: Serialize + ToShared,
    {
        self.track(async {
            let encoded = entries
                .iter()
                .map(|(key, value)| Ok((self.full_key(key)?, self.encode(key, value)?)))
                .collect::<Result<Vec<_>>>()?;
            match self.inner.store.as_local() {
                Some(local) => {
                    let limits = self.inner.store.limits();
                    for (full, bytes) in &encoded {
                        limits.check_entry(full, bytes.len())?;
                    }
                    crate::opt_ttl_millis(ttl)?;
                    let options = SetOptions::new().maybe_ttl(ttl);
                    for ((key, value), (_, bytes)) in entries.iter().zip(encoded) {
                        let object = SharedObject::new(value.to_shared(), C::NAME);
                        local.set_shared_now(self.prefixed(key)?, bytes, object, options)?;
                    }
                }
                None => {
                    let refs: Vec<(&str, Bytes)> = encoded
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.clone()))
                        .collect();
                    self.inner.store.set_many(&refs, ttl).await?;
                }
            }
            StatsCounters::add(&self.inner.stats.sets, entries.len() as u64);
            Ok(())
        })
        .await
    }

    /// Sets `key` to expire after `ttl`; returns whether it exists.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        let full = self.full_key(key);
        self.track(async { self.inner.store.expire(&full?, ttl).await })
            .await
    }

    /// Removes the TTL of `key`; returns whether it had one.
    pub async fn persist(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key);
        self.track(async { self.inner.store.persist(&full?).await })
            .await
    }

    /// Adds `delta` to a counter and returns the new value; `ttl_on_create` applies only when this
    /// call creates the counter. See [`CacheStore::incr_by`]. Counters are decimal text, whatever
    /// the codec: read them with `get::<i64>` under JSON, or with `incr_by(key, 0, None)`.
    pub async fn incr_by(
        &self,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Duration>,
    ) -> Result<i64> {
        let full = self.full_key(key);
        self.track(async { self.inner.store.incr_by(&full?, delta, ttl_on_create).await })
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

    /// Deletes many keys; returns how many existed.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.track(async {
            let full = keys
                .iter()
                .map(|key| self.full_key(key))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            let deleted = self.inner.store.delete_many(&refs).await?;
            StatsCounters::add(&self.inner.stats.deletes, deleted);
            Ok(deleted)
        })
        .await
    }

    /// Deletes every key of this cache that starts with `prefix` (inside the namespace: `"list:"`
    /// deletes `"{namespace}:list:…"`), and returns how many it deleted. An empty prefix is
    /// [`clear`](Self::clear).
    pub async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        self.track(async {
            let full = format!("{}{prefix}", self.inner.prefix);
            let removed = self.inner.store.clear(&full).await?;
            StatsCounters::add(&self.inner.stats.deletes, removed);
            Ok(removed)
        })
        .await
    }

    /// Deletes every key of this cache whose key (without the namespace) matches the glob
    /// `pattern`, with Redis `MATCH` semantics on every store (see
    /// [`glob_matches`](crate::glob_matches)), and returns how many it deleted. Not atomic: a key
    /// written meanwhile may or may not be deleted.
    ///
    /// It scans the keys that start with the pattern's literal beginning (`"list:"` for
    /// `"list:*"`), so a pattern that starts with a literal is cheaper than one that starts with `*`.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.track(async {
            let removed = self
                .inner
                .store
                .clear_matching(&self.inner.prefix, pattern)
                .await?;
            StatsCounters::add(&self.inner.stats.deletes, removed);
            Ok(removed)
        })
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

    // ---------------------------------------------------------------------------------------------
    // Cache-aside

    /// Returns the cached value of `key`, or runs `loader`, caches its value for `ttl` (`None`: the
    /// default TTL) and returns it: a clone of
    /// [`get_shared_or_insert_with`](Self::get_shared_or_insert_with)'s.
    pub async fn get_or_insert_with<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.get_shared_or_insert_with(key, ttl, loader)
            .await
            .map(unshare)
    }

    /// Returns the cached value of `key`, shared, or runs `loader`, caches its value for `ttl`
    /// (`None`: the default TTL) and returns it.
    ///
    /// Concurrent misses on the same key in this `Cache` (and its clones) run the loader once; every
    /// caller gets the value. If the loader fails, every waiting caller gets the same
    /// [`ErrorKind::Loader`](crate::ErrorKind::Loader) error (with the loader's error as its source)
    /// and nothing is cached. If the caller running the loader is cancelled, one of the waiters runs
    /// it instead.
    ///
    /// The loaded value is stored only if the key is still absent: a value written while the loader
    /// ran (by [`set`](Self::set) or another process) is newer, so it stays, and the callers get the
    /// loaded value without it being stored.
    pub async fn get_shared_or_insert_with<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<Arc<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if let Some(local) = self.inner.store.as_local() {
            // A hit answers here, without the flight's key.
            if let Some(value) = self.tracked(self.read_local::<T>(local, key))? {
                return Ok(value);
            }
        }
        // Boxed, so that the future of a local hit stays a few words long.
        Box::pin(self.track(self.load(key, ttl, loader))).await
    }

    async fn load<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<Arc<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let full = self.full_key(key)?;
        if self.inner.store.as_local().is_none() {
            if let Some(value) = self.read_remote::<T>(key).await? {
                return Ok(value);
            }
        }
        let leader = match self.inner.loads.join(&full).await {
            Role::Follower(loaded) => return self.loaded_value(key, loaded?),
            Role::Leader(leader) => leader,
        };
        // A previous flight may have filled the key between our miss and our turn to lead.
        let found = match self.inner.store.as_local() {
            Some(local) => self
                .read_local_uncounted::<T>(local, key)
                .and_then(Option::transpose),
            None => match self.inner.store.get(&full).await {
                Ok(bytes) => bytes
                    .map(|b| self.decode(key, &b).map(Arc::new))
                    .transpose(),
                Err(e) => Err(e),
            },
        };
        let result = match found {
            Ok(Some(value)) => Ok(value),
            Ok(None) => self.load_and_store(key, &full, ttl, loader).await,
            Err(e) => Err(e),
        };
        leader.finish(|| {
            let value = result.as_ref().map_err(Clone::clone)?;
            Ok(Loaded {
                bytes: self.encode(key, &**value)?,
                object: SharedObject::new(value.clone(), C::NAME),
            })
        });
        result
    }

    async fn load_and_store<T, F, Fut, E>(
        &self,
        key: &str,
        full: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<Arc<T>>
    where
        T: Serialize + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        StatsCounters::add(&self.inner.stats.loader_runs, 1);
        tracing::debug!(key = full, "cache loader running");
        let value = Arc::new(loader().await.map_err(|e| Error::loader_failed(key, e))?);
        let ttl = ttl.or(self.inner.default_ttl);
        let options = SetOptions::new().maybe_ttl(ttl).if_absent();
        if !self.write(key, &*value, || value.clone(), options).await? {
            tracing::debug!(
                key = full,
                "a newer value was written while loading; kept it"
            );
        }
        Ok(value)
    }

    // ---------------------------------------------------------------------------------------------
    // Internals

    /// Encodes `value` and writes it with `options`; on a store in this process, with the shared
    /// object `object` makes. Returns whether it wrote, and counts it.
    async fn write<T, O>(
        &self,
        key: &str,
        value: &T,
        object: impl FnOnce() -> Arc<O>,
        options: SetOptions,
    ) -> Result<bool>
    where
        T: Serialize + ?Sized,
        O: std::any::Any + Send + Sync,
    {
        let bytes = self.encode(key, value)?;
        let wrote = match self.inner.store.as_local() {
            Some(local) => {
                let object = SharedObject::new(object(), C::NAME);
                local.set_shared_now(self.prefixed(key)?, bytes, object, options)?
            }
            None => {
                self.inner
                    .store
                    .set(&self.full_key(key)?, bytes, options)
                    .await?
            }
        };
        StatsCounters::add(&self.inner.stats.sets, wrote as u64);
        Ok(wrote)
    }

    /// A hit of a store in this process: the shared object if it is a `T` of this codec, else the
    /// bytes decoded. Counts the hit or miss.
    fn read_local<T>(&self, local: &dyn LocalStore, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let found = self.read_local_uncounted(local, key)?;
        self.count_lookups(found.is_some() as u64, found.is_none() as u64);
        found.transpose()
    }

    /// The value of a hit, or the error decoding it; `None` on a miss.
    fn read_local_uncounted<T>(
        &self,
        local: &dyn LocalStore,
        key: &str,
    ) -> Result<Option<Result<Arc<T>>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let mut found = None;
        local.read_now(self.prefixed(key)?, &mut |bytes, object| {
            found = Some(match object.and_then(|o| o.downcast::<T>(C::NAME)) {
                Some(shared) => Ok(shared),
                None => self.decode::<T>(key, bytes).map(Arc::new),
            });
        })?;
        Ok(found)
    }

    async fn read_remote<T>(&self, key: &str) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let found = self.inner.store.get(&self.full_key(key)?).await?;
        self.count_lookups(found.is_some() as u64, found.is_none() as u64);
        found
            .map(|bytes| self.decode(key, &bytes).map(Arc::new))
            .transpose()
    }

    async fn read_many_remote<T>(&self, keys: &[&str]) -> Result<Vec<Option<Arc<T>>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
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
            .map(|(key, bytes)| {
                bytes
                    .map(|b| self.decode(key, &b).map(Arc::new))
                    .transpose()
            })
            .collect()
    }

    /// A follower's answer: the leader's object if it is a `T`, else its bytes decoded.
    fn loaded_value<T>(&self, key: &str, loaded: Loaded) -> Result<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        match loaded.object.downcast::<T>(C::NAME) {
            Some(value) => Ok(value),
            None => self.decode(key, &loaded.bytes).map(Arc::new),
        }
    }

    /// `key` under the namespace, for a store in this process; an empty key is refused (the store
    /// would take `"{namespace}:"`).
    fn prefixed<'a>(&'a self, key: &'a str) -> Result<PrefixedKey<'a>> {
        if key.is_empty() {
            return Err(crate::codec::empty_key());
        }
        Ok(PrefixedKey::new(&self.inner.prefix, key))
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
        self.inner.stats.hits.add(hits);
        self.inner.stats.misses.add(misses);
    }

    /// Counts an error.
    fn tracked<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            let stats = &self.inner.stats;
            StatsCounters::add(&stats.errors, 1);
            StatsCounters::add(&stats.errors_by_kind[e.kind() as usize], 1);
        }
        result
    }

    async fn track<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        self.tracked(op.await)
    }
}

/// The value out of its `Arc`: moved if this was the last reference, else cloned.
fn unshare<T: Clone>(shared: Arc<T>) -> T {
    Arc::unwrap_or_clone(shared)
}
