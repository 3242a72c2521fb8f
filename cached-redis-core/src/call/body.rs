//! An async function's body, and whether it may outlive its call.
//!
//! A body that owns all it uses (its future is `Send + 'static`: the
//! function takes its arguments by value) can be moved to a task of its
//! own on the caller's tokio runtime and finish there. Two things use that: an early refresh runs in
//! the background while the caller returns the current value
//! (stale-while-revalidate), and a body past its soft `timeout` keeps
//! running and stores its value when it finishes. A body that borrows the
//! caller's arguments cannot: the refresh then runs in the caller, and a
//! timed-out body is dropped.
//!
//! Whether it can is decided at compile time, by the autoref selection the
//! policies use: generated code calls
//! `(&&Detach::of(&policy, &body)).__cached_redis_detach()`, which yields a
//! function spawning the work when the bounds hold, `None` otherwise.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::Terms;
use super::flight::Role;
use tokio::runtime::Handle;

use crate::key::CallKey;
use crate::policy::Policy;
use crate::runtime::Runtime;
use crate::telemetry::{Domain, Outcome, WARN_EVERY};

/// The body of one call, and how to move it to a task of its own, if it can be.
pub struct Body<P, F> {
    pub(super) future: F,
    pub(super) detach: Option<Spawn<P, F>>,
}

/// Starts `Background` work on the I/O runtime.
pub type Spawn<P, F> = fn(Background<P, F>);

impl<P, F> Body<P, F> {
    /// How to move the body to a task of its own, if it can be: it owns
    /// all it uses, and the caller runs on a tokio runtime to spawn it on —
    /// the body's own executor, not the cache's I/O thread, which a long
    /// computation would stall.
    pub(super) fn detachable(&self) -> Option<Spawn<P, F>> {
        self.detach.filter(|_| Handle::try_current().is_ok())
    }

    /// A body; `detach` as the selection gave it.
    pub fn new(future: F, detach: Option<Spawn<P, F>>) -> Self {
        Body { future, detach }
    }

    /// A body that stays in its call (a sync function's).
    pub fn local(future: F) -> Self {
        Body {
            future,
            detach: None,
        }
    }
}

/// Work on a call's key that outlives the call.
pub struct Background<P, F> {
    call: Detached,
    policy: P,
    body: Pin<Box<F>>,
    work: Work,
}

/// What the background work is.
pub(super) enum Work {
    /// Recompute a value still fresh, unless this process has stored the
    /// key since `mark` (see `Flights::mark`).
    Refresh { mark: u64 },
    /// Finish a body started at `started`, past its soft limit.
    Finish { started: Instant },
}

/// A call's state, owned.
pub(super) struct Detached {
    pub(super) runtime: Runtime,
    pub(super) key: CallKey<'static>,
    pub(super) terms: Terms,
    pub(super) stats: Arc<Domain>,
}

impl<P, F> Background<P, F> {
    pub(super) fn new(call: Detached, policy: P, body: Pin<Box<F>>, work: Work) -> Self {
        Background {
            call,
            policy,
            body,
            work,
        }
    }
}

impl<P: Policy, F: Future<Output = P::Output>> Background<P, F> {
    async fn run(self) {
        let Background {
            call,
            policy,
            body,
            work,
        } = self;
        let Detached {
            runtime,
            key,
            terms,
            stats,
        } = call;
        let call = super::Call {
            key,
            terms,
            stats: &stats,
            runtime: &runtime,
        };
        let path = runtime.call_path();
        let outcome = match work {
            Work::Refresh { mark } => {
                if path.flights.landed_since(call.key.digest(), mark) {
                    return;
                }
                // Another refresh of the key is in the air: it will do.
                let Role::Lead(leader) = path.flights.join(call.key.as_bytes()) else {
                    return;
                };
                let body = Body::local(body);
                let (output, outcome) = path.lead(&call, &policy, body, None, None, leader).await;
                if policy.failed(&output) {
                    path.telemetry
                        .warn_for("refresh", stats.name(), WARN_EVERY, |suppressed| {
                            tracing::warn!(
                                domain = stats.name(),
                                key = call.key.hash(),
                                suppressed,
                                "an early refresh failed; the current value stays"
                            );
                        });
                }
                outcome
            }
            Work::Finish { started } => {
                let output = body.await;
                let took = started.elapsed();
                let (_, write) = path.store(&call, &policy, (&output, took), None);
                Outcome::Computed { took, write }
            }
        };
        stats.call(outcome);
    }
}

/// Names a body and its policy for the choice of whether it may outlive
/// its call.
pub struct Detach<P, F>(PhantomData<fn() -> (P, F)>);

impl<P, F> Detach<P, F> {
    /// The probe for `body` under `policy`.
    pub fn of(_policy: &P, _body: &F) -> Self {
        Detach(PhantomData)
    }
}

/// Selected when the body owns all it uses.
pub trait ViaSend {
    /// The policy.
    type Policy;
    /// The body's future.
    type Future;
    /// How to start background work with the body.
    fn __cached_redis_detach(&self) -> Option<Spawn<Self::Policy, Self::Future>>;
}

/// Selected for every other body.
pub trait ViaLocal {
    /// The policy.
    type Policy;
    /// The body's future.
    type Future;
    /// `None`: the body stays in its call.
    fn __cached_redis_detach(&self) -> Option<Spawn<Self::Policy, Self::Future>>;
}

impl<P, F> ViaSend for &Detach<P, F>
where
    P: Policy + Send + Sync + 'static,
    P::Stored: Send + Sync,
    F: Future<Output = P::Output> + Send + 'static,
    P::Output: Send,
{
    type Policy = P;
    type Future = F;
    fn __cached_redis_detach(&self) -> Option<Spawn<P, F>> {
        Some(|work| {
            if let Ok(runtime) = Handle::try_current() {
                drop(runtime.spawn(work.run()));
            }
        })
    }
}

impl<P, F> ViaLocal for Detach<P, F> {
    type Policy = P;
    type Future = F;
    fn __cached_redis_detach(&self) -> Option<Spawn<P, F>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Plain;

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows are the selection mechanism
    fn only_a_body_that_owns_what_it_uses_may_outlive_its_call() {
        let policy = Plain::<u32>::new();
        let owned = async { 7_u32 };
        assert!(
            (&&Detach::of(&policy, &owned))
                .__cached_redis_detach()
                .is_some()
        );
        // A value that cannot be shared between threads stays in its call.
        let cells = Plain::<std::cell::Cell<u32>>::new();
        let cell = async { std::cell::Cell::new(7_u32) };
        assert!(
            (&&Detach::of(&cells, &cell))
                .__cached_redis_detach()
                .is_none()
        );
        // Without a tokio runtime to spawn on, nothing is detached.
        let detach = (&&Detach::of(&policy, &owned)).__cached_redis_detach();
        let body = Body::new(owned, detach);
        assert!(body.detach.is_some());
        assert!(body.detachable().is_none());
    }
}
