//! Merges concurrent loads of one key into one run of the loader.
//!
//! The first caller (the leader) registers a flight for the key and loads; the others wait for the
//! flight's outcome. If the leader is cancelled before it finishes, the outcome says so and one
//! waiter becomes the next leader.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, OnceLock};

use hashbrown::HashMap;
use parking_lot::Mutex;
use tokio::sync::Notify;

struct Flight<T> {
    /// Set once, when the leader leaves: `Some(result)`, or `None` if it was cancelled.
    outcome: OnceLock<Option<T>>,
    done: Notify,
    /// Callers that may be waiting on `done`; when none, the leader skips the notification.
    waiters: AtomicUsize,
}

pub(crate) struct SingleFlight<T> {
    /// Keyed by an `Arc<str>` that the leader shares, so a flight costs one key allocation.
    flights: Mutex<HashMap<Arc<str>, Arc<Flight<T>>>>,
}

impl<T> std::fmt::Debug for SingleFlight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.flights.lock().len())
            .finish()
    }
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
    key: Arc<str>,
    flight: Arc<Flight<T>>,
    result: Option<T>,
}

impl<T: Clone> SingleFlight<T> {
    /// Joins the flight for `key`, becoming its leader if there is none.
    pub(crate) async fn join(&self, key: &str) -> Role<'_, T> {
        loop {
            let flight = {
                let mut flights = self.flights.lock();
                match flights.get(key) {
                    Some(flight) => flight.clone(),
                    None => {
                        let key: Arc<str> = Arc::from(key);
                        let flight = Arc::new(Flight {
                            outcome: OnceLock::new(),
                            done: Notify::new(),
                            waiters: AtomicUsize::new(0),
                        });
                        flights.insert(key.clone(), flight.clone());
                        return Role::Leader(Leader {
                            owner: self,
                            key,
                            flight,
                            result: None,
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
    /// Publishes the result to the waiters and ends the flight (see `Drop` for the order).
    pub(crate) fn finish(mut self, result: T) {
        self.result = Some(result);
    }
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        // Leave the map before publishing, so that no new caller joins a finished flight.
        let mut flights = self.owner.flights.lock();
        if flights
            .get(&*self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&*self.key);
        }
        drop(flights);
        let _ = self.flight.outcome.set(self.result.take());
        fence(Ordering::SeqCst);
        if self.flight.waiters.load(Ordering::SeqCst) > 0 {
            self.flight.done.notify_waiters();
        }
    }
}
