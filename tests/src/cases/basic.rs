//! get / set basics.

use bytes::Bytes;
use cache_core::SetOptions;

use crate::Ctx;

/// A key that was never set reads as `None`.
pub async fn get_of_missing_key_is_none(ctx: &Ctx) {
    assert_eq!(ctx.store().get(&ctx.key("missing")).await.unwrap(), None);
}

/// A key reads back exactly the bytes written.
pub async fn set_then_get_round_trips(ctx: &Ctx) {
    let key = ctx.key("k");
    assert!(
        ctx.store()
            .set(&key, Bytes::from_static(b"v"), SetOptions::new())
            .await
            .unwrap()
    );
    assert_eq!(
        ctx.store().get(&key).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}
