//! Storing a computed value: sealed once, into memory and to the waiting
//! callers at once, and to Redis behind the caller (write-behind).
//!
//! Until its Redis write lands, the value is also kept among the writes in
//! flight, so the next equal call in this process reads it rather than
//! missing in Redis and computing again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Call, CallPath};
use crate::compress;
use crate::envelope;
use crate::io::io;
use crate::key::CacheKey;
use crate::memory::{Bytes, DecodedCopy, Held};
use crate::policy::Policy;
use crate::redis::{BreakerState, Redis};
use crate::telemetry::Write;

use super::lock::Lock;

/// At most one warning per domain of a value not stored (too large, not
/// encodable) per this period: it recurs on every call of the function.
const VALUE_WARN_EVERY: Duration = Duration::from_secs(60);

/// Values whose Redis write is in flight, by key. Every lookup asks, so
/// the common answer — none in flight — costs one atomic load.
#[derive(Default)]
pub(crate) struct InFlight {
    writes: Mutex<HashMap<Arc<[u8]>, Bytes>>,
    len: AtomicUsize,
}

impl InFlight {
    /// The bytes in flight under the Redis key `key` makes, if any: the
    /// key (a SHA-256) is made only when some write is in flight.
    pub(super) fn get<'k>(&self, key: impl FnOnce() -> &'k [u8]) -> Option<Bytes> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.lock().get(key()).cloned()
    }

    fn insert(&self, key: Arc<[u8]>, bytes: Bytes) {
        let mut writes = self.lock();
        writes.insert(key, bytes);
        self.len.store(writes.len(), Ordering::Release);
    }

    /// Forgets a write once it has finished, unless a newer value for the
    /// same key replaced it meanwhile.
    fn forget(&self, key: &Arc<[u8]>, bytes: &Bytes) {
        let mut writes = self.lock();
        if writes
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, bytes))
        {
            writes.remove(key);
            self.len.store(writes.len(), Ordering::Release);
        }
    }

    /// Forgets the write of `key`, if any (an entry being invalidated).
    fn remove(&self, key: &[u8]) -> bool {
        let mut writes = self.lock();
        let removed = writes.remove(key).is_some();
        self.len.store(writes.len(), Ordering::Release);
        removed
    }

    /// Forgets every write of keys starting with `prefix` (a domain being cleared).
    pub(crate) fn forget_prefix(&self, prefix: &[u8]) {
        let mut writes = self.lock();
        writes.retain(|key, _| !key.starts_with(prefix));
        self.len.store(writes.len(), Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<[u8]>, Bytes>> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CallPath {
    /// Drops this process's copies of one entry — memory, near-cache,
    /// pending write — by its exact input and its key; `true` if memory
    /// or a pending write held it.
    pub(crate) fn forget(&self, exact: &[u8], key: &CacheKey) -> bool {
        let held = self
            .memory
            .as_ref()
            .is_some_and(|memory| memory.remove(exact));
        if let Some(near) = self.redis.as_ref().and_then(|redis| redis.near()) {
            near.invalidate([key.as_bytes()]);
            near.forget(exact);
        }
        self.in_flight.remove(key.as_bytes()) || held
    }

    /// Seals `value` (if the policy stored anything) and stores it; returns
    /// the sealed bytes, for callers waiting on this key, and what became of
    /// the Redis write.
    /// A compute lock (see `lock`) is released once the write lands, or at
    /// once when nothing is written. With `early_refresh`, the envelope
    /// records how long the value `took` to compute.
    pub(super) fn store<P: Policy>(
        &self,
        call: &Call<'_>,
        policy: &P,
        (output, took): (&P::Output, Duration),
        lock: Option<Lock>,
    ) -> (Option<Bytes>, Write) {
        let Some(value) = policy.storable(output) else {
            return (None, Write::None);
        };
        let ttl = call.terms.ttl_of(policy.ttl_for(value));
        if ttl.is_zero() {
            return (None, Write::None);
        }
        let kept_for = call.terms.kept_for(ttl);
        let copier = policy.copier();
        let body = match call.terms.format.encode(value) {
            Ok(body) => body,
            Err(err) => {
                call.stats.unencodable();
                let domain = call.stats.name();
                self.telemetry
                    .warn_for("unencodable", domain, VALUE_WARN_EVERY, |suppressed| {
                        tracing::warn!(domain, error = %err, suppressed, "value cannot be encoded; returned, not cached");
                    });
                return (None, Write::None);
            }
        };
        let encoded_len = body.len();
        let packed = (body.len() >= self.compress_min_bytes)
            .then(|| compress::compress(&body))
            .flatten();
        let body = packed.as_deref().unwrap_or(&body);
        let extras = envelope::Extras {
            signer: self.signer.as_ref(),
            compute: call.terms.early_refresh.map(|_| took),
            compressed: packed.is_some(),
        };
        let sealed_len = envelope::sealed_len(body.len(), extras);
        if sealed_len > self.max_value_bytes {
            call.stats.oversize();
            let (domain, max) = (call.stats.name(), self.max_value_bytes);
            self.telemetry
                .warn_for("oversize", domain, VALUE_WARN_EVERY, |suppressed| {
                    tracing::warn!(
                        domain,
                        bytes = sealed_len,
                        max,
                        suppressed,
                        "value larger than CACHE_MAX_VALUE_BYTES; returned, not cached"
                    );
                });
            return (None, Write::None);
        }
        let bytes: Bytes =
            envelope::seal_with(call.key.digest(), call.terms.format.id(), ttl, body, extras)
                .into();
        if let Some(memory) = &self.memory {
            let decoded = copier.map(|copier| DecodedCopy {
                value: (copier.keep)(value),
                weight: encoded_len,
            });
            let held = Held {
                bytes: Arc::clone(&bytes),
                decoded,
            };
            memory.insert(call.key.exact(), held, kept_for);
        }
        // A copy of the old value must not outlive this write here, where
        // the server's invalidation of it may still be on its way.
        if let Some(copies) = self.redis.as_deref().and_then(Redis::near) {
            copies.forget(call.key.exact());
        }
        let write = self.write_behind(call, &bytes, kept_for, lock);
        // After the value is where a lookup finds it (memory, or the writes
        // in flight): a caller that missed just before looks again.
        self.flights.landed(call.key.digest());
        (Some(bytes), write)
    }

    /// Hands the Redis write to the cache's I/O thread; never waits for it.
    fn write_behind(
        &self,
        call: &Call<'_>,
        bytes: &Bytes,
        ttl: Duration,
        lock: Option<Lock>,
    ) -> Write {
        let (Some(redis), Some(io)) = (&self.redis, io()) else {
            return Write::None;
        };
        // While the key's breaker (in a cluster, its primary's) is not
        // closed, Redis is not trusted with writes: a failing Redis gets no
        // extra traffic, and the probe that tests it is a call's lookup.
        if redis.breaker_state_for(call.key.as_bytes()) != BreakerState::Closed {
            return Write::Skipped;
        }
        let Some(permit) = redis.write_permit() else {
            return Write::Dropped;
        };
        let write = Pending::new(&self.in_flight, call.key.as_bytes(), bytes);
        let (redis, stats) = (Arc::clone(redis), Arc::clone(call.stats));
        io.spawn(async move {
            let started = Instant::now();
            let result = redis.set(&write.key, &write.bytes, ttl).await;
            if let Err(err) = &result {
                tracing::debug!(error = %err, "redis write failed");
            }
            stats.write(started.elapsed(), result.as_ref().err());
            // Released after the write, so the processes waiting on the
            // lock find the value rather than a free lock.
            if let Some(lock) = lock {
                lock.release().await;
            }
            // Both given back however the task ends, a panic included.
            drop((write, permit));
        });
        Write::Started
    }
}

/// One value among the writes in flight, from its store until its write
/// ends; dropping it forgets the value (unless a newer one replaced it).
struct Pending {
    in_flight: Arc<InFlight>,
    key: Arc<[u8]>,
    bytes: Bytes,
}

impl Pending {
    fn new(in_flight: &Arc<InFlight>, key: &[u8], bytes: &Bytes) -> Pending {
        let key: Arc<[u8]> = Arc::from(key);
        in_flight.insert(Arc::clone(&key), Arc::clone(bytes));
        Pending {
            in_flight: Arc::clone(in_flight),
            key,
            bytes: Arc::clone(bytes),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.in_flight.forget(&self.key, &self.bytes);
    }
}
