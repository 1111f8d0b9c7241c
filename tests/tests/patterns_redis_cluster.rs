//! The cache-core patterns (lock, rate limiter, tiered cache with the Redis invalidation bus) on a
//! 3-master Redis Cluster.

mod patterns_cases;
mod support;

use std::sync::Arc;

async fn store() -> backend_redis::RedisStore {
    support::redis::cluster().await.redis_store().clone()
}

#[test]
fn lock_holders_never_overlap() {
    cache_conformance::block_on(async {
        patterns_cases::lock_holders_never_overlap(Arc::new(store().await)).await
    })
}

#[test]
fn expired_lease_is_taken_over() {
    cache_conformance::block_on(async {
        patterns_cases::expired_lease_is_taken_over(Arc::new(store().await)).await
    })
}

#[test]
fn rate_limits_hold_under_concurrency() {
    cache_conformance::block_on(async {
        patterns_cases::rate_limits_hold_under_concurrency(Arc::new(store().await)).await
    })
}

#[test]
fn tiered_instances_stay_coherent() {
    cache_conformance::block_on(async {
        patterns_cases::tiered_instances_stay_coherent(store().await).await
    })
}
