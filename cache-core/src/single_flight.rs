//! Merges concurrent loads of one key into one run of the loader.
//!
//! The first caller (the leader) registers the key and loads; the others wait for the leader's
//! outcome. A key costs no allocation while nobody waits (unless it is longer than 24 bytes): the
//! shared flight that waiters block on is created by the first waiter. If the leader is cancelled
//! before it finishes, the outcome says so and one waiter becomes the next leader.

use std::hash::BuildHasher;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, OnceLock};

use crossbeam_utils::CachePadded;
use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio::sync::Notify;

/// Independent locks, each on a cache line of its own, so that loads of different keys on different
/// threads rarely contend.
const SHARDS: usize = 8;

struct Flight<T> {
    /// Set once, when the leader leaves: `Some(result)`, or `None` if it was cancelled.
    outcome: OnceLock<Option<T>>,
    done: Notify,
    /// Callers that may be waiting on `done`; when none, the leader skips the notification.
    waiters: AtomicUsize,
}

/// A key being loaded, and the flight its waiters share once there are any.
struct InFlight<T> {
    /// Inline up to 24 bytes: most keys cost no allocation.
    key: SmallVec<[u8; 24]>,
    hash: u64,
    flight: Option<Arc<Flight<T>>>,
}

pub(crate) struct SingleFlight<T> {
    shards: [CachePadded<Mutex<HashTable<InFlight<T>>>>; SHARDS],
    hasher: DefaultHashBuilder,
}

impl<T> std::fmt::Debug for SingleFlight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let in_flight: usize = self.shards.iter().map(|s| s.lock().len()).sum();
        f.debug_struct("SingleFlight")
            .field("in_flight", &in_flight)
            .finish()
    }
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            shards: std::array::from_fn(|_| CachePadded::new(Mutex::new(HashTable::new()))),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

/// What a caller of [`SingleFlight::join`] must do.
pub(crate) enum Role<'a, T> {
    /// Run the load, then [`Leader::finish`] with its result.
    Leader(Leader<'a, T>),
    /// Another caller loaded this; here is its result.
    Follower(T),
}

pub(crate) struct Leader<'a, T> {
    owner: &'a SingleFlight<T>,
    key: &'a str,
    hash: u64,
    finished: bool,
}

impl<T> SingleFlight<T> {
    fn shard(&self, hash: u64) -> &Mutex<HashTable<InFlight<T>>> {
        // The table uses the hash's low bits; pick the shard with its high bits.
        &self.shards[(hash >> 58) as usize % SHARDS]
    }
}

impl<T: Clone> SingleFlight<T> {
    /// Joins the flight for `key`, becoming its leader if there is none.
    pub(crate) async fn join<'a>(&'a self, key: &'a str) -> Role<'a, T> {
        let hash = self.hasher.hash_one(key);
        loop {
            let flight = {
                let mut keys = self.shard(hash).lock();
                match keys.find_mut(hash, |f| *f.key == *key.as_bytes()) {
                    Some(in_flight) => in_flight
                        .flight
                        .get_or_insert_with(|| {
                            Arc::new(Flight {
                                outcome: OnceLock::new(),
                                done: Notify::new(),
                                waiters: AtomicUsize::new(0),
                            })
                        })
                        .clone(),
                    None => {
                        let in_flight = InFlight {
                            key: SmallVec::from_slice(key.as_bytes()),
                            hash,
                            flight: None,
                        };
                        keys.insert_unique(hash, in_flight, |f| f.hash);
                        return Role::Leader(Leader {
                            owner: self,
                            key,
                            hash,
                            finished: false,
                        });
                    }
                }
            };
            // Counted and registered before the check, so a leader that leaves in between still
            // wakes us (it publishes the outcome before it reads the count).
            flight.waiters.fetch_add(1, Ordering::SeqCst);
            let mut notified = pin!(flight.done.notified());
            notified.as_mut().enable();
            // Pairs with the leader's fence: it sees our count, or we see its outcome.
            fence(Ordering::SeqCst);
            if flight.outcome.get().is_none() {
                notified.await;
            }
            if let Some(Some(result)) = flight.outcome.get() {
                return Role::Follower(result.clone());
            }
            // The leader was cancelled without a result; it has already left the map, so the next
            // iteration finds a new leader or becomes one.
        }
    }
}

impl<T> Leader<'_, T> {
    /// Ends the flight and hands the waiters, if any, what `result` makes; it runs only if someone
    /// waits, so that an uncontended load clones nothing.
    pub(crate) fn finish(mut self, result: impl FnOnce() -> T) {
        self.finished = true;
        if let Some(flight) = self.leave() {
            flight.publish(Some(result()));
        }
    }

    /// Leaves the map, so that no new caller joins a finished flight, and returns the flight if
    /// anyone joined. Only this leader removes its key, so the entry found is its own.
    fn leave(&mut self) -> Option<Arc<Flight<T>>> {
        let in_flight = self
            .owner
            .shard(self.hash)
            .lock()
            .find_entry(self.hash, |f| *f.key == *self.key.as_bytes())
            .ok()
            .map(|entry| entry.remove().0);
        in_flight.and_then(|f| f.flight)
    }
}

impl<T> Flight<T> {
    /// Sets the outcome (after the leader has left the map) and wakes whoever waits.
    fn publish(&self, outcome: Option<T>) {
        let _ = self.outcome.set(outcome);
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.done.notify_waiters();
        }
    }
}

impl<T> Drop for Leader<'_, T> {
    /// A leader dropped before [`finish`](Leader::finish) was cancelled: its waiters learn so, and
    /// one of them leads next.
    fn drop(&mut self) {
        if !self.finished {
            if let Some(flight) = self.leave() {
                flight.publish(None);
            }
        }
    }
}
