//! The tower layers (`tower` feature) in front of a counting handler, on the memory backend: every
//! header they promise, what they store and never store, and a failing store.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backend_memory::MemoryStore;
use bytes::Bytes;
use cache_core::http::{RateLimitLayer, ResponseCacheLayer};
use cache_core::{InProcessBus, ManualClock, OnStoreFailure, RateLimiter, TieredCache};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};

mod support;
use support::FlakyStore;

type Handler =
    tower::util::BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

/// A handler that counts its calls and answers what `answer` makes of the request.
fn handler(
    calls: &Arc<AtomicUsize>,
    answer: impl Fn(&Request<Full<Bytes>>) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
) -> Handler {
    let calls = calls.clone();
    tower::util::BoxCloneService::new(service_fn(move |request: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let response = answer(&request);
        async move { Ok::<_, Infallible>(response) }
    }))
}

/// Sends `request` once `service` is ready.
async fn send<S, B>(service: &mut S, request: Request<Full<Bytes>>) -> Response<B>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    service.ready().await.unwrap().call(request).await.unwrap()
}

fn ok(body: &str) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(body.to_owned())))
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

fn header<B>(response: &Response<B>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn body<B>(response: Response<B>) -> String
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// RateLimitLayer

fn client_header(request: &http::request::Parts) -> Option<String> {
    Some(request.headers.get("x-client")?.to_str().ok()?.to_owned())
}

fn limiter(store: impl cache_core::IntoStore, policy: OnStoreFailure) -> RateLimiter {
    RateLimiter::builder(store)
        .limit(2)
        .period(Duration::from_secs(60))
        .on_store_failure(policy)
        .build()
        .unwrap()
}

fn from(client: &str) -> Request<Full<Bytes>> {
    Request::get("/")
        .header("x-client", client)
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn rate_limit_headers_on_admitted_and_denied_requests() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RateLimitLayer::new(
        limiter(MemoryStore::new(), OnStoreFailure::ReturnError),
        client_header,
    );
    let mut service = layer.layer(handler(&calls, |_| ok("hello")));
    for remaining in ["1", "0"] {
        let response = send(&mut service, from("a")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(
            header(&response, "ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        let reset: u64 = header(&response, "ratelimit-reset")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert_eq!(header(&response, "retry-after"), None);
    }
    let denied = send(&mut service, from("a")).await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&denied, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&denied, "ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(header(&denied, "ratelimit-limit").as_deref(), Some("2"));
    assert!(header(&denied, "ratelimit-reset").is_some());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a denied request never reaches the handler"
    );
    // Another client has a limit of its own.
    let other = send(&mut service, from("b")).await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_key_the_limiter_cannot_use_is_a_400() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::builder()
        .limits(cache_core::Limits::new(64, 1 << 20))
        .build()
        .unwrap();
    let layer = RateLimitLayer::new(limiter(store, OnStoreFailure::Allow), client_header);
    let mut service = layer.layer(handler(&calls, |_| ok("hello")));
    let long = "x".repeat(100);
    for request in [get("/"), from(""), from(&long)] {
        let response = send(&mut service, request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "never an unlimited pass");
}

#[tokio::test]
async fn a_failing_store_fails_open_or_closed_as_chosen() {
    let store = FlakyStore::over(MemoryStore::new());
    store.down.store(true, Ordering::SeqCst);
    for (policy, status, passes) in [
        (OnStoreFailure::Allow, StatusCode::OK, true),
        (OnStoreFailure::Deny, StatusCode::SERVICE_UNAVAILABLE, false),
        (
            OnStoreFailure::ReturnError,
            StatusCode::SERVICE_UNAVAILABLE,
            false,
        ),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = RateLimitLayer::new(limiter(store.clone(), policy), client_header);
        let mut service = layer.layer(handler(&calls, |_| ok("hello")));
        let response = send(&mut service, from("a")).await;
        assert_eq!(response.status(), status, "{policy:?}");
        assert_eq!(calls.load(Ordering::SeqCst) == 1, passes, "{policy:?}");
        // No count to show while the store is down.
        assert_eq!(header(&response, "ratelimit-remaining"), None, "{policy:?}");
        if policy == OnStoreFailure::Deny {
            assert!(header(&response, "retry-after").is_some());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ResponseCacheLayer

fn tier(l2: &MemoryStore, bus: &InProcessBus) -> TieredCache {
    TieredCache::builder(MemoryStore::new(), l2.clone())
        .namespace("http")
        .l1_ttl(Duration::from_secs(600))
        .bus(bus.clone())
        .build()
        .unwrap()
}

fn cacheable(
    body: &'static str,
    cache_control: &'static str,
) -> impl Fn(&Request<Full<Bytes>>) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static {
    move |_| {
        let mut response = ok(body);
        if !cache_control.is_empty() {
            response
                .headers_mut()
                .insert("cache-control", cache_control.parse().unwrap());
        }
        response
    }
}

#[tokio::test]
async fn a_cacheable_get_is_answered_from_the_cache_with_its_age() {
    let calls = Arc::new(AtomicUsize::new(0));
    let clock = ManualClock::new();
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()))
        .clock(clock.clone());
    let mut service = layer.layer(handler(&calls, cacheable("fresh", "public, max-age=60")));
    let first = send(&mut service, get("/a?x=1")).await;
    assert_eq!(header(&first, "age"), None, "a fresh answer has no Age");
    assert_eq!(body(first).await, "fresh");
    clock.advance(Duration::from_secs(5));
    let second = send(&mut service, get("/a?x=1")).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(header(&second, "age").as_deref(), Some("5"));
    assert_eq!(
        header(&second, "cache-control").as_deref(),
        Some("public, max-age=60")
    );
    assert_eq!(body(second).await, "fresh");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Another query string, and HEAD, are other responses.
    send(&mut service, get("/a?x=2")).await;
    let head = Request::head("/a?x=1").body(Full::default()).unwrap();
    send(&mut service, head).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // A POST is never answered from the cache.
    let post = Request::post("/a?x=1").body(Full::default()).unwrap();
    send(&mut service, post).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn the_ttl_comes_from_s_maxage_then_max_age_then_the_default() {
    for (cache_control, default, stored) in [
        ("max-age=60", None, true),
        ("s-maxage=60, max-age=0", None, true),
        ("s-maxage=0, max-age=60", None, false),
        ("", None, false),
        ("", Some(Duration::from_secs(60)), true),
        ("public", Some(Duration::from_secs(60)), true),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut layer =
            ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
        if let Some(ttl) = default {
            layer = layer.default_ttl(ttl);
        }
        let mut service = layer.layer(handler(&calls, cacheable("x", cache_control)));
        for _ in 0..2 {
            send(&mut service, get("/")).await;
        }
        let expected = if stored { 1 } else { 2 };
        assert_eq!(
            calls.load(Ordering::SeqCst),
            expected,
            "{cache_control:?}, default {default:?}"
        );
    }
}

#[tokio::test]
async fn never_stores_what_must_not_be_stored() {
    let with = |name: &'static str, value: &'static str, status: StatusCode| {
        move |_: &Request<Full<Bytes>>| {
            let mut response = ok("secret");
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            if !name.is_empty() {
                response.headers_mut().append(name, value.parse().unwrap());
            }
            response
        }
    };
    let cases = [
        ("cache-control", "no-store", StatusCode::OK),
        ("cache-control", "private", StatusCode::OK),
        ("cache-control", "no-cache", StatusCode::OK),
        ("set-cookie", "session=1", StatusCode::OK),
        ("vary", "*", StatusCode::OK),
        ("", "", StatusCode::INTERNAL_SERVER_ERROR),
        ("", "", StatusCode::CREATED),
        ("", "", StatusCode::SERVICE_UNAVAILABLE),
    ];
    for (name, value, status) in cases {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
        let mut service = layer.layer(handler(&calls, with(name, value, status)));
        for _ in 0..2 {
            let response = send(&mut service, get("/")).await;
            assert_eq!(response.status(), status);
            assert_eq!(body(response).await, "secret");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{name}: {value}, {status}");
    }
    // A 404 is cacheable by default.
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
    let mut service = layer.layer(handler(&calls, with("", "", StatusCode::NOT_FOUND)));
    for _ in 0..2 {
        send(&mut service, get("/")).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_directives_no_cache_revalidates_and_no_store_bypasses() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
    let counter = calls.clone();
    let mut service = layer.layer(handler(&calls, move |_| {
        let mut response = ok(&counter.load(Ordering::SeqCst).to_string());
        response
            .headers_mut()
            .insert("cache-control", "max-age=60".parse().unwrap());
        response
    }));
    let with = |directive: &str| {
        Request::get("/n")
            .header("cache-control", directive)
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(body(send(&mut service, get("/n")).await).await, "1");
    assert_eq!(body(send(&mut service, get("/n")).await).await, "1");
    // no-cache: the handler answers, and its answer replaces the stored one.
    let fresh = send(&mut service, with("no-cache")).await;
    assert_eq!(header(&fresh, "age"), None);
    assert_eq!(body(fresh).await, "2");
    assert_eq!(body(send(&mut service, get("/n")).await).await, "2");
    assert_eq!(body(send(&mut service, with("max-age=0")).await).await, "3");
    // no-store: the handler answers, and nothing is stored.
    assert_eq!(body(send(&mut service, with("no-store")).await).await, "4");
    assert_eq!(body(send(&mut service, get("/n")).await).await, "3");
}

#[tokio::test]
async fn vary_keys_responses_by_the_request_headers_it_names() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
    let mut service = layer.layer(handler(&calls, |request| {
        let language = request
            .headers()
            .get("accept-language")
            .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
        let mut response = ok(&language);
        let headers = response.headers_mut();
        headers.insert("cache-control", "max-age=60".parse().unwrap());
        headers.insert("vary", "Accept-Language".parse().unwrap());
        response
    }));
    let in_language = |language: &str| {
        Request::get("/greeting")
            .header("accept-language", language)
            .body(Full::default())
            .unwrap()
    };
    for (language, calls_after) in [("en", 1), ("fr", 2), ("en", 2), ("fr", 2)] {
        let response = send(&mut service, in_language(language)).await;
        assert_eq!(body(response).await, language);
        assert_eq!(calls.load(Ordering::SeqCst), calls_after, "{language}");
    }
    let response = send(&mut service, get("/greeting")).await;
    assert_eq!(body(response).await, "none");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_over_the_bound_is_streamed_through_whole_and_not_stored() {
    let calls = Arc::new(AtomicUsize::new(0));
    let big = "b".repeat(100);
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()))
        .default_ttl(Duration::from_secs(60))
        .max_body(64);
    let answer = {
        let big = big.clone();
        move |request: &Request<Full<Bytes>>| {
            let text = if request.uri().path() == "/big" {
                big.clone()
            } else {
                "small".to_owned()
            };
            ok(&text)
        }
    };
    let mut service = layer.layer(handler(&calls, answer));
    for _ in 0..2 {
        let response = send(&mut service, get("/big")).await;
        assert_eq!(body(response).await, big);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    for _ in 0..2 {
        send(&mut service, get("/small")).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Without a Content-Length: read up to the bound, then streamed through, nothing lost.
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()))
        .default_ttl(Duration::from_secs(60))
        .max_body(64);
    let counter = calls.clone();
    let mut service = layer.layer(service_fn(move |_: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let chunks = (0..10).map(|i| {
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(format!("chunk{i:02}-"))))
        });
        let body = http_body_util::StreamBody::new(futures::stream::iter(chunks));
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }));
    let expected: String = (0..10).map(|i| format!("chunk{i:02}-")).collect();
    for _ in 0..2 {
        let response = send(&mut service, get("/stream")).await;
        assert_eq!(body(response).await, expected);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_reach_the_handler_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
    let counter = calls.clone();
    let service = layer.layer(service_fn(move |_: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut response = ok("slow");
            response
                .headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            Ok::<_, Infallible>(response)
        }
    }));
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { body(service.oneshot(get("/slow")).await.unwrap()).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), "slow");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Two instances share L2 and a bus: one stores a response, the other answers from L2 without
/// calling its handler; an invalidation on one drops the response on both.
#[tokio::test]
async fn instances_share_responses_and_invalidations() {
    let (l2, bus) = (MemoryStore::new(), InProcessBus::default());
    let (tier_a, tier_b) = (tier(&l2, &bus), tier(&l2, &bus));
    let listener = tier_b.listen().await.unwrap();
    let listening = tokio::spawn(listener.run());
    let (a, b) = (
        ResponseCacheLayer::new(tier_a),
        ResponseCacheLayer::new(tier_b),
    );
    let (calls_a, calls_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut service_a = a.layer(handler(&calls_a, cacheable("shared", "max-age=60")));
    let mut service_b = b.layer(handler(&calls_b, cacheable("shared", "max-age=60")));
    send(&mut service_a, get("/p/1")).await;
    for _ in 0..2 {
        let response = send(&mut service_b, get("/p/1")).await;
        assert!(header(&response, "age").is_some());
        assert_eq!(body(response).await, "shared");
    }
    assert_eq!(
        (
            calls_a.load(Ordering::SeqCst),
            calls_b.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    // b holds it in L1 now; a's invalidation reaches it.
    assert!(a.invalidate("/p/1").await.unwrap() >= 1);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    send(&mut service_b, get("/p/1")).await;
    assert_eq!(calls_b.load(Ordering::SeqCst), 1);
    listening.abort();
}

#[tokio::test]
async fn a_failing_cache_is_a_miss_never_an_error() {
    let store = FlakyStore::over(MemoryStore::new());
    store.down.store(true, Ordering::SeqCst);
    let tier = TieredCache::builder(MemoryStore::new(), store)
        .namespace("http")
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut service =
        ResponseCacheLayer::new(tier).layer(handler(&calls, cacheable("ok", "max-age=60")));
    for _ in 0..2 {
        let response = send(&mut service, get("/")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "ok");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A shared cache must never hand one client's authorized answer to another (RFC 9111 §3.5):
/// stored only when the answer says a shared cache may.
#[tokio::test]
async fn an_authorized_answer_is_stored_only_if_it_says_it_may_be_shared() {
    for (cache_control, stored) in [
        ("max-age=60", false),
        ("private, max-age=60", false),
        ("public, max-age=60", true),
        ("s-maxage=60", true),
        ("max-age=60, must-revalidate", true),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
        let mut service = layer.layer(handler(&calls, move |request| {
            let who = request
                .headers()
                .get("authorization")
                .map_or("anyone".to_owned(), |v| v.to_str().unwrap().to_owned());
            let mut response = ok(&who);
            response
                .headers_mut()
                .insert("cache-control", cache_control.parse().unwrap());
            response
        }));
        let as_user = |token: &str| {
            Request::get("/me")
                .header("authorization", token)
                .body(Full::default())
                .unwrap()
        };
        let first = send(&mut service, as_user("alice")).await;
        assert_eq!(body(first).await, "alice");
        let second = send(&mut service, as_user("bob")).await;
        let expected = if stored { "alice" } else { "bob" };
        assert_eq!(body(second).await, expected, "{cache_control}");
    }
}

#[tokio::test]
async fn an_expires_without_max_age_is_not_stored_under_the_default_ttl() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()))
        .default_ttl(Duration::from_secs(60));
    let mut service = layer.layer(handler(&calls, |_| {
        let mut response = ok("dated");
        response
            .headers_mut()
            .insert("expires", "Thu, 01 Jan 1970 00:00:00 GMT".parse().unwrap());
        response
    }));
    for _ in 0..2 {
        send(&mut service, get("/")).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// One service answering two hosts: each host's answer is its own, and an invalidation of the
/// URI drops both.
#[tokio::test]
async fn each_host_has_its_own_answers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = ResponseCacheLayer::new(tier(&MemoryStore::new(), &InProcessBus::default()));
    let mut service = layer.clone().layer(handler(&calls, |request| {
        let host = request.headers()["host"].to_str().unwrap().to_owned();
        let mut response = ok(&host);
        response
            .headers_mut()
            .insert("cache-control", "max-age=60".parse().unwrap());
        response
    }));
    let on = |host: &str, path: &str| {
        Request::get(path)
            .header("host", host)
            .body(Full::default())
            .unwrap()
    };
    for (host, calls_after) in [
        ("a.example", 1),
        ("b.example", 2),
        ("A.example", 2),
        ("b.example", 2),
    ] {
        let response = send(&mut service, on(host, "/page")).await;
        // Host names are case-insensitive: "A.example" is answered with a.example's answer.
        assert_eq!(body(response).await, host.to_ascii_lowercase());
        assert_eq!(calls.load(Ordering::SeqCst), calls_after, "{host}");
    }
    // A URI that extends another's is another URI.
    send(&mut service, on("a.example", "/page|x")).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(layer.invalidate("/page").await.unwrap() >= 4); // two hosts: index and variant each
    send(&mut service, on("a.example", "/page|x")).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "/page|x was not dropped");
    send(&mut service, on("b.example", "/page")).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}
