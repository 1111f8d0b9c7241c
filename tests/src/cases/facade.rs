//! The typed facade, `cache_core::Cache`, over the store under test.

use std::collections::{BTreeMap, HashSet};
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_core::{Cache, CacheStats, Codec, ErrorKind, KeyTtl};
use futures::FutureExt;
use futures::channel::oneshot;

use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, assert_value, keys_in_ns, put, read, yield_now};
use crate::{CaseCodec, Ctx, run_concurrently};

/// The typed facade with the case's codec.
type TestCache = Cache<CaseCodec>;

/// How many concurrent callers the single-flight cases use.
const CALLERS: usize = 20;
/// Most yields to wait for the callers to line up before releasing the loader anyway.
const WAIT_CAP: usize = 2_000_000;

fn cache(ctx: &Ctx, namespace: &str) -> TestCache {
    Cache::builder(ctx.store().clone())
        .codec(ctx.codec())
        .namespace(ctx.key(namespace))
        .build()
        .unwrap()
}

/// `(hits, misses, sets, deletes, loader_runs, errors)`.
fn counts(stats: CacheStats) -> (u64, u64, u64, u64, u64, u64) {
    (
        stats.hits,
        stats.misses,
        stats.sets,
        stats.deletes,
        stats.loader_runs,
        stats.errors,
    )
}

/// Yields until every caller has missed (so all of them are joining the flight), then opens the gate.
async fn release_when_all_missed(cache: &TestCache, gate: oneshot::Sender<()>) {
    for _ in 0..WAIT_CAP {
        if cache.stats().misses >= CALLERS as u64 {
            break;
        }
        yield_now().await;
    }
    // Give the last caller a moment to get from its miss to the flight.
    for _ in 0..100 {
        yield_now().await;
    }
    let _ = gate.send(());
}

/// Cache: caches with different namespaces on one store never see (or clear) each other's entries,
/// and an empty key is refused under a namespace too.
pub async fn namespaces_are_isolated(ctx: &Ctx) {
    let users = cache(ctx, "users");
    let orders = cache(ctx, "orders");
    let user = cache(ctx, "user"); // a string prefix of "users", but a different namespace
    assert!(
        users.prefix().starts_with(ctx.ns()),
        "the cache prefix {:?} is not under the case namespace",
        users.prefix()
    );
    users.set("1", "ada").await.unwrap();
    orders.set("1", &42u32).await.unwrap();
    user.set("1", &true).await.unwrap();
    assert_eq!(
        users.get::<String>("1").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(orders.get::<u32>("1").await.unwrap(), Some(42));
    assert_eq!(user.get::<bool>("1").await.unwrap(), Some(true));
    assert_eq!(users.get::<String>("2").await.unwrap(), None);
    let stored = keys_in_ns(ctx).await;
    let expected: HashSet<String> = ["users:1", "orders:1", "user:1"]
        .iter()
        .map(|k| ctx.key(k))
        .collect();
    assert_eq!(stored, expected, "the caches wrote unexpected store keys");

    assert_eq!(users.clear().await.unwrap(), 1, "users.clear() count");
    assert_eq!(users.get::<String>("1").await.unwrap(), None);
    assert_eq!(
        orders.get::<u32>("1").await.unwrap(),
        Some(42),
        "clearing one namespace removed another's entry"
    );
    assert_eq!(
        user.get::<bool>("1").await.unwrap(),
        Some(true),
        "clearing namespace \"users\" removed an entry of namespace \"user\""
    );
    assert!(!orders.delete("missing").await.unwrap());
    assert!(orders.delete("1").await.unwrap());
    assert_eq!(user.get::<bool>("1").await.unwrap(), Some(true));

    // An empty key is refused under a namespace too, though "users:" would be a valid store key.
    let empty = users.set("", &1u32).await.unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::InvalidKey, "{empty}");
    let empty = users.get::<u32>("").await.unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::InvalidKey, "{empty}");
    assert_eq!(keys_in_ns(ctx).await.len(), 1, "an empty key was written");
}

/// Cache: typed values (single and batched) round-trip through the codec and the store.
pub async fn typed_values_round_trip(ctx: &Ctx) {
    let cache = cache(ctx, "typed");
    let record = (
        String::from("Ada"),
        -1815_i64,
        vec![1u8, 2, 3],
        None::<String>,
    );
    cache.set("record", &record).await.unwrap();
    assert_eq!(
        cache
            .get::<(String, i64, Vec<u8>, Option<String>)>("record")
            .await
            .unwrap(),
        Some(record)
    );
    let map: BTreeMap<String, f64> = [("pi".into(), 3.5), ("e".into(), -2.25)].into();
    cache.set("map", &map).await.unwrap();
    assert_eq!(
        cache.get::<BTreeMap<String, f64>>("map").await.unwrap(),
        Some(map.clone())
    );

    cache
        .set_many(&[("a", 1u32), ("b", 2), ("a", 3)])
        .await
        .unwrap();
    assert_eq!(
        cache.get_many::<u32>(&["b", "missing", "a"]).await.unwrap(),
        vec![Some(2), None, Some(3)],
        "typed get_many must keep order and let the later duplicate win"
    );
    assert_eq!(cache.incr_by("hits", 5, None).await.unwrap(), 5);
    if ctx.codec() == CaseCodec::Json {
        assert_eq!(
            cache.get::<i64>("hits").await.unwrap(),
            Some(5),
            "a decimal counter must decode as a JSON number"
        );
    }
    // What the store holds is the codec's encoding, whatever the cache hands out.
    let stored = read(ctx, &format!("{}map", cache.prefix())).await.unwrap();
    assert_eq!(
        ctx.codec()
            .decode::<BTreeMap<String, f64>>(&stored)
            .unwrap(),
        map
    );
}

/// Cache: writes without an explicit TTL get the builder's default TTL; `set_with_optional_ttl(None)` never expires.
pub async fn default_ttl_applies(ctx: &Ctx) {
    let cache = Cache::builder(ctx.store().clone())
        .codec(ctx.codec())
        .namespace(ctx.key("ttl"))
        .default_ttl(SHORT_TTL)
        .build()
        .unwrap();
    cache.set("short", &1u8).await.unwrap();
    cache
        .set_with_optional_ttl("forever", &2u8, None)
        .await
        .unwrap();
    let loaded: u8 = cache
        .get_or_insert_with("loaded", None, || async { Ok::<_, String>(3) })
        .await
        .unwrap();
    assert_eq!(loaded, 3);
    let full = |k: &str| format!("{}{k}", cache.prefix());
    for key in ["short", "loaded"] {
        assert!(
            matches!(ctx.store().ttl(&full(key)).await.unwrap(), KeyTtl::ExpiresIn(d) if d <= SHORT_TTL),
            "{key:?} did not get the default TTL"
        );
    }
    assert_eq!(
        ctx.store().ttl(&full("forever")).await.unwrap(),
        KeyTtl::Persistent
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(cache.get::<u8>("short").await.unwrap(), None);
    assert_eq!(cache.get::<u8>("loaded").await.unwrap(), None);
    assert_eq!(cache.get::<u8>("forever").await.unwrap(), Some(2));
}

/// Cache: bytes that do not decode are a Codec error naming the key and the Rust type; the entry is untouched.
pub async fn codec_error_names_key_and_type_and_keeps_entry(ctx: &Ctx) {
    type Profile = BTreeMap<String, u64>;
    let cache = cache(ctx, "codec");
    let full = format!("{}profile", cache.prefix());
    put(ctx, &full, b"{not json").await;

    let err = cache.get::<Profile>("profile").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("profile"),
        "the codec error must name the key: {text}"
    );
    assert!(
        text.contains(std::any::type_name::<Profile>()),
        "the codec error must name the type {}: {text}",
        std::any::type_name::<Profile>()
    );
    assert!(
        err.source().is_some(),
        "the codec error should keep its cause"
    );

    let runs = AtomicUsize::new(0);
    let err = cache
        .get_or_insert_with("profile", None, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Profile::new())
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "an undecodable hit must not run the loader"
    );
    assert_value(
        read(ctx, &full).await,
        Some(b"{not json"),
        "a decode failure changed the stored bytes",
    );

    // A well-formed value of the wrong type fails the same way and stays readable as its real type.
    cache.set("count", "seven").await.unwrap();
    let err = cache.get::<u64>("count").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec);
    assert!(err.to_string().contains("u64"), "{err}");
    assert_eq!(
        cache.get::<String>("count").await.unwrap().as_deref(),
        Some("seven")
    );
}

/// Cache::get_or_insert_with: a hit returns the cached value without running the loader; a miss runs
/// it once, stores the value with the given TTL and returns it.
pub async fn get_or_insert_with_returns_cached_value(ctx: &Ctx) {
    let cache = cache(ctx, "goiw");
    let runs = AtomicUsize::new(0);
    let loader = |v: u32| {
        let runs = &runs;
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(v)
        }
    };
    cache.set("present", &5u32).await.unwrap();
    assert_eq!(
        cache
            .get_or_insert_with("present", None, loader(6))
            .await
            .unwrap(),
        5
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a hit ran the loader");

    let got: u32 = cache
        .get_or_insert_with("absent", Some(SHORT_TTL), loader(7))
        .await
        .unwrap();
    assert_eq!(got, 7);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "a miss must run the loader");
    let full = format!("{}absent", cache.prefix());
    assert_value(
        read(ctx, &full).await,
        Some(&ctx.codec().encode(&7u32).unwrap()[..]),
        "the loaded value was not stored",
    );
    assert!(
        matches!(ctx.store().ttl(&full).await.unwrap(), KeyTtl::ExpiresIn(d) if d <= SHORT_TTL),
        "the loaded value did not get the given TTL"
    );
    let again: u32 = cache
        .get_or_insert_with("absent", None, loader(8))
        .await
        .unwrap();
    assert_eq!(again, 7, "a second call must return the cached value");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Cache::get_or_insert_with: concurrent misses on one key run the loader once, and every caller gets its value.
pub async fn get_or_insert_with_runs_loader_once_for_concurrent_callers(ctx: &Ctx) {
    let cache = cache(ctx, "single-flight");
    let runs = Arc::new(AtomicUsize::new(0));
    let (fire, gate) = oneshot::channel::<()>();
    let gate = gate.shared();
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            async move {
                cache
                    .get_or_insert_with("answer", None, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.await;
                        Ok::<_, String>(format!("loaded-by-{i}"))
                    })
                    .await
            }
        })
        .collect();
    let (results, ()) = futures::join!(
        run_concurrently(callers),
        release_when_all_missed(&cache, fire)
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "{CALLERS} concurrent callers must run the loader exactly once"
    );
    let values: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a caller failed: {e}")))
        .collect();
    assert!(
        values.iter().all(|v| *v == values[0]) && values[0].starts_with("loaded-by-"),
        "every caller must get the one loaded value: {values:?}"
    );
    let stats = cache.stats();
    assert_eq!(stats.loader_runs, 1, "stats.loader_runs");
    assert_eq!(stats.misses, CALLERS as u64, "every caller missed once");
    assert_eq!(stats.errors, 0);
    assert_eq!(
        cache.get::<String>("answer").await.unwrap().as_ref(),
        Some(&values[0]),
        "the loaded value must be cached"
    );
}

/// Cache::get_or_insert_with: a failing loader's error (ErrorKind::Loader) reaches every waiter and nothing is cached.
pub async fn failing_loader_reaches_every_waiter_and_caches_nothing(ctx: &Ctx) {
    let cache = cache(ctx, "failing");
    let runs = Arc::new(AtomicUsize::new(0));
    let (fire, gate) = oneshot::channel::<()>();
    let gate = gate.shared();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            async move {
                cache
                    .get_or_insert_with("flaky", None, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.await;
                        Err::<u32, _>("upstream is down".to_string())
                    })
                    .await
            }
        })
        .collect();
    let (results, ()) = futures::join!(
        run_concurrently(callers),
        release_when_all_missed(&cache, fire)
    );
    for (i, result) in results.into_iter().enumerate() {
        let err = result.expect_err("a caller got a value from a failing loader");
        assert_eq!(err.kind(), ErrorKind::Loader, "caller {i}: {err}");
        assert!(
            err.to_string().contains("flaky"),
            "caller {i}: the error must name the key: {err}"
        );
        let source = err.source().map(ToString::to_string).unwrap_or_default();
        assert!(
            source.contains("upstream is down"),
            "caller {i}: the loader's own error must be the source, got {source:?}"
        );
    }
    let ran = runs.load(Ordering::SeqCst);
    assert!(ran >= 1, "the loader never ran");
    let stats = cache.stats();
    assert_eq!(stats.loader_runs, ran as u64, "stats.loader_runs");
    assert_eq!(
        stats.errors, CALLERS as u64,
        "every failed call counts as an error"
    );
    assert_eq!(stats.sets, 0, "a failed load must not count a set");
    assert_eq!(
        read(ctx, &format!("{}flaky", cache.prefix())).await,
        None,
        "a failed load must cache nothing"
    );
    // The failure is not cached either: the next call runs its loader.
    let v: u32 = cache
        .get_or_insert_with("flaky", None, || async { Ok::<_, String>(9) })
        .await
        .unwrap();
    assert_eq!(v, 9);
    assert_eq!(cache.stats().loader_runs, ran as u64 + 1);
}

/// Cache stats: hits, misses, sets, deletes, loader_runs and errors move as documented.
pub async fn stats_count_as_documented(ctx: &Ctx) {
    let cache = cache(ctx, "stats");
    assert_eq!(counts(cache.stats()), (0, 0, 0, 0, 0, 0), "a new cache");
    assert_eq!(cache.get::<u32>("a").await.unwrap(), None);
    assert_eq!(counts(cache.stats()), (0, 1, 0, 0, 0, 0), "after a miss");
    cache.set("a", &1u32).await.unwrap();
    assert_eq!(counts(cache.stats()), (0, 1, 1, 0, 0, 0), "after a set");
    assert_eq!(cache.get::<u32>("a").await.unwrap(), Some(1));
    assert_eq!(counts(cache.stats()), (1, 1, 1, 0, 0, 0), "after a hit");
    cache.get_many::<u32>(&["a", "x", "a", "y"]).await.unwrap();
    assert_eq!(
        counts(cache.stats()),
        (3, 3, 1, 0, 0, 0),
        "after get_many (2 hits, 2 misses)"
    );
    cache.set_many(&[("b", 2u32), ("c", 3)]).await.unwrap();
    assert_eq!(
        counts(cache.stats()),
        (3, 3, 3, 0, 0, 0),
        "after set_many of 2"
    );
    assert!(cache.delete("b").await.unwrap());
    assert!(!cache.delete("b").await.unwrap());
    assert_eq!(
        counts(cache.stats()),
        (3, 3, 3, 1, 0, 0),
        "deletes count only existing keys"
    );
    let v: u32 = cache
        .get_or_insert_with("d", None, || async { Ok::<_, String>(4) })
        .await
        .unwrap();
    assert_eq!(v, 4);
    assert_eq!(
        counts(cache.stats()),
        (3, 4, 4, 1, 1, 0),
        "after a loading miss"
    );
    let v: u32 = cache
        .get_or_insert_with("d", None, || async { Ok::<_, String>(5) })
        .await
        .unwrap();
    assert_eq!(v, 4);
    assert_eq!(
        counts(cache.stats()),
        (4, 4, 4, 1, 1, 0),
        "after a cached get_or_insert_with"
    );
    cache.set("s", "text").await.unwrap();
    cache.get::<u32>("s").await.unwrap_err();
    assert_eq!(
        counts(cache.stats()),
        (5, 4, 5, 1, 1, 1),
        "an undecodable read is a hit and an error"
    );
    cache
        .get_or_insert_with("e", None, || async { Err::<u32, _>("no".to_string()) })
        .await
        .unwrap_err();
    assert_eq!(
        counts(cache.stats()),
        (5, 5, 5, 1, 2, 2),
        "after a failed load"
    );
    // a, c, d, s remain.
    assert_eq!(cache.clear().await.unwrap(), 4);
    assert_eq!(
        counts(cache.stats()),
        (5, 5, 5, 5, 2, 2),
        "clear counts its deletes"
    );
    let ratio = cache.stats().hit_ratio();
    assert!((ratio - 0.5).abs() < 1e-9, "hit_ratio = {ratio}");
}

/// Cache: JSON has no NaN or infinity, so a value holding one is refused with a codec error and
/// nothing is written, rather than stored as `null` that no longer reads back as a number.
/// MessagePack has them: they round-trip.
pub async fn non_finite_floats_are_refused_and_nothing_is_written(ctx: &Ctx) {
    let cache = cache(ctx, "floats");
    cache.set("price", &1.5f64).await.unwrap();
    if ctx.codec() == CaseCodec::MsgPack {
        cache.set("nan", &f64::NAN).await.unwrap();
        assert!(cache.get::<f64>("nan").await.unwrap().unwrap().is_nan());
        let stored = read(ctx, &format!("{}nan", cache.prefix())).await.unwrap();
        assert!(ctx.codec().decode::<f64>(&stored).unwrap().is_nan());
        return;
    }
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = cache.set("price", &bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Codec, "{bad}: {err}");
        let err = cache
            .set("nested", &vec![(1, Some(bad))])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Codec, "nested {bad}: {err}");
    }
    assert_eq!(cache.get::<f64>("price").await.unwrap(), Some(1.5));
    assert_eq!(cache.get::<f64>("nested").await.unwrap(), None);
    // A real null is still fine.
    cache.set("maybe", &None::<f64>).await.unwrap();
    assert_eq!(cache.get::<Option<f64>>("maybe").await.unwrap(), Some(None));
}

/// Cache: a value is handed out as it was written, shared (the same object, on a store in this
/// process), and nobody can change it behind the cache's back: the `Arc` is immutable, and a
/// changed clone from `get` is only the caller's until written.
pub async fn shared_values_cannot_be_changed_behind_the_cache(ctx: &Ctx) {
    let cache = cache(ctx, "shared");
    let tags = vec!["new".to_string(), "sale".to_string()];
    cache.set("tags", &tags).await.unwrap();
    let first = cache
        .get_shared::<Vec<String>>("tags")
        .await
        .unwrap()
        .unwrap();
    let second = cache
        .get_shared::<Vec<String>>("tags")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((*first).clone(), tags);
    if ctx.store().as_local().is_some() {
        assert!(
            std::sync::Arc::ptr_eq(&first, &second),
            "a store in this process hands out the object it keeps"
        );
    }
    let mut mine = cache.get::<Vec<String>>("tags").await.unwrap().unwrap();
    mine.push("changed".into());
    assert_eq!(cache.get::<Vec<String>>("tags").await.unwrap(), Some(tags));

    let shared = std::sync::Arc::new(vec![1u32, 2, 3]);
    cache.set_shared("ids", shared.clone()).await.unwrap();
    let read = cache.get_shared::<Vec<u32>>("ids").await.unwrap().unwrap();
    assert_eq!(*read, *shared);
    if ctx.store().as_local().is_some() {
        assert!(
            std::sync::Arc::ptr_eq(&read, &shared),
            "set_shared keeps that Arc"
        );
    }
}

/// Cache: a key read as another type than it was written as is decoded from its bytes, or fails
/// with the same Codec error as without a kept object.
pub async fn reading_as_another_type_decodes_the_bytes(ctx: &Ctx) {
    let cache = cache(ctx, "retype");
    cache.set("n", &7u32).await.unwrap();
    assert_eq!(cache.get::<u64>("n").await.unwrap(), Some(7));
    assert_eq!(cache.get::<i16>("n").await.unwrap(), Some(7));
    let err = cache.get::<String>("n").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    // A str written is read back as a String without decoding it, and as bytes by other readers.
    cache.set("name", "Ada").await.unwrap();
    assert_eq!(
        cache.get::<String>("name").await.unwrap().as_deref(),
        Some("Ada")
    );
    let stored = read(ctx, &format!("{}name", cache.prefix())).await.unwrap();
    assert_eq!(ctx.codec().decode::<String>(&stored).unwrap(), "Ada");
}

/// Cache: exists, ttl, expire and persist, on keys of the namespace.
pub async fn exists_ttl_expire_and_persist(ctx: &Ctx) {
    let cache = cache(ctx, "lifetimes");
    assert!(!cache.exists("k").await.unwrap());
    assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::Missing);
    assert!(!cache.expire("k", LONG_TTL).await.unwrap());
    cache.set("k", &1u8).await.unwrap();
    assert!(cache.exists("k").await.unwrap());
    assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::Persistent);
    assert!(!cache.persist("k").await.unwrap(), "no TTL to remove");
    assert!(cache.expire("k", LONG_TTL).await.unwrap());
    assert!(matches!(cache.ttl("k").await.unwrap(), KeyTtl::ExpiresIn(left) if left <= LONG_TTL));
    assert!(cache.persist("k").await.unwrap());
    assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::Persistent);
    cache.set_with_ttl("short", &2u8, SHORT_TTL).await.unwrap();
    ctx.advance(PAST_SHORT_TTL).await;
    assert!(!cache.exists("short").await.unwrap());
    assert_eq!(cache.get::<u8>("short").await.unwrap(), None);
}

/// Cache: set_if_absent and set_if_present write only when their condition holds, and say so.
pub async fn conditional_sets_report_whether_they_wrote(ctx: &Ctx) {
    let cache = cache(ctx, "conditional");
    assert!(!cache.set_if_present("k", &1u32).await.unwrap());
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    assert!(cache.set_if_absent("k", &2u32).await.unwrap());
    assert!(!cache.set_if_absent("k", &3u32).await.unwrap());
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(2));
    assert!(cache.set_if_present("k", &4u32).await.unwrap());
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(4));
}

/// Cache: a typed compare-and-swap swaps only when the stored value is the expected one.
pub async fn typed_compare_and_swap_swaps_only_on_the_expected_value(ctx: &Ctx) {
    let cache = cache(ctx, "cas");
    let (v1, v2) = (("a".to_string(), 1u32), ("b".to_string(), 2u32));
    assert!(
        !cache
            .compare_and_swap("k", Some(&v1), Some(&v2))
            .await
            .unwrap()
    );
    assert!(cache.compare_and_swap("k", None, Some(&v1)).await.unwrap());
    assert!(!cache.compare_and_swap("k", None, Some(&v2)).await.unwrap());
    assert!(
        !cache
            .compare_and_swap("k", Some(&v2), Some(&v1))
            .await
            .unwrap()
    );
    assert!(
        cache
            .compare_and_swap("k", Some(&v1), Some(&v2))
            .await
            .unwrap()
    );
    assert_eq!(
        cache.get::<(String, u32)>("k").await.unwrap(),
        Some(v2.clone())
    );
    assert!(cache.compare_and_swap("k", Some(&v2), None).await.unwrap());
    assert!(!cache.exists("k").await.unwrap());
}

/// Cache: batch writes take a TTL, batch reads keep order, and delete_many counts existing keys.
pub async fn batches_with_a_ttl_and_delete_many(ctx: &Ctx) {
    let cache = cache(ctx, "batches");
    cache
        .set_many_with_ttl(&[("a", 1u32), ("b", 2)], SHORT_TTL)
        .await
        .unwrap();
    cache.set_many(&[("c", 3u32)]).await.unwrap();
    assert_eq!(
        cache.get_many::<u32>(&["c", "a", "x", "b"]).await.unwrap(),
        vec![Some(3), Some(1), None, Some(2)]
    );
    assert!(matches!(
        cache.ttl("a").await.unwrap(),
        KeyTtl::ExpiresIn(_)
    ));
    assert_eq!(cache.ttl("c").await.unwrap(), KeyTtl::Persistent);
    assert_eq!(cache.delete_many(&["a", "x", "c"]).await.unwrap(), 2);
    assert_eq!(
        cache.get_many::<u32>(&["a", "b", "c"]).await.unwrap(),
        vec![None, Some(2), None]
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(cache.get::<u32>("b").await.unwrap(), None);
    let err = cache.set_many(&[("ok", 1u32), ("", 2)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    assert_eq!(
        cache.get::<u32>("ok").await.unwrap(),
        None,
        "a bad batch wrote"
    );
}

/// Cache: invalidate_prefix deletes the keys of a sub-prefix of the namespace, and no others.
pub async fn invalidate_prefix_deletes_only_that_sub_prefix(ctx: &Ctx) {
    let other = cache(ctx, "inv2"); // its keys start with the namespace's letters
    let cache = cache(ctx, "inv");
    for key in ["list:1", "list:2", "lists", "item:1"] {
        cache.set(key, &1u8).await.unwrap();
    }
    other.set("list:1", &1u8).await.unwrap();
    assert_eq!(cache.invalidate_prefix("list:").await.unwrap(), 2);
    let left: Vec<bool> = futures::future::join_all(
        ["list:1", "list:2", "lists", "item:1"].map(|key| cache.exists(key)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert_eq!(left, [false, false, true, true]);
    assert!(other.exists("list:1").await.unwrap());
}

/// Cache: invalidate_pattern matches keys (without the namespace) as Redis `MATCH` does, on every
/// store: `*`, `?`, classes, ranges, negation and escapes; never outside the namespace.
pub async fn invalidate_pattern_follows_redis_glob_semantics(ctx: &Ctx) {
    let keys = [
        "list:1",
        "list:22",
        "list:",
        "lists",
        "user:1:name",
        "user:2:name",
        "user:2:mail",
        "a*b",
        "axb",
        "é1",
        "[x]",
    ];
    let cases: &[(&str, &[&str])] = &[
        ("list:*", &["list:1", "list:22", "list:"]),
        ("list:?", &["list:1"]),
        ("list:[0-9]*", &["list:1", "list:22"]),
        ("user:[^1]:*", &["user:2:name", "user:2:mail"]),
        ("user:*:name", &["user:1:name", "user:2:name"]),
        (r"a\*b", &["a*b"]),
        ("a?b", &["a*b", "axb"]),
        ("??1", &["é1"]), // `?` is one byte, `é` two
        (r"\[x\]", &["[x]"]),
        ("nothing*", &[]),
    ];
    let outside = cache(ctx, "pattern-outside");
    outside.set("list:1", &0u8).await.unwrap();
    let pattern_cache = cache(ctx, "pattern");
    for (pattern, expected) in cases {
        let cache = &pattern_cache;
        for key in keys {
            cache.set(key, &1u8).await.unwrap();
        }
        let deleted = cache.invalidate_pattern(pattern).await.unwrap();
        let mut gone = Vec::new();
        for key in keys {
            if !cache.exists(key).await.unwrap() {
                gone.push(key);
            }
        }
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        gone.sort_unstable();
        assert_eq!(gone, expected, "pattern {pattern:?}");
        assert_eq!(deleted, expected.len() as u64, "pattern {pattern:?}");
        cache.clear().await.unwrap();
    }
    assert!(
        outside.exists("list:1").await.unwrap(),
        "a key outside the namespace"
    );
}

/// Cache stats: a store that counts evictions and expirations reports them through the cache.
pub async fn stats_carry_the_stores_evictions_and_expirations(ctx: &Ctx) {
    let cache = cache(ctx, "departures");
    let stats = cache.stats();
    match ctx.store().departures() {
        Some(_) => assert!(stats.evictions.is_some() && stats.expirations.is_some()),
        None => assert!(stats.evictions.is_none() && stats.expirations.is_none()),
    }
}
