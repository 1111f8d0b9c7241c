//! [`RedisBus`]: the [`InvalidationBus`] of [`TieredCache`](cache_core::TieredCache) on Redis pub/sub.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use cache_core::{BusEvent, Error, ErrorKind, Invalidation, InvalidationBus, Result};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use redis::Client;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::{NodeAddr, RedisConfig, RedisMode};
use crate::conn::{client_for, install_crypto_provider};
use crate::error::map_redis_error;

/// Carries invalidations between [`TieredCache`](cache_core::TieredCache) instances over a Redis
/// pub/sub channel.
///
/// - Messages go to the channel `"{key_prefix}{channel}"`, so apps that share a Redis with different
///   key prefixes do not hear each other.
/// - Standalone: the configured server. Cluster: any one node, since Redis Cluster forwards
///   `PUBLISH` to every node; after a node fails, the subscription moves to the next seed node.
///   Sentinel is not supported yet.
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
    publisher: ConnectionManager,
}

struct Shared {
    channel: String,
    /// One client per candidate node (one for standalone).
    clients: Vec<(NodeAddr, Client)>,
    min_delay: Duration,
    max_delay: Duration,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("channel", &self.shared.channel)
            .field(
                "nodes",
                &self
                    .shared
                    .clients
                    .iter()
                    .map(|(n, _)| n.to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RedisBus {
    /// Connects the publishing connection and checks the channel can be subscribed to.
    pub async fn connect(config: &RedisConfig, channel: &str) -> Result<Self> {
        let nodes = match &config.mode {
            RedisMode::Standalone(node) => vec![node.clone()],
            RedisMode::Cluster(nodes) => nodes.clone(),
            RedisMode::Sentinel { .. } => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "RedisBus does not support Sentinel yet: connect it to the master's address",
                ));
            }
        };
        if config.tls {
            install_crypto_provider();
        }
        let db = if matches!(config.mode, RedisMode::Cluster(_)) {
            0
        } else {
            config.db
        };
        let clients = nodes
            .into_iter()
            .map(|node| Ok((node.clone(), client_for(config, &node, db)?)))
            .collect::<Result<Vec<_>>>()?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(config.retry.max_retries)
            .set_min_delay(config.retry.min_delay)
            .set_max_delay(config.retry.max_delay);
        let mut last_error = None;
        for (node, client) in &clients {
            match ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await {
                Ok(publisher) => {
                    return Ok(RedisBus {
                        shared: Arc::new(Shared {
                            channel: format!("{}{channel}", config.key_prefix),
                            clients,
                            min_delay: config.retry.min_delay.max(Duration::from_millis(10)),
                            max_delay: config.retry.max_delay.max(Duration::from_millis(500)),
                        }),
                        publisher,
                    });
                }
                Err(e) => {
                    last_error = Some(map_redis_error(e, &format!("connect to {node}"), None))
                }
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
    /// Subscribes through node `start` or, failing that, the next ones.
    async fn subscribe_from(&self, start: usize) -> Result<(usize, redis::aio::PubSubStream)> {
        let mut last_error = None;
        for i in 0..self.clients.len() {
            let index = (start + i) % self.clients.len();
            let (node, client) = &self.clients[index];
            let attempt = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(pubsub.into_on_message())
            };
            match attempt.await {
                Ok(messages) => return Ok((index, messages)),
                Err(e) => {
                    last_error = Some(map_redis_error(e, &format!("subscribe on {node}"), None))
                }
            }
        }
        Err(last_error.expect("at least one node"))
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
