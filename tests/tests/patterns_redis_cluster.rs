//! The cache-core patterns (lock, rate limiter, tiered cache with the Redis invalidation bus) on a
//! 3-master Redis Cluster.

mod patterns_cases;
mod support;
mod tracking_cases;

use std::sync::Arc;

async fn store() -> backend_redis::RedisStore {
    support::redis::cluster().await.redis_store().clone()
}

patterns_cases::store_pattern_tests!(Arc::new(store().await));

#[test]
fn tiered_instances_stay_coherent() {
    cache_conformance::block_on(async {
        patterns_cases::tiered_instances_stay_coherent(store().await).await
    })
}

/// On a Cluster of this test's own (it is flushed, and its tracking connections killed): the
/// tracking bus is armed on every primary, so outside writes to keys of every shard, an expiry
/// and `FLUSHALL` reach every L1; then Redis drops the tracking connections on every node, and
/// the bus arms them again.
#[test]
fn tracking_bus_hears_every_primary_and_is_armed_again_after_a_drop() {
    cache_conformance::block_on(async {
        let (mut servers, ports) =
            support::redis::launch_cluster(&support::redis::Launcher::detect()).await;
        let config = support::redis::with_test_settings(
            backend_redis::RedisConfig::builder()
                .cluster(
                    ports
                        .iter()
                        .map(|&p| backend_redis::NodeAddr::new("127.0.0.1", p)),
                )
                .build()
                .unwrap(),
        );
        let writer = || support::redis::cluster_writer(&ports);
        tracking_cases::outside_writes_reach_every_l1(&config, writer().await, true).await;
        let mut admins = Vec::new();
        for &port in &ports {
            admins.push(support::redis::node_connection(port).await);
        }
        tracking_cases::tracking_is_armed_again_after_its_connection_drops(
            &config,
            writer().await,
            admins,
        )
        .await;
        for server in &mut servers {
            server.kill();
        }
    })
}

#[test]
fn both_buses_keep_invalidations_in_their_namespace() {
    cache_conformance::block_on(async {
        let store = store().await;
        tracking_cases::both_buses_keep_invalidations_in_their_namespace(store.config()).await
    })
}
