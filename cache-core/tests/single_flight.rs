//! Single-flight edge cases that need a runtime: a cancelled leader hands the load to a waiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backend_memory::MemoryStore;
use cache_core::Cache;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_the_load_to_a_waiter() {
    let cache = Cache::builder(MemoryStore::new()).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));

    // The first caller starts a load that never finishes, then is cancelled by a timeout.
    let leader = {
        let (cache, runs) = (cache.clone(), runs.clone());
        tokio::spawn(async move {
            cache
                .get_or_insert_with("k", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Result<u32, std::io::Error>>().await
                })
                .await
        })
    };
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }

    // A second caller waits on the first one's flight...
    let waiter = {
        let (cache, runs) = (cache.clone(), runs.clone());
        tokio::spawn(async move {
            cache
                .get_or_insert_with("k", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(7u32)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "the waiter must wait for the leader");

    // ...and runs the load itself once the leader is gone.
    leader.abort();
    let value = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("waiter finished")
        .unwrap();
    assert_eq!(value.unwrap(), 7);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(7));
}
