//! What Redis users do beyond the cache contract: their own Lua scripts, pipelines and
//! transactions, `INFO`, and the underlying redis-rs connection for anything else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Error, ErrorKind, Result};
use redis::cluster_routing::Slot;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Script, ToRedisArgs, Value};

use crate::RedisStore;
use crate::conn::Conn;

/// Lua scripts registered by name ([`RedisStore::register_script`]).
#[derive(Debug, Default)]
pub(crate) struct Scripts(parking_lot::RwLock<HashMap<String, Arc<Script>>>);

impl RedisStore {
    /// Registers a Lua script under `name`, to run with [`run_script`](Self::run_script).
    /// Registering a name again replaces its script.
    ///
    /// ```no_run
    /// # async fn run(store: backend_redis::RedisStore) -> cache_core::Result<()> {
    /// // Take up to ARGV[1] jobs from a queue and move them to an in-progress list, atomically.
    /// store.register_script("claim", r"
    ///     local jobs = redis.call('LPOP', KEYS[1], ARGV[1])
    ///     if jobs then for _, j in ipairs(jobs) do redis.call('RPUSH', KEYS[2], j) end end
    ///     return jobs or {}
    /// ");
    /// let claimed: Vec<String> = store.run_script("claim", &["jobs", "jobs:running"], &[10]).await?;
    /// # Ok(()) }
    /// ```
    pub fn register_script(&self, name: &str, source: &str) {
        self.scripts()
            .0
            .write()
            .insert(name.to_owned(), Arc::new(Script::new(source)));
    }

    /// Runs the script registered as `name` with `keys` (given the store's key prefix) and `args`,
    /// and converts its result. It sends `EVALSHA`, and the script itself when the server does not
    /// have it yet (`NOSCRIPT`). On Cluster, keys in more than one slot are an
    /// [`ErrorKind::InvalidArgument`] error before anything is sent (use hash tags, `{user:1}:a`).
    /// An unknown `name` is [`ErrorKind::InvalidArgument`]; a script error is
    /// [`ErrorKind::Backend`].
    pub async fn run_script<T: FromRedisValue>(
        &self,
        name: &str,
        keys: &[&str],
        args: &[impl ToRedisArgs],
    ) -> Result<T> {
        let script = self.scripts().0.read().get(name).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("no script is registered as {name:?}"),
            )
        })?;
        let full: Vec<String> = keys.iter().map(|k| self.prefixed(k)).collect();
        self.same_slot(&full, &format!("script {name:?}"))?;
        let mut invocation = script.prepare_invoke();
        for key in &full {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.connection_handle();
        let op = format!("script {name}");
        self.timed_call(&op, invocation.invoke_async(&mut conn))
            .await
    }

    /// A pipeline: commands queued here go in one round trip ([`RedisPipeline::query`]), each
    /// with its own result.
    pub fn pipeline(&self) -> RedisPipeline<'_> {
        RedisPipeline {
            store: self,
            pipe: redis::pipe(),
            slots: Slots::default(),
            started: false,
        }
    }

    /// A transaction: a pipeline wrapped in `MULTI`/`EXEC`, applied whole or not at all. On Cluster
    /// its keys must share one slot (hash tags).
    pub fn transaction(&self) -> RedisPipeline<'_> {
        let mut pipeline = self.pipeline();
        pipeline.pipe.atomic();
        pipeline
    }

    /// The underlying redis-rs connection, for any command this crate does not offer. It reconnects
    /// as the store's does (and follows a Sentinel failover, or the cluster's slots). Keys given to
    /// it are **not** prefixed: add [`RedisConfig::key_prefix`](crate::RedisConfig::key_prefix)
    /// yourself.
    ///
    /// ```no_run
    /// # async fn run(store: backend_redis::RedisStore) -> redis::RedisResult<()> {
    /// let mut conn = store.connection();
    /// let members: Vec<String> = redis::cmd("XRANGE").arg("events").arg("-").arg("+")
    ///     .query_async(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub fn connection(&self) -> RawConnection {
        RawConnection(self.connection_handle())
    }

    /// `INFO` of every server this store talks to (every master on Cluster): keyspace hits and
    /// misses, used memory, connected clients and uptime.
    pub async fn server_stats(&self) -> Result<Vec<ServerStats>> {
        let mut info = redis::cmd("INFO");
        info.arg("all");
        let mut conn = self.connection_handle();
        let replies: Vec<(String, String)> = match &mut conn {
            Conn::Cluster(_) => {
                // Every primary of a fresh view, each on its own connection.
                let shards = self.shards().await?;
                let infos = shards.iter().map(|shard| async {
                    let text: String = self
                        .topology()
                        .query(&shard.primary, &info, "server_stats")
                        .await?;
                    Ok::<_, cache_core::Error>((shard.primary.to_string(), text))
                });
                futures::future::try_join_all(infos).await?
            }
            _ => {
                let text: String = self
                    .timed_call("server_stats", info.query_async(&mut conn))
                    .await?;
                vec![(self.node_name(), text)]
            }
        };
        let mut stats: Vec<ServerStats> = replies
            .into_iter()
            .map(|(node, text)| ServerStats::parse(node, &text))
            .collect();
        stats.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(stats)
    }

    /// `key_prefix + key`.
    pub(crate) fn prefixed(&self, key: &str) -> String {
        format!("{}{key}", self.config().key_prefix)
    }

    /// On Cluster, refuses keys of more than one slot.
    fn same_slot(&self, full: &[String], what: &str) -> Result<()> {
        if !matches!(self.connection_handle(), Conn::Cluster(_)) {
            return Ok(());
        }
        let mut slots = full.iter().map(|k| Slot::for_key(k.as_bytes()));
        if let Some(first) = slots.next() {
            if slots.any(|slot| slot != first) {
                return Err(cross_slot(what));
            }
        }
        Ok(())
    }

    fn node_name(&self) -> String {
        match &self.config().mode {
            crate::RedisMode::Standalone(node) => node.to_string(),
            _ => self
                .sentinel_master()
                .map_or_else(|| "redis".to_owned(), |node| node.to_string()),
        }
    }
}

/// The error of keys that span slots on Cluster.
fn cross_slot(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "{what}: on Redis Cluster its keys must share one slot; give them one hash tag, such as {{user:1}}:a and {{user:1}}:b"
        ),
    )
}

/// Commands for one round trip, from [`RedisStore::pipeline`] or [`RedisStore::transaction`].
///
/// Start each command with [`cmd`](Self::cmd), then give its key arguments with
/// [`key`](Self::key) (they get the store's key prefix) and the others with [`arg`](Self::arg):
///
/// ```no_run
/// # async fn run(store: backend_redis::RedisStore) -> cache_core::Result<()> {
/// let (views, top): (i64, Vec<String>) = store
///     .transaction()
///     .cmd("INCR").key("views:home")
///     .cmd("ZREVRANGE").key("popular").arg(0).arg(9)
///     .query()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct RedisPipeline<'a> {
    store: &'a RedisStore,
    pipe: Pipeline,
    /// On Cluster: the slot of the keys so far, or that they span more than one.
    slots: Slots,
    started: bool,
}

#[derive(Debug, Default)]
enum Slots {
    #[default]
    None,
    One(Slot),
    Many,
}

impl RedisPipeline<'_> {
    /// Starts the command `name` (`"SET"`, `"HINCRBY"`, …).
    pub fn cmd(&mut self, name: &str) -> &mut Self {
        self.pipe.cmd(name);
        self.started = true;
        self
    }

    /// A key argument of the current command, given the store's key prefix.
    pub fn key(&mut self, key: &str) -> &mut Self {
        self.pipe.arg(self.store.key_arg(key));
        if self.store.is_cluster() {
            let slot = Slot::for_key(self.store.prefixed(key).as_bytes());
            self.slots = match self.slots {
                Slots::None => Slots::One(slot),
                Slots::One(first) if first == slot => Slots::One(first),
                _ => Slots::Many,
            };
        }
        self
    }

    /// Any other argument of the current command.
    pub fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.pipe.arg(arg);
        self
    }

    /// Leaves the current command's result out of [`query`](Self::query)'s.
    pub fn ignore(&mut self) -> &mut Self {
        self.pipe.ignore();
        self
    }

    /// Sends every command in one round trip and converts their results (a tuple, one element per
    /// command not ignored). A transaction whose `EXEC` is refused (a command the server would not
    /// queue) fails as a whole with [`ErrorKind::Backend`] and applies nothing; an empty one is
    /// [`ErrorKind::InvalidArgument`].
    pub async fn query<T: FromRedisValue>(&self) -> Result<T> {
        if !self.started {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the pipeline has no commands",
            ));
        }
        if let Slots::Many = self.slots {
            return Err(cross_slot("a pipeline"));
        }
        let mut conn = self.store.connection_handle();
        self.store
            .timed_call("pipeline", self.pipe.query_async(&mut conn))
            .await
    }
}

/// The store's redis-rs connection ([`RedisStore::connection`]): a
/// [`ConnectionLike`](redis::aio::ConnectionLike) for any command, that reconnects as the store's
/// does. Cloning is cheap and clones share the connection.
#[derive(Clone)]
pub struct RawConnection(Conn);

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawConnection")
    }
}

impl redis::aio::ConnectionLike for RawConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// What one Redis server says about itself in `INFO` ([`RedisStore::server_stats`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServerStats {
    /// The server's address.
    pub node: String,
    /// Lookups of keys that existed, since the server started (or `CONFIG RESETSTAT`).
    pub keyspace_hits: u64,
    /// Lookups of keys that did not exist.
    pub keyspace_misses: u64,
    /// Bytes the server has allocated for data.
    pub used_memory: u64,
    /// Clients connected now.
    pub connected_clients: u64,
    /// How long the server has run.
    pub uptime: Duration,
}

impl ServerStats {
    fn parse(node: String, info: &str) -> Self {
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        ServerStats {
            node,
            keyspace_hits: field("keyspace_hits"),
            keyspace_misses: field("keyspace_misses"),
            used_memory: field("used_memory"),
            connected_clients: field("connected_clients"),
            uptime: Duration::from_secs(field("uptime_in_seconds")),
        }
    }

    /// Hits over lookups, from 0 to 1; `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.keyspace_hits + self.keyspace_misses;
        (lookups > 0).then(|| self.keyspace_hits as f64 / lookups as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_read_field_by_field() {
        let info = "# Server\r\nuptime_in_seconds:3600\r\n# Clients\r\nconnected_clients:7\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n# Stats\r\nkeyspace_hits:30\r\nkeyspace_misses:10\r\n";
        let s = ServerStats::parse("127.0.0.1:6379".into(), info);
        assert_eq!(
            (
                s.keyspace_hits,
                s.keyspace_misses,
                s.used_memory,
                s.connected_clients
            ),
            (30, 10, 1_048_576, 7)
        );
        assert_eq!(s.uptime, Duration::from_secs(3600));
        assert_eq!(s.hit_rate(), Some(0.75));
        assert_eq!(ServerStats::parse("n".into(), "").hit_rate(), None);
    }
}
