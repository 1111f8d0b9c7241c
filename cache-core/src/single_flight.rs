//! Merges concurrent loads of one key into one run of the loader.
//!
//! The first caller (the leader) holds a write lock on the key's slot while it loads; the others
//! wait for a read lock and take the leader's result. If the leader is cancelled before it stores a
//! result, the slot stays empty and one waiter becomes the next leader.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

type Slot<T> = Arc<RwLock<Option<T>>>;

#[derive(Debug)]
pub(crate) struct SingleFlight<T> {
    flights: Mutex<HashMap<String, Slot<T>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
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
    key: String,
    slot: Slot<T>,
    guard: Option<OwnedRwLockWriteGuard<Option<T>>>,
}

impl<T: Clone> SingleFlight<T> {
    /// Joins the flight for `key`, becoming its leader if there is none.
    pub(crate) async fn join(&self, key: &str) -> Role<'_, T> {
        loop {
            let slot = {
                let mut flights = self.flights.lock();
                match flights.get(key) {
                    Some(slot) => slot.clone(),
                    None => {
                        let slot: Slot<T> = Arc::new(RwLock::new(None));
                        let guard = slot.clone().try_write_owned().expect("a new lock is free");
                        flights.insert(key.to_owned(), slot.clone());
                        return Role::Leader(Leader {
                            owner: self,
                            key: key.to_owned(),
                            slot,
                            guard: Some(guard),
                        });
                    }
                }
            };
            if let Some(result) = slot.read().await.as_ref() {
                return Role::Follower(result.clone());
            }
            // The leader was cancelled without a result; it has already left the map, so the next
            // iteration finds a new leader or becomes one.
        }
    }
}

impl<T> Leader<'_, T> {
    /// Publishes the result to the waiters and ends the flight (see `Drop` for the order).
    pub(crate) fn finish(mut self, result: T) {
        if let Some(guard) = self.guard.as_mut() {
            **guard = Some(result);
        }
    }
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        // Leave the map before releasing the lock, so that no new caller joins a finished flight.
        let mut flights = self.owner.flights.lock();
        if flights
            .get(&self.key)
            .is_some_and(|s| Arc::ptr_eq(s, &self.slot))
        {
            flights.remove(&self.key);
        }
        drop(flights);
        self.guard.take();
    }
}
