//! Single flight: one origin request per key at a time; everyone else waits for its outcome.
//!
//! The leader's work runs in its own task (see `proxy`), so a leader whose client disconnects
//! does not strand the waiters. If the leader goes away without an outcome (its task panicked
//! or was cancelled), the waiters join again: the first leads and the rest wait for it, as
//! many fetching at once on their own would be the herd single flight exists to stop. They do
//! so at most [`REJOINS`] times, then fetch on their own: leaders that keep failing that way
//! are a bug met again by each one, and queueing every waiter behind it would only delay them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::key::Key;

type Flights<T> = Arc<Mutex<HashMap<Key, watch::Receiver<Option<T>>>>>;

/// How many times a follower joins again after its leader went away without an outcome.
pub const REJOINS: usize = 2;

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
    /// the key, and its waiters join again: see the module's doc).
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
    /// To join again if the leader goes away without an outcome.
    key: Key,
    flights: Flights<T>,
}

/// How a follower's wait ended.
pub enum Waited<T> {
    /// The leader's outcome.
    Outcome(T),
    /// Its leader went away without an outcome, and this follower, joining again, was first:
    /// it leads now, with the same duties as any leader (see [`Joined::Leader`]).
    Lead(Flight<T>),
    /// Its leaders went away without an outcome more than [`REJOINS`] times: it fetches on
    /// its own.
    Alone,
}

impl<T: Clone + Send + Sync + 'static> Inflight<T> {
    pub fn join(&self, key: &Key) -> Joined<T> {
        join(&self.flights, key)
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

fn join<T>(flights: &Flights<T>, key: &Key) -> Joined<T> {
    let mut running = flights.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(receiver) = running.get(key) {
        return Joined::Follower(Follower {
            receiver: receiver.clone(),
            key: key.clone(),
            flights: flights.clone(),
        });
    }
    let (sender, receiver) = watch::channel(None);
    running.insert(key.clone(), receiver);
    Joined::Leader(Flight {
        key: key.clone(),
        sender,
        flights: flights.clone(),
    })
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
    /// The leader's outcome; if it went away without one, this follower joins again (see the
    /// module's doc), and may lead.
    pub async fn outcome(mut self) -> Waited<T> {
        let mut rejoined = 0;
        loop {
            let outcome = match self.receiver.wait_for(Option::is_some).await {
                Ok(value) => value.clone(),
                Err(_) => None,
            };
            if let Some(outcome) = outcome {
                return Waited::Outcome(outcome);
            }
            if rejoined == REJOINS {
                return Waited::Alone;
            }
            rejoined += 1;
            // The flight that went away took itself out of the map before its sender closed
            // (`Flight::drop`): the first follower back starts the next one. A follower that
            // wakes only after that one finished (an origin round trip later) leads again.
            match join(&self.flights, &self.key) {
                Joined::Leader(flight) => return Waited::Lead(flight),
                Joined::Follower(next) => self.receiver = next.receiver,
            }
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
        assert!(matches!(a.outcome().await, Waited::Outcome(7)));
        assert!(matches!(b.outcome().await, Waited::Outcome(7)));
        assert!(inflight.is_empty());
    }

    #[tokio::test]
    async fn the_follower_of_an_abandoned_flight_leads_the_next() {
        let inflight: Inflight<u32> = Inflight::default();
        let key: Key = "k".into();
        let Joined::Leader(flight) = inflight.join(&key) else {
            panic!("leader")
        };
        let Joined::Follower(a) = inflight.join(&key) else {
            panic!("follower")
        };
        drop(flight);
        let Waited::Lead(next) = a.outcome().await else {
            panic!("the only follower leads next")
        };
        assert!(matches!(inflight.join(&key), Joined::Follower(_)));
        drop(next);
        assert!(matches!(inflight.join(&key), Joined::Leader(_)));
    }

    /// Many followers of a leader gone without an outcome: one of them leads, the others wait
    /// for it and share its outcome, instead of each fetching on its own.
    #[tokio::test(start_paused = true)]
    async fn an_abandoned_flight_has_exactly_one_new_leader() {
        let inflight: Arc<Inflight<u32>> = Arc::default();
        let key: Key = "k".into();
        let Joined::Leader(flight) = inflight.join(&key) else {
            panic!("leader")
        };
        let waiters: Vec<_> = (0..50)
            .map(|_| {
                let Joined::Follower(follower) = inflight.join(&key) else {
                    panic!("follower")
                };
                tokio::spawn(async move {
                    match follower.outcome().await {
                        Waited::Lead(flight) => {
                            // As a fetch would: the others are back before it ends.
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            flight.finish(9);
                            None
                        }
                        Waited::Outcome(outcome) => Some(outcome),
                        Waited::Alone => panic!("fetched alone"),
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(flight);
        let mut outcomes = Vec::new();
        for waiter in waiters {
            outcomes.push(waiter.await.expect("waiter"));
        }
        assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 1);
        assert!(outcomes.iter().flatten().all(|&o| o == 9));
        assert!(inflight.is_empty());
    }

    /// Leaders that keep going away without an outcome are followed [`REJOINS`] times, then
    /// each follower fetches on its own.
    #[tokio::test]
    async fn followers_rejoin_a_bounded_number_of_times() {
        let inflight: Inflight<u32> = Inflight::default();
        let key: Key = "k".into();
        let Joined::Leader(mut flight) = inflight.join(&key) else {
            panic!("leader")
        };
        let Joined::Follower(follower) = inflight.join(&key) else {
            panic!("follower")
        };
        // Another waiter leads each time and goes away: the follower follows it.
        let waiting = tokio::spawn(follower.outcome());
        for _ in 0..REJOINS {
            // The follower waits on `flight` (single-threaded: it ran meanwhile).
            tokio::task::yield_now().await;
            drop(flight);
            let Joined::Leader(next) = inflight.join(&key) else {
                panic!("ahead of the follower")
            };
            flight = next;
        }
        tokio::task::yield_now().await;
        drop(flight);
        assert!(matches!(waiting.await.expect("waiter"), Waited::Alone));
    }
}
