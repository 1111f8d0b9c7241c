//! Redis standalone opts in to the conformance suite (`cargo xtask conformance --backend redis`).

mod support;

async fn redis() -> support::redis::RedisFixture {
    support::redis::standalone().await
}

cache_conformance::conformance_tests!(redis);

/// Values are the codec's bytes under `key_prefix + key`, so any Redis client reads them: a JSON value
/// written through the SDK is plain JSON text.
#[test]
fn other_clients_read_plain_json_under_the_prefixed_key() {
    use backend_redis::{RedisMode, RedisStore};
    use cache_core::{Cache, CacheStore};

    cache_conformance::block_on(async {
        let fixture = redis().await;
        let mut config = fixture.redis_store().config().clone();
        config.key_prefix = format!("interop-{}:", std::process::id());
        let store = RedisStore::connect(config.clone()).await.unwrap();
        let cache = Cache::builder(store.clone()).namespace("orders").build();
        cache.set("7", &vec![1u32, 2, 3]).await.unwrap();

        let RedisMode::Standalone(node) = &config.mode else {
            unreachable!("a standalone fixture")
        };
        let client = redis::Client::open((node.host.as_str(), node.port)).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let stored: Option<String> = redis::cmd("GET")
            .arg(format!("{}orders:7", config.key_prefix))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(stored.as_deref(), Some("[1,2,3]"));
        store.clear("").await.unwrap();
    })
}

/// Scripts, pipelines, transactions and server stats: what `RedisStore` offers beyond the contract.
mod escape {
    use super::support::escape;

    #[test]
    fn scripts_run_with_prefixed_keys() {
        cache_conformance::block_on(async {
            let fixture = super::redis().await;
            escape::scripts_run_with_prefixed_keys(fixture.redis_store(), false).await;
        })
    }

    #[test]
    fn pipelines_return_every_result() {
        cache_conformance::block_on(async {
            let fixture = super::redis().await;
            escape::pipelines_return_every_result(fixture.redis_store()).await;
        })
    }

    #[test]
    fn transactions_apply_whole_or_not_at_all() {
        cache_conformance::block_on(async {
            let fixture = super::redis().await;
            escape::transactions_apply_whole_or_not_at_all(fixture.redis_store(), false).await;
        })
    }

    #[test]
    fn server_stats_count_hits_and_misses() {
        cache_conformance::block_on(async {
            let fixture = super::redis().await;
            escape::server_stats_count_hits_and_misses(fixture.redis_store(), 1).await;
        })
    }
}
