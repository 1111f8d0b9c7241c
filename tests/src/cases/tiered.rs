//! `cache_core::TieredCache` with the store under test as its L2 (a `MemoryStore` as each
//! instance's L1, an `InProcessBus` between them): the typed contract, and invalidations that reach
//! the other instance's L1.

use std::pin::pin;
use std::sync::Arc;

use backend_memory::MemoryStore;
use cache_core::{InProcessBus, KeyTtl, TieredCache};
use futures::future::{self, Either};

use super::{LONG_TTL, SHORT_TTL};
use crate::Ctx;

fn instance(ctx: &Ctx, bus: &InProcessBus) -> TieredCache {
    instance_in(ctx, bus, "tiered")
}

fn instance_in(ctx: &Ctx, bus: &InProcessBus, namespace: &str) -> TieredCache {
    TieredCache::builder(MemoryStore::new(), ctx.store().clone())
        .namespace(ctx.key(namespace))
        .l1_ttl(LONG_TTL)
        .bus(bus.clone())
        .build()
        .unwrap()
}

/// Runs `body` while `b` applies the invalidations it hears; returns `body`'s output.
async fn with_listener<T>(b: &TieredCache, body: impl Future<Output = T>) -> T {
    let listener = b.listen().await.unwrap();
    match future::select(pin!(body), pin!(listener.run())).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("the listener stopped"),
    }
}

/// Lets the listener apply what was published (it runs between our awaits).
async fn settle() {
    for _ in 0..100 {
        super::yield_now().await;
    }
}

/// TieredCache: every typed method, on L2 the store under test. A value read twice from L1 is the
/// same shared object.
pub async fn tiered_typed_methods(ctx: &Ctx) {
    let cache = instance(ctx, &InProcessBus::default());
    cache.set("k", &vec![1u32, 2]).await.unwrap();
    let first = cache.get_shared::<Vec<u32>>("k").await.unwrap().unwrap();
    let second = cache.get_shared::<Vec<u32>>("k").await.unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "L1 hands out the object it keeps"
    );
    assert_eq!(cache.get::<Vec<u32>>("k").await.unwrap(), Some(vec![1, 2]));

    assert!(cache.exists("k").await.unwrap());
    assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::Persistent);
    assert!(cache.expire("k", LONG_TTL).await.unwrap());
    assert!(matches!(
        cache.ttl("k").await.unwrap(),
        KeyTtl::ExpiresIn(_)
    ));
    assert!(cache.persist("k").await.unwrap());

    assert!(!cache.set_if_present("c", &1u8).await.unwrap());
    assert!(cache.set_if_absent("c", &1u8).await.unwrap());
    assert!(!cache.set_if_absent("c", &2u8).await.unwrap());
    assert!(cache.set_if_present("c", &3u8).await.unwrap());
    assert_eq!(cache.get::<u8>("c").await.unwrap(), Some(3));

    assert!(
        !cache
            .compare_and_swap("c", Some(&1u8), Some(&4))
            .await
            .unwrap()
    );
    assert!(
        cache
            .compare_and_swap("c", Some(&3u8), Some(&4))
            .await
            .unwrap()
    );
    assert_eq!(cache.get::<u8>("c").await.unwrap(), Some(4));
    assert!(cache.compare_and_swap("c", Some(&4u8), None).await.unwrap());
    assert_eq!(cache.get::<u8>("c").await.unwrap(), None);

    cache
        .set_many_with_ttl(&[("a", 1u32), ("b", 2)], SHORT_TTL)
        .await
        .unwrap();
    assert_eq!(
        cache.get_many::<u32>(&["b", "x", "a"]).await.unwrap(),
        vec![Some(2), None, Some(1)]
    );
    assert!(matches!(cache.ttl("b").await.unwrap(), KeyTtl::ExpiresIn(left) if left <= SHORT_TTL));
    assert_eq!(cache.delete_many(&["a", "x"]).await.unwrap(), 1);
    assert_eq!(cache.get::<u32>("a").await.unwrap(), None);

    assert_eq!(cache.incr_by("n", 2, None).await.unwrap(), 2);
    assert_eq!(cache.incr_by("n", 3, None).await.unwrap(), 5);
    assert_eq!(cache.get::<i64>("n").await.unwrap(), Some(5));
}

/// TieredCache: deletes, prefix and pattern invalidations reach the other instance's L1, and
/// clear_local drops this instance's L1 only.
pub async fn tiered_invalidations_reach_the_other_instance(ctx: &Ctx) {
    let bus = InProcessBus::default();
    let (a, b) = (instance(ctx, &bus), instance(ctx, &bus));
    with_listener(&b, async {
        for key in ["list:1", "list:2", "item:1", "item:2", "user:7"] {
            a.set(key, &1u32).await.unwrap();
        }
        settle().await;
        // b copies every key into its L1.
        for key in ["list:1", "list:2", "item:1", "item:2", "user:7"] {
            assert_eq!(b.get::<u32>(key).await.unwrap(), Some(1));
        }
        let l1_hits = b.stats().l1_hits;
        assert_eq!(b.get::<u32>("item:1").await.unwrap(), Some(1));
        assert_eq!(b.stats().l1_hits, l1_hits + 1, "b serves from its L1");

        assert_eq!(a.invalidate_prefix("list:").await.unwrap(), 2);
        assert_eq!(a.invalidate_pattern("item:[1]").await.unwrap(), 1);
        a.delete("user:7").await.unwrap();
        settle().await;
        for (key, left) in [
            ("list:1", None),
            ("list:2", None),
            ("item:1", None),
            ("item:2", Some(1)),
            ("user:7", None),
        ] {
            assert_eq!(b.get::<u32>(key).await.unwrap(), left, "b's {key}");
        }

        // clear_local: only a's L1; b still serves its copy from L1, and a reads L2 again.
        let l2_hits = a.stats().l2_hits;
        a.clear_local().unwrap();
        assert_eq!(a.get::<u32>("item:2").await.unwrap(), Some(1));
        assert_eq!(a.stats().l2_hits, l2_hits + 1);
        let l1_hits = b.stats().l1_hits;
        assert_eq!(b.get::<u32>("item:2").await.unwrap(), Some(1));
        assert_eq!(b.stats().l1_hits, l1_hits + 1);
    })
    .await;
}

/// TieredCache: a clear or prefix invalidation of one namespace never drops another namespace's
/// L1 entries, and the bus carries keys, never values.
pub async fn tiered_invalidations_stay_in_their_namespace(ctx: &Ctx) {
    use cache_core::InvalidationBus;
    use futures::StreamExt;

    let bus = InProcessBus::default();
    let mut heard = bus.subscribe().await.unwrap();
    let (one, one_again) = (instance_in(ctx, &bus, "one"), instance_in(ctx, &bus, "one"));
    let two = instance_in(ctx, &bus, "two");
    let value = "a value that must not travel".to_owned();
    with_listener(&two, async {
        with_listener(&one_again, async {
            for cache in [&one, &two] {
                cache.set("k", &value).await.unwrap();
            }
            settle().await;
            for cache in [&one_again, &two] {
                assert_eq!(cache.get::<String>("k").await.unwrap(), Some(value.clone()));
            }
            one.invalidate_prefix("").await.unwrap();
            one.clear().await.unwrap();
            settle().await;
            // The other namespace still answers from its L1; the same namespace's copy is gone.
            let l1_hits = two.stats().l1_hits;
            assert_eq!(two.get::<String>("k").await.unwrap(), Some(value.clone()));
            assert_eq!(
                two.stats().l1_hits,
                l1_hits + 1,
                "namespace two kept its L1 entry"
            );
            assert_eq!(one_again.get::<String>("k").await.unwrap(), None);
        })
        .await;
    })
    .await;
    let mut messages = 0;
    while let Some(Some(event)) = futures::FutureExt::now_or_never(heard.next()) {
        if let cache_core::BusEvent::Message(message) = event {
            messages += 1;
            let wire = message.to_bytes();
            let text = String::from_utf8_lossy(&wire);
            assert!(
                !text.contains(&value),
                "a value travelled on the bus: {text}"
            );
        }
    }
    assert!(messages >= 4, "the bus carried {messages} messages");
}
