//! Atomicity under concurrent callers (tokio tasks on native, interleaved futures on wasm32).

use std::sync::Arc;

use bytes::Bytes;
use cache_core::{CacheStore, SetOptions};

use super::{assert_value, b, put, read};
use crate::{Ctx, run_concurrently};

const TASKS: usize = 50;

/// incr_by: concurrent calls never lose an update (50 tasks × 20 increments sum exactly).
pub async fn concurrent_incr_never_loses_updates(ctx: &Ctx) {
    const PER_TASK: i64 = 20;
    let key = ctx.key("counter");
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store: Arc<dyn CacheStore> = ctx.store().clone();
            let key = key.clone();
            async move {
                let mut returned = Vec::new();
                for _ in 0..PER_TASK {
                    // Alternate deltas so that a lost update cannot hide behind equal values.
                    let delta = if t % 2 == 0 { 1 } else { 2 };
                    returned.push(store.incr_by(&key, delta, None).await.unwrap());
                }
                returned
            }
        })
        .collect();
    let results = run_concurrently(tasks).await;
    let expected: i64 = (0..TASKS)
        .map(|t| if t % 2 == 0 { PER_TASK } else { 2 * PER_TASK })
        .sum();
    assert_value(
        read(ctx, &key).await,
        Some(expected.to_string()),
        "concurrent incr_by lost updates",
    );
    // Every returned value is distinct: each call saw its own linearization point.
    let mut all: Vec<i64> = results.into_iter().flatten().collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        n,
        "two incr_by calls returned the same new value"
    );
    assert_eq!(all.last().copied(), Some(expected));
}

/// compare_and_swap: among concurrent swaps from the same expected value, exactly one succeeds.
pub async fn concurrent_cas_has_exactly_one_winner(ctx: &Ctx) {
    let key = ctx.key("cas");
    put(ctx, &key, "v0").await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store: Arc<dyn CacheStore> = ctx.store().clone();
            let key = key.clone();
            async move {
                store
                    .compare_and_swap(&key, Some(b"v0"), Some(b(format!("winner-{t}"))), None)
                    .await
                    .unwrap()
            }
        })
        .collect();
    let results = run_concurrently(tasks).await;
    let winners: Vec<usize> = (0..TASKS).filter(|&t| results[t]).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent swap from v0 may succeed, got winners {winners:?}"
    );
    assert_value(
        read(ctx, &key).await,
        Some(format!("winner-{}", winners[0])),
        "the stored value must be the winner's",
    );
}

/// set: IfAbsent is atomic, so among concurrent IfAbsent writers exactly one writes.
pub async fn concurrent_if_absent_has_exactly_one_winner(ctx: &Ctx) {
    let key = ctx.key("lock");
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store: Arc<dyn CacheStore> = ctx.store().clone();
            let key = key.clone();
            async move {
                store
                    .set(&key, b(format!("owner-{t}")), SetOptions::new().if_absent())
                    .await
                    .unwrap()
            }
        })
        .collect();
    let results = run_concurrently(tasks).await;
    let winners: Vec<usize> = (0..TASKS).filter(|&t| results[t]).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one IfAbsent writer may win, got {winners:?}"
    );
    assert_value(
        read(ctx, &key).await,
        Some(format!("owner-{}", winners[0])),
        "the stored value must be the winning writer's",
    );
}

/// compare_and_swap: read-modify-write loops built on CAS never lose an update.
pub async fn concurrent_cas_increments_never_lose_updates(ctx: &Ctx) {
    const WORKERS: usize = 10;
    const PER_WORKER: usize = 10;
    const MAX_ATTEMPTS: usize = 100_000;
    let key = ctx.key("cas-counter");
    put(ctx, &key, "0").await;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let store: Arc<dyn CacheStore> = ctx.store().clone();
            let key = key.clone();
            async move {
                let mut attempts = 0;
                for _ in 0..PER_WORKER {
                    loop {
                        attempts += 1;
                        assert!(attempts < MAX_ATTEMPTS, "CAS loop is not making progress");
                        let current: Bytes = store.get(&key).await.unwrap().expect("counter");
                        let n: u64 = std::str::from_utf8(&current).unwrap().parse().unwrap();
                        let next = b((n + 1).to_string());
                        if store
                            .compare_and_swap(&key, Some(&current), Some(next), None)
                            .await
                            .unwrap()
                        {
                            break;
                        }
                        super::yield_now().await;
                    }
                }
            }
        })
        .collect();
    run_concurrently(tasks).await;
    assert_value(
        read(ctx, &key).await,
        Some((WORKERS * PER_WORKER).to_string()),
        "a CAS-based increment was lost",
    );
}

/// Single-key operations are atomic: concurrent writers to distinct keys all land, with their own values.
pub async fn concurrent_writers_to_distinct_keys_all_land(ctx: &Ctx) {
    let keys: Vec<String> = (0..TASKS).map(|t| ctx.key(&format!("w{t}"))).collect();
    let tasks: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(t, key)| {
            let store: Arc<dyn CacheStore> = ctx.store().clone();
            let key = key.clone();
            async move {
                for round in 0..5 {
                    store
                        .set(&key, b(format!("{t}-{round}")), SetOptions::new())
                        .await
                        .unwrap();
                }
            }
        })
        .collect();
    run_concurrently(tasks).await;
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = ctx.store().get_many(&refs).await.unwrap();
    for (t, value) in got.into_iter().enumerate() {
        assert_value(
            value,
            Some(format!("{t}-4")),
            &format!("key w{t} lost its last write"),
        );
    }
}

/// incr_by, compare_and_swap, set if absent, get and delete: 30 tasks on 3 keys record a history
/// of 240 calls, and some order of them that respects real time is one a single register per key
/// would have answered the same way (see `crate::linearizable`).
pub async fn atomic_operations_are_linearizable(ctx: &Ctx) {
    use crate::linearizable::{Recorder, check_history, random_call};
    const LIN_TASKS: usize = 30;
    const CALLS: usize = 8;
    let keys: Vec<String> = (0..3).map(|i| ctx.key(&format!("register{i}"))).collect();
    let recorder = Recorder::new();
    let tasks: Vec<_> = (0..LIN_TASKS)
        .map(|_| {
            let store: Arc<dyn CacheStore> = ctx.store().clone();
            let keys = keys.clone();
            let recorder = recorder.clone();
            async move {
                let mut events = Vec::new();
                for _ in 0..CALLS {
                    let key = &keys[fastrand::usize(..keys.len())];
                    events.push(recorder.call(&*store, key, random_call()).await);
                }
                events
            }
        })
        .collect();
    let history: Vec<_> = run_concurrently(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if let Err(why) = check_history(&history) {
        panic!("{why}");
    }
}
