//! Model-based tests of `MemoryStore`: generated sequences of every operation, checked step by
//! step against the reference model (`cache_conformance::model`), shrunk to the shortest failing
//! sequence by proptest.
//!
//! `cargo xtask test` runs `PROPTEST_CASES` (default 256) sequences per test; `cargo xtask prove
//! --cases N` runs N.

use std::time::Duration;

use backend_memory::MemoryStore;
use cache_conformance::model::{CollectionOp, Leeway, Model, Op, Outcome};
use cache_conformance::sequences::{Time, check_sequence, sequences};
use cache_core::ErrorKind;
use cache_core::{Limits, ManualClock};
use futures::executor::block_on;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// Small limits, so that limit-length keys and values are cheap.
const LIMITS: Limits = Limits::new(24, 48);

fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

/// Hits and misses as the store counts them: one per key read by `get` and `get_many`, and one
/// per collection read (a key of the wrong type is a hit: it was found).
#[derive(Default)]
struct Reads {
    hits: u64,
    misses: u64,
}

impl Reads {
    fn count(&mut self, op: &Op, got: &Outcome, model: &Model) {
        use CollectionOp as C;
        let found: Vec<bool> = match (op, got) {
            // A collection is found (a hit), though `get` refuses it and `get_many` reads `None`.
            (Op::Get(key), Outcome::Value(_)) => vec![model.holds(key)],
            (Op::Get(key), Outcome::Failed(kinds)) if kinds == &[ErrorKind::WrongType] => {
                vec![model.holds(key)]
            }
            (Op::GetMany(keys), Outcome::Values(_)) => {
                keys.iter().map(|k| model.holds(k)).collect()
            }
            (Op::Collection(key, call), got) => {
                let read = matches!(
                    call,
                    C::HGet(_)
                        | C::HLen
                        | C::LRange(..)
                        | C::LLen
                        | C::SIsMember(_)
                        | C::SCard
                        | C::ZScore(_)
                        | C::ZRank(..)
                        | C::ZCard
                );
                let reached = match got {
                    Outcome::Failed(kinds) => kinds == &[ErrorKind::WrongType],
                    _ => true,
                };
                if read && reached {
                    vec![model.holds(key)]
                } else {
                    vec![]
                }
            }
            _ => vec![],
        };
        self.hits += found.iter().filter(|f| **f).count() as u64;
        self.misses += found.iter().filter(|f| !**f).count() as u64;
    }
}

fn check_on(
    store: MemoryStore,
    clock: ManualClock,
    (max_entries, max_bytes): (usize, usize),
    ops: &[Op],
    leeway: Leeway,
) -> Result<(), TestCaseError> {
    let mut reads = Reads::default();
    let checked = block_on(check_sequence(
        &store,
        ops,
        leeway,
        |by| {
            clock.advance(by);
            async {}
        },
        |op, got, model| {
            reads.count(op, got, model);
            let stats = store.stats();
            let held = (store.len(), store.bytes());
            if held.0 > max_entries || held.1 > max_bytes {
                return Err(format!("{held:?} entries and bytes, over the bounds"));
            }
            if (stats.entries, stats.bytes) != (held.0 as u64, held.1 as u64) {
                return Err(format!("stats {stats:?} do not add up to {held:?}"));
            }
            // With evictions the model may take an evicted collection for held (`get_many` reads
            // both as `None`): then a hit it counts is the store's miss, never the reverse.
            let counted = if leeway.evicts {
                stats.hits + stats.misses == reads.hits + reads.misses && stats.hits <= reads.hits
            } else {
                (stats.hits, stats.misses) == (reads.hits, reads.misses)
            };
            if !counted {
                let keys: Vec<String> = match op {
                    Op::GetMany(ks) => ks.clone(),
                    Op::Get(k) | Op::Collection(k, _) => vec![k.clone()],
                    _ => vec![],
                };
                let seen: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{k}: model {} store {:?}", model.holds(k), store.ttl(k)))
                    .collect();
                return Err(format!(
                    "stats count {} hits and {} misses; the answers had {} and {} ({seen:?})",
                    stats.hits, stats.misses, reads.hits, reads.misses
                ));
            }
            if !leeway.evicts && stats.evictions != 0 {
                return Err(format!(
                    "{} evictions in a store that has room",
                    stats.evictions
                ));
            }
            Ok(())
        },
    ));
    checked.map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(config())]

    /// A store that never has to evict answers exactly as the model does.
    #[test]
    fn memory_store_answers_every_sequence_as_the_model(
        ops in sequences("", LIMITS, Time::Manual, 60)
    ) {
        let clock = ManualClock::new();
        let store = MemoryStore::builder()
            .limits(LIMITS)
            .count_hits_and_misses(true)
            .clock(clock.clone())
            .build()
            .unwrap();
        check_on(store, clock, (usize::MAX, usize::MAX), &ops, Leeway::EXACT)?;
    }

    /// A store of 4 entries evicts: a key may read as absent, never as another value, and the
    /// bounds hold after every step.
    #[test]
    fn an_evicting_memory_store_answers_only_what_the_model_allows(
        ops in sequences("", LIMITS, Time::Manual, 60),
        shards in 1usize..=2,
    ) {
        let clock = ManualClock::new();
        let store = MemoryStore::builder()
            .limits(LIMITS)
            .max_entries(4)
            .max_bytes(400)
            .shards(shards)
            .count_hits_and_misses(true)
            .clock(clock.clone())
            .build()
            .unwrap();
        let leeway = Leeway { evicts: true, ttl_slack: Duration::ZERO };
        check_on(store, clock, (4, 400), &ops, leeway)?;
    }
}
