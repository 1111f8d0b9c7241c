//! `cargo xtask bench coherence`: how fast a write on one `TieredCache` instance leaves another
//! instance's L1, and what each invalidation bus costs per write, on a standalone Redis and on a
//! 3-primary Cluster (both started here on 127.0.0.1; `REDIS_URL` replaces the standalone one).
//!
//! - Latency: instance A sets a key that instance B holds in its L1; the time from the start of
//!   A's `set` until B has applied the invalidation (B's `bus_messages` grows), p50 and p99 over
//!   [`WRITES`] writes, one at a time, with B re-reading the key between them.
//! - Cost: the process's CPU time (client side: A writing, B receiving) per `set`, against the
//!   same tier with no bus, and the wall time per `set`.

#[path = "support/redis.rs"]
mod redis_support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_memory::MemoryStore;
use backend_redis::{NodeAddr, RedisBus, RedisConfig, RedisStore, TrackingBus};
use cache_core::{InvalidationBus, TieredCache};
use redis_support::{LocalRedis, redis_url};

const WRITES: usize = 2_000;
const COST_WRITES: usize = 5_000;
const NAMESPACE: &str = "coherence";

#[derive(Clone, Copy, PartialEq)]
enum Bus {
    None,
    PubSub,
    Tracking,
}

impl Bus {
    fn name(self) -> &'static str {
        match self {
            Bus::None => "no bus",
            Bus::PubSub => "pub/sub (RedisBus)",
            Bus::Tracking => "tracking (TrackingBus)",
        }
    }

    async fn connect(self, config: &RedisConfig) -> Option<Arc<dyn InvalidationBus>> {
        Some(match self {
            Bus::None => return None,
            Bus::PubSub => Arc::new(RedisBus::connect(config, NAMESPACE).await.unwrap()),
            Bus::Tracking => Arc::new(TrackingBus::connect(config, NAMESPACE).await.unwrap()),
        })
    }
}

async fn instance(config: &RedisConfig, bus: Bus) -> TieredCache {
    let l2 = RedisStore::connect(config.clone()).await.unwrap();
    let mut builder = TieredCache::builder(MemoryStore::new(), l2)
        .namespace(NAMESPACE)
        .l1_ttl(Duration::from_secs(600));
    if let Some(bus) = bus.connect(config).await {
        builder = builder.shared_bus(bus);
    }
    let cache = builder.build().unwrap();
    if bus != Bus::None {
        tokio::spawn(cache.listen().await.unwrap().run());
    }
    cache
}

/// Waits (spinning, so as not to add a timer's granularity) until `b` applied one more message.
async fn applied(b: &TieredCache, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.stats().bus_messages <= before {
        assert!(Instant::now() < deadline, "the invalidation never arrived");
        tokio::task::yield_now().await;
    }
}

/// p50 and p99 of the invalidation latency, in microseconds.
async fn latency(config: &RedisConfig, bus: Bus) -> (f64, f64) {
    let (a, b) = (instance(config, bus).await, instance(config, bus).await);
    a.set("k", &0u64).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut micros = Vec::with_capacity(WRITES);
    for i in 1..=WRITES as u64 {
        // b holds the key in its L1 (an L2 read after the last invalidation).
        b.get::<u64>("k").await.unwrap();
        let before = b.stats().bus_messages;
        let started = Instant::now();
        a.set("k", &i).await.unwrap();
        applied(&b, before).await;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)];
    (at(0.50), at(0.99))
}

/// This process's CPU time, every thread's.
fn cpu_time() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

/// CPU and wall microseconds per `set` of A, with B listening (if there is a bus).
async fn cost(config: &RedisConfig, bus: Bus) -> (f64, f64) {
    let (a, _b) = (instance(config, bus).await, instance(config, bus).await);
    for i in 0..200u64 {
        a.set(&format!("w{}", i % 100), &i).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (cpu, wall) = (cpu_time(), Instant::now());
    for i in 0..COST_WRITES as u64 {
        a.set(&format!("w{}", i % 100), &i).await.unwrap();
    }
    // Let B apply what is still in flight, so its share is counted.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cpu = (cpu_time() - cpu).as_secs_f64() * 1e6 / COST_WRITES as f64;
    let wall =
        (wall.elapsed() - Duration::from_millis(50)).as_secs_f64() * 1e6 / COST_WRITES as f64;
    (cpu, wall)
}

/// A 3-primary Cluster on free loopback ports, created with `redis-cli --cluster create`.
fn start_cluster() -> Option<(Vec<LocalRedis>, Vec<u16>)> {
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("coherence-bench-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        servers.push(LocalRedis::new(child));
        ports.push(port);
    }
    for &port in &ports {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&nodes)
        .arg("--cluster-yes")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !created.success() {
        return None;
    }
    // Wait until every node sees every slot served.
    let deadline = Instant::now() + Duration::from_secs(20);
    for &port in &ports {
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .ok()?;
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Some((servers, ports))
}

struct Row {
    deployment: &'static str,
    bus: Bus,
    p50: f64,
    p99: f64,
    cpu: f64,
    wall: f64,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(redis_support::client_threads())
        .enable_all()
        .build()
        .unwrap();
    let Some((url, _standalone)) = redis_url() else {
        eprintln!("coherence bench: no redis-server to start and no REDIS_URL; skipped");
        std::process::exit(1);
    };
    let Some((_cluster, ports)) = start_cluster() else {
        eprintln!("coherence bench: could not start a Cluster with redis-server and redis-cli");
        std::process::exit(1);
    };
    let key_prefix = format!("bench{:08x}:", std::process::id());
    let standalone = RedisConfig::builder()
        .url(&url)
        .key_prefix(&key_prefix)
        .build()
        .unwrap();
    let cluster = RedisConfig::builder()
        .cluster(ports.iter().map(|&p| NodeAddr::new("127.0.0.1", p)))
        .key_prefix(&key_prefix)
        .build()
        .unwrap();

    let mut rows = Vec::new();
    runtime.block_on(async {
        for (deployment, config) in [("standalone", &standalone), ("Cluster", &cluster)] {
            for bus in [Bus::None, Bus::PubSub, Bus::Tracking] {
                let (p50, p99) = if bus == Bus::None {
                    (f64::NAN, f64::NAN)
                } else {
                    latency(config, bus).await
                };
                let (cpu, wall) = cost(config, bus).await;
                rows.push(Row {
                    deployment,
                    bus,
                    p50,
                    p99,
                    cpu,
                    wall,
                });
            }
        }
    });

    println!(
        "\n| deployment | bus | invalidation p50 | p99 | client CPU per set | vs no bus | wall per set |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let none = rows
            .iter()
            .find(|r| r.deployment == row.deployment && r.bus == Bus::None)
            .expect("a no-bus row");
        let latency = |v: f64| {
            if v.is_nan() {
                "–".to_owned()
            } else {
                format!("{v:.0} µs")
            }
        };
        println!(
            "| {} | {} | {} | {} | {:.1} µs | {:.2}× | {:.1} µs |",
            row.deployment,
            row.bus.name(),
            latency(row.p50),
            latency(row.p99),
            row.cpu,
            row.cpu / none.cpu,
            row.wall
        );
    }
    write_chart(&rows);
}

/// Leaves the latencies in `target/bench/coherence.json`, which `cargo xtask bench coherence`
/// draws into `docs/bench/coherence.svg`.
fn write_chart(rows: &[Row]) {
    let mut groups = Vec::new();
    for row in rows.iter().filter(|r| r.bus != Bus::None) {
        let none = rows
            .iter()
            .find(|r| r.deployment == row.deployment && r.bus == Bus::None)
            .expect("a no-bus row");
        groups.push(serde_json::json!({
            "name": format!("{}, {}", row.deployment, row.bus.name()),
            "bars": [
                { "label": "invalidation p50 (µs)", "value": row.p50, "text": format!("{:.0} µs", row.p50) },
                { "label": "invalidation p99 (µs)", "value": row.p99, "text": format!("{:.0} µs", row.p99) },
                { "label": "client CPU per set (µs)", "value": row.cpu,
                  "text": format!("{:.1} µs ({:.2}× no bus)", row.cpu, row.cpu / none.cpu) },
            ],
        }));
    }
    let results = serde_json::json!({
        "title": "Coherence: a write on A until B's L1 drops the key, and the client CPU per set",
        "better": "lower",
        "groups": groups,
    });
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/coherence.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
}
