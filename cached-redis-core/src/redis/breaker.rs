//! A circuit breaker in front of Redis.
//!
//! ```text
//!            N consecutive failures                 open window over
//!  Closed ─────────────────────────▶ Open ─────────────────────────▶ HalfOpen
//!    ▲                                ▲                                 │
//!    │         probe succeeded        │          probe failed           │
//!    └────────────────────────────────┼─────────────────────────────────┤
//!                                     └─────────────────────────────────┘
//! ```
//!
//! While open, Redis is not contacted at all and calls cost what the memory
//! cache costs. After the window exactly one call, the probe, goes to Redis;
//! every other call keeps falling back until the probe's answer is in. A
//! probe that never answers — its caller's future kept but no longer polled
//! — is replaced by a new one once `probe_limit` has passed, so a stalled
//! caller cannot hold the breaker half-open.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The breaker's state, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Redis is used.
    Closed,
    /// One probe is testing Redis; other calls fall back.
    HalfOpen,
    /// Redis is not contacted until the open window is over.
    Open,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open (the `cache_breaker_state` gauge).
    pub fn as_gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// Permission to contact Redis; hand it back through [`Breaker::record`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Pass {
    /// The breaker is closed.
    Normal,
    /// This operation is the half-open probe with this ticket.
    Probe(u64),
}

pub(crate) struct Breaker {
    failures_to_open: u32,
    open_for: Duration,
    probe_limit: Duration,
    state: Mutex<Inner>,
}

struct Inner {
    state: State,
    /// The next probe's ticket: never reused, so the late answer of a
    /// replaced probe can never pass for the current one's.
    next_probe: u64,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe: u64, expires: Instant },
}

/// What an admitted operation showed about Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// Redis answered.
    Healthy,
    /// Redis failed or did not answer in time.
    Failed,
    /// Nothing was learned: the operation was abandoned before it finished.
    None,
}

/// What a transition did, so the caller can log it (outside the lock) and
/// drop a connection that is no longer trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Opened,
    Reopened,
    Closed,
}

impl Breaker {
    /// A breaker that opens after `failures_to_open` consecutive failures for
    /// `open_for`, and replaces a probe that has not answered in `probe_limit`.
    pub(crate) fn new(failures_to_open: u32, open_for: Duration, probe_limit: Duration) -> Breaker {
        Breaker {
            failures_to_open: failures_to_open.max(1),
            open_for,
            probe_limit,
            state: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                next_probe: 0,
            }),
        }
    }

    /// A new, closed breaker with the same settings.
    pub(crate) fn like(&self) -> Breaker {
        Breaker::new(self.failures_to_open, self.open_for, self.probe_limit)
    }

    /// Whether an operation may contact Redis now.
    pub(crate) fn admit(&self) -> Option<Pass> {
        let mut inner = self.lock();
        let now = Instant::now();
        match &inner.state {
            State::Closed { .. } => Some(Pass::Normal),
            State::Open { until } if now < *until => None,
            State::HalfOpen { expires, .. } if now < *expires => None,
            // The window is over, or the probe stalled: this call probes.
            State::Open { .. } | State::HalfOpen { .. } => {
                let probe = inner.next_probe;
                inner.next_probe = probe.wrapping_add(1);
                inner.state = State::HalfOpen {
                    probe,
                    expires: later(now, self.probe_limit),
                };
                Some(Pass::Probe(probe))
            }
        }
    }

    /// Records an admitted operation's result.
    pub(crate) fn record(&self, pass: Pass, evidence: Evidence) -> Option<Transition> {
        let mut inner = self.lock();
        let state = &mut inner.state;
        match (&mut *state, pass, evidence) {
            (State::HalfOpen { probe, .. }, Pass::Probe(ticket), evidence) if *probe == ticket => {
                match evidence {
                    Evidence::Healthy => {
                        *state = State::Closed { failures: 0 };
                        Some(Transition::Closed)
                    }
                    Evidence::Failed => {
                        *state = State::Open {
                            until: later(Instant::now(), self.open_for),
                        };
                        Some(Transition::Reopened)
                    }
                    // The probe taught nothing: let the next call probe instead.
                    Evidence::None => {
                        *state = State::Open {
                            until: Instant::now(),
                        };
                        None
                    }
                }
            }
            (State::Closed { failures }, Pass::Normal, Evidence::Healthy) => {
                *failures = 0;
                None
            }
            (State::Closed { failures }, Pass::Normal, Evidence::Failed) => {
                *failures += 1;
                if *failures >= self.failures_to_open {
                    *state = State::Open {
                        until: later(Instant::now(), self.open_for),
                    };
                    Some(Transition::Opened)
                } else {
                    None
                }
            }
            // A result from before the state changed (an operation admitted
            // while closed, a replaced probe): the state already reflects
            // newer evidence.
            _ => None,
        }
    }

    /// The current state (an expired open window reads as half-open: the next call probes).
    pub(crate) fn state(&self) -> BreakerState {
        match &self.lock().state {
            State::Closed { .. } => BreakerState::Closed,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is valid after any panic: every update is a single assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `now + by`. Configuration bounds windows to a day, so this cannot
/// overflow; were it to, a panic would take a caller down, and a window
/// that ends at once only costs one more probe.
fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that a test preempted between two steps (a loaded
    /// machine, the coverage run) does not see the window pass between them.
    const WINDOW: Duration = Duration::from_millis(200);
    /// Longer than any test waits: probes never expire unless a test says so.
    const PATIENT: Duration = Duration::from_secs(3600);

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(failures, WINDOW, PATIENT)
    }

    fn fail(breaker: &Breaker) -> Option<Transition> {
        let pass = breaker.admit().expect("admitted");
        breaker.record(pass, Evidence::Failed)
    }

    fn wait_out_window(breaker: &Breaker) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while breaker.state() == BreakerState::Open && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let breaker = breaker(3);
        assert_eq!(fail(&breaker), None);
        assert_eq!(fail(&breaker), None);
        let pass = breaker.admit().unwrap();
        assert_eq!(
            breaker.record(pass, Evidence::Healthy),
            None,
            "a success resets the count"
        );
        assert_eq!(fail(&breaker), None);
        assert_eq!(fail(&breaker), None);
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit(), None, "no Redis while open");
    }

    #[test]
    fn half_open_admits_exactly_one_probe() {
        let breaker = breaker(1);
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        wait_out_window(&breaker);
        let probe = breaker.admit().expect("the probe");
        assert!(matches!(probe, Pass::Probe(_)));
        for _ in 0..10 {
            assert_eq!(breaker.admit(), None, "only one probe at a time");
        }
        assert_eq!(
            breaker.record(probe, Evidence::Failed),
            Some(Transition::Reopened)
        );
        assert_eq!(breaker.state(), BreakerState::Open);
        wait_out_window(&breaker);
        let probe = breaker.admit().expect("the next probe");
        assert_eq!(
            breaker.record(probe, Evidence::Healthy),
            Some(Transition::Closed)
        );
        assert_eq!(breaker.admit(), Some(Pass::Normal));
    }

    #[test]
    fn late_results_do_not_override_newer_state() {
        let breaker = breaker(1);
        let late = breaker.admit().unwrap();
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        assert_eq!(breaker.record(late, Evidence::Healthy), None);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_probe_without_evidence_hands_over_to_the_next_call() {
        let breaker = breaker(1);
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        wait_out_window(&breaker);
        let probe = breaker.admit().expect("the probe");
        assert_eq!(breaker.record(probe, Evidence::None), None);
        assert!(
            matches!(breaker.admit(), Some(Pass::Probe(_))),
            "no new window: the next call probes"
        );
    }

    #[test]
    fn a_stalled_probe_is_replaced_after_its_limit() {
        let breaker = Breaker::new(1, WINDOW, WINDOW);
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        wait_out_window(&breaker);
        let stalled = breaker.admit().expect("the probe");
        assert_eq!(breaker.admit(), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        let replacement = loop {
            if let Some(pass) = breaker.admit() {
                break pass;
            }
            assert!(
                Instant::now() < deadline,
                "the stalled probe was never replaced"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        assert_ne!(replacement, stalled);
        assert_eq!(
            breaker.record(stalled, Evidence::Failed),
            None,
            "the replaced probe's late answer is ignored"
        );
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(
            breaker.record(replacement, Evidence::Healthy),
            Some(Transition::Closed)
        );
    }

    #[test]
    fn a_replaced_probe_never_passes_for_a_later_one() {
        let breaker = Breaker::new(1, WINDOW, WINDOW);
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        wait_out_window(&breaker);
        let stalled = breaker.admit().expect("the first probe");
        let deadline = Instant::now() + Duration::from_secs(5);
        let dropped = loop {
            if let Some(pass) = breaker.admit() {
                break pass;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(2));
        };
        // The second probe's caller gives up: the next call probes at once.
        assert_eq!(breaker.record(dropped, Evidence::None), None);
        let current = breaker.admit().expect("a third probe");
        assert_eq!(
            breaker.record(stalled, Evidence::Failed),
            None,
            "the first probe's late failure is not the current probe's"
        );
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(
            breaker.record(current, Evidence::Healthy),
            Some(Transition::Closed)
        );
    }

    #[test]
    fn a_backlog_is_not_a_failure() {
        let breaker = breaker(1);
        let pass = breaker.admit().unwrap();
        assert_eq!(breaker.record(pass, Evidence::None), None);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn gauge_values() {
        let states = [
            BreakerState::Closed,
            BreakerState::HalfOpen,
            BreakerState::Open,
        ];
        assert_eq!(states.map(BreakerState::as_gauge), [0, 1, 2]);
    }
}
