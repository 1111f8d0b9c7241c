//! compare_and_swap (single-task semantics; races are in `concurrency`).

use cache_core::KeyTtl;

use super::{LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, assert_value, b, put, put_ttl, read};
use crate::Ctx;

/// compare_and_swap: when the current value equals `expected`, it writes `new` and returns `true`.
pub async fn swaps_when_value_matches(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "v1").await;
    let swapped = ctx
        .store()
        .compare_and_swap(&key, Some(b"v1"), Some(b("v2")), None)
        .await
        .unwrap();
    assert!(swapped, "a matching compare_and_swap must return true");
    assert_value(read(ctx, &key).await, Some("v2"), "after a matching swap");
    // And it can chain from the new value, including to an empty value.
    assert!(
        ctx.store()
            .compare_and_swap(&key, Some(b"v2"), Some(b("")), None)
            .await
            .unwrap()
    );
    assert_value(read(ctx, &key).await, Some(""), "swap to an empty value");
    assert!(
        ctx.store()
            .compare_and_swap(&key, Some(b""), Some(b("v3")), None)
            .await
            .unwrap(),
        "an empty current value must match expected Some(b\"\") (and not None)"
    );
}

/// compare_and_swap: if the current value differs from `expected`, nothing changes and it returns `false`.
pub async fn does_not_swap_when_value_differs(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "actual", LONG_TTL).await;
    for expected in [&b"other"[..], b"actua", b"actual!", b""] {
        let swapped = ctx
            .store()
            .compare_and_swap(&key, Some(expected), Some(b("new")), None)
            .await
            .unwrap();
        assert!(
            !swapped,
            "compare_and_swap swapped although {:?} != \"actual\"",
            String::from_utf8_lossy(expected)
        );
    }
    let swapped = ctx
        .store()
        .compare_and_swap(&key, None, Some(b("new")), None)
        .await
        .unwrap();
    assert!(!swapped, "expected None must not match a present key");
    assert_value(
        read(ctx, &key).await,
        Some("actual"),
        "a failed swap changed the value",
    );
    assert!(
        matches!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::ExpiresIn(_)),
        "a failed swap changed the TTL"
    );
}

/// compare_and_swap: `expected: None` means the key must be absent; then it creates the key.
pub async fn expected_none_requires_absent_key(ctx: &Ctx) {
    let key = ctx.key("k");
    assert!(
        ctx.store()
            .compare_and_swap(&key, None, Some(b("created")), None)
            .await
            .unwrap(),
        "expected None on a missing key must swap"
    );
    assert_value(read(ctx, &key).await, Some("created"), "CAS create");
    assert_eq!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::Persistent);
    assert!(
        !ctx.store()
            .compare_and_swap(&key, None, Some(b("again")), None)
            .await
            .unwrap(),
        "expected None on a now-present key must not swap"
    );
    assert_value(read(ctx, &key).await, Some("created"), "second CAS create");
}

/// compare_and_swap: an expired key is absent, so it matches `expected: None` and not its old value.
pub async fn expected_none_matches_expired_key(ctx: &Ctx) {
    let (a, c) = (ctx.key("a"), ctx.key("c"));
    put_ttl(ctx, &a, "old", SHORT_TTL).await;
    put_ttl(ctx, &c, "old", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    assert!(
        !ctx.store()
            .compare_and_swap(&c, Some(b"old"), Some(b("new")), None)
            .await
            .unwrap(),
        "an expired value must not match expected Some(old)"
    );
    assert_eq!(read(ctx, &c).await, None, "a failed swap revived the key");
    assert!(
        ctx.store()
            .compare_and_swap(&a, None, Some(b("new")), None)
            .await
            .unwrap(),
        "an expired key must match expected None"
    );
    assert_value(read(ctx, &a).await, Some("new"), "CAS over expired key");
    assert_eq!(
        ctx.store().ttl(&a).await.unwrap(),
        KeyTtl::Persistent,
        "the swapped-in value has no TTL"
    );
}

/// compare_and_swap: expecting a value of a missing key fails and creates nothing.
pub async fn expected_value_on_missing_key_fails(ctx: &Ctx) {
    let key = ctx.key("missing");
    for expected in [&b"x"[..], b""] {
        assert!(
            !ctx.store()
                .compare_and_swap(&key, Some(expected), Some(b("new")), None)
                .await
                .unwrap(),
            "expected Some({:?}) on a missing key must not swap",
            String::from_utf8_lossy(expected)
        );
    }
    assert_eq!(read(ctx, &key).await, None, "a failed swap created the key");
}

/// compare_and_swap: `new: None` deletes the key when `expected` matches, and only then.
pub async fn new_none_deletes_key(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "v").await;
    assert!(
        !ctx.store()
            .compare_and_swap(&key, Some(b"other"), None, None)
            .await
            .unwrap(),
        "a mismatching delete-swap must return false"
    );
    assert_value(read(ctx, &key).await, Some("v"), "mismatching delete-swap");
    assert!(
        ctx.store()
            .compare_and_swap(&key, Some(b"v"), None, None)
            .await
            .unwrap(),
        "a matching delete-swap must return true"
    );
    assert_eq!(read(ctx, &key).await, None, "new None must delete the key");
    assert!(!ctx.store().exists(&key).await.unwrap());
}

/// compare_and_swap: `ttl` is the TTL of the new value.
pub async fn swap_applies_new_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "v1").await;
    assert!(
        ctx.store()
            .compare_and_swap(&key, Some(b"v1"), Some(b("v2")), Some(SHORT_TTL))
            .await
            .unwrap()
    );
    assert!(
        matches!(ctx.store().ttl(&key).await.unwrap(), KeyTtl::ExpiresIn(d) if d <= SHORT_TTL),
        "the swapped value must carry the given TTL"
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(read(ctx, &key).await, None, "the swap's TTL did not apply");
}

/// compare_and_swap: `ttl: None` means no expiry, even if the old value had a TTL.
pub async fn swap_without_ttl_clears_old_ttl(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "v1", SHORT_TTL).await;
    assert!(
        ctx.store()
            .compare_and_swap(&key, Some(b"v1"), Some(b("v2")), None)
            .await
            .unwrap()
    );
    assert_eq!(
        ctx.store().ttl(&key).await.unwrap(),
        KeyTtl::Persistent,
        "a swap without TTL must leave a persistent value"
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_value(
        read(ctx, &key).await,
        Some("v2"),
        "the old TTL expired the swapped value",
    );
}
