//! Single-flight: concurrent calls for one key share at most one computation.
//!
//! A call joins its key's flight only after its lookup missed, so hits never
//! pay for coordination. The first caller to join leads: it runs the body.
//! Callers joining meanwhile wait and receive the leader's sealed bytes,
//! which each decodes (and validates against its own key digest) into its
//! own value. If the leader produces nothing storable — an `Err`, a `None`,
//! a panic, or a cancelled future — the waiters of that flight each run
//! their own body, so one failure is never shared and never serializes the
//! callers behind it; the key is free for the next caller. A waiter gives up
//! after `single_flight_wait` (10 s), takes the stalled flight off the air
//! and starts over (it may lead a new flight), so a leader that stalls — a
//! future kept but no longer polled — costs the callers behind it one wait
//! at most, and later callers nothing.
//!
//! A caller whose lookup missed just before another flight of its key
//! landed would lead a new flight and compute again. The landing log tells
//! it: every stored value bumps a sequence number and its key's slot, and a
//! leader whose slot moved since its lookup began looks again first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::io::io;
use crate::memory::Bytes;

/// Slots of the landing log; keys share slots by digest, which only ever
/// costs an extra lookup.
const SLOTS: usize = 64;

pub(crate) struct Flights {
    in_air: Mutex<HashMap<Arc<[u8]>, Arc<Flight>>>,
    landings: AtomicU64,
    slots: [AtomicU64; SLOTS],
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
    // Works under any executor, and under the sync callers' parker.
    notify: Notify,
}

/// The computing caller's duty to land its flight; dropping it (a panic or
/// a cancelled future) lands the flight as failed.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: Arc<[u8]>,
    flight: Arc<Flight>,
    landed: bool,
}

impl Default for Flights {
    fn default() -> Self {
        Flights {
            in_air: Mutex::default(),
            landings: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Flights {
    /// A mark to compare against after a miss (see [`Flights::landed_since`]).
    pub(crate) fn mark(&self) -> u64 {
        self.landings.load(Ordering::SeqCst)
    }

    /// Notes that a value of the key with this digest was just stored here.
    /// Called after the value is where a lookup finds it.
    pub(crate) fn landed(&self, digest: &[u8; 32]) {
        let seq = self.landings.fetch_add(1, Ordering::SeqCst) + 1;
        self.slots[slot(digest)].fetch_max(seq, Ordering::SeqCst);
    }

    /// Whether a value of this key (or of one sharing its slot) was stored
    /// since `mark` was taken.
    pub(crate) fn landed_since(&self, digest: &[u8; 32], mark: u64) -> bool {
        self.slots[slot(digest)].load(Ordering::SeqCst) > mark
    }

    pub(crate) fn join(&self, key: &[u8]) -> Role<'_> {
        let mut in_air = lock(&self.in_air);
        if let Some(flight) = in_air.get(key) {
            return Role::Wait(Arc::clone(flight));
        }
        let key: Arc<[u8]> = Arc::from(key);
        let flight = Arc::new(Flight::default());
        in_air.insert(Arc::clone(&key), Arc::clone(&flight));
        Role::Lead(Leader {
            flights: self,
            key,
            flight,
            landed: false,
        })
    }

    /// Takes a stalled flight off the air so the next caller leads afresh
    /// instead of queueing behind a leader that may never land.
    pub(crate) fn abandon(&self, key: &[u8], flight: &Arc<Flight>) {
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

fn slot(digest: &[u8; 32]) -> usize {
    usize::from(digest[0]) % SLOTS
}

impl Leader<'_> {
    /// Hands `bytes` (a sealed envelope) to the waiters; `None` sends them to compute.
    pub(crate) fn land(mut self, bytes: Option<Bytes>) {
        self.finish(bytes);
    }

    fn finish(&mut self, bytes: Option<Bytes>) {
        self.landed = true;
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
        self.flight.notify.notify_waiters();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.landed {
            self.finish(None);
        }
    }
}

impl Flight {
    /// The leader's bytes; `Empty` if it produced nothing to share, `Stalled`
    /// if it did not land within `limit` (a stalled leader must not hang
    /// its waiters). Without the cache's timer thread there is no timer to
    /// bound the wait, so the caller does not wait at all.
    pub(crate) async fn wait(&self, limit: Duration) -> Landing {
        let Some(io) = io() else {
            return Landing::Empty;
        };
        let landing = match Instant::now().checked_add(limit) {
            Some(deadline) => io.timeout(deadline, self.landing()).await,
            // A limit too long to express is no limit.
            None => Ok(self.landing().await),
        };
        match landing {
            Ok(Some(bytes)) => Landing::Shared(bytes),
            Ok(None) => Landing::Empty,
            Err(_) => Landing::Stalled,
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
        let Role::Lead(leader) = flights.join(b"k") else {
            panic!("first caller leads")
        };
        let Role::Wait(flight) = flights.join(b"k") else {
            panic!("second caller waits")
        };
        let waiter =
            std::thread::spawn(move || crate::park::block_on(flight.wait(Duration::from_secs(10))));
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
        let Role::Lead(leader) = flights.join(b"k") else {
            panic!()
        };
        let Role::Wait(flight) = flights.join(b"k") else {
            panic!()
        };
        drop(leader);
        assert_eq!(
            crate::park::block_on(flight.wait(Duration::from_secs(10))),
            Landing::Empty
        );
        assert!(matches!(flights.join(b"k"), Role::Lead(_)), "not poisoned");
    }

    #[tokio::test]
    async fn a_stalled_leader_releases_waiters_at_the_limit() {
        let flights = Flights::default();
        let Role::Lead(_stalled) = flights.join(b"k") else {
            panic!()
        };
        let Role::Wait(flight) = flights.join(b"k") else {
            panic!()
        };
        assert_eq!(
            flight.wait(Duration::from_millis(20)).await,
            Landing::Stalled
        );
        flights.abandon(b"k", &flight);
        assert!(
            matches!(flights.join(b"k"), Role::Lead(_)),
            "the next caller leads afresh"
        );
    }

    #[test]
    fn the_landing_log_tells_a_late_caller_to_look_again() {
        let flights = Flights::default();
        let (ours, other) = ([1; 32], [2; 32]);
        let mark = flights.mark();
        assert!(!flights.landed_since(&ours, mark));
        flights.landed(&other);
        assert!(!flights.landed_since(&ours, mark), "another slot moved");
        flights.landed(&ours);
        assert!(flights.landed_since(&ours, mark));
        assert!(
            !flights.landed_since(&ours, flights.mark()),
            "nothing since"
        );
    }

    #[tokio::test]
    async fn async_waiters_wake() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(leader) = flights.join(b"k") else {
            panic!()
        };
        let waiters: Vec<_> = (0..10)
            .map(|_| match flights.join(b"k") {
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
