//! Single flight: one origin request per key at a time; everyone else waits for its outcome.
//!
//! The leader's work runs in its own task (see `proxy`), so a leader whose client disconnects
//! does not strand the waiters. If the leader goes away without an outcome, waiters see
//! `None` and fetch on their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::key::Key;

type Flights<T> = Arc<Mutex<HashMap<Key, watch::Receiver<Option<T>>>>>;

pub struct Inflight<T> {
    flights: Flights<T>,
}

impl<T> Default for Inflight<T> {
    fn default() -> Self {
        Inflight {
            flights: Arc::default(),
        }
    }
}

pub enum Joined<T> {
    /// This caller fetches; it must call [`Flight::finish`] (dropping the flight also releases
    /// the key, telling waiters to fetch on their own).
    Leader(Flight<T>),
    Follower(Follower<T>),
}

pub struct Flight<T> {
    key: Key,
    sender: watch::Sender<Option<T>>,
    flights: Flights<T>,
}

pub struct Follower<T> {
    receiver: watch::Receiver<Option<T>>,
}

impl<T: Clone + Send + Sync + 'static> Inflight<T> {
    pub fn join(&self, key: &Key) -> Joined<T> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(receiver) = flights.get(key) {
            return Joined::Follower(Follower {
                receiver: receiver.clone(),
            });
        }
        let (sender, receiver) = watch::channel(None);
        flights.insert(key.clone(), receiver);
        Joined::Leader(Flight {
            key: key.clone(),
            sender,
            flights: self.flights.clone(),
        })
    }

    /// Whether a request for `key` is under way (a background refresh need not start another).
    pub fn is_running(&self, key: &Key) -> bool {
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.flights.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Flight<T> {
    /// Publishes the outcome to every waiter and releases the key.
    pub fn finish(self, outcome: T) {
        self.sender.send_replace(Some(outcome));
        // Drop releases the key.
    }
}

impl<T> Drop for Flight<T> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        // Only remove our own flight: a new one may already have taken the key.
        if flights
            .get(&self.key)
            .is_some_and(|r| r.same_channel(&self.sender.subscribe()))
        {
            flights.remove(&self.key);
        }
    }
}

impl<T: Clone> Follower<T> {
    /// The leader's outcome, or `None` if it went away without one.
    pub async fn outcome(mut self) -> Option<T> {
        match self.receiver.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_share_the_leaders_outcome() {
        let inflight: Inflight<u32> = Inflight::default();
        let key: Key = "k".into();
        let Joined::Leader(flight) = inflight.join(&key) else {
            panic!("first is leader")
        };
        let Joined::Follower(a) = inflight.join(&key) else {
            panic!("second follows")
        };
        let Joined::Follower(b) = inflight.join(&key) else {
            panic!("third follows")
        };
        assert!(inflight.is_running(&key));
        flight.finish(7);
        assert_eq!(a.outcome().await, Some(7));
        assert_eq!(b.outcome().await, Some(7));
        assert!(inflight.is_empty());
    }

    #[tokio::test]
    async fn abandoned_flight_releases_waiters() {
        let inflight: Inflight<u32> = Inflight::default();
        let key: Key = "k".into();
        let Joined::Leader(flight) = inflight.join(&key) else {
            panic!("leader")
        };
        let Joined::Follower(a) = inflight.join(&key) else {
            panic!("follower")
        };
        drop(flight);
        assert_eq!(a.outcome().await, None);
        assert!(matches!(inflight.join(&key), Joined::Leader(_)));
    }
}
