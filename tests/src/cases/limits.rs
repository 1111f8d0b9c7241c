//! Validation rules that hold for every method: keys, value sizes and TTLs.

use std::time::Duration;

use bytes::Bytes;
use cache_core::{ErrorKind, KeyTtl, MAX_TTL, SetOptions};

use super::{
    LONG_TTL, PAST_SHORT_TTL, assert_ns_empty, assert_value, b, expect_kind, overlong_key, put,
    read,
};
use crate::Ctx;

/// Only stores whose value limit is at most this get the oversized-value cases (Redis allows 512 MiB).
const MAX_TESTED_VALUE_LEN: usize = 8 * 1024 * 1024;
/// Only stores whose key limit is at most this get the overlong-key cases.
const MAX_TESTED_KEY_LEN: usize = 1024 * 1024;

/// Calls every method that takes a key with `bad` and checks each fails with InvalidKey.
async fn every_method_rejects(ctx: &Ctx, bad: &str, label: &str) {
    let store = ctx.store();
    let good = ctx.key("good");
    let what = |method: &str| format!("{method} with {label}");
    expect_kind(store.get(bad).await, ErrorKind::InvalidKey, &what("get"));
    expect_kind(
        store.set(bad, b("v"), SetOptions::new()).await,
        ErrorKind::InvalidKey,
        &what("set"),
    );
    expect_kind(
        store
            .set(bad, b("v"), SetOptions::new().if_absent().ttl(LONG_TTL))
            .await,
        ErrorKind::InvalidKey,
        &what("set(IfAbsent, ttl)"),
    );
    expect_kind(
        store.get_many(&[&good, bad]).await,
        ErrorKind::InvalidKey,
        &what("get_many"),
    );
    expect_kind(
        store
            .set_many(&[(&good, b("v")), (bad, b("v"))], None)
            .await,
        ErrorKind::InvalidKey,
        &what("set_many"),
    );
    expect_kind(
        store.delete(bad).await,
        ErrorKind::InvalidKey,
        &what("delete"),
    );
    expect_kind(
        store.delete_many(&[&good, bad]).await,
        ErrorKind::InvalidKey,
        &what("delete_many"),
    );
    expect_kind(
        store.exists(bad).await,
        ErrorKind::InvalidKey,
        &what("exists"),
    );
    expect_kind(store.ttl(bad).await, ErrorKind::InvalidKey, &what("ttl"));
    expect_kind(
        store.expire(bad, LONG_TTL).await,
        ErrorKind::InvalidKey,
        &what("expire"),
    );
    expect_kind(
        store.persist(bad).await,
        ErrorKind::InvalidKey,
        &what("persist"),
    );
    expect_kind(
        store.incr_by(bad, 1, None).await,
        ErrorKind::InvalidKey,
        &what("incr_by"),
    );
    expect_kind(
        store.compare_and_swap(bad, None, Some(b("v")), None).await,
        ErrorKind::InvalidKey,
        &what("compare_and_swap(create)"),
    );
    expect_kind(
        store.compare_and_swap(bad, Some(b"v"), None, None).await,
        ErrorKind::InvalidKey,
        &what("compare_and_swap(delete)"),
    );
    assert_eq!(
        read(ctx, &good).await,
        None,
        "a batch that failed on {label} wrote its valid entry"
    );
    assert_ns_empty(ctx, &format!("after every method failed on {label}")).await;
}

/// Key rule: an empty key is rejected with InvalidKey by every method that takes a key; nothing is written.
pub async fn empty_key_is_rejected_by_every_method(ctx: &Ctx) {
    every_method_rejects(ctx, "", "an empty key").await;
}

/// Key rule: a key longer than `max_key_len` is rejected with InvalidKey by every method; nothing is written.
pub async fn overlong_key_is_rejected_by_every_method(ctx: &Ctx) {
    if ctx.store().limits().max_key_len > MAX_TESTED_KEY_LEN {
        return; // Too big to build in a test.
    }
    let key = overlong_key(ctx);
    every_method_rejects(ctx, &key, "a key longer than max_key_len").await;
}

/// Key rule: the InvalidKey error names the limit it broke.
pub async fn invalid_key_error_names_the_limit(ctx: &Ctx) {
    let max = ctx.store().limits().max_key_len;
    if max > MAX_TESTED_KEY_LEN {
        return; // Too big to build in a test.
    }
    let err = expect_kind(
        ctx.store()
            .set(&overlong_key(ctx), b("v"), SetOptions::new())
            .await,
        ErrorKind::InvalidKey,
        "set with an overlong key",
    );
    let text = err.to_string();
    assert!(
        text.contains(&max.to_string()),
        "the InvalidKey error should name max_key_len = {max}: {text}"
    );
    assert!(
        text.contains(ctx.ns()),
        "the InvalidKey error should name (a preview of) the key: {text}"
    );
}

/// Value rule: a value larger than `max_value_len` is rejected with ValueTooLarge and nothing is written.
pub async fn oversized_value_is_rejected(ctx: &Ctx) {
    let max = ctx.store().limits().max_value_len;
    if max > MAX_TESTED_VALUE_LEN {
        return; // Too big to send in a test.
    }
    let store = ctx.store();
    let (key, existing) = (ctx.key("big"), ctx.key("existing"));
    put(ctx, &existing, "small").await;
    let too_big = Bytes::from(vec![7u8; max + 1]);
    let err = expect_kind(
        store.set(&key, too_big.clone(), SetOptions::new()).await,
        ErrorKind::ValueTooLarge,
        "set of max_value_len + 1 bytes",
    );
    assert!(
        err.to_string().contains(&max.to_string()),
        "the ValueTooLarge error should name max_value_len = {max}: {err}"
    );
    expect_kind(
        store
            .set(&existing, too_big.clone(), SetOptions::new())
            .await,
        ErrorKind::ValueTooLarge,
        "set over an existing key",
    );
    expect_kind(
        store
            .set_many(&[(&key, b("ok")), (&existing, too_big.clone())], None)
            .await,
        ErrorKind::ValueTooLarge,
        "set_many with one oversized value",
    );
    expect_kind(
        store
            .compare_and_swap(&existing, Some(b"small"), Some(too_big), None)
            .await,
        ErrorKind::ValueTooLarge,
        "compare_and_swap to an oversized value",
    );
    assert_eq!(
        read(ctx, &key).await,
        None,
        "an oversized write wrote something"
    );
    assert_value(
        read(ctx, &existing).await,
        Some("small"),
        "a rejected oversized write changed an existing key",
    );
}

/// Value rule: a value of exactly `max_value_len` bytes is accepted (the limit is inclusive).
pub async fn value_of_max_len_is_accepted(ctx: &Ctx) {
    let max = ctx.store().limits().max_value_len;
    if max > MAX_TESTED_VALUE_LEN {
        return; // Too big to send in a test.
    }
    let key = ctx.key("at-limit");
    let value = Bytes::from(vec![3u8; max]);
    put(ctx, &key, &value).await;
    let got = read(ctx, &key)
        .await
        .expect("the max_value_len value is missing");
    assert!(got == value, "the max_value_len value changed");
}

/// TTL rule: a zero TTL is InvalidArgument on every method that takes one, and nothing is written.
pub async fn zero_ttl_is_rejected(ctx: &Ctx) {
    let store = ctx.store();
    let (key, existing) = (ctx.key("k"), ctx.key("existing"));
    put(ctx, &existing, "v").await;
    let zero = Duration::ZERO;
    expect_kind(
        store.set(&key, b("v"), SetOptions::new().ttl(zero)).await,
        ErrorKind::InvalidArgument,
        "set with a zero TTL",
    );
    expect_kind(
        store.set_many(&[(&key, b("v"))], Some(zero)).await,
        ErrorKind::InvalidArgument,
        "set_many with a zero TTL",
    );
    expect_kind(
        store.expire(&existing, zero).await,
        ErrorKind::InvalidArgument,
        "expire with a zero TTL",
    );
    expect_kind(
        store.incr_by(&key, 1, Some(zero)).await,
        ErrorKind::InvalidArgument,
        "incr_by with a zero ttl_on_create",
    );
    expect_kind(
        store
            .compare_and_swap(&key, None, Some(b("v")), Some(zero))
            .await,
        ErrorKind::InvalidArgument,
        "compare_and_swap with a zero TTL",
    );
    assert_eq!(read(ctx, &key).await, None, "a zero-TTL call wrote the key");
    assert_value(
        read(ctx, &existing).await,
        Some("v"),
        "expire with a zero TTL deleted or changed the key",
    );
    assert_eq!(
        store.ttl(&existing).await.unwrap(),
        KeyTtl::Persistent,
        "a rejected expire changed the TTL"
    );
}

/// TTL rule: a TTL above `MAX_TTL` is InvalidArgument, and nothing is written.
pub async fn ttl_above_max_is_rejected(ctx: &Ctx) {
    let store = ctx.store();
    let (key, existing) = (ctx.key("k"), ctx.key("existing"));
    put(ctx, &existing, "v").await;
    let huge = MAX_TTL + Duration::from_secs(1);
    expect_kind(
        store.set(&key, b("v"), SetOptions::new().ttl(huge)).await,
        ErrorKind::InvalidArgument,
        "set with a TTL above MAX_TTL",
    );
    expect_kind(
        store.set_many(&[(&key, b("v"))], Some(huge)).await,
        ErrorKind::InvalidArgument,
        "set_many with a TTL above MAX_TTL",
    );
    expect_kind(
        store.expire(&existing, huge).await,
        ErrorKind::InvalidArgument,
        "expire with a TTL above MAX_TTL",
    );
    expect_kind(
        store.incr_by(&key, 1, Some(huge)).await,
        ErrorKind::InvalidArgument,
        "incr_by with a ttl_on_create above MAX_TTL",
    );
    expect_kind(
        store
            .compare_and_swap(&key, None, Some(b("v")), Some(huge))
            .await,
        ErrorKind::InvalidArgument,
        "compare_and_swap with a TTL above MAX_TTL",
    );
    assert_eq!(read(ctx, &key).await, None, "a rejected call wrote the key");
    assert_eq!(store.ttl(&existing).await.unwrap(), KeyTtl::Persistent);
    // MAX_TTL itself is allowed.
    assert!(
        store.expire(&existing, MAX_TTL).await.unwrap(),
        "expire with exactly MAX_TTL must be accepted"
    );
}

/// TTL rule: TTLs are rounded *up* to milliseconds, so a sub-millisecond TTL is valid (not zero).
pub async fn sub_millisecond_ttl_is_accepted(ctx: &Ctx) {
    let key = ctx.key("k");
    let wrote = ctx
        .store()
        .set(
            &key,
            b("v"),
            SetOptions::new().ttl(Duration::from_micros(1)),
        )
        .await
        .unwrap_or_else(|e| panic!("a 1 µs TTL must round up to 1 ms, not fail: {e}"));
    assert!(wrote);
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(read(ctx, &key).await, None, "a 1 µs TTL never expired");
}
