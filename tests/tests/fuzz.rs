//! Fuzzing, on stable Rust: every parser and decoder that user or network input reaches gets
//! arbitrary input and mutations of valid input, and must answer with a value or a typed error,
//! never a panic, an abort or a hang.
//!
//! - `RedisConfig::from_url`;
//! - the codecs' decode (JSON, MessagePack, LZ4-compressed);
//! - the bus's message decoding (`Invalidation::from_bytes`);
//! - state that the patterns read back from a store another client can write: the tiered
//!   cache's stamped L2 values, rate-limit state and lock leases.
//!
//! The wasm binding's entry points are fuzzed from JS (`bindings-wasm/js/test/model.test.mjs`).
//! `cargo xtask test` runs `PROPTEST_CASES` (default 256) inputs per target; `cargo xtask prove
//! --cases N` runs N.

use std::time::Duration;

use backend_memory::MemoryStore;
use backend_redis::RedisConfig;
use bytes::Bytes;
use cache_core::{
    CacheStore, Codec, Compressed, Invalidation, Json, LockManager, ManualClock, MsgPack,
    RateLimitAlgorithm, RateLimiter, SetOptions, TieredCache,
};
use futures::executor::block_on;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::{Deserialize, Serialize};

fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price: f64,
    tags: Vec<String>,
    parent: Option<Box<Product>>,
}

fn product() -> Product {
    Product {
        id: 7,
        name: "lamp".into(),
        price: 19.5,
        tags: vec!["home".into(), "light".into()],
        parent: Some(Box::new(Product {
            id: 1,
            name: "root".into(),
            price: 0.0,
            tags: vec![],
            parent: None,
        })),
    }
}

/// Arbitrary bytes, and valid encodings with a few bytes changed, cut short or extended.
fn mutations(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (prop::collection::vec((0..len, any::<u8>()), 1..4)).prop_map({
            let valid = valid.clone();
            move |edits| {
                let mut bytes = valid.clone();
                for (at, byte) in edits {
                    bytes[at] = byte;
                }
                bytes
            }
        }),
        (0..len).prop_map({
            let valid = valid.clone();
            move |cut| valid[..cut].to_vec()
        }),
        prop::collection::vec(any::<u8>(), 1..16).prop_map(move |tail| {
            let mut bytes = valid.clone();
            bytes.extend(tail);
            bytes
        }),
    ]
}

/// URLs that are nearly right: real schemes and shapes, random parts.
fn urls() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(redis|rediss|redis\\+cluster|redis\\+sentinel|unix|http)://[a-z0-9:@%./?=&,\\[\\]_-]{0,40}",
        "redis://([a-z]{0,4}:[a-z%0-9]{0,6}@)?(127\\.0\\.0\\.1|\\[::1\\]|localhost)(:[0-9]{0,6})?(/[0-9a-z]{0,3})?(\\?[a-z_]{1,12}=[a-z0-9.]{0,6}(&[a-z_]{1,12}=[a-z0-9.]{0,6}){0,2})?",
        "redis\\+sentinel://(127\\.0\\.0\\.1:[0-9]{1,5},?){0,3}(/[a-z]{0,5})?(/[0-9]{0,2})?",
    ]
}

/// Writes `bytes` over every key of `store`, as another client could.
fn overwrite_all(store: &MemoryStore, bytes: &[u8]) {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = cache_core::ScanCursor::start();
    loop {
        let page = block_on(CacheStore::scan(store, "", cursor, 100)).unwrap();
        keys.extend(page.keys);
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    for key in keys {
        let value = Bytes::copy_from_slice(bytes);
        block_on(CacheStore::set(store, &key, value, SetOptions::new())).unwrap();
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn redis_urls_parse_or_fail_with_a_typed_error(url in urls()) {
        if let Err(e) = RedisConfig::from_url(&url) {
            prop_assert!(!e.message().is_empty());
        }
    }

    #[test]
    fn codecs_decode_any_bytes_or_fail_with_a_typed_error(
        json in mutations(Json.encode(&product()).unwrap()),
        msgpack in mutations(MsgPack.encode(&product()).unwrap()),
        lz4 in mutations(Compressed::new(Json, 0).encode(&vec![product(); 8]).unwrap()),
    ) {
        for bytes in [&json, &msgpack, &lz4] {
            let _ = Json.decode::<Product>(bytes);
            let _ = Json.decode::<serde_json::Value>(bytes);
            let _ = MsgPack.decode::<Product>(bytes);
            let _ = MsgPack.decode::<Vec<String>>(bytes);
            let _ = Compressed::new(Json, 0).decode::<Vec<Product>>(bytes);
            let _ = Compressed::new(MsgPack, 0).decode::<Vec<Product>>(bytes);
        }
    }

    #[test]
    fn bus_messages_decode_or_fail_with_a_typed_error(
        bytes in mutations(Invalidation::new("node-1", cache_core::InvalidationOp::Clear, "users:").to_bytes().to_vec())
    ) {
        if let Err(e) = Invalidation::from_bytes(&bytes) {
            prop_assert_eq!(e.kind(), cache_core::ErrorKind::Codec);
        }
    }

    #[test]
    fn tiered_reads_of_foreign_l2_bytes_are_values_or_typed_errors(
        bytes in prop::collection::vec(any::<u8>(), 0..40),
        grace in prop::sample::select(vec![Duration::ZERO, Duration::from_secs(60)]),
    ) {
        let l2 = MemoryStore::new();
        let tiered = TieredCache::builder(MemoryStore::new(), l2.clone())
            .fail_safe_grace(grace)
            .build()
            .unwrap();
        block_on(tiered.set("k", &product())).unwrap();
        overwrite_all(&l2, &bytes);
        tiered.clear_local().unwrap();
        let _ = block_on(tiered.get::<Product>("k"));
        let _ = block_on(tiered.get_or_insert_with("k", None, || async {
            Ok::<_, std::io::Error>(product())
        }));
    }

    #[test]
    fn rate_limits_and_locks_over_foreign_state_decide_or_fail_cleanly(
        bytes in prop::collection::vec(any::<u8>(), 0..40),
        algorithm in prop::sample::select(vec![
            RateLimitAlgorithm::FixedWindow,
            RateLimitAlgorithm::SlidingWindow,
            RateLimitAlgorithm::Gcra,
        ]),
    ) {
        let clock = ManualClock::new();
        let store = MemoryStore::builder().clock(clock.clone()).build().unwrap();
        let limiter = RateLimiter::builder(store.clone())
            .algorithm(algorithm)
            .limit(5)
            .period(Duration::from_secs(1))
            .clock(clock.clone())
            .build()
            .unwrap();
        let locks = LockManager::builder(store.clone()).clock(clock.clone()).build().unwrap();
        block_on(limiter.check("client")).unwrap();
        let guard = block_on(locks.try_acquire("job")).unwrap().unwrap();
        overwrite_all(&store, &bytes);
        for _ in 0..3 {
            let _ = block_on(limiter.check("client"));
            clock.advance(Duration::from_millis(400));
        }
        let _ = block_on(guard.extend(Duration::from_secs(1)));
        let _ = block_on(locks.try_acquire("job"));
        let _ = block_on(guard.release());
    }
}
