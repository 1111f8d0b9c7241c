//! An HTTP service that uses the cache patterns a real service needs:
//!
//! - `GET /products/{id}`: cache-aside product lookup through a [`TieredCache`] (local L1 in front of
//!   a shared L2), loading from the "database" on a miss;
//! - every route is rate limited per client (`x-client-id` header) by `cache_core::http`'s
//!   `RateLimitLayer`: `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` on every
//!   answer, `429 Too Many Requests` with `Retry-After` over the limit;
//! - `GET` answers are kept by its `ResponseCacheLayer` (shared by every instance through the
//!   same L2 and bus) for their `Cache-Control: max-age`, and answered with `Age`;
//! - `POST /products/{id}/stock` with `{"delta": -1}`: a stock update under a distributed lock, whose
//!   fencing token the database checks;
//! - `GET /stats`: the tiered cache's counters;
//! - `GET /metrics`: every cache's metrics (`cache_core::metrics`, and the Redis store's command
//!   latencies) in Prometheus text format.
//!
//! It runs on the memory backend by default, and on Redis (L2, invalidation bus, locks and rate
//! limits) when `REDIS_URL` is set:
//!
//! ```sh
//! cargo run -p examples --example web_service                       # memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p examples --example web_service
//! curl -H 'x-client-id: me' 127.0.0.1:3000/products/1
//! curl -X POST -H 'content-type: application/json' -d '{"delta":-1}' 127.0.0.1:3000/products/1/stock
//! curl 127.0.0.1:3000/stats
//! ```
//!
//! Cargo.toml lines it needs: `cache-core` (feature `tower`), `backend-memory`, `backend-redis`, `axum = "0.8"`,
//! `serde`, `serde_json`, `tokio` (`rt-multi-thread`, `macros`, `net`, `time`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backend_memory::MemoryStore;
use cache_core::http::{RateLimitLayer, ResponseCacheLayer};
use cache_core::metrics::MetricsReporter;
use cache_core::{
    CacheStore, Error, InProcessBus, InvalidationBus, LockManager, OnStoreFailure,
    RateLimitAlgorithm, RateLimiter, TieredCache,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A product as the database and the cache hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Units in stock.
    pub stock: i64,
}

/// The slow, authoritative store the cache protects. For each product it remembers the largest
/// fencing token that read it for an update, and refuses a read or write with a smaller one: a holder
/// whose lock lease expired cannot write over the update of the holder after it.
#[derive(Debug, Default)]
pub struct Database {
    rows: Mutex<HashMap<u64, (Product, u64)>>,
    /// How many reads reached the database.
    pub reads: std::sync::atomic::AtomicU64,
}

impl Database {
    /// A database with a few products.
    pub fn seeded() -> Self {
        let db = Database::default();
        for (id, name, stock) in [(1, "desk lamp", 100), (2, "bookshelf", 5), (3, "rug", 0)] {
            let product = Product {
                id,
                name: name.into(),
                stock,
            };
            db.rows.lock().insert(id, (product, 0));
        }
        db
    }

    async fn read(&self, id: u64) -> Option<Product> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5)).await; // a real query takes a while
        self.rows.lock().get(&id).map(|(p, _)| p.clone())
    }

    /// Reads a product for an update by the holder of `fence`; `Ok(None)`: no such product.
    async fn read_for_update(&self, id: u64, fence: u64) -> Result<Option<Product>, &'static str> {
        let product = self.read(id).await;
        let mut rows = self.rows.lock();
        let Some(row) = rows.get_mut(&id) else {
            return Ok(None);
        };
        if fence < row.1 {
            return Err("stale fencing token");
        }
        row.1 = fence;
        Ok(product)
    }

    fn write(&self, product: Product, fence: u64) -> Result<(), &'static str> {
        let mut rows = self.rows.lock();
        let row = rows.get_mut(&product.id).ok_or("no such product")?;
        if fence < row.1 {
            return Err("stale fencing token");
        }
        *row = (product, fence);
        Ok(())
    }
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    products: TieredCache,
    /// The cached HTTP answers, to drop a product's when its stock changes.
    responses: ResponseCacheLayer,
    /// The caches whose stats `/metrics` shows.
    metrics: MetricsReporter,
    locks: LockManager,
    db: Arc<Database>,
}

/// What the service is built from.
pub struct Settings {
    /// L2 of the product cache.
    pub shared: Arc<dyn CacheStore>,
    /// Where rate limits are counted; a store of their own on memory, so that cached products
    /// cannot evict a client's count.
    pub limits: Arc<dyn CacheStore>,
    /// Where locks live: a store that must not evict them (see `LockManager`); on Redis, run it with
    /// `maxmemory-policy noeviction`.
    pub locks: Arc<dyn CacheStore>,
    /// The bus that keeps instances' L1s coherent.
    pub bus: Arc<dyn InvalidationBus>,
    /// Requests per client per `rate_period`.
    pub rate_limit: u64,
    /// The rate limit's period.
    pub rate_period: Duration,
    /// The database.
    pub db: Arc<Database>,
}

impl Settings {
    /// One instance on memory: an in-process L2 and bus.
    pub fn memory() -> Self {
        Settings {
            shared: Arc::new(MemoryStore::new()),
            limits: Arc::new(MemoryStore::builder().max_entries(100_000).build().unwrap()),
            // Two keys per product locked; far more room than the catalogue needs, so nothing is evicted.
            locks: Arc::new(MemoryStore::builder().max_entries(100_000).build().unwrap()),
            bus: Arc::new(InProcessBus::default()),
            rate_limit: 20,
            rate_period: Duration::from_secs(1),
            db: Arc::new(Database::seeded()),
        }
    }
}

/// Builds the service and starts applying invalidations from other instances.
pub async fn app(settings: Settings) -> Result<Router, Error> {
    prometheus();
    let products_l1 = MemoryStore::new();
    let products = TieredCache::builder(products_l1.clone(), settings.shared.clone())
        .namespace("products")
        .l1_ttl(Duration::from_secs(30))
        .default_ttl(Duration::from_secs(300))
        .fail_safe_grace(Duration::from_secs(600))
        .l2_timeout(Duration::from_millis(250))
        .sleeper(tokio::time::sleep)
        .shared_bus(settings.bus.clone())
        .build()
        .unwrap();
    tokio::spawn(products.listen().await?.run());
    // HTTP answers in a namespace of their own, on the same L2 and bus: every instance shares them.
    let responses = TieredCache::builder(MemoryStore::new(), settings.shared.clone())
        .namespace("http")
        .l1_ttl(Duration::from_secs(30))
        .shared_bus(settings.bus.clone())
        .build()
        .unwrap();
    tokio::spawn(responses.listen().await?.run());
    let metrics = MetricsReporter::new();
    metrics
        .register("products", products.clone())
        .register("products-l1", products_l1)
        .register("http", responses.clone());
    let responses = ResponseCacheLayer::new(responses);
    let limiter = RateLimiter::builder(settings.limits)
        .namespace("rl:web")
        .limit(settings.rate_limit)
        .period(settings.rate_period)
        .algorithm(RateLimitAlgorithm::Gcra)
        // The limiter's store is down: serve rather than lock everyone out.
        .on_store_failure(OnStoreFailure::Allow)
        .build()
        .unwrap();
    let state = AppState {
        products,
        responses: responses.clone(),
        metrics,
        locks: LockManager::builder(settings.locks)
            .lease(Duration::from_secs(5))
            .sleeper(tokio::time::sleep)
            .build()
            .unwrap(),
        db: settings.db,
    };
    Ok(Router::new()
        .route("/products/{id}", get(get_product))
        .route("/products/{id}/stock", post(update_stock))
        .route("/stats", get(stats))
        .route("/metrics", get(prometheus_metrics))
        .with_state(state)
        // The outer layer counts every request, cached answers included.
        .layer(responses)
        .layer(RateLimitLayer::new(limiter, client_id)))
}

/// An error answer: a status and a JSON message.
struct AppError(StatusCode, String);

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// The longest `x-client-id` accepted: ids are limiter keys, which have a length limit.
const MAX_CLIENT_ID: usize = 128;

/// Whose limit a request counts against: its `x-client-id`, or `anonymous`. A longer id than
/// [`MAX_CLIENT_ID`] names no usable client: a `400`.
fn client_id(request: &axum::http::request::Parts) -> Option<String> {
    let client = match request.headers.get("x-client-id") {
        Some(id) => id.to_str().ok()?,
        None => "anonymous",
    };
    (client.len() <= MAX_CLIENT_ID).then(|| client.to_owned())
}

/// Product answers may be reused for this long (a stock update drops them at once).
const PRODUCT_MAX_AGE: &str = "public, max-age=30";

async fn get_product(State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    let db = state.db.clone();
    // Missing products are cached too (as `null`), so a flood of bad ids does not reach the database.
    let product: Result<Option<Product>, Error> = state
        .products
        .get_or_insert_with(&id.to_string(), None, || async move {
            Ok::<_, Error>(db.read(id).await)
        })
        .await;
    let mut response = match product {
        Ok(Some(product)) => Json(product).into_response(),
        Ok(None) => AppError(StatusCode::NOT_FOUND, format!("no product {id}")).into_response(),
        Err(e) => return AppError::from(e).into_response(),
    };
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(PRODUCT_MAX_AGE),
    );
    response
}

/// The body of a stock update.
#[derive(Debug, Deserialize)]
struct StockChange {
    delta: i64,
}

async fn update_stock(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Json(change): Json<StockChange>,
) -> Result<Json<Product>, AppError> {
    let guard = state
        .locks
        .acquire(&format!("stock:{id}"), Duration::from_secs(5))
        .await?
        .ok_or_else(|| AppError(StatusCode::SERVICE_UNAVAILABLE, "stock is busy".into()))?;
    let fence = guard.fencing_token();
    let result = async {
        let stale = |e: &str| AppError(StatusCode::CONFLICT, e.into());
        let mut product = state
            .db
            .read_for_update(id, fence)
            .await
            .map_err(stale)?
            .ok_or_else(|| AppError(StatusCode::NOT_FOUND, format!("no product {id}")))?;
        let stock = product
            .stock
            .checked_add(change.delta)
            .ok_or_else(|| AppError(StatusCode::BAD_REQUEST, "delta out of range".into()))?;
        if stock < 0 {
            return Err(AppError(
                StatusCode::CONFLICT,
                format!("only {} in stock", product.stock),
            ));
        }
        product.stock = stock;
        state.db.write(product.clone(), fence).map_err(stale)?;
        // Committed: from here on, failures are logged, not reported as a failed update (a retry
        // would apply it twice). Write-through: every instance drops its L1 copy.
        if let Err(e) = state
            .products
            .set(&id.to_string(), &Some(product.clone()))
            .await
        {
            eprintln!("product {id}: cache write-through failed ({e}); L1 copies were dropped");
        }
        if let Err(e) = state.responses.invalidate(&format!("/products/{id}")).await {
            eprintln!("product {id}: dropping the cached answers failed ({e})");
        }
        Ok(Json(product))
    }
    .await;
    // Released on every path; if this task died instead, the 5 s lease would free the lock.
    if let Err(e) = guard.release().await {
        eprintln!("stock:{id}: lock release failed ({e}); the lease frees it");
    }
    result
}

async fn stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "tiered": state.products.stats(),
        "db_reads": state.db.reads.load(std::sync::atomic::Ordering::Relaxed),
    }))
}

/// The process's Prometheus recorder, installed once (every instance of a test process shares it).
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        // Buckets make the command latencies a Prometheus histogram rather than a summary.
        let seconds = [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
        ];
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(cache_core::metrics::DB_CLIENT_OPERATION_DURATION.to_owned()),
                &seconds,
            )
            .expect("buckets are given")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

async fn prometheus_metrics(State(state): State<AppState>) -> Response {
    state.metrics.report();
    let mut response = prometheus().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Memory by default; Redis for the shared store and the bus when `REDIS_URL` is set.
async fn settings_from_env() -> Result<Settings, Error> {
    let mut settings = Settings::memory();
    if let Some(url) = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        let config = backend_redis::RedisConfig::from_url(&url)?;
        let redis: Arc<dyn CacheStore> =
            Arc::new(backend_redis::RedisStore::connect(config.clone()).await?);
        settings.shared = redis.clone();
        settings.limits = redis.clone();
        settings.locks = redis;
        settings.bus = Arc::new(backend_redis::RedisBus::connect(&config, "web_service").await?);
        println!(
            "using Redis at {}",
            url.split('@').next_back().unwrap_or(&url)
        );
    }
    Ok(settings)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let router = app(settings_from_env().await?).await?;
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Reply {
        status: u16,
        headers: String,
        body: serde_json::Value,
        text: String,
    }

    impl Reply {
        /// The value of header `name` (lowercase), if the answer has it.
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .map(str::trim)
        }
    }

    /// One HTTP/1.1 request over a fresh connection, with nothing but tokio. Every instance is
    /// asked for the same host, as behind a load balancer.
    async fn request(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        client: &str,
        body: &str,
    ) -> Reply {
        request_with(addr, method, path, client, "", body).await
    }

    /// [`request`] with `extra` header lines (each ending in `\r\n`).
    async fn request_with(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        client: &str,
        extra: &str,
        body: &str,
    ) -> Reply {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: shop.example\r\nx-client-id: {client}\r\nconnection: close\r\n\
             {extra}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (headers, body) = raw.split_once("\r\n\r\n").unwrap();
        Reply {
            status: headers[9..12].parse().unwrap(),
            headers: headers.to_ascii_lowercase(),
            body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
            text: body.to_owned(),
        }
    }

    async fn serve(settings: Settings) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app(settings).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_service_answers_over_http() {
        let settings = Settings {
            rate_limit: 5,
            rate_period: Duration::from_secs(60),
            ..Settings::memory()
        };
        let db = settings.db.clone();
        let addr = serve(settings).await;

        // Cache-aside: the database is read once; the answer is kept, and given again with its Age.
        let first = request(addr, "GET", "/products/1", "a", "").await;
        assert_eq!(first.status, 200);
        assert_eq!(first.body["name"], "desk lamp");
        assert_eq!(first.header("ratelimit-limit"), Some("5"));
        assert_eq!(first.header("ratelimit-remaining"), Some("4"));
        let reset: u64 = first.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert_eq!(first.header("cache-control"), Some(PRODUCT_MAX_AGE));
        assert_eq!(first.header("age"), None, "a fresh answer");
        let again = request(addr, "GET", "/products/1", "a", "").await;
        assert_eq!(again.body["stock"], 100);
        assert_eq!(
            again.header("age"),
            Some("0"),
            "answered from the response cache"
        );
        assert_eq!(
            again.header("ratelimit-remaining"),
            Some("3"),
            "cached answers count too"
        );
        let missing = request(addr, "GET", "/products/9", "b", "").await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.header("cache-control"), Some(PRODUCT_MAX_AGE));
        // A client that asks for a fresh answer gets one (no Age), from the product cache's L1.
        let fresh = request_with(
            addr,
            "GET",
            "/products/1",
            "b",
            "cache-control: no-cache\r\n",
            "",
        )
        .await;
        assert_eq!(fresh.status, 200);
        assert_eq!(fresh.header("age"), None);
        let stats = request(addr, "GET", "/stats", "b", "").await;
        assert_eq!(
            stats.header("age"),
            None,
            "/stats says nothing of caching: never kept"
        );
        let stats = stats.body;
        assert_eq!(stats["tiered"]["loader_runs"], 2);
        assert_eq!(stats["tiered"]["l1_hits"], 1);
        assert_eq!(db.reads.load(std::sync::atomic::Ordering::Relaxed), 2);

        // Stock updates under the lock: 20 concurrent decrements, none lost.
        let updates: Vec<_> = (0..20)
            .map(|i| {
                tokio::spawn(async move {
                    request(
                        addr,
                        "POST",
                        "/products/1/stock",
                        &format!("buyer{i}"),
                        r#"{"delta":-1}"#,
                    )
                    .await
                    .status
                })
            })
            .collect();
        for update in updates {
            assert_eq!(update.await.unwrap(), 200);
        }
        // The cache was written through and the kept answer dropped: the next read sees the new
        // stock without the database.
        let after = request(addr, "GET", "/products/1", "c", "").await;
        assert_eq!(after.body["stock"], 80);
        assert_eq!(after.header("age"), None);
        let oversold = request(addr, "POST", "/products/2/stock", "c", r#"{"delta":-6}"#).await;
        assert_eq!(oversold.status, 409);

        // The sixth request of a client within the minute is refused with Retry-After.
        for _ in 0..3 {
            assert_eq!(
                request(addr, "GET", "/products/1", "a", "").await.status,
                200
            );
        }
        let refused = request(addr, "GET", "/products/1", "a", "").await;
        assert_eq!(refused.status, 429);
        let retry_after: u64 = refused
            .header("retry-after")
            .expect("a Retry-After header")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert_eq!(refused.header("ratelimit-limit"), Some("5"));
        assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
        assert!(refused.header("ratelimit-reset").is_some());
        // Other clients are unaffected.
        assert_eq!(
            request(addr, "GET", "/products/1", "d", "").await.status,
            200
        );

        // Every cache's metrics, in Prometheus text format.
        let metrics = request(addr, "GET", "/metrics", "e", "").await;
        assert_eq!(metrics.status, 200);
        assert_eq!(
            metrics.header("content-type"),
            Some("text/plain; version=0.0.4")
        );
        let value = |line_start: &str| -> f64 {
            metrics
                .text
                .lines()
                .find_map(|line| line.strip_prefix(line_start))
                .unwrap_or_else(|| panic!("no {line_start} in\n{}", metrics.text))
                .trim()
                .parse()
                .unwrap()
        };
        assert_eq!(value("cache_loads{cache_name=\"products\"} "), 2.0);
        assert!(value("cache_l1_hits{cache_name=\"products\"} ") >= 1.0);
        assert!(value("cache_entries{cache_name=\"products-l1\"} ") >= 1.0);
        // Kept HTTP answers are hits of the "http" tier.
        assert!(value("cache_hits{cache_name=\"http\"} ") >= 1.0);
    }

    /// The response cache's rules over a real axum server: one route per header it acts on, each
    /// asked twice; a route whose answer was kept is called once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_response_cache_follows_every_header_over_http() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        // `(path, headers of the answer)`.
        let routes: &[(&str, &[(&str, &str)])] = &[
            ("/max-age", &[("cache-control", "max-age=60")]),
            ("/s-maxage", &[("cache-control", "s-maxage=60, max-age=0")]),
            ("/no-store", &[("cache-control", "no-store, max-age=60")]),
            ("/private", &[("cache-control", "private, max-age=60")]),
            (
                "/cookie",
                &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
            ),
            (
                "/vary",
                &[("cache-control", "max-age=60"), ("vary", "accept-language")],
            ),
            (
                "/vary-star",
                &[("cache-control", "max-age=60"), ("vary", "*")],
            ),
            ("/auth", &[("cache-control", "max-age=60")]),
            ("/auth-public", &[("cache-control", "public, max-age=60")]),
        ];
        let mut router = Router::new();
        for &(path, headers) in routes {
            let calls = calls.clone();
            router = router.route(
                path,
                get(move |request: axum::extract::Request| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let language = request
                        .headers()
                        .get("accept-language")
                        .map_or("none", |v| v.to_str().unwrap_or("?"))
                        .to_owned();
                    let mut response = language.into_response();
                    for (name, value) in headers {
                        response.headers_mut().insert(
                            axum::http::HeaderName::from_static(name),
                            HeaderValue::from_static(value),
                        );
                    }
                    response
                }),
            );
        }
        let tier = TieredCache::builder(MemoryStore::new(), MemoryStore::new())
            .namespace("http")
            .build()
            .unwrap();
        let router = router.layer(ResponseCacheLayer::new(tier));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let twice = async |path: &str, extra: &str| {
            let before = calls.load(Ordering::SeqCst);
            let first = request_with(addr, "GET", path, "t", extra, "").await;
            let second = request_with(addr, "GET", path, "t", extra, "").await;
            assert_eq!(first.status, 200, "{path}");
            assert_eq!(first.text, second.text, "{path}");
            (calls.load(Ordering::SeqCst) - before, second)
        };
        for (path, kept) in [
            ("/max-age", true),
            ("/s-maxage", true),
            ("/no-store", false),
            ("/private", false),
            ("/cookie", false),
            ("/vary-star", false),
        ] {
            let (handler_calls, second) = twice(path, "").await;
            assert_eq!(handler_calls, if kept { 1 } else { 2 }, "{path}");
            assert_eq!(second.header("age").is_some(), kept, "{path}");
        }
        // Vary: one answer per value of the header it names.
        assert_eq!(twice("/vary", "accept-language: en\r\n").await.0, 1);
        assert_eq!(twice("/vary", "accept-language: fr\r\n").await.0, 1);
        let (handler_calls, again) = twice("/vary", "accept-language: en\r\n").await;
        assert_eq!((handler_calls, again.text.as_str()), (0, "en"));
        // A request's no-cache reaches the handler even though an answer is kept.
        let (handler_calls, fresh) = twice("/max-age", "cache-control: no-cache\r\n").await;
        assert_eq!(handler_calls, 2);
        assert_eq!(fresh.header("age"), None);
        // An authorized request's answer is kept only if it may be shared.
        let bearer = "authorization: Bearer a\r\n";
        assert_eq!(twice("/auth", bearer).await.0, 2);
        assert_eq!(twice("/auth-public", bearer).await.0, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_requests_get_4xx_and_leave_the_service_working() {
        let addr = serve(Settings::memory()).await;
        // A client id too long to be a limiter key is refused, not let through unlimited.
        let long = "x".repeat(MAX_CLIENT_ID + 1);
        assert_eq!(
            request(addr, "GET", "/products/1", &long, "").await.status,
            400
        );
        // A delta that overflows the stock is refused, and the lock is free again at once.
        let max = format!(r#"{{"delta":{}}}"#, i64::MAX);
        let overflow = request(addr, "POST", "/products/1/stock", "a", &max).await;
        assert_eq!(overflow.status, 400);
        let started = std::time::Instant::now();
        let next = request(addr, "POST", "/products/1/stock", "a", r#"{"delta":-1}"#).await;
        assert_eq!(next.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "waited for the lease"
        );
    }

    /// The fencing token guards the read too: a holder whose lease expired after it read cannot
    /// write over the update of the holder that came after it.
    #[tokio::test]
    async fn a_stale_holder_cannot_write_over_a_newer_one() {
        let db = Database::seeded();
        let mut late = db.read_for_update(1, 7).await.unwrap().unwrap();
        let mut next = db.read_for_update(1, 8).await.unwrap().unwrap();
        late.stock -= 1;
        next.stock -= 1;
        assert_eq!(db.write(late, 7), Err("stale fencing token"));
        assert_eq!(db.write(next, 8), Ok(()));
        assert_eq!(db.read_for_update(1, 7).await, Err("stale fencing token"));
        assert_eq!(db.read(1).await.unwrap().stock, 99);
    }

    /// A `redis-server` on a free port of 127.0.0.1, killed on drop.
    struct LocalRedis(std::process::Child);

    impl Drop for LocalRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn local_redis() -> Option<(u16, LocalRedis)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = LocalRedis(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some((port, server))
    }

    /// Two instances of the service on one Redis: a stock update on one is visible on the other at
    /// once, although the other had the product in its L1.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_on_redis_stay_coherent() {
        let Some((port, _server)) = local_redis() else {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(!ci, "CI=true and redis-server is not installed");
            eprintln!("redis-server is not installed: skipping the Redis run of the service");
            return;
        };
        let config =
            backend_redis::RedisConfig::from_url(&format!("redis://127.0.0.1:{port}")).unwrap();
        let db = Arc::new(Database::seeded());
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let redis: Arc<dyn CacheStore> = Arc::new(
                backend_redis::RedisStore::connect(config.clone())
                    .await
                    .unwrap(),
            );
            let settings = Settings {
                shared: redis.clone(),
                limits: redis.clone(),
                locks: redis,
                bus: Arc::new(
                    backend_redis::RedisBus::connect(&config, "web")
                        .await
                        .unwrap(),
                ),
                db: db.clone(),
                ..Settings::memory()
            };
            addrs.push(serve(settings).await);
        }
        let (a, b) = (addrs[0], addrs[1]);
        assert_eq!(
            request(b, "GET", "/products/2", "x", "").await.body["stock"],
            5
        );
        assert_eq!(
            request(b, "GET", "/products/2", "x", "").await.body["stock"],
            5
        );
        let updated = request(a, "POST", "/products/2/stock", "x", r#"{"delta":-2}"#).await;
        assert_eq!(updated.body["stock"], 3);
        let started = std::time::Instant::now();
        while request(b, "GET", "/products/2", "y", "").await.body["stock"] != 3 {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "b never saw the update"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The product tier heard a's write-through (and, on the shared channel, the dropped answers).
        let stats = request(b, "GET", "/stats", "y", "").await.body;
        assert!(
            stats["tiered"]["bus_messages"].as_u64() >= Some(1),
            "{stats}"
        );
        // Kept answers are shared: what b kept, a gives without a database read.
        let reads = db.reads.load(std::sync::atomic::Ordering::Relaxed);
        let shared = request(a, "GET", "/products/2", "z", "").await;
        assert_eq!(shared.body["stock"], 3);
        assert!(
            shared.header("age").is_some(),
            "a answered from the shared cache"
        );
        assert_eq!(db.reads.load(std::sync::atomic::Ordering::Relaxed), reads);
    }
}
