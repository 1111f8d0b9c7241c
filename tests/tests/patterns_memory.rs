//! The cache-core patterns (lock and rate limiter) on the memory backend, through the cases the Redis
//! backends run.

mod patterns_cases;

use std::sync::Arc;

use backend_memory::MemoryStore;

patterns_cases::store_pattern_tests!(Arc::new(MemoryStore::new()));
