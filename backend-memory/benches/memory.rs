//! `cargo xtask bench memory`: MemoryStore (direct API and through `dyn CacheStore`) against moka and
//! quick_cache, in one process, on a cache-aside Zipf(1.0) workload. Prints ops/s, hit ratio and
//! ratios to each peer.
//!
//! The caches take turns slice by slice within a round (see `run_round`) rather than one after the
//! other: on a shared machine a slow spell lasts seconds, and run one after the other, the same
//! binary's direct / quick_cache ratio ranged from 0.73 to 1.30 between rounds; taking turns, 1.08
//! to 1.16.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use backend_memory::MemoryStore;
use bytes::Bytes;
use cache_core::{CacheStore, SetOptions};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

const KEYS: usize = 100_000;
const CAPACITY: usize = 10_000;
const VALUE_LEN: usize = 64;
const OPS: usize = 4_000_000;
const WARMUP_OPS: usize = 200_000;
/// Rounds per thread count, each on fresh caches; a ratio is the median of the rounds' ratios.
const ROUNDS: usize = 5;
/// Within a round the caches take turns, slice by slice of the trace (see [`run_round`]).
const SLICES: usize = 40;

/// One contestant: a cache-aside step (get; on a miss, insert) that reports whether it hit.
trait Contestant: Sync {
    fn get_or_insert(&self, key: &str, value: &Bytes) -> bool;
}

struct Direct(MemoryStore);
struct ThroughTrait(Arc<dyn CacheStore>);
struct Moka(moka::sync::Cache<String, Bytes>);
struct Quick(quick_cache::sync::Cache<String, Bytes>);

impl Contestant for Direct {
    fn get_or_insert(&self, key: &str, value: &Bytes) -> bool {
        if self.0.get(key).unwrap().is_some() {
            return true;
        }
        self.0.set(key, load(value), SetOptions::new()).unwrap();
        false
    }
}

impl Contestant for ThroughTrait {
    fn get_or_insert(&self, key: &str, value: &Bytes) -> bool {
        if ready(self.0.get(key)).unwrap().is_some() {
            return true;
        }
        ready(self.0.set(key, load(value), SetOptions::new())).unwrap();
        false
    }
}

impl Contestant for Moka {
    fn get_or_insert(&self, key: &str, value: &Bytes) -> bool {
        if self.0.get(key).is_some() {
            return true;
        }
        self.0.insert(key.to_owned(), load(value));
        false
    }
}

impl Contestant for Quick {
    fn get_or_insert(&self, key: &str, value: &Bytes) -> bool {
        if self.0.get(key).is_some() {
            return true;
        }
        self.0.insert(key.to_owned(), load(value));
        false
    }
}

/// A miss "loads" the value: a fresh allocation, as a real loader returns, so that entries do not all
/// share (and contend on) one reference count.
fn load(value: &Bytes) -> Bytes {
    Bytes::copy_from_slice(value)
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

struct Outcome {
    name: &'static str,
    ops_per_sec: f64,
    hit_ratio: f64,
}

/// One cache over all rounds.
struct Summary {
    name: &'static str,
    /// Median over the rounds.
    ops_per_sec: f64,
    hit_ratio: f64,
    /// Ops/s in each round, in round order.
    per_round: Vec<f64>,
}

impl Summary {
    fn of(runs: Vec<Outcome>) -> Summary {
        let per_round: Vec<f64> = runs.iter().map(|o| o.ops_per_sec).collect();
        Summary {
            name: runs[0].name,
            ops_per_sec: median(per_round.clone()),
            hit_ratio: median(runs.iter().map(|o| o.hit_ratio).collect()),
            per_round,
        }
    }

    /// This cache's throughput as a multiple of `other`'s in each round.
    fn ratios_to(&self, other: &Summary) -> Vec<f64> {
        self.per_round
            .iter()
            .zip(&other.per_round)
            .map(|(a, b)| a / b)
            .collect()
    }

    /// The median of [`ratios_to`](Self::ratios_to).
    fn ratio_to(&self, other: &Summary) -> f64 {
        median(self.ratios_to(other))
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
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

/// One round on fresh caches: every cache runs the same traces (one per thread), all warmed up first.
/// The traces are cut into slices, and the caches take turns slice by slice, each slice rotating who
/// goes first, so that a slow spell of the machine lands on every cache alike.
fn run_round(
    contestants: &[(&'static str, Box<dyn Contestant>)],
    keys: &[String],
    traces: &[Vec<u32>],
    value: &Bytes,
) -> Vec<Outcome> {
    let n = contestants.len();
    for (_, cache) in contestants {
        for &k in traces[0].iter().take(WARMUP_OPS) {
            cache.get_or_insert(&keys[k as usize], value);
        }
    }
    // (slice, cache) in the order they run.
    let turns: Vec<(usize, usize)> = (0..SLICES)
        .flat_map(|slice| (0..n).map(move |i| (slice, (slice + i) % n)))
        .collect();
    // The workers run a turn between two barriers; this thread times it.
    let (start, end) = (
        Barrier::new(traces.len() + 1),
        Barrier::new(traces.len() + 1),
    );
    let mut seconds = vec![0.0; n];
    let hits = std::thread::scope(|scope| {
        let workers: Vec<_> = traces
            .iter()
            .map(|trace| {
                let (turns, start, end) = (&turns, &start, &end);
                scope.spawn(move || {
                    let mut hits = vec![0; n];
                    let per_slice = trace.len().div_ceil(SLICES);
                    for &(slice, c) in turns {
                        let from = (slice * per_slice).min(trace.len());
                        let to = (from + per_slice).min(trace.len());
                        let cache = &*contestants[c].1;
                        start.wait();
                        hits[c] += trace[from..to]
                            .iter()
                            .filter(|&&k| cache.get_or_insert(&keys[k as usize], value))
                            .count();
                        end.wait();
                    }
                    hits
                })
            })
            .collect();
        for &(_, c) in &turns {
            start.wait();
            let started = Instant::now();
            end.wait();
            seconds[c] += started.elapsed().as_secs_f64();
        }
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold(vec![0; n], |total, hits| {
                total.iter().zip(hits).map(|(a, b)| a + b).collect()
            })
    });
    let ops: usize = traces.iter().map(Vec::len).sum();
    (0..n)
        .map(|c| Outcome {
            name: contestants[c].0,
            ops_per_sec: ops as f64 / seconds[c],
            hit_ratio: hits[c] as f64 / ops as f64,
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user:{i:08}")).collect();
    let value = Bytes::from(vec![b'x'; VALUE_LEN]);
    let zipf = Zipf::new(KEYS as f64, 1.0).expect("valid Zipf parameters");

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
        let traces: Vec<Vec<u32>> = (0..threads)
            .map(|t| {
                let mut rng = SmallRng::seed_from_u64(42 + t as u64);
                (0..OPS / threads)
                    .map(|_| zipf.sample(&mut rng) as u32 - 1)
                    .collect()
            })
            .collect();
        // `runs[c][r]`: cache `c` in round `r`.
        let mut runs: Vec<Vec<Outcome>> = Vec::new();
        for _ in 0..ROUNDS {
            let round = run_round(&contestants(), &keys, &traces, &value);
            runs.resize_with(round.len(), Vec::new);
            for (c, outcome) in round.into_iter().enumerate() {
                runs[c].push(outcome);
            }
        }
        let outcomes: Vec<Summary> = runs.into_iter().map(Summary::of).collect();
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
