//! A 3-master Redis Cluster opts in to the conformance suite
//! (`cargo xtask conformance --backend redis-cluster`).

mod support;

async fn redis_cluster() -> support::redis::RedisFixture {
    support::redis::cluster().await
}

cache_conformance::conformance_tests!(redis_cluster);

/// Generated sequences of every operation answer as the reference model does.
#[test]
fn redis_answers_every_sequence_as_the_model() {
    support::differential::redis_answers_every_sequence_as_the_model(redis_cluster());
}

/// Scripts, pipelines, transactions and server stats: what `RedisStore` offers beyond the contract.
mod escape {
    use super::support::escape;

    #[test]
    fn scripts_run_with_prefixed_keys() {
        cache_conformance::block_on(async {
            let fixture = super::redis_cluster().await;
            escape::scripts_run_with_prefixed_keys(fixture.redis_store(), true).await;
        })
    }

    #[test]
    fn pipelines_return_every_result() {
        cache_conformance::block_on(async {
            let fixture = super::redis_cluster().await;
            escape::pipelines_return_every_result(fixture.redis_store()).await;
        })
    }

    #[test]
    fn transactions_apply_whole_or_not_at_all() {
        cache_conformance::block_on(async {
            let fixture = super::redis_cluster().await;
            escape::transactions_apply_whole_or_not_at_all(fixture.redis_store(), true).await;
        })
    }

    #[test]
    fn server_stats_count_hits_and_misses() {
        cache_conformance::block_on(async {
            let fixture = super::redis_cluster().await;
            escape::server_stats_count_hits_and_misses(fixture.redis_store(), 3).await;
        })
    }
}
