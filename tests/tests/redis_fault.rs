//! Restarting Redis under load: while it is down every call fails fast with a retryable error, the
//! store recovers by itself once it is back, and what is written afterwards reads back intact.
//! Part of `cargo xtask conformance --backend redis`.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backend_redis::{RedisConfig, RedisStore};
use bytes::Bytes;
use cache_core::{CacheStore, ErrorKind, SetOptions};
use support::redis::{Launcher, launch_standalone, with_test_settings};

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

#[test]
fn store_recovers_after_redis_restarts_under_load() {
    cache_conformance::block_on(async {
        let launcher = Launcher::detect();
        let (mut server, port) = launch_standalone(&launcher).await;
        let config = RedisConfig::builder()
            .standalone("127.0.0.1", port)
            .command_timeout(COMMAND_TIMEOUT)
            .build()
            .unwrap();
        let store = RedisStore::connect(with_test_settings(config))
            .await
            .unwrap();

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
