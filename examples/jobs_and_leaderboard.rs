//! A job queue and a leaderboard on the collections of the cache: a list that workers pop from, and
//! a sorted set of scores. It runs on the memory backend, or on Redis when `REDIS_URL` is set:
//!
//! ```sh
//! cargo run -p examples --example jobs_and_leaderboard
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p examples --example jobs_and_leaderboard
//! ```
//!
//! Cargo.toml lines it needs: `cache-core`, `backend-memory`, `backend-redis`, `serde`, `tokio`
//! (`rt-multi-thread`, `macros`).

use std::collections::HashSet;
use std::sync::Arc;

use backend_memory::MemoryStore;
use backend_redis::RedisStore;
use cache_core::{Cache, CacheStore, Error, Order};
use serde::{Deserialize, Serialize};

/// A unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Job {
    id: u32,
    image: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let store: Arc<dyn CacheStore> = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            println!("on Redis at {}", url.split('@').next_back().unwrap_or("?"));
            Arc::new(RedisStore::from_url(&url).await?)
        }
        _ => {
            println!("on the memory backend");
            Arc::new(MemoryStore::new())
        }
    };
    let cache = Cache::builder(store)
        .namespace(format!("demo-{}", std::process::id()))
        .build()
        .unwrap();

    // The job queue: producers push at the tail, workers take batches from the head. Every job is
    // taken by exactly one worker, however many race.
    let queue = cache.list::<Job>("jobs")?;
    let jobs: Vec<Job> = (0..100)
        .map(|id| Job {
            id,
            image: format!("photo-{id}.jpg"),
        })
        .collect();
    for batch in jobs.chunks(25) {
        queue.push_back(batch).await?;
    }
    println!("queued {} jobs", queue.len().await?);
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let queue = cache.list::<Job>("jobs")?;
                let mut done = Vec::new();
                loop {
                    let batch = queue.pop_front(10).await?;
                    if batch.is_empty() {
                        return Ok::<_, Error>((worker, done));
                    }
                    done.extend(batch);
                }
            })
        })
        .collect();
    let mut processed = HashSet::new();
    for worker in workers {
        let (worker, done) = worker.await.expect("a worker panicked")?;
        println!("worker {worker} processed {} jobs", done.len());
        for job in done {
            assert!(processed.insert(job), "a job was processed twice");
        }
    }
    assert_eq!(processed.len(), jobs.len(), "every job was processed");
    assert!(queue.is_empty().await?);

    // The leaderboard: points land concurrently; the sorted set keeps the order.
    let board = cache.sorted_set::<String>("leaderboard")?;
    let players = ["ada", "grace", "linus", "barbara", "ken"];
    let games: Vec<_> = (0..50u32)
        .map(|game| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let board = cache.sorted_set::<String>("leaderboard")?;
                let player = players[(game * 7 % 5) as usize].to_string();
                board.incr_by(&player, f64::from(game % 10)).await?;
                Ok::<_, Error>(())
            })
        })
        .collect();
    for game in games {
        game.await.expect("a game panicked")?;
    }
    let top = board.range_by_rank(0, 3, Order::Descending).await?;
    println!("top 3:");
    for (rank, (player, score)) in top.iter().enumerate() {
        println!("  {}. {player} {score}", rank + 1);
    }
    let total: f64 = board
        .range_by_rank(0, players.len(), Order::Ascending)
        .await?
        .iter()
        .map(|(_, score)| score)
        .sum();
    let expected: u32 = (0..50).map(|game| game % 10).sum();
    assert_eq!(total, f64::from(expected), "no point was lost");
    let grace = board.rank(&"grace".to_string(), Order::Descending).await?;
    println!("grace is number {}", grace.map_or(0, |r| r + 1));

    let removed = cache.clear().await?;
    println!("cleaned up {removed} key(s)");
    Ok(())
}
