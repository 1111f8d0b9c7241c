//! Failovers on a real Cluster of 3 primaries with 1 replica each, while one `RedisStore` stays
//! connected. Right after each failover, multi-key operations across slots (`delete_many` of
//! 3 000 keys, `clear` of a prefix, `scan`, `get_many`) must each reach every key or fail with a
//! retryable error, never succeed having missed a shard, and the store must work again on the
//! new topology within a bounded time, without a restart.
//! Part of `cargo xtask conformance --backend redis-cluster`.

mod support;
mod tracking_cases;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use backend_redis::{NodeAddr, RedisConfig, RedisStore};
use cache_core::{Bytes, CacheStore, ScanCursor};
use support::redis::{
    Launcher, Server, launch_cluster_with_replicas, node_connection, role, wait_for_replication,
    with_test_settings,
};

const KEYS: usize = 3_000;
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long the store may take to work again after a failover.
const RECOVERY: Duration = Duration::from_secs(15);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(500);

/// Runs `op` until it succeeds, within [`RECOVERY`]: every failure must be retryable, and no
/// attempt may outlast `bound`. Returns the value and how many attempts failed.
async fn until_ok<T, F, Fut>(what: &str, bound: Duration, mut op: F) -> (T, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = cache_core::Result<T>>,
{
    let started = Instant::now();
    let mut failed = 0;
    loop {
        let attempt = Instant::now();
        let result = op().await;
        assert!(
            attempt.elapsed() <= bound + SLACK,
            "{what} took {:?}, more than its bound {bound:?}",
            attempt.elapsed()
        );
        match result {
            Ok(value) => return (value, failed),
            Err(e) => {
                assert!(e.is_retryable(), "{what} failed for good: {e}");
                failed += 1;
                assert!(
                    started.elapsed() < RECOVERY,
                    "{what} still failing {RECOVERY:?} after the failover: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn scan_all(store: &RedisStore, prefix: &str) -> cache_core::Result<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    let mut cursor = ScanCursor::start();
    loop {
        let page = store.scan(prefix, cursor, 500).await?;
        keys.extend(page.keys);
        match page.next {
            Some(next) => cursor = next,
            None => return Ok(keys),
        }
    }
}

/// Writes the round's keys, runs `failover`, then at once every multi-key operation, and checks
/// that each saw every key.
async fn round(store: &RedisStore, name: &str, failover: impl std::future::Future<Output = ()>) {
    let prefix = format!("{name}:");
    let after_prefix = format!("{name}:after:");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("{name}:{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let entries: Vec<(&str, Bytes)> = refs
        .iter()
        .map(|k| (*k, Bytes::from_static(b"v")))
        .collect();
    until_ok("set_many before", RECOVERY, || {
        store.set_many(&entries, None)
    })
    .await;

    failover.await;

    // Each of these runs at once; a retryable failure is retried, a success must be complete.
    let multi = 4 * COMMAND_TIMEOUT;
    let (found, f1) = until_ok("get_many", multi, || store.get_many(&refs)).await;
    assert_eq!(
        found.iter().filter(|v| v.is_some()).count(),
        KEYS,
        "{name}: get_many missed keys"
    );
    let (scanned, f2) = until_ok("scan", RECOVERY, || scan_all(store, &prefix)).await;
    assert_eq!(scanned.len(), KEYS, "{name}: scan missed keys");
    let (first_half, f3) = until_ok("delete_many", multi, || {
        store.delete_many(&refs[..KEYS / 2])
    })
    .await;
    let (rest, f4) = until_ok("clear", RECOVERY, || store.clear(&prefix)).await;
    // A retried delete may find keys its failed attempt deleted: together they found them all.
    if f3 == 0 {
        assert_eq!(
            first_half,
            (KEYS / 2) as u64,
            "{name}: delete_many missed keys"
        );
    }
    if f3 == 0 && f4 == 0 {
        assert_eq!(rest, (KEYS - KEYS / 2) as u64, "{name}: clear missed keys");
    }
    let (left, _) = until_ok("get_many after", multi, || store.get_many(&refs)).await;
    assert!(
        left.iter().all(Option::is_none),
        "{name}: keys survived delete_many and clear"
    );

    // Afterwards single-key and multi-key calls work, each within its timeout.
    for i in 0..20 {
        let key = format!("{name}:after:{i}");
        until_ok("set", COMMAND_TIMEOUT, || {
            store.set(&key, Bytes::from_static(b"x"), Default::default())
        })
        .await;
        let (value, _) = until_ok("get", COMMAND_TIMEOUT, || store.get(&key)).await;
        assert_eq!(value.as_deref(), Some(&b"x"[..]));
    }
    until_ok("ping", multi, || store.ping()).await;
    let (cleared, _) = until_ok("clear after", RECOVERY, || store.clear(&after_prefix)).await;
    assert_eq!(cleared, 20);
    eprintln!("{name}: retried get_many {f1}, scan {f2}, delete_many {f3}, clear {f4} times");
}

/// `CLUSTER FAILOVER` on `replica`, waiting until it is a primary.
async fn promote(replica: u16) {
    redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .exec_async(&mut node_connection(replica).await)
        .await
        .unwrap();
    for _ in 0..200 {
        if role(replica).await == "master" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replica on {replica} was never promoted");
}

/// The tests each start 6 servers; one at a time keeps a loaded CI machine within the servers'
/// startup timeout.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `test` on a Cluster of its own (3 primaries with a replica each), given its servers (alive
/// until `test` ends) and the ports of its primaries and replicas, pairwise; one such test at a
/// time.
fn on_replicated_cluster(test: impl AsyncFnOnce(&mut [Server], Vec<u16>, Vec<u16>)) {
    let _turn = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache_conformance::block_on(async {
        let (mut servers, primaries, replicas) =
            launch_cluster_with_replicas(&Launcher::detect()).await;
        test(&mut servers, primaries, replicas).await
    })
}

async fn store_for(primaries: &[u16]) -> RedisStore {
    let config = RedisConfig::builder()
        .cluster(primaries.iter().map(|&p| NodeAddr::new("127.0.0.1", p)))
        .command_timeout(COMMAND_TIMEOUT)
        .build()
        .unwrap();
    RedisStore::connect(with_test_settings(config))
        .await
        .unwrap()
}

#[test]
fn multi_key_operations_reach_every_shard_through_five_failovers() {
    on_replicated_cluster(async |_, primaries, replicas| {
        let store = store_for(&primaries).await;
        // Each failover swaps a pair's roles; the next one of that pair promotes the other node.
        let mut pairs: Vec<(u16, u16)> = primaries
            .iter()
            .copied()
            .zip(replicas.iter().copied())
            .collect();
        for n in 0..5 {
            let (primary, replica) = pairs[n % 3];
            round(&store, &format!("failover{n}"), promote(replica)).await;
            pairs[n % 3] = (replica, primary);
        }
    })
}

#[test]
fn multi_key_operations_reach_every_shard_after_a_primary_dies() {
    on_replicated_cluster(async |servers, primaries, replicas| {
        let store = store_for(&primaries).await;
        // The primary serving slot 0 dies; its replica takes over after the node timeout.
        let kill = async {
            // Redis replicates asynchronously: only writes the replica has are expected to survive.
            wait_for_replication(primaries[0], replicas[0]).await;
            servers[0].stop().await;
            for _ in 0..400 {
                if role(replicas[0]).await == "master" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the replica on {} never took over", replicas[0]);
        };
        round(&store, "killed", kill).await;
    })
}

/// The tracking bus follows a `CLUSTER FAILOVER`: it arms tracking on the promoted node and clears
/// the L1, then hears outside writes to keys of every shard.
#[test]
fn tracking_bus_is_armed_on_the_new_primary_after_a_failover() {
    on_replicated_cluster(async |_, primaries, replicas| {
        let config = store_for(&primaries).await.config().clone();
        let writer = support::redis::cluster_writer(&primaries).await;
        tracking_cases::tracking_follows_a_failover(
            &config,
            writer.clone(),
            writer,
            promote(replicas[0]),
        )
        .await;
    })
}
