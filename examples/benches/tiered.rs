//! `cargo bench -p examples --bench tiered`: what the tiered cache costs on top of the store that
//! answers.
//!
//! - **L1 hit**: `TieredCache::get_bytes` answered by its L1, against a bare `MemoryStore` get through
//!   `dyn CacheStore` (how the tier calls it). One thread, futures polled once (they are ready).
//! - **L2 hit**: `TieredCache::get_bytes` missing L1 (its copies go stale after 1 ms) and answered by
//!   Redis, including the L1 fill, against a bare `RedisStore` get. Sequential latency and the
//!   throughput of 50 concurrent tasks, in back-to-back pairs of bare and tiered rounds; each ratio
//!   is the median of the pairs' ratios, so that load from other processes hits both sides alike.
//!   An L2 hit is one `GET`: the value's expiry stamp tells how long the L1 copy may live. The client
//!   runs on every core but one, leaving that one to the Redis server.
//!
//! Redis: `REDIS_URL` if set (`cargo xtask` starts one), else a `redis-server` on a free port of
//! 127.0.0.1 if the binary is installed, else the L2 rows are skipped.

#[path = "support/l2.rs"]
mod l2;
use l2::{Get, back_to_back, ready, sequential_latency, throughput};
#[path = "support/redis.rs"]
mod redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_memory::MemoryStore;
use backend_redis::{RedisConfig, RedisStore};
use cache_core::{Bytes, CacheStore, SetOptions, TieredCache};

const KEYS: usize = 1_000;
const L2_KEYS: usize = 10_000;
const VALUE_LEN: usize = 100;
const L1_OPS: usize = 2_000_000;
const L1_ROUNDS: usize = 5;
/// Bare and tiered rounds run back to back in pairs (alternating which goes first), so that load from
/// other processes hits both sides of a pair alike; a ratio is the median of the pairs' ratios.
const L2_PAIRS: usize = 9;

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bench:{i:05}")).collect()
}

/// Nanoseconds per op of `op` over `L1_OPS` ops, best of `L1_ROUNDS`.
fn time_l1(mut op: impl FnMut(&str), keys: &[String]) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..L1_ROUNDS {
        let started = Instant::now();
        for i in 0..L1_OPS {
            op(&keys[i % KEYS]);
        }
        best = best.min(started.elapsed().as_nanos() as f64 / L1_OPS as f64);
    }
    best
}

struct Row {
    name: &'static str,
    tiered: f64,
    bare: f64,
    unit: &'static str,
    target: Option<f64>,
    /// The tier's cost as a multiple of the bare store's in each back-to-back pair, when measured so;
    /// else the ratio is `tiered / bare`.
    pair_ratios: Option<Vec<f64>>,
}

impl Row {
    /// The tier's cost as a multiple of the bare store's.
    fn ratio(&self) -> f64 {
        match &self.pair_ratios {
            Some(ratios) => median(ratios.clone()),
            None => self.tiered / self.bare,
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn l1_rows() -> Vec<Row> {
    let keys = keys(KEYS);
    let value = Bytes::from(vec![b'v'; VALUE_LEN]);
    let ttl = Duration::from_secs(3_600);
    // L1 entries always carry a TTL, and a TTL'd read costs `MemoryStore` a clock read; the like-for-
    // like baseline holds the same TTL'd entries. The no-TTL store shows the cost of that clock read.
    let bare: Arc<dyn CacheStore> = Arc::new(MemoryStore::new());
    let bare_no_ttl: Arc<dyn CacheStore> = Arc::new(MemoryStore::new());
    let tiered = TieredCache::builder(MemoryStore::new(), MemoryStore::new())
        .l1_ttl(ttl)
        .build()
        .unwrap();
    for key in &keys {
        ready(bare.set(key, value.clone(), SetOptions::new().ttl(ttl))).unwrap();
        ready(bare_no_ttl.set(key, value.clone(), SetOptions::new())).unwrap();
        ready(tiered.set_bytes(key, value.clone(), None)).unwrap();
    }
    // Interleave the contestants' rounds so that frequency changes hit them alike.
    let (mut t, mut b, mut n) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..3 {
        b = b.min(time_l1(
            |k| assert!(ready(bare.get(k)).unwrap().is_some()),
            &keys,
        ));
        n = n.min(time_l1(
            |k| assert!(ready(bare_no_ttl.get(k)).unwrap().is_some()),
            &keys,
        ));
        t = t.min(time_l1(
            |k| assert!(ready(tiered.get_bytes(k)).unwrap().is_some()),
            &keys,
        ));
    }
    assert_eq!(tiered.stats().l2_hits, 0, "every tiered read was an L1 hit");
    vec![
        Row {
            name: "L1 hit vs MemoryStore get (TTL'd)",
            tiered: t,
            bare: b,
            unit: "ns/op",
            target: Some(1.5),
            pair_ratios: None,
        },
        Row {
            name: "L1 hit vs MemoryStore get (no TTL)",
            tiered: t,
            bare: n,
            unit: "ns/op",
            target: None,
            pair_ratios: None,
        },
    ]
}

async fn l2_rows(url: &str) -> Vec<Row> {
    let config = RedisConfig::from_url(url).unwrap().with_prefix_for_bench();
    let bare = RedisStore::connect(config.clone()).await.unwrap();
    let l2 = RedisStore::connect(config).await.unwrap();
    // L1 copies that go stale after 1 ms: a key comes round again long after, so every read goes to L2
    // (and pays for the L1 fill, as a real L2 hit does).
    let tiered = TieredCache::builder(MemoryStore::new(), l2)
        .l1_ttl(Duration::from_millis(1))
        .build()
        .unwrap();
    let keys = Arc::new(keys(L2_KEYS));
    let value = Bytes::from(vec![b'v'; VALUE_LEN]);
    // Written through the tier, so that L2 holds stamped values, as in production.
    for key in keys.iter() {
        tiered
            .set_bytes(key, value.clone(), Some(Duration::from_secs(600)))
            .await
            .unwrap();
    }
    let bare_get: Get = {
        let bare = bare.clone();
        Arc::new(move |key: String| {
            let bare = bare.clone();
            Box::pin(async move {
                assert!(bare.get(&key).await.unwrap().is_some());
            })
        })
    };
    let tiered_get: Get = {
        let tiered = tiered.clone();
        Arc::new(move |key: String| {
            let tiered = tiered.clone();
            Box::pin(async move {
                assert!(tiered.get_bytes(&key).await.unwrap().is_some());
            })
        })
    };
    // (bare, tiered) per pair: µs per op for one task, ops/s for 50.
    let (mut latency, mut throughputs) = (Vec::new(), Vec::new());
    for pair in 0..L2_PAIRS {
        let bare_first = pair % 2 == 0;
        let keys = &keys;
        latency.push(
            back_to_back(bare_first, &bare_get, &tiered_get, |get| async move {
                sequential_latency(&get, keys).await
            })
            .await,
        );
        throughputs.push(
            back_to_back(bare_first, &bare_get, &tiered_get, |get| async move {
                throughput(&get, keys).await
            })
            .await,
        );
    }
    let stats = tiered.stats();
    assert!(
        stats.l1_hits * 50 < stats.l2_hits,
        "the L2 rows must measure L2 hits: {stats:?}"
    );
    bare.clear("").await.unwrap();
    vec![
        Row {
            name: "L2 hit vs RedisStore get, 1 task",
            tiered: median(latency.iter().map(|p| p.1).collect()),
            bare: median(latency.iter().map(|p| p.0).collect()),
            unit: "µs/op",
            target: Some(1.1),
            pair_ratios: Some(latency.iter().map(|p| p.1 / p.0).collect()),
        },
        Row {
            name: "L2 hit vs RedisStore get, 50 tasks",
            tiered: median(throughputs.iter().map(|p| p.1).collect()),
            bare: median(throughputs.iter().map(|p| p.0).collect()),
            unit: "ops/s",
            target: Some(1.1),
            // Throughput: the cost is the inverse.
            pair_ratios: Some(throughputs.iter().map(|p| p.0 / p.1).collect()),
        },
    ]
}

trait BenchPrefix {
    fn with_prefix_for_bench(self) -> Self;
}

impl BenchPrefix for RedisConfig {
    /// A private prefix, so the bench never touches other keys of the server.
    fn with_prefix_for_bench(mut self) -> Self {
        self.key_prefix = format!("tiered-bench-{}:", std::process::id());
        self
    }
}

/// Leaves each row's cost ratio in `target/bench/tiered.json`, which `cargo xtask bench tiered`
/// draws.
fn write_results(rows: &[Row]) {
    let bars: Vec<_> = rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "label": row.name,
                "value": row.ratio(),
                "text": format!("{:.2}×", row.ratio()),
                "target": row.target,
            })
        })
        .collect();
    let results = serde_json::json!({
        "title": "TieredCache cost / bare store cost",
        "better": "lower",
        "reference": 1.0,
        "groups": [{ "bars": bars }],
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/tiered.json");
    let written = std::fs::create_dir_all(path.parent().expect("a parent directory"))
        .and_then(|()| std::fs::write(&path, results.to_string()));
    if let Err(e) = written {
        println!("could not write the results to {}: {e}", path.display());
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut rows = l1_rows();
    match redis::redis_url() {
        Some((url, _server)) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(redis::client_threads())
                .enable_all()
                .build()
                .unwrap();
            rows.extend(runtime.block_on(l2_rows(&url)));
        }
        None => eprintln!("no REDIS_URL and no redis-server: skipping the L2 rows"),
    }
    println!();
    println!(
        "| {:<36} | {:>14} | {:>14} | {:>10} | {:<11} |",
        "case", "tiered", "bare store", "cost ratio", "target"
    );
    println!(
        "|{:-<38}|{:->16}|{:->16}|{:->12}|{:->13}|",
        "", "", "", "", ""
    );
    for row in &rows {
        let fmt = |v: f64| {
            if v >= 1_000.0 {
                format!("{v:.0} {}", row.unit)
            } else {
                format!("{v:.1} {}", row.unit)
            }
        };
        let ratio = row.ratio();
        let target = match row.target {
            Some(target) if ratio <= target => format!("≤{target:.1}× ok"),
            Some(target) => format!("≤{target:.1}× MISSED"),
            None => "-".to_owned(),
        };
        println!(
            "| {:<36} | {:>14} | {:>14} | {:>9.2}× | {target:<11} |",
            row.name,
            fmt(row.tiered),
            fmt(row.bare),
            ratio,
        );
    }
    println!(
        "L1 rows: best of {L1_ROUNDS} rounds. L2 rows: each side's median of {L2_PAIRS} rounds, the \
         client on {} worker thread(s); the ratio is the median of the {L2_PAIRS} back-to-back pairs' \
         ratios:",
        redis::client_threads()
    );
    for row in &rows {
        if let Some(ratios) = &row.pair_ratios {
            let (lo, hi) = ratios
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
            println!("  {}: pairs from {lo:.2}× to {hi:.2}×", row.name);
        }
    }
    write_results(&rows);
}
