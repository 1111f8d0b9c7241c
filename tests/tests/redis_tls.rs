//! A TLS-only Redis (mutual TLS, certificates made at test time) opts in to the conformance suite
//! (`cargo xtask conformance --backend redis-tls`).

mod support;

async fn redis_tls() -> support::redis::RedisFixture {
    support::redis::tls().await
}

cache_conformance::conformance_tests!(redis_tls);
