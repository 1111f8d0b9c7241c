//! Measuring L2 reads against a bare store read, shared by the `tiered` and `typed` benches
//! (included by path): one task's latency, 50 tasks' throughput, the two sides back to back.
#![allow(dead_code)] // each bench uses part of it

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) const L2_SEQUENTIAL_OPS: usize = 10_000;
pub(crate) const TASKS: usize = 50;
pub(crate) const ROUND: Duration = Duration::from_secs(1);

/// One read of `key`, by whichever side is measured.
pub(crate) type Get =
    Arc<dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Microseconds per read, one read at a time.
pub(crate) async fn sequential_latency(get: &Get, keys: &[String]) -> f64 {
    let started = Instant::now();
    for i in 0..L2_SEQUENTIAL_OPS {
        get(keys[i % keys.len()].clone()).await;
    }
    started.elapsed().as_nanos() as f64 / L2_SEQUENTIAL_OPS as f64 / 1_000.0
}

/// Reads per second from [`TASKS`] tasks over one [`ROUND`].
pub(crate) async fn throughput(get: &Get, keys: &Arc<Vec<String>>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (get, keys, stop, ops) = (get.clone(), keys.clone(), stop.clone(), ops.clone());
            tokio::spawn(async move {
                let mut i = t * keys.len() / TASKS;
                while !stop.load(Ordering::Relaxed) {
                    get(keys[i % keys.len()].clone()).await;
                    i += 1;
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(ROUND).await;
    stop.store(true, Ordering::Relaxed);
    let done = ops.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for task in tasks {
        task.await.unwrap();
    }
    done as f64 / elapsed.as_secs_f64()
}

/// Measures the bare and the tiered side back to back, in the order `bare_first` says; returns
/// (bare, tiered).
pub(crate) async fn back_to_back<F: Future<Output = f64>>(
    bare_first: bool,
    bare: &Get,
    tiered: &Get,
    measure: impl Fn(Get) -> F,
) -> (f64, f64) {
    if bare_first {
        let bare = measure(bare.clone()).await;
        (bare, measure(tiered.clone()).await)
    } else {
        let tiered = measure(tiered.clone()).await;
        (measure(bare.clone()).await, tiered)
    }
}

/// Polls a future that an in-process store answers at once; one that waits (on another
/// thread's load of the same key) is run to completion.
pub(crate) fn ready<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => futures::executor::block_on(future),
    }
}
