//! `cargo xtask bench redis`: `RedisStore` against raw redis-rs on the same connection type
//! (`ConnectionManager`), 50 concurrent tasks, and `redis-benchmark -P 16` as the server's ceiling.
//!
//! Needs `REDIS_URL` (xtask starts a server and sets it). Prints ops/s and the ratios.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backend_redis::{RedisConfig, RedisStore};
use bytes::Bytes;
use cache_core::{CacheStore, CollectionStore, SetOptions};
use redis::aio::ConnectionManager;

const TASKS: usize = 50;
const KEYS: usize = 10_000;
const BATCH: usize = 16;
const VALUE_LEN: usize = 100;
/// Many short rounds in pairs (store and raw back to back, alternating which goes first), so load
/// from other processes on the machine hits both sides of a pair alike. The ratio is the median of
/// the pairs' ratios; ops/s is each side's median round.
const ROUND: Duration = Duration::from_millis(400);
const ROUNDS: usize = 10;
/// A static value, so cloning it costs no shared reference count (fair to the raw client).
static VALUE: [u8; VALUE_LEN] = [b'v'; VALUE_LEN];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Get,
    Set,
    GetMany,
    SetMany,
    HSet,
    HGet,
    PushPop,
    ZIncrBy,
    Pipeline3,
}

impl Op {
    fn keys_per_call(self) -> u64 {
        match self {
            Op::GetMany | Op::SetMany => BATCH as u64,
            Op::PushPop => 2,
            Op::Pipeline3 => 3,
            _ => 1,
        }
    }
}

/// Hashes, lists and sorted sets the collection rows spread over, and the fields per hash.
const COLLECTIONS: usize = 100;
const FIELDS: usize = 100;

fn collection_key(kind: &str, seed: &mut u64) -> String {
    format!("bench:{kind}:{}", next(seed) % COLLECTIONS)
}

fn field(seed: &mut u64) -> String {
    format!("f{}", next(seed) % FIELDS)
}

fn key(i: usize) -> String {
    format!("bench:{i}")
}

fn keys_for(seed: &mut u64) -> Vec<String> {
    (0..BATCH).map(|_| key(next(seed) % KEYS)).collect()
}

/// A tiny xorshift, so every task picks its own keys without a shared RNG.
fn next(state: &mut u64) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state as usize
}

async fn store_call(store: &RedisStore, op: Op, seed: &mut u64, value: &Bytes) {
    match op {
        Op::HSet => {
            let (key, field) = (collection_key("h", seed), field(seed));
            store.hset(&key, &[(&field, value.clone())]).await.unwrap();
        }
        Op::HGet => {
            let (key, field) = (collection_key("h", seed), field(seed));
            store.hget(&key, &field).await.unwrap();
        }
        Op::PushPop => {
            let key = collection_key("l", seed);
            store
                .lpush(&key, std::slice::from_ref(value))
                .await
                .unwrap();
            store.rpop(&key, 1).await.unwrap();
        }
        Op::ZIncrBy => {
            let (key, member) = (collection_key("z", seed), field(seed));
            store.zincr_by(&key, member.as_bytes(), 1.0).await.unwrap();
        }
        Op::Pipeline3 => {
            let (k, n) = (
                key(next(seed) % KEYS),
                format!("bench:n:{}", next(seed) % KEYS),
            );
            let _: (i64, Option<Bytes>) = store
                .pipeline()
                .cmd("SET")
                .key(&k)
                .arg(value.as_ref())
                .ignore()
                .cmd("INCRBY")
                .key(&n)
                .arg(1)
                .cmd("GET")
                .key(&k)
                .query()
                .await
                .unwrap();
        }
        Op::Get => {
            store.get(&key(next(seed) % KEYS)).await.unwrap();
        }
        Op::Set => {
            store
                .set(&key(next(seed) % KEYS), value.clone(), SetOptions::new())
                .await
                .unwrap();
        }
        Op::GetMany => {
            let keys = keys_for(seed);
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            store.get_many(&refs).await.unwrap();
        }
        Op::SetMany => {
            let keys = keys_for(seed);
            let entries: Vec<(&str, Bytes)> =
                keys.iter().map(|k| (k.as_str(), value.clone())).collect();
            store.set_many(&entries, None).await.unwrap();
        }
    }
}

async fn raw_call(conn: &mut ConnectionManager, op: Op, seed: &mut u64, value: &Bytes) {
    match op {
        Op::HSet => {
            let (key, field) = (collection_key("h", seed), field(seed));
            let _: u64 = redis::cmd("HSET")
                .arg(key)
                .arg(field)
                .arg(value.as_ref())
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::HGet => {
            let (key, field) = (collection_key("h", seed), field(seed));
            let _: Option<Bytes> = redis::cmd("HGET")
                .arg(key)
                .arg(field)
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::PushPop => {
            let key = collection_key("l", seed);
            let _: u64 = redis::cmd("LPUSH")
                .arg(&key)
                .arg(value.as_ref())
                .query_async(conn)
                .await
                .unwrap();
            let _: Option<Vec<Bytes>> = redis::cmd("RPOP")
                .arg(&key)
                .arg(1)
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::ZIncrBy => {
            let (key, member) = (collection_key("z", seed), field(seed));
            let _: f64 = redis::cmd("ZINCRBY")
                .arg(key)
                .arg(1.0)
                .arg(member)
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::Pipeline3 => {
            let (k, n) = (
                key(next(seed) % KEYS),
                format!("bench:n:{}", next(seed) % KEYS),
            );
            let _: (i64, Option<Bytes>) = redis::pipe()
                .cmd("SET")
                .arg(&k)
                .arg(value.as_ref())
                .ignore()
                .cmd("INCRBY")
                .arg(n)
                .arg(1)
                .cmd("GET")
                .arg(&k)
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::Get => {
            let _: Option<Bytes> = redis::cmd("GET")
                .arg(key(next(seed) % KEYS))
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::Set => {
            let _: () = redis::cmd("SET")
                .arg(key(next(seed) % KEYS))
                .arg(value.as_ref())
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::GetMany => {
            let _: Vec<Option<Bytes>> = redis::cmd("MGET")
                .arg(keys_for(seed))
                .query_async(conn)
                .await
                .unwrap();
        }
        Op::SetMany => {
            let mut cmd = redis::cmd("MSET");
            for k in keys_for(seed) {
                cmd.arg(k).arg(value.as_ref());
            }
            let _: () = cmd.query_async(conn).await.unwrap();
        }
    }
}

#[derive(Clone)]
enum Client {
    Store(RedisStore),
    Raw(ConnectionManager),
}

/// This process's CPU time (user + system, all threads) in clock ticks, from `/proc/self/stat`.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// One round: (calls per second, calls, client CPU ticks spent) with `TASKS` concurrent tasks.
async fn round(client: &Client, op: Op) -> (f64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let value = Bytes::from_static(&VALUE);
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let (client, stop, calls, value) =
                (client.clone(), stop.clone(), calls.clone(), value.clone());
            tokio::spawn(async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let mut n = 0;
                match client {
                    Client::Store(store) => {
                        while !stop.load(Ordering::Relaxed) {
                            store_call(&store, op, &mut seed, &value).await;
                            n += 1;
                        }
                    }
                    Client::Raw(mut conn) => {
                        while !stop.load(Ordering::Relaxed) {
                            raw_call(&mut conn, op, &mut seed, &value).await;
                            n += 1;
                        }
                    }
                }
                calls.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    let started = Instant::now();
    let cpu_before = cpu_ticks();
    tokio::time::sleep(ROUND).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    let cpu = cpu_ticks() - cpu_before;
    let calls = calls.load(Ordering::Relaxed);
    (calls as f64 / started.elapsed().as_secs_f64(), calls, cpu)
}

/// Each round's throughput and the total (calls, CPU ticks) of one side.
#[derive(Default, Clone)]
struct Side {
    rates: Vec<f64>,
    calls: u64,
    cpu: u64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 0 {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    }
}

impl Side {
    fn add(&mut self, (rate, calls, cpu): (f64, u64, u64)) {
        self.rates.push(rate);
        self.calls += calls;
        self.cpu += cpu;
    }

    fn median(&self) -> f64 {
        median(self.rates.clone())
    }

    /// Median, lowest and highest of this side's round-by-round ratio to `other`'s.
    fn paired_ratio(&self, other: &Side) -> (f64, f64, f64) {
        let ratios: Vec<f64> = self
            .rates
            .iter()
            .zip(&other.rates)
            .map(|(a, b)| a / b)
            .collect();
        let lo = ratios.iter().copied().fold(f64::MAX, f64::min);
        let hi = ratios.iter().copied().fold(f64::MIN, f64::max);
        (median(ratios), lo, hi)
    }

    /// Client CPU microseconds per call (one tick is 10 ms on Linux).
    fn cpu_us_per_call(&self) -> f64 {
        self.cpu as f64 * 10_000.0 / self.calls.max(1) as f64
    }
}

/// `redis-benchmark -P 16` requests per second for GET and SET.
fn ceiling(host: &str, port: u16) -> Option<(f64, f64)> {
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", &port.to_string()])
        .args(["-c", &TASKS.to_string(), "-n", "2000000", "-P", "16"])
        .args(["-d", &VALUE_LEN.to_string(), "-r", &KEYS.to_string()])
        .args(["-t", "get,set", "--csv"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("\"{name}\"")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
    };
    Some((rps("GET")?, rps("SET")?))
}

fn main() {
    let url = std::env::var("REDIS_URL")
        .expect("set REDIS_URL (cargo xtask bench redis starts a server and sets it)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = RedisConfig::from_url(&url).unwrap();
        let store = RedisStore::connect(config.clone()).await.unwrap();
        let raw = ConnectionManager::new(redis::Client::open(url.as_str()).unwrap())
            .await
            .unwrap();
        // Fill every key so gets hit.
        let value = Bytes::from_static(&VALUE);
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|&i| key(i)).collect();
            let entries: Vec<(&str, Bytes)> =
                keys.iter().map(|k| (k.as_str(), value.clone())).collect();
            store.set_many(&entries, None).await.unwrap();
        }

        println!(
            "Redis benchmark: {TASKS} concurrent tasks, {VALUE_LEN}-byte values, {KEYS} keys, \
             batches of {BATCH}; {ROUNDS} pairs of {ROUND:?} rounds, store and raw back to back\n"
        );
        let (store_c, raw_c) = (Client::Store(store.clone()), Client::Raw(raw));
        let mut rows = Vec::new();
        for op in [
            Op::Get,
            Op::Set,
            Op::GetMany,
            Op::SetMany,
            Op::HSet,
            Op::HGet,
            Op::PushPop,
            Op::ZIncrBy,
            Op::Pipeline3,
        ] {
            let (mut store_side, mut raw_side) = (Side::default(), Side::default());
            for i in 0..ROUNDS {
                if i % 2 == 0 {
                    store_side.add(round(&store_c, op).await);
                    raw_side.add(round(&raw_c, op).await);
                } else {
                    raw_side.add(round(&raw_c, op).await);
                    store_side.add(round(&store_c, op).await);
                }
            }
            rows.push((op, store_side, raw_side));
        }

        let host = match &config.mode {
            backend_redis::RedisMode::Standalone(node) => node.clone(),
            _ => unreachable!("the bench uses a standalone URL"),
        };
        let ceiling = ceiling(&host.host, host.port);

        println!(
            "| operation | RedisStore ops/s | raw redis-rs ops/s | store/raw (lowest–highest pair) | keys/s (store) | store/ceiling | client CPU µs/call store / raw |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let names = |op: Op| match op {
            Op::Get => "get vs GET",
            Op::Set => "set vs SET",
            Op::GetMany => "get_many(16) vs MGET",
            Op::SetMany => "set_many(16) vs MSET",
            Op::HSet => "hset vs HSET",
            Op::HGet => "hget vs HGET",
            Op::PushPop => "lpush + rpop vs LPUSH + RPOP",
            Op::ZIncrBy => "zincr_by vs ZINCRBY",
            Op::Pipeline3 => "pipeline of 3 vs redis::pipe",
        };
        let mut bars = Vec::new();
        for (op, s, r) in &rows {
            let keys_per_s = s.median() * op.keys_per_call() as f64;
            let (ratio, lo, hi) = s.paired_ratio(r);
            bars.push(serde_json::json!({
                "label": names(*op),
                "value": ratio,
                "text": format!("{ratio:.3}× raw redis-rs ({lo:.2}–{hi:.2})"),
                "target": 0.95,
            }));
            let vs_ceiling = match (ceiling, op) {
                (Some((get, _)), Op::Get | Op::GetMany) => format!("{:.2}x", keys_per_s / get),
                (Some((_, set)), Op::Set | Op::SetMany) => format!("{:.2}x", keys_per_s / set),
                _ => "n/a".to_owned(),
            };
            println!(
                "| {} | {:.0} | {:.0} | {ratio:.3}x ({lo:.2}–{hi:.2}) | {:.0} | {} | {:.2} / {:.2} ({:.3}x) |",
                names(*op),
                s.median(),
                r.median(),
                keys_per_s,
                vs_ceiling,
                s.cpu_us_per_call(),
                r.cpu_us_per_call(),
                s.cpu_us_per_call() / r.cpu_us_per_call(),
            );
        }
        match ceiling {
            Some((get, set)) => println!(
                "\nceiling: redis-benchmark -c {TASKS} -P 16 -d {VALUE_LEN}: GET {get:.0} req/s, SET {set:.0} req/s"
            ),
            None => println!("\nceiling: redis-benchmark not found (apt-get install -y redis-tools)"),
        }
        println!("targets: store/raw >= 0.95x in every row; batch keys/s >= 0.9x the ceiling");
        println!(
            "ops/s is each side's median round; store/raw is the median of the {ROUNDS} back-to-back \
             pairs' ratios; CPU µs/call is the bench process's CPU time over all rounds (less \
             sensitive to other load on the machine)"
        );
        write_results(bars);
        store.clear("bench:").await.unwrap();
    });
}

/// Leaves the store/raw ratios in `target/bench/redis.json`, which `cargo xtask bench redis` draws.
fn write_results(bars: Vec<serde_json::Value>) {
    let results = serde_json::json!({
        "title": format!("RedisStore ops/s / raw redis-rs ops/s, {TASKS} tasks"),
        "better": "higher",
        "reference": 1.0,
        "groups": [{ "bars": bars }],
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/redis.json");
    let written = std::fs::create_dir_all(path.parent().expect("a parent directory"))
        .and_then(|()| std::fs::write(&path, results.to_string()));
    if let Err(e) = written {
        println!("could not write the results to {}: {e}", path.display());
    }
}
