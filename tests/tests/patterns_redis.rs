//! The cache-core patterns (lock, rate limiter, tiered cache with the Redis invalidation bus) on
//! Redis standalone, and a fault test: Redis killed under load while tiered reads keep succeeding.

mod patterns_cases;
mod support;
mod tracking_cases;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backend_memory::MemoryStore;
use backend_redis::{RedisBus, RedisConfig, RedisStore};
use cache_core::TieredCache;
use support::redis::{
    Launcher, base_args, free_port, launch_standalone, node_connection, with_test_settings,
};

async fn store() -> RedisStore {
    support::redis::standalone().await.redis_store().clone()
}

patterns_cases::store_pattern_tests!(Arc::new(store().await));

#[test]
fn tiered_instances_stay_coherent() {
    cache_conformance::block_on(async {
        patterns_cases::tiered_instances_stay_coherent(store().await).await
    })
}

const KEYS: usize = 50;
const READERS: usize = 8;

#[derive(Default)]
struct Reads {
    ok: AtomicU64,
    failed: AtomicU64,
}

#[test]
fn tiered_reads_of_cached_keys_survive_killing_redis_under_load() {
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut server, port) = launch_standalone(&launcher).await;
        let config = RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let l2 = RedisStore::connect(with_test_settings(config))
            .await
            .unwrap();
        // A short L1 TTL, so that most reads during the outage find only a stale copy.
        let cache = TieredCache::builder(MemoryStore::new(), l2)
            .l1_ttl(Duration::from_millis(100))
            .fail_safe_grace(Duration::from_secs(60))
            .l2_timeout(Duration::from_millis(150))
            .sleeper(tokio::time::sleep)
            .circuit_breaker(3, Duration::from_millis(500))
            .build()
            .unwrap();
        for k in 0..KEYS {
            cache.set(&format!("key{k}"), &k).await.unwrap();
        }

        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(Reads::default());
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (cache, stop, reads) = (cache.clone(), stop.clone(), reads.clone());
                tokio::spawn(async move {
                    let mut n = r;
                    while !stop.load(Ordering::Relaxed) {
                        n = (n + 7) % KEYS;
                        match cache.get::<usize>(&format!("key{n}")).await {
                            Ok(Some(v)) if v == n => reads.ok.fetch_add(1, Ordering::Relaxed),
                            _ => reads.failed.fetch_add(1, Ordering::Relaxed),
                        };
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;

        server.stop().await;
        let ok_before = reads.ok.load(Ordering::Relaxed);
        let down_at = Instant::now();
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        let ok_while_down = reads.ok.load(Ordering::Relaxed) - ok_before;
        let stats = cache.stats();
        eprintln!(
            "{ok_while_down} reads succeeded in the {:?} Redis was down; stats {stats:?}",
            down_at.elapsed()
        );
        assert_eq!(reads.failed.load(Ordering::Relaxed), 0, "{stats:?}");
        assert!(ok_while_down > 100, "{ok_while_down} reads while down");
        assert!(stats.fail_safe_activations > 0, "{stats:?}");
        assert!(
            stats.l2_rejected > 0,
            "the circuit breaker opened: {stats:?}"
        );
        // Writes report the failure.
        assert!(cache.set("key0", &0).await.is_err());

        // Redis comes back (empty): after the open period, writes go through again.
        server.restart(port).await;
        let back_at = Instant::now();
        while cache.set("key0", &0).await.is_err() {
            assert!(
                back_at.elapsed() < Duration::from_secs(10),
                "never recovered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(cache.get::<usize>("key0").await.unwrap(), Some(0));
        assert!(!cache.is_l2_circuit_open());
        server.kill();
    })
}

/// When Redis drops the bus's subscription, the bus reconnects and says messages may have been
/// lost: the other instance clears its L1, then hears invalidations again.
#[test]
fn redis_bus_reconnects_and_the_l1_is_cleared() {
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut server, port) = launch_standalone(&launcher).await;
        let config = with_test_settings(
            RedisConfig::builder()
                .standalone("127.0.0.1", port)
                .build()
                .unwrap(),
        );
        let instance = async || {
            let cache = TieredCache::builder(
                MemoryStore::new(),
                RedisStore::connect(config.clone()).await.unwrap(),
            )
            .l1_ttl(Duration::from_secs(600))
            .bus(RedisBus::connect(&config, "bus").await.unwrap())
            .build()
            .unwrap();
            tokio::spawn(cache.listen().await.unwrap().run());
            cache
        };
        let (a, b) = (instance().await, instance().await);
        a.set("k", &1).await.unwrap();
        assert_eq!(b.get::<u32>("k").await.unwrap(), Some(1));

        // Drop every pub/sub connection on the server.
        let client = redis::Client::open(("127.0.0.1", port)).unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .exec_async(&mut admin)
            .await
            .unwrap();
        let started = Instant::now();
        while b.stats().bus_resyncs == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "b never resynced"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        eprintln!("resynced {:?} after the kill", started.elapsed());
        // b's L1 was cleared: the next read goes to L2.
        let l2_hits = b.stats().l2_hits;
        assert_eq!(b.get::<u32>("k").await.unwrap(), Some(1));
        assert_eq!(b.stats().l2_hits, l2_hits + 1);
        // Invalidations flow again.
        while a.stats().bus_resyncs == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "a never resynced"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        a.set("k", &2).await.unwrap();
        let started = Instant::now();
        while b.get::<u32>("k").await.unwrap() != Some(2) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "b never saw the change"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.kill();
    })
}

/// Redis restarts; both instances resync. Then b holds `k` in its L1 while a's publishing
/// connection is the one that sat idle through the restart. a's write must reach b: a write never
/// returns `Ok` while another instance may go on serving the value it replaced.
#[test]
fn a_write_after_a_restart_reaches_the_other_instances_l1() {
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut server, port) = launch_standalone(&launcher).await;
        let config = with_test_settings(
            RedisConfig::builder()
                .standalone("127.0.0.1", port)
                .build()
                .unwrap(),
        );
        let instance = async || {
            let cache = TieredCache::builder(
                MemoryStore::new(),
                RedisStore::connect(config.clone()).await.unwrap(),
            )
            .l1_ttl(Duration::from_secs(600))
            .bus(RedisBus::connect(&config, "restart").await.unwrap())
            .build()
            .unwrap();
            tokio::spawn(cache.listen().await.unwrap().run());
            cache
        };
        let (a, b) = (instance().await, instance().await);
        a.set("k", &1).await.unwrap();
        assert_eq!(b.get::<u32>("k").await.unwrap(), Some(1));

        server.stop().await;
        server.restart(port).await;
        let started = Instant::now();
        while a.stats().bus_resyncs == 0 || b.stats().bus_resyncs == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the buses never resynced: a {:?}, b {:?}",
                a.stats(),
                b.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // a's store is in use again (a read succeeded); its bus's publishing connection is not.
        while a.get::<u32>("warm").await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "a's store never recovered"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // b loads the key again (Redis came back empty); a load announces nothing.
        let loaded: u32 = b
            .get_or_insert_with("k", None, || async { Ok::<_, std::io::Error>(25) })
            .await
            .unwrap();
        assert_eq!(loaded, 25);
        assert_eq!(b.get::<u32>("k").await.unwrap(), Some(25));
        // Quiet for a while, as a service between requests.
        tokio::time::sleep(Duration::from_millis(1500)).await;

        match a.set("k", &3).await {
            Ok(()) => {
                let written_at = Instant::now();
                while b.get::<u32>("k").await.unwrap() != Some(3) {
                    assert!(
                        written_at.elapsed() < Duration::from_secs(5),
                        "a.set returned Ok, but b still serves {:?} 5 s later; a's stats {:?}",
                        b.get::<u32>("k").await.unwrap(),
                        a.stats()
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                eprintln!(
                    "b read the new value {:?} after a's set",
                    written_at.elapsed()
                );
            }
            Err(e) => panic!("a's first write after the restart failed: {e}"),
        }
        assert_eq!(a.stats().bus_publish_errors, 0, "{:?}", a.stats());
        server.kill();
    })
}

/// While Redis is down, a limiter fails open or closed as chosen (or returns the error); after a
/// restart without persistence the counts are gone, as documented: a full limit is admitted again.
#[test]
fn rate_limits_through_a_restart_fail_as_chosen_then_start_afresh() {
    use cache_core::{OnStoreFailure, RateLimitAlgorithm, RateLimiter};

    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut server, port) = launch_standalone(&launcher).await;
        let config = RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let store = Arc::new(
            RedisStore::connect(with_test_settings(config))
                .await
                .unwrap(),
        );
        for algorithm in [
            RateLimitAlgorithm::FixedWindow,
            RateLimitAlgorithm::SlidingWindow,
            RateLimitAlgorithm::Gcra,
        ] {
            let limiter = |policy| {
                RateLimiter::builder(store.clone())
                    .namespace(format!("restart-{algorithm:?}"))
                    .limit(5)
                    .period(Duration::from_secs(60))
                    .algorithm(algorithm)
                    .on_store_failure(policy)
                    .build()
                    .unwrap()
            };
            let (error, open, closed) = (
                limiter(OnStoreFailure::ReturnError),
                limiter(OnStoreFailure::Allow),
                limiter(OnStoreFailure::Deny),
            );
            for _ in 0..5 {
                assert!(error.check("c").await.unwrap().allowed);
            }
            assert!(!error.check("c").await.unwrap().allowed);

            server.stop().await;
            let err = error.check("c").await.unwrap_err();
            assert!(err.is_retryable(), "{err}");
            let d = open.check("c").await.unwrap();
            assert!(d.allowed && d.degraded, "{algorithm:?} fail open: {d:?}");
            let d = closed.check("c").await.unwrap();
            assert!(!d.allowed && d.degraded, "{algorithm:?} fail closed: {d:?}");

            server.restart(port).await;
            // The restart lost the counts: the window starts afresh.
            let mut admitted = 0;
            for _ in 0..6 {
                let d = error.check("c").await.unwrap();
                assert!(!d.degraded);
                admitted += u32::from(d.allowed);
            }
            assert_eq!(admitted, 5, "{algorithm:?} after the restart");
        }
        server.kill();
    })
}

/// What a lock guarantees when Redis restarts without persistence, as documented on
/// `LockManager`: the held lease is lost, so a second caller gets the lock while the first still
/// holds its guard, but the fencing token still grows (the counter restarted at the wall clock),
/// and the first holder learns it lost the lease.
#[test]
fn a_restart_loses_the_lease_but_fencing_tokens_keep_growing() {
    use cache_core::LockManager;

    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut server, port) = launch_standalone(&launcher).await;
        let config = RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .build()
            .unwrap();
        let store = RedisStore::connect(with_test_settings(config))
            .await
            .unwrap();
        let locks = LockManager::builder(store)
            .lease(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut last = 0;
        for _ in 0..20 {
            let guard = locks.try_acquire("job").await.unwrap().unwrap();
            assert!(guard.fencing_token() > last);
            last = guard.fencing_token();
            assert!(guard.release().await.unwrap());
        }
        let first = locks.try_acquire("job").await.unwrap().unwrap();

        server.stop().await;
        server.restart(port).await;

        // The store's connection answered moments before the restart, within the health-check
        // interval, so the first write may find it dead and fail, retryably, without running.
        let restarted_at = Instant::now();
        let second = loop {
            match locks.try_acquire("job").await {
                Ok(guard) => break guard,
                Err(e) if e.is_retryable() && restarted_at.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        .expect("the restart lost the lease: the lock is free again");
        assert!(
            second.fencing_token() > first.fencing_token(),
            "token {} after {}: a resource checking tokens would refuse every new holder",
            second.fencing_token(),
            first.fencing_token()
        );
        assert!(!first.is_held().await.unwrap());
        assert!(!first.extend(Duration::from_secs(5)).await.unwrap());
        assert!(!first.release().await.unwrap());
        assert!(second.is_held().await.unwrap());
        assert!(second.release().await.unwrap());
        server.kill();
    })
}

/// A server of this test's own (it is flushed, and its tracking connections killed), and the
/// config of a store on it.
async fn private_server() -> (support::redis::Server, u16, RedisConfig) {
    let (server, port) = launch_standalone(&Launcher::detect()).await;
    (server, port, config_for(port))
}

/// The test settings on the standalone server on `port`.
fn config_for(port: u16) -> RedisConfig {
    with_test_settings(
        RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .build()
            .unwrap(),
    )
}

/// `SET`, `DEL`, `UNLINK` from a plain redis-rs connection, an expiry and `FLUSHALL` reach every
/// L1 through the tracking bus; another namespace hears none of it.
#[test]
fn tracking_bus_hears_writes_made_outside_the_sdk() {
    cache_conformance::block_on(async {
        let (mut server, port, config) = private_server().await;
        tracking_cases::outside_writes_reach_every_l1(&config, node_connection(port).await, true)
            .await;
        server.kill();
    })
}

#[test]
fn tracking_bus_is_armed_again_after_its_connection_drops() {
    cache_conformance::block_on(async {
        let (mut server, port, config) = private_server().await;
        tracking_cases::tracking_is_armed_again_after_its_connection_drops(
            &config,
            node_connection(port).await,
            vec![node_connection(port).await],
        )
        .await;
        server.kill();
    })
}

#[test]
fn both_buses_keep_invalidations_in_their_namespace() {
    cache_conformance::block_on(async {
        let store = store().await;
        tracking_cases::both_buses_keep_invalidations_in_their_namespace(store.config()).await
    })
}

/// A server whose ACL refuses `CLIENT TRACKING` (as some managed services do): the tracking bus
/// falls back to pub/sub, says so in the stats, and invalidations still flow.
#[test]
fn tracking_bus_falls_back_to_pub_sub_when_tracking_is_refused() {
    cache_conformance::block_on(async {
        let port = free_port();
        let mut args = base_args(port);
        args.extend(
            [
                "--user",
                "default",
                "on",
                "nopass",
                "~*",
                "&*",
                "+@all",
                "-client|tracking",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut server = Launcher::detect()
            .start(&args, &[], "Ready to accept connections")
            .await;
        support::redis::wait_for_ping(port).await;
        let config = config_for(port);
        let (a, b) = (
            tracking_cases::tracked(&config, "products").await,
            tracking_cases::tracked(&config, "products").await,
        );
        assert!(a.stats().bus_fell_back && b.stats().bus_fell_back);
        a.set("k", &1).await.unwrap();
        // Let a's announcement reach b first, or it would drop the copy b is about to make.
        tracking_cases::until_stat("b hearing a's set", &b, |s| s.bus_messages, 0).await;
        tracking_cases::hold(&b, "k", 1).await;
        a.set("k", &2).await.unwrap();
        tracking_cases::until("b seeing a's write over pub/sub", async || {
            b.get::<u32>("k").await.unwrap() == Some(2)
        })
        .await;
        server.kill();
    })
}

/// Redis is killed and restarted (empty): each tracking bus arms tracking again on the new
/// process and clears its L1, and an outside write after the restart reaches every L1.
#[test]
fn tracking_bus_is_armed_again_after_a_restart() {
    cache_conformance::block_on(async {
        let (mut server, port, config) = private_server().await;
        let (a, b) = (
            tracking_cases::tracked(&config, "products").await,
            tracking_cases::tracked(&config, "products").await,
        );
        a.set("k", &1).await.unwrap();
        for cache in [&a, &b] {
            tracking_cases::until("the set heard", async || cache.stats().bus_messages >= 1).await;
            tracking_cases::hold(cache, "k", 1).await;
        }
        server.stop().await;
        server.restart(port).await;
        for cache in [&a, &b] {
            tracking_cases::until_stat("the resync after the restart", cache, |s| s.bus_resyncs, 0)
                .await;
        }
        let mut writer = node_connection(port).await;
        for cache in [&a, &b] {
            let heard = cache.stats().bus_messages;
            tracking_cases::seed(
                &mut writer,
                &format!("{}products:k", config.key_prefix),
                2,
                &[cache],
            )
            .await;
            assert!(cache.stats().bus_messages > heard);
            tracking_cases::hold(cache, "k", 2).await;
        }
        redis::cmd("SET")
            .arg(format!("{}products:k", config.key_prefix))
            .arg(3)
            .exec_async(&mut writer)
            .await
            .unwrap();
        for cache in [&a, &b] {
            tracking_cases::until("the outside SET after the restart seen", async || {
                cache.get::<u32>("k").await.unwrap() == Some(3)
            })
            .await;
        }
        server.kill();
    })
}

/// With the `metrics` feature, every command's duration lands in OpenTelemetry's
/// `db.client.operation.duration` histogram, labelled with the operation and the store's key
/// prefix, and a failed command adds its `error.type`, also counted in `cache.errors`.
#[test]
fn redis_commands_are_timed_and_errors_counted_by_kind() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let config = cache_conformance::block_on(async { store().await.config().clone() });
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        // One thread, so that the local recorder sees every command.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use cache_core::CacheStore;
            let store = RedisStore::connect(config.clone()).await.unwrap();
            store
                .set("k", bytes::Bytes::from_static(b"text"), Default::default())
                .await
                .unwrap();
            store.get("k").await.unwrap();
            store.get("k").await.unwrap();
            store.get("missing").await.unwrap();
            let err = store.incr_by("k", 1, None).await.unwrap_err();
            assert_eq!(err.kind(), cache_core::ErrorKind::NotAnInteger);
            store.delete("k").await.unwrap();
        });
    });
    let prefix = config.key_prefix.clone();
    let mut histograms = std::collections::HashMap::new();
    let mut errors = 0;
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
        };
        assert_eq!(
            label("cache.name").as_deref(),
            Some(prefix.as_str()),
            "{key:?}"
        );
        match (key.name(), value) {
            ("db.client.operation.duration", DebugValue::Histogram(samples)) => {
                assert_eq!(label("db.system.name").as_deref(), Some("redis"));
                assert!(
                    samples
                        .iter()
                        .all(|s| s.into_inner() > 0.0 && s.into_inner() < 5.0)
                );
                let op = label("db.operation.name").unwrap();
                histograms.insert((op, label("error.type")), samples.len());
            }
            ("cache.errors", DebugValue::Counter(n)) => {
                assert_eq!(label("error.type").as_deref(), Some("not_an_integer"));
                errors += n;
            }
            (name, _) => panic!("unexpected metric {name}"),
        }
    }
    let count = |op: &str, error: Option<&str>| {
        histograms
            .get(&(op.to_owned(), error.map(str::to_owned)))
            .copied()
    };
    assert_eq!(count("get", None), Some(3), "{histograms:?}");
    assert_eq!(count("set", None), Some(1), "{histograms:?}");
    assert_eq!(
        count("incr_by", Some("not_an_integer")),
        Some(1),
        "{histograms:?}"
    );
    assert_eq!(errors, 1);
}
