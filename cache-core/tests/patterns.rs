//! The patterns (lock, rate limiter, tiered cache, memoization) on the memory backend, with a manual
//! clock where time matters. The concurrency cases that every backend runs (lock holders never
//! overlap, rate limits hold under 50 callers) are in `tests/tests/patterns_cases`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_memory::MemoryStore;
use cache_core::{
    Cache, Clock, ErrorKind, InProcessBus, KeyTtl, LockManager, ManualClock, Memoized,
    OnStoreFailure, RateLimitAlgorithm, RateLimiter, Result, SetOptions, TieredCache,
};
use futures::channel::oneshot;
use futures::join;

mod support;
use support::FlakyStore;

fn manual_store() -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().clock(clock.clone()).build().unwrap();
    (store, clock)
}

// ---------------------------------------------------------------------------------------------
// Lock

#[tokio::test]
async fn an_expired_lease_can_be_taken_over_and_the_old_owner_cannot_release_it() {
    let (store, clock) = manual_store();
    let locks = LockManager::builder(store.clone())
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let first = locks.try_acquire("job").await.unwrap().unwrap();
    assert!(locks.try_acquire("job").await.unwrap().is_none());

    clock.advance(Duration::from_millis(1_001));
    assert!(!first.is_held().await.unwrap());
    let second = locks.try_acquire("job").await.unwrap().expect("taken over");
    assert!(second.fencing_token() > first.fencing_token());
    let stored = store.get("lock:l:job").unwrap();

    // The old owner's release and extend change nothing and say so.
    assert!(!first.extend(Duration::from_secs(10)).await.unwrap());
    assert!(!first.release().await.unwrap());
    assert_eq!(store.get("lock:l:job").unwrap(), stored);
    assert!(second.is_held().await.unwrap());
    assert!(locks.try_acquire("job").await.unwrap().is_none());

    assert!(second.release().await.unwrap());
    assert!(locks.try_acquire("job").await.unwrap().is_some());
}

/// Fencing tokens start at the wall clock in microseconds, so they keep growing after the store
/// lost the counter (a restart without persistence, an eviction).
#[tokio::test]
async fn fencing_tokens_keep_growing_after_the_counter_is_lost() {
    let store = MemoryStore::new();
    let locks = LockManager::builder(store.clone()).build().unwrap();
    let before = cache_core::SystemClock::new().unix_micros();
    let mut last = 0;
    for _ in 0..20 {
        let guard = locks.try_acquire("job").await.unwrap().unwrap();
        assert!(guard.fencing_token() > last && guard.fencing_token() >= before);
        last = guard.fencing_token();
        assert!(guard.release().await.unwrap());
    }
    assert!(store.delete("lock:f:job").unwrap(), "the counter's key");
    // A store restart takes longer than this: the clock has moved on past the last token.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let after_loss = locks.try_acquire("job").await.unwrap().unwrap();
    assert!(
        after_loss.fencing_token() > last,
        "{} after {last}",
        after_loss.fencing_token()
    );
}

#[tokio::test]
async fn extend_renews_the_lease() {
    let (store, clock) = manual_store();
    let locks = LockManager::builder(store)
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let guard = locks.try_acquire("job").await.unwrap().unwrap();
    clock.advance(Duration::from_millis(800));
    assert!(guard.extend(Duration::from_secs(1)).await.unwrap());
    clock.advance(Duration::from_millis(800));
    assert!(locks.try_acquire("job").await.unwrap().is_none());
    clock.advance(Duration::from_millis(300));
    assert!(locks.try_acquire("job").await.unwrap().is_some());
}

#[tokio::test]
async fn acquire_waits_until_the_timeout_then_gives_up() {
    let locks = LockManager::builder(MemoryStore::new())
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap();
    let _held = locks.try_acquire("busy").await.unwrap().unwrap();
    let started = Instant::now();
    let waited = locks
        .acquire("busy", Duration::from_millis(50))
        .await
        .unwrap();
    assert!(waited.is_none());
    assert!(started.elapsed() >= Duration::from_millis(50));

    let no_sleeper = LockManager::builder(MemoryStore::new()).build().unwrap();
    let err = no_sleeper
        .acquire("busy", Duration::from_millis(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

/// A clock that reads whole milliseconds of a time kept in microseconds, as `SystemClock` does,
/// moved only by the sleeper.
#[derive(Debug, Clone, Default)]
struct MicrosClock(Arc<AtomicU64>);

impl Clock for MicrosClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst) / 1_000
    }
}

#[tokio::test]
async fn acquire_never_gives_up_before_its_timeout_although_the_clock_reads_whole_millis() {
    // The cause of a 1-in-6 flake: a wait that starts at 0.999 ms reads "0", and used to end at
    // the first reading of "50", 49.001 ms later.
    for start_micros in [0, 1, 500, 999] {
        let clock = MicrosClock::default();
        clock.0.store(start_micros, Ordering::SeqCst);
        let slept = clock.clone();
        let locks = LockManager::builder(MemoryStore::new())
            .clock(clock.clone())
            .sleeper(move |pause: Duration| {
                slept
                    .0
                    .fetch_add(pause.as_micros() as u64, Ordering::SeqCst);
                async {}
            })
            .build()
            .unwrap();
        let _held = locks.try_acquire("busy").await.unwrap().unwrap();
        for timeout in [Duration::from_micros(1), Duration::from_millis(50)] {
            let started = clock.0.load(Ordering::SeqCst);
            assert!(locks.acquire("busy", timeout).await.unwrap().is_none());
            let waited = Duration::from_micros(clock.0.load(Ordering::SeqCst) - started);
            assert!(waited >= timeout, "gave up after {waited:?} of {timeout:?}");
            assert!(
                waited <= timeout + Duration::from_millis(3),
                "waited {waited:?}"
            );
        }
    }
}

#[tokio::test]
async fn acquire_gets_the_lock_when_the_holder_releases() {
    let locks = LockManager::builder(MemoryStore::new())
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap();
    let held = locks.try_acquire("handoff").await.unwrap().unwrap();
    let waiter = {
        let locks = locks.clone();
        tokio::spawn(async move { locks.acquire("handoff", Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(held.release().await.unwrap());
    let guard = waiter
        .await
        .unwrap()
        .unwrap()
        .expect("acquired after release");
    assert!(guard.release().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Rate limiter

#[tokio::test]
async fn fixed_window_reports_remaining_and_resets_after_the_window() {
    let (store, clock) = manual_store();
    let limiter = RateLimiter::builder(store)
        .limit(3)
        .period(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    let first = limiter.check("a").await.unwrap();
    assert!(first.allowed && first.remaining == 2, "{first:?}");
    let reset = first.reset_after;
    assert!(reset > Duration::ZERO && reset <= Duration::from_secs(10));
    for remaining in [1, 0] {
        let d = limiter.check("a").await.unwrap();
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining, d.reset_after), (3, remaining, reset));
    }
    let denied = limiter.check("a").await.unwrap();
    assert!(!denied.allowed && !denied.degraded);
    assert_eq!(denied.retry_after, reset);
    // Another client has its own window.
    assert!(limiter.check("b").await.unwrap().allowed);
    clock.advance(reset);
    let next = limiter.check("a").await.unwrap();
    assert!(next.allowed, "{next:?}");
    assert_eq!(next.reset_after, Duration::from_secs(10));
}

/// Admission times of `per_step` checks every `step` for `steps` steps, on a manual clock.
async fn admissions(limiter: &RateLimiter, clock: &ManualClock, step: u64, steps: u64) -> Vec<u64> {
    let start = clock.now_millis();
    let mut admitted = Vec::new();
    for _ in 0..steps {
        for _ in 0..3 {
            if limiter.check("c").await.unwrap().allowed {
                admitted.push(clock.now_millis() - start);
            }
        }
        clock.advance(Duration::from_millis(step));
    }
    admitted
}

/// The most admissions in any window `[t, t + period)`, t ranging over every admission time.
fn most_in_any_window(times: &[u64], period: u64) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + period)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Each algorithm's documented bound over every sliding window: three checks every 50 ms for 3 s,
/// with a limit of 2 per second.
#[tokio::test]
async fn each_algorithm_holds_its_bound_over_every_sliding_window() {
    let cases = [
        (RateLimitAlgorithm::SlidingWindow, None, 2),
        (RateLimitAlgorithm::Gcra, Some(1), 2),
        // limit + burst - 1, as documented: a burst of 2, then the steady rate.
        (RateLimitAlgorithm::Gcra, None, 3),
        // 2 x limit, across the boundary of two fixed windows.
        (RateLimitAlgorithm::FixedWindow, None, 4),
    ];
    for (algorithm, burst, bound) in cases {
        let (store, clock) = manual_store();
        let mut builder = RateLimiter::builder(store)
            .limit(2)
            .period(Duration::from_secs(1))
            .algorithm(algorithm)
            .clock(clock.clone());
        if let Some(burst) = burst {
            builder = builder.burst(burst);
        }
        let limiter = builder.build().unwrap();
        let times = admissions(&limiter, &clock, 50, 60).await;
        let most = most_in_any_window(&times, 1_000);
        assert!(
            most <= bound,
            "{algorithm:?} burst {burst:?}: {most} admitted within one second: {times:?}"
        );
        // Over 3 s, each admits its long-run rate: about 2 per second.
        assert!(times.len() >= 6, "{algorithm:?}: {times:?}");
        if algorithm == RateLimitAlgorithm::SlidingWindow {
            assert_eq!(times, [0, 0, 1000, 1000, 2000, 2000]);
        }
    }
}

#[tokio::test]
async fn sliding_window_says_when_room_frees_up() {
    let (store, clock) = manual_store();
    let limiter = RateLimiter::builder(store)
        .limit(3)
        .period(Duration::from_secs(10))
        .algorithm(RateLimitAlgorithm::SlidingWindow)
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        assert!(limiter.check("a").await.unwrap().allowed);
        clock.advance(Duration::from_secs(2));
    }
    // Admitted at 0, 2 and 4 s; now 6 s.
    let denied = limiter.check("a").await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.retry_after, Duration::from_secs(4));
    assert_eq!(denied.reset_after, Duration::from_secs(8));
    // Room for one frees at 10 s, for two at 12 s; a denied request costs nothing.
    let err = limiter.check_n("a", 4).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        limiter.check_n("a", 2).await.unwrap().retry_after,
        Duration::from_secs(6)
    );
    clock.advance(Duration::from_secs(4));
    assert!(limiter.check("a").await.unwrap().allowed);
    assert!(!limiter.check("a").await.unwrap().allowed);
}

#[tokio::test]
async fn a_failing_store_gives_the_error_or_the_chosen_decision() {
    let store = FlakyStore::over(MemoryStore::new());
    store.down.store(true, Ordering::SeqCst);
    for algorithm in [
        RateLimitAlgorithm::FixedWindow,
        RateLimitAlgorithm::SlidingWindow,
        RateLimitAlgorithm::Gcra,
    ] {
        let limiter = |policy| {
            RateLimiter::builder(store.clone())
                .limit(5)
                .period(Duration::from_secs(60))
                .algorithm(algorithm)
                .on_store_failure(policy)
                .build()
                .unwrap()
        };
        let err = limiter(OnStoreFailure::ReturnError)
            .check("a")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
        let open = limiter(OnStoreFailure::Allow).check("a").await.unwrap();
        assert!(open.allowed && open.degraded, "{open:?}");
        assert_eq!(open.remaining, 4);
        let closed = limiter(OnStoreFailure::Deny).check("a").await.unwrap();
        assert!(!closed.allowed && closed.degraded, "{closed:?}");
        assert_eq!(closed.retry_after, Duration::from_secs(1));
        // An error retrying cannot fix is returned whatever the policy.
        let err = RateLimiter::builder(MemoryStore::new())
            .algorithm(algorithm)
            .on_store_failure(OnStoreFailure::Allow)
            .build()
            .unwrap()
            .check(&"k".repeat(10_000))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{algorithm:?}");
    }
}

#[tokio::test]
async fn gcra_spaces_requests_after_the_burst() {
    let (store, clock) = manual_store();
    let limiter = RateLimiter::builder(store)
        .limit(10)
        .period(Duration::from_secs(1))
        .algorithm(RateLimitAlgorithm::Gcra)
        .clock(clock.clone())
        .build()
        .unwrap();
    for remaining in (0..10).rev() {
        let d = limiter.check("a").await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, remaining);
    }
    let denied = limiter.check("a").await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after, Duration::from_millis(100));
    clock.advance(Duration::from_millis(100));
    assert!(limiter.check("a").await.unwrap().allowed);
    assert!(!limiter.check("a").await.unwrap().allowed);
    // A full period restores the whole burst.
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.check("a").await.unwrap().remaining, 9);
    // A cost above the limit can never pass.
    let err = limiter.check_n("a", 11).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn gcra_admits_exactly_the_limit_in_a_burst() {
    // Limits that do not divide the period in microseconds, and one above it.
    for (limit, period) in [
        (3, Duration::from_secs(1)),
        (1_500, Duration::from_secs(1)),
        (7_000, Duration::from_secs(1)),
        (5_000, Duration::from_millis(1)),
    ] {
        let (store, clock) = manual_store();
        let limiter = RateLimiter::builder(store)
            .limit(limit)
            .period(period)
            .algorithm(RateLimitAlgorithm::Gcra)
            .clock(clock.clone())
            .build()
            .unwrap();
        for round in 0..2 {
            let mut admitted = 0;
            for _ in 0..limit * 2 {
                admitted += u64::from(limiter.check("a").await.unwrap().allowed);
            }
            assert_eq!(admitted, limit, "{limit} per {period:?}, round {round}");
            clock.advance(period);
        }
    }
}

/// A caller that read the time, then stalled on its way to the store while others admitted and
/// pruned the log, must not decide at its old time: seen admitting a third request in a window
/// of 2 (CI: 22 in a window of 20) before the time was read after the state.
#[tokio::test]
async fn a_caller_that_stalls_before_reading_the_state_decides_at_the_time_it_reads_it() {
    for algorithm in [RateLimitAlgorithm::SlidingWindow, RateLimitAlgorithm::Gcra] {
        let clock = ManualClock::new();
        let store = FlakyStore::over(MemoryStore::builder().clock(clock.clone()).build().unwrap());
        let limiter = RateLimiter::builder(store.clone())
            .limit(2)
            .period(Duration::from_millis(1_000))
            .algorithm(algorithm)
            .clock(clock.clone())
            .build()
            .unwrap();
        assert!(limiter.check("c").await.unwrap().allowed);
        assert!(limiter.check("c").await.unwrap().allowed);
        // The stalled caller: held before its read of the state.
        let release = store.late_get.arm();
        let stalled = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("c").await.unwrap() })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(1_500));
        assert!(limiter.check("c").await.unwrap().allowed, "{algorithm:?}");
        release.send(()).unwrap();
        let stalled = stalled.await.unwrap();
        // All three of these happen at 1 500 ms: at most two may be admitted.
        let third = limiter.check("c").await.unwrap();
        assert!(
            !(stalled.allowed && third.allowed),
            "{algorithm:?}: 3 admitted within one period ({stalled:?}, {third:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tiered cache

#[tokio::test]
async fn reads_fill_l1_from_l2_without_outliving_l2() {
    let (l1, clock) = manual_store();
    let l2 = MemoryStore::builder().clock(clock.clone()).build().unwrap();
    let cache = TieredCache::builder(l1.clone(), l2.clone())
        .l1_ttl(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    l2.set(
        "k",
        "\"from-l2\"",
        SetOptions::new().ttl(Duration::from_secs(5)),
    )
    .unwrap();

    assert_eq!(cache.get::<String>("k").await.unwrap().unwrap(), "from-l2");
    match l1.ttl("k").unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_secs(5), "{left:?}"),
        other => panic!("L1 copy should expire with L2's: {other:?}"),
    }
    assert_eq!(cache.get::<String>("k").await.unwrap().unwrap(), "from-l2");
    assert_eq!(cache.get::<String>("missing").await.unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.l1_hits, stats.l2_hits, stats.misses), (1, 1, 1));

    // Once L2's copy expires, so has L1's.
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
}

#[tokio::test]
async fn the_expiry_stamp_keeps_another_instances_l1_copy_within_l2s_ttl() {
    let clock = ManualClock::new();
    let l2 = MemoryStore::builder().clock(clock.clone()).build().unwrap();
    let instance = || {
        let l1 = MemoryStore::builder().clock(clock.clone()).build().unwrap();
        let cache = TieredCache::builder(l1.clone(), l2.clone())
            .l1_ttl(Duration::from_secs(60))
            .clock(clock.clone())
            .build()
            .unwrap();
        (cache, l1)
    };
    let ((writer, _), (reader, reader_l1)) = (instance(), instance());
    writer
        .set_with_ttl("k", &"v", Duration::from_secs(5))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));

    assert_eq!(reader.get::<String>("k").await.unwrap().unwrap(), "v");
    assert_eq!(reader.stats().l2_hits, 1);
    match reader_l1.ttl("k").unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_secs(3), "{left:?}"),
        other => panic!("the L1 copy should expire with L2's: {other:?}"),
    }
    clock.advance(Duration::from_secs(3));
    assert_eq!(reader.get::<String>("k").await.unwrap(), None);
}

#[tokio::test]
async fn plain_l2_values_are_the_codecs_bytes() {
    let (l1, l2) = (MemoryStore::new(), MemoryStore::new());
    let cache = TieredCache::builder(l1, l2.clone())
        .plain_l2_values()
        .default_ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    cache.set("k", &"lamp").await.unwrap();
    assert_eq!(l2.get("k").unwrap().as_deref(), Some(&b"\"lamp\""[..]));
    // A second instance reads it, asking L2 for the TTL.
    let other = TieredCache::builder(MemoryStore::new(), l2)
        .build()
        .unwrap();
    assert_eq!(other.get::<String>("k").await.unwrap().unwrap(), "lamp");
}

#[tokio::test]
async fn writes_and_deletes_go_to_both_tiers() {
    let (l1, l2) = (MemoryStore::new(), MemoryStore::new());
    let cache = TieredCache::builder(l1.clone(), l2.clone())
        .namespace("p")
        .default_ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    cache.set("1", &"lamp").await.unwrap();
    let stored = l2.get("p:1").unwrap().unwrap();
    assert_eq!(&stored[..4], b"\xffTC\x01", "stamped with its expiry");
    assert_eq!(&stored[12..], b"\"lamp\"");
    assert!(l1.get("p:1").unwrap().is_some());
    assert!(matches!(l2.ttl("p:1").unwrap(), KeyTtl::ExpiresIn(_)));
    assert_eq!(cache.get::<String>("1").await.unwrap().unwrap(), "lamp");
    assert_eq!(cache.stats().l1_hits, 1);

    assert!(cache.delete("1").await.unwrap());
    assert!(l1.get("p:1").unwrap().is_none());
    assert!(l2.get("p:1").unwrap().is_none());

    cache.set("2", &2).await.unwrap();
    cache.set("3", &3).await.unwrap();
    l2.set("other", "x", SetOptions::new()).unwrap();
    assert_eq!(cache.clear().await.unwrap(), 2);
    assert!(l1.is_empty());
    assert_eq!(l2.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_run_the_loader_once_across_the_tier() {
    let l2 = FlakyStore::over(MemoryStore::new());
    let cache = TieredCache::builder(MemoryStore::new(), l2.clone())
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("slow", None, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, std::io::Error>(7u32)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loader_runs, 1);
    // One L2 read and one L2 write for all 20 callers.
    assert_eq!(l2.calls.load(Ordering::SeqCst), 2);
    assert!(l2.inner.get("slow").unwrap().unwrap().ends_with(b"7"));

    let err = cache
        .get_or_insert_with::<u32, _, _, _>("fails", None, || async {
            Err::<u32, _>(std::io::Error::other("database down"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader);
    assert!(l2.inner.get("fails").unwrap().is_none());
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(5), "never happened");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_reaches_the_others_l1() {
    let l2 = MemoryStore::new();
    let bus = InProcessBus::default();
    let instance = || {
        TieredCache::builder(MemoryStore::new(), l2.clone())
            .l1_ttl(Duration::from_secs(600))
            .bus(bus.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (instance(), instance());
    tokio::spawn(a.listen().await.unwrap().run());
    tokio::spawn(b.listen().await.unwrap().run());

    a.set("price", &10).await.unwrap();
    // Let a's announcement reach b first, or it would drop the copy b is about to make.
    eventually(async || b.stats().bus_messages == 1).await;
    assert_eq!(b.get::<u32>("price").await.unwrap(), Some(10));
    assert_eq!(b.get::<u32>("price").await.unwrap(), Some(10));
    assert_eq!(b.stats().l1_hits, 1);

    a.set("price", &12).await.unwrap();
    eventually(async || b.get::<u32>("price").await.unwrap() == Some(12)).await;

    a.delete("price").await.unwrap();
    eventually(async || b.get::<u32>("price").await.unwrap().is_none()).await;

    b.set("x", &1).await.unwrap();
    a.get::<u32>("x").await.unwrap();
    b.clear().await.unwrap();
    eventually(async || a.get::<u32>("x").await.unwrap().is_none()).await;

    // Each instance ignored its own messages and applied the other's: b got a's set, set, delete;
    // a got b's set and clear.
    eventually(async || a.stats().bus_messages == 2 && b.stats().bus_messages == 3).await;
}

#[tokio::test]
async fn missed_bus_messages_clear_l1() {
    let l2 = MemoryStore::new();
    let l1_b = MemoryStore::new();
    let bus = InProcessBus::new(1);
    let a = TieredCache::builder(MemoryStore::new(), l2.clone())
        .bus(bus.clone())
        .build()
        .unwrap();
    let b = TieredCache::builder(l1_b.clone(), l2.clone())
        .bus(bus.clone())
        .build()
        .unwrap();
    let listener = b.listen().await.unwrap();
    b.set("kept", &1).await.unwrap();
    assert!(!l1_b.is_empty());
    // Three messages into a buffer of one, before b's listener runs: b misses some.
    for i in 0..3 {
        a.set(&format!("other{i}"), &i).await.unwrap();
    }
    let run = tokio::spawn(listener.run());
    eventually(async || b.stats().bus_resyncs == 1).await;
    assert!(l1_b.get("kept").unwrap().is_none());
    drop((a, b, bus));
    run.await.unwrap();
}

#[tokio::test]
async fn fail_safe_serves_stale_l1_while_l2_is_down_and_the_breaker_stops_calls() {
    let (l1, clock) = manual_store();
    let l2 = FlakyStore::over(MemoryStore::builder().clock(clock.clone()).build().unwrap());
    let cache = TieredCache::builder(l1, l2.clone())
        .l1_ttl(Duration::from_secs(1))
        .fail_safe_grace(Duration::from_secs(60))
        .circuit_breaker(3, Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.set("k", &"v1").await.unwrap();
    clock.advance(Duration::from_secs(2)); // the L1 copy is stale now

    l2.down.store(true, Ordering::SeqCst);
    assert_eq!(cache.get::<String>("k").await.unwrap().unwrap(), "v1");
    let loaded: String = cache
        .get_or_insert_with("k", None, || async { Ok::<_, std::io::Error>("db".into()) })
        .await
        .unwrap();
    assert_eq!(
        loaded, "v1",
        "the stale copy is served before running the loader"
    );
    // A key that was never cached: the loader still answers.
    let fresh: String = cache
        .get_or_insert_with("new", None, || async {
            Ok::<_, std::io::Error>("db".into())
        })
        .await
        .unwrap();
    assert_eq!(fresh, "db");
    assert_eq!(cache.stats().fail_safe_activations, 3);
    assert!(cache.is_l2_circuit_open());

    // Writes report the failure; with the circuit open, L2 is not even called.
    let calls = l2.calls.load(Ordering::SeqCst);
    let err = cache.set("k", &"v2").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert_eq!(cache.get::<String>("k").await.unwrap().unwrap(), "v1");
    assert_eq!(l2.calls.load(Ordering::SeqCst), calls);
    assert!(cache.stats().l2_rejected >= 2);
    // Nothing cached and L2 down: a plain read fails.
    assert_eq!(
        cache.get::<String>("never").await.unwrap_err().kind(),
        ErrorKind::Connection
    );

    // L2 comes back: after the open period one probe closes the circuit.
    l2.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(5));
    cache.set("k", &"v2").await.unwrap();
    assert!(!cache.is_l2_circuit_open());
    assert_eq!(cache.get::<String>("k").await.unwrap().unwrap(), "v2");

    // Past the grace period a stale copy is gone for good.
    l2.down.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(62));
    assert!(cache.get::<String>("k").await.is_err());
}

#[tokio::test]
async fn a_hanging_l2_times_out_and_the_l1_copy_is_served() {
    let (l1, clock) = manual_store();
    let l2 = FlakyStore::over(MemoryStore::new());
    let cache = TieredCache::builder(l1, l2.clone())
        .l1_ttl(Duration::from_secs(1))
        .fail_safe_grace(Duration::from_secs(60))
        .l2_timeout(Duration::from_millis(30))
        .sleeper(tokio::time::sleep)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.set("k", &1).await.unwrap();
    clock.advance(Duration::from_secs(2));
    l2.hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = cache.set("k", &2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let stats = cache.stats();
    assert_eq!((stats.l2_errors, stats.fail_safe_activations), (2, 1));

    let no_sleeper = TieredCache::builder(MemoryStore::new(), MemoryStore::new())
        .l2_timeout(Duration::from_millis(30))
        .build()
        .unwrap_err();
    assert_eq!(no_sleeper.kind(), ErrorKind::Config);
}

/// What L2 holds for `key`, read by an instance with an empty L1.
async fn in_l2(l2: &FlakyStore, key: &str) -> Option<String> {
    TieredCache::builder(MemoryStore::new(), l2.clone())
        .build()
        .unwrap()
        .get(key)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_l1_copy_never_outlives_a_racing_write_or_delete() {
    let l2 = FlakyStore::over(MemoryStore::new());
    let cache = TieredCache::builder(MemoryStore::new(), l2.clone())
        .build()
        .unwrap();

    // The delete runs while the set's L2 reply is on its way.
    let release = l2.held_set.arm();
    let (set, deleted) = join!(cache.set("k", &"v1"), async {
        let deleted = cache.delete("k").await;
        release.send(()).unwrap();
        deleted
    });
    set.unwrap();
    assert!(deleted.unwrap());
    assert_eq!(in_l2(&l2, "k").await, None);
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);

    // Two writes race; whichever L2 kept, L1 agrees.
    let release = l2.held_set.arm();
    let (first, second) = join!(cache.set("k", &"v1"), async {
        let second = cache.set("k", &"v2").await;
        release.send(()).unwrap();
        second
    });
    first.unwrap();
    second.unwrap();
    let kept = in_l2(&l2, "k").await;
    assert_eq!(cache.get::<String>("k").await.unwrap(), kept);
}

#[tokio::test]
async fn a_read_that_starts_after_a_delete_returned_never_gets_the_deleted_value() {
    let l2 = FlakyStore::over(MemoryStore::new());
    let l1 = MemoryStore::new();
    let cache = TieredCache::builder(l1.clone(), l2.clone())
        .build()
        .unwrap();
    cache.set("k", &"v0").await.unwrap();
    l1.clear("");

    // The first read is at L2 when the delete runs; the second starts after the delete returned and
    // finds the first one's flight still open.
    let release = l2.held_get.arm();
    let (first, second) = join!(cache.get::<String>("k"), async {
        assert!(cache.delete("k").await.unwrap());
        let (second, ()) = join!(cache.get::<String>("k"), async {
            release.send(()).unwrap();
        });
        second
    });
    // The first read overlapped the delete: either answer is right for it.
    assert!(matches!(first.unwrap().as_deref(), None | Some("v0")));
    assert_eq!(second.unwrap(), None);
}

#[tokio::test]
async fn a_write_whose_reply_is_lost_drops_the_l1_copies_and_is_announced() {
    let l2 = FlakyStore::over(MemoryStore::new());
    let bus = InProcessBus::default();
    let instance = || {
        TieredCache::builder(MemoryStore::new(), l2.clone())
            .bus(bus.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (instance(), instance());
    tokio::spawn(b.listen().await.unwrap().run());
    a.set("k", &"v0").await.unwrap();
    eventually(async || b.stats().bus_messages == 1).await;
    assert_eq!(b.get::<String>("k").await.unwrap().as_deref(), Some("v0"));

    l2.lose_set_replies.store(true, Ordering::SeqCst);
    let err = a.set("k", &"v1").await.unwrap_err();
    l2.lose_set_replies.store(false, Ordering::SeqCst);
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // L2 took the write: neither instance may keep serving v0.
    assert_eq!(a.get::<String>("k").await.unwrap().as_deref(), Some("v1"));
    eventually(async || b.get::<String>("k").await.unwrap().as_deref() == Some("v1")).await;
}

/// A bus whose publishes fail while `down` is set.
#[derive(Debug, Clone, Default)]
struct DownBus {
    inner: InProcessBus,
    down: Arc<AtomicBool>,
}

#[async_trait]
impl cache_core::InvalidationBus for DownBus {
    async fn publish(&self, message: &cache_core::Invalidation) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(cache_core::Error::new(ErrorKind::Connection, "bus down"));
        }
        self.inner.publish(message).await
    }

    async fn subscribe(&self) -> Result<futures::stream::BoxStream<'static, cache_core::BusEvent>> {
        self.inner.subscribe().await
    }
}

/// A change that could not be announced is an error, although it was made: another instance may
/// go on serving the value it replaced. Retrying once the bus works announces it.
#[tokio::test]
async fn a_change_whose_announcement_fails_is_an_error() {
    let l2 = MemoryStore::new();
    let bus = DownBus::default();
    let instance = || {
        TieredCache::builder(MemoryStore::new(), l2.clone())
            .l1_ttl(Duration::from_secs(600))
            .bus(bus.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (instance(), instance());
    tokio::spawn(b.listen().await.unwrap().run());
    a.set("k", &1).await.unwrap();
    eventually(async || b.stats().bus_messages == 1).await;
    assert_eq!(b.get::<u32>("k").await.unwrap(), Some(1));

    bus.down.store(true, Ordering::SeqCst);
    let err = a.set("k", &2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.is_retryable());
    assert!(err.message().contains("was made"), "{err}");
    assert_eq!(a.stats().bus_publish_errors, 1);
    assert_eq!(
        a.get::<u32>("k").await.unwrap(),
        Some(2),
        "the write was made"
    );
    assert!(a.delete("k").await.is_err());
    assert!(a.clear().await.is_err());
    assert_eq!(a.stats().bus_publish_errors, 3);

    bus.down.store(false, Ordering::SeqCst);
    a.set("k", &3).await.unwrap();
    eventually(async || b.get::<u32>("k").await.unwrap() == Some(3)).await;
}

#[tokio::test]
async fn a_value_written_while_the_loader_runs_is_not_overwritten() {
    let load_old = |loaded: oneshot::Receiver<()>| async move {
        loaded.await.unwrap();
        Ok::<_, std::io::Error>("old".to_owned())
    };

    let cache = Cache::builder(MemoryStore::new()).build().unwrap();
    let (done, loaded) = oneshot::channel();
    let (got, ()) = join!(
        cache.get_or_insert_with("k", None, || load_old(loaded)),
        async {
            cache.set("k", &"new").await.unwrap();
            done.send(()).unwrap();
        }
    );
    assert_eq!(got.unwrap(), "old", "the callers get what the loader made");
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("new")
    );

    // Tiered, the write coming from another instance.
    let l2 = FlakyStore::over(MemoryStore::new());
    let cache = TieredCache::builder(MemoryStore::new(), l2.clone())
        .build()
        .unwrap();
    let other = TieredCache::builder(MemoryStore::new(), l2.clone())
        .build()
        .unwrap();
    let (done, loaded) = oneshot::channel();
    let (got, ()) = join!(
        cache.get_or_insert_with("k", None, || load_old(loaded)),
        async {
            other.set("k", &"new").await.unwrap();
            done.send(()).unwrap();
        }
    );
    assert_eq!(got.unwrap(), "old");
    assert_eq!(in_l2(&l2, "k").await.as_deref(), Some("new"));
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("new")
    );
}

#[tokio::test]
async fn extreme_durations_are_errors_or_work_never_panics() {
    let err = TieredCache::builder(MemoryStore::new(), MemoryStore::new())
        .fail_safe_grace(Duration::MAX)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);

    // A breaker that stays open for ever opens on the first failure.
    let l2 = FlakyStore::over(MemoryStore::new());
    let cache = TieredCache::builder(MemoryStore::new(), l2.clone())
        .circuit_breaker(1, Duration::MAX)
        .build()
        .unwrap();
    l2.down.store(true, Ordering::SeqCst);
    assert!(cache.get::<u32>("k").await.is_err());
    assert!(cache.is_l2_circuit_open());

    let locks = LockManager::builder(MemoryStore::new())
        .backoff(Duration::MAX, Duration::MAX)
        .sleeper(tokio::time::sleep)
        .build()
        .unwrap();
    let held = locks.try_acquire("l").await.unwrap().unwrap();
    let waited = locks.acquire("l", Duration::from_millis(20)).await.unwrap();
    assert!(waited.is_none());
    assert!(held.release().await.unwrap());
}

/// Every builder reports an invalid setting as an error; none panics.
#[tokio::test]
async fn invalid_builder_settings_are_errors_not_panics() {
    let zero = Duration::ZERO;
    let kind = |r: Result<()>| r.unwrap_err().kind();
    let cache = Cache::builder(MemoryStore::new()).default_ttl(zero).build();
    assert_eq!(kind(cache.map(drop)), ErrorKind::InvalidArgument);
    let cache = Cache::builder(MemoryStore::new())
        .default_ttl(Duration::MAX)
        .build();
    assert_eq!(kind(cache.map(drop)), ErrorKind::InvalidArgument);
    let tiered = TieredCache::builder(MemoryStore::new(), MemoryStore::new())
        .default_ttl(zero)
        .build();
    assert_eq!(kind(tiered.map(drop)), ErrorKind::InvalidArgument);
    let locks = LockManager::builder(MemoryStore::new()).lease(zero).build();
    assert_eq!(kind(locks.map(drop)), ErrorKind::InvalidArgument);
    let limiter = RateLimiter::builder(MemoryStore::new()).limit(0).build();
    assert_eq!(kind(limiter.map(drop)), ErrorKind::InvalidArgument);
    let limiter = RateLimiter::builder(MemoryStore::new())
        .period(zero)
        .build();
    assert_eq!(kind(limiter.map(drop)), ErrorKind::InvalidArgument);
    let store = MemoryStore::builder().max_entries(0).build();
    assert_eq!(kind(store.map(drop)), ErrorKind::Config);
}

// ---------------------------------------------------------------------------------------------
// Memoization

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memoized_calls_run_once_per_arguments() {
    let (store, clock) = manual_store();
    let cache = Cache::builder(store).namespace("memo").build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let square = Arc::new(Memoized::new(
        cache,
        "square",
        Some(Duration::from_secs(10)),
        move |n: u64| {
            let runs = counted.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, std::io::Error>(n * n)
            }
        },
    ));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let square = square.clone();
            tokio::spawn(async move { square.call(&9).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 81);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(square.call(&3).await.unwrap(), 9);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(square.key(&3).unwrap(), "square:3");

    assert!(square.invalidate(&9).await.unwrap());
    square.call(&9).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    clock.advance(Duration::from_secs(10));
    square.call(&9).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn memoized_long_arguments_are_hashed() {
    let cache = Cache::builder(MemoryStore::new()).build().unwrap();
    let len = Memoized::new(cache, "len", None, |s: String| async move {
        Ok::<_, std::io::Error>(s.len())
    });
    let long = "x".repeat(2_000);
    let key = len.key(&long).unwrap();
    assert!(
        key.starts_with("len:#") && key.len() == "len:#".len() + 32,
        "{key}"
    );
    assert_eq!(len.call(&long).await.unwrap(), 2_000);
    assert_eq!(len.call(&long).await.unwrap(), 2_000);
}
