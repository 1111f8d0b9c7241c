//! Linearizability of the atomic operations: record a concurrent history of calls, each with its
//! invocation and completion, and search for an order of them that a single register would have
//! answered the same way (Wing & Gong's search with Lowe's memoization, as Porcupine does).
//!
//! Keys are independent registers, so each key's sub-history is checked on its own. A call that
//! failed may or may not have taken effect: the search may place it anywhere after its
//! invocation, with any answer, or leave it out.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cache_core::{CacheStore, SetOptions};

/// A call on one key; values are counters, so that `incr_by` always applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `get`.
    Get,
    /// `set(.., if_absent)` of a value.
    SetIfAbsent(i64),
    /// `delete`.
    Delete,
    /// `incr_by` (no TTL).
    IncrBy(i64),
    /// `compare_and_swap(expected, Some(new))`.
    CompareAndSwap(Option<i64>, i64),
    /// Not a call: the server lost its data (a restart without persistence) somewhere in this
    /// event's window.
    Wipe,
}

/// What a call returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `get`.
    Value(Option<i64>),
    /// `set` if absent, `delete`, `compare_and_swap`.
    Bool(bool),
    /// `incr_by`.
    Int(i64),
    /// The call failed: it may or may not have taken effect.
    Unknown,
    /// A [`Call::Wipe`] happened.
    Wiped,
}

/// One completed call of a history.
#[derive(Debug, Clone)]
pub struct Event {
    /// The key.
    pub key: String,
    /// The call.
    pub call: Call,
    /// Its answer.
    pub answer: Answer,
    /// A tick taken just before the call started.
    pub invoked: u64,
    /// A tick taken just after it returned.
    pub completed: u64,
}

/// A single register's answer to `call` from `state`, and the state after it.
pub fn step(state: Option<i64>, call: Call) -> (Option<i64>, Answer) {
    match call {
        Call::Get => (state, Answer::Value(state)),
        Call::SetIfAbsent(v) => match state {
            None => (Some(v), Answer::Bool(true)),
            Some(_) => (state, Answer::Bool(false)),
        },
        Call::Delete => (None, Answer::Bool(state.is_some())),
        Call::IncrBy(d) => {
            let new = state.unwrap_or(0).wrapping_add(d);
            (Some(new), Answer::Int(new))
        }
        Call::CompareAndSwap(expected, new) if expected == state => (Some(new), Answer::Bool(true)),
        Call::CompareAndSwap(..) => (state, Answer::Bool(false)),
        Call::Wipe => (None, Answer::Wiped),
    }
}

/// Checks every key's history; `Err` names a key whose history no single register explains.
pub fn check_history(events: &[Event]) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in events {
        by_key.entry(&event.key).or_default().push(event);
    }
    for (key, events) in by_key {
        if !linearizable(&events) {
            let mut events = events;
            events.sort_by_key(|e| e.invoked);
            let lines: Vec<String> = events
                .iter()
                .map(|e| {
                    format!(
                        "  [{}, {}] {:?} -> {:?}",
                        e.invoked, e.completed, e.call, e.answer
                    )
                })
                .collect();
            return Err(format!(
                "no order of these calls on {key:?} is linearizable:\n{}",
                lines.join("\n")
            ));
        }
    }
    Ok(())
}

/// Whether some order of `events` that respects real time, applied to an empty register, gives
/// every known answer.
pub fn linearizable(events: &[&Event]) -> bool {
    assert!(
        events.len() <= 128,
        "one key's history is limited to 128 calls"
    );
    let all_known: u128 = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.answer != Answer::Unknown)
        .fold(0, |mask, (i, _)| mask | 1 << i);
    let mut seen = HashSet::new();
    search(events, 0, None, all_known, &mut seen)
}

fn search(
    events: &[&Event],
    done: u128,
    state: Option<i64>,
    all_known: u128,
    seen: &mut HashSet<(u128, Option<i64>)>,
) -> bool {
    if done & all_known == all_known {
        return true;
    }
    if !seen.insert((done, state)) {
        return false;
    }
    let pending = || (0..events.len()).filter(move |i| done & (1 << i) == 0);
    // A call can take effect next only if it started before every other pending known call ended.
    let first_end = pending()
        .filter(|i| events[*i].answer != Answer::Unknown)
        .map(|i| events[i].completed)
        .min()
        .unwrap_or(u64::MAX);
    for i in pending().filter(|i| events[*i].invoked < first_end) {
        let event = events[i];
        let (next, answer) = step(state, event.call);
        let fits = event.answer == Answer::Unknown || event.answer == answer;
        if fits && search(events, done | 1 << i, next, all_known, seen) {
            return true;
        }
    }
    false
}

/// Records calls with ticks from one counter, so that "returned before the other started" is
/// real-time order.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    clock: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder at tick 0.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// The next tick, for events that are not calls (a [`Call::Wipe`]'s window).
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Makes `call` on `store` and records it.
    pub async fn call(&self, store: &dyn CacheStore, key: &str, call: Call) -> Event {
        let invoked = self.clock.fetch_add(1, Ordering::SeqCst);
        let answer = make(store, key, call).await.unwrap_or(Answer::Unknown);
        let completed = self.clock.fetch_add(1, Ordering::SeqCst);
        Event {
            key: key.to_owned(),
            call,
            answer,
            invoked,
            completed,
        }
    }
}

async fn make(store: &dyn CacheStore, key: &str, call: Call) -> cache_core::Result<Answer> {
    let bytes = |v: i64| Bytes::from(v.to_string());
    Ok(match call {
        Call::Get => {
            let value = store.get(key).await?;
            Answer::Value(value.map(|v| {
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(i64::MIN)
            }))
        }
        Call::SetIfAbsent(v) => Answer::Bool(
            store
                .set(key, bytes(v), SetOptions::new().if_absent())
                .await?,
        ),
        Call::Delete => Answer::Bool(store.delete(key).await?),
        Call::IncrBy(d) => Answer::Int(store.incr_by(key, d, None).await?),
        Call::Wipe => Answer::Wiped,
        Call::CompareAndSwap(expected, new) => {
            let expected = expected.map(bytes);
            Answer::Bool(
                store
                    .compare_and_swap(key, expected.as_deref(), Some(bytes(new)), None)
                    .await?,
            )
        }
    })
}

/// A random call: values and deltas are small, so that compare-and-swaps sometimes match.
pub fn random_call() -> Call {
    let small = || fastrand::i64(0..4);
    match fastrand::u8(0..10) {
        0..=2 => Call::Get,
        3 => Call::SetIfAbsent(small()),
        4 => Call::Delete,
        5..=7 => Call::IncrBy(fastrand::i64(1..3)),
        _ => Call::CompareAndSwap(fastrand::bool().then(small), small()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(call: Call, answer: Answer, invoked: u64, completed: u64) -> Event {
        Event {
            key: "k".into(),
            call,
            answer,
            invoked,
            completed,
        }
    }

    #[test]
    fn overlapping_calls_may_take_effect_in_either_order() {
        let history = [
            event(Call::IncrBy(1), Answer::Int(2), 0, 3),
            event(Call::IncrBy(1), Answer::Int(1), 1, 2),
            event(Call::Get, Answer::Value(Some(2)), 4, 5),
        ];
        check_history(&history).unwrap();
    }

    #[test]
    fn known_non_linearizable_histories_are_caught() {
        // Two increments one after the other cannot both answer 1.
        let lost_update = [
            event(Call::IncrBy(1), Answer::Int(1), 0, 1),
            event(Call::IncrBy(1), Answer::Int(1), 2, 3),
        ];
        // A read that ends before a write starts cannot see it.
        let read_from_the_future = [
            event(Call::Get, Answer::Value(Some(5)), 0, 1),
            event(Call::SetIfAbsent(5), Answer::Bool(true), 2, 3),
        ];
        // A read after a delete completed cannot see the old value.
        let stale_read = [
            event(Call::SetIfAbsent(1), Answer::Bool(true), 0, 1),
            event(Call::Delete, Answer::Bool(true), 2, 3),
            event(Call::Get, Answer::Value(Some(1)), 4, 5),
        ];
        // Two swaps from the same value cannot both win.
        let double_swap = [
            event(Call::SetIfAbsent(0), Answer::Bool(true), 0, 1),
            event(Call::CompareAndSwap(Some(0), 1), Answer::Bool(true), 2, 5),
            event(Call::CompareAndSwap(Some(0), 2), Answer::Bool(true), 3, 4),
        ];
        for history in [
            &lost_update[..],
            &read_from_the_future,
            &stale_read,
            &double_swap,
        ] {
            assert!(check_history(history).is_err(), "{history:?}");
        }
    }

    #[test]
    fn a_wipe_explains_a_lost_value_only_within_its_window() {
        let lost = [
            event(Call::IncrBy(1), Answer::Int(1), 0, 1),
            event(Call::Wipe, Answer::Wiped, 2, 5),
            event(Call::Get, Answer::Value(None), 3, 4),
            event(Call::IncrBy(1), Answer::Int(1), 6, 7),
        ];
        check_history(&lost).unwrap();
        let before_the_wipe = [
            event(Call::IncrBy(1), Answer::Int(1), 0, 1),
            event(Call::Get, Answer::Value(None), 2, 3),
            event(Call::Wipe, Answer::Wiped, 4, 5),
        ];
        assert!(check_history(&before_the_wipe).is_err());
    }

    #[test]
    fn a_failed_call_may_or_may_not_have_taken_effect() {
        let took_effect = [
            event(Call::IncrBy(1), Answer::Unknown, 0, 1),
            event(Call::Get, Answer::Value(Some(1)), 2, 3),
        ];
        let did_not = [
            event(Call::IncrBy(1), Answer::Unknown, 0, 1),
            event(Call::Get, Answer::Value(None), 2, 3),
        ];
        check_history(&took_effect).unwrap();
        check_history(&did_not).unwrap();
        // But it cannot take effect twice.
        let twice = [
            event(Call::IncrBy(1), Answer::Unknown, 0, 1),
            event(Call::Get, Answer::Value(Some(2)), 2, 3),
        ];
        assert!(check_history(&twice).is_err());
    }
}
