//! tower layers for HTTP services (the `tower` feature): [`RateLimitLayer`] and
//! [`ResponseCacheLayer`]. They work with any [`CacheStore`](crate::CacheStore), memory or Redis,
//! and with any tower-based server (axum, hyper, tonic's HTTP services).

mod rate_limit;
mod response_cache;

pub use rate_limit::{
    ClientKey, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET, RateLimit, RateLimitLayer,
};
pub use response_cache::{
    BoxError, CachedBody, DEFAULT_MAX_BODY, ResponseCache, ResponseCacheLayer,
};
