//! Redis with an ACL user and password opts in to the conformance suite
//! (`cargo xtask conformance --backend redis-acl`), and a wrong password fails at once and clearly.

mod support;

use backend_redis::{RedisConfig, RedisMode, RedisStore};
use cache_core::ErrorKind;

async fn redis_acl() -> support::redis::RedisFixture {
    support::redis::acl().await
}

cache_conformance::conformance_tests!(redis_acl);

/// How many AUTH attempts the server has refused for the config's user, from its ACL log (which
/// merges repeats of one failure into an entry with a `count`).
async fn refused_logins(config: &RedisConfig) -> i64 {
    let RedisMode::Standalone(node) = &config.mode else {
        panic!("the ACL server is standalone");
    };
    let user = config.username.clone().expect("an ACL user");
    let url = format!(
        "redis://{user}:{}@{}:{}",
        config.password.as_deref().expect("a password"),
        node.host,
        node.port
    );
    let client = redis::Client::open(url).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let log: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .unwrap();
    let text = |entry: &std::collections::HashMap<String, redis::Value>, field: &str| {
        redis::from_redis_value::<String>(entry[field].clone()).unwrap()
    };
    log.iter()
        .filter(|entry| text(entry, "reason") == "auth" && text(entry, "username") == user)
        .map(|entry| redis::from_redis_value::<i64>(entry["count"].clone()).unwrap())
        .sum()
}

#[test]
fn wrong_password_fails_at_once_with_an_authentication_error() {
    let config = support::redis::acl_config();
    let mut wrong = config.clone();
    wrong.password = Some("not-the-password".to_owned());
    cache_conformance::block_on(async {
        let refused_before = refused_logins(&config).await;
        let err = RedisStore::connect(wrong)
            .await
            .expect_err("a wrong password must not connect");
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        assert!(!err.is_retryable(), "{err:?}");
        assert!(
            err.to_string().contains("password"),
            "the message should say the password is wrong: {err}"
        );
        assert!(!err.to_string().contains("not-the-password"), "{err}");
        // One attempt: an authentication error is final, so nothing retries it.
        assert_eq!(refused_logins(&config).await - refused_before, 1);
    });
}

#[test]
fn missing_credentials_fail_with_an_authentication_error() {
    let mut config = support::redis::acl_config();
    config.username = None;
    config.password = None;
    cache_conformance::block_on(async {
        // Without AUTH the connection opens, and the first command is refused (NOAUTH).
        let result = async {
            let store = RedisStore::connect(config).await?;
            cache_core::CacheStore::ping(&store).await
        }
        .await;
        let err = result.expect_err("the default user is off");
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        assert!(!err.is_retryable(), "{err:?}");
    });
}
