//! delete.

use super::{PAST_SHORT_TTL, SHORT_TTL, assert_value, put, put_ttl, read};
use crate::Ctx;

/// delete: returns `true` for an existing key; afterwards the key reads as `None`.
pub async fn delete_of_existing_key_returns_true(ctx: &Ctx) {
    let (key, other) = (ctx.key("k"), ctx.key("other"));
    put(ctx, &key, "v").await;
    put(ctx, &other, "o").await;
    assert!(
        ctx.store().delete(&key).await.unwrap(),
        "deleting an existing key must return true"
    );
    assert_eq!(read(ctx, &key).await, None, "a deleted key still reads");
    assert!(!ctx.store().exists(&key).await.unwrap());
    assert_value(
        read(ctx, &other).await,
        Some("o"),
        "delete removed a different key",
    );
    assert!(
        !ctx.store().delete(&key).await.unwrap(),
        "deleting the same key twice must return false the second time"
    );
}

/// delete: deleting a missing key returns `false`.
pub async fn delete_of_missing_key_returns_false(ctx: &Ctx) {
    let key = ctx.key("missing");
    assert!(
        !ctx.store().delete(&key).await.unwrap(),
        "deleting a never-set key must return false"
    );
    assert_eq!(read(ctx, &key).await, None);
}

/// delete: deleting an expired key returns `false`.
pub async fn delete_of_expired_key_returns_false(ctx: &Ctx) {
    let key = ctx.key("k");
    put_ttl(ctx, &key, "v", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    assert!(
        !ctx.store().delete(&key).await.unwrap(),
        "deleting an expired key must return false"
    );
    assert_eq!(read(ctx, &key).await, None);
}

/// delete: afterwards the key is absent, so it can be written again (even with IfAbsent).
pub async fn deleted_key_can_be_set_again(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "first").await;
    assert!(ctx.store().delete(&key).await.unwrap());
    let wrote = ctx
        .store()
        .set(
            &key,
            super::b("second"),
            cache_core::SetOptions::new().if_absent(),
        )
        .await
        .unwrap();
    assert!(wrote, "IfAbsent after delete must write");
    assert_value(read(ctx, &key).await, Some("second"), "re-set after delete");
}
