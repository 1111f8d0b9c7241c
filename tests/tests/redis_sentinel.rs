//! One Redis master behind Sentinel opts in to the conformance suite
//! (`cargo xtask conformance --backend redis-sentinel`).

mod patterns_cases;
mod support;
mod tracking_cases;

use std::time::{Duration, Instant};

use backend_redis::{NodeAddr, RedisBus, RedisConfig, RedisMode, RedisStore};
use bytes::Bytes;
use cache_core::{
    BusEvent, CacheStore, ErrorKind, Invalidation, InvalidationBus, InvalidationOp, SetOptions,
};
use futures::StreamExt;
use support::redis::{
    Launcher, MASTER_NAME, base_args, free_port, launch_sentinel, sentinel_client, sentinel_config,
    wait_for_ping,
};

async fn redis_sentinel() -> support::redis::RedisFixture {
    support::redis::sentinel().await
}

cache_conformance::conformance_tests!(redis_sentinel);

/// The config of the shared fixture's store, to vary in one test.
async fn fixture_config() -> RedisConfig {
    support::redis::sentinel()
        .await
        .redis_store()
        .config()
        .clone()
}

/// Tiered instances on a Sentinel-found master stay coherent through the Redis bus.
#[test]
fn tiered_instances_stay_coherent() {
    cache_conformance::block_on(async {
        let store = support::redis::sentinel().await.redis_store().clone();
        patterns_cases::tiered_instances_stay_coherent(store).await
    })
}

/// After `SENTINEL FAILOVER`, the store finds the new master by itself (the old one turns replica and
/// answers writes with READONLY) and keeps serving reads and writes.
#[test]
fn store_follows_the_master_after_a_failover() {
    cache_conformance::block_on(async {
        let (_servers, master_port, replica_port, sentinel_port) = launch_master_replica().await;

        let config = sentinel_config(sentinel_port)
            .key_prefix(format!("failover{:08x}:", fastrand::u32(..)))
            .command_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let store = RedisStore::connect(config.clone()).await.unwrap();
        assert_eq!(store.sentinel_master().unwrap().port, master_port);
        let bus = RedisBus::connect(&config, "failover-bus").await.unwrap();
        let mut events = bus.subscribe().await.unwrap();
        store
            .set("before", Bytes::from_static(b"1"), SetOptions::new())
            .await
            .unwrap();

        // Replication is asynchronous: wait until the replica holds the key before failing over.
        let prefix = store.config().key_prefix.clone();
        let replica = redis::Client::open(("127.0.0.1", replica_port)).unwrap();
        let mut replica = replica.get_multiplexed_async_connection().await.unwrap();
        let replicated = Instant::now();
        loop {
            // The replica answers LOADING while it takes its first copy of the data set.
            let exists: redis::RedisResult<u32> = redis::cmd("EXISTS")
                .arg(format!("{prefix}before"))
                .query_async(&mut replica)
                .await;
            if exists == Ok(1) {
                break;
            }
            assert!(
                replicated.elapsed() < Duration::from_secs(10),
                "the replica never synced: {exists:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        fail_over(sentinel_port, replica_port).await;

        // Writes fail for a moment (READONLY or a dropped connection), then reach the new master.
        let switched = Instant::now();
        let mut n = 0u32;
        loop {
            n += 1;
            let ok = store
                .set("after", Bytes::from(n.to_string()), SetOptions::new())
                .await
                .is_ok();
            if ok
                && store
                    .sentinel_master()
                    .is_some_and(|m| m.port == replica_port)
            {
                break;
            }
            assert!(
                switched.elapsed() < Duration::from_secs(25),
                "the store never switched to the new master"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "switched to the new master {:?} after the failover",
            switched.elapsed()
        );
        assert_eq!(
            store.get("after").await.unwrap().as_deref(),
            Some(n.to_string().as_bytes())
        );
        assert_eq!(
            store.get("before").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );

        // The bus lost its subscription to the old master: it says so (Resync), then hears messages
        // published through the new one.
        let message = Invalidation::new("other", InvalidationOp::Set, "k");
        let heard = tokio::time::timeout(Duration::from_secs(20), async {
            let mut resynced = false;
            loop {
                // Publishing may fail while the publisher finds the new master.
                let _ = bus.publish(&message).await;
                match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
                    Ok(Some(BusEvent::Resync)) => resynced = true,
                    Ok(Some(BusEvent::Message(m))) if resynced => return m,
                    Ok(Some(_)) | Err(_) => {}
                    Ok(None) => panic!("the bus stream ended"),
                }
            }
        })
        .await
        .expect("the bus resynced and heard a message after the failover");
        assert_eq!(heard, message);
        store.clear("").await.unwrap();
    });
}

/// A master, its replica and a Sentinel watching them, of the calling test's own. Returns the
/// servers and the ports of the master, the replica and the Sentinel.
async fn launch_master_replica() -> (Vec<support::redis::Server>, u16, u16, u16) {
    let launcher = Launcher::detect();
    let (master_port, replica_port) = (free_port(), free_port());
    let ready = "Ready to accept connections";
    let master = launcher.start(&base_args(master_port), &[], ready).await;
    let mut replica_args = base_args(replica_port);
    replica_args.extend([
        "--replicaof".into(),
        "127.0.0.1".into(),
        master_port.to_string(),
    ]);
    let replica = launcher.start(&replica_args, &[], ready).await;
    wait_for_ping(master_port).await;
    wait_for_ping(replica_port).await;
    let (sentinel, sentinel_port) = launch_sentinel(&launcher, master_port).await;
    (
        vec![master, replica, sentinel],
        master_port,
        replica_port,
        sentinel_port,
    )
}

/// `SENTINEL FAILOVER`, then waits until the Sentinel names the replica on `replica_port`.
async fn fail_over(sentinel_port: u16, replica_port: u16) {
    // Force a failover; Sentinel may need a moment to discover the replica first.
    let sentinel = sentinel_client(sentinel_port);
    let mut conn = sentinel.get_multiplexed_async_connection().await.unwrap();
    let started = Instant::now();
    loop {
        let answer: redis::RedisResult<()> = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await;
        match answer {
            Ok(()) => break,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                eprintln!("SENTINEL FAILOVER not yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("SENTINEL FAILOVER kept failing: {e}"),
        }
    }
    // Wait until Sentinel names the replica as master.
    loop {
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await
            .unwrap();
        if addr.is_some_and(|(_, port)| port == replica_port) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the failover never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tracking bus on the master the Sentinels name: outside writes, an expiry and `FLUSHALL`
/// reach every L1; after `SENTINEL FAILOVER` it arms tracking on the new master, clears the L1,
/// and hears outside writes there.
#[test]
fn tracking_bus_hears_outside_writes_and_follows_a_failover() {
    cache_conformance::block_on(async {
        let (_servers, master_port, replica_port, sentinel_port) = launch_master_replica().await;
        let config = sentinel_config(sentinel_port)
            .key_prefix(format!("tracking{:08x}:", fastrand::u32(..)))
            .command_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let plain = async |port| support::redis::node_connection(port).await;
        tracking_cases::outside_writes_reach_every_l1(&config, plain(master_port).await, true)
            .await;
        tracking_cases::tracking_follows_a_failover(
            &config,
            plain(master_port).await,
            // Reconnects: Sentinel drops the promoted node's clients.
            redis::Client::open(("127.0.0.1", replica_port))
                .unwrap()
                .get_connection_manager()
                .await
                .unwrap(),
            fail_over(sentinel_port, replica_port),
        )
        .await;
    })
}

/// The Sentinels have a password: without it, or with a wrong one, `connect` fails at once with an
/// authentication error naming the Sentinel, never with the password in the message.
#[test]
fn a_wrong_sentinel_password_is_an_authentication_error() {
    cache_conformance::block_on(async {
        let config = fixture_config().await;
        for password in [None, Some("not-the-sentinel-password")] {
            let mut wrong = config.clone();
            wrong.sentinel_password = password.map(str::to_owned);
            let err = RedisStore::connect(wrong)
                .await
                .expect_err("the Sentinel must refuse");
            assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
            assert!(err.to_string().contains("sentinel"), "{err}");
            assert!(
                !err.to_string().contains("not-the-sentinel-password"),
                "{err}"
            );
        }
    });
}

/// Sentinels are asked in turn: one that is down (nothing listens on its port) is skipped, and only
/// when none answers does `connect` fail, with a connection error naming the last one asked.
#[test]
fn a_sentinel_that_is_down_is_skipped() {
    cache_conformance::block_on(async {
        let config = fixture_config().await;
        let RedisMode::Sentinel {
            sentinels,
            master_name,
        } = &config.mode
        else {
            panic!("the fixture is in sentinel mode");
        };
        let (_refusing, port) = support::redis::refusing_port();
        let down = NodeAddr::new("127.0.0.1", port);

        let mut first_down = config.clone();
        first_down.mode = RedisMode::Sentinel {
            sentinels: [down.clone()]
                .into_iter()
                .chain(sentinels.clone())
                .collect(),
            master_name: master_name.clone(),
        };
        let store = RedisStore::connect(first_down).await.unwrap();
        store
            .set(
                "behind-a-dead-sentinel",
                Bytes::from_static(b"1"),
                SetOptions::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .get("behind-a-dead-sentinel")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"1"[..])
        );
        store.clear("").await.unwrap();

        let mut all_down = config.clone();
        all_down.mode = RedisMode::Sentinel {
            sentinels: vec![down.clone()],
            master_name: master_name.clone(),
        };
        let err = RedisStore::connect(all_down)
            .await
            .expect_err("no Sentinel answers");
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(err.to_string().contains(&down.to_string()), "{err}");
    });
}

/// A Sentinel that accepts connections and never answers is skipped after the command timeout,
/// and with nothing else to ask, finding the master fails within its bound instead of hanging.
#[test]
fn a_sentinel_that_never_answers_is_skipped_within_the_timeout() {
    cache_conformance::block_on(async {
        let mut config = fixture_config().await;
        config.command_timeout = std::time::Duration::from_millis(500);
        let RedisMode::Sentinel {
            sentinels,
            master_name,
        } = config.mode.clone()
        else {
            panic!("the fixture is in sentinel mode");
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = NodeAddr::new("127.0.0.1", listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        // Connecting, then finding the master again (as after a failover), is bounded by the
        // connect and command timeouts of the silent Sentinel, then answered by the next.
        let bound = config.connect_timeout
            + 2 * config.command_timeout
            + std::time::Duration::from_millis(500);

        let mut silent_first = config.clone();
        silent_first.mode = RedisMode::Sentinel {
            sentinels: std::iter::once(silent.clone()).chain(sentinels).collect(),
            master_name: master_name.clone(),
        };
        let started = std::time::Instant::now();
        let store = RedisStore::connect(silent_first).await.unwrap();
        assert!(
            started.elapsed() <= bound,
            "connecting took {:?}",
            started.elapsed()
        );
        store.ping().await.unwrap();

        let mut only_silent = config.clone();
        only_silent.mode = RedisMode::Sentinel {
            sentinels: vec![silent.clone()],
            master_name,
        };
        let started = std::time::Instant::now();
        let err = RedisStore::connect(only_silent)
            .await
            .expect_err("the only Sentinel never answers");
        assert!(
            started.elapsed() <= bound,
            "giving up took {:?}",
            started.elapsed()
        );
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains(&silent.to_string()), "{err}");
    });
}

/// A TLS-only Sentinel in front of a TLS-only master (mutual TLS): the store asks the Sentinel over
/// TLS (`sentinel_tls`) and reaches the master over TLS; without `sentinel_tls` it cannot connect.
#[test]
fn sentinel_and_master_over_tls() {
    cache_conformance::block_on(async {
        let (_servers, config) = support::redis::launch_tls_sentinel(&Launcher::detect()).await;
        let store = RedisStore::connect(config.clone()).await.unwrap();
        store
            .set("over-tls", Bytes::from_static(b"1"), SetOptions::new())
            .await
            .unwrap();
        assert_eq!(
            store.get("over-tls").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        store.clear("").await.unwrap();

        let mut plain = config;
        plain.sentinel_tls = false;
        let err = RedisStore::connect(plain)
            .await
            .expect_err("plain TCP to a TLS-only Sentinel");
        assert!(err.to_string().contains("sentinel"), "{err}");
    });
}
