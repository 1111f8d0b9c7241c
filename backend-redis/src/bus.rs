//! [`RedisBus`]: the [`InvalidationBus`] of [`TieredCache`](cache_core::TieredCache) on Redis pub/sub.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use cache_core::{BusEvent, Invalidation, InvalidationBus, Result};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use redis::Client;
use redis::aio::{PubSubSink, PubSubStream};

use crate::config::{NodeAddr, RedisConfig, RedisMode, RetryPolicy};
use crate::conn::{Conn, SentinelConn, client_for, open_manager, resolve_master};
use crate::error::map_redis_error;

/// Carries invalidations between [`TieredCache`](cache_core::TieredCache) instances over a Redis
/// pub/sub channel.
///
/// - Messages go to the channel `"{key_prefix}{channel}"`, so apps that share a Redis with different
///   key prefixes do not hear each other.
/// - Standalone: the configured server. Cluster: any one node, since Redis Cluster forwards
///   `PUBLISH` to every node; after a node fails, the subscription moves to the next seed node, and
///   so does the publishing connection when a publish fails for want of a connection.
/// - A publish that fails with a retryable error is sent once more (on another node, or on the
///   reconnected connection): a duplicate invalidation is harmless, a lost one is not. If that
///   fails too, [`publish`](InvalidationBus::publish) returns the error, and the
///   [`TieredCache`](cache_core::TieredCache) write that caused it returns it too.
///   Sentinel: the master the Sentinels name, asked again at every resubscription, so that after a
///   failover (Sentinel drops the old master's clients) the bus follows the new master.
/// - When the subscription connection drops, it reconnects with backoff (per
///   [`RedisConfig::retry`], without giving up) and then yields [`BusEvent::Resync`], because
///   messages sent meanwhile are lost: the cache clears its L1.
/// - A dead subscription is noticed when the server closes it, or, if it goes silent (a crashed
///   host, a network partition), by a `PING` sent on it after a second without traffic and left
///   unanswered for [`RedisConfig::command_timeout`]. Connecting and subscribing are bounded by
///   [`RedisConfig::connect_timeout`] and [`RedisConfig::command_timeout`], so a node that accepts
///   connections but never answers is skipped for the next one.
///
/// Pass it to [`TieredCacheBuilder::bus`](cache_core::TieredCacheBuilder::bus), then run the cache's
/// [`listen`](cache_core::TieredCache::listen)er:
///
/// ```no_run
/// # async fn run() -> cache_core::Result<()> {
/// use backend_redis::{RedisBus, RedisConfig};
///
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379")?;
/// let bus = RedisBus::connect(&config, "products").await?;
/// assert_eq!(bus.channel(), "products");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
}

/// How long a subscription may stay without traffic before a `PING` checks that it is alive.
const PING_INTERVAL: Duration = Duration::from_secs(1);

struct Shared {
    channel: String,
    config: RedisConfig,
    nodes: Nodes,
    publisher: RwLock<Publisher>,
    /// Held while the publisher moves to another node, so that concurrent failed publishes move
    /// it once.
    moving: tokio::sync::Mutex<()>,
}

/// The publishing connection, and which node it goes to.
#[derive(Clone)]
struct Publisher {
    conn: Conn,
    /// Index in [`Nodes::Fixed`] (0 for Sentinel).
    node: usize,
    /// Bumped at every move, so a failed publish can tell whether another one moved it already.
    generation: u64,
}

/// Where the subscription goes.
enum Nodes {
    /// One client per candidate node, tried in turn (one for standalone).
    Fixed(Vec<(NodeAddr, Client)>),
    /// Whichever master the Sentinels of the config name.
    Sentinel,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = match &self.shared.nodes {
            Nodes::Fixed(clients) => clients.iter().map(|(n, _)| n.to_string()).collect(),
            Nodes::Sentinel => vec![format!("sentinel {:?}", self.shared.config.mode)],
        };
        f.debug_struct("RedisBus")
            .field("channel", &self.shared.channel)
            .field("nodes", &nodes)
            .finish()
    }
}

impl RedisBus {
    /// Connects the publishing connection (to the first node that answers, or to the master the
    /// Sentinels name).
    pub async fn connect(config: &RedisConfig, channel: &str) -> Result<Self> {
        config.validate()?;
        let shared = |nodes, conn, node| Shared {
            channel: format!("{}{channel}", config.key_prefix),
            config: config.clone(),
            nodes,
            publisher: RwLock::new(Publisher {
                conn,
                node,
                generation: 0,
            }),
            moving: tokio::sync::Mutex::new(()),
        };
        let (nodes, db) = match &config.mode {
            RedisMode::Standalone(node) => (vec![node.clone()], config.db),
            // Cluster has only database 0, and any node forwards a PUBLISH to all.
            RedisMode::Cluster(nodes) => (nodes.clone(), 0),
            RedisMode::Sentinel { .. } => {
                let conn = Conn::Sentinel(SentinelConn::connect(config).await?);
                return Ok(RedisBus {
                    shared: Arc::new(shared(Nodes::Sentinel, conn, 0)),
                });
            }
        };
        let clients = nodes
            .into_iter()
            .map(|node| Ok((node.clone(), client_for(config, &node, db)?)))
            .collect::<Result<Vec<_>>>()?;
        let (node, conn) = connect_publisher(config, &clients, 0).await?;
        Ok(RedisBus {
            shared: Arc::new(shared(Nodes::Fixed(clients), conn, node)),
        })
    }

    /// The pub/sub channel in Redis.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }
}

/// Opens a publishing connection to node `start` or, failing that, the next ones in turn.
async fn connect_publisher(
    config: &RedisConfig,
    clients: &[(NodeAddr, Client)],
    start: usize,
) -> Result<(usize, Conn)> {
    let mut last_error = None;
    for i in 0..clients.len() {
        let index = (start + i) % clients.len();
        let (node, client) = &clients[index];
        match open_manager(client.clone(), config, &format!("connect to {node}")).await {
            Ok(manager) => return Ok((index, Conn::Single(manager))),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.expect("at least one node"))
}

/// Runs `attempt`, failing with a timeout error if it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    attempt: impl Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
    }
}

/// A live subscription: the sink sends the liveness `PING`s, the stream brings the messages.
struct Subscribed {
    sink: PubSubSink,
    messages: PubSubStream,
}

impl Shared {
    /// The publishing connection now.
    fn publisher(&self) -> Publisher {
        self.publisher
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After a publish through `failed` could not reach its node: moves the publisher to the next
    /// node that answers (the failed node last), unless another publish moved it meanwhile.
    /// `None` if there is nowhere to move (standalone, Sentinel) or no node answers.
    async fn move_publisher(&self, failed: &Publisher) -> Option<Conn> {
        let Nodes::Fixed(clients) = &self.nodes else {
            // Sentinel: the SentinelConn follows the master by itself.
            return None;
        };
        if clients.len() < 2 {
            // Standalone: the connection manager reconnects to the only server by itself.
            return None;
        }
        let _moving = self.moving.lock().await;
        let current = self.publisher();
        if current.generation != failed.generation {
            return Some(current.conn);
        }
        match connect_publisher(&self.config, clients, failed.node + 1).await {
            Ok((node, conn)) => {
                tracing::debug!(node = %clients[node].0, "invalidation publisher moved");
                *self.publisher.write().unwrap_or_else(|e| e.into_inner()) = Publisher {
                    conn: conn.clone(),
                    node,
                    generation: failed.generation + 1,
                };
                Some(conn)
            }
            Err(e) => {
                tracing::debug!(error = %e, "invalidation publisher found no node to move to");
                None
            }
        }
    }

    async fn publish_on(&self, mut conn: Conn, payload: &[u8]) -> Result<()> {
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .exec_async(&mut conn)
            .await
            .map_err(|e| map_redis_error(e, "publish an invalidation", None))
    }

    /// Subscribes through node `start` or, failing that, the next ones; or through the master the
    /// Sentinels name now.
    async fn subscribe_from(&self, start: usize) -> Result<(usize, Subscribed)> {
        let clients = match &self.nodes {
            Nodes::Fixed(clients) => clients,
            Nodes::Sentinel => {
                let config = &self.config;
                let master = resolve_master(config).await?;
                let client = client_for(config, &master, config.db)?;
                return Ok((0, self.subscribe_on(&master, &client).await?));
            }
        };
        let mut last_error = None;
        for i in 0..clients.len() {
            let index = (start + i) % clients.len();
            let (node, client) = &clients[index];
            match self.subscribe_on(node, client).await {
                Ok(messages) => return Ok((index, messages)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one node"))
    }

    /// Subscribes on one node, within the connect timeout (connection and handshake) and the
    /// command timeout (`SUBSCRIBE`), so that a node that never answers is given up.
    async fn subscribe_on(&self, node: &NodeAddr, client: &Client) -> Result<Subscribed> {
        let attempt = async {
            let mut pubsub = within(self.config.connect_timeout, client.get_async_pubsub()).await?;
            within(self.config.command_timeout, pubsub.subscribe(&self.channel)).await?;
            let (sink, messages) = pubsub.split();
            Ok::<_, redis::RedisError>(Subscribed { sink, messages })
        };
        attempt
            .await
            .map_err(|e| map_redis_error(e, &format!("subscribe on {node}"), None))
    }
}

struct Subscription {
    shared: Weak<Shared>,
    node: usize,
    subscribed: Option<Subscribed>,
    backoff: Backoff,
    /// How long a liveness `PING` may go unanswered.
    command_timeout: Duration,
}

/// What waiting on a live subscription gave.
enum Heard {
    Message(redis::Msg),
    /// Nothing for [`PING_INTERVAL`], and the server answered a `PING`.
    Alive,
    /// The connection closed, or a `PING` went unanswered.
    Lost,
}

impl Subscribed {
    /// The next message; after [`PING_INTERVAL`] without one, checks that the server still answers.
    async fn next(&mut self, command_timeout: Duration) -> Heard {
        match tokio::time::timeout(PING_INTERVAL, self.messages.next()).await {
            Ok(Some(message)) => Heard::Message(message),
            Ok(None) => Heard::Lost,
            Err(_) => match within(command_timeout, self.sink.ping::<redis::Value>()).await {
                Ok(_) => Heard::Alive,
                Err(e) => {
                    tracing::debug!(error = %e, "invalidation subscription did not answer PING");
                    Heard::Lost
                }
            },
        }
    }
}

#[async_trait]
impl InvalidationBus for RedisBus {
    async fn publish(&self, message: &Invalidation) -> Result<()> {
        let payload = message.to_bytes();
        let publisher = self.shared.publisher();
        match self
            .shared
            .publish_on(publisher.conn.clone(), &payload)
            .await
        {
            // An invalidation may arrive twice without harm: send it again, through another node
            // if there is one, else on the connection the manager has reopened meanwhile.
            Err(e) if e.is_retryable() => {
                let conn = match self.shared.move_publisher(&publisher).await {
                    Some(conn) => conn,
                    None => publisher.conn,
                };
                self.shared.publish_on(conn, &payload).await
            }
            result => result,
        }
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>> {
        let (node, subscribed) = self.shared.subscribe_from(0).await?;
        let state = Subscription {
            shared: Arc::downgrade(&self.shared),
            node,
            subscribed: Some(subscribed),
            backoff: Backoff::new(&self.shared.config.retry),
            command_timeout: self.shared.config.command_timeout,
        };
        Ok(Box::pin(stream::unfold(state, |mut state| async move {
            loop {
                if let Some(subscribed) = &mut state.subscribed {
                    match subscribed.next(state.command_timeout).await {
                        Heard::Message(message) => {
                            match Invalidation::from_bytes(message.get_payload_bytes()) {
                                Ok(invalidation) => {
                                    return Some((BusEvent::Message(invalidation), state));
                                }
                                // Someone else's message on our channel: not ours to act on.
                                Err(_) => continue,
                            }
                        }
                        Heard::Alive => continue,
                        Heard::Lost => {
                            tracing::debug!("invalidation subscription lost; reconnecting");
                            // Dropping it closes the connection (and stops its task).
                            state.subscribed = None;
                            state.node += 1;
                        }
                    }
                }
                // Every RedisBus handle is gone: end the stream.
                let shared = state.shared.upgrade()?;
                state.backoff.wait().await;
                if let Ok((node, subscribed)) = shared.subscribe_from(state.node).await {
                    tracing::debug!("invalidation subscription restored");
                    state.node = node;
                    state.subscribed = Some(subscribed);
                    state.backoff.reset();
                    return Some((BusEvent::Resync, state));
                }
            }
        })))
    }
}

/// The wait between attempts to restore a bus's connection: the retry policy's minimum (at least
/// 10 ms) at first, doubling after each attempt up to its maximum (at least 500 ms), with jitter.
/// A bus retries without giving up.
pub(crate) struct Backoff {
    delay: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(retry: &RetryPolicy) -> Self {
        let min = retry.min_delay.max(Duration::from_millis(10));
        Backoff {
            delay: min,
            min,
            max: retry.max_delay.max(Duration::from_millis(500)),
        }
    }

    /// Sleeps the current delay (jittered), then doubles it.
    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.delay.mul_f64(0.5 + jitter() * 0.5)).await;
        self.delay = (self.delay * 2).min(self.max);
    }

    /// Back to the minimum, after a success.
    pub(crate) fn reset(&mut self) {
        self.delay = self.min;
    }
}

/// A factor in [0, 1) for backoff jitter, without another dependency: the clock's nanoseconds.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000) / 1_000.0
}
