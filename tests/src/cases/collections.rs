//! The collections contract ([`CollectionStore`]): hashes, lists, sets and sorted sets. Each case
//! runs on a store that holds collections ([`CacheStore::collections`](cache_core::CacheStore::collections)).

use std::collections::HashSet;

use bytes::Bytes;
use cache_core::{
    CollectionStore, ErrorKind, KeyTtl, MAX_COLLECTION_PAGE, Order, ScanCursor, ScoreBound,
};

use super::{
    LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, b, expect_kind, keys_in_ns, overlong_key, put, read,
};
use crate::{Ctx, run_concurrently};

/// The store's collections; a store without them fails the case (every backend must have them).
fn coll(ctx: &Ctx) -> &dyn CollectionStore {
    ctx.store()
        .collections()
        .expect("this store holds no collections (CacheStore::collections returned None)")
}

fn s(v: &str) -> Bytes {
    Bytes::copy_from_slice(v.as_bytes())
}

/// Every field of a hash, read page by page.
async fn hash_all(ctx: &Ctx, key: &str) -> Vec<(String, Bytes)> {
    let mut all = Vec::new();
    let mut cursor = ScanCursor::start();
    for _ in 0..10_000 {
        let page = coll(ctx).hscan(key, cursor, 7).await.unwrap();
        all.extend(page.items);
        match page.next {
            Some(next) => cursor = next,
            None => {
                all.sort();
                all.dedup();
                return all;
            }
        }
    }
    panic!("hscan({key:?}) did not end");
}

/// Every member of a set, read page by page.
async fn set_all(ctx: &Ctx, key: &str) -> HashSet<Bytes> {
    let mut all = HashSet::new();
    let mut cursor = ScanCursor::start();
    for _ in 0..10_000 {
        let page = coll(ctx).sscan(key, cursor, 7).await.unwrap();
        all.extend(page.items);
        match page.next {
            Some(next) => cursor = next,
            None => return all,
        }
    }
    panic!("sscan({key:?}) did not end");
}

/// hset/hget/hmget/hlen/hexists: fields are set, read, counted; hset counts only new fields.
pub async fn hash_fields_round_trip(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("profile"));
    assert_eq!(c.hget(&key, "name").await.unwrap(), None);
    assert_eq!(c.hlen(&key).await.unwrap(), 0);
    let added = c
        .hset(
            &key,
            &[("name", s("Ada")), ("lang", s("en")), ("name", s("Ada L."))],
        )
        .await
        .unwrap();
    assert_eq!(
        added, 2,
        "hset returns how many fields were new (a repeated field counts once)"
    );
    assert_eq!(
        c.hget(&key, "name").await.unwrap(),
        Some(s("Ada L.")),
        "a field given twice takes its later value"
    );
    assert_eq!(
        c.hset(&key, &[("lang", s("fr")), ("tz", s("UTC"))])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c.hmget(&key, &["lang", "nope", "tz"]).await.unwrap(),
        vec![Some(s("fr")), None, Some(s("UTC"))]
    );
    assert_eq!(
        c.hmget(&key, &[]).await.unwrap(),
        Vec::<Option<Bytes>>::new()
    );
    assert_eq!(c.hlen(&key).await.unwrap(), 3);
    assert!(c.hexists(&key, "tz").await.unwrap());
    assert!(!c.hexists(&key, "nope").await.unwrap());
    assert_eq!(
        hash_all(ctx, &key).await,
        vec![
            ("lang".into(), s("fr")),
            ("name".into(), s("Ada L.")),
            ("tz".into(), s("UTC"))
        ]
    );
    assert!(ctx.store().exists(&key).await.unwrap(), "a hash is a key");
}

/// hdel: returns how many existed; the hash goes with its last field.
pub async fn hdel_of_last_field_removes_the_hash(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("h"));
    c.hset(&key, &[("a", s("1")), ("b", s("2"))]).await.unwrap();
    assert_eq!(c.hdel(&key, &["a", "zz"]).await.unwrap(), 1);
    assert_eq!(c.hdel(&key, &["b"]).await.unwrap(), 1);
    assert!(
        !ctx.store().exists(&key).await.unwrap(),
        "an empty hash does not exist"
    );
    assert_eq!(c.hlen(&key).await.unwrap(), 0);
    assert_eq!(c.hdel(&key, &["b"]).await.unwrap(), 0);
}

/// hincr_by: starts at 0, adds, refuses non-integers and overflow without changing them.
pub async fn hincr_by_counts_and_refuses_what_is_not_an_integer(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("counters"));
    assert_eq!(c.hincr_by(&key, "views", 5).await.unwrap(), 5);
    assert_eq!(c.hincr_by(&key, "views", -7).await.unwrap(), -2);
    assert_eq!(
        c.hget(&key, "views").await.unwrap(),
        Some(s("-2")),
        "stored as decimal"
    );
    c.hset(&key, &[("name", s("x"))]).await.unwrap();
    expect_kind(
        c.hincr_by(&key, "name", 1).await,
        ErrorKind::NotAnInteger,
        "hincr_by of text",
    );
    assert_eq!(c.hget(&key, "name").await.unwrap(), Some(s("x")));
    c.hset(&key, &[("big", s(&i64::MAX.to_string()))])
        .await
        .unwrap();
    expect_kind(
        c.hincr_by(&key, "big", 1).await,
        ErrorKind::Overflow,
        "hincr_by past i64::MAX",
    );
    assert_eq!(
        c.hget(&key, "big").await.unwrap(),
        Some(s(&i64::MAX.to_string()))
    );
}

/// hscan: pages cover every field of a large hash; count is a hint within bounds.
pub async fn hscan_pages_cover_a_large_hash(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("big"));
    let fields: Vec<(String, Bytes)> = (0..500)
        .map(|i| (format!("f{i}"), s(&i.to_string())))
        .collect();
    let refs: Vec<(&str, Bytes)> = fields
        .iter()
        .map(|(f, v)| (f.as_str(), v.clone()))
        .collect();
    c.hset(&key, &refs).await.unwrap();
    let mut expected = fields.clone();
    expected.sort();
    assert_eq!(hash_all(ctx, &key).await, expected);
    // A huge count is clamped, not refused.
    let page = c
        .hscan(&key, ScanCursor::start(), usize::MAX)
        .await
        .unwrap();
    assert!(page.items.len() <= MAX_COLLECTION_PAGE);
}

/// lpush/rpush/lpop/rpop/lrange/llen: list order and lengths as in Redis.
pub async fn list_pushes_and_pops_at_both_ends(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("jobs"));
    assert_eq!(c.rpush(&key, &[s("b"), s("c")]).await.unwrap(), 2);
    assert_eq!(
        c.lpush(&key, &[s("a0"), s("a")]).await.unwrap(),
        4,
        "lpush pushes in order: the last ends first"
    );
    assert_eq!(
        c.lrange(&key, 0, 100).await.unwrap(),
        vec![s("a"), s("a0"), s("b"), s("c")]
    );
    assert_eq!(
        c.lrange(&key, -2, 100).await.unwrap(),
        vec![s("b"), s("c")],
        "negative start counts from the end"
    );
    assert_eq!(c.lrange(&key, 1, 2).await.unwrap(), vec![s("a0"), s("b")]);
    assert_eq!(c.lrange(&key, 10, 5).await.unwrap(), Vec::<Bytes>::new());
    assert_eq!(c.llen(&key).await.unwrap(), 4);
    assert_eq!(c.lpop(&key, 1).await.unwrap(), vec![s("a")]);
    assert_eq!(
        c.rpop(&key, 2).await.unwrap(),
        vec![s("c"), s("b")],
        "rpop takes from the tail, last first"
    );
    assert_eq!(c.rpop(&key, 5).await.unwrap(), vec![s("a0")]);
    assert!(
        !ctx.store().exists(&key).await.unwrap(),
        "an empty list does not exist"
    );
    assert_eq!(
        c.lpop(&key, 3).await.unwrap(),
        Vec::<Bytes>::new(),
        "popping an absent list gives nothing"
    );
    assert_eq!(c.llen(&key).await.unwrap(), 0);
}

/// ltrim: keeps an inclusive range; an empty range removes the list.
pub async fn ltrim_keeps_a_range(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("l"));
    c.rpush(&key, &[s("0"), s("1"), s("2"), s("3"), s("4")])
        .await
        .unwrap();
    c.ltrim(&key, 1, -2).await.unwrap();
    assert_eq!(
        c.lrange(&key, 0, 10).await.unwrap(),
        vec![s("1"), s("2"), s("3")]
    );
    c.ltrim(&key, 5, 10).await.unwrap();
    assert!(!ctx.store().exists(&key).await.unwrap());
}

/// sadd/srem/sismember/scard/sscan: set membership.
pub async fn set_members_are_added_counted_and_removed(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("tags"));
    assert_eq!(
        c.sadd(&key, &[s("red"), s("blue"), s("red")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(c.sadd(&key, &[s("blue"), s("green")]).await.unwrap(), 1);
    assert!(c.sismember(&key, b"green").await.unwrap());
    assert!(!c.sismember(&key, b"pink").await.unwrap());
    assert_eq!(c.scard(&key).await.unwrap(), 3);
    assert_eq!(
        set_all(ctx, &key).await,
        HashSet::from([s("red"), s("blue"), s("green")])
    );
    assert_eq!(c.srem(&key, &[s("red"), s("pink")]).await.unwrap(), 1);
    assert_eq!(c.srem(&key, &[s("blue"), s("green")]).await.unwrap(), 2);
    assert!(
        !ctx.store().exists(&key).await.unwrap(),
        "an empty set does not exist"
    );
    assert_eq!(c.scard(&key).await.unwrap(), 0);
    assert!(set_all(ctx, &key).await.is_empty());
}

/// zadd/zscore/zincr_by/zrank/zcard/zrem: sorted-set scores and ranks.
pub async fn sorted_set_scores_and_ranks(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("popular"));
    assert_eq!(
        c.zadd(&key, &[(3.0, s("c")), (1.0, s("a")), (2.0, s("b"))])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        c.zadd(&key, &[(0.5, s("c"))]).await.unwrap(),
        0,
        "an existing member gets its new score"
    );
    assert_eq!(c.zscore(&key, b"c").await.unwrap(), Some(0.5));
    assert_eq!(c.zscore(&key, b"zz").await.unwrap(), None);
    assert_eq!(c.zincr_by(&key, b"a", 9.5).await.unwrap(), 10.5);
    assert_eq!(
        c.zincr_by(&key, b"new", -2.0).await.unwrap(),
        -2.0,
        "an absent member starts at 0"
    );
    assert_eq!(c.zcard(&key).await.unwrap(), 4);
    // new -2, c 0.5, b 2, a 10.5
    assert_eq!(
        c.zrank(&key, b"c", Order::Ascending).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        c.zrank(&key, b"c", Order::Descending).await.unwrap(),
        Some(2)
    );
    assert_eq!(c.zrank(&key, b"zz", Order::Ascending).await.unwrap(), None);
    assert_eq!(c.zrem(&key, &[s("new"), s("zz")]).await.unwrap(), 1);
    expect_kind(
        c.zadd(&key, &[(f64::NAN, s("x"))]).await,
        ErrorKind::InvalidArgument,
        "a NaN score",
    );
    c.zadd(&key, &[(f64::INFINITY, s("inf"))]).await.unwrap();
    expect_kind(
        c.zincr_by(&key, b"inf", f64::NEG_INFINITY).await,
        ErrorKind::InvalidArgument,
        "a NaN result",
    );
    assert_eq!(
        c.zscore(&key, b"inf").await.unwrap(),
        Some(f64::INFINITY),
        "unchanged"
    );
    c.zrem(&key, &[s("inf"), s("a"), s("b"), s("c")])
        .await
        .unwrap();
    assert!(
        !ctx.store().exists(&key).await.unwrap(),
        "an empty sorted set does not exist"
    );
}

/// zrange_by_rank and zrange_by_score: both orders, offsets, bounds and ties.
pub async fn sorted_set_ranges_by_rank_and_score(ctx: &Ctx) {
    let (c, key) = (coll(ctx), ctx.key("z"));
    c.zadd(
        &key,
        &[
            (1.0, s("a")),
            (2.0, s("b")),
            (2.0, s("c")),
            (3.0, s("d")),
            (4.0, s("e")),
        ],
    )
    .await
    .unwrap();
    let names = |v: Vec<(Bytes, f64)>| {
        v.into_iter()
            .map(|(m, _)| String::from_utf8(m.to_vec()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            c.zrange_by_rank(&key, 0, 3, Order::Ascending)
                .await
                .unwrap()
        ),
        ["a", "b", "c"],
        "ties in byte order"
    );
    assert_eq!(
        names(
            c.zrange_by_rank(&key, 0, 3, Order::Descending)
                .await
                .unwrap()
        ),
        ["e", "d", "c"]
    );
    assert_eq!(
        names(
            c.zrange_by_rank(&key, -2, 10, Order::Ascending)
                .await
                .unwrap()
        ),
        ["d", "e"]
    );
    assert_eq!(
        c.zrange_by_rank(&key, 0, 1, Order::Ascending)
            .await
            .unwrap(),
        vec![(s("a"), 1.0)],
        "members come with their scores"
    );
    let by_score =
        |min, max, offset, count, order| c.zrange_by_score(&key, min, max, offset, count, order);
    use ScoreBound::{Exclusive, Inclusive, Unbounded};
    assert_eq!(
        names(
            by_score(Inclusive(2.0), Inclusive(3.0), 0, 10, Order::Ascending)
                .await
                .unwrap()
        ),
        ["b", "c", "d"]
    );
    assert_eq!(
        names(
            by_score(Exclusive(2.0), Unbounded, 0, 10, Order::Ascending)
                .await
                .unwrap()
        ),
        ["d", "e"]
    );
    assert_eq!(
        names(
            by_score(Unbounded, Exclusive(3.0), 1, 2, Order::Ascending)
                .await
                .unwrap()
        ),
        ["b", "c"]
    );
    assert_eq!(
        names(
            by_score(Inclusive(2.0), Unbounded, 0, 2, Order::Descending)
                .await
                .unwrap()
        ),
        ["e", "d"]
    );
    assert_eq!(
        names(
            by_score(Inclusive(5.0), Unbounded, 0, 2, Order::Ascending)
                .await
                .unwrap()
        ),
        Vec::<String>::new()
    );
    expect_kind(
        c.zrange_by_rank(&key, 0, 0, Order::Ascending).await,
        ErrorKind::InvalidArgument,
        "count 0",
    );
    expect_kind(
        c.zrange_by_rank(&key, 0, MAX_COLLECTION_PAGE + 1, Order::Ascending)
            .await,
        ErrorKind::InvalidArgument,
        "count over the page",
    );
}

/// Wrong types: a key used as another type fails with WrongType and changes nothing, both ways.
pub async fn wrong_type_is_refused_and_changes_nothing(ctx: &Ctx) {
    let c = coll(ctx);
    let (text, list, hash) = (ctx.key("text"), ctx.key("list"), ctx.key("hash"));
    put(ctx, &text, "plain").await;
    c.rpush(&list, &[s("x")]).await.unwrap();
    c.hset(&hash, &[("f", s("v"))]).await.unwrap();
    expect_kind(
        c.hset(&text, &[("f", s("v"))]).await,
        ErrorKind::WrongType,
        "hset on a string",
    );
    expect_kind(
        c.lpush(&hash, &[s("v")]).await,
        ErrorKind::WrongType,
        "lpush on a hash",
    );
    expect_kind(
        c.sadd(&list, &[s("v")]).await,
        ErrorKind::WrongType,
        "sadd on a list",
    );
    expect_kind(
        c.zadd(&list, &[(1.0, s("v"))]).await,
        ErrorKind::WrongType,
        "zadd on a list",
    );
    expect_kind(
        c.hget(&list, "f").await,
        ErrorKind::WrongType,
        "hget on a list",
    );
    expect_kind(c.llen(&hash).await, ErrorKind::WrongType, "llen on a hash");
    expect_kind(
        ctx.store().get(&list).await,
        ErrorKind::WrongType,
        "get of a list",
    );
    expect_kind(
        ctx.store().get(&hash).await,
        ErrorKind::WrongType,
        "get of a hash",
    );
    expect_kind(
        ctx.store().incr_by(&hash, 1, None).await,
        ErrorKind::WrongType,
        "incr_by of a hash",
    );
    assert_eq!(read(ctx, &text).await, Some(s("plain")));
    assert_eq!(c.lrange(&list, 0, 10).await.unwrap(), vec![s("x")]);
    assert_eq!(c.hget(&hash, "f").await.unwrap(), Some(s("v")));
    // A set (a plain write) replaces a collection, as Redis SET does.
    put(ctx, &hash, "now a string").await;
    assert_eq!(read(ctx, &hash).await, Some(s("now a string")));
}

/// A collection is one key: TTL, persist, delete, scan and clear treat it as such.
pub async fn a_collection_is_one_key(ctx: &Ctx) {
    let c = coll(ctx);
    let (h, l, st, z) = (ctx.key("h"), ctx.key("l"), ctx.key("s"), ctx.key("z"));
    c.hset(&h, &[("f", s("v"))]).await.unwrap();
    c.rpush(&l, &[s("1")]).await.unwrap();
    c.sadd(&st, &[s("m")]).await.unwrap();
    c.zadd(&z, &[(1.0, s("m"))]).await.unwrap();
    assert_eq!(
        keys_in_ns(ctx).await,
        HashSet::from([h.clone(), l.clone(), st.clone(), z.clone()])
    );
    assert!(ctx.store().expire(&h, LONG_TTL).await.unwrap());
    c.hset(&h, &[("g", s("w"))]).await.unwrap();
    assert!(
        matches!(ctx.store().ttl(&h).await.unwrap(), KeyTtl::ExpiresIn(_)),
        "a write keeps the key's TTL"
    );
    assert!(ctx.store().persist(&h).await.unwrap());
    assert!(ctx.store().delete(&l).await.unwrap());
    assert_eq!(c.llen(&l).await.unwrap(), 0);
    assert_eq!(ctx.store().clear(ctx.ns()).await.unwrap(), 3);
    assert!(keys_in_ns(ctx).await.is_empty());
}

/// Once its TTL passes, the whole collection is gone.
pub async fn a_collection_expires_whole(ctx: &Ctx) {
    let c = coll(ctx);
    let key = ctx.key("session");
    c.hset(&key, &[("user", s("ada")), ("cart", s("3"))])
        .await
        .unwrap();
    assert!(ctx.store().expire(&key, SHORT_TTL).await.unwrap());
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(c.hget(&key, "user").await.unwrap(), None);
    assert_eq!(c.hlen(&key).await.unwrap(), 0);
    assert!(!ctx.store().exists(&key).await.unwrap());
    // A write after expiry starts a new collection, with no TTL.
    c.hset(&key, &[("user", s("grace"))]).await.unwrap();
    assert_eq!(c.hlen(&key).await.unwrap(), 1);
    assert_eq!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::Persistent);
}

/// Limits: fields and members as keys, values as values, counts within a page; nothing written.
pub async fn bad_fields_members_values_and_counts_are_refused(ctx: &Ctx) {
    let c = coll(ctx);
    let key = ctx.key("k");
    let max_key = ctx.store().limits().max_key_len;
    let long = "f".repeat(max_key + 1);
    expect_kind(
        c.hset(&key, &[("", s("v"))]).await,
        ErrorKind::InvalidKey,
        "an empty field",
    );
    expect_kind(
        c.hset(&key, &[(long.as_str(), s("v"))]).await,
        ErrorKind::InvalidKey,
        "an overlong field",
    );
    expect_kind(
        c.sadd(&key, &[b("")]).await,
        ErrorKind::InvalidKey,
        "an empty member",
    );
    expect_kind(
        c.sadd(&key, &[b(long.as_bytes())]).await,
        ErrorKind::InvalidKey,
        "an overlong member",
    );
    expect_kind(
        c.zadd(&key, &[(1.0, b(long.as_bytes()))]).await,
        ErrorKind::InvalidKey,
        "an overlong sorted-set member",
    );
    let too_big = Bytes::from(vec![b'v'; ctx.store().limits().max_value_len + 1]);
    expect_kind(
        c.rpush(&key, std::slice::from_ref(&too_big)).await,
        ErrorKind::ValueTooLarge,
        "an oversize list value",
    );
    expect_kind(
        c.hset(&key, &[("f", too_big)]).await,
        ErrorKind::ValueTooLarge,
        "an oversize hash value",
    );
    expect_kind(
        c.hset(&key, &[]).await,
        ErrorKind::InvalidArgument,
        "no fields",
    );
    expect_kind(
        c.rpush(&key, &[]).await,
        ErrorKind::InvalidArgument,
        "no values",
    );
    expect_kind(
        c.sadd(&key, &[]).await,
        ErrorKind::InvalidArgument,
        "no members",
    );
    expect_kind(c.lpop(&key, 0).await, ErrorKind::InvalidArgument, "pop 0");
    expect_kind(
        c.lrange(&key, 0, MAX_COLLECTION_PAGE + 1).await,
        ErrorKind::InvalidArgument,
        "a range over the page",
    );
    expect_kind(
        c.hlen(&overlong_key(ctx)).await,
        ErrorKind::InvalidKey,
        "an overlong key",
    );
    assert!(keys_in_ns(ctx).await.is_empty(), "nothing was written");
}

/// 50 tasks pushing to one list lose nothing, and concurrent pops never return an element twice.
pub async fn concurrent_pushes_and_pops_lose_nothing(ctx: &Ctx) {
    let key = ctx.key("queue");
    let store = ctx.store().clone();
    let pushes: Vec<_> = (0..50)
        .map(|t| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                let c = store.collections().unwrap();
                for i in 0..10 {
                    c.rpush(&key, &[Bytes::from(format!("{t}-{i}"))])
                        .await
                        .unwrap();
                }
            }
        })
        .collect();
    run_concurrently(pushes).await;
    assert_eq!(coll(ctx).llen(&key).await.unwrap(), 500);
    let pops: Vec<_> = (0..50)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                let c = store.collections().unwrap();
                let mut got = Vec::new();
                loop {
                    let taken = c.lpop(&key, 3).await.unwrap();
                    if taken.is_empty() {
                        return got;
                    }
                    got.extend(taken);
                }
            }
        })
        .collect();
    let popped: Vec<Bytes> = run_concurrently(pops).await.into_iter().flatten().collect();
    let unique: HashSet<&Bytes> = popped.iter().collect();
    assert_eq!(popped.len(), 500, "every element was popped");
    assert_eq!(unique.len(), 500, "no element was popped twice");
}

/// Concurrent hincr_by on one field and zincr_by on one member sum exactly.
pub async fn concurrent_field_and_score_increments_sum_exactly(ctx: &Ctx) {
    let (hash, zset) = (ctx.key("h"), ctx.key("z"));
    let store = ctx.store().clone();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, hash, zset) = (store.clone(), hash.clone(), zset.clone());
            async move {
                let c = store.collections().unwrap();
                for _ in 0..10 {
                    c.hincr_by(&hash, "n", 1).await.unwrap();
                    c.zincr_by(&zset, b"m", 0.5).await.unwrap();
                }
            }
        })
        .collect();
    run_concurrently(tasks).await;
    assert_eq!(coll(ctx).hget(&hash, "n").await.unwrap(), Some(s("500")));
    assert_eq!(coll(ctx).zscore(&zset, b"m").await.unwrap(), Some(250.0));
}

/// Typed handles: values and members go through the cache's codec, keys carry its namespace.
pub async fn typed_handles_round_trip_through_the_codec(ctx: &Ctx) {
    let cache = cache_core::Cache::builder(ctx.store().clone())
        .namespace(ctx.key("app"))
        .build()
        .unwrap();
    let profiles = cache.hash::<Vec<String>>("profile:1").unwrap();
    assert!(
        profiles
            .set("langs", &vec!["en".into(), "fr".into()])
            .await
            .unwrap()
    );
    assert_eq!(
        profiles.get("langs").await.unwrap(),
        Some(vec!["en".to_string(), "fr".to_string()])
    );
    assert_eq!(profiles.incr_by("visits", 2).await.unwrap(), 2);
    assert_eq!(profiles.len().await.unwrap(), 2);
    let full = format!("{}:profile:1", ctx.key("app"));
    assert_eq!(
        coll(ctx).hget(&full, "langs").await.unwrap(),
        Some(s(r#"["en","fr"]"#)),
        "the hash lives under the namespace, its values as the codec writes them"
    );
    let jobs = cache.list::<(u32, String)>("jobs").unwrap();
    jobs.push_back(&[(1, "resize".into()), (2, "mail".into())])
        .await
        .unwrap();
    assert_eq!(
        jobs.pop_front(1).await.unwrap(),
        vec![(1, "resize".to_string())]
    );
    assert_eq!(
        jobs.range(0, 10).await.unwrap(),
        vec![(2, "mail".to_string())]
    );
    let tags = cache.set_of::<String>("tags").unwrap();
    assert_eq!(
        tags.add(&["a".into(), "b".into(), "a".into()])
            .await
            .unwrap(),
        2
    );
    assert!(tags.contains(&"b".into()).await.unwrap());
    let board = cache.sorted_set::<String>("board").unwrap();
    board
        .add(&[(10.0, "ada".into()), (7.0, "grace".into())])
        .await
        .unwrap();
    board.incr_by(&"grace".into(), 5.0).await.unwrap();
    assert_eq!(
        board.range_by_rank(0, 2, Order::Descending).await.unwrap(),
        vec![("grace".to_string(), 12.0), ("ada".to_string(), 10.0)]
    );
    assert_eq!(
        board.rank(&"ada".into(), Order::Descending).await.unwrap(),
        Some(1)
    );
    // A value that does not decode as the handle's type is a Codec error naming the key.
    let wrong = cache.hash::<u64>("profile:1").unwrap();
    let e = expect_kind(
        wrong.get("langs").await,
        ErrorKind::Codec,
        "a list read as a u64",
    );
    assert!(e.to_string().contains("profile:1"), "{e}");
    expect_kind(
        cache.hash::<u64>(""),
        ErrorKind::InvalidKey,
        "an empty key under a namespace",
    );
}
