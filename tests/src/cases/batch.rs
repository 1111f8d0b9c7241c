//! get_many / set_many / delete_many.

use bytes::Bytes;
use cache_core::{ErrorKind, KeyTtl};

use super::{
    LONG_TTL, PAST_SHORT_TTL, SHORT_TTL, assert_ns_empty, assert_value, b, expect_kind, put,
    put_ttl, read,
};
use crate::Ctx;

/// get_many: one slot per requested key, in the order requested, `None` for missing keys.
pub async fn get_many_mixes_present_and_missing_in_order(ctx: &Ctx) {
    let (a, missing1, c, missing2, e) = (
        ctx.key("a"),
        ctx.key("missing-1"),
        ctx.key("c"),
        ctx.key("missing-2"),
        ctx.key("e"),
    );
    put(ctx, &a, "A").await;
    put(ctx, &c, "C").await;
    put(ctx, &e, "").await;
    let got = ctx
        .store()
        .get_many(&[&missing1, &e, &a, &missing2, &c])
        .await
        .unwrap();
    let got: Vec<Option<&[u8]>> = got.iter().map(|v| v.as_deref()).collect();
    assert_eq!(
        got,
        vec![None, Some(&b""[..]), Some(&b"A"[..]), None, Some(&b"C"[..])],
        "get_many must answer in request order, None exactly for the missing keys"
    );
}

/// get_many: a key requested twice fills two slots.
pub async fn get_many_fills_one_slot_per_duplicate(ctx: &Ctx) {
    let (a, missing) = (ctx.key("a"), ctx.key("missing"));
    put(ctx, &a, "A").await;
    let got = ctx
        .store()
        .get_many(&[&a, &missing, &a, &missing, &a])
        .await
        .unwrap();
    let got: Vec<Option<&[u8]>> = got.iter().map(|v| v.as_deref()).collect();
    let a_val = Some(&b"A"[..]);
    assert_eq!(
        got,
        vec![a_val, None, a_val, None, a_val],
        "every duplicate must get its own slot"
    );
}

/// get_many: an empty request returns an empty vector.
pub async fn get_many_of_empty_request_is_empty(ctx: &Ctx) {
    put(ctx, &ctx.key("a"), "A").await;
    let got = ctx.store().get_many(&[]).await.unwrap();
    assert!(got.is_empty(), "get_many(&[]) returned {got:?}");
}

/// get_many: any invalid key fails the whole call.
pub async fn get_many_with_an_invalid_key_fails_whole_call(ctx: &Ctx) {
    let a = ctx.key("a");
    put(ctx, &a, "A").await;
    let too_long = super::overlong_key(ctx);
    expect_kind(
        ctx.store().get_many(&[&a, "", &a]).await,
        ErrorKind::InvalidKey,
        "get_many with an empty key among valid ones",
    );
    expect_kind(
        ctx.store().get_many(&[&a, &too_long]).await,
        ErrorKind::InvalidKey,
        "get_many with an overlong key after a valid one",
    );
}

/// set_many: afterwards every key reads back its value.
pub async fn set_many_writes_every_key(ctx: &Ctx) {
    let keys: Vec<String> = (0..20).map(|i| ctx.key(&format!("k{i}"))).collect();
    put(ctx, &keys[3], "old").await;
    let entries: Vec<(&str, Bytes)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), b(format!("value-{i}"))))
        .collect();
    ctx.store().set_many(&entries, None).await.unwrap();
    for (i, key) in keys.iter().enumerate() {
        assert_value(
            read(ctx, key).await,
            Some(format!("value-{i}")),
            &format!("set_many did not write {key:?}"),
        );
        assert_eq!(
            ctx.store().ttl(key).await.unwrap(),
            KeyTtl::Persistent,
            "set_many without TTL must write persistent entries ({key:?})"
        );
    }
}

/// set_many: when a key appears twice, the later value wins.
pub async fn set_many_later_duplicate_wins(ctx: &Ctx) {
    let (a, c) = (ctx.key("a"), ctx.key("c"));
    ctx.store()
        .set_many(
            &[
                (&a, b("first")),
                (&c, b("C")),
                (&a, b("second")),
                (&a, b("third")),
            ],
            None,
        )
        .await
        .unwrap();
    assert_value(
        read(ctx, &a).await,
        Some("third"),
        "the last of a key's duplicates must win",
    );
    assert_value(read(ctx, &c).await, Some("C"), "the other key");
}

/// set_many: an empty batch is a no-op.
pub async fn set_many_of_empty_batch_is_noop(ctx: &Ctx) {
    ctx.store()
        .set_many(&[], None)
        .await
        .unwrap_or_else(|e| panic!("set_many(&[]) failed: {e}"));
    ctx.store()
        .set_many(&[], Some(LONG_TTL))
        .await
        .unwrap_or_else(|e| panic!("set_many(&[], ttl) failed: {e}"));
    assert_ns_empty(ctx, "after an empty set_many").await;
}

/// set_many: every key is validated before anything is written, so an invalid entry writes nothing.
pub async fn set_many_with_an_invalid_entry_writes_nothing(ctx: &Ctx) {
    let (a, c) = (ctx.key("a"), ctx.key("c"));
    put(ctx, &c, "old").await;
    let too_long = super::overlong_key(ctx);
    expect_kind(
        ctx.store()
            .set_many(&[(&a, b("new")), (&c, b("new")), ("", b("x"))], None)
            .await,
        ErrorKind::InvalidKey,
        "set_many with an empty key last",
    );
    expect_kind(
        ctx.store()
            .set_many(&[(&a, b("new")), (&too_long, b("x")), (&c, b("new"))], None)
            .await,
        ErrorKind::InvalidKey,
        "set_many with an overlong key in the middle",
    );
    assert_eq!(
        read(ctx, &a).await,
        None,
        "a failed set_many must not write the valid entries before the invalid one"
    );
    assert_value(
        read(ctx, &c).await,
        Some("old"),
        "a failed set_many must not overwrite existing keys",
    );
    let keys = super::keys_in_ns(ctx).await;
    assert_eq!(
        keys.len(),
        1,
        "only the pre-existing key may remain: {keys:?}"
    );
}

/// set_many: with a TTL, every key reads as absent once it has passed.
pub async fn set_many_with_ttl_expires_every_key(ctx: &Ctx) {
    let (a, c) = (ctx.key("a"), ctx.key("c"));
    ctx.store()
        .set_many(&[(&a, b("A")), (&c, b("C"))], Some(SHORT_TTL))
        .await
        .unwrap();
    for key in [&a, &c] {
        assert!(
            matches!(ctx.store().ttl(key).await.unwrap(), KeyTtl::ExpiresIn(d) if d <= SHORT_TTL),
            "set_many with a TTL must give {key:?} that TTL"
        );
    }
    ctx.advance(PAST_SHORT_TTL).await;
    let got = ctx.store().get_many(&[&a, &c]).await.unwrap();
    assert_eq!(
        got,
        vec![None, None],
        "set_many's TTL did not expire the keys"
    );
}

/// set_many: without a TTL the entries never expire, even if the old ones had a TTL.
pub async fn set_many_without_ttl_removes_old_ttls(ctx: &Ctx) {
    let a = ctx.key("a");
    put_ttl(ctx, &a, "old", SHORT_TTL).await;
    ctx.store().set_many(&[(&a, b("new"))], None).await.unwrap();
    assert_eq!(
        ctx.store().ttl(&a).await.unwrap(),
        KeyTtl::Persistent,
        "set_many without TTL must drop the old TTL"
    );
    ctx.advance(PAST_SHORT_TTL).await;
    assert_value(
        read(ctx, &a).await,
        Some("new"),
        "the old TTL still expired the key",
    );
}

/// delete_many: returns how many of the keys existed (missing keys count zero); afterwards all read `None`.
pub async fn delete_many_counts_only_existing_keys(ctx: &Ctx) {
    let (a, c, missing, expired, keep) = (
        ctx.key("a"),
        ctx.key("c"),
        ctx.key("missing"),
        ctx.key("expired"),
        ctx.key("keep"),
    );
    put(ctx, &a, "A").await;
    put(ctx, &c, "C").await;
    put(ctx, &keep, "K").await;
    put_ttl(ctx, &expired, "E", SHORT_TTL).await;
    ctx.advance(PAST_SHORT_TTL).await;
    let n = ctx
        .store()
        .delete_many(&[&a, &missing, &expired, &c])
        .await
        .unwrap();
    assert_eq!(
        n, 2,
        "delete_many must count the 2 live keys, not the missing or expired ones"
    );
    let got = ctx.store().get_many(&[&a, &c, &missing]).await.unwrap();
    assert_eq!(got, vec![None, None, None], "deleted keys still read");
    assert_value(
        read(ctx, &keep).await,
        Some("K"),
        "delete_many touched a key it was not given",
    );
    let again = ctx.store().delete_many(&[&a, &c]).await.unwrap();
    assert_eq!(again, 0, "deleting already deleted keys must count 0");
}
