//! The tracking invalidation bus (`TrackingBus`) on a real Redis, shared by the standalone,
//! Cluster and Sentinel binaries: writes made outside the SDK reach every L1, and lost
//! invalidations clear it. Also the bus semantics both Redis buses share. Each waits for the event
//! it expects with a bounded wait, never for a fixed time.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_memory::MemoryStore;
use backend_redis::{RedisBus, RedisConfig, RedisStore, TrackingBus};
use cache_core::{BusEvent, InvalidationBus, TieredCache, TieredStats};
use futures::StreamExt;
use redis::aio::ConnectionLike;

/// How long an expected event may take.
const BOUND: Duration = Duration::from_secs(5);
const NAMESPACE: &str = "products";

/// An instance of a service: a `TieredCache` on the config's Redis, with its listener running.
pub(crate) async fn instance(
    config: &RedisConfig,
    namespace: &str,
    bus: Arc<dyn InvalidationBus>,
) -> TieredCache {
    let l2 = RedisStore::connect(config.clone()).await.unwrap();
    let cache = TieredCache::builder(MemoryStore::new(), l2)
        .namespace(namespace)
        .l1_ttl(Duration::from_secs(600))
        .shared_bus(bus)
        .build()
        .unwrap();
    tokio::spawn(cache.listen().await.unwrap().run());
    cache
}

pub(crate) async fn tracked(config: &RedisConfig, namespace: &str) -> TieredCache {
    let bus = TrackingBus::connect(config, namespace).await.unwrap();
    instance(config, namespace, Arc::new(bus)).await
}

/// Waits until `check` holds, at most [`BOUND`].
pub(crate) async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < BOUND, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

/// Waits until one of `cache`'s stats has grown past `before`.
pub(crate) async fn until_stat(
    what: &str,
    cache: &TieredCache,
    stat: fn(&TieredStats) -> u64,
    before: u64,
) {
    until(what, async || stat(&cache.stats()) > before).await;
}

/// Makes `cache` hold `key` in its L1 with `value`, and checks that it answers from there.
pub(crate) async fn hold<T>(cache: &TieredCache, key: &str, value: T)
where
    T: serde::de::DeserializeOwned + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    assert_eq!(cache.get::<T>(key).await.unwrap().as_ref(), Some(&value));
    let hits = cache.stats().l1_hits;
    assert_eq!(cache.get::<T>(key).await.unwrap().as_ref(), Some(&value));
    assert_eq!(cache.stats().l1_hits, hits + 1, "{key} is in L1");
}

/// Runs one raw command on `writer`: a plain redis-rs connection, not the SDK.
async fn raw(writer: &mut (impl ConnectionLike + Send), cmd: &mut redis::Cmd) {
    cmd.exec_async(writer).await.unwrap();
}

/// Sets `key` outside the SDK and waits until each of `caches` heard Redis report it.
pub(crate) async fn seed(
    writer: &mut (impl ConnectionLike + Send),
    redis_key: &str,
    value: u32,
    caches: &[&TieredCache],
) {
    let before: Vec<u64> = caches.iter().map(|c| c.stats().bus_messages).collect();
    raw(writer, redis::cmd("SET").arg(redis_key).arg(value)).await;
    for (cache, before) in caches.iter().zip(before) {
        until_stat("the seed heard", cache, |s| s.bus_messages, before).await;
    }
}

/// Two instances of one namespace and one of another; a plain redis-rs connection (`writer`)
/// does `SET`, `DEL` and `UNLINK`, a key expires in Redis, and (with `flushall`) the server is
/// flushed: each instance of the namespace drops its L1 copy, and the other namespace drops
/// nothing until the flush.
pub(crate) async fn outside_writes_reach_every_l1(
    config: &RedisConfig,
    mut writer: impl ConnectionLike + Send,
    flushall: bool,
) {
    let (a, b) = (
        tracked(config, NAMESPACE).await,
        tracked(config, NAMESPACE).await,
    );
    let other = tracked(config, "other").await;
    for cache in [&a, &b, &other] {
        assert!(!cache.stats().bus_fell_back, "{:?}", cache.stats());
    }
    let key = |k: &str| format!("{}{NAMESPACE}:{k}", config.key_prefix);
    let both = [&a, &b];

    seed(
        &mut writer,
        &format!("{}other:k", config.key_prefix),
        7,
        &[&other],
    )
    .await;
    hold(&other, "k", 7).await;
    let other_heard = other.stats().bus_messages;

    // SET from outside: both L1s drop the old value and read the new one.
    seed(&mut writer, &key("k"), 1, &both).await;
    for cache in both {
        hold(cache, "k", 1).await;
    }
    raw(&mut writer, redis::cmd("SET").arg(key("k")).arg(2)).await;
    for cache in both {
        until("the outside SET seen", async || {
            cache.get::<u32>("k").await.unwrap() == Some(2)
        })
        .await;
    }

    // Keys on every shard of a Cluster (30 keys miss one of 3 shards once in 60 000 runs).
    let spread: Vec<String> = (0..30).map(|i| format!("spread{i}")).collect();
    for k in &spread {
        seed(&mut writer, &key(k), 1, &both).await;
        for cache in both {
            hold(cache, k, 1).await;
        }
    }
    for k in &spread {
        raw(&mut writer, redis::cmd("SET").arg(key(k)).arg(2)).await;
    }
    for cache in both {
        for k in &spread {
            until("an outside SET on each shard seen", async || {
                cache.get::<u32>(k).await.unwrap() == Some(2)
            })
            .await;
        }
    }

    // DEL and UNLINK from outside.
    for delete in ["DEL", "UNLINK"] {
        seed(&mut writer, &key("k"), 3, &both).await;
        for cache in both {
            hold(cache, "k", 3).await;
        }
        raw(&mut writer, redis::cmd(delete).arg(key("k"))).await;
        for cache in both {
            until(&format!("the outside {delete} seen"), async || {
                cache.get::<u32>("k").await.unwrap().is_none()
            })
            .await;
        }
    }

    // A key that expires in Redis is reported when Redis removes it.
    let heard: Vec<u64> = both.iter().map(|c| c.stats().bus_messages).collect();
    raw(
        &mut writer,
        redis::cmd("SET")
            .arg(key("short"))
            .arg(4)
            .arg("PX")
            .arg(300),
    )
    .await;
    for (cache, heard) in both.iter().zip(&heard) {
        until_stat("the SET PX heard", cache, |s| s.bus_messages, *heard).await;
    }
    let heard: Vec<u64> = both.iter().map(|c| c.stats().bus_messages).collect();
    for (cache, heard) in both.iter().zip(heard) {
        until_stat("the expiry heard", cache, |s| s.bus_messages, heard).await;
        assert_eq!(cache.get::<u32>("short").await.unwrap(), None);
    }

    // Nothing of the products namespace reached the other one.
    assert_eq!(other.stats().bus_messages, other_heard);
    hold(&other, "k", 7).await;

    if flushall {
        seed(&mut writer, &key("k"), 5, &both).await;
        for cache in both {
            hold(cache, "k", 5).await;
        }
        let resyncs: Vec<u64> = [&a, &b, &other]
            .iter()
            .map(|c| c.stats().bus_resyncs)
            .collect();
        raw(&mut writer, &mut redis::cmd("FLUSHALL")).await;
        for (cache, resyncs) in [&a, &b, &other].into_iter().zip(resyncs) {
            until_stat("the FLUSHALL heard", cache, |s| s.bus_resyncs, resyncs).await;
        }
        for cache in both {
            assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
        }
        assert_eq!(other.get::<u32>("k").await.unwrap(), None);
    }
}

/// The ids of the tracking connections on the node `admin` talks to (`flags` holds `t`).
async fn tracking_clients(admin: &mut (impl ConnectionLike + Send)) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| field.starts_with("flags=") && field.contains('t'))
        })
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

/// Redis drops the tracking connections on every node in `admins`: each instance arms tracking
/// again and clears its L1 (invalidations may have been lost meanwhile), and then hears outside
/// writes again.
pub(crate) async fn tracking_is_armed_again_after_its_connection_drops(
    config: &RedisConfig,
    mut writer: impl ConnectionLike + Send,
    admins: Vec<redis::aio::MultiplexedConnection>,
) {
    let a = tracked(config, NAMESPACE).await;
    let key = format!("{}{NAMESPACE}:k", config.key_prefix);
    seed(&mut writer, &key, 1, &[&a]).await;
    hold(&a, "k", 1).await;
    let resyncs = a.stats().bus_resyncs;
    let mut killed = 0;
    for mut admin in admins {
        for id in tracking_clients(&mut admin).await {
            raw(
                &mut admin,
                redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id),
            )
            .await;
            killed += 1;
        }
    }
    assert!(killed > 0, "no tracking connection found");
    until_stat("the resync after the kill", &a, |s| s.bus_resyncs, resyncs).await;
    // The L1 was cleared: the next read is an L2 hit.
    let l2_hits = a.stats().l2_hits;
    assert_eq!(a.get::<u32>("k").await.unwrap(), Some(1));
    assert_eq!(a.stats().l2_hits, l2_hits + 1);
    hold(&a, "k", 1).await;
    raw(&mut writer, redis::cmd("SET").arg(&key).arg(2)).await;
    until("the outside SET seen after the re-arm", async || {
        a.get::<u32>("k").await.unwrap() == Some(2)
    })
    .await;
}

/// For a bus made by `bus` (pub/sub or tracking): a clear or prefix invalidation of one
/// namespace never drops another namespace's L1 entries, and no value travels on the bus.
/// `shared_channel`: every namespace's messages reach every instance (pub/sub on one channel),
/// rather than only the namespace's own keys, each write included (tracking).
pub(crate) async fn invalidations_stay_in_their_namespace<F, Fut>(
    config: &RedisConfig,
    bus: F,
    shared_channel: bool,
) where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = Arc<dyn InvalidationBus>>,
{
    let value = "a value that must not travel".to_owned();
    let one = instance(config, "one", bus("one").await).await;
    let one_again = instance(config, "one", bus("one").await).await;
    let two = instance(config, "two", bus("two").await).await;
    let listening = bus("one").await;
    let mut heard = listening.subscribe().await.unwrap();
    one.set("k", &value).await.unwrap();
    two.set("k", &value).await.unwrap();
    // On a shared channel two hears one's set, and one_again both sets; on tracking each hears
    // its namespace's set.
    let (two_hears, one_again_hears) = if shared_channel { (1, 2) } else { (1, 1) };
    until("the sets heard", async || {
        two.stats().bus_messages == two_hears && one_again.stats().bus_messages == one_again_hears
    })
    .await;
    hold(&two, "k", value.clone()).await;
    hold(&one_again, "k", value.clone()).await;

    let heard_before = two.stats().bus_messages;
    one.invalidate_prefix("").await.unwrap();
    one.clear().await.unwrap();
    until("one_again seeing the clear", async || {
        one_again.get::<String>("k").await.unwrap().is_none()
    })
    .await;
    until("two hearing one's clears", async || {
        two.stats().bus_messages == heard_before + if shared_channel { 2 } else { 0 }
    })
    .await;
    // The other namespace still answers from its L1.
    let two_l1 = two.stats().l1_hits;
    assert_eq!(two.get::<String>("k").await.unwrap(), Some(value.clone()));
    assert_eq!(two.stats().l1_hits, two_l1 + 1, "two kept its L1 entry");
    assert_eq!(two.stats().bus_resyncs, 0);

    let mut messages = 0;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), heard.next()).await
    {
        if let BusEvent::Message(message) = event {
            messages += 1;
            let wire = String::from_utf8_lossy(&message.to_bytes()).into_owned();
            assert!(
                !wire.contains(&value),
                "a value travelled on the bus: {wire}"
            );
        }
    }
    assert!(messages >= 1, "the bus carried {messages} messages");
}

/// `invalidations_stay_in_their_namespace` on both Redis buses.
pub(crate) async fn both_buses_keep_invalidations_in_their_namespace(config: &RedisConfig) {
    let pubsub = async |_| {
        Arc::new(RedisBus::connect(config, "namespaces").await.unwrap()) as Arc<dyn InvalidationBus>
    };
    invalidations_stay_in_their_namespace(config, pubsub, true).await;
    let tracking = async |namespace| {
        Arc::new(TrackingBus::connect(config, namespace).await.unwrap()) as Arc<dyn InvalidationBus>
    };
    invalidations_stay_in_their_namespace(config, tracking, false).await;
}

/// `failover` changes which node serves some keys: the tracking bus notices, arms tracking on the
/// new node and clears the L1 (writes in between were not reported). Then outside writes made
/// through `after` (a connection that reaches the new topology) to keys of every node are heard.
pub(crate) async fn tracking_follows_a_failover(
    config: &RedisConfig,
    mut before: impl ConnectionLike + Send,
    mut after: impl ConnectionLike + Send,
    failover: impl Future<Output = ()>,
) {
    let a = tracked(config, NAMESPACE).await;
    let key = |k: &str| format!("{}{NAMESPACE}:{k}", config.key_prefix);
    let spread: Vec<String> = (0..30).map(|i| format!("spread{i}")).collect();
    for k in &spread {
        seed(&mut before, &key(k), 1, &[&a]).await;
        hold(&a, k, 1).await;
    }
    let resyncs = a.stats().bus_resyncs;
    failover.await;
    until_stat(
        "the resync after the failover",
        &a,
        |s| s.bus_resyncs,
        resyncs,
    )
    .await;
    for value in [2, 3] {
        let heard = a.stats().bus_messages;
        for k in &spread {
            // The connection may still be finding the new node: retry until the write lands.
            until("an outside SET after the failover", async || {
                redis::cmd("SET")
                    .arg(key(k))
                    .arg(value)
                    .exec_async(&mut after)
                    .await
                    .is_ok()
            })
            .await;
        }
        until("every outside SET after the failover heard", async || {
            a.stats().bus_messages >= heard + spread.len() as u64
        })
        .await;
        for k in &spread {
            if value == 2 {
                hold(&a, k, 2).await;
            } else {
                assert_eq!(a.get::<u32>(k).await.unwrap(), Some(3), "{k}");
            }
        }
    }
}
