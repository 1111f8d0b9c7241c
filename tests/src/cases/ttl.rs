//! Expiry: set with a TTL, ttl(), expire() and persist().

use std::time::Duration;

use cache_core::{KeyTtl, SetOptions};

use super::{
    LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, assert_value, b, ceil_millis, put, put_ttl, read,
};
use crate::Ctx;

/// Asserts `ExpiresIn(d)` with `0 < d <= max`.
#[track_caller]
fn assert_expires_within(ttl: KeyTtl, max: Duration, what: &str) {
    match ttl {
        KeyTtl::ExpiresIn(d) => assert!(
            !d.is_zero() && d <= max,
            "{what}: ExpiresIn({d:?}) is not within (0, {max:?}]"
        ),
        other => panic!("{what}: expected ExpiresIn(0 < d <= {max:?}), got {other:?}"),
    }
}

/// get / set: with a TTL the entry reads as absent once the TTL has passed.
pub async fn key_expires_after_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "v", SHORT_TTL).await;
    assert_value(
        read(ctx, &key).await,
        Some("v"),
        "a fresh key with a TTL must read",
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        read(ctx, &key).await,
        None,
        "a key must read as None after its TTL"
    );
}

/// set: a key with a TTL keeps its value until the TTL has passed.
pub async fn key_lives_until_its_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "v", Duration::from_millis(200)).await;
    ctx.advance(Duration::from_millis(50)).await;
    assert_value(
        read(ctx, &key).await,
        Some("v"),
        "a key expired before its TTL (200 ms) had passed",
    );
    assert!(ctx.store().exists(&key).await.unwrap());
    ctx.advance(Duration::from_millis(300)).await;
    assert_eq!(read(ctx, &key).await, None, "the key outlived its TTL");
}

/// ttl: a missing key is `Missing`.
pub async fn ttl_of_missing_key_is_missing(ctx: &Ctx) {
    assert_eq!(
        ctx.store().ttl(&ctx.key("missing")).await.unwrap(),
        KeyTtl::Missing
    );
}

/// ttl: a key set without TTL is `Persistent`.
pub async fn ttl_of_key_without_ttl_is_persistent(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "v").await;
    assert_eq!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::Persistent);
}

/// ttl: a key set with TTL `t` is `ExpiresIn(d)` with `0 < d <= t`, and `d` shrinks as time passes.
pub async fn ttl_of_key_with_ttl_is_within_bounds(ctx: &Ctx) {
    let key = ctx.key("k");
    let t = Duration::from_secs(10);
    put_ttl(ctx, &key, "v", t).await;
    let first = ctx.store().ttl(&key).await.unwrap();
    assert_expires_within(first, t, "right after set");
    let waited = Duration::from_millis(200);
    ctx.advance(waited).await;
    let later = ctx.store().ttl(&key).await.unwrap();
    assert_expires_within(later, t - waited, "after 200 ms");
}

/// ttl: an expired key is `Missing`.
pub async fn ttl_of_expired_key_is_missing(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "v", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::Missing);
}

/// TTL rule: a TTL has millisecond precision and is rounded up, so `ttl` reports at most `t` rounded up.
pub async fn fractional_ttl_is_rounded_up_to_millis(ctx: &Ctx) {
    let key = ctx.key("k");
    let t = Duration::from_micros(150_500);
    put_ttl(ctx, &key, "v", t).await;
    let reported = ctx.store().ttl(&key).await.unwrap();
    assert_expires_within(reported, ceil_millis(t), "a 150.5 ms TTL");
    if let KeyTtl::ExpiresIn(d) = reported {
        assert_eq!(
            d.subsec_nanos() % 1_000_000,
            0,
            "ttl() must report whole milliseconds, got {d:?}"
        );
    }
    ctx.advance(Duration::from_millis(400)).await;
    assert_eq!(read(ctx, &key).await, None, "a 150.5 ms TTL never expired");
}

/// set: without a TTL the entry never expires, even if the old one had a TTL.
pub async fn set_without_ttl_removes_old_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "old", SHORT_TTL).await;
    put(ctx, &key, "new").await;
    assert_eq!(
        ctx.store().ttl(&key).await.unwrap(),
        KeyTtl::Persistent,
        "a set without TTL must remove the old TTL"
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_value(
        read(ctx, &key).await,
        Some("new"),
        "the old TTL expired a key rewritten without TTL",
    );
}

/// set: writing replaces the TTL too, so a shorter new TTL wins over a longer old one.
pub async fn set_with_ttl_replaces_old_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "old", LONG_TTL).await;
    put_ttl(ctx, &key, "new", SHORT_TTL).await;
    assert_expires_within(
        ctx.store().ttl(&key).await.unwrap(),
        SHORT_TTL,
        "after rewriting with a short TTL",
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        read(ctx, &key).await,
        None,
        "the new, shorter TTL did not apply"
    );
}

/// TTL rule: an entry whose TTL has passed is indistinguishable from an absent one, to every read.
pub async fn expired_key_is_absent_to_every_read(ctx: &Ctx) {
    let (key, other) = (ctx.key("expired"), ctx.key("live"));
    put_ttl(ctx, &key, "v", SHORT_TTL).await;
    put(ctx, &other, "o").await;
    ctx.advance(PAST_SHORT_TTL).await;
    let store = ctx.store();
    assert!(
        !store.exists(&key).await.unwrap(),
        "exists() saw an expired key"
    );
    assert_eq!(
        store.get_many(&[&key, &other]).await.unwrap(),
        vec![None, Some(b("o"))],
        "get_many saw an expired key"
    );
    assert_eq!(store.ttl(&key).await.unwrap(), KeyTtl::Missing);
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "get saw an expired key"
    );
    let listed = super::keys_in_ns(ctx).await;
    assert!(
        !listed.contains(&key),
        "scan listed an expired key: {listed:?}"
    );
    assert!(
        listed.contains(&other),
        "scan missed a live key: {listed:?}"
    );
}

/// expire: an existing key expires after `ttl` and keeps its value until then.
pub async fn expire_makes_existing_key_expire(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "v").await;
    let ttl = Duration::from_millis(200);
    assert!(
        ctx.store().expire(&key, ttl).await.unwrap(),
        "expire on an existing key must return true"
    );
    assert_expires_within(ctx.store().ttl(&key).await.unwrap(), ttl, "after expire");
    ctx.advance(Duration::from_millis(50)).await;
    assert_value(
        read(ctx, &key).await,
        Some("v"),
        "expire must keep the value until the TTL passes",
    );
    ctx.advance(Duration::from_millis(300)).await;
    assert_eq!(read(ctx, &key).await, None, "expire's TTL did not apply");
}

/// expire: returns `false` for a missing key, and does not create it.
pub async fn expire_of_missing_key_creates_nothing(ctx: &Ctx) {
    let key = ctx.key("missing");
    assert!(
        !ctx.store().expire(&key, LONG_TTL).await.unwrap(),
        "expire on a missing key must return false"
    );
    assert_eq!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::Missing);
    assert!(!ctx.store().exists(&key).await.unwrap());
}

/// expire: an expired key is missing, so expire returns `false` and does not revive it.
pub async fn expire_of_expired_key_returns_false(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "v", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    assert!(
        !ctx.store().expire(&key, LONG_TTL).await.unwrap(),
        "expire on an expired key must return false"
    );
    assert_eq!(read(ctx, &key).await, None, "expire revived an expired key");
}

/// expire: sets the TTL even over an existing one, longer or shorter.
pub async fn expire_replaces_existing_ttl(ctx: &Ctx) {
    let (short_to_long, long_to_short) = (ctx.key("s2l"), ctx.key("l2s"));
    put_ttl(ctx, &short_to_long, "a", SHORT_TTL).await;
    put_ttl(ctx, &long_to_short, "b", LONG_TTL).await;
    assert!(ctx.store().expire(&short_to_long, LONG_TTL).await.unwrap());
    assert!(ctx.store().expire(&long_to_short, SHORT_TTL).await.unwrap());
    ctx.advance(PAST_SHORT_TTL).await;
    assert_value(
        read(ctx, &short_to_long).await,
        Some("a"),
        "expire with a longer TTL did not extend the key's life",
    );
    assert_eq!(
        read(ctx, &long_to_short).await,
        None,
        "expire with a shorter TTL did not shorten the key's life"
    );
}

/// persist: removes a key's TTL and returns `true` when the key existed and had one.
pub async fn persist_removes_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "v", SHORT_TTL).await;
    assert!(
        ctx.store().persist(&key).await.unwrap(),
        "persist on a key with a TTL must return true"
    );
    assert_eq!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::Persistent);
    ctx.advance(PAST_SHORT_TTL).await;
    assert_value(
        read(ctx, &key).await,
        Some("v"),
        "a persisted key still expired",
    );
    assert!(
        !ctx.store().persist(&key).await.unwrap(),
        "a second persist must return false: the key no longer has a TTL"
    );
}

/// persist: returns `false` for a key that exists without a TTL, and leaves it alone.
pub async fn persist_of_key_without_ttl_returns_false(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "v").await;
    assert!(
        !ctx.store().persist(&key).await.unwrap(),
        "persist on a key without TTL must return false"
    );
    assert_value(
        read(ctx, &key).await,
        Some("v"),
        "persist changed the value",
    );
    assert_eq!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::Persistent);
}

/// persist: returns `false` for a missing or expired key and does not create or revive it.
pub async fn persist_of_missing_or_expired_key_returns_false(ctx: &Ctx) {
    let (missing, expired) = (ctx.key("missing"), ctx.key("expired"));
    assert!(!ctx.store().persist(&missing).await.unwrap());
    put_ttl(ctx, &expired, "v", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    assert!(
        !ctx.store().persist(&expired).await.unwrap(),
        "persist on an expired key must return false"
    );
    assert_eq!(
        read(ctx, &expired).await,
        None,
        "persist revived an expired key"
    );
    assert_eq!(read(ctx, &missing).await, None, "persist created a key");
    // The store still accepts a normal write afterwards.
    let wrote = ctx
        .store()
        .set(&expired, b("again"), SetOptions::new().if_absent())
        .await
        .unwrap();
    assert!(wrote, "the expired key must count as absent after persist");
}
