//! A 3-master Redis Cluster opts in to the conformance suite
//! (`cargo xtask conformance --backend redis-cluster`).

mod support;

async fn redis_cluster() -> support::redis::RedisFixture {
    support::redis::cluster().await
}

cache_conformance::conformance_tests!(redis_cluster);
