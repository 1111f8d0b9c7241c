//! [`TrackingBus`]: an [`InvalidationBus`] fed by Redis itself (server-assisted client-side
//! caching), so that an L1 also hears writes made outside the SDK.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use cache_core::{
    BusEvent, Error, ErrorKind, Invalidation, InvalidationBus, InvalidationOp, Result,
};
use futures::stream::{self, BoxStream};
use redis::aio::MultiplexedConnection;
use redis::{ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::sync::mpsc;

use crate::RedisBus;
use crate::bus::Backoff;
use crate::config::{NodeAddr, RedisConfig, RedisMode};
use crate::conn::{SentinelConn, client_speaking, connection_config, resolve_master};
use crate::error::map_redis_error;
use crate::topology::Topology;

/// The `origin` of the invalidations Redis reports: no [`TieredCache`](cache_core::TieredCache)
/// has it (theirs are random tokens), so every instance applies them, its own writes' included.
pub const TRACKING_ORIGIN: &str = "redis";

/// How long the tracking connections may stay without traffic before they are checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Invalidations reported by Redis for every key of a [`TieredCache`](cache_core::TieredCache)'s
/// namespace, whoever wrote it: this SDK, a service in another language, `redis-cli`, an expiry, an
/// eviction or a `FLUSHALL`.
///
/// **The mechanism.** Each node that holds the namespace's keys gets a connection of its own that
/// speaks RESP3 and sends `CLIENT TRACKING ON BCAST PREFIX <key_prefix><namespace>: NOLOOP`; Redis
/// then pushes an `invalidate` message on that connection whenever such a key changes, and the tier
/// drops the key from its L1. RESP3 pushes on the same connection were chosen over `REDIRECT` to a
/// RESP2 pub/sub connection: the tracking state and its deliveries live and die with one
/// connection, so a dropped connection is always noticed (there is no second connection whose
/// loss Redis could only report as `tracking-redir-broken`, itself a RESP3 push).
///
/// - **Standalone**: the configured server. **Sentinel**: the master the Sentinels name; tracking
///   moves when they announce another one (`+switch-master`), when the node stops being a master,
///   or when the connection drops. **Cluster**: every
///   primary that `CLUSTER SHARDS` lists, since tracking is per node; the list is checked every
///   second, and tracking is armed again on the new primaries when it changes.
/// - **The L1 is cleared** ([`BusEvent::Resync`]) whenever invalidations may have been lost: after
///   a reconnect, a topology change or a node that stopped answering its check, on a null
///   invalidation (`FLUSHALL`, `FLUSHDB`), and on `tracking-redir-broken`. Tracking is armed again
///   before the L1 is cleared, so that no write falls between the two.
/// - **A TTL cap**: Redis reports an expiry only once it removes the key, which may be late. The
///   tier never keeps an L1 copy longer than the key has left in L2, nor longer than its `l1_ttl`.
/// - **Publishing** sends nothing: Redis reports the tier's own writes too (so each write also
///   drops the writer's own L1 copy, and the next read of that key goes to L2).
/// - **Fallback**: when the server refuses RESP3 or `CLIENT TRACKING` (some managed services and
///   ACL setups do), [`connect`](Self::connect) falls back to a [`RedisBus`] on the channel
///   `"{key_prefix}tracking:{namespace}"`, logs a `tracing` warning, and the tier's
///   [`TieredStats::bus_fell_back`](cache_core::TieredStats::bus_fell_back) is `true`. Writes
///   outside the SDK are then not heard.
///
/// **When to choose it over [`RedisBus`]**: when anything other than this SDK's `TieredCache`
/// writes the namespace's keys (another service, an operator, expiries you want to see at once), or
/// to avoid a `PUBLISH` per write. Choose `RedisBus` when the server refuses tracking anyway, or
/// when the namespace takes so many writes that an invalidation of each key to every instance
/// costs more than the L1 saves (each instance receives every write of the namespace either way).
/// The namespace must be the tier's [`namespace`](cache_core::TieredCacheBuilder::namespace), and
/// the config the one of its L2 `RedisStore` (its `key_prefix` is part of the tracked prefix).
///
/// ```no_run
/// # async fn run() -> cache_core::Result<()> {
/// use backend_memory::MemoryStore;
/// use backend_redis::{RedisConfig, RedisStore, TrackingBus};
/// use cache_core::TieredCache;
///
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379")?;
/// let cache = TieredCache::builder(MemoryStore::new(), RedisStore::connect(config.clone()).await?)
///     .namespace("products")
///     .bus(TrackingBus::connect(&config, "products").await?)
///     .build()?;
/// tokio::spawn(cache.listen().await?.run());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TrackingBus {
    shared: Arc<Shared>,
}

struct Shared {
    config: RedisConfig,
    /// The tracked prefix of Redis keys: the store's key prefix and the namespace's.
    tracked: String,
    /// The bus used instead when the server refuses tracking.
    fallback: Option<RedisBus>,
    /// Where a Cluster's primaries are listed.
    topology: Option<Topology>,
    /// Sentinel: follows the Sentinels' `+switch-master` announcements, so that the check each
    /// second costs no new connection.
    sentinel: Option<SentinelConn>,
}

impl fmt::Debug for TrackingBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackingBus")
            .field("tracked_prefix", &self.shared.tracked)
            .field("fallback", &self.shared.fallback)
            .finish_non_exhaustive()
    }
}

impl TrackingBus {
    /// Checks that the server accepts tracking (arming it once on every node), or falls back to a
    /// [`RedisBus`] if it refuses. A node that cannot be reached is an error, as for
    /// [`RedisStore::connect`](crate::RedisStore::connect).
    pub async fn connect(config: &RedisConfig, namespace: &str) -> Result<Self> {
        config.validate()?;
        let namespace_prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}:")
        };
        let mut shared = Shared {
            config: config.clone(),
            tracked: format!("{}{namespace_prefix}", config.key_prefix),
            fallback: None,
            topology: matches!(config.mode, RedisMode::Cluster(_)).then(|| Topology::new(config)),
            sentinel: match config.mode {
                RedisMode::Sentinel { .. } => Some(SentinelConn::connect(config).await?),
                _ => None,
            },
        };
        match shared.arm().await {
            Ok(_) => {}
            Err(Arming::Refused(why)) => {
                let channel = format!("tracking:{namespace}");
                tracing::warn!(
                    reason = %why,
                    "Redis refused CLIENT TRACKING; invalidations go over pub/sub instead, and writes made outside the SDK are not heard"
                );
                shared.fallback = Some(RedisBus::connect(config, &channel).await?);
            }
            Err(Arming::Failed(e)) => return Err(e),
        }
        Ok(TrackingBus {
            shared: Arc::new(shared),
        })
    }

    /// The prefix of the Redis keys whose changes are reported.
    pub fn tracked_prefix(&self) -> &str {
        &self.shared.tracked
    }
}

/// Why tracking could not be armed.
enum Arming {
    /// The server answered with an error: it does not offer tracking to this client.
    Refused(String),
    /// It could not be reached, or did not answer in time.
    Failed(Error),
}

/// Tracking armed on every node that holds keys, with the pushes of all of them on one channel.
struct Session {
    nodes: Vec<(NodeAddr, MultiplexedConnection)>,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

impl Shared {
    /// The nodes whose writes must be heard now.
    async fn nodes(&self) -> Result<Vec<NodeAddr>> {
        match &self.config.mode {
            RedisMode::Standalone(node) => Ok(vec![node.clone()]),
            RedisMode::Sentinel { .. } => Ok(vec![resolve_master(&self.config).await?]),
            RedisMode::Cluster(_) => {
                let topology = self.topology.as_ref().expect("a Cluster has a topology");
                let mut primaries: Vec<NodeAddr> = topology
                    .shards()
                    .await?
                    .into_iter()
                    .map(|shard| shard.primary)
                    .collect();
                primaries.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
                Ok(primaries)
            }
        }
    }

    /// Opens a RESP3 connection to every node and arms tracking on each.
    async fn arm(&self) -> std::result::Result<Session, Arming> {
        let nodes = self.nodes().await.map_err(Arming::Failed)?;
        let (sender, pushes) = mpsc::unbounded_channel();
        let db = match self.config.mode {
            RedisMode::Cluster(_) => 0,
            _ => self.config.db,
        };
        let mut armed = Vec::with_capacity(nodes.len());
        for node in nodes {
            let what = format!("arm client tracking on {node}");
            let client = client_speaking(&self.config, &node, db, ProtocolVersion::RESP3)
                .map_err(Arming::Failed)?;
            let settings = connection_config(&self.config).set_push_sender(sender.clone());
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&settings)
                .await
                .map_err(|e| classify(e, &what))?;
            let mut tracking = redis::cmd("CLIENT");
            tracking.arg("TRACKING").arg("ON").arg("BCAST");
            if !self.tracked.is_empty() {
                tracking.arg("PREFIX").arg(&self.tracked);
            }
            tracking.arg("NOLOOP");
            tracking
                .exec_async(&mut conn)
                .await
                .map_err(|e| classify(e, &what))?;
            armed.push((node, conn));
        }
        Ok(Session {
            nodes: armed,
            pushes,
        })
    }

    /// Whether the armed nodes still answer and are still the ones whose writes must be heard.
    async fn still_current(&self, session: &mut Session) -> bool {
        let timeout = self.config.command_timeout;
        for (node, conn) in &mut session.nodes {
            let check = match self.config.mode {
                // A Sentinel failover demotes the old master, which may keep its clients.
                RedisMode::Sentinel { .. } => redis::cmd("ROLE"),
                _ => redis::cmd("PING"),
            };
            match tokio::time::timeout(timeout, check.query_async::<Value>(conn)).await {
                Ok(Ok(Value::Array(role))) => {
                    if role.first() != Some(&Value::BulkString(b"master".to_vec())) {
                        tracing::debug!(%node, "tracked node is no longer a master");
                        return false;
                    }
                }
                Ok(Ok(_)) => {}
                _ => {
                    tracing::debug!(%node, "tracked node did not answer its check");
                    return false;
                }
            }
        }
        if let Some(sentinel) = &self.sentinel {
            // The Sentinels may name a new master before the old one is demoted. Their latest
            // announcement costs nothing to read; only a disagreement is checked with them.
            let armed = &session.nodes[0].0;
            if sentinel.master() != *armed
                && resolve_master(&self.config).await.ok().as_ref() != Some(armed)
            {
                tracing::debug!(%armed, "the Sentinels name another master");
                return false;
            }
        }
        if self.topology.is_some() {
            match self.nodes().await {
                Ok(primaries) => {
                    let armed = session.nodes.iter().map(|(node, _)| node);
                    if !primaries.iter().eq(armed) {
                        tracing::debug!("the Cluster's primaries changed");
                        return false;
                    }
                }
                // A failover under way: arm again once the slots have primaries.
                Err(_) => return false,
            }
        }
        true
    }

    /// The tier's key of a Redis key Redis reported, if it is one of ours.
    fn tier_key(&self, reported: &Value) -> Option<String> {
        let raw = match reported {
            Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?,
            Value::SimpleString(text) => text.as_str(),
            _ => return None,
        };
        raw.strip_prefix(self.config.key_prefix.as_str())
            .map(str::to_owned)
    }
}

/// Refused (the server answered with an error other than a credentials one) or failed.
fn classify(err: RedisError, what: &str) -> Arming {
    let code = err.code().unwrap_or_default();
    let answered = matches!(
        err.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::RESP3NotSupported
    );
    if answered && code != "WRONGPASS" && code != "NOAUTH" {
        let detail = err.detail().unwrap_or_default();
        return Arming::Refused(format!("{what}: {code} {detail}"));
    }
    Arming::Failed(map_redis_error(err, what, None))
}

struct Listening {
    shared: Weak<Shared>,
    session: Option<Session>,
    ready: VecDeque<BusEvent>,
    backoff: Backoff,
}

impl Listening {
    /// Turns one push into events.
    fn heard(&mut self, shared: &Shared, push: PushInfo) -> Result<(), Lost> {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    self.ready.extend(keys.iter().filter_map(|key| {
                        let key = shared.tier_key(key)?;
                        Some(BusEvent::Message(Invalidation::new(
                            TRACKING_ORIGIN,
                            InvalidationOp::Delete,
                            key,
                        )))
                    }));
                }
                // A null invalidation: the node flushed its keys (FLUSHALL, FLUSHDB).
                _ => self.ready.push_back(BusEvent::Resync),
            },
            PushKind::Disconnection => return Err(Lost),
            PushKind::Other(kind) if kind == "tracking-redir-broken" => {
                self.ready.push_back(BusEvent::Resync);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A tracked node's connection dropped.
struct Lost;

#[async_trait]
impl InvalidationBus for TrackingBus {
    async fn publish(&self, message: &Invalidation) -> Result<()> {
        match &self.shared.fallback {
            Some(bus) => bus.publish(message).await,
            // Redis reports the write to every tracking connection before it answers the writer.
            None => Ok(()),
        }
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>> {
        if let Some(bus) = &self.shared.fallback {
            return bus.subscribe().await;
        }
        let session = match self.shared.arm().await {
            Ok(session) => session,
            Err(Arming::Refused(why)) => {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!("Redis no longer accepts client tracking: {why}"),
                ));
            }
            Err(Arming::Failed(e)) => return Err(e),
        };
        let state = Listening {
            shared: Arc::downgrade(&self.shared),
            session: Some(session),
            ready: VecDeque::new(),
            backoff: Backoff::new(&self.shared.config.retry),
        };
        Ok(Box::pin(stream::unfold(state, |mut state| async move {
            loop {
                if let Some(event) = state.ready.pop_front() {
                    return Some((event, state));
                }
                // Every TrackingBus handle is gone: end the stream.
                let shared = state.shared.upgrade()?;
                if let Some(session) = &mut state.session {
                    let lost =
                        match tokio::time::timeout(CHECK_INTERVAL, session.pushes.recv()).await {
                            Ok(Some(push)) => state.heard(&shared, push).is_err(),
                            Ok(None) => true,
                            Err(_) => !shared.still_current(session).await,
                        };
                    if !lost {
                        continue;
                    }
                    tracing::debug!("client tracking lost; arming it again");
                    state.session = None;
                    state.ready.clear();
                }
                if let Ok(session) = shared.arm().await {
                    tracing::debug!("client tracking armed again");
                    state.session = Some(session);
                    state.backoff.reset();
                    // Armed first, then the L1 is cleared: no write falls in between.
                    return Some((BusEvent::Resync, state));
                }
                drop(shared);
                state.backoff.wait().await;
            }
        })))
    }

    fn fell_back(&self) -> bool {
        self.shared.fallback.is_some()
    }
}
