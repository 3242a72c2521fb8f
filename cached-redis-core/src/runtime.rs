//! The runtime handle: its configuration, its counters, and the operator's
//! requests — clear a domain, flush pending writes, read the breaker.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::call::CallPath;
use crate::config::{Config, ConfigError};
use crate::key::{KeyError, domain_prefix};
use crate::redis::{BreakerState, RedisError};
use crate::stats::Stats;

/// Why [`Runtime::clear`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearError {
    /// The domain or version is not valid in a key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Redis failed part-way; some keys may remain.
    #[error("clearing Redis failed: {0}")]
    Redis(#[from] RedisError),
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
    path: CallPath,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds a runtime. Nothing connects to Redis, and no thread starts,
    /// until a call needs it.
    pub fn new(config: Config) -> Runtime {
        let path = CallPath::new(&config);
        Runtime {
            inner: Arc::new(Inner { config, path }),
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
        self.inner.path.telemetry.snapshot()
    }

    /// The circuit breaker's state; `Closed` when Redis is off.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner
            .path
            .redis
            .as_ref()
            .map_or(BreakerState::Closed, |redis| redis.breaker_state())
    }

    /// Removes every cached entry of one `domain` and `version` of this
    /// runtime's namespace, from memory and from Redis (`SCAN` + `UNLINK` in
    /// batches, never `KEYS` or `FLUSHDB`). Resolves to how many Redis keys
    /// went. `.await` it, or [`wait`](Operation::wait) for it in sync code.
    ///
    /// The count is what Redis answered: a batch retried after a timeout,
    /// though its first attempt went through, counts the keys that attempt
    /// removed as already gone. They are removed either way.
    ///
    /// In a Redis Cluster each primary is walked in turn. If the slot map
    /// leaves a slot without a primary (a cluster still forming, a primary
    /// down), no walk starts: the error is a
    /// [`SlotMapError`](crate::SlotMapError), not a count that leaves keys
    /// out.
    ///
    /// ```
    /// # let runtime = cached_redis_core::Runtime::new(Default::default());
    /// let removed = runtime.clear("natal", "v1").wait()?;
    /// assert_eq!(removed, 0); // Redis is off: only memory was cleared
    /// # Ok::<(), cached_redis_core::ClearError>(())
    /// ```
    pub fn clear(&self, domain: &str, version: &str) -> Operation<'_, Result<u64, ClearError>> {
        let path = &self.inner.path;
        let config = &self.inner.config;
        let prefix = domain_prefix(&config.namespace, version, domain);
        Operation::new(async move {
            let prefix = prefix?;
            let forget_locally = || {
                if let Some(memory) = &path.memory {
                    memory.remove_prefix(prefix.as_bytes());
                }
                path.in_flight.forget_prefix(prefix.as_bytes());
            };
            forget_locally();
            let Some(redis) = &path.redis else {
                return Ok(0);
            };
            // A write started before the clear must not land after the walk
            // passed its key: let those finish first. Each has the operation
            // deadline once the I/O thread runs it; on a busy system new
            // writes keep coming, so the wait is bounded rather than until
            // none is left.
            redis.flush(config.redis_timeout.saturating_mul(2)).await;
            let removed = redis.clear(&prefix).await?;
            // Calls meanwhile may have taken pre-clear entries from Redis
            // into memory.
            forget_locally();
            Ok(removed)
        })
    }

    /// Waits until every Redis write in flight has finished, at most `wait`;
    /// resolves to `true` when none is left. Call it on shutdown. `.await`
    /// it, or [`wait`](Operation::wait) for it in sync code.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let runtime = cached_redis_core::Runtime::new(Default::default());
    /// assert!(runtime.flush(Duration::from_secs(5)).wait());
    /// ```
    pub fn flush(&self, wait: Duration) -> Operation<'_, bool> {
        let redis = self.inner.path.redis.as_deref();
        Operation::new(async move {
            match redis {
                Some(redis) => redis.flush(wait).await,
                None => true,
            }
        })
    }

    pub(crate) fn call_path(&self) -> &CallPath {
        &self.inner.path
    }
}

/// An operation that talks to Redis — [`Runtime::clear`],
/// [`Runtime::flush`], a companion's `invalidate`, the
/// [`admin`](crate::admin) module's requests: `.await` it in async code, or
/// [`wait`](Operation::wait) for it in sync code.
#[must_use = "an operation does nothing until it is awaited or waited for"]
pub struct Operation<'a, T> {
    future: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<'a, T> Operation<'a, T> {
    pub(crate) fn new(future: impl Future<Output = T> + Send + 'a) -> Self {
        Operation {
            future: Box::pin(future),
        }
    }

    /// Blocks this thread until the operation is done. Safe anywhere,
    /// inside an async runtime too: the operation is driven on this thread,
    /// and what it waits for (Redis, timers) completes on the cache's own
    /// threads, never on the caller's executor.
    pub fn wait(self) -> T {
        crate::park::block_on(self.future)
    }

    /// [`wait`](Operation::wait), at most `limit`: `None` if the limit
    /// passed first. The operation then stops where it was — a `clear` cut
    /// short has removed some of the domain's keys, not all.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let runtime = cached_redis_core::Runtime::new(Default::default());
    /// let removed = runtime.clear("natal", "v1").wait_for(Duration::from_secs(30));
    /// assert!(matches!(removed, Some(Ok(0))));
    /// ```
    pub fn wait_for(self, limit: Duration) -> Option<T> {
        match Instant::now().checked_add(limit) {
            Some(deadline) => crate::park::block_on_until(self.future, deadline),
            None => Some(self.wait()),
        }
    }
}

impl<'a, T> IntoFuture for Operation<'a, T> {
    type Output = T;
    type IntoFuture = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        self.future
    }
}

impl<T> std::fmt::Debug for Operation<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation").finish_non_exhaustive()
    }
}
