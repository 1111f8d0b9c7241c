//! clear.

use std::collections::HashSet;

use super::{PAST_SHORT_TTL, SHORT_TTL, assert_value, keys_in_ns, put, put_ttl, read};
use crate::Ctx;

/// clear: deletes every key with the prefix, returns how many, and never touches keys without it.
pub async fn clear_removes_only_its_prefix(ctx: &Ctx) {
    let (a, bee) = (ctx.key("A:"), ctx.key("B:"));
    for i in 0..15 {
        put(ctx, &format!("{a}{i}"), "a").await;
    }
    for i in 0..7 {
        put(ctx, &format!("{bee}{i}"), "b").await;
    }
    // Looks like A: but is not under it.
    put(ctx, &ctx.key("A"), "near").await;
    let removed = ctx.store().clear(&a).await.unwrap();
    assert_eq!(removed, 15, "clear must return how many keys it deleted");
    for i in 0..15 {
        assert_eq!(
            read(ctx, &format!("{a}{i}")).await,
            None,
            "clear left {a}{i}"
        );
    }
    for i in 0..7 {
        assert_value(
            read(ctx, &format!("{bee}{i}")).await,
            Some("b"),
            "clear of prefix A: touched prefix B:",
        );
    }
    assert_value(
        read(ctx, &ctx.key("A")).await,
        Some("near"),
        "clear(\"…A:\") deleted the key \"…A\"",
    );
    assert_eq!(keys_in_ns(ctx).await.len(), 8);
    assert_eq!(
        ctx.store().clear(&a).await.unwrap(),
        0,
        "a second clear has nothing left to delete"
    );
    assert_eq!(ctx.store().clear(ctx.ns()).await.unwrap(), 8);
    super::assert_ns_empty(ctx, "after clearing the namespace").await;
}

/// clear: a prefix with no keys deletes nothing and returns 0.
pub async fn clear_of_unused_prefix_returns_zero(ctx: &Ctx) {
    put(ctx, &ctx.key("a"), "x").await;
    assert_eq!(ctx.store().clear(&ctx.key("nothing:")).await.unwrap(), 0);
    assert_value(
        read(ctx, &ctx.key("a")).await,
        Some("x"),
        "clear of an unused prefix deleted a key",
    );
}

/// clear: the prefix is literal; glob characters (`* ? [ ] \`) match only themselves.
pub async fn clear_treats_glob_characters_literally(ctx: &Ctx) {
    let all = [
        "a*1", "a*2", "ab", "ab*", "a?1", "aX1", "[ab]1", "a1", "b1", "a]1", "a[1", "a\\1",
        "a\\*1", "a",
    ];
    for name in all {
        put(ctx, &ctx.key(name), "x").await;
    }
    let mut remaining: HashSet<&str> = all.into_iter().collect();
    for prefix in ["a*", "a?", "[ab]", "a]", "a[", "a\\", "b"] {
        let doomed: Vec<&str> = remaining
            .iter()
            .copied()
            .filter(|k| k.starts_with(prefix))
            .collect();
        let removed = ctx.store().clear(&ctx.key(prefix)).await.unwrap();
        assert_eq!(
            removed,
            doomed.len() as u64,
            "clear({prefix:?}) must delete exactly {doomed:?}"
        );
        for k in &doomed {
            remaining.remove(k);
        }
        let left: HashSet<String> = keys_in_ns(ctx).await;
        let expected: HashSet<String> = remaining.iter().map(|k| ctx.key(k)).collect();
        assert_eq!(
            left, expected,
            "after clear({prefix:?}) the wrong keys remain"
        );
    }
}

/// clear: an expired key is absent, so it is not counted as deleted.
pub async fn clear_does_not_count_expired_keys(ctx: &Ctx) {
    let prefix = ctx.key("p:");
    for i in 0..3 {
        put(ctx, &format!("{prefix}live{i}"), "x").await;
        put_ttl(ctx, &format!("{prefix}gone{i}"), "x", SHORT_TTL).await;
    }
    ctx.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        ctx.store().clear(&prefix).await.unwrap(),
        3,
        "clear must count only the live keys it deleted"
    );
    super::assert_ns_empty(ctx, "after clear").await;
}
