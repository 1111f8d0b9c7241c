//! [`RedisBus`]: the [`InvalidationBus`] of [`TieredCache`](cache_core::TieredCache) on Redis pub/sub.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use cache_core::{BusEvent, Invalidation, InvalidationBus, Result};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use redis::Client;

use crate::config::{NodeAddr, RedisConfig, RedisMode};
use crate::conn::{Conn, SentinelConn, client_for, open_manager, resolve_master};
use crate::error::map_redis_error;

/// Carries invalidations between [`TieredCache`](cache_core::TieredCache) instances over a Redis
/// pub/sub channel.
///
/// - Messages go to the channel `"{key_prefix}{channel}"`, so apps that share a Redis with different
///   key prefixes do not hear each other.
/// - Standalone: the configured server. Cluster: any one node, since Redis Cluster forwards
///   `PUBLISH` to every node; after a node fails, the subscription moves to the next seed node.
///   Sentinel: the master the Sentinels name, asked again at every resubscription, so that after a
///   failover (Sentinel drops the old master's clients) the bus follows the new master.
/// - When the subscription connection drops, it reconnects with backoff (per
///   [`RedisConfig::retry`], without giving up) and then yields [`BusEvent::Resync`], because
///   messages sent meanwhile are lost: the cache clears its L1.
/// - A dead connection is noticed when the server closes it; a silent network partition is noticed
///   only by the next publish.
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
    publisher: Conn,
}

struct Shared {
    channel: String,
    nodes: Nodes,
    min_delay: Duration,
    max_delay: Duration,
}

/// Where the subscription goes.
enum Nodes {
    /// One client per candidate node, tried in turn (one for standalone).
    Fixed(Vec<(NodeAddr, Client)>),
    /// Whichever master the Sentinels of this config name.
    Sentinel(Box<RedisConfig>),
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = match &self.shared.nodes {
            Nodes::Fixed(clients) => clients.iter().map(|(n, _)| n.to_string()).collect(),
            Nodes::Sentinel(config) => vec![format!("sentinel {:?}", config.mode)],
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
        let shared = |nodes| Shared {
            channel: format!("{}{channel}", config.key_prefix),
            nodes,
            min_delay: config.retry.min_delay.max(Duration::from_millis(10)),
            max_delay: config.retry.max_delay.max(Duration::from_millis(500)),
        };
        let (nodes, db) = match &config.mode {
            RedisMode::Standalone(node) => (vec![node.clone()], config.db),
            // Cluster has only database 0, and any node forwards a PUBLISH to all.
            RedisMode::Cluster(nodes) => (nodes.clone(), 0),
            RedisMode::Sentinel { .. } => {
                return Ok(RedisBus {
                    shared: Arc::new(shared(Nodes::Sentinel(Box::new(config.clone())))),
                    publisher: Conn::Sentinel(SentinelConn::connect(config).await?),
                });
            }
        };
        let clients = nodes
            .into_iter()
            .map(|node| Ok((node.clone(), client_for(config, &node, db)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut last_error = None;
        for (node, client) in &clients {
            match open_manager(client.clone(), config, &format!("connect to {node}")).await {
                Ok(publisher) => {
                    return Ok(RedisBus {
                        shared: Arc::new(shared(Nodes::Fixed(clients))),
                        publisher: Conn::Single(publisher),
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one node"))
    }

    /// The pub/sub channel in Redis.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }
}

impl Shared {
    /// Subscribes through node `start` or, failing that, the next ones; or through the master the
    /// Sentinels name now.
    async fn subscribe_from(&self, start: usize) -> Result<(usize, redis::aio::PubSubStream)> {
        let clients = match &self.nodes {
            Nodes::Fixed(clients) => clients,
            Nodes::Sentinel(config) => {
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

    async fn subscribe_on(
        &self,
        node: &NodeAddr,
        client: &Client,
    ) -> Result<redis::aio::PubSubStream> {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        attempt
            .await
            .map_err(|e| map_redis_error(e, &format!("subscribe on {node}"), None))
    }
}

struct Subscription {
    shared: Weak<Shared>,
    node: usize,
    messages: Option<redis::aio::PubSubStream>,
    delay: Duration,
}

#[async_trait]
impl InvalidationBus for RedisBus {
    async fn publish(&self, message: &Invalidation) -> Result<()> {
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(&self.shared.channel)
            .arg(message.to_bytes().as_ref())
            .exec_async(&mut conn)
            .await
            .map_err(|e| map_redis_error(e, "publish an invalidation", None))
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>> {
        let (node, messages) = self.shared.subscribe_from(0).await?;
        let state = Subscription {
            shared: Arc::downgrade(&self.shared),
            node,
            messages: Some(messages),
            delay: self.shared.min_delay,
        };
        Ok(Box::pin(stream::unfold(state, |mut state| async move {
            loop {
                if let Some(messages) = &mut state.messages {
                    match messages.next().await {
                        Some(message) => {
                            match Invalidation::from_bytes(message.get_payload_bytes()) {
                                Ok(invalidation) => {
                                    return Some((BusEvent::Message(invalidation), state));
                                }
                                // Someone else's message on our channel: not ours to act on.
                                Err(_) => continue,
                            }
                        }
                        None => {
                            tracing::debug!("invalidation subscription lost; reconnecting");
                            state.messages = None;
                            state.node += 1;
                        }
                    }
                }
                // Every RedisBus handle is gone: end the stream.
                let shared = state.shared.upgrade()?;
                tokio::time::sleep(state.delay.mul_f64(0.5 + jitter() * 0.5)).await;
                match shared.subscribe_from(state.node).await {
                    Ok((node, messages)) => {
                        tracing::debug!("invalidation subscription restored");
                        state.node = node;
                        state.messages = Some(messages);
                        state.delay = shared.min_delay;
                        return Some((BusEvent::Resync, state));
                    }
                    Err(_) => state.delay = (state.delay * 2).min(shared.max_delay),
                }
            }
        })))
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
