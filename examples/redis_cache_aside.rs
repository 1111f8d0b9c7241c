//! The quick start's story on Redis: a typed cache, a TTL, cache-aside loading, a counter, all in a
//! Redis that every process shares.
//!
//! Start Redis (`docker compose up -d` at the repository root), then run
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run -p examples --example redis_cache_aside`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backend_redis::{RedisConfig, RedisStore};
use cache_core::{Cache, CacheStore, Error};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u32,
    name: String,
    price_cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // REDIS_URL, e.g. redis://127.0.0.1:6379 or rediss://user:password@host:6380/0.
    let mut config = RedisConfig::from_env()?;
    config.key_prefix = "example:".into(); // every key this example writes starts with it
    let store = RedisStore::connect(config).await?;
    let cache = Cache::builder(store.clone())
        .namespace("shop")
        .default_ttl(Duration::from_secs(300))
        .build()
        .unwrap();

    // 1. Set and get a typed value. In Redis it is plain JSON under "example:shop:product:1"
    //    (the namespace's separator may differ), readable by any client.
    let lamp = Product {
        id: 1,
        name: "Desk lamp".into(),
        price_cents: 3_499,
    };
    cache.set("product:1", &lamp).await?;
    let found: Option<Product> = cache.get("product:1").await?;
    println!("1. get after set      -> {found:?}");

    // 2. A TTL expiring, measured by Redis itself.
    cache
        .set_with_ttl("session:abc", "ada", Duration::from_millis(150))
        .await?;
    println!(
        "2. session before TTL -> {:?}",
        cache.get::<String>("session:abc").await?
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!(
        "   session after TTL  -> {:?}",
        cache.get::<String>("session:abc").await?
    );

    // 3. Cache-aside: ten concurrent misses on one key run the loader once in this process; the
    //    value then lives in Redis for every other process too.
    cache.delete("product:2").await?;
    let loader_runs = Arc::new(AtomicUsize::new(0));
    let lookups: Vec<_> = (0..10)
        .map(|_| {
            let (cache, loader_runs) = (cache.clone(), loader_runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("product:2", None, || async move {
                        loader_runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await; // a slow database
                        Ok::<_, std::io::Error>(Product {
                            id: 2,
                            name: "Stool".into(),
                            price_cents: 2_000,
                        })
                    })
                    .await
            })
        })
        .collect();
    for lookup in lookups {
        let product = lookup.await.expect("task")?;
        assert_eq!(product.id, 2);
    }
    println!(
        "3. 10 concurrent loads -> loader ran {} time(s)",
        loader_runs.load(Ordering::SeqCst)
    );

    // 4. A counter: INCRBY in Redis, atomic across processes, with a TTL set when it is created.
    for _ in 0..3 {
        cache
            .incr_by("views:product:1", 1, Some(Duration::from_secs(3600)))
            .await?;
    }
    println!(
        "4. counter            -> {}",
        cache.incr_by("views:product:1", 0, None).await?
    );

    // 5. Clean up everything this example wrote (SCAN + UNLINK under its prefix, never KEYS).
    let removed = store.clear("").await?;
    println!("5. cleared            -> {removed} keys");
    Ok(())
}
