#![doc = include_str!("../README.md")]

mod collections;
mod config;
pub mod engine;
mod shard;
mod store;

pub use config::MemoryConfig;
pub use store::{MemoryStats, MemoryStore, MemoryStoreBuilder};
