//! get / set / exists basics, value shapes, ping and capabilities.

use bytes::Bytes;
use cache_core::SetOptions;

use super::{assert_value, b, put, read};
use crate::Ctx;

/// get: a key that was never set reads as `None`.
pub async fn get_of_missing_key_is_none(ctx: &Ctx) {
    assert_eq!(ctx.store().get(&ctx.key("missing")).await.unwrap(), None);
}

/// get: a key reads back exactly the bytes last written.
pub async fn set_then_get_round_trips(ctx: &Ctx) {
    let key = ctx.key("k");
    assert!(
        ctx.store()
            .set(&key, Bytes::from_static(b"v"), SetOptions::new())
            .await
            .unwrap(),
        "an unconditional set must return true"
    );
    assert_eq!(
        ctx.store().get(&key).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

/// set: writing a key again replaces its value (get reads the bytes *last* written).
pub async fn set_overwrites_previous_value(ctx: &Ctx) {
    let key = ctx.key("k");
    put(ctx, &key, "first value, longer").await;
    put(ctx, &key, "second").await;
    assert_value(
        read(ctx, &key).await,
        Some(b"second"),
        "a second set must replace the first value entirely",
    );
}

/// get: an empty value reads back as an empty value, not as a miss.
pub async fn empty_value_round_trips(ctx: &Ctx) {
    let key = ctx.key("empty");
    put(ctx, &key, b"").await;
    assert_value(
        read(ctx, &key).await,
        Some(b""),
        "an empty value must read back as Some(empty), not None",
    );
    assert!(
        ctx.store().exists(&key).await.unwrap(),
        "a key holding an empty value exists"
    );
}

/// get: a 1 MiB value reads back byte for byte.
pub async fn one_mib_value_round_trips(ctx: &Ctx) {
    let key = ctx.key("big");
    let value: Vec<u8> = (0..1024 * 1024)
        .map(|i: u32| (i * 31 % 251) as u8)
        .collect();
    put(ctx, &key, &value).await;
    let got = read(ctx, &key).await.expect("the 1 MiB value is missing");
    assert_eq!(got.len(), value.len(), "the 1 MiB value changed length");
    assert!(
        got == value,
        "the 1 MiB value came back with different bytes"
    );
}

/// get: binary values that are not UTF-8 (every byte 0..=255, NULs, invalid sequences) round-trip.
pub async fn binary_value_round_trips(ctx: &Ctx) {
    let key = ctx.key("bin");
    let mut value: Vec<u8> = (0..=255u8).rev().collect();
    value.extend_from_slice(&[0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x00]);
    assert!(std::str::from_utf8(&value).is_err());
    put(ctx, &key, &value).await;
    assert_value(
        read(ctx, &key).await,
        Some(&value),
        "a non-UTF-8 binary value must round-trip unchanged",
    );
}

/// exists: true for a live key, false for a missing one and after a delete.
pub async fn exists_reflects_presence(ctx: &Ctx) {
    let key = ctx.key("k");
    assert!(
        !ctx.store().exists(&key).await.unwrap(),
        "a never-set key must not exist"
    );
    put(ctx, &key, "v").await;
    assert!(
        ctx.store().exists(&key).await.unwrap(),
        "a key that was set must exist"
    );
    assert!(ctx.store().delete(&key).await.unwrap());
    assert!(
        !ctx.store().exists(&key).await.unwrap(),
        "a deleted key must not exist"
    );
}

/// ping: the store answers.
pub async fn ping_answers(ctx: &Ctx) {
    ctx.store()
        .ping()
        .await
        .unwrap_or_else(|e| panic!("ping failed: {e}"));
    // A ping must not have written anything visible.
    super::assert_ns_empty(ctx, "after ping").await;
    put(ctx, &ctx.key("after-ping"), b("ok")).await;
    ctx.store().ping().await.expect("a second ping failed");
}

/// capabilities/limits: callable, stable between calls, and large enough for the contract's own cases
/// (1 MiB values, keys of a few hundred bytes).
pub async fn capabilities_and_limits_are_stable(ctx: &Ctx) {
    let caps = ctx.store().capabilities();
    assert_eq!(caps, ctx.caps(), "capabilities changed between calls");
    let limits = ctx.store().limits();
    assert_eq!(limits, ctx.store().limits(), "limits changed between calls");
    assert!(
        limits.max_key_len >= 250,
        "max_key_len = {} is too small for namespaced keys",
        limits.max_key_len
    );
    assert!(
        limits.max_value_len >= 1024 * 1024,
        "max_value_len = {} is below the 1 MiB the contract promises",
        limits.max_value_len
    );
}
