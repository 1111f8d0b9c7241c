//! `cargo xtask bench typed`: what a typed hit costs, as Rust services use caches: a 6-field struct
//! held as `Arc<Product>`, against moka and quick_cache holding the same `Arc<Product>`.
//!
//! - **Memory rows**, cache-aside (get; on a miss, build the struct and insert it), 1 and 2 threads,
//!   on (a) a hot set of 1 000 keys and (b) Zipf(1.0) over 100 000 keys with capacity 10 000:
//!   `Cache<MemoryStore>::get_shared`, the same `Cache` on the decode-every-hit path (a store that
//!   does not say it is in-process, as every store was before shared objects), a `TieredCache` L1
//!   hit, moka `sync::Cache<String, Arc<Product>>` and quick_cache `sync::Cache<String,
//!   Arc<Product>>`. The caches take turns slice by slice (see `support/turns.rs`).
//! - **L2 rows**: `TieredCache::get_shared` answered by Redis (L1 copies go stale after 1 ms)
//!   against a bare `RedisStore` get plus one decode of the struct, 1 task and 50 tasks.
//!
//! Redis: `REDIS_URL` if set, else a `redis-server` on a free port of 127.0.0.1, else the L2 rows
//! are skipped (`cargo xtask bench typed` fails instead under `CI=true`).

#[path = "../../backend-memory/benches/support/turns.rs"]
mod turns;

#[path = "support/l2.rs"]
mod l2;
use l2::{Get, ready, sequential_latency, throughput};
#[path = "support/redis.rs"]
mod redis;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backend_memory::MemoryStore;
use backend_redis::{RedisConfig, RedisStore};
use cache_core::{Cache, CacheStore, TieredCache};
use remote::Remote;
use serde::{Deserialize, Serialize};
use turns::{Contestant, Summary, median, run_rounds, zipf_traces};

const HOT_KEYS: usize = 1_000;
const KEYS: usize = 100_000;
const CAPACITY: usize = 10_000;
const OPS: usize = 2_000_000;
const WARMUP_OPS: usize = 100_000;
const ROUNDS: usize = 5;
const SLICES: usize = 40;

/// What the issue measured: `u64`s, two `String`s and three tags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    stock: u64,
    price_cents: u64,
    name: String,
    description: String,
    tags: Vec<String>,
}

/// The "loader": a fresh struct per miss, as a database read returns.
fn load(key: &str) -> Product {
    Product {
        id: key.len() as u64,
        stock: 7,
        price_cents: 1999,
        name: format!("product {key}"),
        description: "a product that is described in a sentence or two".into(),
        tags: vec!["home".into(), "light".into(), "sale".into()],
    }
}

/// A `MemoryStore` that does not say it lives in this process: the facade then reads it as any
/// remote store, decoding every hit.
mod remote {
    use std::time::Duration;

    use backend_memory::MemoryStore;
    use cache_core::{
        Bytes, CacheStore, Capabilities, KeyTtl, Limits, Result, ScanCursor, ScanPage, SetOptions,
    };

    #[derive(Debug)]
    pub(crate) struct Remote(pub(crate) MemoryStore);

    #[async_trait::async_trait]
    impl CacheStore for Remote {
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn limits(&self) -> Limits {
            CacheStore::limits(&self.0)
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            self.0.get(key)
        }
        async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
            CacheStore::get_many(&self.0, keys).await
        }
        async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<bool> {
            self.0.set(key, value, options)
        }
        async fn set_many(&self, entries: &[(&str, Bytes)], ttl: Option<Duration>) -> Result<()> {
            self.0.set_many(entries, ttl)
        }
        async fn delete(&self, key: &str) -> Result<bool> {
            self.0.delete(key)
        }
        async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
            CacheStore::delete_many(&self.0, keys).await
        }
        async fn exists(&self, key: &str) -> Result<bool> {
            CacheStore::exists(&self.0, key).await
        }
        async fn ttl(&self, key: &str) -> Result<KeyTtl> {
            CacheStore::ttl(&self.0, key).await
        }
        async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
            CacheStore::expire(&self.0, key, ttl).await
        }
        async fn persist(&self, key: &str) -> Result<bool> {
            CacheStore::persist(&self.0, key).await
        }
        async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
            CacheStore::incr_by(&self.0, key, delta, ttl).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            new: Option<Bytes>,
            ttl: Option<Duration>,
        ) -> Result<bool> {
            CacheStore::compare_and_swap(&self.0, key, expected, new, ttl).await
        }
        async fn scan(&self, prefix: &str, cursor: ScanCursor, count: usize) -> Result<ScanPage> {
            CacheStore::scan(&self.0, prefix, cursor, count).await
        }
        async fn clear(&self, prefix: &str) -> Result<u64> {
            CacheStore::clear(&self.0, prefix).await
        }
        async fn ping(&self) -> Result<()> {
            Ok(())
        }
    }
}

struct Typed(Cache);
struct Tiered(TieredCache);
struct Moka(moka::sync::Cache<String, Arc<Product>>);
struct Quick(quick_cache::sync::Cache<String, Arc<Product>>);

impl Contestant for Typed {
    fn step(&self, key: &str) -> bool {
        if ready(self.0.get_shared::<Product>(key)).unwrap().is_some() {
            return true;
        }
        ready(self.0.set_shared(key, Arc::new(load(key)))).unwrap();
        false
    }
}

impl Contestant for Tiered {
    fn step(&self, key: &str) -> bool {
        if ready(self.0.get_shared::<Product>(key)).unwrap().is_some() {
            return true;
        }
        ready(self.0.set_shared(key, Arc::new(load(key)))).unwrap();
        false
    }
}

impl Contestant for Moka {
    fn step(&self, key: &str) -> bool {
        if self.0.get(key).is_some() {
            return true;
        }
        self.0.insert(key.to_owned(), Arc::new(load(key)));
        false
    }
}

impl Contestant for Quick {
    fn step(&self, key: &str) -> bool {
        if self.0.get(key).is_some() {
            return true;
        }
        self.0.insert(key.to_owned(), Arc::new(load(key)));
        false
    }
}

/// A store that holds `capacity` entries of any size.
fn store(capacity: usize) -> MemoryStore {
    MemoryStore::builder()
        .max_entries(capacity)
        .max_bytes(1 << 30)
        .build()
        .unwrap()
}

const TYPED: &str = "Cache<MemoryStore> get_shared";
const DECODING: &str = "Cache, decoding every hit";
const TIERED: &str = "TieredCache L1 get_shared";
const MOKA: &str = "moka Cache<String, Arc<T>>";
const QUICK: &str = "quick_cache Cache<String, Arc<T>>";

fn contestants(capacity: usize) -> Vec<(&'static str, Box<dyn Contestant>)> {
    let cache =
        |store: Arc<dyn CacheStore>| Cache::builder(store).namespace("products").build().unwrap();
    // L1 of the cache's capacity; L2 holds every key (in production: Redis).
    let tiered = TieredCache::builder(store(capacity), store(KEYS * 2))
        .namespace("products")
        .l1_ttl(Duration::from_secs(3_600))
        .build()
        .unwrap();
    vec![
        (TYPED, Box::new(Typed(cache(Arc::new(store(capacity)))))),
        (
            DECODING,
            Box::new(Typed(cache(Arc::new(Remote(store(capacity)))))),
        ),
        (TIERED, Box::new(Tiered(tiered))),
        (
            MOKA,
            Box::new(Moka(moka::sync::Cache::new(capacity as u64))),
        ),
        (
            QUICK,
            Box::new(Quick(quick_cache::sync::Cache::new(capacity))),
        ),
    ]
}

/// One workload at 1 and 2 threads.
struct Workload {
    name: &'static str,
    keys: usize,
    capacity: usize,
    /// `None`: each thread walks the keys in turn (every read a hit once warm).
    zipf: bool,
}

fn traces(workload: &Workload, threads: usize) -> Vec<Vec<u32>> {
    if workload.zipf {
        return zipf_traces(workload.keys, threads, OPS);
    }
    (0..threads)
        .map(|t| {
            (0..OPS / threads)
                .map(|i| ((i * 7 + t * 13) % workload.keys) as u32)
                .collect()
        })
        .collect()
}

struct Results {
    workload: &'static str,
    threads: usize,
    summaries: Vec<Summary>,
}

fn find<'a>(summaries: &'a [Summary], name: &str) -> &'a Summary {
    summaries.iter().find(|s| s.name == name).expect("ran")
}

fn print_memory_table(results: &Results) {
    let s = &results.summaries;
    let (moka, quick, typed) = (find(s, MOKA), find(s, QUICK), find(s, TYPED));
    println!("{}, {} thread(s)", results.workload, results.threads);
    println!(
        "| {:<34} | {:>12} | {:>9} | {:>8} | {:>11} | {:>8} |",
        "cache", "ops/s", "hit ratio", "vs moka", "vs quick", "vs Cache"
    );
    println!(
        "|{:-<36}|{:->14}|{:->11}|{:->10}|{:->13}|{:->10}|",
        "", "", "", "", "", ""
    );
    for o in s {
        println!(
            "| {:<34} | {:>12.0} | {:>9.4} | {:>7.2}x | {:>10.2}x | {:>7.2}x |",
            o.name,
            o.ops_per_sec,
            o.hit_ratio,
            o.ratio_to(moka),
            o.ratio_to(quick),
            o.ratio_to(typed),
        );
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let tiered_cost = 1.0 / find(s, TIERED).ratio_to(typed);
    println!(
        "targets: Cache >= 2x moka ({:.2}x) {}; Cache >= 0.5x quick_cache ({:.2}x) {}; TieredCache L1 cost <= 1.25x Cache ({:.2}x) {}; hit ratio >= quick_cache ({:.4} vs {:.4}) {}\n",
        typed.ratio_to(moka),
        verdict(typed.ratio_to(moka) >= 2.0),
        typed.ratio_to(quick),
        verdict(typed.ratio_to(quick) >= 0.5),
        tiered_cost,
        verdict(tiered_cost <= 1.25),
        typed.hit_ratio,
        quick.hit_ratio,
        verdict(typed.hit_ratio >= quick.hit_ratio),
    );
}

// ---------------------------------------------------------------------------------------------
// L2 rows

const L2_KEYS: usize = 10_000;
const L2_PAIRS: usize = 9;

/// The tier's cost as a multiple of the bare get-and-decode's, per back-to-back pair.
struct L2Row {
    name: &'static str,
    ratios: Vec<f64>,
}

async fn l2_rows(url: &str) -> Vec<L2Row> {
    let mut config = RedisConfig::from_url(url).unwrap();
    config.key_prefix = format!("typed-bench-{}:", std::process::id());
    let bare = RedisStore::connect(config.clone()).await.unwrap();
    let tiered = TieredCache::builder(
        MemoryStore::new(),
        RedisStore::connect(config).await.unwrap(),
    )
    .l1_ttl(Duration::from_millis(1))
    .build()
    .unwrap();
    let keys: Arc<Vec<String>> = Arc::new((0..L2_KEYS).map(|i| format!("p:{i:05}")).collect());
    for key in keys.iter() {
        tiered
            .set_with_ttl(key, &load(key), Duration::from_secs(600))
            .await
            .unwrap();
    }
    // The bare side reads what the tier wrote: its 12-byte stamp, then the JSON.
    let bare_get: Get = {
        let bare = bare.clone();
        Arc::new(move |key: String| {
            let bare = bare.clone();
            Box::pin(async move {
                let bytes = bare.get(&key).await.unwrap().unwrap();
                let product: Product = serde_json::from_slice(&bytes[12..]).unwrap();
                std::hint::black_box(product);
            })
        })
    };
    let tiered_get: Get = {
        let tiered = tiered.clone();
        Arc::new(move |key: String| {
            let tiered = tiered.clone();
            Box::pin(async move {
                let product = tiered.get_shared::<Product>(&key).await.unwrap().unwrap();
                std::hint::black_box(product);
            })
        })
    };
    let (mut latency, mut throughputs) = (Vec::new(), Vec::new());
    for pair in 0..L2_PAIRS {
        let sides = if pair % 2 == 0 {
            [(&bare_get, true), (&tiered_get, false)]
        } else {
            [(&tiered_get, false), (&bare_get, true)]
        };
        let (mut bare_us, mut tiered_us, mut bare_ops, mut tiered_ops) = (0.0, 0.0, 0.0, 0.0);
        for (get, is_bare) in sides {
            let us = sequential_latency(get, &keys).await;
            let ops = throughput(get, &keys).await;
            if is_bare {
                (bare_us, bare_ops) = (us, ops);
            } else {
                (tiered_us, tiered_ops) = (us, ops);
            }
        }
        latency.push(tiered_us / bare_us);
        throughputs.push(bare_ops / tiered_ops);
    }
    let stats = tiered.stats();
    assert!(
        stats.l1_hits * 50 < stats.l2_hits,
        "the L2 rows must measure L2 hits: {stats:?}"
    );
    bare.clear("").await.unwrap();
    vec![
        L2Row {
            name: "TieredCache L2 hit vs RedisStore get + decode, 1 task",
            ratios: latency,
        },
        L2Row {
            name: "TieredCache L2 hit vs RedisStore get + decode, 50 tasks",
            ratios: throughputs,
        },
    ]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let workloads = [
        Workload {
            name: "hot set: 1 000 keys",
            keys: HOT_KEYS,
            capacity: CAPACITY,
            zipf: false,
        },
        Workload {
            name: "Zipf(1.0): 100 000 keys, capacity 10 000",
            keys: KEYS,
            capacity: CAPACITY,
            zipf: true,
        },
    ];
    println!(
        "Typed hits of a 6-field struct, cache-aside, {OPS} ops per cache and round after {WARMUP_OPS} \
         warm-up ops; {ROUNDS} rounds, the caches taking turns in {SLICES} slices; ops/s is the median \
         round, a ratio the median of the rounds' ratios.\n"
    );
    let mut all = Vec::new();
    for workload in &workloads {
        let keys: Vec<String> = (0..workload.keys).map(|i| format!("{i:08}")).collect();
        for threads in [1usize, 2] {
            let traces = traces(workload, threads);
            let summaries = run_rounds(
                ROUNDS,
                || contestants(workload.capacity),
                &keys,
                &traces,
                WARMUP_OPS,
                SLICES,
            );
            let results = Results {
                workload: workload.name,
                threads,
                summaries,
            };
            print_memory_table(&results);
            all.push(results);
        }
    }
    let l2 = match redis::redis_url() {
        Some((url, _server)) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(redis::client_threads())
                .enable_all()
                .build()
                .unwrap();
            let rows = runtime.block_on(l2_rows(&url));
            for row in &rows {
                let (lo, hi) = row
                    .ratios
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
                let ratio = median(row.ratios.clone());
                let verdict = if ratio <= 1.1 { "met" } else { "MISSED" };
                println!(
                    "{}: {ratio:.2}x the cost (pairs {lo:.2}x to {hi:.2}x); target <= 1.1x {verdict}",
                    row.name
                );
            }
            rows
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("no REDIS_URL and no redis-server under CI=true")
        }
        None => {
            eprintln!("no REDIS_URL and no redis-server: skipping the L2 rows");
            Vec::new()
        }
    };
    write_results(&all, &l2);
}

/// Leaves the results in `target/bench/typed.json`, which `cargo xtask bench typed` draws.
fn write_results(memory: &[Results], l2: &[L2Row]) {
    let mut groups: Vec<_> = memory
        .iter()
        .map(|results| {
            let quick = find(&results.summaries, QUICK);
            let bars: Vec<_> = results
                .summaries
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "label": o.name,
                        "value": o.ops_per_sec,
                        "text": format!("{:.1} M ops/s, {:.2}× quick_cache, hit {:.4}", o.ops_per_sec / 1e6, o.ratio_to(quick), o.hit_ratio),
                    })
                })
                .collect();
            serde_json::json!({
                "name": format!("{}, {} thread(s)", results.workload, results.threads),
                "bars": bars,
            })
        })
        .collect();
    if !l2.is_empty() {
        // A separate chart scale would be clearer, but one file keeps the run together: the L2 rows
        // are cost ratios (lower is better), printed in their text.
        let bars: Vec<_> = l2
            .iter()
            .map(|row| {
                let ratio = median(row.ratios.clone());
                serde_json::json!({ "label": row.name, "value": ratio, "text": format!("{ratio:.2}× the cost of get + decode (target ≤ 1.1×)") })
            })
            .collect();
        groups.push(serde_json::json!({ "name": "L2 (Redis): cost ratio", "bars": bars }));
    }
    let results = serde_json::json!({
        "title": "Typed hits of a 6-field struct: ops/s (higher is better)",
        "better": "higher",
        "groups": groups,
    });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/typed.json");
    let written = std::fs::create_dir_all(path.parent().expect("a parent directory"))
        .and_then(|()| std::fs::write(&path, results.to_string()));
    if let Err(e) = written {
        println!("could not write the results to {}: {e}", path.display());
    }
}
