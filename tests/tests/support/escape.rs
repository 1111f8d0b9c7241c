//! Cases of what `RedisStore` offers beyond the cache contract (scripts, pipelines, transactions,
//! the raw connection, server stats), run on standalone and Cluster by `redis.rs` and
//! `redis_cluster.rs`. Keys use one hash tag so that they share a slot on Cluster.

use backend_redis::RedisStore;
use cache_core::{CacheStore, CollectionStore, ErrorKind, SetOptions};

/// A script runs with prefixed keys and typed results, is loaded on NOSCRIPT, and refuses keys of
/// two slots on Cluster before sending anything.
pub(crate) async fn scripts_run_with_prefixed_keys(store: &RedisStore, cluster: bool) {
    let (queue, running) = ("{jobs}:queue", "{jobs}:running");
    store
        .rpush(queue, &["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    store.register_script(
        "claim",
        r"local jobs = redis.call('LPOP', KEYS[1], ARGV[1])
          if jobs then for _, j in ipairs(jobs) do redis.call('RPUSH', KEYS[2], j) end end
          return jobs or {}",
    );
    let claimed: Vec<String> = store
        .run_script("claim", &[queue, running], &[2])
        .await
        .unwrap();
    assert_eq!(claimed, ["a", "b"]);
    assert_eq!(
        store.llen(running).await.unwrap(),
        2,
        "the script's keys got the prefix"
    );
    // The server forgets its scripts; the next run loads it again.
    let mut raw = store.connection();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let claimed: Vec<String> = store
        .run_script("claim", &[queue, running], &[5])
        .await
        .unwrap();
    assert_eq!(claimed, ["c"]);
    let e = store
        .run_script::<()>("nope", &[queue], &[0])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    store.register_script("boom", "return redis.error_reply('ERR broke on purpose')");
    let e = store
        .run_script::<()>("boom", &[queue], &[0])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("broke on purpose"), "{e}");
    if cluster {
        let e = store
            .run_script::<Vec<String>>("claim", &["a", "b"], &[1])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("hash tag"), "{e}");
    }
    store.clear("").await.unwrap();
}

/// A pipeline sends its commands in one round trip and returns each result.
pub(crate) async fn pipelines_return_every_result(store: &RedisStore) {
    let (n, v): (i64, Option<String>) = store
        .pipeline()
        .cmd("SET")
        .key("{p}:k")
        .arg("v")
        .ignore()
        .cmd("INCRBY")
        .key("{p}:n")
        .arg(5)
        .cmd("GET")
        .key("{p}:k")
        .query()
        .await
        .unwrap();
    assert_eq!((n, v.as_deref()), (5, Some("v")));
    assert_eq!(
        store.get("{p}:k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let e = store.pipeline().query::<()>().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    store.clear("").await.unwrap();
}

/// A transaction applies whole, and one whose EXEC is refused applies nothing.
pub(crate) async fn transactions_apply_whole_or_not_at_all(store: &RedisStore, cluster: bool) {
    let (a, b): (i64, i64) = store
        .transaction()
        .cmd("INCRBY")
        .key("{t}:a")
        .arg(1)
        .cmd("INCRBY")
        .key("{t}:b")
        .arg(2)
        .query()
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
    // INCRBY with no increment cannot be queued: the server refuses EXEC (EXECABORT).
    let refused = store
        .transaction()
        .cmd("SET")
        .key("{t}:written")
        .arg("x")
        .ignore()
        .cmd("INCRBY")
        .key("{t}:a")
        .query::<()>()
        .await;
    let e = refused.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(
        store.get("{t}:written").await.unwrap(),
        None,
        "nothing of it was applied"
    );
    assert_eq!(
        store.get("{t}:a").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    if cluster {
        let e = store
            .transaction()
            .cmd("SET")
            .key("x")
            .arg(1)
            .cmd("SET")
            .key("y")
            .arg(2)
            .query::<()>()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("hash tag"), "{e}");
        assert_eq!(store.get("x").await.unwrap(), None);
    }
    store.clear("").await.unwrap();
}

/// INFO of every node: hits and misses move with reads.
pub(crate) async fn server_stats_count_hits_and_misses(store: &RedisStore, nodes: usize) {
    let before = store.server_stats().await.unwrap();
    assert_eq!(before.len(), nodes);
    store
        .set("{s}:k", "v".into(), SetOptions::new())
        .await
        .unwrap();
    store.get("{s}:k").await.unwrap();
    store.get("{s}:missing").await.unwrap();
    let after = store.server_stats().await.unwrap();
    let hits = |s: &[backend_redis::ServerStats]| s.iter().map(|n| n.keyspace_hits).sum::<u64>();
    let misses =
        |s: &[backend_redis::ServerStats]| s.iter().map(|n| n.keyspace_misses).sum::<u64>();
    assert!(hits(&after) > hits(&before));
    assert!(misses(&after) > misses(&before));
    for node in &after {
        assert!(
            node.used_memory > 0 && node.connected_clients > 0,
            "{node:?}"
        );
        assert!(
            node.hit_rate().is_some_and(|r| (0.0..=1.0).contains(&r)),
            "{node:?}"
        );
    }
    store.clear("").await.unwrap();
}
