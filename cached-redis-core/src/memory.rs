//! The bounded in-memory cache: what serves with Redis off, and what Redis
//! falls back to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

/// Sealed envelope bytes, shared between the memory cache, a write in
/// flight and the callers waiting on a flight.
pub(crate) type Bytes = Arc<[u8]>;

/// At most `capacity` entries, each expiring at its own TTL.
pub(crate) struct MemoryStore {
    cache: Cache<Arc<[u8]>, Entry>,
}

#[derive(Clone)]
struct Entry {
    bytes: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<Arc<[u8]>, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &Arc<[u8]>, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Arc<[u8]>,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl MemoryStore {
    /// A store bounded to `capacity` entries.
    pub(crate) fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .build();
        MemoryStore { cache }
    }

    /// The bytes under `key`, unless absent or expired.
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<Bytes> {
        self.cache.get(key).map(|entry| entry.bytes)
    }

    /// Stores `bytes` under `key` until `ttl` passes (or eviction).
    pub(crate) fn insert(&self, key: &[u8], bytes: Bytes, ttl: Duration) {
        self.cache.insert(Arc::from(key), Entry { bytes, ttl });
    }

    /// Removes every key starting with `prefix`.
    pub(crate) fn remove_prefix(&self, prefix: &[u8]) {
        let prefix: Arc<[u8]> = Arc::from(prefix);
        // Only fails when invalidation closures are not enabled, which `new` does.
        let _ = self
            .cache
            .invalidate_entries_if(move |key, _| key.starts_with(&prefix));
    }

    /// Entries currently held (approximate while evictions are pending).
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_own_ttl() {
        let store = MemoryStore::new(10);
        store.insert(b"short", vec![1].into(), Duration::from_millis(30));
        store.insert(b"long", vec![2].into(), Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.lookup(b"short").is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(store.lookup(b"short").is_none());
        assert!(store.lookup(b"long").is_some());
    }

    #[test]
    fn capacity_bounds_the_entry_count() {
        let store = MemoryStore::new(50);
        for i in 0..1000 {
            store.insert(
                format!("k{i}").as_bytes(),
                vec![0].into(),
                Duration::from_secs(60),
            );
        }
        assert!(store.len() <= 50, "{}", store.len());
    }

    #[test]
    fn remove_prefix_leaves_other_domains() {
        let store = MemoryStore::new(10);
        for key in ["ns:v1:a:1", "ns:v1:a:2", "ns:v1:ab:1", "ns:v2:a:1"] {
            store.insert(key.as_bytes(), vec![0].into(), Duration::from_secs(60));
        }
        store.remove_prefix(b"ns:v1:a:");
        assert!(store.lookup(b"ns:v1:a:1").is_none());
        assert!(store.lookup(b"ns:v1:a:2").is_none());
        assert!(store.lookup(b"ns:v1:ab:1").is_some());
        assert!(store.lookup(b"ns:v2:a:1").is_some());
    }
}
