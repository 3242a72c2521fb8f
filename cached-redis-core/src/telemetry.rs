//! Counters, Prometheus-style metrics and rate-limited warnings, in one place.
//!
//! Metrics go through the `metrics` facade, so the application chooses the
//! exporter (or none: then the macros cost an atomic load). The same figures
//! are kept in plain counters for [`Runtime::stats`](crate::Runtime::stats).
//! Metric names and labels: `docs/observability.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::breaker::BreakerState;
use crate::stats::{Counters, Stats, Tally};
use crate::store::StoreError;

/// At most one warning of a kind per this period; the rest are counted and
/// reported with the next one, so an outage cannot flood the log.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counters created at zero when a domain is first seen.
const ZEROED: [&str; 8] = [
    "cache_redis_hits_total",
    "cache_redis_misses_total",
    "cache_memory_hits_total",
    "cache_redis_corrupt_total",
    "cache_writes_dropped_total",
    "cache_bypassed_total",
    "cache_redis_skipped_total",
    "cache_coalesced_total",
];

#[derive(Default)]
pub(crate) struct Telemetry {
    total: Counters,
    domains: RwLock<HashMap<&'static str, Arc<Counters>>>,
    breaker: AtomicU8,
    warnings: Mutex<HashMap<&'static str, (Option<Instant>, u64)>>,
}

impl Telemetry {
    pub(crate) fn record(&self, domain: &'static str, tally: Tally) {
        self.tally(domain, tally);
        let name = match tally {
            Tally::RedisHit => "cache_redis_hits_total",
            Tally::RedisMiss => "cache_redis_misses_total",
            Tally::MemoryHit => "cache_memory_hits_total",
            Tally::Corrupt => {
                // A corrupt entry is also a Redis error (kind "corrupt"), in
                // the plain counters as in the metrics.
                self.tally(domain, Tally::RedisError);
                metrics::counter!("cache_redis_errors_total", "domain" => domain, "kind" => "corrupt").increment(1);
                "cache_redis_corrupt_total"
            }
            Tally::WriteDropped => "cache_writes_dropped_total",
            Tally::Bypass => "cache_bypassed_total",
            Tally::RedisSkipped => "cache_redis_skipped_total",
            Tally::Coalesced => "cache_coalesced_total",
            // Counted with their details by `compute` and `redis_error`.
            Tally::Compute | Tally::RedisError => return,
        };
        metrics::counter!(name, "domain" => domain).increment(1);
    }

    /// Bumps the plain counters (total and the domain's) behind `stats()`.
    fn tally(&self, domain: &'static str, tally: Tally) {
        self.total.bump(tally);
        self.counters(domain).bump(tally);
    }

    /// One call ended with `outcome` (the span's outcome): the series the
    /// hit-ratio query divides, present for every outcome a domain has seen.
    pub(crate) fn call(&self, domain: &'static str, outcome: &'static str) {
        metrics::counter!("cache_calls_total", "domain" => domain, "outcome" => outcome)
            .increment(1);
    }

    /// The body ran for `elapsed`.
    pub(crate) fn compute(&self, domain: &'static str, elapsed: Duration) {
        self.tally(domain, Tally::Compute);
        metrics::histogram!("cache_compute_seconds", "domain" => domain)
            .record(elapsed.as_secs_f64());
    }

    /// A Redis operation failed.
    pub(crate) fn redis_error(&self, domain: &'static str, error: &StoreError) {
        self.tally(domain, Tally::RedisError);
        metrics::counter!("cache_redis_errors_total", "domain" => domain, "kind" => error_kind(error)).increment(1);
    }

    /// A Redis round trip, as the caller saw it (success or not).
    pub(crate) fn redis_op(&self, domain: &'static str, op: &'static str, elapsed: Duration) {
        metrics::histogram!("cache_redis_op_seconds", "domain" => domain, "op" => op)
            .record(elapsed.as_secs_f64());
    }

    /// The breaker's state, published for every domain: they share one Redis.
    pub(crate) fn breaker(&self, state: BreakerState) {
        self.breaker.store(state.as_gauge(), Ordering::Relaxed);
        let domains: Vec<&'static str> = self.read_domains().keys().copied().collect();
        for domain in domains {
            metrics::gauge!("cache_breaker_state", "domain" => domain)
                .set(f64::from(state.as_gauge()));
        }
    }

    /// Logs a warning unless one of this `kind` went out recently; then it
    /// is only counted, and the count goes out with the next one.
    pub(crate) fn warn(&self, kind: &'static str, emit: impl FnOnce(u64)) {
        let now = Instant::now();
        let mut warnings = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, suppressed) = warnings.entry(kind).or_insert((None, 0));
        if last.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
            let count = std::mem::take(suppressed);
            *last = Some(now);
            drop(warnings);
            emit(count);
        } else {
            *suppressed += 1;
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let domains = self
            .read_domains()
            .iter()
            .map(|(name, counters)| ((*name).to_owned(), counters.snapshot()))
            .collect();
        Stats {
            total: self.total.snapshot(),
            domains,
        }
    }

    fn counters(&self, domain: &'static str) -> Arc<Counters> {
        if let Some(counters) = self.read_domains().get(domain) {
            return Arc::clone(counters);
        }
        let mut domains = self.domains.write().unwrap_or_else(PoisonError::into_inner);
        let counters = domains.entry(domain).or_insert_with(|| {
            // A new domain learns the breaker's current state, and its
            // counters exist at zero from the start, so queries adding
            // series never lose a domain for lack of one.
            let state = f64::from(self.breaker.load(Ordering::Relaxed));
            metrics::gauge!("cache_breaker_state", "domain" => domain).set(state);
            for name in ZEROED {
                metrics::counter!(name, "domain" => domain).increment(0);
            }
            Arc::default()
        });
        Arc::clone(counters)
    }

    fn read_domains(&self) -> std::sync::RwLockReadGuard<'_, HashMap<&'static str, Arc<Counters>>> {
        self.domains.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `kind` label of `cache_redis_errors_total`.
pub(crate) fn error_kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::Timeout(_) => "timeout",
        StoreError::Overloaded => "overloaded",
        StoreError::WrongType => "corrupt",
        StoreError::CircuitOpen => "circuit_open",
        StoreError::IoUnavailable => "io_thread",
        StoreError::Redis(err) => {
            if err.kind() == redis::ErrorKind::AuthenticationFailed || err.code() == Some("NOAUTH")
            {
                "auth"
            } else if err.is_connection_refusal()
                || err.is_connection_dropped()
                || err.is_io_error()
            {
                "connection"
            } else if err.code().is_some() {
                "server"
            } else {
                "protocol"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_suppress() {
        let telemetry = Telemetry::default();
        let mut emitted = Vec::new();
        for _ in 0..100 {
            telemetry.warn("corrupt", |suppressed| emitted.push(suppressed));
        }
        assert_eq!(emitted, vec![0], "one line for a hundred events");
        telemetry.warn("key", |suppressed| emitted.push(suppressed));
        assert_eq!(emitted, vec![0, 0], "kinds are limited separately");
        let warnings = telemetry.warnings.lock().unwrap();
        assert_eq!(warnings.get("corrupt").map(|(_, n)| *n), Some(99));
    }

    #[test]
    fn stats_are_kept_per_domain_and_in_total() {
        let telemetry = Telemetry::default();
        telemetry.record("natal", Tally::RedisHit);
        telemetry.record("natal", Tally::RedisMiss);
        telemetry.record("transit", Tally::MemoryHit);
        let stats = telemetry.snapshot();
        assert_eq!(stats.domain("natal").redis_hits, 1);
        assert_eq!(stats.domain("transit").memory_hits, 1);
        assert_eq!(stats.total.redis_hits + stats.total.memory_hits, 2);
        assert_eq!(stats.domain("natal").hit_ratio(), Some(1.0));
        assert_eq!(stats.domain("absent"), Default::default());
    }
}
