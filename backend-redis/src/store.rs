//! [`RedisStore`]: the [`CacheStore`] contract on Redis, one round trip per operation.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    CacheStore, Capabilities, Error, KeyTtl, Limits, Result, ScanCursor, ScanPage, SetCondition,
    SetOptions, glob_escape, opt_ttl_millis, ttl_millis,
};
use futures::future::try_join_all;
use redis::cluster_routing::Slot;
use redis::{Cmd, FromRedisValue, Pipeline, RedisWrite, Script, ToRedisArgs, Value};

use crate::config::{NodeAddr, RedisConfig, RedisMode};
use crate::conn::{Conn, connect};
use crate::error::{map_redis_error, timed_out, unexpected};
use crate::topology::{MAX_ROUNDS, Shard, SlotSet, Topology};

/// `incr_by` with TTL-on-create: `INCRBY` leaves non-integers and overflows unchanged and reports
/// them; the TTL is applied only when this call created the key. The result is returned as the
/// stored string, because Lua numbers are doubles and would round values beyond 2^53.
const INCR_SCRIPT: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local r = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(r) == 'table' and r.err then return r end
if existed == 0 and ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1])
";

/// `compare_and_swap`: ARGV = has_expected, expected, has_new, new, ttl_ms (or '').
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur == false or cur ~= ARGV[2] then return 0 end
elseif cur ~= false then
  return 0
end
if ARGV[3] == '1' then
  if ARGV[5] ~= '' then
    redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
  else
    redis.call('SET', KEYS[1], ARGV[4])
  end
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// The largest `COUNT` a scan sends: the caller's count is a hint, and Redis refuses counts beyond
/// `i64`, while a huge one would stall the server walking its keyspace in one step.
const MAX_SCAN_COUNT: usize = 10_000;

/// How many keys one `SCAN` step of [`CacheStore::clear`] asks for, and one `UNLINK` removes.
const CLEAR_BATCH: usize = 1000;

/// A [`CacheStore`] on Redis: standalone, Cluster or Sentinel, chosen by [`RedisConfig::mode`].
///
/// Values are stored as their raw bytes under `key_prefix + key`, so any Redis client can read them.
/// Cloning is cheap and clones share the connection.
///
/// ```no_run
/// use backend_redis::{RedisConfig, RedisStore};
/// use cache_core::{CacheStore, SetOptions};
///
/// # async fn run() -> cache_core::Result<()> {
/// let store = RedisStore::connect(RedisConfig::from_url("redis://127.0.0.1:6379")?).await?;
/// store.set("greeting", "hello".into(), SetOptions::new()).await?;
/// assert_eq!(store.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    config: RedisConfig,
    incr: Script,
    cas: Script,
    /// Cleared when a command fails in a way retrying may fix (the connection dropped, a timeout),
    /// set again by the next success; see [`RedisStore::timed`].
    healthy: AtomicBool,
    /// Lua scripts registered by name.
    scripts: crate::escape::Scripts,
    /// On Cluster: the primaries, asked for directly (see `topology`).
    topology: Option<Topology>,
    /// The `cache.name` label of this store's metrics: its key prefix, or `redis` without one.
    #[cfg(feature = "metrics")]
    metrics_name: Arc<str>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("mode", &self.inner.config.mode)
            .field("tls", &self.inner.config.tls)
            .field("key_prefix", &self.inner.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects with `config`. Fails with
    /// [`ErrorKind::Connection`](cache_core::ErrorKind::Connection) if no server answers within the
    /// retry policy, and with [`ErrorKind::Authentication`](cache_core::ErrorKind::Authentication)
    /// at the first attempt if it refuses the credentials (standalone and Sentinel).
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let conn = connect(&config).await?;
        let topology = matches!(config.mode, RedisMode::Cluster(_)).then(|| Topology::new(&config));
        #[cfg(feature = "metrics")]
        let config_prefix = config.key_prefix.clone();
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                topology,
                config,
                incr: Script::new(INCR_SCRIPT),
                cas: Script::new(CAS_SCRIPT),
                healthy: AtomicBool::new(true),
                scripts: crate::escape::Scripts::default(),
                #[cfg(feature = "metrics")]
                metrics_name: Arc::from(if config_prefix.is_empty() {
                    "redis"
                } else {
                    config_prefix.as_str()
                }),
            }),
        })
    }

    /// Connects to a `redis://` or `rediss://` URL with default settings otherwise.
    pub async fn from_url(url: &str) -> Result<Self> {
        Self::connect(RedisConfig::from_url(url)?).await
    }

    /// Connects to the URL in `REDIS_URL`.
    pub async fn from_env() -> Result<Self> {
        Self::connect(RedisConfig::from_env()?).await
    }

    /// The settings this store was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// In Sentinel mode, the master's address as last resolved; `None` in other modes.
    pub fn sentinel_master(&self) -> Option<crate::NodeAddr> {
        match &self.inner.conn {
            Conn::Sentinel(s) => Some(s.master()),
            _ => None,
        }
    }

    pub(crate) fn scripts(&self) -> &crate::escape::Scripts {
        &self.inner.scripts
    }

    /// A handle on the store's connection (cheap to clone).
    pub(crate) fn connection_handle(&self) -> Conn {
        self.inner.conn.clone()
    }

    /// Whether this store talks to a Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.inner.topology.is_some()
    }

    /// Runs redis work for `op` within `command_timeout`, mapping its error.
    pub(crate) async fn timed_call<T>(
        &self,
        op: &str,
        work: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        self.timed(op, None, work).await
    }

    pub(crate) fn limits_ref(&self) -> &Limits {
        &self.inner.config.limits
    }

    fn full_key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        let prefix = &self.inner.config.key_prefix;
        if prefix.is_empty() {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(format!("{prefix}{key}"))
        }
    }

    /// `key_prefix + key` as a command argument, written straight into the command's buffer.
    pub(crate) fn key_arg<'a>(&'a self, key: &'a str) -> KeyArg<'a> {
        KeyArg {
            prefix: &self.inner.config.key_prefix,
            key,
        }
    }

    /// `name key_prefix+key`, with room for `extra_args` more arguments of `extra_bytes` in all.
    pub(crate) fn key_command(
        &self,
        name: &str,
        key: &str,
        extra_args: usize,
        extra_bytes: usize,
    ) -> Cmd {
        let mut cmd = command(name, 1 + extra_args, self.key_len(key) + extra_bytes);
        cmd.arg(self.key_arg(key));
        cmd
    }

    /// The length of `key_prefix + key`.
    fn key_len(&self, key: &str) -> usize {
        self.inner.config.key_prefix.len() + key.len()
    }

    fn strip_prefix(&self, full: Vec<u8>) -> Option<String> {
        let full = String::from_utf8(full).ok()?;
        let prefix = &self.inner.config.key_prefix;
        if prefix.is_empty() {
            return Some(full);
        }
        full.strip_prefix(prefix.as_str()).map(str::to_owned)
    }

    /// Runs one future of redis work and maps its error, within `command_timeout`.
    ///
    /// While the connection is healthy, the connection's own response timeout (`command_timeout`)
    /// bounds the command, so the hot path carries one timer, as raw redis-rs does. Once a command
    /// has failed with a retryable error, commands also wait under an outer timer, which bounds the
    /// wait for a reconnect, until one succeeds again.
    async fn timed<T>(
        &self,
        op: &str,
        key: Option<&str>,
        work: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let result = self.timed_unrecorded(op, key, work).await;
        #[cfg(feature = "metrics")]
        self.record(op, started, result.as_ref().err());
        result
    }

    /// Records a command's duration (with its `error.type` if it failed) and counts its error.
    #[cfg(feature = "metrics")]
    fn record(&self, op: &str, started: std::time::Instant, error: Option<&cache_core::Error>) {
        use cache_core::metrics::{
            CACHE_ERRORS, CACHE_NAME, DB_CLIENT_OPERATION_DURATION, DB_OPERATION_NAME,
            DB_SYSTEM_NAME, ERROR_TYPE,
        };
        let seconds = started.elapsed().as_secs_f64();
        let name = metrics::SharedString::from(self.inner.metrics_name.clone());
        let op = op.to_owned();
        match error {
            None => metrics::histogram!(DB_CLIENT_OPERATION_DURATION,
                DB_SYSTEM_NAME => "redis", DB_OPERATION_NAME => op, CACHE_NAME => name)
            .record(seconds),
            Some(error) => {
                let kind = error.kind().code();
                metrics::histogram!(DB_CLIENT_OPERATION_DURATION,
                    DB_SYSTEM_NAME => "redis", DB_OPERATION_NAME => op, CACHE_NAME => name.clone(),
                    ERROR_TYPE => kind)
                .record(seconds);
                metrics::counter!(CACHE_ERRORS, CACHE_NAME => name, ERROR_TYPE => kind)
                    .increment(1);
            }
        }
    }

    async fn timed_unrecorded<T>(
        &self,
        op: &str,
        key: Option<&str>,
        work: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let healthy = &self.inner.healthy;
        let result = if healthy.load(Ordering::Relaxed) {
            work.await
        } else {
            let timeout = self.inner.config.command_timeout;
            match tokio::time::timeout(timeout, work).await {
                Ok(result) => {
                    if result.is_ok() {
                        healthy.store(true, Ordering::Relaxed);
                    }
                    result
                }
                Err(_) => {
                    if let Conn::Cluster(cluster) = &self.inner.conn {
                        cluster.replace_soon();
                    }
                    return Err(timed_out(op, key, timeout));
                }
            }
        };
        result.map_err(|e| {
            let err = map_redis_error(e, op, key);
            if err.is_retryable() {
                healthy.store(false, Ordering::Relaxed);
            }
            err
        })
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        op: &str,
        key: Option<&str>,
    ) -> Result<T> {
        if let Conn::Single(managed) = &self.inner.conn {
            // The hot path: no clone of the whole handle.
            let work = async {
                let value = managed.send_shared(cmd).await?;
                Ok(redis::from_redis_value(value.extract_error()?)?)
            };
            return self.timed(op, key, work).await;
        }
        let mut conn = self.inner.conn.clone();
        self.timed(op, key, cmd.query_async(&mut conn)).await
    }

    async fn query_pipe(&self, pipe: &Pipeline, op: &str) -> Result<()> {
        let mut conn = self.inner.conn.clone();
        self.timed(op, None, pipe.exec_async(&mut conn)).await
    }

    /// A `SCAN MATCH` pattern for full keys starting with `key_prefix + prefix`.
    fn pattern(&self, prefix: &str) -> String {
        let mut pattern = glob_escape(&self.inner.config.key_prefix);
        pattern.push_str(&glob_escape(prefix));
        pattern.push('*');
        pattern
    }

    /// The Cluster's topology; only called in Cluster mode.
    pub(crate) fn topology(&self) -> &Topology {
        self.inner
            .topology
            .as_ref()
            .expect("a Cluster store has a topology")
    }

    /// The Cluster's shards, primaries in address order, every slot served.
    pub(crate) async fn shards(&self) -> Result<Vec<Shard>> {
        let mut shards = self.topology().shards().await?;
        shards.sort_by_key(|s| s.primary.to_string());
        Ok(shards)
    }

    /// Where a Cluster scan goes after finishing `done`'s primary: the first primary serving a
    /// slot not yet covered, or nowhere.
    async fn next_primary(&self, done: ClusterScan) -> Result<Option<ClusterScan>> {
        let mut covered = done.covered;
        let finished = Shard {
            primary: done.node,
            slots: done.slots.ranges(),
        };
        let shards = self.shards().await?;
        covered.union(&still_served(&finished, &shards));
        let Some(next) = shards
            .iter()
            .find(|s| !covered.covers(&SlotSet::of(&s.slots)))
        else {
            return Ok(None);
        };
        if done.visits >= MAX_ROUNDS * shards.len() {
            return Err(slots_kept_moving("scan", &covered));
        }
        Ok(Some(ClusterScan {
            node: next.primary.clone(),
            cursor: 0,
            slots: SlotSet::of(&next.slots),
            covered,
            visits: done.visits + 1,
        }))
    }

    /// One `UNLINK` of `keys`.
    async fn unlink(&self, keys: &[&str]) -> Result<u64> {
        let key_bytes = keys.iter().map(|key| self.key_len(key)).sum();
        let mut cmd = command("UNLINK", keys.len(), key_bytes);
        for key in keys {
            cmd.arg(self.key_arg(key));
        }
        self.query(&cmd, "delete_many", None).await
    }

    /// One `MSET` of `entries`.
    async fn mset<'e>(
        &self,
        entries: impl IntoIterator<Item = &'e (&'e str, Bytes)> + Clone,
    ) -> Result<()> {
        let (count, bytes) = entries.clone().into_iter().fold((0, 0), |(n, b), (k, v)| {
            (n + 1, b + self.key_len(k) + v.len())
        });
        let mut cmd = command("MSET", 2 * count, bytes);
        for (key, value) in entries {
            cmd.arg(self.key_arg(key)).arg(value.as_ref());
        }
        self.query(&cmd, "set_many", None).await
    }

    /// `get_many` on Cluster: one single-slot `MGET` per slot, all at once.
    async fn get_many_by_slot(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let groups = self.slot_groups(keys.iter().copied());
        let mgets = groups.iter().map(|group| {
            let key_bytes = group.iter().map(|&i| self.key_len(keys[i])).sum();
            let mut cmd = command("MGET", group.len(), key_bytes);
            for &i in group {
                cmd.arg(self.key_arg(keys[i]));
            }
            async move {
                self.query::<Vec<Option<Bytes>>>(&cmd, "get_many", None)
                    .await
            }
        });
        let replies = try_join_all(mgets).await?;
        let mut values = vec![None; keys.len()];
        for (group, reply) in groups.iter().zip(replies) {
            if reply.len() != group.len() {
                return Err(unexpected(
                    "get_many",
                    "MGET returned the wrong number of values",
                ));
            }
            for (&i, value) in group.iter().zip(reply) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    /// `keys`' positions grouped by Cluster slot, each group for one single-slot command.
    fn slot_groups<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Vec<Vec<usize>> {
        by_slot(keys.enumerate(), |(_, key)| {
            Slot::for_key(self.full_key(key).as_bytes())
        })
        .into_iter()
        .map(|group| group.into_iter().map(|(i, _)| i).collect())
        .collect()
    }

    /// One `SCAN` step: on the standalone/Sentinel server, or on one cluster master.
    async fn scan_step(
        &self,
        node: Option<&NodeAddr>,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count.clamp(1, MAX_SCAN_COUNT));
        match node {
            Some(node) => self.topology().query(node, &cmd, "scan").await,
            None => self.query(&cmd, "scan", None).await,
        }
    }
}

impl RedisStore {
    /// Unlinks every key matching the full-key glob `pattern`, on every master, a batch per `SCAN`
    /// step.
    async fn unlink_matching(&self, pattern: &str, op: &str) -> Result<u64> {
        if !self.is_cluster() {
            return self.unlink_scanned(None, pattern, op).await;
        }
        // Every primary, then again wherever slots moved while it was scanned: a slot counts as
        // covered once a primary that served it before and after its whole scan was scanned.
        let mut covered = SlotSet::empty();
        let mut deleted = 0;
        let mut shards = self.shards().await?;
        for _ in 0..MAX_ROUNDS {
            let pending: Vec<&Shard> = shards
                .iter()
                .filter(|s| !covered.covers(&SlotSet::of(&s.slots)))
                .collect();
            if pending.is_empty() {
                return Ok(deleted);
            }
            for shard in &pending {
                deleted += self
                    .unlink_scanned(Some(&shard.primary), pattern, op)
                    .await?;
            }
            // One fresh view after the round serves both as "after their scans" and as the next
            // round's list.
            let after = self.shards().await?;
            for shard in pending {
                covered.union(&still_served(shard, &after));
            }
            shards = after;
        }
        Err(slots_kept_moving(op, &covered))
    }

    /// `SCAN MATCH pattern` on one server (a Cluster primary, or the only server), unlinking what
    /// it finds; on Cluster the keys go out one single-slot `UNLINK` per slot.
    async fn unlink_scanned(
        &self,
        node: Option<&NodeAddr>,
        pattern: &str,
        op: &str,
    ) -> Result<u64> {
        let mut deleted = 0;
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan_step(node, cursor, pattern, CLEAR_BATCH).await?;
            if !keys.is_empty() {
                let groups: Vec<Vec<&Vec<u8>>> = if node.is_some() {
                    by_slot(keys.iter(), |key| Slot::for_key(key))
                } else {
                    vec![keys.iter().collect()]
                };
                let unlinks = groups.iter().map(|group| {
                    let mut cmd = redis::cmd("UNLINK");
                    for key in group {
                        cmd.arg(key.as_slice());
                    }
                    async move { self.query::<u64>(&cmd, op, None).await }
                });
                deleted += try_join_all(unlinks).await?.into_iter().sum::<u64>();
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// `items` grouped by the Cluster slot `slot_of` gives each, groups in order of first appearance.
fn by_slot<T>(items: impl Iterator<Item = T>, slot_of: impl Fn(&T) -> Slot) -> Vec<Vec<T>> {
    let mut groups: HashMap<Slot, usize> = HashMap::new();
    let mut out: Vec<Vec<T>> = Vec::new();
    for item in items {
        let at = *groups.entry(slot_of(&item)).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[at].push(item);
    }
    out
}

/// Where a Cluster `scan` stands: see [`RedisStore::scan`].
struct ClusterScan {
    node: NodeAddr,
    cursor: u64,
    /// The slots `node` served when its scan began.
    slots: SlotSet,
    covered: SlotSet,
    visits: usize,
}

impl ClusterScan {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.node,
            self.cursor,
            self.slots.encode(),
            self.covered.encode(),
            self.visits
        )
    }

    fn decode(text: &str) -> Option<ClusterScan> {
        let mut parts = text.split('|');
        let node = parts.next()?;
        let (host, port) = node.rsplit_once(':')?;
        let scan = ClusterScan {
            node: NodeAddr::new(host, port.parse().ok()?),
            cursor: parts.next()?.parse().ok()?,
            slots: SlotSet::decode(parts.next()?)?,
            covered: SlotSet::decode(parts.next()?)?,
            visits: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(scan)
    }
}

/// The slots `shard`'s primary served when it was listed and still serves in `now`.
fn still_served(shard: &Shard, now: &[Shard]) -> SlotSet {
    now.iter()
        .find(|s| s.primary == shard.primary)
        .map(|s| SlotSet::of(&shard.slots).intersection(&SlotSet::of(&s.slots)))
        .unwrap_or_else(SlotSet::empty)
}

/// The retryable error of a `scan` or `clear` that kept finding slots moved under it.
fn slots_kept_moving(op: &str, covered: &SlotSet) -> Error {
    let missing = crate::topology::ranges_missing(&covered.ranges());
    Error::new(
        cache_core::ErrorKind::Connection,
        format!(
            "{op}: Cluster slots kept moving (a failover or resharding under way); slots {} were not covered",
            crate::topology::show_ranges(&missing)
        ),
    )
    .with_retryable(true)
}

/// A command with room for `args` more arguments of `bytes` in all, so building it never reallocates.
fn command(name: &str, args: usize, bytes: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(1 + args, name.len() + bytes);
    cmd.arg(name);
    cmd
}

/// A prefixed key as one command argument, without building the joined string.
pub(crate) struct KeyArg<'a> {
    prefix: &'a str,
    key: &'a str,
}

impl ToRedisArgs for KeyArg<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's Vec cannot fail.
        let _ = arg.write_all(self.prefix.as_bytes());
        let _ = arg.write_all(self.key.as_bytes());
    }
}

#[async_trait]
impl CacheStore for RedisStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::SHARED
    }

    fn limits(&self) -> Limits {
        self.inner.config.limits
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("GET", key, 0, 0);
        self.query(&cmd, "get", Some(key)).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        for key in keys {
            self.limits_ref().check_key(key)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_cluster() {
            return self.get_many_by_slot(keys).await;
        }
        let key_bytes = keys.iter().map(|key| self.key_len(key)).sum();
        let mut cmd = command("MGET", keys.len(), key_bytes);
        for key in keys {
            cmd.arg(self.key_arg(key));
        }
        let values: Vec<Option<Bytes>> = self.query(&cmd, "get_many", None).await?;
        if values.len() != keys.len() {
            return Err(unexpected(
                "get_many",
                "MGET returned the wrong number of values",
            ));
        }
        Ok(values)
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<bool> {
        self.limits_ref().check_entry(key, value.len())?;
        let ttl = opt_ttl_millis(options.ttl)?;
        // SET key value [PX ms] [NX|XX]
        let mut cmd = self.key_command("SET", key, 4, value.len() + 24);
        cmd.arg(value.as_ref());
        if let Some(ms) = ttl {
            cmd.arg("PX").arg(ms);
        }
        match options.condition {
            SetCondition::IfAbsent => {
                cmd.arg("NX");
            }
            SetCondition::IfPresent => {
                cmd.arg("XX");
            }
            _ => {}
        }
        let reply: Value = self.query(&cmd, "set", Some(key)).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.limits_ref().check_entry(key, value.len())?;
        }
        let ttl = opt_ttl_millis(ttl)?;
        if entries.is_empty() {
            return Ok(());
        }
        let Some(ms) = ttl else {
            // MSET: the later of two equal keys wins. On Cluster one single-slot MSET per slot.
            if self.is_cluster() {
                let groups = self.slot_groups(entries.iter().map(|(k, _)| *k));
                let msets = groups.iter().map(|group| {
                    let group: Vec<&(&str, Bytes)> = group.iter().map(|&i| &entries[i]).collect();
                    async move { self.mset(group).await }
                });
                return try_join_all(msets).await.map(drop);
            }
            return self.mset(entries.iter()).await;
        };
        let set_px = |pipe: &mut Pipeline, key: &str, value: &Bytes| {
            pipe.cmd("SET")
                .arg(self.key_arg(key))
                .arg(value.as_ref())
                .arg("PX")
                .arg(ms)
                .ignore();
        };
        if self.is_cluster() {
            // A cluster pipeline must stay within one slot: one pipeline per slot, all in parallel.
            let pipes: Vec<Pipeline> = self
                .slot_groups(entries.iter().map(|(key, _)| *key))
                .into_iter()
                .map(|group| {
                    let mut pipe = redis::pipe();
                    for i in group {
                        let (key, value) = &entries[i];
                        set_px(&mut pipe, key, value);
                    }
                    pipe
                })
                .collect();
            try_join_all(pipes.iter().map(|pipe| self.query_pipe(pipe, "set_many"))).await?;
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            set_px(&mut pipe, key, value);
        }
        self.query_pipe(&pipe, "set_many").await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("UNLINK", key, 0, 0);
        Ok(self.query::<u64>(&cmd, "delete", Some(key)).await? > 0)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        for key in keys {
            self.limits_ref().check_key(key)?;
        }
        if keys.is_empty() {
            return Ok(0);
        }
        if self.is_cluster() {
            // One single-slot UNLINK per slot.
            let groups = self.slot_groups(keys.iter().copied());
            let unlinks = groups.iter().map(|group| {
                let group: Vec<&str> = group.iter().map(|&i| keys[i]).collect();
                async move { self.unlink(&group).await }
            });
            return Ok(try_join_all(unlinks).await?.into_iter().sum());
        }
        self.unlink(keys).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("EXISTS", key, 0, 0);
        Ok(self.query::<u64>(&cmd, "exists", Some(key)).await? > 0)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("PTTL", key, 0, 0);
        Ok(match self.query::<i64>(&cmd, "ttl", Some(key)).await? {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            // PTTL rounds down; a live key has some time left, so never report zero.
            ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(1) as u64)),
        })
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.limits_ref().check_key(key)?;
        let ms = ttl_millis(ttl)?;
        let mut cmd = self.key_command("PEXPIRE", key, 1, 20);
        cmd.arg(ms);
        Ok(self.query::<u64>(&cmd, "expire", Some(key)).await? > 0)
    }

    async fn persist(&self, key: &str) -> Result<bool> {
        self.limits_ref().check_key(key)?;
        let cmd = self.key_command("PERSIST", key, 0, 0);
        Ok(self.query::<u64>(&cmd, "persist", Some(key)).await? > 0)
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl_on_create: Option<Duration>) -> Result<i64> {
        self.limits_ref().check_key(key)?;
        let ttl = opt_ttl_millis(ttl_on_create)?;
        let ttl_arg = ttl.map(|ms| ms.to_string()).unwrap_or_default();
        let mut invocation = self.inner.incr.key(self.key_arg(key));
        invocation.arg(delta).arg(ttl_arg);
        let mut conn = self.inner.conn.clone();
        self.timed("incr_by", Some(key), invocation.invoke_async(&mut conn))
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.limits_ref()
            .check_entry(key, new.as_ref().map_or(0, Bytes::len))?;
        let ttl = opt_ttl_millis(ttl)?;
        let mut invocation = self.inner.cas.key(self.key_arg(key));
        invocation
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(if new.is_some() { "1" } else { "0" })
            .arg(new.as_deref().unwrap_or_default())
            .arg(ttl.map(|ms| ms.to_string()).unwrap_or_default());
        let mut conn = self.inner.conn.clone();
        let swapped: i64 = self
            .timed(
                "compare_and_swap",
                Some(key),
                invocation.invoke_async(&mut conn),
            )
            .await?;
        Ok(swapped == 1)
    }

    async fn scan(&self, prefix: &str, cursor: ScanCursor, count: usize) -> Result<ScanPage> {
        let pattern = self.pattern(prefix);
        let bad_cursor = || {
            Error::new(
                cache_core::ErrorKind::InvalidArgument,
                format!(
                    "scan cursor {:?} was not made by this store",
                    cursor.as_str()
                ),
            )
        };
        let keep = |keys: Vec<Vec<u8>>| -> Vec<String> {
            keys.into_iter()
                .filter_map(|k| self.strip_prefix(k))
                .filter(|k| k.starts_with(prefix))
                .collect()
        };
        if !matches!(self.inner.config.mode, RedisMode::Cluster(_)) {
            let start = if cursor.is_start() {
                0
            } else {
                cursor.as_str().parse().map_err(|_| bad_cursor())?
            };
            let (next, keys) = self.scan_step(None, start, &pattern, count).await?;
            return Ok(ScanPage {
                keys: keep(keys),
                next: (next != 0).then(|| ScanCursor::from_backend(next.to_string())),
            });
        }
        // Cluster: primaries in address order, then wherever slots moved while one was scanned.
        // The cursor is `primary|cursor|its slots|slots covered|primaries visited`.
        let state = if cursor.is_start() {
            let shards = self.shards().await?;
            let first = shards
                .first()
                .ok_or_else(|| unexpected("scan", "the cluster has no primaries"))?;
            ClusterScan {
                node: first.primary.clone(),
                cursor: 0,
                slots: SlotSet::of(&first.slots),
                covered: SlotSet::empty(),
                visits: 1,
            }
        } else {
            ClusterScan::decode(cursor.as_str()).ok_or_else(bad_cursor)?
        };
        let (next, keys) = self
            .scan_step(Some(&state.node), state.cursor, &pattern, count)
            .await?;
        let next = if next != 0 {
            Some(ClusterScan {
                cursor: next,
                ..state
            })
        } else {
            self.next_primary(state).await?
        };
        Ok(ScanPage {
            keys: keep(keys),
            next: next.map(|n| ScanCursor::from_backend(n.encode())),
        })
    }

    async fn clear(&self, prefix: &str) -> Result<u64> {
        self.unlink_matching(&self.pattern(prefix), "clear").await
    }

    async fn clear_matching(&self, prefix: &str, pattern: &str) -> Result<u64> {
        let mut full = glob_escape(&self.inner.config.key_prefix);
        full.push_str(&glob_escape(prefix));
        full.push_str(pattern);
        self.unlink_matching(&full, "clear_matching").await
    }

    fn collections(&self) -> Option<&dyn cache_core::CollectionStore> {
        Some(self)
    }

    async fn ping(&self) -> Result<()> {
        match &self.inner.conn {
            Conn::Cluster(_) => {
                // Every primary of a fresh view, each on its own connection.
                let shards = self.shards().await?;
                let ping = redis::cmd("PING");
                let pings = shards.iter().map(|shard| {
                    self.topology()
                        .query::<Value>(&shard.primary, &ping, "ping")
                });
                try_join_all(pings).await.map(drop)
            }
            _ => self.query::<()>(&redis::cmd("PING"), "ping", None).await,
        }
    }
}
