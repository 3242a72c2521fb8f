//! The bounded in-memory cache: what serves with Redis off, and what Redis
//! falls back to.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use quick_cache::Weighter;
use quick_cache::sync::{Cache, EntryAction, EntryResult};

use crate::envelope;
use crate::policy::Decoded;

/// Sealed envelope bytes, shared between the memory cache, a write in
/// flight and the callers waiting on a flight.
pub(crate) type Bytes = Arc<[u8]>;

/// What memory holds of an entry: its sealed bytes, and, for a function
/// whose value is `Clone`, the value decoded from them — a hit clones it
/// instead of decoding the bytes again.
#[derive(Clone)]
pub(crate) struct Held {
    pub(crate) bytes: Bytes,
    pub(crate) decoded: Option<DecodedCopy>,
}

/// A decoded value, and what it is weighed as: its encoded size before
/// compression, close to its heap size for the types a cache holds.
#[derive(Clone)]
pub(crate) struct DecodedCopy {
    pub(crate) value: Decoded,
    pub(crate) weight: usize,
}

impl Held {
    /// Bytes alone: decoded on every hit.
    #[cfg(test)]
    pub(crate) fn bytes(bytes: Bytes) -> Held {
        Held {
            bytes,
            decoded: None,
        }
    }
}

/// At most `capacity` entries and `max_bytes` bytes, each entry expiring at
/// its own TTL.
///
/// `quick_cache` rather than `moka`: a hit here is the whole cost of a call
/// with Redis off, and its lookup (a shard's read lock and a probe, no
/// queue of reads for an eviction policy to work through) is cheaper
/// (`docs/performance.md`).
/// It has no TTLs of its own: an entry carries its deadline, a lookup
/// past it finds nothing and removes it, and an expired entry nobody asks
/// for again is evicted like any cold one.
pub(crate) struct MemoryStore {
    cache: Cache<Vec<u8>, Entry, Weight>,
    taken: Taken,
}

/// An entry weighs its bytes (key, value, decoded copy and bookkeeping),
/// and at least a share of the byte bound
/// as large as one entry's share of the entry bound: so the weight
/// capacity, the byte bound, bounds both.
#[derive(Clone)]
struct Weight {
    at_least: u64,
}

/// What an entry costs besides its key's and value's bytes.
const ENTRY_OVERHEAD: u64 = 96;

impl Weighter<Vec<u8>, Entry> for Weight {
    fn weight(&self, key: &Vec<u8>, entry: &Entry) -> u64 {
        let decoded = entry.held.decoded.as_ref().map_or(0, |copy| copy.weight);
        let bytes = (key.len() + entry.held.bytes.len() + decoded) as u64 + ENTRY_OVERHEAD;
        bytes.max(self.at_least)
    }
}

/// Which entries memory took from Redis: per slot, a fingerprint of the last
/// one taken for the keys of that slot, so a Redis hit whose entry memory
/// holds already costs one atomic load instead of a lookup. Made on the
/// first entry taken (never, with Redis off), with about as many slots as
/// memory has room for entries.
struct Taken {
    slots: OnceLock<Box<[AtomicU64]>>,
    len: usize,
}

/// Bounds on the number of slots of [`Taken`].
const TAKEN_SLOTS: RangeInclusive<usize> = 1024..=1 << 20;

/// An envelope's header: equal headers (digest, creation time, checksum of
/// header and body), equal entries.
const HEADER: usize = envelope::HEADER_LEN;

#[derive(Clone)]
struct Entry {
    held: Held,
    expires: Instant,
}

const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Entry {
    fn new(held: Held, ttl: Duration) -> Entry {
        let now = Instant::now();
        // A TTL past what the clock can count is cut to a century.
        let expires = [ttl, CENTURY]
            .into_iter()
            .find_map(|ttl| now.checked_add(ttl))
            .unwrap_or(now);
        Entry { held, expires }
    }

    fn live(&self, now: Instant) -> bool {
        now < self.expires
    }
}

impl MemoryStore {
    /// A store bounded to `capacity` entries and `max_bytes` bytes.
    pub(crate) fn new(capacity: u64, max_bytes: u64) -> Self {
        let items = usize::try_from(capacity).unwrap_or(usize::MAX);
        let weight = Weight {
            at_least: (max_bytes / capacity.max(1)).max(1),
        };
        let len = items
            .clamp(*TAKEN_SLOTS.start(), *TAKEN_SLOTS.end())
            .next_power_of_two();
        MemoryStore {
            cache: Cache::with_weighter(items, max_bytes, weight),
            taken: Taken {
                slots: OnceLock::new(),
                len,
            },
        }
    }

    /// Whether memory holds `entry`, read from Redis, already. Usually
    /// answered by the table of taken entries; two keys sharing a slot cost
    /// a lookup.
    pub(crate) fn holds(&self, key: &[u8], digest: &[u8; 32], entry: &[u8]) -> bool {
        let print = fingerprint(entry);
        if self.taken.slot(digest).load(Ordering::Relaxed) == print {
            return true;
        }
        let held = self
            .lookup(key)
            .is_some_and(|held| held.bytes.get(..HEADER) == entry.get(..HEADER));
        if held {
            self.taken.slot(digest).store(print, Ordering::Relaxed);
        }
        held
    }

    /// Keeps `entry`, read from Redis and validated, for `ttl` — unless
    /// memory holds a newer entry of the key (its own value, computed since):
    /// memory never goes back in time. An entry evicted since it was taken
    /// is not taken again while Redis keeps serving it: the fallback is best
    /// effort, and so is a take that would wait for another one of the key.
    pub(crate) fn take(&self, key: &[u8], digest: &[u8; 32], entry: Held, ttl: Duration) {
        let (print, created) = (fingerprint(&entry.bytes), created_at(&entry.bytes));
        let slot = self.taken.slot(digest);
        let mut new = Some(Entry::new(entry, ttl));
        // Under the shard's lock: concurrent takes of one key cannot leave
        // memory and the table disagreeing.
        let result = self.cache.entry(key, Some(Duration::ZERO), |_, held| {
            let newer_held = held.live(Instant::now()) && created_at(&held.held.bytes) > created;
            if let Some(new) = new.take().filter(|_| !newer_held) {
                *held = new;
                slot.store(print, Ordering::Relaxed);
            }
            EntryAction::Retain(())
        });
        if let (EntryResult::Vacant(guard), Some(new)) = (result, new) {
            slot.store(print, Ordering::Relaxed);
            // Fails only if a `clear` removed the placeholder meanwhile.
            let _ = guard.insert(new);
        }
    }

    /// The entry under `key`, unless absent or expired.
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<Held> {
        let entry = self.cache.get(key)?;
        let now = Instant::now();
        if entry.live(now) {
            return Some(entry.held);
        }
        self.cache.remove_if(key, |entry| !entry.live(now));
        None
    }

    /// Stores `held` under `key` until `ttl` passes (or eviction).
    pub(crate) fn insert(&self, key: &[u8], held: Held, ttl: Duration) {
        self.cache.insert(key.to_vec(), Entry::new(held, ttl));
    }

    /// Removes `key`'s entry; `true` if a live one was there.
    pub(crate) fn remove(&self, key: &[u8]) -> bool {
        self.cache
            .remove(key)
            .is_some_and(|(_, entry)| entry.live(Instant::now()))
    }

    /// Removes every key starting with `prefix`.
    pub(crate) fn remove_prefix(&self, prefix: &[u8]) {
        self.cache.retain(|key, _| !key.starts_with(prefix));
    }

    /// Entries currently held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.len()
    }

    /// What the entries currently held weigh.
    #[cfg(test)]
    fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

impl Taken {
    fn slot(&self, digest: &[u8; 32]) -> &AtomicU64 {
        let slots = self
            .slots
            .get_or_init(|| (0..self.len).map(|_| AtomicU64::new(0)).collect());
        let bits = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        // `len` is a power of two.
        &slots[bits as usize & (self.len - 1)]
    }
}

/// An entry's creation time and checksum, never 0 (the empty slot's value).
fn fingerprint(entry: &[u8]) -> u64 {
    let (created_at, checksum) = envelope::stamp(entry);
    (created_at << 32 ^ u64::from(checksum)).max(1)
}

/// An entry's creation time, Unix milliseconds (0 if it has no header).
fn created_at(entry: &[u8]) -> u64 {
    envelope::stamp(entry).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_own_ttl() {
        let store = MemoryStore::new(10, 1 << 20);
        store.insert(
            b"short",
            Held::bytes(vec![1].into()),
            Duration::from_millis(30),
        );
        store.insert(
            b"long",
            Held::bytes(vec![2].into()),
            Duration::from_secs(60),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.lookup(b"short").is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(store.lookup(b"short").is_none());
        assert!(store.lookup(b"long").is_some());
    }

    #[test]
    fn capacity_bounds_the_entry_count() {
        let store = MemoryStore::new(50, 1 << 20);
        for i in 0..1000 {
            store.insert(
                format!("k{i}").as_bytes(),
                Held::bytes(vec![0].into()),
                Duration::from_secs(60),
            );
        }
        assert!(store.len() <= 50, "{}", store.len());
    }

    #[test]
    fn bytes_bound_the_memory_too() {
        // Room for 1000 entries, but only ~64 KB: 1 KB values stop well short.
        let store = MemoryStore::new(1000, 64 << 10);
        for i in 0..1000 {
            let key = format!("k{i}");
            store.insert(
                key.as_bytes(),
                Held::bytes(vec![0; 1024].into()),
                Duration::from_secs(60),
            );
        }
        assert!(store.weight() <= 64 << 10, "{}", store.weight());
        assert!(store.len() <= 64, "{}", store.len());
        assert!(store.len() >= 16, "{}", store.len());
    }

    #[test]
    fn an_entry_taken_from_redis_is_known_by_its_header() {
        let store = MemoryStore::new(10, 1 << 20);
        let digest = [3; 32];
        let sealed = |created_at: u8, crc: u8| {
            let mut bytes = vec![0_u8; 64];
            bytes[40] = created_at;
            bytes[60] = crc;
            Held::bytes(Bytes::from(bytes))
        };
        assert!(!store.holds(b"k", &digest, &sealed(1, 1).bytes));
        store.take(b"k", &digest, sealed(1, 1), Duration::from_secs(60));
        assert!(store.holds(b"k", &digest, &sealed(1, 1).bytes));
        assert_eq!(
            store.lookup(b"k").map(|held| held.bytes),
            Some(sealed(1, 1).bytes)
        );
        assert!(!store.holds(b"k", &digest, &sealed(2, 1).bytes), "newer");
        assert!(
            !store.holds(b"k", &digest, &sealed(1, 2).bytes),
            "another body"
        );
        // Another key in the same slot: found by a lookup, then by the slot.
        store.take(b"other", &digest, sealed(9, 9), Duration::from_secs(60));
        assert!(store.holds(b"k", &digest, &sealed(1, 1).bytes));
        assert!(store.holds(b"other", &digest, &sealed(9, 9).bytes));
        store.take(b"k", &digest, sealed(2, 1), Duration::from_secs(60));
        assert_eq!(
            store.lookup(b"k").map(|held| held.bytes),
            Some(sealed(2, 1).bytes),
            "replaced"
        );
        store.take(b"k", &digest, sealed(1, 5), Duration::from_secs(60));
        assert_eq!(
            store.lookup(b"k").map(|held| held.bytes),
            Some(sealed(2, 1).bytes),
            "never back in time"
        );
    }

    #[test]
    fn remove_prefix_leaves_other_domains() {
        let store = MemoryStore::new(10, 1 << 20);
        for key in ["ns:v1:a:1", "ns:v1:a:2", "ns:v1:ab:1", "ns:v2:a:1"] {
            store.insert(
                key.as_bytes(),
                Held::bytes(vec![0].into()),
                Duration::from_secs(60),
            );
        }
        store.remove_prefix(b"ns:v1:a:");
        assert!(store.lookup(b"ns:v1:a:1").is_none());
        assert!(store.lookup(b"ns:v1:a:2").is_none());
        assert!(store.lookup(b"ns:v1:ab:1").is_some());
        assert!(store.lookup(b"ns:v2:a:1").is_some());
    }
}
