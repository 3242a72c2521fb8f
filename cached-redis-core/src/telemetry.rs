//! What a call, a Redis read and a background write are counted as — in
//! the plain counters behind [`Runtime::stats`](crate::Runtime::stats) and
//! in Prometheus-style metrics — and rate-limited warnings, in one place.
//!
//! Metrics go through the `metrics` facade, so the application chooses the
//! exporter (or none). Every metric key of a domain is built once, when the
//! domain is first seen, so recording allocates nothing. Metric names and
//! labels: `docs/observability.md`.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use metrics::{Key, Label, Level, Metadata};

use crate::redis::{BreakerState, RedisError};
use crate::stats::{Counters, Stats, Tally};

/// At most one warning of a kind per this period; the rest are counted and
/// reported with the next one, so an outage cannot flood the log.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// How a cached call ended: the one record of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Redis had a valid entry.
    RedisHit,
    /// This process had it: the memory cache (Redis off) or a write in flight.
    MemoryHit,
    /// Redis failed or the breaker was open; the memory cache had it.
    Fallback,
    /// A concurrent call of the same key computed it.
    Coalesced,
    /// The body ran for `took`; what became of the Redis write.
    Computed { took: Duration, write: Write },
    /// The cache was skipped (no key, or a type that cannot be read back); the body ran.
    Bypassed { took: Duration },
    /// The body failed (or ran for `took` past its soft limit); a value
    /// past its TTL was returned instead (`stale_if_error`).
    Stale { took: Duration, reason: StaleReason },
}

/// Why a stale value was served: the `reason` label of
/// `cache_stale_served_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaleReason {
    /// The body returned `Err`.
    Error = 0,
    /// The body panicked.
    Panic = 1,
    /// The body ran past its `timeout`.
    Timeout = 2,
}

impl StaleReason {
    pub(crate) fn label(self) -> &'static str {
        STALE_REASONS[self as usize]
    }
}

const STALE_REASONS: [&str; 3] = ["error", "panic", "timeout"];

impl Outcome {
    /// The span's `outcome` field and the `outcome` label of `cache_calls_total`.
    pub(crate) fn label(self) -> &'static str {
        OUTCOMES[self.index()]
    }

    fn index(self) -> usize {
        match self {
            Outcome::RedisHit => 0,
            Outcome::MemoryHit => 1,
            Outcome::Fallback => 2,
            Outcome::Coalesced => 3,
            Outcome::Computed { .. } => 4,
            Outcome::Bypassed { .. } => 5,
            Outcome::Stale { .. } => 6,
        }
    }
}

const OUTCOMES: [&str; 7] = [
    "hit",
    "memory_hit",
    "fallback",
    "coalesced",
    "miss",
    "bypass",
    "stale",
];

/// What became of a computed value's Redis write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Nothing to write: not storable, or Redis off.
    None,
    /// Started behind the caller.
    Started,
    /// Dropped: too many writes in flight.
    Dropped,
    /// Not attempted: the breaker is not closed.
    Skipped,
}

/// Why an entry read from Redis was not used: the `reason` label of
/// `cache_redis_corrupt_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corrupt {
    /// Damaged bytes, or bytes not written by cached-redis.
    Damaged = 0,
    /// A non-string Redis value at the key.
    WrongType = 1,
    /// Unsigned, or an HMAC that does not verify.
    Hmac = 2,
    /// A valid entry of another key input (a short-hash collision).
    Foreign = 3,
}

const CORRUPT_REASONS: [&str; 4] = ["damaged", "wrong_type", "hmac", "foreign"];

/// What one Redis read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Hit,
    Miss,
    /// An entry that failed validation (purged), or a valid entry of
    /// another key input (left alone).
    Corrupt(Corrupt),
    /// The breaker is open: Redis was not contacted.
    Skipped,
    /// The read failed (error kind, as in `cache_redis_errors_total`).
    Failed(&'static str),
}

const ERROR_KINDS: [&str; 7] = [
    "timeout",
    "connection",
    "auth",
    "server",
    "protocol",
    "corrupt",
    "io_thread",
];

/// The counter a tally also bumps, where it has one of its own (computes
/// are `cache_calls_total{outcome="miss"}` and the compute histogram;
/// errors carry a `kind`). These are created at zero when a domain is first
/// seen, so sums over several never lose a domain for lack of a series.
fn metric(tally: Tally) -> Option<&'static str> {
    Some(match tally {
        Tally::RedisHit => "cache_redis_hits_total",
        Tally::RedisMiss => "cache_redis_misses_total",
        Tally::MemoryHit => "cache_memory_hits_total",
        Tally::WriteDropped => "cache_writes_dropped_total",
        Tally::Bypass => "cache_bypassed_total",
        Tally::RedisSkipped => "cache_redis_skipped_total",
        Tally::Coalesced => "cache_coalesced_total",
        Tally::Oversize => "cache_oversize_total",
        Tally::Unencodable => "cache_unencodable_total",
        Tally::Compute | Tally::RedisError | Tally::Corrupt | Tally::Stale => return None,
    })
}

/// When a kind of warning last went out, and how many were held back since.
type Warned = (Option<Instant>, u64);

#[derive(Default)]
pub(crate) struct Telemetry {
    total: Arc<Counters>,
    domains: RwLock<HashMap<&'static str, Arc<Domain>>>,
    breaker: AtomicU8,
    /// Per kind of warning, then per subject (a domain, a cluster node;
    /// "" for none): when one last went out, and how many were held back since.
    warnings: Mutex<HashMap<&'static str, HashMap<Box<str>, Warned>>>,
}

/// One domain's counters and metric keys.
pub(crate) struct Domain {
    name: &'static str,
    counters: Counters,
    total: Arc<Counters>,
    calls: [Key; OUTCOMES.len()],
    stale: [Key; STALE_REASONS.len()],
    errors: [Key; 7],
    corrupt: [Key; CORRUPT_REASONS.len()],
    tallies: [Option<Key>; Tally::ALL.len()],
    compute_seconds: Key,
    get_seconds: Key,
    set_seconds: Key,
    breaker: Key,
}

impl Telemetry {
    /// The domain's handle, made (and its counters created at zero) on first use.
    pub(crate) fn domain(&self, name: &'static str) -> Arc<Domain> {
        if let Some(domain) = self.read_domains().get(name) {
            return Arc::clone(domain);
        }
        let mut domains = self.domains.write().unwrap_or_else(PoisonError::into_inner);
        let domain = domains.entry(name).or_insert_with(|| {
            let domain = Domain::new(name, Arc::clone(&self.total));
            metrics::with_recorder(|recorder| {
                let zeroed = domain.tallies.iter().flatten();
                for key in zeroed.chain(&domain.corrupt).chain(&domain.stale) {
                    recorder.register_counter(key, &METADATA).increment(0);
                }
                // A new domain learns the breaker's current state.
                recorder
                    .register_gauge(&domain.breaker, &METADATA)
                    .set(f64::from(self.breaker.load(Ordering::Relaxed)));
            });
            Arc::new(domain)
        });
        Arc::clone(domain)
    }

    /// The breaker's state, published for every domain: they share one Redis.
    pub(crate) fn breaker(&self, state: BreakerState) {
        self.breaker.store(state.as_gauge(), Ordering::Relaxed);
        let domains: Vec<Arc<Domain>> = self.read_domains().values().cloned().collect();
        metrics::with_recorder(|recorder| {
            for domain in domains {
                recorder
                    .register_gauge(&domain.breaker, &METADATA)
                    .set(f64::from(state.as_gauge()));
            }
        });
    }

    /// Logs a warning unless one of this `kind` went out recently; then it
    /// is only counted, and the count goes out with the next one.
    pub(crate) fn warn(&self, kind: &'static str, emit: impl FnOnce(u64)) {
        self.warn_for(kind, "", WARN_EVERY, emit);
    }

    /// [`warn`](Self::warn), limited per subject (a domain, a cluster
    /// node) rather than per kind only, at most once `every`.
    pub(crate) fn warn_for(
        &self,
        kind: &'static str,
        subject: &str,
        every: Duration,
        emit: impl FnOnce(u64),
    ) {
        let now = Instant::now();
        let mut warnings = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        let subjects = warnings.entry(kind).or_default();
        if !subjects.contains_key(subject) {
            subjects.insert(subject.into(), (None, 0));
        }
        let Some((last, suppressed)) = subjects.get_mut(subject) else {
            return;
        };
        if last.is_none_or(|last| now.duration_since(last) >= every) {
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
            .values()
            .map(|domain| (domain.name.to_owned(), domain.counters.snapshot()))
            .collect();
        Stats {
            total: self.total.snapshot(),
            domains,
        }
    }

    fn read_domains(&self) -> std::sync::RwLockReadGuard<'_, HashMap<&'static str, Arc<Domain>>> {
        self.domains.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call site's domain handle, kept for the runtime that first used the
/// site, so a call neither locks nor hashes to find it. Other runtimes
/// calling the same site look theirs up.
pub(crate) struct SiteDomain(OnceLock<(Weak<Telemetry>, Arc<Domain>)>);

/// A domain handle: the site's own, or one looked up for this call.
pub(crate) enum DomainRef<'a> {
    Site(&'a Arc<Domain>),
    Fresh(Arc<Domain>),
}

impl Deref for DomainRef<'_> {
    type Target = Arc<Domain>;

    fn deref(&self) -> &Arc<Domain> {
        match self {
            DomainRef::Site(domain) => domain,
            DomainRef::Fresh(domain) => domain,
        }
    }
}

impl SiteDomain {
    pub(crate) const fn new() -> SiteDomain {
        SiteDomain(OnceLock::new())
    }

    pub(crate) fn get(&self, telemetry: &Arc<Telemetry>, name: &'static str) -> DomainRef<'_> {
        // The `Weak` keeps the telemetry's allocation, so its address
        // cannot be reused by another runtime's: equal pointers, same runtime.
        if let Some((owner, domain)) = self.0.get()
            && std::ptr::eq(owner.as_ptr(), Arc::as_ptr(telemetry))
        {
            return DomainRef::Site(domain);
        }
        let domain = telemetry.domain(name);
        let _ = self.0.set((Arc::downgrade(telemetry), Arc::clone(&domain)));
        DomainRef::Fresh(domain)
    }
}

impl Domain {
    /// The domain's name, for log lines.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    fn new(name: &'static str, total: Arc<Counters>) -> Domain {
        let key = |metric: &'static str, labels: Vec<Label>| Key::from_parts(metric, labels);
        let domain = || Label::from_static_parts("domain", name);
        let with = |label: &'static str, value: &'static str| {
            vec![domain(), Label::from_static_parts(label, value)]
        };
        Domain {
            name,
            counters: Counters::default(),
            total,
            calls: OUTCOMES.map(|outcome| key("cache_calls_total", with("outcome", outcome))),
            errors: ERROR_KINDS.map(|kind| key("cache_redis_errors_total", with("kind", kind))),
            corrupt: CORRUPT_REASONS
                .map(|reason| key("cache_redis_corrupt_total", with("reason", reason))),
            stale: STALE_REASONS
                .map(|reason| key("cache_stale_served_total", with("reason", reason))),
            tallies: Tally::ALL.map(|tally| metric(tally).map(|name| key(name, vec![domain()]))),
            compute_seconds: key("cache_compute_seconds", vec![domain()]),
            get_seconds: key("cache_redis_op_seconds", with("op", "get")),
            set_seconds: key("cache_redis_op_seconds", with("op", "set")),
            breaker: key("cache_breaker_state", vec![domain()]),
        }
    }

    /// Records how a call ended.
    pub(crate) fn call(&self, outcome: Outcome) {
        let tally = match outcome {
            Outcome::RedisHit => Tally::RedisHit,
            Outcome::MemoryHit | Outcome::Fallback => Tally::MemoryHit,
            Outcome::Coalesced => Tally::Coalesced,
            Outcome::Computed { took, write } => {
                if write == Write::Dropped {
                    self.bump(Tally::WriteDropped);
                }
                self.observe(&self.compute_seconds, took);
                Tally::Compute
            }
            Outcome::Bypassed { took } => {
                self.observe(&self.compute_seconds, took);
                self.bump(Tally::Compute);
                Tally::Bypass
            }
            // The body ran (and failed): a computation, answered stale.
            Outcome::Stale { took, reason } => {
                self.observe(&self.compute_seconds, took);
                self.bump(Tally::Compute);
                count(&self.stale[reason as usize]);
                Tally::Stale
            }
        };
        self.counters.bump(tally);
        self.total.bump(tally);
        // Both counters under one look at the recorder: this runs on every hit.
        metrics::with_recorder(|recorder| {
            if let Some(key) = &self.tallies[tally as usize] {
                recorder.register_counter(key, &METADATA).increment(1);
            }
            recorder
                .register_counter(&self.calls[outcome.index()], &METADATA)
                .increment(1);
        });
    }

    /// Counts a value returned but not stored: too large.
    pub(crate) fn oversize(&self) {
        self.bump(Tally::Oversize);
    }

    /// Counts a value returned but not stored: its codec failed on it.
    pub(crate) fn unencodable(&self) {
        self.bump(Tally::Unencodable);
    }

    /// Records one Redis read and how long it took.
    pub(crate) fn read(&self, read: Read, took: Duration) {
        match read {
            Read::Hit => {}
            Read::Miss => self.bump(Tally::RedisMiss),
            Read::Corrupt(reason) => {
                self.bump(Tally::Corrupt);
                count(&self.corrupt[reason as usize]);
                self.error("corrupt");
            }
            // Redis was not contacted: no round trip to time.
            Read::Skipped => return self.bump(Tally::RedisSkipped),
            Read::Failed(kind) => self.error(kind),
        }
        self.observe(&self.get_seconds, took);
    }

    /// Records a background write's round trip and its error, if any.
    pub(crate) fn write(&self, took: Duration, error: Option<&RedisError>) {
        match error {
            // The breaker opened after the write was started: Redis was not contacted.
            Some(RedisError::CircuitOpen) => {}
            Some(error) => {
                self.observe(&self.set_seconds, took);
                self.error(error.kind());
            }
            None => self.observe(&self.set_seconds, took),
        }
    }

    fn error(&self, kind: &'static str) {
        self.bump(Tally::RedisError);
        if let Some(at) = ERROR_KINDS.iter().position(|k| *k == kind) {
            count(&self.errors[at]);
        }
    }

    /// Bumps the plain counters (the domain's and the total) and the tally's metric.
    fn bump(&self, tally: Tally) {
        self.counters.bump(tally);
        self.total.bump(tally);
        if let Some(key) = &self.tallies[tally as usize] {
            count(key);
        }
    }

    fn observe(&self, key: &Key, took: Duration) {
        metrics::with_recorder(|recorder| {
            recorder
                .register_histogram(key, &METADATA)
                .record(took.as_secs_f64());
        });
    }
}

fn count(key: &Key) {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(1));
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
        assert_eq!(
            warnings
                .get("corrupt")
                .and_then(|s| s.get(""))
                .map(|(_, n)| *n),
            Some(99)
        );
    }

    #[test]
    fn stats_are_kept_per_domain_and_in_total() {
        let telemetry = Telemetry::default();
        let natal = telemetry.domain("natal");
        natal.read(Read::Hit, Duration::ZERO);
        natal.call(Outcome::RedisHit);
        natal.read(Read::Miss, Duration::ZERO);
        telemetry.domain("transit").call(Outcome::MemoryHit);
        let stats = telemetry.snapshot();
        assert_eq!(stats.domain("natal").redis_hits, 1);
        assert_eq!(stats.domain("natal").redis_misses, 1);
        assert_eq!(stats.domain("transit").memory_hits, 1);
        assert_eq!(stats.total.redis_hits + stats.total.memory_hits, 2);
        assert_eq!(stats.domain("natal").hit_ratio(), Some(1.0));
        assert_eq!(stats.domain("absent"), Default::default());
    }

    #[test]
    fn every_outcome_and_error_kind_has_a_key() {
        for outcome in [
            Outcome::RedisHit,
            Outcome::MemoryHit,
            Outcome::Fallback,
            Outcome::Coalesced,
            Outcome::Computed {
                took: Duration::ZERO,
                write: Write::None,
            },
            Outcome::Bypassed {
                took: Duration::ZERO,
            },
        ] {
            assert!(OUTCOMES.contains(&outcome.label()), "{outcome:?}");
        }
        let errors = [
            RedisError::Timeout(Duration::ZERO),
            RedisError::WrongType,
            RedisError::NoIoThread,
        ];
        for error in errors {
            assert!(ERROR_KINDS.contains(&error.kind()), "{error}");
        }
    }
}
