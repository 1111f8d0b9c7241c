#![doc = include_str!("../README.md")]

mod bus;
pub use bus::RedisBus;
mod collections;
mod config;
mod conn;
mod env;
mod escape;
pub use escape::{RawConnection, RedisPipeline, ServerStats};
mod error;
mod store;
mod topology;
mod tracking;
pub use tracking::{TRACKING_ORIGIN, TrackingBus};

pub use config::{
    NodeAddr, REDIS_URL_ENV, RedisConfig, RedisConfigBuilder, RedisMode, RetryPolicy, TlsConfig,
};
pub use env::VARIABLES as ENV_VARIABLES;
pub use store::RedisStore;
