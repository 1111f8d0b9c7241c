//! The `metrics` feature: a known sequence of calls on a `Cache`, a `TieredCache` and their
//! `MemoryStore`s, then one report into a debugging recorder, which must hold exactly those counts.

use std::collections::HashMap;
use std::time::Duration;

use backend_memory::MemoryStore;
use cache_core::metrics::MetricsReporter;
use cache_core::{Cache, TieredCache};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// `(metric, cache.name[, error.type]) → value` of everything the recorder holds.
fn snapshot(recorder: &DebuggingRecorder) -> HashMap<String, f64> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key.labels().map(|l| l.value().to_owned()).collect();
            labels.sort();
            let name = format!("{} {}", key.name(), labels.join(" "));
            let value = match value {
                DebugValue::Counter(v) => v as f64,
                DebugValue::Gauge(v) => v.into_inner(),
                DebugValue::Histogram(v) => v.len() as f64,
            };
            (name, value)
        })
        .collect()
}

#[test]
fn a_report_holds_the_counts_of_a_known_sequence() {
    let recorder = DebuggingRecorder::new();
    let store = MemoryStore::builder().max_entries(2).build().unwrap();
    let users = Cache::builder(store.clone())
        .namespace("users")
        .build()
        .unwrap();
    let l1 = MemoryStore::new();
    let tier = TieredCache::builder(l1.clone(), MemoryStore::new())
        .namespace("products")
        .build()
        .unwrap();
    futures::executor::block_on(async {
        users.set("a", &1).await.unwrap();
        users.set("b", &2).await.unwrap();
        assert_eq!(users.get::<u32>("a").await.unwrap(), Some(1)); // hit
        assert_eq!(users.get::<u32>("zz").await.unwrap(), None); // miss
        users.set("c", &3).await.unwrap(); // the third entry evicts one of two
        let loaded: u32 = users
            .get_or_insert_with("d", None, || async { Ok::<_, std::io::Error>(4) })
            .await
            .unwrap();
        assert_eq!(loaded, 4);
        assert!(users.set("", &0).await.is_err()); // an invalid key: an error

        tier.set("p", &10).await.unwrap();
        assert_eq!(tier.get::<u32>("p").await.unwrap(), Some(10)); // L1 hit
        tier.clear_local().unwrap();
        assert_eq!(tier.get::<u32>("p").await.unwrap(), Some(10)); // L2 hit
        assert_eq!(tier.get::<u32>("q").await.unwrap(), None); // miss
        let _ = tier
            .get_or_insert_with("r", Some(Duration::from_secs(60)), || async {
                Ok::<_, std::io::Error>(5u32)
            })
            .await
            .unwrap();
    });
    let reporter = MetricsReporter::new();
    reporter
        .register("users", users.clone())
        .register("users-store", store.clone())
        .register("products", tier.clone())
        .register("products-l1", l1.clone());
    metrics::with_local_recorder(&recorder, || reporter.report());
    let got = snapshot(&recorder);
    let expect = |name: &str, value: f64| {
        assert_eq!(got.get(name).copied(), Some(value), "{name} in {got:#?}");
    };
    expect("cache.hits users", 1.0);
    expect("cache.misses users", 2.0); // "zz", and "d" before its load
    expect("cache.loads users", 1.0);
    expect("cache.sets users", 4.0); // a, b, c and the loaded d
    expect("cache.errors invalid_key users", 1.0);
    expect("cache.evictions users", 2.0); // the store's: 4 written into 2 places
    expect("cache.evictions users-store", 2.0);
    expect("cache.entries users-store", 2.0);
    assert!(got["cache.bytes users-store"] > 0.0);

    expect("cache.l1.hits products", 1.0);
    expect("cache.l2.hits products", 1.0);
    expect("cache.hits products", 2.0);
    expect("cache.misses products", 2.0); // "q", and "r" before its load
    expect("cache.loads products", 1.0);
    expect("cache.fail_safe.activations products", 0.0);
    expect("cache.bus.messages products", 0.0);
    expect("cache.entries products-l1", 2.0); // p (copied back from L2) and r

    // A second report after more calls moves the counters to the new totals.
    futures::executor::block_on(async {
        users.get::<u32>("a").await.unwrap();
    });
    metrics::with_local_recorder(&recorder, || reporter.report());
    let got = snapshot(&recorder);
    assert_eq!(
        got["cache.misses users"] + got["cache.hits users"],
        4.0,
        "{got:#?}"
    );
}
