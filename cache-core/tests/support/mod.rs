//! Test doubles shared by cache-core's integration tests.
#![allow(dead_code)] // each test binary uses part of it

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backend_memory::MemoryStore;
use bytes::Bytes;
use cache_core::{
    CacheStore, Capabilities, ErrorKind, KeyTtl, Limits, Result, ScanCursor, ScanPage, SetOptions,
};
use futures::channel::oneshot;

/// An L2 that can be switched off (connection errors) or made to hang, whose replies can be held
/// back or lost.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlakyStore {
    pub(crate) inner: MemoryStore,
    pub(crate) down: Arc<AtomicBool>,
    pub(crate) hang: Arc<AtomicBool>,
    pub(crate) calls: Arc<AtomicU64>,
    pub(crate) held_get: HeldReply,
    /// Holds the next `get` back before it reads: a caller that stalls on its way to the store.
    pub(crate) late_get: HeldReply,
    pub(crate) held_set: HeldReply,
    /// `set` writes, then reports a timeout: its reply was lost.
    pub(crate) lose_set_replies: Arc<AtomicBool>,
}

/// Once armed, the next call does its work and then waits for the signal before it answers: a slow
/// reply, so that a test can run other calls in between.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldReply(Arc<Mutex<Option<oneshot::Receiver<()>>>>);

impl HeldReply {
    /// Holds back the next reply until the returned sender fires.
    pub(crate) fn arm(&self) -> oneshot::Sender<()> {
        let (release, held) = oneshot::channel();
        *self.0.lock().unwrap() = Some(held);
        release
    }

    pub(crate) async fn wait(&self) {
        let held = self.0.lock().unwrap().take();
        if let Some(held) = held {
            let _ = held.await;
        }
    }
}

impl FlakyStore {
    pub(crate) fn over(inner: MemoryStore) -> Self {
        FlakyStore {
            inner,
            ..FlakyStore::default()
        }
    }

    async fn check(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(cache_core::Error::new(
                ErrorKind::Connection,
                "connection refused",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl CacheStore for FlakyStore {
    fn capabilities(&self) -> Capabilities {
        CacheStore::capabilities(&self.inner)
    }
    fn limits(&self) -> Limits {
        CacheStore::limits(&self.inner)
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.check().await?;
        self.late_get.wait().await;
        let read = CacheStore::get(&self.inner, key).await;
        self.held_get.wait().await;
        read
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.check().await?;
        CacheStore::get_many(&self.inner, keys).await
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<bool> {
        self.check().await?;
        let written = CacheStore::set(&self.inner, key, value, options).await;
        self.held_set.wait().await;
        if self.lose_set_replies.load(Ordering::SeqCst) {
            return Err(cache_core::Error::new(ErrorKind::Timeout, "reply lost"));
        }
        written
    }
    async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
        self.check().await?;
        CacheStore::set_many(&self.inner, entries, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.check().await?;
        CacheStore::delete(&self.inner, key).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.check().await?;
        CacheStore::delete_many(&self.inner, keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.check().await?;
        CacheStore::exists(&self.inner, key).await
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.check().await?;
        CacheStore::ttl(&self.inner, key).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.check().await?;
        CacheStore::expire(&self.inner, key, ttl).await
    }
    async fn persist(&self, key: &str) -> Result<bool> {
        self.check().await?;
        CacheStore::persist(&self.inner, key).await
    }
    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.check().await?;
        CacheStore::incr_by(&self.inner, key, delta, ttl).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.check().await?;
        CacheStore::compare_and_swap(&self.inner, key, expected, new, ttl).await
    }
    async fn scan(&self, prefix: &str, cursor: ScanCursor, count: usize) -> Result<ScanPage> {
        self.check().await?;
        CacheStore::scan(&self.inner, prefix, cursor, count).await
    }
    async fn clear(&self, prefix: &str) -> Result<u64> {
        self.check().await?;
        CacheStore::clear(&self.inner, prefix).await
    }
    async fn ping(&self) -> Result<()> {
        self.check().await
    }
}
