//! [`ResponseCacheLayer`]: a shared HTTP response cache over a [`TieredCache`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream;
use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, EXPIRES, HeaderMap, HeaderName, HeaderValue,
    SET_COOKIE, VARY,
};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use tower_layer::Layer;
use tower_service::Service;

use crate::single_flight::{Role, SingleFlight};
use crate::{Clock, Codec, Result, SystemClock, TieredCache};

/// The error type of the bodies the layer answers with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response of a [`ResponseCache`]: the inner service's, boxed, or a stored one.
pub type CachedBody = UnsyncBoxBody<Bytes, BoxError>;

/// The largest body stored by default: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// A tower [`Layer`] that answers repeated `GET` and `HEAD` requests from a [`TieredCache`], so
/// that every instance sharing its L2 shares the responses, and invalidations reach every L1.
///
/// - **Key**: the method, the URI, the host, and the values of the request headers the response's
///   `Vary` names. A response with `Vary: *` is not stored.
/// - **TTL**: the response's `Cache-Control: s-maxage`, else `max-age`, else the
///   [`default_ttl`](Self::default_ttl); with none of them, it is not stored.
/// - **Never stored**: `Cache-Control: no-store`, `private` or `no-cache`; a `Set-Cookie`; the answer
///   to a request with `Authorization`, unless it is `public` (or has `s-maxage` or
///   `must-revalidate`); an `Expires` without `max-age` (it is not parsed); a status
///   that is not cacheable by default (RFC 9110: 200, 203, 204, 300, 301, 308, 404, 405, 410,
///   414, 501); a body over [`max_body`](Self::max_body) bytes (it is streamed through as it is).
/// - **Request directives**: `Cache-Control: no-cache` (or `max-age=0`) skips the lookup and
///   stores the fresh answer; `no-store` bypasses the cache both ways.
/// - **Concurrent misses** of one method and URI reach the inner service once; the others answer
///   from its stored response (or call the service themselves if it was not storable).
/// - **Answers from the cache** carry `Age` (whole seconds since the response was stored).
/// - A failing cache never fails a request: it is a miss.
///
/// [`invalidate`](Self::invalidate) drops a URI's responses on every instance.
///
/// ```
/// use backend_memory::MemoryStore;
/// use cache_core::TieredCache;
/// use cache_core::http::ResponseCacheLayer;
/// use std::time::Duration;
///
/// // In production: a RedisStore as L2 and a RedisBus or TrackingBus, shared by every instance.
/// let tier = TieredCache::builder(MemoryStore::new(), MemoryStore::new())
///     .namespace("http")
///     .build()?;
/// let layer = ResponseCacheLayer::new(tier).default_ttl(Duration::from_secs(30));
/// # let _ = layer;
/// # Ok::<_, cache_core::Error>(())
/// ```
#[derive(Clone)]
pub struct ResponseCacheLayer {
    shared: Arc<Shared>,
}

struct Shared {
    entries: Box<dyn Entries>,
    default_ttl: Option<Duration>,
    max_body: usize,
    clock: Arc<dyn Clock>,
    /// Misses of one method and URI in flight; followers get the leader's stored response.
    flights: SingleFlight<Option<Arc<Stored>>>,
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("default_ttl", &self.shared.default_ttl)
            .field("max_body", &self.shared.max_body)
            .finish_non_exhaustive()
    }
}

/// What the layer needs of a [`TieredCache`], whatever its codec.
#[async_trait]
trait Entries: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()>;
    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64>;
}

#[async_trait]
impl<C: Codec> Entries for TieredCache<C> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.get_bytes(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        self.set_bytes(key, value, Some(ttl)).await
    }

    async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        TieredCache::invalidate_prefix(self, prefix).await
    }
}

impl ResponseCacheLayer {
    /// Stores responses in `cache` (give it a namespace of its own).
    pub fn new<C: Codec>(cache: TieredCache<C>) -> Self {
        ResponseCacheLayer {
            shared: Arc::new(Shared {
                entries: Box::new(cache),
                default_ttl: None,
                max_body: DEFAULT_MAX_BODY,
                clock: Arc::new(SystemClock::new()),
                flights: SingleFlight::default(),
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::try_unwrap(self.shared)
            .unwrap_or_else(|_| panic!("configure a layer before cloning it"));
        change(&mut shared);
        ResponseCacheLayer {
            shared: Arc::new(shared),
        }
    }

    /// How long to keep a response whose `Cache-Control` gives no `max-age` or `s-maxage`.
    /// Default: such responses are not stored.
    #[must_use]
    pub fn default_ttl(self, ttl: Duration) -> Self {
        self.with(|s| s.default_ttl = Some(ttl))
    }

    /// The largest body stored, in bytes (default [`DEFAULT_MAX_BODY`]).
    #[must_use]
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|s| s.max_body = bytes)
    }

    /// The clock of `Age` (default: the wall clock).
    #[must_use]
    pub fn clock(self, clock: impl Clock + 'static) -> Self {
        self.with(|s| s.clock = Arc::new(clock))
    }

    /// Drops every stored response of `uri` (as the request line has it, e.g. `/products/1?x=2`),
    /// for `GET` and `HEAD`, every host and every `Vary` variant, on every instance the cache's
    /// bus reaches.
    pub async fn invalidate(&self, uri: &str) -> Result<u64> {
        let mut dropped = 0;
        for method in [Method::GET, Method::HEAD] {
            dropped += self
                .shared
                .entries
                .invalidate_prefix(&format!("{}|", uri_key(&method, uri)))
                .await?;
        }
        Ok(dropped)
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> ResponseCache<S> {
        ResponseCache {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`ResponseCacheLayer`] makes.
#[derive(Clone)]
pub struct ResponseCache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResponseCache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<CachedBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, std::result::Result<Response<CachedBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(shared.serve(inner, request))
    }
}

/// A stored response, and who it answers: the request's method, URI and `Vary` values.
struct Stored {
    identity: String,
    stored_at_ms: u64,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Shared {
    async fn serve<S, ReqBody, ResBody>(
        self: Arc<Self>,
        mut inner: S,
        request: Request<ReqBody>,
    ) -> std::result::Result<Response<CachedBody>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let method = request.method().clone();
        let directives = Directives::of(request.headers());
        if !(method == Method::GET || method == Method::HEAD) || directives.no_store {
            return Ok(passthrough(inner.call(request).await?));
        }
        let uri = request.uri().to_string();
        let primary = primary_key(&method, &uri, &host_of(&request));
        let request_headers = request.headers().clone();
        let revalidate = directives.no_cache || directives.max_age == Some(0);
        if !revalidate {
            if let Some(stored) = self.lookup(&primary, &request_headers).await {
                return Ok(self.answer(&stored));
            }
        }
        let leader = if revalidate {
            None
        } else {
            match self.flights.join(&primary).await {
                Role::Leader(leader) => Some(leader),
                Role::Follower(Some(stored))
                    if stored.identity
                        == identity(&primary, &vary_of(&stored.headers), &request_headers) =>
                {
                    return Ok(self.answer(&stored));
                }
                // Not storable, or another variant: ask the service.
                Role::Follower(_) => None,
            }
        };
        let response = inner.call(request).await?;
        let (response, stored) = self.store(&primary, &request_headers, response).await;
        if let Some(leader) = leader {
            leader.finish(|| stored.clone());
        }
        Ok(response)
    }

    /// The stored response for this request, if there is one (any cache failure is a miss).
    async fn lookup(&self, primary: &str, request_headers: &HeaderMap) -> Option<Arc<Stored>> {
        let index = self.entries.get(&index_key(primary)).await.ok()??;
        let vary = decode_index(&index)?;
        let identity = identity(primary, &vary, request_headers);
        let raw = self
            .entries
            .get(&variant_key(primary, &identity))
            .await
            .ok()??;
        let stored = decode(&raw)?;
        (stored.identity == identity).then(|| Arc::new(stored))
    }

    fn answer(&self, stored: &Stored) -> Response<CachedBody> {
        let mut response = Response::new(boxed(Full::new(stored.body.clone())));
        *response.status_mut() = stored.status;
        *response.headers_mut() = stored.headers.clone();
        let age = self.clock.unix_millis().saturating_sub(stored.stored_at_ms) / 1_000;
        response.headers_mut().insert(AGE, HeaderValue::from(age));
        response
    }

    /// Stores `response` if it may be stored, and returns it (its body read, if it was stored).
    async fn store<ResBody>(
        &self,
        primary: &str,
        request_headers: &HeaderMap,
        response: Response<ResBody>,
    ) -> (Response<CachedBody>, Option<Arc<Stored>>)
    where
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let authorized = request_headers.contains_key(AUTHORIZATION);
        let Some(ttl) = self.storable(&response, authorized) else {
            return (passthrough(response), None);
        };
        let (parts, body) = response.into_parts();
        let body = match read_up_to(boxed(body), self.max_body).await {
            Read::Whole(bytes) => bytes,
            Read::Not(body) => return (Response::from_parts(parts, body), None),
        };
        let vary = vary_of(&parts.headers);
        let stored = Arc::new(Stored {
            identity: identity(primary, &vary, request_headers),
            stored_at_ms: self.clock.unix_millis(),
            status: parts.status,
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        // The variant first: an index that names a missing variant is a miss, never a wrong hit.
        let written = self
            .entries
            .set(
                &variant_key(primary, &stored.identity),
                encode(&stored),
                ttl,
            )
            .await;
        if written.is_ok() {
            let _ = self
                .entries
                .set(&index_key(primary), encode_index(&vary), ttl)
                .await;
        }
        (
            Response::from_parts(parts, boxed(Full::new(body))),
            Some(stored),
        )
    }

    /// The TTL to store `response` for, or `None` if it must not be stored. The answer to a request
    /// with `Authorization` is stored only if it says a shared cache may (`public`, `s-maxage` or
    /// `must-revalidate`, RFC 9111 §3.5): another client must never get it otherwise.
    fn storable<B: Body>(&self, response: &Response<B>, authorized: bool) -> Option<Duration> {
        let status = response.status().as_u16();
        if !matches!(
            status,
            200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
        ) {
            return None;
        }
        let headers = response.headers();
        if headers.contains_key(SET_COOKIE) || vary_of(headers).iter().any(|v| v == "*") {
            return None;
        }
        let directives = Directives::of(headers);
        if directives.no_store || directives.no_cache || directives.private {
            return None;
        }
        if authorized
            && !(directives.public || directives.s_maxage.is_some() || directives.must_revalidate)
        {
            return None;
        }
        let length = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if length.is_some_and(|length| length > self.max_body) {
            return None;
        }
        match directives.s_maxage.or(directives.max_age) {
            Some(0) => None,
            Some(seconds) => Some(Duration::from_secs(seconds)),
            // `Expires` is not read: rather than outlive it under the default, do not store.
            None if headers.contains_key(EXPIRES) => None,
            None => self.default_ttl,
        }
    }
}

/// The `Cache-Control` directives the layer acts on.
#[derive(Default)]
struct Directives {
    no_store: bool,
    no_cache: bool,
    private: bool,
    public: bool,
    must_revalidate: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
}

impl Directives {
    fn of(headers: &HeaderMap) -> Self {
        let mut directives = Directives::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim(), Some(argument.trim().trim_matches('"')))
                    }
                    None => (directive.trim(), None),
                };
                let seconds = || argument.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => directives.no_store = true,
                    "no-cache" => directives.no_cache = true,
                    "private" => directives.private = true,
                    "public" => directives.public = true,
                    "must-revalidate" => directives.must_revalidate = true,
                    // An unreadable age is the safe reading: do not reuse.
                    "max-age" => directives.max_age = Some(seconds().unwrap_or(0)),
                    "s-maxage" => directives.s_maxage = Some(seconds().unwrap_or(0)),
                    _ => {}
                }
            }
        }
        directives
    }
}

/// The header names a response's `Vary` lists, lowercased and sorted.
fn vary_of(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Keys longer than this are hashed (the full identity is kept in the entry and checked).
const MAX_PLAIN_KEY: usize = 200;

/// The method and URI (a `|` in it written `%7C`, so that `|` ends it), or their hash when long:
/// what every key of a URI starts with, whatever the host.
fn uri_key(method: &Method, uri: &str) -> String {
    let plain = format!("{method} {}", uri.replace('|', "%7C"));
    if plain.len() <= MAX_PLAIN_KEY {
        plain
    } else {
        format!("{method} #{}", digest(&plain))
    }
}

/// The method, URI and host: one service may answer several hosts, and one host's answer must
/// never be another's.
fn primary_key(method: &Method, uri: &str, host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let host = if host.len() <= MAX_PLAIN_KEY / 2 {
        host
    } else {
        digest(&host)
    };
    format!("{}|{host}", uri_key(method, uri))
}

/// The request's host: the URI's authority, else its `Host` header.
fn host_of<B>(request: &Request<B>) -> String {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            let host = request.headers().get(http::header::HOST)?;
            host.to_str().ok().map(str::to_owned)
        })
        .unwrap_or_default()
}

/// Where the `Vary` names of a method, URI and host are kept. Every key of a URI starts with
/// `"{uri_key}|"`, so that one prefix drops them all, for every host (and no other URI's).
fn index_key(primary: &str) -> String {
    format!("{primary}|")
}

fn variant_key(primary: &str, identity: &str) -> String {
    format!("{primary}|{}", digest(identity))
}

/// Who a response answers: the method and URI, and the request's value of each `Vary` header.
fn identity(primary: &str, vary: &[String], request_headers: &HeaderMap) -> String {
    let mut identity = primary.to_owned();
    for name in vary {
        identity.push('\n');
        identity.push_str(name);
        identity.push(':');
        let values = request_headers.get_all(name.as_str());
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                identity.push_str(", ");
            }
            identity.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
    }
    identity
}

/// 128 bits of two differently seeded SipHashes: a key, not a security boundary (a collision is
/// caught by the identity check).
fn digest(text: &str) -> String {
    let half = |seed: u64| {
        let mut hasher = std::hash::DefaultHasher::new();
        seed.hash(&mut hasher);
        text.hash(&mut hasher);
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

const ENTRY_MAGIC: &[u8; 4] = b"HRC1";
const INDEX_MAGIC: &[u8; 4] = b"HRV1";

fn encode_index(vary: &[String]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(INDEX_MAGIC);
    out.put_slice(vary.join(",").as_bytes());
    out.freeze()
}

fn decode_index(raw: &[u8]) -> Option<Vec<String>> {
    let names = std::str::from_utf8(raw.strip_prefix(INDEX_MAGIC)?).ok()?;
    Some(
        names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// `magic, stored_at (u64), identity (u32 length + bytes), status (u16), header count (u16), each
/// header (u16 name length + name, u32 value length + value), body`, little-endian.
fn encode(stored: &Stored) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + stored.identity.len() + stored.body.len());
    out.put_slice(ENTRY_MAGIC);
    out.put_u64_le(stored.stored_at_ms);
    out.put_u32_le(stored.identity.len() as u32);
    out.put_slice(stored.identity.as_bytes());
    out.put_u16_le(stored.status.as_u16());
    let headers: Vec<(&HeaderName, &HeaderValue)> =
        stored.headers.iter().take(u16::MAX as usize).collect();
    out.put_u16_le(headers.len() as u16);
    for (name, value) in headers {
        out.put_u16_le(name.as_str().len() as u16);
        out.put_slice(name.as_str().as_bytes());
        out.put_u32_le(value.as_bytes().len() as u32);
        out.put_slice(value.as_bytes());
    }
    out.put_slice(&stored.body);
    out.freeze()
}

/// Decodes [`encode`]; anything malformed is `None` (a miss).
fn decode(raw: &Bytes) -> Option<Stored> {
    let mut buf = raw.clone();
    let take = |buf: &mut Bytes, n: usize| (buf.remaining() >= n).then(|| buf.split_to(n));
    if take(&mut buf, 4)?.as_ref() != ENTRY_MAGIC || buf.remaining() < 12 {
        return None;
    }
    let stored_at_ms = buf.get_u64_le();
    let length = buf.get_u32_le() as usize;
    let identity = String::from_utf8(take(&mut buf, length)?.to_vec()).ok()?;
    if buf.remaining() < 4 {
        return None;
    }
    let status = StatusCode::from_u16(buf.get_u16_le()).ok()?;
    let count = buf.get_u16_le();
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        if buf.remaining() < 2 {
            return None;
        }
        let length = buf.get_u16_le() as usize;
        let name = HeaderName::from_bytes(&take(&mut buf, length)?).ok()?;
        if buf.remaining() < 4 {
            return None;
        }
        let length = buf.get_u32_le() as usize;
        let value = HeaderValue::from_maybe_shared(take(&mut buf, length)?).ok()?;
        headers.append(name, value);
    }
    Some(Stored {
        identity,
        stored_at_ms,
        status,
        headers,
        body: buf,
    })
}

/// A body read to its end, or handed back whole (read part included) when it is longer than the
/// limit, has trailers or fails.
enum Read {
    Whole(Bytes),
    Not(CachedBody),
}

async fn read_up_to(mut body: CachedBody, limit: usize) -> Read {
    let mut read: Vec<Frame<Bytes>> = Vec::new();
    let mut length = 0;
    loop {
        match body.frame().await {
            None => {
                let mut whole = BytesMut::with_capacity(length);
                for frame in read {
                    if let Ok(data) = frame.into_data() {
                        whole.put(data);
                    }
                }
                return Read::Whole(whole.freeze());
            }
            Some(Ok(frame)) => {
                let keep_reading = match frame.data_ref() {
                    Some(data) => {
                        length += data.len();
                        length <= limit
                    }
                    // Trailers are not stored: hand the body back.
                    None => false,
                };
                read.push(frame);
                if !keep_reading {
                    return Read::Not(rest(read, body, None));
                }
            }
            Some(Err(e)) => return Read::Not(rest(read, body, Some(e))),
        }
    }
}

/// The frames already read, then the error (if reading failed) or the rest of `body`.
fn rest(read: Vec<Frame<Bytes>>, body: CachedBody, error: Option<BoxError>) -> CachedBody {
    use futures::StreamExt;
    let head = stream::iter(read.into_iter().map(Ok::<_, BoxError>));
    match error {
        Some(error) => StreamBody::new(head.chain(stream::iter([Err(error)]))).boxed_unsync(),
        None => StreamBody::new(head.chain(BodyStream::new(body))).boxed_unsync(),
    }
}

fn boxed<B>(body: B) -> CachedBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

fn passthrough<B>(response: Response<B>) -> Response<CachedBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(boxed)
}
