//! Single-flight: concurrent calls for one key share one lookup and at most
//! one computation.
//!
//! The first caller of a key becomes the leader: it looks the key up and, on
//! a miss, runs the body. Callers arriving meanwhile wait and receive the
//! leader's sealed bytes, which each decodes (and validates against its own
//! key digest) into its own value. If the leader produces nothing storable
//! — an `Err`, a `None`, a panic, or a cancelled future — the waiters of that
//! flight each run their own body, so one failure is never shared and never
//! serializes the callers behind it; the key is free for the next caller.
//! A waiter gives up after `single_flight_wait` (10 s), takes the stalled
//! flight off the air and starts over (it may lead a new flight), so a
//! leader that stalls — a future kept but no longer polled — costs the
//! callers behind it one wait at most, and later callers nothing.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::io::within;
use crate::store::Bytes;

#[derive(Default)]
pub(crate) struct Flights {
    in_air: Mutex<HashMap<Arc<str>, Arc<Flight>>>,
}

pub(crate) enum Role<'a> {
    Lead(Leader<'a>),
    Wait(Arc<Flight>),
}

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Landing {
    /// The leader's sealed bytes.
    Shared(Bytes),
    /// The leader produced nothing to share: compute.
    Empty,
    /// The leader did not land in time; the flight was abandoned.
    Stalled,
}

#[derive(Default)]
pub(crate) struct Flight {
    landing: Mutex<Option<Option<Bytes>>>,
    // Sync waiters block on the condvar, async waiters on the notify: a sync
    // caller must not need an executor, an async one must not block one.
    landed: Condvar,
    notify: Notify,
}

/// The computing caller's duty to land its flight; dropping it (a panic or
/// a cancelled future) lands the flight as failed.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: Arc<str>,
    flight: Arc<Flight>,
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut in_air = lock(&self.in_air);
        if let Some(flight) = in_air.get(key) {
            return Role::Wait(Arc::clone(flight));
        }
        let key: Arc<str> = Arc::from(key);
        let flight = Arc::new(Flight::default());
        in_air.insert(Arc::clone(&key), Arc::clone(&flight));
        Role::Lead(Leader {
            flights: self,
            key,
            flight,
        })
    }

    /// Takes a stalled flight off the air so the next caller leads afresh
    /// instead of queueing behind a leader that may never land.
    pub(crate) fn abandon(&self, key: &str, flight: &Arc<Flight>) {
        let mut in_air = lock(&self.in_air);
        if in_air
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            in_air.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.in_air).len()
    }
}

impl Leader<'_> {
    /// Hands `bytes` (a sealed envelope) to the waiters; `None` sends them to compute.
    pub(crate) fn land(self, bytes: Option<Bytes>) {
        self.finish(bytes);
    }

    fn finish(&self, bytes: Option<Bytes>) {
        {
            let mut in_air = lock(&self.flights.in_air);
            if in_air
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                in_air.remove(&self.key);
            }
        }
        let mut landing = lock(&self.flight.landing);
        if landing.is_none() {
            *landing = Some(bytes);
        }
        drop(landing);
        self.flight.landed.notify_all();
        self.flight.notify.notify_waiters();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // After `land` this is a no-op: the landing is already set.
        self.finish(None);
    }
}

impl Flight {
    /// The leader's bytes; `None` if it produced nothing to share or did
    /// not land within `limit` (a stalled leader must not hang its waiters).
    pub(crate) async fn wait(&self, limit: Duration) -> Landing {
        match within(limit, self.landing()).await {
            Some(Some(bytes)) => Landing::Shared(bytes),
            Some(None) => Landing::Empty,
            None => Landing::Stalled,
        }
    }

    async fn landing(&self) -> Option<Bytes> {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before checking, so a landing in between is not missed.
            notified.as_mut().enable();
            if let Some(landing) = lock(&self.landing).clone() {
                return landing;
            }
            notified.await;
        }
    }

    /// [`wait`](Flight::wait) for sync callers.
    pub(crate) fn wait_blocking(&self, limit: Duration) -> Landing {
        let deadline = Instant::now().checked_add(limit);
        let mut landing = lock(&self.landing);
        loop {
            match landing.clone() {
                Some(Some(bytes)) => return Landing::Shared(bytes),
                Some(None) => return Landing::Empty,
                None => {}
            }
            let left = deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Landing::Stalled;
            }
            landing = self
                .landed
                .wait_timeout(landing, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a panic
    // elsewhere does not make it unusable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_caller_waits_for_the_first() {
        let flights = Flights::default();
        let Role::Lead(leader) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Role::Wait(flight) = flights.join("k") else {
            panic!("second caller waits")
        };
        let waiter = std::thread::spawn(move || flight.wait_blocking(Duration::from_secs(10)));
        leader.land(Some(Arc::from(&b"bytes"[..])));
        assert_eq!(
            waiter.join().unwrap(),
            Landing::Shared(Arc::from(&b"bytes"[..]))
        );
        assert_eq!(flights.len(), 0, "the key is free again");
    }

    #[test]
    fn a_dropped_leader_releases_waiters_empty_handed() {
        let flights = Flights::default();
        let Role::Lead(leader) = flights.join("k") else {
            panic!()
        };
        let Role::Wait(flight) = flights.join("k") else {
            panic!()
        };
        drop(leader);
        assert_eq!(
            flight.wait_blocking(Duration::from_secs(10)),
            Landing::Empty
        );
        assert!(matches!(flights.join("k"), Role::Lead(_)), "not poisoned");
    }

    #[tokio::test]
    async fn a_stalled_leader_releases_waiters_at_the_limit() {
        let flights = Flights::default();
        let Role::Lead(_stalled) = flights.join("k") else {
            panic!()
        };
        let Role::Wait(flight) = flights.join("k") else {
            panic!()
        };
        assert_eq!(
            flight.wait(Duration::from_millis(20)).await,
            Landing::Stalled
        );
        assert_eq!(
            flight.wait_blocking(Duration::from_millis(20)),
            Landing::Stalled
        );
        flights.abandon("k", &flight);
        assert!(
            matches!(flights.join("k"), Role::Lead(_)),
            "the next caller leads afresh"
        );
    }

    #[tokio::test]
    async fn async_waiters_wake() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(leader) = flights.join("k") else {
            panic!()
        };
        let waiters: Vec<_> = (0..10)
            .map(|_| match flights.join("k") {
                Role::Wait(flight) => {
                    tokio::spawn(async move { flight.wait(Duration::from_secs(10)).await })
                }
                Role::Lead(_) => panic!("only one leader"),
            })
            .collect();
        tokio::task::yield_now().await;
        leader.land(Some(Arc::from(&b"v"[..])));
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Landing::Shared(Arc::from(&b"v"[..])));
        }
    }
}
