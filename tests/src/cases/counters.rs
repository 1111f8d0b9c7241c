//! incr_by.

use std::time::Duration;

use cache_core::{ErrorKind, KeyTtl};

use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, assert_value, expect_kind, put, put_ttl, read};
use crate::Ctx;

/// incr_by: a missing key starts at 0, so the first call returns `delta` (positive, negative or zero).
pub async fn incr_of_missing_key_starts_at_zero(ctx: &Ctx) {
    for (name, delta) in [("pos", 7), ("neg", -3), ("zero", 0)] {
        let key = ctx.key(name);
        let got = ctx.store().incr_by(&key, delta, None).await.unwrap();
        assert_eq!(got, delta, "the first incr_by({delta}) must return {delta}");
        assert_value(
            read(ctx, &key).await,
            Some(delta.to_string()),
            "incr_by on a missing key must create it",
        );
        assert_eq!(
            ctx.store().ttl(&key).await.unwrap(),
            KeyTtl::Persistent,
            "incr_by without ttl_on_create creates a persistent counter"
        );
    }
}

/// incr_by: adds `delta` and returns the new value.
pub async fn incr_accumulates_positive_and_negative_deltas(ctx: &Ctx) {
    let key = ctx.key("n");
    let store = ctx.store();
    assert_eq!(store.incr_by(&key, 5, None).await.unwrap(), 5);
    assert_eq!(store.incr_by(&key, 10, None).await.unwrap(), 15);
    assert_eq!(store.incr_by(&key, -20, None).await.unwrap(), -5);
    assert_eq!(store.incr_by(&key, 0, None).await.unwrap(), -5);
    assert_eq!(store.incr_by(&key, 5, None).await.unwrap(), 0);
}

/// incr_by: counters are stored as decimal ASCII, so `get` reads e.g. `b"42"`.
pub async fn counter_is_stored_as_decimal_ascii(ctx: &Ctx) {
    let (pos, neg, zero) = (ctx.key("pos"), ctx.key("neg"), ctx.key("zero"));
    ctx.store().incr_by(&pos, 40, None).await.unwrap();
    ctx.store().incr_by(&pos, 2, None).await.unwrap();
    ctx.store().incr_by(&neg, -7, None).await.unwrap();
    ctx.store().incr_by(&zero, 3, None).await.unwrap();
    ctx.store().incr_by(&zero, -3, None).await.unwrap();
    assert_value(read(ctx, &pos).await, Some(b"42"), "counter 42");
    assert_value(read(ctx, &neg).await, Some(b"-7"), "counter -7");
    assert_value(read(ctx, &zero).await, Some(b"0"), "counter 0");
}

/// incr_by: a value written by `set` as a decimal `i64` is a counter.
pub async fn incr_reads_decimal_value_written_by_set(ctx: &Ctx) {
    let (a, c) = (ctx.key("a"), ctx.key("c"));
    put(ctx, &a, "41").await;
    put(ctx, &c, "-9223372036854775807").await;
    assert_eq!(ctx.store().incr_by(&a, 1, None).await.unwrap(), 42);
    assert_eq!(ctx.store().incr_by(&c, -1, None).await.unwrap(), i64::MIN);
    assert_value(read(ctx, &a).await, Some(b"42"), "41 + 1");
}

/// incr_by: a stored value that is not a decimal `i64` fails with NotAnInteger and is left unchanged.
pub async fn incr_of_non_integer_fails_and_keeps_value(ctx: &Ctx) {
    let bad: [&[u8]; 8] = [
        b"abc",
        b"1.5",
        b"",
        b"12abc",
        b"9223372036854775808",
        b"\xff\xfe",
        b"1e3",
        b"--1",
    ];
    for (i, value) in bad.iter().enumerate() {
        let key = ctx.key(&format!("bad{i}"));
        put(ctx, &key, value).await;
        let err = expect_kind(
            ctx.store().incr_by(&key, 1, None).await,
            ErrorKind::NotAnInteger,
            &format!("incr_by on {:?}", String::from_utf8_lossy(value)),
        );
        assert!(!err.message().is_empty());
        assert_value(
            read(ctx, &key).await,
            Some(value),
            "a failed incr_by must leave the value unchanged",
        );
    }
}

/// incr_by: a result outside `i64` fails with Overflow and leaves the value unchanged.
pub async fn incr_overflow_fails_and_keeps_value(ctx: &Ctx) {
    let (hi, lo) = (ctx.key("hi"), ctx.key("lo"));
    assert_eq!(
        ctx.store().incr_by(&hi, i64::MAX, None).await.unwrap(),
        i64::MAX
    );
    expect_kind(
        ctx.store().incr_by(&hi, 1, None).await,
        ErrorKind::Overflow,
        "i64::MAX + 1",
    );
    assert_value(
        read(ctx, &hi).await,
        Some(i64::MAX.to_string()),
        "an overflowing incr_by changed the value",
    );
    put(ctx, &lo, i64::MIN.to_string()).await;
    expect_kind(
        ctx.store().incr_by(&lo, -1, None).await,
        ErrorKind::Overflow,
        "i64::MIN - 1",
    );
    expect_kind(
        ctx.store().incr_by(&lo, i64::MIN, None).await,
        ErrorKind::Overflow,
        "i64::MIN + i64::MIN",
    );
    assert_value(
        read(ctx, &lo).await,
        Some(i64::MIN.to_string()),
        "an underflowing incr_by changed the value",
    );
    // The counter still works for deltas that fit.
    assert_eq!(
        ctx.store().incr_by(&hi, -1, None).await.unwrap(),
        i64::MAX - 1
    );
}

/// incr_by: `ttl_on_create` is applied when this call creates the key.
pub async fn incr_ttl_on_create_applies_when_creating(ctx: &Ctx) {
    let key = ctx.key("n");
    assert_eq!(
        ctx.store().incr_by(&key, 1, Some(SHORT_TTL)).await.unwrap(),
        1
    );
    match ctx.store().ttl(&key).await.unwrap() {
        KeyTtl::ExpiresIn(d) => assert!(d <= SHORT_TTL, "ttl_on_create gave {d:?}"),
        other => panic!("incr_by with ttl_on_create created a key with {other:?}"),
    }
    // A later call with a different ttl_on_create must not extend it.
    assert_eq!(
        ctx.store().incr_by(&key, 1, Some(LONG_TTL)).await.unwrap(),
        2
    );
    match ctx.store().ttl(&key).await.unwrap() {
        KeyTtl::ExpiresIn(d) => assert!(
            d <= SHORT_TTL,
            "a second incr_by replaced the TTL with its own ttl_on_create ({d:?})"
        ),
        other => panic!("a second incr_by turned the TTL into {other:?}"),
    }
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        read(ctx, &key).await,
        None,
        "the counter outlived ttl_on_create"
    );
}

/// incr_by: an existing key keeps its TTL (or lack of one); `ttl_on_create` is ignored.
pub async fn incr_ttl_on_create_is_ignored_for_existing_key(ctx: &Ctx) {
    let (persistent, short) = (ctx.key("persistent"), ctx.key("short"));
    put(ctx, &persistent, "5").await;
    assert_eq!(
        ctx.store()
            .incr_by(&persistent, 1, Some(SHORT_TTL))
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        ctx.store().ttl(&persistent).await.unwrap(),
        KeyTtl::Persistent,
        "incr_by gave an existing persistent key its ttl_on_create"
    );
    put_ttl(ctx, &short, "10", Duration::from_millis(200)).await;
    assert_eq!(ctx.store().incr_by(&short, 1, None).await.unwrap(), 11);
    assert!(
        matches!(ctx.store().ttl(&short).await.unwrap(), KeyTtl::ExpiresIn(_)),
        "incr_by without ttl_on_create removed an existing key's TTL"
    );
    ctx.advance(Duration::from_millis(350)).await;
    assert_value(
        read(ctx, &persistent).await,
        Some(b"6"),
        "the persistent counter expired",
    );
    assert_eq!(
        read(ctx, &short).await,
        None,
        "incr_by dropped the existing TTL of the counter"
    );
}

/// incr_by: an expired key is absent, so the counter starts over at 0 with `ttl_on_create`.
pub async fn incr_of_expired_key_starts_over(ctx: &Ctx) {
    let key = ctx.key("n");
    put_ttl(ctx, &key, "100", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        ctx.store().incr_by(&key, 1, Some(LONG_TTL)).await.unwrap(),
        1,
        "incr_by on an expired counter must start at 0"
    );
    assert!(
        matches!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::ExpiresIn(d) if d > SHORT_TTL),
        "re-creating an expired counter must apply ttl_on_create"
    );
}
