use std::future::{Future, ready};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::{Bytes, Store, StoreError, StoreStats};

/// A bounded in-memory store: at most `capacity` entries, each expiring at its own TTL.
///
/// ```
/// use std::time::Duration;
/// use cached_redis_core::store::MemoryStore;
///
/// let store = MemoryStore::new(100);
/// store.insert("meridian:v1:natal:00", vec![1, 2, 3].into(), Duration::from_secs(60));
/// assert_eq!(store.lookup("meridian:v1:natal:00").as_deref(), Some(&[1, 2, 3][..]));
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<Arc<str>, Entry>,
}

#[derive(Clone)]
struct Entry {
    bytes: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<Arc<str>, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &Arc<str>, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl MemoryStore {
    /// A store bounded to `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .build();
        MemoryStore { cache }
    }

    /// The bytes under `key`, unless absent or expired.
    pub fn lookup(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key).map(|entry| entry.bytes)
    }

    /// Stores `bytes` under `key` until `ttl` passes (or eviction).
    pub fn insert(&self, key: &str, bytes: Bytes, ttl: Duration) {
        self.cache.insert(Arc::from(key), Entry { bytes, ttl });
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Removes every key starting with `prefix`; returns how many were present.
    pub fn remove_prefix(&self, prefix: &str) -> u64 {
        let count = self
            .cache
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .count();
        let prefix: Arc<str> = Arc::from(prefix);
        // Only fails when invalidation closures are not enabled, which `new` does.
        let _ = self
            .cache
            .invalidate_entries_if(move |key, _| key.starts_with(&*prefix));
        count as u64
    }

    /// Entries currently held (approximate while evictions are pending).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// `true` when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        ready(Ok(self.lookup(key)))
    }

    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.insert(key, value, ttl);
        ready(Ok(()))
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.remove(key);
        ready(Ok(()))
    }

    fn clear(&self, prefix: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        ready(Ok(self.remove_prefix(prefix)))
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            entries: Some(self.len()),
            errors: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_own_ttl() {
        let store = MemoryStore::new(10);
        store.insert("short", vec![1].into(), Duration::from_millis(30));
        store.insert("long", vec![2].into(), Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.lookup("short").is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(store.lookup("short").is_none());
        assert!(store.lookup("long").is_some());
    }

    #[test]
    fn capacity_bounds_the_entry_count() {
        let store = MemoryStore::new(50);
        for i in 0..1000 {
            store.insert(&format!("k{i}"), vec![0].into(), Duration::from_secs(60));
        }
        assert!(store.len() <= 50, "{}", store.len());
    }

    #[test]
    fn remove_prefix_leaves_other_domains() {
        let store = MemoryStore::new(10);
        for key in ["ns:v1:a:1", "ns:v1:a:2", "ns:v1:ab:1", "ns:v2:a:1"] {
            store.insert(key, vec![0].into(), Duration::from_secs(60));
        }
        assert_eq!(store.remove_prefix("ns:v1:a:"), 2);
        assert!(store.lookup("ns:v1:a:1").is_none());
        assert!(store.lookup("ns:v1:ab:1").is_some());
        assert!(store.lookup("ns:v2:a:1").is_some());
    }
}
