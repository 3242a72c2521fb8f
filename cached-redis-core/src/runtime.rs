//! The runtime: configuration, stores, and the read/write paths of a cached call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{BLOCKING_MARGIN, RedisBackend, WriteSkipped};
use crate::breaker::BreakerState;
use crate::codec::{Codec, Postcard};
use crate::config::{Config, ConfigError};
use crate::envelope;
use crate::flight::Flights;
use crate::key::{CacheKey, KeyError, domain_prefix};
use crate::stats::{Stats, Tally};
use crate::store::{Bytes, MemoryStore, StoreError};
use crate::telemetry::Telemetry;

/// Where a lookup found its value; each carries the decoded value and the
/// validated envelope it came from (shared with waiting callers).
pub(crate) enum Lookup<T> {
    /// In Redis.
    Redis(T, Bytes),
    /// In this process: the memory cache, or a write still in flight.
    Memory(T, Bytes),
    /// In the memory cache, because Redis failed or the breaker is open.
    Fallback(T, Bytes),
    /// Nowhere: the body must run.
    Miss,
}

impl<T> Lookup<T> {
    fn into_fallback(self) -> Lookup<T> {
        match self {
            Lookup::Memory(value, bytes) => Lookup::Fallback(value, bytes),
            other => other,
        }
    }
}

/// One cached call's key, domain and TTL.
pub(crate) struct Call {
    pub(crate) key: CacheKey,
    pub(crate) domain: &'static str,
    pub(crate) ttl: Duration,
}

/// Why [`Runtime::clear`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearError {
    /// The domain or version is not valid in a key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Redis failed part-way, or was not contacted; some keys may remain.
    #[error("clearing Redis failed: {0}")]
    Store(#[from] StoreError),
}

/// Owns the stores and serves cached calls. Cheap to clone (one `Arc`).
///
/// Most programs use the process-wide runtime built from the environment
/// (see [`runtime`](crate::runtime())); tests and applications that
/// configure in code build their own and name it with `runtime = …` in the
/// attribute, or [`install`](crate::install) it as the default.
///
/// ```
/// use cached_redis_core::{Config, Runtime};
///
/// let runtime = Runtime::new(Config::default());
/// assert!(!runtime.config().redis_enabled());
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    memory: Option<MemoryStore>,
    redis: Option<RedisBackend>,
    /// Values whose Redis write is in flight: served to the next equal call
    /// so a process always reads its own writes.
    pending: Mutex<HashMap<Arc<str>, Bytes>>,
    flights: Flights,
    telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds a runtime. Nothing connects to Redis until a call needs it.
    pub fn new(config: Config) -> Runtime {
        let memory = config
            .memory_fallback
            .then(|| MemoryStore::new(config.memory_capacity));
        let telemetry = Arc::new(Telemetry::default());
        let redis = if config.redis_enabled {
            RedisBackend::new(&config, Arc::clone(&telemetry))
                .map_err(|err| tracing::error!(error = %err, "invalid Redis configuration; Redis is unused"))
                .ok()
        } else {
            None
        };
        Runtime {
            inner: Arc::new(Inner {
                config,
                memory,
                redis,
                pending: Mutex::new(HashMap::new()),
                flights: Flights::default(),
                telemetry,
            }),
        }
    }

    /// Builds a runtime from the environment (see `docs/configuration.md`).
    pub fn from_env() -> Result<Runtime, ConfigError> {
        Ok(Runtime::new(Config::from_env()?))
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Counters since the runtime was built, per domain and in total.
    pub fn stats(&self) -> Stats {
        self.inner.telemetry.snapshot()
    }

    /// The circuit breaker's state; `Closed` when Redis is off.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner
            .redis
            .as_ref()
            .map_or(BreakerState::Closed, RedisBackend::breaker_state)
    }

    /// Removes every cached entry of one `domain` and `version` of this
    /// runtime's namespace, from Redis (`SCAN` + `UNLINK` in batches, never
    /// `KEYS` or `FLUSHDB`) and from memory. Returns how many Redis keys went.
    pub async fn clear(&self, domain: &str, version: &str) -> Result<u64, ClearError> {
        let prefix = self.clear_local(domain, version)?;
        let Some(redis) = &self.inner.redis else {
            return Ok(0);
        };
        Ok(redis.clear(prefix).await?)
    }

    /// [`clear`](Runtime::clear) for sync code; waits at most `wait`.
    pub fn clear_blocking(
        &self,
        domain: &str,
        version: &str,
        wait: Duration,
    ) -> Result<u64, ClearError> {
        let prefix = self.clear_local(domain, version)?;
        let Some(redis) = &self.inner.redis else {
            return Ok(0);
        };
        Ok(redis.clear_blocking(prefix, wait)?)
    }

    fn clear_local(&self, domain: &str, version: &str) -> Result<String, KeyError> {
        let prefix = domain_prefix(&self.inner.config.namespace, version, domain)?;
        if let Some(memory) = &self.inner.memory {
            memory.remove_prefix(&prefix);
        }
        self.pending().retain(|key, _| !key.starts_with(&prefix));
        Ok(prefix)
    }

    /// Waits until every Redis write in flight has finished, at most `wait`.
    /// Returns `true` when none is left. Call it on shutdown.
    pub async fn flush(&self, wait: Duration) -> bool {
        let Some(redis) = &self.inner.redis else {
            return true;
        };
        match redis.flush_future(wait) {
            Ok((io, flushed)) => io.run(flushed).await.unwrap_or(false),
            Err(_) => true,
        }
    }

    /// [`flush`](Runtime::flush) for sync code.
    pub fn flush_blocking(&self, wait: Duration) -> bool {
        let Some(redis) = &self.inner.redis else {
            return true;
        };
        match redis.flush_future(wait) {
            Ok((io, flushed)) => io
                .run_blocking(flushed, wait + BLOCKING_MARGIN)
                .unwrap_or(false),
            Err(_) => true,
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    pub(crate) fn default_ttl(&self) -> Duration {
        self.inner.config.default_ttl
    }

    /// `false` when nothing can be cached (Redis off and memory disabled).
    pub(crate) fn caches(&self) -> bool {
        self.inner.redis.is_some() || self.inner.memory.is_some()
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.flights
    }

    pub(crate) fn single_flight_wait(&self) -> Duration {
        self.inner.config.single_flight_wait
    }

    /// Looks `call`'s key up, from an async caller.
    pub(crate) async fn lookup<T: DeserializeOwned>(&self, call: &Call) -> Lookup<T> {
        if let Some(found) = self.local_value(&call.key) {
            return found;
        }
        let Some(redis) = &self.inner.redis else {
            return self.memory_value(&call.key);
        };
        let started = Instant::now();
        let read = redis.get(Arc::from(call.key.as_str())).await;
        self.resolve(call, started, read)
    }

    /// Looks `call`'s key up, from a sync caller; never blocks longer than the Redis deadline.
    pub(crate) fn lookup_blocking<T: DeserializeOwned>(&self, call: &Call) -> Lookup<T> {
        if let Some(found) = self.local_value(&call.key) {
            return found;
        }
        let Some(redis) = &self.inner.redis else {
            return self.memory_value(&call.key);
        };
        let started = Instant::now();
        let read = redis.get_blocking(Arc::from(call.key.as_str()));
        self.resolve(call, started, read)
    }

    /// A value whose Redis write is still in flight (Redis on), so the next
    /// equal call does not recompute or read a not-yet-written key.
    fn local_value<T: DeserializeOwned>(&self, key: &CacheKey) -> Option<Lookup<T>> {
        self.inner.redis.as_ref()?;
        let bytes = self.pending().get(key.as_str()).cloned()?;
        let value = decode(&bytes, key).ok()?;
        Some(Lookup::Memory(value, bytes))
    }

    fn memory_value<T: DeserializeOwned>(&self, key: &CacheKey) -> Lookup<T> {
        let Some(memory) = &self.inner.memory else {
            return Lookup::Miss;
        };
        let Some(bytes) = memory.lookup(key.as_str()) else {
            return Lookup::Miss;
        };
        match decode(&bytes, key) {
            Ok(value) => Lookup::Memory(value, bytes),
            Err(reason) => {
                // Only a truncated-hash collision gets here: two inputs, one key.
                tracing::debug!(key = key.as_str(), %reason, "memory entry rejected");
                Lookup::Miss
            }
        }
    }

    fn resolve<T: DeserializeOwned>(
        &self,
        call: &Call,
        started: Instant,
        read: Result<Option<Bytes>, StoreError>,
    ) -> Lookup<T> {
        let (key, domain, telemetry) = (&call.key, call.domain, &self.inner.telemetry);
        if !matches!(read, Err(StoreError::CircuitOpen)) {
            telemetry.redis_op(domain, "get", started.elapsed());
        }
        match read {
            Ok(Some(bytes)) => match decode(&bytes, key) {
                Ok(value) => {
                    self.remember(key, &bytes);
                    Lookup::Redis(value, bytes)
                }
                // A valid entry of another input whose short hash collides
                // with ours is not purged: it is someone's good value. Our
                // write after the computation replaces it either way.
                Err(DecodeError::Envelope(envelope::EnvelopeError::DigestMismatch)) => {
                    tracing::debug!(
                        domain,
                        key = key.hash(),
                        "the entry belongs to another key input"
                    );
                    telemetry.record(domain, Tally::Corrupt);
                    Lookup::Miss
                }
                Err(reason) => {
                    telemetry.record(domain, Tally::Corrupt);
                    telemetry.warn("corrupt", |suppressed| {
                        tracing::warn!(domain, key = key.hash(), %reason, suppressed, "purging an invalid cache entry");
                    });
                    self.purge(key, Some(bytes));
                    Lookup::Miss
                }
            },
            Ok(None) => {
                telemetry.record(domain, Tally::RedisMiss);
                Lookup::Miss
            }
            Err(StoreError::WrongType) => {
                telemetry.record(domain, Tally::Corrupt);
                telemetry.warn("corrupt", |suppressed| {
                    tracing::warn!(
                        domain,
                        key = key.hash(),
                        suppressed,
                        "purging a non-string value at a cache key"
                    );
                });
                self.purge(key, None);
                Lookup::Miss
            }
            Err(StoreError::CircuitOpen) => {
                telemetry.record(domain, Tally::RedisSkipped);
                self.memory_value(key).into_fallback()
            }
            Err(err) => {
                tracing::debug!(domain, key = key.hash(), error = %err, "redis read failed; falling back");
                telemetry.redis_error(domain, &err);
                self.memory_value(key).into_fallback()
            }
        }
    }

    /// Keeps a value read from Redis in memory for as long as it has left,
    /// so it can serve while Redis is unavailable.
    fn remember(&self, key: &CacheKey, bytes: &Bytes) {
        let Some(memory) = &self.inner.memory else {
            return;
        };
        let Ok(envelope) = envelope::open(bytes, key.digest(), Postcard::ID) else {
            return;
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let age = Duration::from_millis(now_ms.saturating_sub(envelope.created_at_ms));
        if let Some(left) = envelope.ttl.checked_sub(age).filter(|left| !left.is_zero()) {
            memory.insert(key.as_str(), Arc::clone(bytes), left);
        }
    }

    fn purge(&self, key: &CacheKey, bad: Option<Bytes>) {
        if let Some(redis) = &self.inner.redis {
            redis.purge(Arc::from(key.as_str()), bad);
        }
    }

    /// Stores a freshly computed value: in memory at once, in Redis behind
    /// the caller. Returns the sealed bytes, for callers waiting on this key.
    pub(crate) fn store<T: Serialize + ?Sized>(&self, call: &Call, value: &T) -> Option<Bytes> {
        let body = match Postcard::encode(value) {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(domain = call.domain, error = %err, "value cannot be encoded; not cached");
                return None;
            }
        };
        let bytes: Bytes = envelope::seal(call.key.digest(), Postcard::ID, call.ttl, &body).into();
        if let Some(memory) = &self.inner.memory {
            memory.insert(call.key.as_str(), Arc::clone(&bytes), call.ttl);
        }
        self.write_behind(call, Arc::clone(&bytes));
        Some(bytes)
    }

    /// Hands the Redis write to the I/O thread; never waits for it.
    fn write_behind(&self, call: &Call, bytes: Bytes) {
        let Some(redis) = &self.inner.redis else {
            return;
        };
        let name: Arc<str> = Arc::from(call.key.as_str());
        self.pending().insert(Arc::clone(&name), Arc::clone(&bytes));
        let inner = Arc::clone(&self.inner);
        let (written_name, written_bytes, domain) =
            (Arc::clone(&name), Arc::clone(&bytes), call.domain);
        let started = Instant::now();
        let write = redis.set(
            Arc::clone(&name),
            Arc::clone(&bytes),
            call.ttl,
            move |result| {
                inner.telemetry.redis_op(domain, "set", started.elapsed());
                if let Err(err) = result {
                    inner.telemetry.redis_error(domain, &err);
                }
                inner.forget_pending(&written_name, &written_bytes);
            },
        );
        if let Err(skipped) = write {
            self.inner.forget_pending(&name, &bytes);
            if skipped == WriteSkipped::QueueFull {
                self.inner
                    .telemetry
                    .record(call.domain, Tally::WriteDropped);
            }
        }
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<Arc<str>, Bytes>> {
        self.inner.pending()
    }
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, HashMap<Arc<str>, Bytes>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes a pending write once it has finished, unless a newer value
    /// for the same key replaced it meanwhile.
    fn forget_pending(&self, name: &Arc<str>, bytes: &Bytes) {
        let mut pending = self.pending();
        if pending
            .get(name)
            .is_some_and(|current| Arc::ptr_eq(current, bytes))
        {
            pending.remove(name);
        }
    }
}

/// Validates `bytes` for `key` and decodes the value.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], key: &CacheKey) -> Result<T, DecodeError> {
    let envelope = envelope::open(bytes, key.digest(), Postcard::ID)?;
    Ok(Postcard::decode(envelope.body)?)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error(transparent)]
    Envelope(#[from] envelope::EnvelopeError),
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
}
