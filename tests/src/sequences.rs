//! Generated sequences of [`Op`]s (proptest strategies), and the driver that runs one on a store
//! and on the [`Model`] step by step.
//!
//! Keys and values come from small pools, so that sequences hit the same keys again: unicode
//! keys, keys of exactly the limit and invalid ones (empty, one byte too long); values that are
//! empty, counters, binary, of exactly the limit and one byte over.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{CacheStore, Limits, MAX_TTL, SetCondition};
use proptest::prelude::*;
use proptest::sample::select;

use crate::model::{CollectionOp, Leeway, Model, Op, check, run};

/// How time behaves for the store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// A manual clock: TTLs of a few milliseconds, and [`Op::Advance`] steps.
    Manual,
    /// A real clock (Redis): TTLs far longer than any run, no `Advance`; `expire` and `persist`
    /// steps exercise TTLs instead.
    Real,
}

/// Keys under `ns` (the namespace is part of the key, so it counts towards the key limit).
fn key_pool(ns: &str, limits: Limits) -> Vec<String> {
    let room = limits.max_key_len.saturating_sub(ns.len());
    let mut keys: Vec<String> = ["a:1", "a:2", "a:b:1", "b:1", "ключ", "🔑x", "7"]
        .iter()
        .map(|k| format!("{ns}{k}"))
        .collect();
    keys.push(format!("{ns}{}", "k".repeat(room)));
    keys.push(format!("{ns}{}", "k".repeat(room + 1)));
    keys.push(String::new());
    keys
}

fn value_pool(limits: Limits) -> Vec<Bytes> {
    let mut values: Vec<Bytes> = [&b""[..], b"v1", b"v2", b"42", b"-7", b"9223372036854775807"]
        .iter()
        .map(|v| Bytes::copy_from_slice(v))
        .collect();
    values.push(Bytes::from_static(b"\x00\xff\xfe"));
    values.push(Bytes::from(vec![b'x'; limits.max_value_len]));
    values.push(Bytes::from(vec![b'x'; limits.max_value_len + 1]));
    values
}

fn ttl_pool(time: Time) -> Vec<Option<Duration>> {
    let hour = Duration::from_secs(3_600);
    let mut ttls = vec![None, None, Some(Duration::ZERO), Some(MAX_TTL + hour)];
    match time {
        Time::Manual => ttls.extend(
            [1_000, 1_500, 3_000, 20_000, 5_000_000]
                .map(|micros| Some(Duration::from_micros(micros))),
        ),
        Time::Real => ttls.extend([Some(hour), Some(hour + Duration::from_micros(500))]),
    }
    ttls
}

/// Sequences of 1 to `len` operations on keys under `ns`.
pub fn sequences(
    ns: &str,
    limits: Limits,
    time: Time,
    len: usize,
) -> impl Strategy<Value = Vec<Op>> + use<> {
    let keys = key_pool(ns, limits);
    let values = value_pool(limits);
    let ttls = ttl_pool(time);
    let prefixes: Vec<String> = ["", "a:", "a:b:", "b", "🔑", "z"]
        .iter()
        .map(|p| format!("{ns}{p}"))
        .collect();
    let key = select(keys);
    let value = select(values);
    let ttl = select(ttls.clone());
    let some_ttl = select(ttls.into_iter().flatten().collect::<Vec<_>>());
    let condition = select(vec![
        SetCondition::Always,
        SetCondition::IfAbsent,
        SetCondition::IfPresent,
    ]);
    let delta = prop_oneof![-3i64..=3, Just(i64::MAX), Just(i64::MIN), any::<i64>(),];
    let keys = prop::collection::vec(key.clone(), 0..4);
    let op = prop_oneof![
        4 => key.clone().prop_map(Op::Get),
        1 => keys.clone().prop_map(Op::GetMany),
        4 => (key.clone(), value.clone(), condition, ttl.clone())
            .prop_map(|(k, v, c, t)| Op::Set(k, v, c, t)),
        1 => (prop::collection::vec((key.clone(), value.clone()), 0..4), ttl.clone())
            .prop_map(|(es, t)| Op::SetMany(es, t)),
        2 => key.clone().prop_map(Op::Delete),
        1 => keys.prop_map(Op::DeleteMany),
        1 => key.clone().prop_map(Op::Exists),
        2 => key.clone().prop_map(Op::Ttl),
        2 => (key.clone(), some_ttl).prop_map(|(k, t)| Op::Expire(k, t)),
        1 => key.clone().prop_map(Op::Persist),
        3 => (key.clone(), delta, ttl.clone()).prop_map(|(k, d, t)| Op::IncrBy(k, d, t)),
        3 => (key, prop::option::of(value.clone()), prop::option::of(value), ttl.clone())
            .prop_map(|(k, e, n, t)| {
                // A TTL with a delete means nothing; the contract does not say.
                let t = if n.is_some() { t } else { None };
                Op::CompareAndSwap(k, e, n, t)
            }),
        1 => (select(prefixes.clone()), select(vec![0usize, 1, 3, 1_000, usize::MAX]))
            .prop_map(|(p, c)| Op::Scan(p, c)),
        1 => select(prefixes).prop_map(Op::Clear),
    ];
    let op = prop_oneof![3 => op, 2 => collection_ops(ns, limits)];
    let op = match time {
        Time::Real => op.boxed(),
        Time::Manual => {
            let advance = select(vec![1u64, 2, 5, 1_000])
                .prop_map(|ms| Op::Advance(Duration::from_millis(ms)));
            prop_oneof![11 => op, 1 => advance].boxed()
        }
    };
    prop::collection::vec(op, 1..=len)
}

/// Up to 3 of `s` (0 is invalid for every call that takes a list).
fn few<T: Strategy>(s: T) -> prop::collection::VecStrategy<T> {
    prop::collection::vec(s, 0..4)
}

/// Collection calls on the same keys as the string calls, so that types clash.
fn collection_ops(ns: &str, limits: Limits) -> impl Strategy<Value = Op> + use<> {
    use CollectionOp as C;
    let key = select(key_pool(ns, limits));
    let fields: Vec<String> = ["f1", "f2", "ключ", ""]
        .iter()
        .map(|f| f.to_string())
        .chain([
            "f".repeat(limits.max_key_len),
            "f".repeat(limits.max_key_len + 1),
        ])
        .collect();
    let members: Vec<Bytes> = fields
        .iter()
        .map(|f| Bytes::from(f.clone()))
        .chain([Bytes::from_static(b"\x00\xff")])
        .collect();
    let field = select(fields);
    let member = select(members);
    let value = select(value_pool(limits));
    let score = select(
        [
            0.0,
            1.5,
            -1.0,
            2.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ]
        .map(f64::to_bits)
        .to_vec(),
    );
    let count = select(vec![
        0,
        1,
        2,
        3,
        cache_core::MAX_COLLECTION_PAGE,
        cache_core::MAX_COLLECTION_PAGE + 1,
    ]);
    let delta = prop_oneof![-3i64..=3, Just(i64::MAX), Just(i64::MIN)];
    let call = prop_oneof![
        few((field.clone(), value.clone()).boxed()).prop_map(C::HSet),
        field.clone().prop_map(C::HGet),
        few(field.clone()).prop_map(C::HDel),
        (field, delta).prop_map(|(f, d)| C::HIncrBy(f, d)),
        Just(C::HLen),
        few(value.clone()).prop_map(C::LPush),
        few(value).prop_map(C::RPush),
        count.clone().prop_map(C::LPop),
        count.clone().prop_map(C::RPop),
        (-3i64..=3, count).prop_map(|(s, n)| C::LRange(s, n)),
        Just(C::LLen),
        few(member.clone()).prop_map(C::SAdd),
        few(member.clone()).prop_map(C::SRem),
        member.clone().prop_map(C::SIsMember),
        Just(C::SCard),
        few((score.clone(), member.clone()).boxed()).prop_map(C::ZAdd),
        (member.clone(), score).prop_map(|(m, d)| C::ZIncrBy(m, d)),
        few(member.clone()).prop_map(C::ZRem),
        member.clone().prop_map(C::ZScore),
        (member, any::<bool>()).prop_map(|(m, d)| C::ZRank(m, d)),
        Just(C::ZCard),
    ];
    (key, call).prop_map(|(k, c)| Op::Collection(k, c))
}

/// Runs `ops` on `store` and on a fresh model, step by step. `advance` moves the store's clock
/// for [`Op::Advance`]; `after_step` checks the store's own invariants (bounds, stats) after
/// every step, given the model after it. The first difference is the error, with the steps that led to it.
pub async fn check_sequence<A, F>(
    store: &dyn CacheStore,
    ops: &[Op],
    leeway: Leeway,
    mut advance: A,
    mut after_step: impl FnMut(&Op, &crate::model::Outcome, &Model) -> Result<(), String>,
) -> Result<(), String>
where
    A: FnMut(Duration) -> F,
    F: Future<Output = ()>,
{
    let mut model = Model::new(store.limits());
    for (step, op) in ops.iter().enumerate() {
        if let Op::Advance(by) = op {
            advance(*by).await;
        }
        let got = run(store, op).await;
        let checked =
            check(&mut model, op, &got, leeway).and_then(|()| after_step(op, &got, &model));
        if let Err(why) = checked {
            return Err(format!(
                "step {step}: {why}\nsequence: {:#?}",
                &ops[..=step]
            ));
        }
    }
    Ok(())
}
