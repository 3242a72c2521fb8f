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
//! every other call keeps falling back until the probe's answer is in.

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
    /// This operation is the half-open probe.
    Probe,
}

pub(crate) struct Breaker {
    failures_to_open: u32,
    open_for: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// What an admitted operation showed about Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// Redis answered.
    Healthy,
    /// Redis failed or did not answer in time.
    Failed,
    /// Nothing was learned: the operation never had a fair chance to reach
    /// Redis (it waited too long in our own queue, or was abandoned).
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
    pub(crate) fn new(failures_to_open: u32, open_for: Duration) -> Breaker {
        Breaker {
            failures_to_open: failures_to_open.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether an operation may contact Redis now.
    pub(crate) fn admit(&self) -> Option<Pass> {
        let mut state = self.lock();
        match &*state {
            State::Closed { .. } => Some(Pass::Normal),
            State::Open { until } if Instant::now() >= *until => {
                *state = State::HalfOpen;
                Some(Pass::Probe)
            }
            State::Open { .. } | State::HalfOpen => None,
        }
    }

    /// Records an admitted operation's result.
    pub(crate) fn record(&self, pass: Pass, evidence: Evidence) -> Option<Transition> {
        let mut state = self.lock();
        match (&mut *state, pass, evidence) {
            (State::HalfOpen, Pass::Probe, Evidence::Healthy) => {
                *state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            (State::HalfOpen, Pass::Probe, Evidence::Failed) => {
                *state = State::Open {
                    until: self.reopen_at(),
                };
                Some(Transition::Reopened)
            }
            // The probe taught nothing: let the next call probe instead.
            (State::HalfOpen, Pass::Probe, Evidence::None) => {
                *state = State::Open {
                    until: Instant::now(),
                };
                None
            }
            (State::Closed { failures }, Pass::Normal, Evidence::Healthy) => {
                *failures = 0;
                None
            }
            (State::Closed { failures }, Pass::Normal, Evidence::Failed) => {
                *failures += 1;
                if *failures >= self.failures_to_open {
                    *state = State::Open {
                        until: self.reopen_at(),
                    };
                    Some(Transition::Opened)
                } else {
                    None
                }
            }
            // A normal operation admitted before the breaker opened, finishing
            // late: the state already reflects newer evidence.
            _ => None,
        }
    }

    fn reopen_at(&self) -> Instant {
        // The window is bounded by configuration (at most a day), so this
        // cannot overflow; saturate anyway rather than panic.
        let now = Instant::now();
        now.checked_add(self.open_for).unwrap_or(now)
    }

    /// The current state (an expired open window reads as half-open: the next call probes).
    pub(crate) fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::HalfOpen => BreakerState::HalfOpen,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is valid after any panic: every update is a single assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(20);

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
        let breaker = Breaker::new(3, WINDOW);
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
        let breaker = Breaker::new(1, WINDOW);
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        wait_out_window(&breaker);
        assert_eq!(breaker.admit(), Some(Pass::Probe));
        for _ in 0..10 {
            assert_eq!(breaker.admit(), None, "only one probe at a time");
        }
        assert_eq!(
            breaker.record(Pass::Probe, Evidence::Failed),
            Some(Transition::Reopened)
        );
        assert_eq!(breaker.state(), BreakerState::Open);
        wait_out_window(&breaker);
        assert_eq!(breaker.admit(), Some(Pass::Probe));
        assert_eq!(
            breaker.record(Pass::Probe, Evidence::Healthy),
            Some(Transition::Closed)
        );
        assert_eq!(breaker.admit(), Some(Pass::Normal));
    }

    #[test]
    fn late_results_do_not_override_newer_state() {
        let breaker = Breaker::new(1, WINDOW);
        let late = breaker.admit().unwrap();
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        assert_eq!(breaker.record(late, Evidence::Healthy), None);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_probe_without_evidence_hands_over_to_the_next_call() {
        let breaker = Breaker::new(1, WINDOW);
        assert_eq!(fail(&breaker), Some(Transition::Opened));
        wait_out_window(&breaker);
        assert_eq!(breaker.admit(), Some(Pass::Probe));
        assert_eq!(breaker.record(Pass::Probe, Evidence::None), None);
        assert_eq!(
            breaker.admit(),
            Some(Pass::Probe),
            "no new window: the next call probes"
        );
    }

    #[test]
    fn a_backlog_is_not_a_failure() {
        let breaker = Breaker::new(1, WINDOW);
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
