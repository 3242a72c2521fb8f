//! What the cache did, counted — per domain and in total.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one domain, or of all of them.
///
/// ```
/// let runtime = cached_redis_core::Runtime::new(Default::default());
/// let stats = runtime.stats();
/// assert_eq!(stats.total.hit_ratio(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls served from Redis.
    pub redis_hits: u64,
    /// Redis reads that found no value (the call then computed, or shared a
    /// concurrent call's value).
    pub redis_misses: u64,
    /// Calls served from the memory cache.
    pub memory_hits: u64,
    /// Calls whose body ran.
    pub computes: u64,
    /// Redis operations that failed (the call fell back), corrupt entries included.
    pub redis_errors: u64,
    /// Stored entries that failed validation.
    pub corrupt: u64,
    /// Redis writes dropped because too many were in flight.
    pub writes_dropped: u64,
    /// Calls that skipped the cache: a key that could not be built.
    pub bypassed: u64,
    /// Redis operations not attempted because the circuit breaker was open.
    pub redis_skipped: u64,
    /// Calls that waited for a concurrent call of the same key and shared its value.
    pub coalesced: u64,
    /// Values returned but not stored: sealed, they exceeded
    /// `CACHE_MAX_VALUE_BYTES`.
    pub oversize: u64,
    /// Calls answered with a value past its TTL because the body failed,
    /// panicked or ran past its `timeout` (`stale_if_error`).
    pub stale_served: u64,
    /// Values returned but not stored: their codec could not encode them
    /// (a sequence of unknown length for postcard, a `Serialize` that fails).
    pub unencodable: u64,
}

impl CacheStats {
    /// What was counted between `earlier` and this snapshot (of the same
    /// runtime): for rates, and for the hit ratio of a period.
    ///
    /// ```
    /// use cached_redis_core::{Config, Runtime};
    /// let runtime = Runtime::new(Config::default());
    /// let before = runtime.stats().total;
    /// // ... a minute of traffic ...
    /// let minute = runtime.stats().total.since(&before);
    /// assert_eq!(minute.hit_ratio(), None);
    /// ```
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        let minus = |now: u64, then: u64| now.saturating_sub(then);
        CacheStats {
            redis_hits: minus(self.redis_hits, earlier.redis_hits),
            redis_misses: minus(self.redis_misses, earlier.redis_misses),
            memory_hits: minus(self.memory_hits, earlier.memory_hits),
            computes: minus(self.computes, earlier.computes),
            redis_errors: minus(self.redis_errors, earlier.redis_errors),
            corrupt: minus(self.corrupt, earlier.corrupt),
            writes_dropped: minus(self.writes_dropped, earlier.writes_dropped),
            bypassed: minus(self.bypassed, earlier.bypassed),
            redis_skipped: minus(self.redis_skipped, earlier.redis_skipped),
            coalesced: minus(self.coalesced, earlier.coalesced),
            oversize: minus(self.oversize, earlier.oversize),
            stale_served: minus(self.stale_served, earlier.stale_served),
            unencodable: minus(self.unencodable, earlier.unencodable),
        }
    }

    /// Hits (Redis, memory, shared) over calls that looked up a key, or `None` before any.
    pub fn hit_ratio(&self) -> Option<f64> {
        let hits = self.redis_hits + self.memory_hits + self.coalesced;
        let lookups = hits + self.computes.saturating_sub(self.bypassed);
        (lookups > 0).then(|| hits as f64 / lookups as f64)
    }
}

/// Every domain's counters and their sum, as returned by
/// [`Runtime::stats`](crate::Runtime::stats). No metrics exporter needed.
///
/// ```
/// use cached_redis_core::{Config, Runtime};
/// let runtime = Runtime::new(Config::default());
/// let stats = runtime.stats();
/// assert!(stats.domains.is_empty());
/// assert_eq!(stats.hit_ratio(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// All domains together.
    pub total: CacheStats,
    /// Each domain that has seen a call, by name.
    pub domains: BTreeMap<String, CacheStats>,
}

impl Stats {
    /// The overall hit ratio, or `None` before any lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        self.total.hit_ratio()
    }

    /// One domain's counters (zero if it has seen no call).
    pub fn domain(&self, domain: &str) -> CacheStats {
        self.domains.get(domain).copied().unwrap_or_default()
    }
}

/// One thing that happened, to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
    RedisHit,
    RedisMiss,
    MemoryHit,
    Compute,
    RedisError,
    Corrupt,
    WriteDropped,
    Bypass,
    RedisSkipped,
    Coalesced,
    Oversize,
    Stale,
    Unencodable,
}

impl Tally {
    /// Every tally, in declaration order (`tally as usize` indexes this).
    pub(crate) const ALL: [Tally; 13] = [
        Tally::RedisHit,
        Tally::RedisMiss,
        Tally::MemoryHit,
        Tally::Compute,
        Tally::RedisError,
        Tally::Corrupt,
        Tally::WriteDropped,
        Tally::Bypass,
        Tally::RedisSkipped,
        Tally::Coalesced,
        Tally::Oversize,
        Tally::Stale,
        Tally::Unencodable,
    ];
}

#[derive(Default)]
pub(crate) struct Counters([AtomicU64; Tally::ALL.len()]);

impl Counters {
    pub(crate) fn bump(&self, tally: Tally) {
        self.0[tally as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |tally: Tally| self.0[tally as usize].load(Ordering::Relaxed);
        CacheStats {
            redis_hits: get(Tally::RedisHit),
            redis_misses: get(Tally::RedisMiss),
            memory_hits: get(Tally::MemoryHit),
            computes: get(Tally::Compute),
            redis_errors: get(Tally::RedisError),
            corrupt: get(Tally::Corrupt),
            writes_dropped: get(Tally::WriteDropped),
            bypassed: get(Tally::Bypass),
            redis_skipped: get(Tally::RedisSkipped),
            coalesced: get(Tally::Coalesced),
            oversize: get(Tally::Oversize),
            stale_served: get(Tally::Stale),
            unencodable: get(Tally::Unencodable),
        }
    }
}
