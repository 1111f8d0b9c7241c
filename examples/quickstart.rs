//! The quick start: a typed cache on the in-memory backend, no server needed.
//!
//! Run it with `cargo run --example quickstart`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backend_memory::MemoryStore;
use cache_core::{Cache, Error};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u32,
    name: String,
    price_cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let store = MemoryStore::builder()
        .max_entries(10_000)
        .max_bytes(16 << 20)
        // The store's own hit and miss counts are off by default (they cost every read an atomic
        // write); the typed cache counts its own either way.
        .count_hits_and_misses(true)
        .build()
        .unwrap();
    let cache = Cache::builder(store.clone())
        .namespace("shop")
        .default_ttl(Duration::from_secs(300))
        .build()
        .unwrap();

    // 1. Set and get a typed value.
    let lamp = Product {
        id: 1,
        name: "Desk lamp".into(),
        price_cents: 3_499,
    };
    cache.set("product:1", &lamp).await?;
    let found: Option<Product> = cache.get("product:1").await?;
    println!("1. get after set      -> {found:?}");

    // 2. A TTL expiring.
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

    // 3. Cache-aside: ten concurrent misses on one key run the loader once.
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

    // 4. A counter.
    for _ in 0..3 {
        cache
            .incr_by("views:product:1", 1, Some(Duration::from_secs(3600)))
            .await?;
    }
    println!(
        "4. counter            -> {}",
        cache.incr_by("views:product:1", 0, None).await?
    );

    // 5. Stats, of the typed cache and of the store underneath.
    println!("5. cache stats        -> {:?}", cache.stats());
    println!("   store stats        -> {:?}", store.stats());
    Ok(())
}
