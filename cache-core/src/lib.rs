#![doc = include_str!("../README.md")]

mod cache;
mod capabilities;
mod clock;
mod codec;
mod collections;
mod error;
mod finite;
mod glob;
mod handles;
#[cfg(feature = "tower")]
pub mod http;
mod limits;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod patterns;
mod shared;
mod single_flight;
mod stats;
mod store;

pub use bytes::Bytes;

pub use cache::{Cache, CacheBuilder, IntoStore};
pub use capabilities::Capabilities;
pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "compression")]
pub use codec::Compressed;
#[cfg(feature = "msgpack")]
pub use codec::MsgPack;
pub use codec::{Codec, CodecError, Json};
pub use collections::{
    CollectionArgs, CollectionStore, MAX_COLLECTION_PAGE, Order, Page, ScoreBound, index_range,
};
pub use error::{Error, ErrorKind, Result};
pub use glob::{glob_escape, glob_matches};
pub use handles::{HashOf, ListOf, SetOf, SortedSetOf};
pub use limits::{Limits, MAX_TTL, opt_ttl_millis, ttl_millis};
pub use patterns::{
    BusEvent, InProcessBus, Invalidation, InvalidationBus, InvalidationListener, InvalidationOp,
    LockGuard, LockManager, LockManagerBuilder, MAX_SLIDING_WINDOW_LIMIT, Memoized, OnStoreFailure,
    RateLimitAlgorithm, RateLimitDecision, RateLimiter, RateLimiterBuilder, Sleeper, TieredCache,
    TieredCacheBuilder, TieredStats, WallClock,
};
pub use shared::{PrefixedKey, SharedObject, ToShared};
pub use stats::CacheStats;
pub use store::{
    CacheStore, CacheStoreExt, Departures, KeyTtl, LocalStore, ScanCursor, ScanPage, SetCondition,
    SetOptions, scan_stream,
};
