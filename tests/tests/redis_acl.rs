//! Redis with an ACL user and password opts in to the conformance suite
//! (`cargo xtask conformance --backend redis-acl`), and a wrong password fails fast and clearly.

mod support;

use std::time::{Duration, Instant};

use backend_redis::RedisStore;
use cache_core::ErrorKind;

async fn redis_acl() -> support::redis::RedisFixture {
    support::redis::acl().await
}

cache_conformance::conformance_tests!(redis_acl);

#[test]
fn wrong_password_fails_fast_with_an_authentication_error() {
    let mut config = support::redis::acl_config();
    config.password = Some("not-the-password".to_owned());
    cache_conformance::block_on(async {
        let started = Instant::now();
        let err = RedisStore::connect(config)
            .await
            .expect_err("a wrong password must not connect");
        let took = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        assert!(!err.is_retryable(), "{err:?}");
        assert!(
            err.to_string().contains("password"),
            "the message should say the password is wrong: {err}"
        );
        assert!(!err.to_string().contains("not-the-password"), "{err}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    });
}

#[test]
fn missing_credentials_fail_with_an_authentication_error() {
    let mut config = support::redis::acl_config();
    config.username = None;
    config.password = None;
    cache_conformance::block_on(async {
        let started = Instant::now();
        // Without AUTH the connection opens, and the first command is refused (NOAUTH).
        let result = async {
            let store = RedisStore::connect(config).await?;
            cache_core::CacheStore::ping(&store).await
        }
        .await;
        let err = result.expect_err("the default user is off");
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}
