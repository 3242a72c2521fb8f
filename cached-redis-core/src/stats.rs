//! What the cache did, counted.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the runtime was built.
///
/// ```
/// let runtime = cached_redis_core::Runtime::new(Default::default());
/// let stats = runtime.stats();
/// assert_eq!(stats.hit_ratio(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls served from Redis.
    pub redis_hits: u64,
    /// Calls Redis answered without a value (the body ran).
    pub redis_misses: u64,
    /// Calls served from the memory cache.
    pub memory_hits: u64,
    /// Calls whose body ran.
    pub computes: u64,
    /// Redis operations that failed (the call fell back).
    pub redis_errors: u64,
    /// Stored entries that failed validation and were purged.
    pub corrupt: u64,
    /// Redis writes dropped because too many were in flight.
    pub writes_dropped: u64,
    /// Calls that skipped the cache because their key could not be built.
    pub bypassed: u64,
    /// Redis operations not attempted because the circuit breaker was open.
    pub redis_skipped: u64,
    /// Calls that waited for a concurrent call of the same key and shared its value.
    pub coalesced: u64,
}

impl CacheStats {
    /// Hits (Redis and memory) over calls that looked up a key, or `None` before any.
    pub fn hit_ratio(&self) -> Option<f64> {
        let hits = self.redis_hits + self.memory_hits + self.coalesced;
        let lookups = hits + self.computes.saturating_sub(self.bypassed);
        (lookups > 0).then(|| hits as f64 / lookups as f64)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    redis_hits: AtomicU64,
    redis_misses: AtomicU64,
    memory_hits: AtomicU64,
    computes: AtomicU64,
    redis_errors: AtomicU64,
    corrupt: AtomicU64,
    writes_dropped: AtomicU64,
    bypassed: AtomicU64,
    redis_skipped: AtomicU64,
    coalesced: AtomicU64,
}

macro_rules! bump {
    ($($name:ident => $field:ident),* $(,)?) => {$(
        pub(crate) fn $name(&self) {
            self.$field.fetch_add(1, Ordering::Relaxed);
        }
    )*};
}

impl Counters {
    bump! {
        redis_hit => redis_hits,
        redis_miss => redis_misses,
        memory_hit => memory_hits,
        compute => computes,
        redis_error => redis_errors,
        corrupt => corrupt,
        write_dropped => writes_dropped,
        bypass => bypassed,
        redis_skipped => redis_skipped,
        coalesced => coalesced,
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            redis_hits: get(&self.redis_hits),
            redis_misses: get(&self.redis_misses),
            memory_hits: get(&self.memory_hits),
            computes: get(&self.computes),
            redis_errors: get(&self.redis_errors),
            corrupt: get(&self.corrupt),
            writes_dropped: get(&self.writes_dropped),
            bypassed: get(&self.bypassed),
            redis_skipped: get(&self.redis_skipped),
            coalesced: get(&self.coalesced),
        }
    }
}
