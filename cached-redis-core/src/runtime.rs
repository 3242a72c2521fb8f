//! The runtime: configuration, stores, and the read/write paths of a cached call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::codec::{Codec, Postcard};
use crate::config::{Config, ConfigError};
use crate::envelope;
use crate::io::IoThread;
use crate::key::{CacheKey, KeyError, domain_prefix};
use crate::stats::{CacheStats, Counters};
use crate::store::{Bytes, MemoryStore, RedisStore, Store, StoreError};

/// Sync callers wait this much longer than the Redis deadline for the I/O
/// thread's answer before giving up on it, so a busy I/O thread costs a
/// fallback rather than a hang.
const BLOCKING_MARGIN: Duration = Duration::from_millis(20);

/// Where a lookup found its value.
pub(crate) enum Lookup<T> {
    /// In Redis.
    Redis(T),
    /// In this process: the memory cache, or a write still in flight.
    Memory(T),
    /// Nowhere: the body must run.
    Miss,
}

/// Why [`Runtime::clear`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearError {
    /// The domain or version is not valid in a key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Redis failed part-way; some keys may remain.
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
    counters: Counters,
}

struct RedisBackend {
    store: RedisStore,
    io: OnceLock<Option<IoThread>>,
    write_permits: Arc<Semaphore>,
}

impl RedisBackend {
    /// The I/O thread, started on first use so that building a runtime never waits.
    fn io(&self) -> Option<&IoThread> {
        self.io
            .get_or_init(|| {
                IoThread::start()
                    .map_err(|err| tracing::error!(error = %err, "cannot start the cache I/O thread; Redis is unused"))
                    .ok()
            })
            .as_ref()
    }
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
        let redis = if config.redis_enabled {
            match RedisStore::new(
                &config.redis_url,
                config.redis_timeout,
                config.connect_timeout,
            ) {
                Ok(store) => Some(RedisBackend {
                    store,
                    io: OnceLock::new(),
                    write_permits: Arc::new(Semaphore::new(config.max_pending_writes)),
                }),
                Err(err) => {
                    tracing::error!(error = %err, "invalid Redis configuration; Redis is unused");
                    None
                }
            }
        } else {
            None
        };
        Runtime {
            inner: Arc::new(Inner {
                config,
                memory,
                redis,
                pending: Mutex::new(HashMap::new()),
                counters: Counters::default(),
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

    /// Counters since the runtime was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// Removes every cached entry of one `domain` and `version` of this
    /// runtime's namespace, from Redis (`SCAN` + `UNLINK` in batches, never
    /// `KEYS` or `FLUSHDB`) and from memory. Returns how many Redis keys went.
    pub async fn clear(&self, domain: &str, version: &str) -> Result<u64, ClearError> {
        let prefix = self.clear_local(domain, version)?;
        let Some(redis) = &self.inner.redis else {
            return Ok(0);
        };
        let io = redis.io().ok_or(StoreError::IoUnavailable)?;
        let store = redis.store.clone();
        let removed = io.run(async move { store.clear(&prefix).await }).await;
        Ok(removed.ok_or(StoreError::IoUnavailable)??)
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
        let io = redis.io().ok_or(StoreError::IoUnavailable)?;
        let store = redis.store.clone();
        let removed = io.run_blocking(async move { store.clear(&prefix).await }, wait);
        Ok(removed.ok_or(StoreError::Timeout(wait))??)
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
        let Some((io, permits, all)) = self.flush_parts() else {
            return true;
        };
        io.run(async move {
            tokio::time::timeout(wait, permits.acquire_many_owned(all))
                .await
                .is_ok_and(|p| p.is_ok())
        })
        .await
        .unwrap_or(false)
    }

    /// [`flush`](Runtime::flush) for sync code.
    pub fn flush_blocking(&self, wait: Duration) -> bool {
        let Some((io, permits, all)) = self.flush_parts() else {
            return true;
        };
        let flushed = async move {
            tokio::time::timeout(wait, permits.acquire_many_owned(all))
                .await
                .is_ok_and(|p| p.is_ok())
        };
        io.run_blocking(flushed, wait + BLOCKING_MARGIN)
            .unwrap_or(false)
    }

    fn flush_parts(&self) -> Option<(&IoThread, Arc<Semaphore>, u32)> {
        let redis = self.inner.redis.as_ref()?;
        let all = u32::try_from(self.inner.config.max_pending_writes).unwrap_or(u32::MAX);
        Some((redis.io()?, Arc::clone(&redis.write_permits), all))
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

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Looks `key` up, from an async caller.
    pub(crate) async fn lookup<T: DeserializeOwned>(&self, key: &CacheKey) -> Lookup<T> {
        if let Some(value) = self.local_value(key) {
            return Lookup::Memory(value);
        }
        let Some(redis) = &self.inner.redis else {
            return self.memory_value(key);
        };
        let read = match redis.io() {
            Some(io) => {
                let (store, name) = (redis.store.clone(), Arc::<str>::from(key.as_str()));
                io.run(async move { store.get(&name).await })
                    .await
                    .unwrap_or(Err(StoreError::IoUnavailable))
            }
            None => Err(StoreError::IoUnavailable),
        };
        self.resolve(key, read)
    }

    /// Looks `key` up, from a sync caller; never blocks longer than the Redis deadline.
    pub(crate) fn lookup_blocking<T: DeserializeOwned>(&self, key: &CacheKey) -> Lookup<T> {
        if let Some(value) = self.local_value(key) {
            return Lookup::Memory(value);
        }
        let Some(redis) = &self.inner.redis else {
            return self.memory_value(key);
        };
        let wait = self.inner.config.redis_timeout + BLOCKING_MARGIN;
        let read = match redis.io() {
            Some(io) => {
                let (store, name) = (redis.store.clone(), Arc::<str>::from(key.as_str()));
                io.run_blocking(async move { store.get(&name).await }, wait)
                    .unwrap_or(Err(StoreError::Timeout(wait)))
            }
            None => Err(StoreError::IoUnavailable),
        };
        self.resolve(key, read)
    }

    /// A value whose Redis write is still in flight (Redis on), so the next
    /// equal call does not recompute or read a not-yet-written key.
    fn local_value<T: DeserializeOwned>(&self, key: &CacheKey) -> Option<T> {
        self.inner.redis.as_ref()?;
        let bytes = self.pending().get(key.as_str()).cloned()?;
        decode(&bytes, key).ok()
    }

    fn memory_value<T: DeserializeOwned>(&self, key: &CacheKey) -> Lookup<T> {
        let Some(memory) = &self.inner.memory else {
            return Lookup::Miss;
        };
        let Some(bytes) = memory.lookup(key.as_str()) else {
            return Lookup::Miss;
        };
        match decode(&bytes, key) {
            Ok(value) => Lookup::Memory(value),
            Err(reason) => {
                // Only a truncated-hash collision gets here: two inputs, one key.
                tracing::debug!(key = key.as_str(), %reason, "memory entry rejected");
                Lookup::Miss
            }
        }
    }

    fn resolve<T: DeserializeOwned>(
        &self,
        key: &CacheKey,
        read: Result<Option<Bytes>, StoreError>,
    ) -> Lookup<T> {
        match read {
            Ok(Some(bytes)) => match decode(&bytes, key) {
                Ok(value) => {
                    self.remember(key, &bytes);
                    Lookup::Redis(value)
                }
                Err(reason) => {
                    tracing::warn!(key = key.as_str(), %reason, "purging an invalid cache entry");
                    self.inner.counters.corrupt();
                    self.purge(key, Some(bytes));
                    Lookup::Miss
                }
            },
            Ok(None) => {
                self.inner.counters.redis_miss();
                Lookup::Miss
            }
            Err(StoreError::WrongType) => {
                tracing::warn!(
                    key = key.as_str(),
                    "purging a non-string value at a cache key"
                );
                self.inner.counters.corrupt();
                self.purge(key, None);
                Lookup::Miss
            }
            Err(err) => {
                tracing::debug!(key = key.as_str(), error = %err, "redis read failed; falling back");
                self.inner.counters.redis_error();
                self.memory_value(key)
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

    /// Deletes an invalid entry in the background, only if it is unchanged.
    fn purge(&self, key: &CacheKey, bad: Option<Bytes>) {
        let Some(redis) = &self.inner.redis else {
            return;
        };
        let Some(io) = redis.io() else { return };
        let (store, name) = (redis.store.clone(), Arc::<str>::from(key.as_str()));
        io.spawn(async move {
            let purged = match bad {
                Some(bytes) => store.purge(&name, bytes).await,
                None => store.purge_wrong_type(&name).await,
            };
            if let Err(err) = purged {
                tracing::debug!(key = &*name, error = %err, "purging an invalid entry failed");
            }
        });
    }

    /// Stores a freshly computed value: in memory at once, in Redis behind the caller.
    pub(crate) fn store<T: Serialize + ?Sized>(&self, key: &CacheKey, value: &T, ttl: Duration) {
        let body = match Postcard::encode(value) {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(key = key.as_str(), error = %err, "value cannot be encoded; not cached");
                return;
            }
        };
        let bytes: Bytes = envelope::seal(key.digest(), Postcard::ID, ttl, &body).into();
        if let Some(memory) = &self.inner.memory {
            memory.insert(key.as_str(), Arc::clone(&bytes), ttl);
        }
        self.write_behind(key, bytes, ttl);
    }

    /// Hands the Redis write to the I/O thread; never waits for it. When too
    /// many writes are in flight the value is not written (it is counted).
    fn write_behind(&self, key: &CacheKey, bytes: Bytes, ttl: Duration) {
        let Some(redis) = &self.inner.redis else {
            return;
        };
        let Ok(permit) = Arc::clone(&redis.write_permits).try_acquire_owned() else {
            self.inner.counters.write_dropped();
            return;
        };
        let Some(io) = redis.io() else { return };
        let name: Arc<str> = Arc::from(key.as_str());
        self.pending().insert(Arc::clone(&name), Arc::clone(&bytes));
        let (store, inner) = (redis.store.clone(), Arc::clone(&self.inner));
        io.spawn(async move {
            if let Err(err) = store.set(&name, Arc::clone(&bytes), ttl).await {
                inner.counters.redis_error();
                tracing::debug!(key = &*name, error = %err, "redis write failed");
            }
            let mut pending = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            // A newer value for the same key may have replaced ours meanwhile.
            if pending
                .get(&name)
                .is_some_and(|current| Arc::ptr_eq(current, &bytes))
            {
                pending.remove(&name);
            }
            drop(permit);
        });
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Bytes>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &CacheKey) -> Result<T, DecodeError> {
    let envelope = envelope::open(bytes, key.digest(), Postcard::ID)?;
    Ok(Postcard::decode(envelope.body)?)
}

#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error(transparent)]
    Envelope(#[from] envelope::EnvelopeError),
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
}
