//! scan and scan_stream.

use std::collections::HashSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{PAST_SHORT_TTL, SHORT_TTL, b, put, put_ttl, scan_all};
use crate::Ctx;

/// Writes `n` keys `{prefix}{i}` in one batch and returns them.
async fn fill(ctx: &Ctx, prefix: &str, n: usize) -> HashSet<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}{i:04}")).collect();
    let entries: Vec<(&str, Bytes)> = keys.iter().map(|k| (k.as_str(), b("v"))).collect();
    ctx.store().set_many(&entries, None).await.unwrap();
    keys.into_iter().collect()
}

/// Describes how two key sets differ, for assertion messages.
fn diff(expected: &HashSet<String>, seen: &HashSet<String>) -> String {
    let missing: Vec<_> = expected.difference(seen).take(5).collect();
    let extra: Vec<_> = seen.difference(expected).take(5).collect();
    format!(
        "{} expected, {} seen; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
        expected.len(),
        seen.len()
    )
}

/// scan: every key that exists with the prefix is returned at least once, over many pages.
pub async fn scan_pages_return_every_key_with_prefix(ctx: &Ctx) {
    let prefix = ctx.key("scan:");
    let expected = fill(ctx, &prefix, 250).await;
    let seen = scan_all(ctx, &prefix, 10).await;
    assert_eq!(seen, expected, "{}", diff(&expected, &seen));
}

/// scan: no key without the prefix is ever returned, even ones that share all but the last byte.
pub async fn scan_never_returns_keys_outside_prefix(ctx: &Ctx) {
    let prefix = ctx.key("users:");
    let expected = fill(ctx, &prefix, 30).await;
    for near_miss in [
        "users", "users;", "user:1", "Users:1", "xusers:1", "orders:1",
    ] {
        put(ctx, &ctx.key(near_miss), "x").await;
    }
    let seen = scan_all(ctx, &prefix, 10).await;
    assert_eq!(seen, expected, "{}", diff(&expected, &seen));
    // The whole namespace sees all of them.
    let all = scan_all(ctx, ctx.ns(), 50).await;
    assert_eq!(all.len(), expected.len() + 6, "a scan of the namespace");
}

/// scan: a prefix with no keys completes with no keys (pages may be empty, `next` must end).
pub async fn scan_of_unused_prefix_is_empty(ctx: &Ctx) {
    put(ctx, &ctx.key("a"), "x").await;
    let seen = scan_all(ctx, &ctx.key("nothing-here:"), 10).await;
    assert!(
        seen.is_empty(),
        "scan of an unused prefix returned {seen:?}"
    );
}

/// scan_stream: the convenience stream yields every key with the prefix, across pages.
pub async fn scan_stream_yields_every_key(ctx: &Ctx) {
    let prefix = ctx.key("stream:");
    let expected = fill(ctx, &prefix, 120).await;
    put(ctx, &ctx.key("other"), "x").await;
    let keys: Vec<String> = cache_core::scan_stream(&**ctx.store(), &prefix, 9)
        .take(100_000)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("scan_stream failed: {e}"));
    assert!(
        keys.len() < 100_000,
        "scan_stream did not end within 100 000 keys"
    );
    let seen: HashSet<String> = keys.into_iter().collect();
    assert_eq!(seen, expected, "{}", diff(&expected, &seen));
}

/// scan: an expired key does not exist, so it is never listed.
pub async fn scan_skips_expired_keys(ctx: &Ctx) {
    let prefix = ctx.key("mixed:");
    let live = fill(ctx, &prefix, 20).await;
    for i in 0..20 {
        put_ttl(ctx, &format!("{prefix}expiring{i:02}"), "x", SHORT_TTL).await;
    }
    ctx.advance(PAST_SHORT_TTL).await;
    let seen = scan_all(ctx, &prefix, 10).await;
    assert_eq!(seen, live, "{}", diff(&live, &seen));
}

/// scan: the prefix is literal; glob characters (`* ? [ ] \`) in it match only themselves.
pub async fn scan_treats_glob_characters_literally(ctx: &Ctx) {
    let all = [
        "a*1", "a*2", "ab1", "a?1", "aX1", "[ab]1", "a1", "b1", "a]1", "a[1", "a\\1", "a\\*1", "a",
        "*",
    ];
    for name in all {
        put(ctx, &ctx.key(name), "x").await;
    }
    for prefix in ["a*", "a?", "[ab]", "a]", "a[", "a\\", "a\\*", "*"] {
        let expected: HashSet<String> = all
            .iter()
            .filter(|k| k.starts_with(prefix))
            .map(|k| ctx.key(k))
            .collect();
        let seen = scan_all(ctx, &ctx.key(prefix), 10).await;
        assert_eq!(
            seen,
            expected,
            "scan with prefix {prefix:?}: {}",
            diff(&expected, &seen)
        );
    }
}

/// scan: `count` is only a hint, so any value works, `usize::MAX` and zero included.
pub async fn scan_accepts_any_count_hint(ctx: &Ctx) {
    let prefix = ctx.key("hint:");
    let expected = fill(ctx, &prefix, 30).await;
    for count in [usize::MAX, (u32::MAX as usize).saturating_add(1), 0] {
        let seen = scan_all(ctx, &prefix, count).await;
        assert_eq!(seen, expected, "count {count}: {}", diff(&expected, &seen));
    }
}
