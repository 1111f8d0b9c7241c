//! The cache-core patterns (lock and rate limiter) on the memory backend, through the cases the Redis
//! backends run.

mod patterns_cases;

use std::sync::Arc;

use backend_memory::MemoryStore;

#[test]
fn lock_holders_never_overlap() {
    cache_conformance::block_on(patterns_cases::lock_holders_never_overlap(Arc::new(
        MemoryStore::new(),
    )))
}

#[test]
fn expired_lease_is_taken_over() {
    cache_conformance::block_on(patterns_cases::expired_lease_is_taken_over(Arc::new(
        MemoryStore::new(),
    )))
}

#[test]
fn rate_limits_hold_under_concurrency() {
    cache_conformance::block_on(patterns_cases::rate_limits_hold_under_concurrency(
        Arc::new(MemoryStore::new()),
    ))
}
