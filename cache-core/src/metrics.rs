//! Stats through the [`metrics`](https://docs.rs/metrics) facade (the `metrics` feature), for
//! Prometheus, OpenTelemetry or any other recorder the application installs.
//!
//! - **Counters and gauges** come from the stats every cache and store keeps anyway: a
//!   [`MetricsReporter`] holds the sources registered with it and, at each
//!   [`report`](MetricsReporter::report) (before a scrape, or on a timer), sets each metric to its
//!   current value. Nothing is added to the hot path.
//! - **Command latencies** of `RedisStore` (with `backend-redis`'s `metrics` feature) are recorded
//!   as each command ends, in the `db.client.operation.duration` histogram of OpenTelemetry's
//!   database semantic conventions, with `error.type` on failures.
//!
//! Every metric carries the [`CACHE_NAME`] label: the name a source was registered under (for a
//! `RedisStore`'s latencies, its `key_prefix`). Names follow OpenTelemetry's conventions where one
//! exists (`db.client.operation.duration`, `db.system.name`, `db.operation.name`, `error.type`);
//! the rest use the same dotted style under `cache.`. A Prometheus exporter writes the dots as
//! underscores (`cache_hits`).
//!
//! ```
//! use backend_memory::MemoryStore;
//! use cache_core::Cache;
//! use cache_core::metrics::MetricsReporter;
//!
//! let users = Cache::builder(MemoryStore::new()).namespace("users").build()?;
//! let reporter = MetricsReporter::new();
//! reporter.register("users", users.clone());
//! // Before each scrape (e.g. in the `/metrics` handler):
//! reporter.report();
//! # Ok::<_, cache_core::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use metrics::{counter, gauge};
use parking_lot::Mutex;

use crate::{Cache, Codec, ErrorKind, TieredCache};

/// Label: the name a cache or store was registered under.
pub const CACHE_NAME: &str = "cache.name";
/// Label (OpenTelemetry): what kind of error, from [`ErrorKind::code`](crate::ErrorKind::code).
pub const ERROR_TYPE: &str = "error.type";
/// Label (OpenTelemetry): the database system, `"redis"`.
pub const DB_SYSTEM_NAME: &str = "db.system.name";
/// Label (OpenTelemetry): the store operation, e.g. `"get"`, `"set_many"`.
pub const DB_OPERATION_NAME: &str = "db.operation.name";

/// Histogram, seconds (OpenTelemetry): how long each store command took.
pub const DB_CLIENT_OPERATION_DURATION: &str = "db.client.operation.duration";
/// Counter: reads that found a value (a `TieredCache`: in either tier).
pub const CACHE_HITS: &str = "cache.hits";
/// Counter: reads that found nothing.
pub const CACHE_MISSES: &str = "cache.misses";
/// Counter: loader runs of `get_or_insert_with`.
pub const CACHE_LOADS: &str = "cache.loads";
/// Counter: values written.
pub const CACHE_SETS: &str = "cache.sets";
/// Counter: keys deleted.
pub const CACHE_DELETES: &str = "cache.deletes";
/// Counter: calls that failed, by [`ERROR_TYPE`].
pub const CACHE_ERRORS: &str = "cache.errors";
/// Counter: entries evicted to stay within the bounds.
pub const CACHE_EVICTIONS: &str = "cache.evictions";
/// Counter: entries removed because their TTL passed.
pub const CACHE_EXPIRATIONS: &str = "cache.expirations";
/// Gauge: entries held now.
pub const CACHE_ENTRIES: &str = "cache.entries";
/// Gauge: bytes held now (keys and values).
pub const CACHE_BYTES: &str = "cache.bytes";
/// Counter: `TieredCache` reads answered by L1.
pub const CACHE_L1_HITS: &str = "cache.l1.hits";
/// Counter: `TieredCache` reads answered by L2.
pub const CACHE_L2_HITS: &str = "cache.l2.hits";
/// Counter: `TieredCache` L2 calls that failed (connection errors, timeouts).
pub const CACHE_L2_ERRORS: &str = "cache.l2.errors";
/// Counter: `TieredCache` L2 calls skipped while the circuit breaker was open.
pub const CACHE_L2_REJECTED: &str = "cache.l2.rejected";
/// Counter: `TieredCache` reads answered despite an L2 failure.
pub const CACHE_FAIL_SAFE_ACTIVATIONS: &str = "cache.fail_safe.activations";
/// Counter: invalidations a `TieredCache` received and applied.
pub const CACHE_BUS_MESSAGES: &str = "cache.bus.messages";
/// Counter: times a `TieredCache` cleared its L1 because the bus may have lost messages.
pub const CACHE_BUS_RESYNCS: &str = "cache.bus.resyncs";
/// Counter: invalidations a `TieredCache` failed to publish.
pub const CACHE_BUS_PUBLISH_ERRORS: &str = "cache.bus.publish_errors";

/// Something whose stats can be set on the `metrics` facade: caches here, stores in their crates
/// (with their `metrics` feature).
pub trait ReportMetrics: Send + Sync {
    /// Sets every metric of this source to its current value, labelled [`CACHE_NAME`] = `name`.
    fn report_metrics(&self, name: &str);
}

/// The sources whose stats [`report`](Self::report) sets on the `metrics` facade. Clones share
/// their sources.
#[derive(Clone, Default)]
pub struct MetricsReporter {
    sources: Arc<Mutex<Vec<Source>>>,
}

/// A registered source and its name.
type Source = (String, Box<dyn ReportMetrics>);

impl fmt::Debug for MetricsReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.sources.lock().iter().map(|(n, _)| n.clone()).collect();
        f.debug_struct("MetricsReporter")
            .field("sources", &names)
            .finish()
    }
}

impl MetricsReporter {
    /// A reporter with no sources; it also describes every metric (units and help) to the
    /// recorder installed now.
    pub fn new() -> Self {
        describe();
        MetricsReporter::default()
    }

    /// Reports `source` under `name` from now on (it is kept: give it a clone).
    pub fn register(&self, name: impl Into<String>, source: impl ReportMetrics + 'static) -> &Self {
        self.sources.lock().push((name.into(), Box::new(source)));
        self
    }

    /// Sets every source's metrics to their current values.
    pub fn report(&self) {
        for (name, source) in self.sources.lock().iter() {
            source.report_metrics(name);
        }
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        DB_CLIENT_OPERATION_DURATION,
        Unit::Seconds,
        "Duration of store commands"
    );
    for (name, help) in [
        (CACHE_HITS, "Reads that found a value"),
        (CACHE_MISSES, "Reads that found nothing"),
        (CACHE_LOADS, "Loader runs"),
        (CACHE_SETS, "Values written"),
        (CACHE_DELETES, "Keys deleted"),
        (CACHE_ERRORS, "Calls that failed"),
        (CACHE_EVICTIONS, "Entries evicted to stay within the bounds"),
        (
            CACHE_EXPIRATIONS,
            "Entries removed because their TTL passed",
        ),
        (CACHE_L1_HITS, "Reads answered by L1"),
        (CACHE_L2_HITS, "Reads answered by L2"),
        (CACHE_L2_ERRORS, "L2 calls that failed"),
        (
            CACHE_L2_REJECTED,
            "L2 calls skipped by the open circuit breaker",
        ),
        (
            CACHE_FAIL_SAFE_ACTIVATIONS,
            "Reads answered despite an L2 failure",
        ),
        (CACHE_BUS_MESSAGES, "Invalidations received and applied"),
        (
            CACHE_BUS_RESYNCS,
            "L1 clears after possibly lost invalidations",
        ),
        (
            CACHE_BUS_PUBLISH_ERRORS,
            "Invalidations that could not be published",
        ),
    ] {
        describe_counter!(name, Unit::Count, help);
    }
    describe_gauge!(CACHE_ENTRIES, Unit::Count, "Entries held");
    describe_gauge!(CACHE_BYTES, Unit::Bytes, "Bytes held (keys and values)");
}

/// Sets counter `metric` of `name` to `value`.
pub fn set_counter(metric: &'static str, name: &str, value: u64) {
    counter!(metric, CACHE_NAME => name.to_owned()).absolute(value);
}

/// Sets gauge `metric` of `name` to `value`.
pub fn set_gauge(metric: &'static str, name: &str, value: f64) {
    gauge!(metric, CACHE_NAME => name.to_owned()).set(value);
}

impl<C: Codec> ReportMetrics for Cache<C> {
    fn report_metrics(&self, name: &str) {
        let stats = self.stats();
        set_counter(CACHE_HITS, name, stats.hits);
        set_counter(CACHE_MISSES, name, stats.misses);
        set_counter(CACHE_LOADS, name, stats.loader_runs);
        set_counter(CACHE_SETS, name, stats.sets);
        set_counter(CACHE_DELETES, name, stats.deletes);
        for (kind, count) in ErrorKind::ALL.iter().zip(stats.errors_by_kind) {
            if count > 0 {
                counter!(CACHE_ERRORS, CACHE_NAME => name.to_owned(), ERROR_TYPE => kind.code())
                    .absolute(count);
            }
        }
        if let Some(evictions) = stats.evictions {
            set_counter(CACHE_EVICTIONS, name, evictions);
        }
        if let Some(expirations) = stats.expirations {
            set_counter(CACHE_EXPIRATIONS, name, expirations);
        }
    }
}

impl<C: Codec> ReportMetrics for TieredCache<C> {
    fn report_metrics(&self, name: &str) {
        let stats = self.stats();
        set_counter(CACHE_HITS, name, stats.l1_hits + stats.l2_hits);
        set_counter(CACHE_L1_HITS, name, stats.l1_hits);
        set_counter(CACHE_L2_HITS, name, stats.l2_hits);
        set_counter(CACHE_MISSES, name, stats.misses);
        set_counter(CACHE_LOADS, name, stats.loader_runs);
        set_counter(CACHE_L2_ERRORS, name, stats.l2_errors);
        set_counter(CACHE_L2_REJECTED, name, stats.l2_rejected);
        set_counter(
            CACHE_FAIL_SAFE_ACTIVATIONS,
            name,
            stats.fail_safe_activations,
        );
        set_counter(CACHE_BUS_MESSAGES, name, stats.bus_messages);
        set_counter(CACHE_BUS_RESYNCS, name, stats.bus_resyncs);
        set_counter(CACHE_BUS_PUBLISH_ERRORS, name, stats.bus_publish_errors);
        if let Some(evictions) = stats.l1_evictions {
            set_counter(CACHE_EVICTIONS, name, evictions);
        }
        if let Some(expirations) = stats.l1_expirations {
            set_counter(CACHE_EXPIRATIONS, name, expirations);
        }
    }
}
