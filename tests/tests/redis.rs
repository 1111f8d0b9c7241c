//! Redis standalone opts in to the conformance suite (`cargo xtask conformance --backend redis`).

mod support;

async fn redis() -> support::redis::RedisFixture {
    support::redis::standalone().await
}

cache_conformance::conformance_tests!(redis);
