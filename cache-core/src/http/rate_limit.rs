//! [`RateLimitLayer`]: a [`RateLimiter`] in front of any tower HTTP service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::{ErrorKind, RateLimitDecision, RateLimiter};

/// `RateLimit-Limit` of the IETF draft (draft-ietf-httpapi-ratelimit-headers): the limit per period.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: how many more requests would be admitted now.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the whole limit is available again.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Picks the client whose limit a request counts against, from the request's head (its headers,
/// URI, extensions such as a peer address). `None` or an empty key: the request names no client,
/// a `400`.
pub trait ClientKey: Send + Sync + 'static {
    /// The client's key, or `None`.
    fn client_key(&self, request: &http::request::Parts) -> Option<String>;
}

impl<F> ClientKey for F
where
    F: Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
{
    fn client_key(&self, request: &http::request::Parts) -> Option<String> {
        self(request)
    }
}

/// A tower [`Layer`] that admits each request through a [`RateLimiter`], per client.
///
/// - **Admitted**: the inner service answers, and the response carries `RateLimit-Limit`,
///   `RateLimit-Remaining` and `RateLimit-Reset`.
/// - **Over the limit**: `429 Too Many Requests` with `Retry-After` (whole seconds, at least 1) and
///   the same three headers; the inner service is not called.
/// - **A key the limiter cannot use** (none, empty, too long for the store): `400 Bad Request`,
///   never an unlimited pass.
/// - **The store fails**: as the limiter's [`OnStoreFailure`](crate::OnStoreFailure) says. `Allow`
///   (fail open) calls the inner service, without rate-limit headers (there is no count to show);
///   `Deny` (fail closed) answers `503 Service Unavailable` with `Retry-After`; `ReturnError`
///   answers `503`.
///
/// Generated answers have a short plain-text body, made with `ResBody: From<String>` (axum's
/// `Body`, `Full<Bytes>` and `String` all are).
///
/// ```
/// use backend_memory::MemoryStore;
/// use cache_core::http::RateLimitLayer;
/// use cache_core::{OnStoreFailure, RateLimiter};
/// use std::time::Duration;
///
/// let limiter = RateLimiter::builder(MemoryStore::new())
///     .limit(100)
///     .period(Duration::from_secs(60))
///     .on_store_failure(OnStoreFailure::Allow) // fail open
///     .build()?;
/// let layer = RateLimitLayer::new(limiter, |request: &http::request::Parts| {
///     let client = request.headers.get("x-api-key")?.to_str().ok()?;
///     Some(client.to_owned())
/// });
/// # let _ = layer;
/// # Ok::<_, cache_core::Error>(())
/// ```
pub struct RateLimitLayer {
    limiter: RateLimiter,
    key: Arc<dyn ClientKey>,
}

impl RateLimitLayer {
    /// Limits requests per client as `key` names them.
    pub fn new(limiter: RateLimiter, key: impl ClientKey) -> Self {
        RateLimitLayer {
            limiter,
            key: Arc::new(key),
        }
    }
}

impl Clone for RateLimitLayer {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
        }
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] makes.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let Some(client) = layer.key.client_key(&parts).filter(|c| !c.is_empty()) else {
                return Ok(plain(
                    StatusCode::BAD_REQUEST,
                    "the request names no client to rate-limit",
                ));
            };
            let decision = match layer.limiter.check(&client).await {
                Ok(decision) => decision,
                Err(e)
                    if matches!(e.kind(), ErrorKind::InvalidKey | ErrorKind::InvalidArgument) =>
                {
                    return Ok(plain(
                        StatusCode::BAD_REQUEST,
                        &format!("the client key cannot be rate-limited: {}", e.kind()),
                    ));
                }
                Err(_) => {
                    return Ok(plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the rate limiter is unavailable",
                    ));
                }
            };
            if decision.degraded {
                if decision.allowed {
                    return inner.call(Request::from_parts(parts, body)).await;
                }
                let mut response = plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the rate limiter is unavailable",
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, seconds(decision.retry_after));
                return Ok(response);
            }
            if !decision.allowed {
                let mut response = plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("rate limit of {} exceeded", decision.limit),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, seconds(decision.retry_after));
                add_headers(&mut response, &decision);
                return Ok(response);
            }
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            add_headers(&mut response, &decision);
            Ok(response)
        })
    }
}

/// Whole seconds, rounded up, at least 1: a client told 0 would retry at once.
fn seconds(duration: std::time::Duration) -> HeaderValue {
    HeaderValue::from(whole_seconds(duration).max(1))
}

/// Whole seconds, rounded up: a client that waits them is never early.
fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn add_headers<B>(response: &mut Response<B>, decision: &RateLimitDecision) {
    let headers = response.headers_mut();
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        RATELIMIT_RESET,
        HeaderValue::from(whole_seconds(decision.reset_after)),
    );
}

/// A generated answer with a plain-text body.
pub(super) fn plain<B: From<String>>(status: StatusCode, text: &str) -> Response<B> {
    let mut response = Response::new(B::from(text.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
