//! `cargo xtask bench memory`: MemoryStore (direct API and through `dyn CacheStore`) against moka and
//! quick_cache, in one process, on a cache-aside Zipf(1.0) workload. Prints ops/s, hit ratio and
//! ratios to each peer.
//!
//! The caches take turns slice by slice within a round: see `support/turns.rs`.

#[path = "support/turns.rs"]
mod turns;

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use backend_memory::MemoryStore;
use bytes::Bytes;
use cache_core::{CacheStore, SetOptions};
use turns::{Contestant, Summary, run_rounds, zipf_traces};

const KEYS: usize = 100_000;
const CAPACITY: usize = 10_000;
const VALUE_LEN: usize = 64;
const OPS: usize = 4_000_000;
const WARMUP_OPS: usize = 200_000;
/// Rounds per thread count, each on fresh caches; a ratio is the median of the rounds' ratios.
const ROUNDS: usize = 5;
/// Within a round the caches take turns, slice by slice of the trace (see `turns::run_round`).
const SLICES: usize = 40;

struct Direct(MemoryStore);
struct ThroughTrait(Arc<dyn CacheStore>);
struct Moka(moka::sync::Cache<String, Bytes>);
struct Quick(quick_cache::sync::Cache<String, Bytes>);

impl Contestant for Direct {
    fn step(&self, key: &str) -> bool {
        if self.0.get(key).unwrap().is_some() {
            return true;
        }
        self.0.set(key, load(), SetOptions::new()).unwrap();
        false
    }
}

impl Contestant for ThroughTrait {
    fn step(&self, key: &str) -> bool {
        if ready(self.0.get(key)).unwrap().is_some() {
            return true;
        }
        ready(self.0.set(key, load(), SetOptions::new())).unwrap();
        false
    }
}

impl Contestant for Moka {
    fn step(&self, key: &str) -> bool {
        if self.0.get(key).is_some() {
            return true;
        }
        self.0.insert(key.to_owned(), load());
        false
    }
}

impl Contestant for Quick {
    fn step(&self, key: &str) -> bool {
        if self.0.get(key).is_some() {
            return true;
        }
        self.0.insert(key.to_owned(), load());
        false
    }
}

/// A miss "loads" the value: a fresh allocation, as a real loader returns, so that entries do not all
/// share (and contend on) one reference count.
fn load() -> Bytes {
    Bytes::copy_from_slice(&[b'x'; VALUE_LEN])
}

/// Polls a future that completes without waiting (the memory store never waits), without an executor.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => futures::executor::block_on(future),
    }
}

fn contestants() -> Vec<(&'static str, Box<dyn Contestant>)> {
    let store = || {
        MemoryStore::builder()
            .max_entries(CAPACITY)
            .max_bytes(1 << 30)
            .build()
            .unwrap()
    };
    vec![
        ("MemoryStore (direct)", Box::new(Direct(store()))),
        (
            "MemoryStore (dyn CacheStore)",
            Box::new(ThroughTrait(Arc::new(store()))),
        ),
        (
            "moka::sync::Cache",
            Box::new(Moka(moka::sync::Cache::new(CAPACITY as u64))),
        ),
        (
            "quick_cache::sync::Cache",
            Box::new(Quick(quick_cache::sync::Cache::new(CAPACITY))),
        ),
    ]
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user:{i:08}")).collect();

    println!(
        "Workload: cache-aside, Zipf(1.0) over {KEYS} keys, capacity {CAPACITY}, {VALUE_LEN}-byte values,"
    );
    println!(
        "{OPS} measured ops per cache and round after {WARMUP_OPS} warm-up ops, the caches taking turns in {SLICES} slices;"
    );
    println!(
        "{ROUNDS} rounds on fresh caches: ops/s is the median round, a ratio the median of the rounds' ratios."
    );
    println!(
        "Every cache runs with its defaults, none of which counts hits and misses per read \
         (MemoryStore: count_hits_and_misses off; quick_cache: `stats` feature off).\n"
    );
    let mut all_runs = Vec::new();
    for threads in [1usize, 2] {
        let traces = zipf_traces(KEYS, threads, OPS);
        let outcomes = run_rounds(ROUNDS, contestants, &keys, &traces, WARMUP_OPS, SLICES);
        print_table(threads, &outcomes);
        all_runs.push((threads, outcomes));
    }
    write_results(&all_runs);
}

/// Leaves the results in `target/bench/memory.json`, which `cargo xtask bench memory` draws.
fn write_results(runs: &[(usize, Vec<Summary>)]) {
    let groups: Vec<_> = runs
        .iter()
        .map(|(threads, outcomes)| {
            let quick = outcomes
                .iter()
                .find(|o| o.name.starts_with("quick_cache"))
                .expect("quick_cache ran");
            let bars: Vec<_> = outcomes
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "label": o.name,
                        "value": o.ops_per_sec,
                        "text": format!("{:.2} M ops/s, {:.2}× quick_cache, hit {:.4}", o.ops_per_sec / 1e6, o.ratio_to(quick), o.hit_ratio),
                    })
                })
                .collect();
            serde_json::json!({ "name": format!("{threads} thread(s)"), "bars": bars })
        })
        .collect();
    let results = serde_json::json!({
        "title": "MemoryStore vs moka and quick_cache: cache-aside ops/s, Zipf(1.0), 100k keys, 10k capacity",
        "better": "higher",
        "groups": groups,
    });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/memory.json");
    let written = std::fs::create_dir_all(path.parent().expect("a parent directory"))
        .and_then(|()| std::fs::write(&path, results.to_string()));
    if let Err(e) = written {
        println!("could not write the results to {}: {e}", path.display());
    }
}

fn print_table(threads: usize, outcomes: &[Summary]) {
    let find = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.name.starts_with(name))
            .expect("peer ran")
    };
    let (moka, quick) = (find("moka"), find("quick_cache"));
    println!("threads = {threads}");
    println!(
        "| {:<30} | {:>12} | {:>9} | {:>9} | {:>14} | {:>10} | {:>16} |",
        "cache",
        "ops/s",
        "hit ratio",
        "vs moka",
        "vs quick_cache",
        "hit - moka",
        "hit - quick_cache"
    );
    println!(
        "|{:-<32}|{:->14}|{:->11}|{:->11}|{:->16}|{:->12}|{:->18}|",
        "", "", "", "", "", "", ""
    );
    for o in outcomes {
        println!(
            "| {:<30} | {:>12.0} | {:>9.4} | {:>8.2}x | {:>13.2}x | {:>+10.4} | {:>+16.4} |",
            o.name,
            o.ops_per_sec,
            o.hit_ratio,
            o.ratio_to(moka),
            o.ratio_to(quick),
            o.hit_ratio - moka.hit_ratio,
            o.hit_ratio - quick.hit_ratio,
        );
    }
    let (direct, dyn_) = (find("MemoryStore (direct)"), find("MemoryStore (dyn"));
    let best_peer_hit = moka.hit_ratio.max(quick.hit_ratio);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: hit ratio >= best peer ({:.4} vs {:.4}): {}; direct >= 1.0x quick_cache ({:.2}x): {}; trait >= 0.5x quick_cache ({:.2}x): {}",
        direct.hit_ratio,
        best_peer_hit,
        verdict(direct.hit_ratio >= best_peer_hit),
        direct.ratio_to(quick),
        verdict(direct.ratio_to(quick) >= 1.0),
        dyn_.ratio_to(quick),
        verdict(dyn_.ratio_to(quick) >= 0.5),
    );
    let rounds = direct.ratios_to(quick);
    println!(
        "direct / quick_cache by round: {}\n",
        rounds
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
