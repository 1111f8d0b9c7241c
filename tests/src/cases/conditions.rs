//! set conditions: Always, IfAbsent, IfPresent.

use cache_core::{KeyTtl, SetOptions};

use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, assert_value, b, put, put_ttl, read};
use crate::Ctx;

/// set: returns `true` if it wrote; an unconditional write always writes, present key or not.
pub async fn always_writes_and_returns_true(ctx: &Ctx) {
    let key = ctx.key("k");
    for value in ["one", "two"] {
        let wrote = ctx
            .store()
            .set(&key, b(value), SetOptions::new())
            .await
            .unwrap();
        assert!(wrote, "an unconditional set of {value:?} returned false");
        assert_value(read(ctx, &key).await, Some(value), "unconditional set");
    }
}

/// set: IfAbsent writes only when the key is absent, and returns `false` when it did not write.
pub async fn if_absent_writes_only_when_absent(ctx: &Ctx) {
    let key = ctx.key("k");
    let first = ctx
        .store()
        .set(&key, b("first"), SetOptions::new().if_absent())
        .await
        .unwrap();
    assert!(
        first,
        "IfAbsent on a missing key must write and return true"
    );
    let second = ctx
        .store()
        .set(&key, b("second"), SetOptions::new().if_absent())
        .await
        .unwrap();
    assert!(!second, "IfAbsent on a present key must return false");
    assert_value(
        read(ctx, &key).await,
        Some("first"),
        "IfAbsent on a present key must not write",
    );
}

/// set: IfPresent writes only when the key is present, and returns `false` when it did not write.
pub async fn if_present_writes_only_when_present(ctx: &Ctx) {
    let key = ctx.key("k");
    let wrote = ctx
        .store()
        .set(&key, b("ghost"), SetOptions::new().if_present())
        .await
        .unwrap();
    assert!(!wrote, "IfPresent on a missing key must return false");
    assert_eq!(
        read(ctx, &key).await,
        None,
        "IfPresent on a missing key must not create it"
    );
    put(ctx, &key, "old").await;
    let wrote = ctx
        .store()
        .set(&key, b("new"), SetOptions::new().if_present())
        .await
        .unwrap();
    assert!(
        wrote,
        "IfPresent on a present key must write and return true"
    );
    assert_value(read(ctx, &key).await, Some("new"), "IfPresent overwrite");
}

/// set: IfAbsent counts an expired key as absent.
pub async fn if_absent_treats_expired_key_as_absent(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "old", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    let wrote = ctx
        .store()
        .set(&key, b("new"), SetOptions::new().if_absent())
        .await
        .unwrap();
    assert!(wrote, "IfAbsent must treat an expired key as absent");
    assert_value(read(ctx, &key).await, Some("new"), "IfAbsent over expired");
    assert_eq!(
        ctx.store().ttl(&key).await.unwrap(),
        KeyTtl::Persistent,
        "the new entry has no TTL; the expired one's must not linger"
    );
}

/// set: IfPresent counts an expired key as absent, so it does not write.
pub async fn if_present_treats_expired_key_as_absent(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "old", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    let wrote = ctx
        .store()
        .set(&key, b("new"), SetOptions::new().if_present())
        .await
        .unwrap();
    assert!(!wrote, "IfPresent must treat an expired key as absent");
    assert_eq!(
        read(ctx, &key).await,
        None,
        "IfPresent on an expired key resurrected it"
    );
}

/// set: a write its condition prevents changes neither the value nor the TTL.
pub async fn refused_write_changes_neither_value_nor_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "kept").await;
    let wrote = ctx
        .store()
        .set(&key, b("x"), SetOptions::new().if_absent().ttl(SHORT_TTL))
        .await
        .unwrap();
    assert!(!wrote);
    assert_eq!(
        ctx.store().ttl(&key).await.unwrap(),
        KeyTtl::Persistent,
        "a refused IfAbsent write must not apply its TTL"
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_value(
        read(ctx, &key).await,
        Some("kept"),
        "a refused IfAbsent write changed the entry",
    );

    let missing = ctx.key("missing");
    let wrote = ctx
        .store()
        .set(
            &missing,
            b("x"),
            SetOptions::new().if_present().ttl(LONG_TTL),
        )
        .await
        .unwrap();
    assert!(!wrote);
    assert_eq!(
        ctx.store().ttl(&missing).await.unwrap(),
        KeyTtl::Missing,
        "a refused IfPresent write must not create the key"
    );
}
