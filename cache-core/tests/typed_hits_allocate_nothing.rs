//! A typed hit allocates nothing: not the namespaced key, not a decoded value, not a future. A
//! counting global allocator checks it on `Cache` and on a `TieredCache` L1, with and without a
//! fail-safe grace period (whose L1 entries carry a header).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use backend_memory::MemoryStore;
use cache_core::{Cache, TieredCache};

/// Polls `future` once, as an executor would, and counts the heap allocations that makes (on this
/// thread, through `allocation-counter`'s global allocator); it must be ready.
fn allocations_of<T>(future: impl Future<Output = T>) -> (T, u64) {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let mut polled = Poll::Pending;
    let info = allocation_counter::measure(|| polled = future.as_mut().poll(&mut cx));
    match polled {
        Poll::Ready(value) => (value, info.count_total),
        Poll::Pending => panic!("a hit on a memory store must not wait"),
    }
}

fn ready<T>(future: impl Future<Output = T>) -> T {
    allocations_of(future).0
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Product {
    id: u64,
    stock: u64,
    price_cents: u64,
    name: String,
    description: String,
    tags: Vec<String>,
}

fn product() -> Product {
    Product {
        id: 42,
        stock: 7,
        price_cents: 1999,
        name: "lamp".into(),
        description: "a lamp that lights".into(),
        tags: vec!["home".into(), "light".into(), "sale".into()],
    }
}

#[test]
fn a_cache_hit_allocates_nothing() {
    let cache = Cache::builder(MemoryStore::new())
        .namespace("products")
        .build()
        .unwrap();
    ready(cache.set("42", &product())).unwrap();
    // Warm: the first read may set up lazily built state.
    ready(cache.get_shared::<Product>("42")).unwrap().unwrap();

    let (hit, allocations) = allocations_of(cache.get_shared::<Product>("42"));
    assert_eq!(*hit.unwrap().unwrap(), product());
    assert_eq!(allocations, 0, "a Cache hit allocated");

    let (miss, allocations) = allocations_of(cache.get_shared::<Product>("43"));
    assert!(miss.unwrap().is_none());
    assert_eq!(allocations, 0, "a Cache miss allocated");

    // The counter sees allocations: a clone of the value, and a hit of bytes written without an
    // object (which must be decoded), both allocate.
    let (_, allocations) = allocations_of(cache.get::<Product>("42"));
    assert!(allocations > 0, "get clones the Strings");
    let raw = serde_json::to_vec(&product()).unwrap();
    let store = cache.store().clone();
    ready(store.set("products:raw", raw.into(), cache_core::SetOptions::new())).unwrap();
    let (hit, allocations) = allocations_of(cache.get_shared::<Product>("raw"));
    assert_eq!(*hit.unwrap().unwrap(), product());
    assert!(allocations > 0, "a decoding hit allocates");

    // Loaded values are hits of the same kind.
    let loaded: Arc<Product> =
        ready(cache.get_shared_or_insert_with("44", None, || async {
            Ok::<_, std::io::Error>(product())
        }))
        .unwrap();
    let (hit, allocations) =
        allocations_of(cache.get_shared_or_insert_with("44", None, || async {
            Ok::<_, std::io::Error>(product())
        }));
    assert!(Arc::ptr_eq(&hit.unwrap(), &loaded), "the loaded object");
    assert_eq!(allocations, 0, "a get_shared_or_insert_with hit allocated");
}

#[test]
fn a_tiered_l1_hit_allocates_nothing() {
    for grace in [Duration::ZERO, Duration::from_secs(60)] {
        let cache = TieredCache::builder(MemoryStore::new(), MemoryStore::new())
            .namespace("products")
            .fail_safe_grace(grace)
            .build()
            .unwrap();
        ready(cache.set("42", &product())).unwrap();
        ready(cache.get_shared::<Product>("42")).unwrap().unwrap();

        let (hit, allocations) = allocations_of(cache.get_shared::<Product>("42"));
        assert_eq!(*hit.unwrap().unwrap(), product());
        assert_eq!(allocations, 0, "an L1 hit allocated (grace {grace:?})");
        assert!(cache.stats().l1_hits >= 2);
    }
}
