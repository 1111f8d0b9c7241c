//! The cache-core patterns on a real store: the bodies shared by `patterns_memory.rs`,
//! `patterns_redis.rs` (standalone) and `patterns_redis_cluster.rs`. Each binary uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_memory::MemoryStore;
use backend_redis::{RedisBus, RedisStore};
use bytes::Bytes;
use cache_core::{
    CacheStore, Clock, LockManager, ManualClock, RateLimitAlgorithm, RateLimiter, SetOptions,
    TieredCache, WallClock,
};

/// One `#[test]` per case that runs on any store (the lock and rate-limiter cases), as
/// `conformance_tests!` does for the contract. `$store` is evaluated afresh in each test's async
/// block and gives something that coerces to `Arc<dyn CacheStore>`.
#[allow(unused_macros)] // not every binary that includes this module uses it
macro_rules! store_pattern_tests {
    ($store:expr) => {
        $crate::patterns_cases::store_pattern_tests!(@each $store;
            lock_holders_never_overlap,
            expired_lease_is_taken_over,
            rate_limits_hold_under_concurrency,
            rate_limits_hold_over_every_sliding_window,
        );
    };
    (@each $store:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                cache_conformance::block_on(async {
                    $crate::patterns_cases::$case($store).await
                })
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use store_pattern_tests;

/// 20 tasks × 50 iterations increment a value in the store inside the lock; an in-process counter
/// of holders proves no two ever overlap, and fencing tokens grow in holding order.
pub(crate) async fn lock_holders_never_overlap(store: Arc<dyn CacheStore>) {
    let locks = LockManager::builder(store.clone())
        .lease(Duration::from_secs(30))
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap();
    let holders = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let last_fence = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (locks, store) = (locks.clone(), store.clone());
            let (holders, overlaps, last_fence) =
                (holders.clone(), overlaps.clone(), last_fence.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    let guard = locks
                        .acquire("counter", Duration::from_secs(60))
                        .await
                        .unwrap()
                        .expect("acquired within the timeout");
                    if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    let previous = last_fence.swap(guard.fencing_token(), Ordering::SeqCst);
                    assert!(guard.fencing_token() > previous);
                    let current: u64 = match store.get("shared").await.unwrap() {
                        Some(b) => std::str::from_utf8(&b).unwrap().parse().unwrap(),
                        None => 0,
                    };
                    // Let other tasks run between the read and the write, as a slow holder would.
                    tokio::task::yield_now().await;
                    store
                        .set(
                            "shared",
                            Bytes::from((current + 1).to_string()),
                            SetOptions::new(),
                        )
                        .await
                        .unwrap();
                    holders.fetch_sub(1, Ordering::SeqCst);
                    assert!(guard.release().await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders overlapped");
    assert_eq!(
        store.get("shared").await.unwrap().as_deref(),
        Some(&b"1000"[..])
    );
}

/// An expired lease is taken over; the old owner's release and extend change nothing.
pub(crate) async fn expired_lease_is_taken_over(store: Arc<dyn CacheStore>) {
    let locks = LockManager::builder(store.clone())
        .lease(Duration::from_millis(200))
        .build()
        .unwrap();
    let first = locks.try_acquire("job").await.unwrap().unwrap();
    assert!(locks.try_acquire("job").await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = locks.try_acquire("job").await.unwrap().expect("taken over");
    assert!(second.fencing_token() > first.fencing_token());
    assert!(!first.extend(Duration::from_secs(10)).await.unwrap());
    assert!(!first.release().await.unwrap());
    assert!(second.is_held().await.unwrap());
    assert!(second.extend(Duration::from_secs(10)).await.unwrap());
    assert!(locks.try_acquire("job").await.unwrap().is_none());
    assert!(second.release().await.unwrap());
}

/// 50 concurrent checks of one client at one instant: each algorithm admits exactly its burst.
pub(crate) async fn rate_limits_hold_under_concurrency(store: Arc<dyn CacheStore>) {
    let algorithms = [
        RateLimitAlgorithm::FixedWindow,
        RateLimitAlgorithm::SlidingWindow,
        RateLimitAlgorithm::Gcra,
    ];
    for algorithm in algorithms {
        let limiter = RateLimiter::builder(store.clone())
            .namespace(format!("rl-{algorithm:?}-{:08x}", fastrand::u32(..)))
            .limit(10)
            .period(Duration::from_secs(60))
            .algorithm(algorithm)
            // Frozen time: every check falls in the same window.
            .clock(ManualClock::new())
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.check("client").await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            let decision = task.await.unwrap();
            if decision.allowed {
                allowed += 1;
                assert_eq!(decision.retry_after, Duration::ZERO);
            } else {
                assert_eq!(decision.remaining, 0);
                assert!(decision.retry_after > Duration::ZERO);
            }
        }
        assert_eq!(allowed, 10, "{algorithm:?}");
    }
}

/// The wall clock, remembering what each tokio task read last: the time of its last decision.
#[derive(Debug, Clone, Default)]
struct RecordingClock {
    reads: Arc<Mutex<HashMap<tokio::task::Id, u64>>>,
}

impl Clock for RecordingClock {
    fn now_millis(&self) -> u64 {
        let now = WallClock.now_millis();
        if let Some(task) = tokio::task::try_id() {
            self.reads.lock().unwrap().insert(task, now);
        }
        now
    }
}

impl RecordingClock {
    fn last_read(&self) -> u64 {
        self.reads.lock().unwrap()[&tokio::task::id()]
    }
}

/// 50 tasks check one client for 1.2 s against 20 per 500 ms; the limiter's own time of every
/// admission is recorded, and every sliding window of 500 ms (starting at any admission) holds no
/// more than the algorithm's documented bound.
pub(crate) async fn rate_limits_hold_over_every_sliding_window(store: Arc<dyn CacheStore>) {
    const LIMIT: u64 = 20;
    const PERIOD: u64 = 500;
    let cases = [
        (RateLimitAlgorithm::SlidingWindow, None, LIMIT),
        (RateLimitAlgorithm::Gcra, Some(1), LIMIT),
        (RateLimitAlgorithm::Gcra, None, 2 * LIMIT - 1),
        (RateLimitAlgorithm::FixedWindow, None, 2 * LIMIT),
    ];
    for (algorithm, burst, bound) in cases {
        let clock = RecordingClock::default();
        let mut builder = RateLimiter::builder(store.clone())
            .namespace(format!(
                "rl-sliding-{algorithm:?}-{:08x}",
                fastrand::u32(..)
            ))
            .limit(LIMIT)
            .period(Duration::from_millis(PERIOD))
            .algorithm(algorithm)
            .clock(clock.clone());
        if let Some(burst) = burst {
            builder = builder.burst(burst);
        }
        let limiter = builder.build().unwrap();
        let stop_at = Instant::now() + Duration::from_millis(1_200);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (limiter, clock) = (limiter.clone(), clock.clone());
                tokio::spawn(async move {
                    let mut admitted = Vec::new();
                    while Instant::now() < stop_at {
                        if limiter.check("client").await.unwrap().allowed {
                            admitted.push(clock.last_read());
                        }
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(1..5))).await;
                    }
                    admitted
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.extend(task.await.unwrap());
        }
        times.sort_unstable();
        let most = (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|&&t| t < times[i] + PERIOD)
                    .count()
            })
            .max()
            .unwrap_or(0);
        if std::env::var("DEBUG_RL").is_ok() {
            eprintln!("{times:?}");
        }
        eprintln!(
            "{algorithm:?} burst {burst:?}: {} admitted in 1.2 s, at most {most} in any {PERIOD} ms",
            times.len()
        );
        assert!(
            most as u64 <= bound,
            "{algorithm:?} burst {burst:?}: {most} admitted within {PERIOD} ms, more than {bound}"
        );
        assert!(
            times.len() as u64 >= 2 * LIMIT,
            "{algorithm:?}: {}",
            times.len()
        );
    }
}

async fn instance(store: &RedisStore) -> TieredCache {
    let config = store.config().clone();
    let l2 = RedisStore::connect(config.clone()).await.unwrap();
    let cache = TieredCache::builder(MemoryStore::new(), l2)
        .namespace("tiered")
        .l1_ttl(Duration::from_secs(600))
        .bus(RedisBus::connect(&config, "invalidations").await.unwrap())
        .build()
        .unwrap();
    tokio::spawn(cache.listen().await.unwrap().run());
    cache
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    started.elapsed()
}

/// Two instances on one Redis, each with its own connections and bus subscription: a set, delete or
/// clear on one reaches the other's L1 within milliseconds.
pub(crate) async fn tiered_instances_stay_coherent(store: RedisStore) {
    let (a, b) = (instance(&store).await, instance(&store).await);
    a.set("price", &10).await.unwrap();
    // Let a's announcement reach b first, or it would drop the copy b is about to make.
    until("b hearing the first set", async || {
        b.stats().bus_messages == 1
    })
    .await;
    assert_eq!(b.get::<u32>("price").await.unwrap(), Some(10));
    assert_eq!(b.get::<u32>("price").await.unwrap(), Some(10));
    assert_eq!(b.stats().l1_hits, 1, "b serves from its L1");

    let mut worst = Duration::ZERO;
    for price in 11..=30u32 {
        a.set("price", &price).await.unwrap();
        let took = until("b seeing the new price", async || {
            b.get::<u32>("price").await.unwrap() == Some(price)
        })
        .await;
        worst = worst.max(took);
    }
    eprintln!("b saw each of 20 changes within {worst:?} of a's set returning");
    assert!(worst < Duration::from_millis(500), "{worst:?}");

    a.delete("price").await.unwrap();
    until("b seeing the delete", async || {
        b.get::<u32>("price").await.unwrap().is_none()
    })
    .await;
    b.set("x", &1).await.unwrap();
    assert_eq!(a.get::<u32>("x").await.unwrap(), Some(1));
    b.clear().await.unwrap();
    until("a seeing the clear", async || {
        a.get::<u32>("x").await.unwrap().is_none()
    })
    .await;
    // Own messages are ignored: a heard b's set and clear, b heard a's 21 sets and one delete.
    until("the message counts", async || {
        a.stats().bus_messages == 2 && b.stats().bus_messages == 22
    })
    .await;
}
