//! Restarting Redis under load: while it is down every call fails fast with a retryable error, the
//! store recovers by itself once it is back, and what is written afterwards reads back intact.
//! The invalidation bus notices subscriptions that died silently, skips nodes that never answer,
//! and keeps publishing when its Cluster node dies.
//! Part of `cargo xtask conformance --backend redis`.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backend_redis::{NodeAddr, RedisBus, RedisConfig, RedisStore, RetryPolicy};
use bytes::Bytes;
use cache_core::{
    BusEvent, CacheStore, ErrorKind, Invalidation, InvalidationBus, InvalidationOp, SetOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use support::redis::{Launcher, launch_cluster, launch_standalone, with_test_settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TASKS: usize = 16;
const KEYS_PER_TASK: usize = 50;
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(300);

#[derive(Default)]
struct TaskReport {
    ok: u64,
    errors_while_down: u64,
    slowest_failure: Duration,
    bad_errors: Vec<String>,
    /// The last value each key was successfully given after the restart.
    written_after_restart: HashMap<String, Bytes>,
}

async fn load(
    store: RedisStore,
    task: usize,
    stop: Arc<AtomicBool>,
    restarted: Arc<AtomicBool>,
) -> TaskReport {
    let mut report = TaskReport::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("fault:{task}:{}", n as usize % KEYS_PER_TASK);
        let value = Bytes::from(format!("task {task} write {n}"));
        let started = Instant::now();
        let result = async {
            store.set(&key, value.clone(), SetOptions::new()).await?;
            store.get(&key).await
        }
        .await;
        match result {
            Ok(_) => {
                report.ok += 1;
                if restarted.load(Ordering::Relaxed) {
                    report.written_after_restart.insert(key, value);
                }
            }
            Err(e) => {
                let took = started.elapsed();
                report.errors_while_down += 1;
                report.slowest_failure = report.slowest_failure.max(took);
                if !e.is_retryable()
                    || !matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)
                {
                    report.bad_errors.push(e.to_string());
                }
                // Writes that fail may or may not have happened; forget the key's expected value.
                report.written_after_restart.remove(&key);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    report
}

/// A standalone server this test may kill and restart, and a store on it.
async fn server_of_our_own() -> (support::redis::Server, u16, RedisStore) {
    let launcher = Launcher::detect();
    let (server, port) = launch_standalone(&launcher).await;
    let config = RedisConfig::builder()
        .standalone("127.0.0.1", port)
        .command_timeout(COMMAND_TIMEOUT)
        .build()
        .unwrap();
    let store = RedisStore::connect(with_test_settings(config))
        .await
        .unwrap();
    (server, port, store)
}

#[test]
fn store_recovers_after_redis_restarts_under_load() {
    cache_conformance::block_on(async {
        let (mut server, port, store) = server_of_our_own().await;

        let stop = Arc::new(AtomicBool::new(false));
        let restarted = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| tokio::spawn(load(store.clone(), t, stop.clone(), restarted.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Down: stop the server and keep the load running against nothing.
        server.stop().await;
        let down_at = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // A call made while down fails fast and says retrying can help.
        let started = Instant::now();
        let err = store.get("fault:probe").await.expect_err("Redis is down");
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            started.elapsed() <= COMMAND_TIMEOUT + SLACK,
            "a call while down took {:?}",
            started.elapsed()
        );

        // Back: same port, empty data set.
        server.restart(port).await;
        let back_at = Instant::now();
        let mut recovered = None;
        while back_at.elapsed() < Duration::from_secs(5) {
            if store.ping().await.is_ok() {
                recovered = Some(back_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let recovered =
            recovered.expect("the store did not recover within 5 s of Redis coming back");
        restarted.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop.store(true, Ordering::Relaxed);

        let mut ok = 0;
        let mut failures = 0;
        let mut slowest = Duration::ZERO;
        let mut expected = HashMap::new();
        for task in tasks {
            let report = task.await.expect("a load task panicked");
            assert!(
                report.bad_errors.is_empty(),
                "non-retryable errors: {:?}",
                report.bad_errors
            );
            ok += report.ok;
            failures += report.errors_while_down;
            slowest = slowest.max(report.slowest_failure);
            expected.extend(report.written_after_restart);
        }
        eprintln!(
            "fault test: {ok} ok calls, {failures} failed while down (slowest failure {slowest:?}), \
             down for {:?}, recovered {recovered:?} after Redis answered, {} keys written after recovery",
            back_at - down_at,
            expected.len()
        );
        assert!(failures > 0, "no call failed while Redis was down");
        assert!(
            slowest <= 2 * COMMAND_TIMEOUT + SLACK,
            "a failing set+get pair took {slowest:?} (two commands of at most {COMMAND_TIMEOUT:?})"
        );
        assert!(!expected.is_empty(), "nothing was written after recovery");

        // Everything written after recovery reads back intact, in one batch and key by key.
        let keys: Vec<&str> = expected.keys().map(String::as_str).collect();
        let values = store.get_many(&keys).await.unwrap();
        for (key, value) in keys.iter().zip(values) {
            assert_eq!(value.as_ref(), expected.get(*key), "key {key}");
        }
        let more: Vec<(String, Bytes)> = (0..200)
            .map(|i| {
                (
                    format!("fault:after:{i}"),
                    Bytes::from(vec![i as u8; 100 + i]),
                )
            })
            .collect();
        for (key, value) in &more {
            store
                .set(key, value.clone(), SetOptions::new())
                .await
                .unwrap();
        }
        for (key, value) in &more {
            assert_eq!(
                store.get(key).await.unwrap().as_ref(),
                Some(value),
                "key {key}"
            );
        }
        store.clear("fault:").await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// The invalidation bus under network faults.

/// How long a bus may take to notice a fault and recover; generous for a loaded 2-core machine.
const BUS_DEADLINE: Duration = Duration::from_secs(15);

fn invalidation(key: &str) -> Invalidation {
    Invalidation::new("fault-test", InvalidationOp::Set, key)
}

/// Waits until `events` yields a Resync (skipping messages) before `deadline`; panics with `what`.
async fn wait_for_resync(events: &mut BoxStream<'static, BusEvent>, deadline: Instant, what: &str) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.next()).await {
            Ok(Some(BusEvent::Resync)) => return,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{what}: the bus stream ended"),
            Err(_) => panic!("{what}: no Resync within {BUS_DEADLINE:?}"),
        }
    }
}

/// Publishes `key` through `publisher` until `events` hears it, before `deadline` (a publish may
/// race a resubscription); panics with `what`.
async fn wait_for_message(
    publisher: &RedisBus,
    events: &mut BoxStream<'static, BusEvent>,
    key: &str,
    deadline: Instant,
    what: &str,
) {
    loop {
        assert!(Instant::now() < deadline, "{what}: never heard {key:?}");
        publisher.publish(&invalidation(key)).await.unwrap();
        let wait =
            Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now()));
        if let Ok(Some(BusEvent::Message(m))) = tokio::time::timeout(wait, events.next()).await {
            if m.key == key {
                return;
            }
        }
    }
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`. `freeze` makes every connection open so far
/// go silent, as when the server's host dies: nothing more is forwarded either way, and nothing is
/// closed. Connections made later are forwarded normally (the host came back).
struct Proxy {
    port: u16,
    connections: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(std::sync::Mutex::new(Vec::<Arc<AtomicBool>>::new()));
        let registry = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let frozen = Arc::new(AtomicBool::new(false));
                registry.lock().unwrap().push(frozen.clone());
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(Self::pump(client_read, server_write, frozen.clone()));
                tokio::spawn(Self::pump(server_read, client_write, frozen));
            }
        });
        Proxy { port, connections }
    }

    /// Copies `from` to `to` until either ends, or until frozen: then it holds both halves open
    /// and forwards nothing, for ever.
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<AtomicBool>,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let read = from.read(&mut buf).await;
            if frozen.load(Ordering::SeqCst) {
                let _held = (from, to);
                std::future::pending::<()>().await;
                return;
            }
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn freeze(&self) {
        for frozen in self.connections.lock().unwrap().iter() {
            frozen.store(true, Ordering::SeqCst);
        }
    }
}

/// A subscription whose server side vanished without FIN or RST is noticed (by its idle PING),
/// replaced, and reported with a Resync; messages flow again afterwards.
#[test]
fn bus_resyncs_when_its_subscription_goes_silent() {
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (_server, port) = launch_standalone(&launcher).await;
        let proxy = Proxy::start(port).await;
        let config = |port| {
            with_test_settings(
                RedisConfig::builder()
                    .standalone("127.0.0.1", port)
                    .build()
                    .unwrap(),
            )
        };
        let via_proxy = config(proxy.port);
        let mut direct = config(port);
        direct.key_prefix = via_proxy.key_prefix.clone();
        let subscriber = RedisBus::connect(&via_proxy, "silent").await.unwrap();
        let publisher = RedisBus::connect(&direct, "silent").await.unwrap();
        let mut events = subscriber.subscribe().await.unwrap();
        let deadline = Instant::now() + BUS_DEADLINE;
        wait_for_message(
            &publisher,
            &mut events,
            "before",
            deadline,
            "before the freeze",
        )
        .await;

        proxy.freeze();
        let frozen_at = Instant::now();
        publisher.publish(&invalidation("lost")).await.unwrap();
        wait_for_resync(&mut events, frozen_at + BUS_DEADLINE, "after the freeze").await;
        eprintln!(
            "silent subscription replaced {:?} after the freeze",
            frozen_at.elapsed()
        );
        let deadline = Instant::now() + BUS_DEADLINE;
        wait_for_message(
            &publisher,
            &mut events,
            "after",
            deadline,
            "after the Resync",
        )
        .await;
    });
}

/// Accepts TCP connections on 127.0.0.1 and never answers nor closes them.
async fn silent_node() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// A node that accepts TCP and never answers, listed first, costs subscribe() its timeouts only: it
/// moves on to the next node.
#[test]
fn bus_subscribe_skips_a_node_that_never_answers() {
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (_server, port) = launch_standalone(&launcher).await;
        let silent = silent_node().await;
        // Cluster mode, so the bus has a list of nodes to try in turn; any node serves pub/sub.
        let config = with_test_settings(
            RedisConfig::builder()
                .cluster([
                    NodeAddr::new("127.0.0.1", silent),
                    NodeAddr::new("127.0.0.1", port),
                ])
                .retry(RetryPolicy::new(
                    0,
                    Duration::from_millis(10),
                    Duration::from_millis(50),
                ))
                .build()
                .unwrap(),
        );
        let bus = tokio::time::timeout(BUS_DEADLINE, RedisBus::connect(&config, "skip"))
            .await
            .expect("RedisBus::connect hung on the silent node")
            .unwrap();
        let started = Instant::now();
        let mut events = tokio::time::timeout(BUS_DEADLINE, bus.subscribe())
            .await
            .expect("subscribe() hung on the silent node")
            .unwrap();
        eprintln!("subscribed past the silent node in {:?}", started.elapsed());
        let deadline = Instant::now() + BUS_DEADLINE;
        wait_for_message(&bus, &mut events, "hello", deadline, "after subscribing").await;
    });
}

/// In Cluster mode, when the node the publisher uses dies, publishing moves to another node: the
/// first publish after the subscriber resynced succeeds and is heard.
#[test]
fn bus_publisher_moves_off_a_dead_cluster_node() {
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut servers, ports) = launch_cluster(&launcher).await;
        let config = with_test_settings(
            RedisConfig::builder()
                .cluster(ports.iter().map(|&p| NodeAddr::new("127.0.0.1", p)))
                .build()
                .unwrap(),
        );
        // Both connect to the first seed node, which is the one that dies.
        let publisher = RedisBus::connect(&config, "moves").await.unwrap();
        let subscriber = RedisBus::connect(&config, "moves").await.unwrap();
        let mut events = subscriber.subscribe().await.unwrap();
        let deadline = Instant::now() + BUS_DEADLINE;
        wait_for_message(
            &publisher,
            &mut events,
            "before",
            deadline,
            "before the kill",
        )
        .await;

        servers[0].stop().await;
        let killed_at = Instant::now();
        wait_for_resync(&mut events, killed_at + BUS_DEADLINE, "after the kill").await;
        // The publisher still holds its connection to the dead node: this publish must move.
        publisher
            .publish(&invalidation("after"))
            .await
            .expect("the first publish after the node died");
        loop {
            let left = (killed_at + BUS_DEADLINE).saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.next()).await {
                Ok(Some(BusEvent::Message(m))) if m.key == "after" => break,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the bus stream ended"),
                Err(_) => panic!("the subscriber never heard the publish after the kill"),
            }
        }
        for server in &mut servers {
            server.kill();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Idle connections through a restart.

/// One call of each kind, each made by a store of its own whose connection sat idle while Redis
/// was killed and restarted: every one must reconnect and succeed, not fail with the dead
/// connection's "broken pipe". Writes that may not run twice (`incr_by`, a conditional set, a
/// compare-and-swap) are among them, and must have run exactly once.
#[test]
fn idle_stores_first_call_of_each_kind_succeeds_after_a_restart() {
    const KINDS: &[&str] = &[
        "ping",
        "get",
        "set",
        "set_if_absent",
        "get_many",
        "set_many",
        "delete",
        "delete_many",
        "exists",
        "ttl",
        "expire",
        "persist",
        "incr_by",
        "compare_and_swap",
        "scan",
        "clear",
    ];
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut server, port) = launch_standalone(&launcher).await;
        let config = with_test_settings(
            RedisConfig::builder()
                .standalone("127.0.0.1", port)
                .command_timeout(COMMAND_TIMEOUT)
                .build()
                .unwrap(),
        );
        let mut stores = Vec::new();
        for _ in KINDS {
            let store = RedisStore::connect(config.clone()).await.unwrap();
            store.ping().await.unwrap();
            stores.push(store);
        }

        server.stop().await;
        server.restart(port).await;
        // Idle a while with the server back, as a quiet service would.
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let mut failures = Vec::new();
        for (kind, store) in KINDS.iter().zip(&stores) {
            let key = format!("idle:{kind}");
            let v = || Bytes::from_static(b"v");
            let started = Instant::now();
            let result = match *kind {
                "ping" => store.ping().await.map(drop),
                "get" => store.get(&key).await.map(drop),
                "set" => store.set(&key, v(), SetOptions::new()).await.map(drop),
                "set_if_absent" => store
                    .set(&key, v(), SetOptions::new().if_absent())
                    .await
                    .map(|set| assert!(set, "the conditional set ran twice")),
                "get_many" => store.get_many(&[&key, "idle:other"]).await.map(drop),
                "set_many" => store.set_many(&[(&key, v())], None).await,
                "delete" => store.delete(&key).await.map(drop),
                "delete_many" => store.delete_many(&[&key]).await.map(drop),
                "exists" => store.exists(&key).await.map(drop),
                "ttl" => store.ttl(&key).await.map(drop),
                "expire" => store.expire(&key, Duration::from_secs(5)).await.map(drop),
                "persist" => store.persist(&key).await.map(drop),
                "incr_by" => store
                    .incr_by(&key, 1, None)
                    .await
                    .map(|n| assert_eq!(n, 1, "the increment ran twice")),
                "compare_and_swap" => store
                    .compare_and_swap(&key, None, Some(v()), None)
                    .await
                    .map(|swapped| assert!(swapped, "the compare-and-swap ran twice")),
                "scan" => store
                    .scan("idle:", cache_core::ScanCursor::start(), 10)
                    .await
                    .map(drop),
                "clear" => store.clear("idle:none:").await.map(drop),
                other => unreachable!("{other}"),
            };
            if let Err(e) = result {
                failures.push(format!("{kind}: {e}"));
            } else {
                assert!(
                    started.elapsed() <= COMMAND_TIMEOUT + SLACK,
                    "{kind} took {:?}, more than the command timeout",
                    started.elapsed()
                );
            }
        }
        assert!(
            failures.is_empty(),
            "first calls after the restart failed: {failures:#?}"
        );
        stores[0].clear("idle:").await.unwrap();
    });
}

/// incr_by, compare_and_swap, set if absent, get and delete from 20 tasks on 6 keys stay
/// linearizable through a restart that empties Redis. A call that failed may or may not have
/// taken effect (the checker tries both), except one that began after the server was gone and
/// ended before it was back: it cannot have reached a server.
#[test]
fn atomic_operations_stay_linearizable_through_a_restart() {
    use cache_conformance::linearizable::{
        Answer, Call, Event, Recorder, check_history, random_call,
    };

    cache_conformance::block_on(async {
        let (mut server, port, store) = server_of_our_own().await;
        let keys: Vec<String> = (0..6).map(|i| format!("register{i}")).collect();
        let recorder = Recorder::new();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, keys, recorder) = (store.clone(), keys.clone(), recorder.clone());
                tokio::spawn(async move {
                    let mut events = Vec::new();
                    for _ in 0..24 {
                        let key = &keys[fastrand::usize(..keys.len())];
                        events.push(recorder.call(&store, key, random_call()).await);
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(10..40))).await;
                    }
                    events
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let stopping = recorder.tick();
        server.stop().await;
        let gone = recorder.tick();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let restarting = recorder.tick();
        server.restart(port).await;
        let back = recorder.tick();

        let mut history: Vec<Event> = Vec::new();
        for task in tasks {
            history.extend(task.await.unwrap());
        }
        let failed = history
            .iter()
            .filter(|e| e.answer == Answer::Unknown)
            .count();
        let succeeded_after = history
            .iter()
            .filter(|e| e.answer != Answer::Unknown && e.invoked > back)
            .count();
        history.retain(|e| {
            let unknown = e.answer == Answer::Unknown;
            let unreachable = e.invoked > gone && e.completed < restarting;
            !(unknown && (e.call == Call::Get || unreachable))
        });
        history.extend(keys.iter().map(|key| Event {
            key: key.clone(),
            call: Call::Wipe,
            answer: Answer::Wiped,
            invoked: stopping,
            completed: back,
        }));
        assert!(
            failed > 0,
            "no call failed: the restart happened outside the history"
        );
        assert!(succeeded_after > 0, "no call succeeded after the restart");
        if let Err(why) = check_history(&history) {
            panic!("{why}");
        }
        store.clear("").await.unwrap();
    })
}
