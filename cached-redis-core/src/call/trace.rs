//! One call's span: the domain, the key's hash part (never the arguments or
//! the value), the outcome and the latency.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::field::Empty;

use super::Site;
use crate::key::CallKey;
use crate::telemetry::Outcome;

pub(super) struct Trace {
    span: tracing::Span,
    /// Read only while the span or debug events are on: otherwise the
    /// clock is not read.
    started: Option<Instant>,
}

impl Trace {
    pub(super) fn start(site: &Site) -> Trace {
        let span = tracing::debug_span!(
            "cached_call",
            domain = site.domain(),
            key = Empty,
            outcome = Empty,
            latency_us = Empty
        );
        let on = !span.is_disabled() || tracing::enabled!(tracing::Level::DEBUG);
        let started = on.then(Instant::now);
        Trace { span, started }
    }

    /// Polls `future` with the span entered, so the body's own events and
    /// spans nest under it; a disabled span is not even entered.
    pub(super) fn poll_in_span<F: Future>(
        &self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        if self.span.is_disabled() {
            return future.poll(cx);
        }
        let _entered = self.span.enter();
        future.poll(cx)
    }

    /// Shows the call's key (its hash part) on the span.
    pub(super) fn record_key(&self, key: &CallKey<'_>) {
        if !self.span.is_disabled() {
            self.span.record("key", key.hash());
        }
    }

    pub(super) fn finish(&self, outcome: Outcome) {
        let Some(started) = self.started else { return };
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let outcome = outcome.label();
        self.span.record("outcome", outcome);
        self.span.record("latency_us", latency_us);
        tracing::debug!(outcome, latency_us, "cached call");
    }
}
