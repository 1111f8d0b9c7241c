//! The cache-core patterns (lock, rate limiter, tiered cache with the Redis invalidation bus) on a
//! 3-master Redis Cluster.

mod patterns_cases;
mod support;

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
