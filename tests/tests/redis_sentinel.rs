//! One Redis master behind Sentinel opts in to the conformance suite
//! (`cargo xtask conformance --backend redis-sentinel`).

mod support;

async fn redis_sentinel() -> support::redis::RedisFixture {
    support::redis::sentinel().await
}

cache_conformance::conformance_tests!(redis_sentinel);
