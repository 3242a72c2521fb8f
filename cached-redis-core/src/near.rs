//! The near-cache: copies of Redis entries kept in this process, dropped
//! the moment Redis says they changed.
//!
//! Copies are the sealed bytes of reads made through the runtime's
//! tracking connection (RESP3, `CLIENT TRACKING ON`), held under the call's
//! exact key like the memory cache's, so a hit costs what a memory hit
//! costs. The server pushes the Redis keys that change; a map from each
//! Redis key to its copy's exact key lets those pushes find the copies.
//! Every invalidation, and every loss of the channel, bumps an epoch: a
//! read that was in flight meanwhile is not kept, so a copy can never be
//! older than an invalidation this process received.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::memory::{Held, MemoryStore};

/// Redis key → the exact key of its copy.
type CopyOf = HashMap<Box<[u8]>, Box<[u8]>>;

pub(crate) struct NearCache {
    copies: MemoryStore,
    /// The exact key of the copy of each Redis key read; at most
    /// `2 × capacity` (beyond, everything is dropped and relearned).
    by_redis_key: Mutex<CopyOf>,
    epoch: AtomicU64,
    capacity: usize,
}

impl NearCache {
    pub(crate) fn new(capacity: u64, max_bytes: u64) -> NearCache {
        NearCache {
            copies: MemoryStore::new(capacity, max_bytes),
            by_redis_key: Mutex::default(),
            epoch: AtomicU64::new(0),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
        }
    }

    /// The current epoch: take it before a read, hand it to [`keep`](Self::keep).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The copy held under `exact`, if any and not expired.
    pub(crate) fn lookup(&self, exact: &[u8]) -> Option<Held> {
        self.copies.lookup(exact)
    }

    /// Keeps a copy of what a read begun at `epoch` returned, for at most
    /// `ttl` — unless an invalidation (of any key) or a loss of the channel
    /// came in since: the read may predate it.
    pub(crate) fn keep(
        &self,
        epoch: u64,
        exact: &[u8],
        redis_key: &[u8],
        held: Held,
        ttl: Duration,
    ) {
        let mut map = self.map();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if map.len() >= self.capacity.saturating_mul(2) {
            map.clear();
            self.copies.remove_prefix(b"");
        }
        map.insert(redis_key.into(), exact.into());
        self.copies.insert(exact, held, ttl);
    }

    /// Drops the copies of these Redis keys (a server push).
    pub(crate) fn invalidate<'a>(&self, redis_keys: impl IntoIterator<Item = &'a [u8]>) {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for key in redis_keys {
            if let Some(exact) = map.remove(key) {
                self.copies.remove(&exact);
            }
        }
    }

    /// Drops every copy: the channel was lost (or reopened), the breaker
    /// opened, the database was flushed, or this process cleared a domain.
    pub(crate) fn clear(&self) {
        let mut map = self.map();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.clear();
        self.copies.remove_prefix(b"");
    }

    /// Drops the copy under `exact`: this process is storing a new value.
    pub(crate) fn forget(&self, exact: &[u8]) {
        self.copies.remove(exact);
    }

    fn map(&self) -> MutexGuard<'_, CopyOf> {
        self.by_redis_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const TTL: Duration = Duration::from_secs(60);

    fn bytes(text: &str) -> Held {
        Held::bytes(Arc::from(text.as_bytes()))
    }

    #[test]
    fn an_invalidation_drops_the_copy_and_any_read_in_flight() {
        let near = NearCache::new(100, 1 << 20);
        let before = near.epoch();
        near.keep(before, b"exact-a", b"redis-a", bytes("v1"), TTL);
        assert!(near.lookup(b"exact-a").is_some());

        let in_flight = near.epoch();
        near.invalidate([&b"redis-a"[..]]);
        assert!(near.lookup(b"exact-a").is_none());
        // A read that began before the invalidation is not kept.
        near.keep(in_flight, b"exact-a", b"redis-a", bytes("v1"), TTL);
        assert!(near.lookup(b"exact-a").is_none());
        // One that began after it is.
        near.keep(near.epoch(), b"exact-a", b"redis-a", bytes("v2"), TTL);
        assert_eq!(
            near.lookup(b"exact-a").map(|held| held.bytes).as_deref(),
            Some(&b"v2"[..])
        );

        near.clear();
        assert!(near.lookup(b"exact-a").is_none());
    }
}
