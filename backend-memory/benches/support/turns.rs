//! Running caches side by side, taking turns: shared by `cargo xtask bench memory` and
//! `cargo xtask bench typed` (which includes this file by path).
//!
//! The caches take turns slice by slice within a round (see [`run_round`]) rather than one after the
//! other: on a shared machine a slow spell lasts seconds, and run one after the other, the same
//! binary's MemoryStore / quick_cache ratio ranged from 0.73 to 1.30 between rounds; taking turns,
//! 1.08 to 1.16.
#![allow(dead_code)] // each bench uses part of it

use std::sync::Barrier;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

/// One contestant: a cache-aside step on `key` (get; on a miss, insert) that reports whether it hit.
pub(crate) trait Contestant: Sync {
    fn step(&self, key: &str) -> bool;
}

pub(crate) struct Outcome {
    pub(crate) name: &'static str,
    pub(crate) ops_per_sec: f64,
    pub(crate) hit_ratio: f64,
}

/// One cache over all rounds.
pub(crate) struct Summary {
    pub(crate) name: &'static str,
    /// Median over the rounds.
    pub(crate) ops_per_sec: f64,
    pub(crate) hit_ratio: f64,
    /// Ops/s in each round, in round order.
    pub(crate) per_round: Vec<f64>,
}

impl Summary {
    pub(crate) fn of(runs: Vec<Outcome>) -> Summary {
        let per_round: Vec<f64> = runs.iter().map(|o| o.ops_per_sec).collect();
        Summary {
            name: runs[0].name,
            ops_per_sec: median(per_round.clone()),
            hit_ratio: median(runs.iter().map(|o| o.hit_ratio).collect()),
            per_round,
        }
    }

    /// This cache's throughput as a multiple of `other`'s in each round.
    pub(crate) fn ratios_to(&self, other: &Summary) -> Vec<f64> {
        self.per_round
            .iter()
            .zip(&other.per_round)
            .map(|(a, b)| a / b)
            .collect()
    }

    /// The median of [`ratios_to`](Self::ratios_to).
    pub(crate) fn ratio_to(&self, other: &Summary) -> f64 {
        median(self.ratios_to(other))
    }
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// One trace of `ops / threads` key indexes per thread, Zipf(1.0) over `keys` keys.
pub(crate) fn zipf_traces(keys: usize, threads: usize, ops: usize) -> Vec<Vec<u32>> {
    let zipf = Zipf::new(keys as f64, 1.0).expect("valid Zipf parameters");
    (0..threads)
        .map(|t| {
            let mut rng = SmallRng::seed_from_u64(42 + t as u64);
            (0..ops / threads)
                .map(|_| zipf.sample(&mut rng) as u32 - 1)
                .collect()
        })
        .collect()
}

/// Runs `rounds` rounds, each on fresh caches from `contestants`, and summarizes each cache.
pub(crate) fn run_rounds(
    rounds: usize,
    contestants: impl Fn() -> Vec<(&'static str, Box<dyn Contestant>)>,
    keys: &[String],
    traces: &[Vec<u32>],
    warmup: usize,
    slices: usize,
) -> Vec<Summary> {
    // `runs[c][r]`: cache `c` in round `r`.
    let mut runs: Vec<Vec<Outcome>> = Vec::new();
    for _ in 0..rounds {
        let round = run_round(&contestants(), keys, traces, warmup, slices);
        runs.resize_with(round.len(), Vec::new);
        for (c, outcome) in round.into_iter().enumerate() {
            runs[c].push(outcome);
        }
    }
    runs.into_iter().map(Summary::of).collect()
}

/// One round on fresh caches: every cache runs the same traces (one per thread), all warmed up first.
/// The traces are cut into slices, and the caches take turns slice by slice, each slice rotating who
/// goes first, so that a slow spell of the machine lands on every cache alike.
pub(crate) fn run_round(
    contestants: &[(&'static str, Box<dyn Contestant>)],
    keys: &[String],
    traces: &[Vec<u32>],
    warmup: usize,
    slices: usize,
) -> Vec<Outcome> {
    let n = contestants.len();
    for (_, cache) in contestants {
        for &k in traces[0].iter().take(warmup) {
            cache.step(&keys[k as usize]);
        }
    }
    // (slice, cache) in the order they run.
    let turns: Vec<(usize, usize)> = (0..slices)
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
                    let per_slice = trace.len().div_ceil(slices);
                    for &(slice, c) in turns {
                        let from = (slice * per_slice).min(trace.len());
                        let to = (from + per_slice).min(trace.len());
                        let cache = &*contestants[c].1;
                        start.wait();
                        hits[c] += trace[from..to]
                            .iter()
                            .filter(|&&k| cache.step(&keys[k as usize]))
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
