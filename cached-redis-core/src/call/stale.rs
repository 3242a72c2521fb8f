//! Fail-safe: a value past its TTL beats an error (`stale_if_error`).
//!
//! With a stale window, an entry is kept that much longer than its TTL
//! (in Redis and in memory; the TTL itself stays in the envelope). A call
//! that finds it past its TTL computes as on a miss, keeping the old value
//! at hand: if the body returns `Err`, panics, or runs past its `timeout`,
//! the old value is returned instead, and counted
//! (`cache_stale_served_total{reason}`) and logged. Without a stale value
//! at hand, the body runs as it always does: no unwinding is caught, no
//! timer is armed.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Instant;

use super::body::{Background, Body, Work};
use super::lookup::Found;
use super::{Call, CallPath, timed};
use crate::io::io;
use crate::memory::Bytes;
use crate::policy::Policy;
use crate::telemetry::{Outcome, StaleReason, WARN_EVERY};

/// What running the body gave a call.
pub(super) enum Ran<O> {
    /// The body's output (a failure too, when nothing could stand in).
    Output(O, std::time::Duration),
    /// The stale value, standing in: the output, how the call ended, and
    /// the sealed bytes, for the callers waiting on this one.
    Stale(O, Outcome, Bytes),
}

impl CallPath {
    /// Runs `body`; with a `stale` value at hand, a body that fails,
    /// panics or passes the function's `timeout` gives way to it. A body
    /// past its `timeout` that can outlive the call (see `body`) goes on
    /// in the background and stores its value when it finishes; one that
    /// borrows the caller's arguments is dropped.
    pub(super) async fn compute<P: Policy, F: Future<Output = P::Output>>(
        &self,
        call: &Call<'_>,
        policy: &P,
        body: Body<P, F>,
        stale: Option<Found<P::Stored>>,
    ) -> Ran<P::Output> {
        let Some(stale) = stale else {
            let (output, took) = timed(body.future).await;
            return Ran::Output(output, took);
        };
        let started = Instant::now();
        let deadline = call
            .terms
            .timeout
            .and_then(|limit| started.checked_add(limit));
        let result = match (body.detachable(), deadline.zip(io())) {
            (Some(spawn), Some((deadline, io))) => {
                let mut body = Box::pin(body.future);
                let result = io.timeout(deadline, CatchUnwind(body.as_mut())).await.ok();
                if result.is_none() {
                    let finish = Work::Finish { started };
                    spawn(Background::new(call.detach(), *policy, body, finish));
                }
                result
            }
            (None, Some((deadline, io))) => io
                .timeout(deadline, CatchUnwind(pin!(body.future)))
                .await
                .ok(),
            (_, None) => Some(CatchUnwind(pin!(body.future)).await),
        };
        let took = started.elapsed();
        let (reason, panic) = match result {
            Some(Ok(output)) if !policy.failed(&output) => return Ran::Output(output, took),
            Some(Ok(_failed)) => (StaleReason::Error, None),
            Some(Err(payload)) => (StaleReason::Panic, panic_message(&*payload)),
            None => (StaleReason::Timeout, None),
        };
        let domain = call.stats.name();
        self.telemetry
            .warn_for("stale", domain, WARN_EVERY, |suppressed| {
                tracing::warn!(
                    domain,
                    key = call.key.hash(),
                    reason = reason.label(),
                    panic = panic.as_deref(),
                    suppressed,
                    "the computation failed; serving the stored value"
                );
            });
        Ran::Stale(
            policy.restore(stale.value),
            Outcome::Stale { took, reason },
            stale.sealed.into_bytes(),
        )
    }
}

/// A panic's message, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

/// Polls a pinned future, turning a panic inside it into an `Err`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future is not polled again after a panic: it is dropped with
        // this call's state, so no broken invariant of it is observed.
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.0).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
