//! Redis standalone opts in to the conformance suite (`cargo xtask conformance --backend redis`).

mod support;

async fn redis() -> support::redis::RedisFixture {
    support::redis::standalone().await
}

cache_conformance::conformance_tests!(redis);

/// Generated sequences of every operation answer as the reference model does.
#[test]
fn redis_answers_every_sequence_as_the_model() {
    support::differential::redis_answers_every_sequence_as_the_model(redis());
}

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
        let cache = Cache::builder(store.clone())
            .namespace("orders")
            .build()
            .unwrap();
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

/// A store's `clear("")` stays inside its prefix: a prefix without a delimiter, which would be the
/// start of other prefixes (`"app"` of `"app1:"`), is refused; prefixes nest only as documented.
#[test]
fn store_prefixes_need_a_delimiter_and_nest_only_as_documented() {
    use backend_redis::RedisStore;
    use cache_core::{CacheStore, ErrorKind, SetOptions};

    cache_conformance::block_on(async {
        let fixture = redis().await;
        let base = fixture.redis_store().config().clone();
        let with_prefix = |prefix: String| {
            let mut config = base.clone();
            config.key_prefix = prefix;
            RedisStore::connect(config)
        };
        let run = format!("nest{}", std::process::id());
        let err = with_prefix(format!("{run}app")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");

        let app = with_prefix(format!("{run}app:")).await.unwrap();
        let app1 = with_prefix(format!("{run}app1:")).await.unwrap();
        let jobs = with_prefix(format!("{run}app:jobs:")).await.unwrap();
        for store in [&app, &app1, &jobs] {
            store.set("k", "v".into(), SetOptions::new()).await.unwrap();
        }
        // "app:" contains "app:jobs:" (they nest), never "app1:".
        assert_eq!(app.clear("").await.unwrap(), 2);
        assert!(app1.exists("k").await.unwrap());
        assert!(!jobs.exists("k").await.unwrap());
        app1.clear("").await.unwrap();
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
