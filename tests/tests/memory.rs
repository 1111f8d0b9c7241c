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
        // 8 MiB per shard: the value limit derives from the shard size and is small enough for the
        // suite's value-limit cases to run.
        .max_bytes(32 << 20)
        .shards(4)
        .clock(clock.clone())
        .build()
        .unwrap();
    MemoryFixture { store, clock }
}

cache_conformance::conformance_tests!(memory);
