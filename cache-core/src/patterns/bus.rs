//! The invalidation bus that keeps [`TieredCache`](super::TieredCache) instances' L1s coherent.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{Error, ErrorKind, Result};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum InvalidationOp {
    /// A key was written.
    Set,
    /// A key was deleted.
    Delete,
    /// Every key with a prefix was deleted.
    Clear,
    /// Every key matching a glob (Redis `MATCH` semantics, over whole keys) was deleted.
    Match,
}

/// One message on an [`InvalidationBus`]: instance `origin` changed `key` (for
/// [`InvalidationOp::Clear`], every key starting with `key`; for [`InvalidationOp::Match`], every
/// key matching the glob `key`).
///
/// It never carries a value: receivers drop their L1 copy and read L2 again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Invalidation {
    /// The id of the instance that made the change.
    #[serde(rename = "o")]
    pub origin: String,
    /// What it did.
    #[serde(rename = "op")]
    pub op: InvalidationOp,
    /// The key; for a clear the prefix, for a match the pattern.
    #[serde(rename = "k")]
    pub key: String,
}

impl Invalidation {
    /// A message from instance `origin`.
    pub fn new(origin: impl Into<String>, op: InvalidationOp, key: impl Into<String>) -> Self {
        Invalidation {
            origin: origin.into(),
            op,
            key: key.into(),
        }
    }

    /// The wire encoding (compact JSON) used by buses that carry bytes.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("an invalidation always serializes"))
    }

    /// Decodes [`to_bytes`](Self::to_bytes); a malformed message is an [`ErrorKind::Codec`] error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(ErrorKind::Codec, "malformed invalidation message").with_source(e)
        })
    }
}

/// What a subscription to an [`InvalidationBus`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusEvent {
    /// A message, possibly this instance's own.
    Message(Invalidation),
    /// Messages may have been lost (the bus reconnected, or this subscriber fell behind). The L1 can no
    /// longer be trusted and is cleared.
    Resync,
}

/// Carries [`Invalidation`]s between [`TieredCache`](super::TieredCache) instances.
///
/// Behavior an implementation provides:
/// - every subscriber receives every message published after its `subscribe` returned, including its
///   own instance's (the cache filters those out by `origin`);
/// - when a subscriber may have missed messages (a reconnect, a full buffer), it yields
///   [`BusEvent::Resync`] before anything newer;
/// - the stream ends only when the bus is gone for good.
#[async_trait]
pub trait InvalidationBus: Send + Sync + fmt::Debug {
    /// Sends a message to every subscriber.
    async fn publish(&self, message: &Invalidation) -> Result<()>;

    /// Starts receiving; messages published after this returns are delivered.
    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>>;

    /// Whether this bus could not use its own mechanism and carries messages through a fallback
    /// (e.g. a tracking bus on a server that refuses tracking); shown in
    /// [`TieredStats::bus_fell_back`](super::TieredStats::bus_fell_back).
    fn fell_back(&self) -> bool {
        false
    }
}

/// An [`InvalidationBus`] inside one process, for tests and for several caches in one service. Clones
/// share the same bus.
///
/// A subscriber that falls more than `capacity` messages behind gets [`BusEvent::Resync`].
#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<Invalidation>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        InProcessBus::new(1024)
    }
}

impl InProcessBus {
    /// A bus that buffers up to `capacity` messages per subscriber (at least 1).
    pub fn new(capacity: usize) -> Self {
        InProcessBus {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }
}

#[async_trait]
impl InvalidationBus for InProcessBus {
    async fn publish(&self, message: &Invalidation) -> Result<()> {
        // No subscriber is not an error: there is nobody to invalidate.
        let _ = self.sender.send(message.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, BusEvent>> {
        let receiver = self.sender.subscribe();
        Ok(Box::pin(stream::unfold(receiver, |mut rx| async move {
            match rx.recv().await {
                Ok(message) => Some((BusEvent::Message(message), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((BusEvent::Resync, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })))
    }
}
