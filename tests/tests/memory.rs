//! The memory backend opts in to the conformance suite. Time is a manual clock, so TTL cases do not sleep.

use std::sync::Arc;
use std::time::Duration;

use backend_memory::MemoryStore;
use cache_conformance::Fixture;
use cache_core::{CacheStore, ManualClock};

struct MemoryFixture {
    store: MemoryStore,
    clock: ManualClock,
}

#[async_trait::async_trait]
impl Fixture for MemoryFixture {
    fn store(&self) -> Arc<dyn CacheStore> {
        Arc::new(self.store.clone())
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

async fn memory() -> MemoryFixture {
    let clock = ManualClock::new();
    let store = MemoryStore::builder()
        .max_entries(100_000)
        .max_bytes(256 << 20)
        .clock(clock.clone())
        .build();
    MemoryFixture { store, clock }
}

cache_conformance::conformance_tests!(memory);
