//! Key shapes: unicode, the maximum length, case sensitivity.

use super::{assert_value, put, read, scan_all};
use crate::Ctx;

/// Keys are UTF-8 strings: a non-ASCII key round-trips through every call and appears in scan as written.
pub async fn unicode_key_round_trips_and_scans(ctx: &Ctx) {
    let key = ctx.key("ключ-🔑-鍵");
    let sibling = ctx.key("ключ-🔒-鍵");
    put(ctx, &key, "значение").await;
    put(ctx, &sibling, "other").await;
    assert_value(
        read(ctx, &key).await,
        Some("значение"),
        "unicode key round trip",
    );
    assert!(ctx.store().exists(&key).await.unwrap());
    let listed = scan_all(ctx, &ctx.key("ключ-🔑"), 10).await;
    assert_eq!(
        listed.into_iter().collect::<Vec<_>>(),
        vec![key.clone()],
        "scan by a unicode prefix must return the key exactly as written"
    );
    assert_eq!(
        ctx.store()
            .incr_by(&ctx.key("счёт"), 2, None)
            .await
            .unwrap(),
        2
    );
    assert!(ctx.store().delete(&key).await.unwrap());
    assert_value(
        read(ctx, &sibling).await,
        Some("other"),
        "deleting one unicode key removed another",
    );
}

/// Key rule: a key of exactly `max_key_len` bytes is valid.
pub async fn key_of_max_len_is_accepted(ctx: &Ctx) {
    let max = ctx.store().limits().max_key_len;
    if max > 1024 * 1024 {
        return; // Too big to be worth writing (e.g. Redis's 512 MiB).
    }
    let key = ctx.key(&"k".repeat(max - ctx.ns().len()));
    assert_eq!(key.len(), max);
    put(ctx, &key, "v").await;
    assert_value(read(ctx, &key).await, Some("v"), "a max_key_len key");
    assert!(ctx.store().delete(&key).await.unwrap());
}

/// Keys are compared byte for byte: keys that differ only in case are distinct.
pub async fn keys_differing_only_in_case_are_distinct(ctx: &Ctx) {
    let (lower, upper) = (ctx.key("key"), ctx.key("KEY"));
    put(ctx, &lower, "lower").await;
    put(ctx, &upper, "upper").await;
    assert_value(read(ctx, &lower).await, Some("lower"), "lower-case key");
    assert_value(read(ctx, &upper).await, Some("upper"), "upper-case key");
}
