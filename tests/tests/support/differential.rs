//! Differential tests: generated sequences run on a `RedisStore` and on the reference model
//! (`cache_conformance::model`), step by step. TTLs are an hour or more, so real time cannot
//! expire anything mid-run; `expire` and `persist` steps exercise TTLs instead, and a TTL Redis
//! reports may be up to a minute shorter than the model's.

use std::time::Duration;

use backend_redis::RedisStore;
use cache_conformance::model::Leeway;
use cache_conformance::sequences::{Time, check_sequence, sequences};
use cache_core::{CacheStore, Limits};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::redis::RedisFixture;

/// Small limits, so that limit-length keys and values are cheap.
const LIMITS: Limits = Limits::new(24, 48);

/// Runs `PROPTEST_CASES` (default 256) sequences on a store connected as `fixture`'s is.
pub(crate) fn redis_answers_every_sequence_as_the_model(
    fixture: impl std::future::Future<Output = RedisFixture>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let mut config = fixture.await.redis_store().config().clone();
        config.limits = LIMITS;
        RedisStore::connect(config).await.unwrap()
    });
    let leeway = Leeway {
        evicts: false,
        ttl_slack: Duration::from_secs(60),
    };
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&sequences("", LIMITS, Time::Real, 40), |ops| {
        runtime
            .block_on(async {
                store.clear("").await.unwrap();
                let no_time = |_| async { unreachable!("no Advance against a real clock") };
                check_sequence(&store, &ops, leeway, no_time, |_, _, _| Ok(())).await
            })
            .map_err(TestCaseError::fail)
    });
    runtime.block_on(store.clear("")).unwrap();
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
