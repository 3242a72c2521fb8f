//! One call's span: the domain, the key's hash part (never the arguments or
//! the value), the outcome and the latency.

use std::time::Instant;

use tracing::field::Empty;

use crate::__private::Site;
use crate::key::CacheKey;
use crate::telemetry::Outcome;

pub(super) struct Trace {
    span: tracing::Span,
    /// Only read when debug events are on: otherwise the clock is not read.
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
        let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
        Trace { span, started }
    }

    pub(super) fn span(&self) -> &tracing::Span {
        &self.span
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

/// Shows the call's key (its hash part) on the current span.
pub(super) fn record_key(key: &CacheKey) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("key", key.hash());
    }
}
