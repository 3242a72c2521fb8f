//! Redis as the runtime uses it: every operation admitted by the circuit
//! breaker, run on the I/O thread under its deadline, and its outcome fed
//! back to the breaker from that thread — so a caller that stops waiting
//! (a cancelled future, a sync caller's timeout) never leaves the breaker
//! without an answer.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::breaker::{Breaker, BreakerState, Evidence, Pass, Transition};
use crate::config::Config;
use crate::io::IoThread;
use crate::store::{Bytes, RedisStore, Store, StoreError, Timeouts};
use crate::telemetry::Telemetry;

/// Sync callers wait this much longer than the Redis deadline for the I/O
/// thread's answer before giving up on it, so a busy I/O thread costs a
/// fallback rather than a hang.
pub(crate) const BLOCKING_MARGIN: Duration = Duration::from_millis(20);

pub(crate) struct RedisBackend {
    store: RedisStore,
    io: OnceLock<Option<IoThread>>,
    writes: Arc<Writes>,
    breaker: Arc<Breaker>,
    telemetry: Arc<Telemetry>,
    wait_limit: Duration,
}

/// Bounds the Redis writes in flight and tells `flush` when none is left.
struct Writes {
    permits: Arc<Semaphore>,
    max: usize,
    idle: Notify,
}

impl RedisBackend {
    pub(crate) fn new(
        config: &Config,
        telemetry: Arc<Telemetry>,
    ) -> Result<RedisBackend, StoreError> {
        let timeouts = Timeouts {
            operation: config.redis_timeout,
            connect: config.connect_timeout,
            retries: config.redis_retries,
        };
        Ok(RedisBackend {
            store: RedisStore::new(&config.redis_url, timeouts)?,
            io: OnceLock::new(),
            writes: Arc::new(Writes {
                permits: Arc::new(Semaphore::new(config.max_pending_writes)),
                max: config.max_pending_writes,
                idle: Notify::new(),
            }),
            breaker: Arc::new(Breaker::new(config.breaker_failures, config.breaker_open)),
            telemetry,
            wait_limit: config.redis_timeout.saturating_add(BLOCKING_MARGIN),
        })
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The I/O thread, started on first use so that building a runtime never waits.
    fn io(&self) -> Result<&IoThread, StoreError> {
        self.io
            .get_or_init(|| {
                IoThread::start("cached-redis-io")
                    .map_err(|err| tracing::error!(error = %err, "cannot start the cache I/O thread; Redis is unused"))
                    .ok()
            })
            .as_ref()
            .ok_or(StoreError::IoUnavailable)
    }

    /// Admits an operation and wraps it so its outcome reaches the breaker.
    #[allow(clippy::type_complexity)]
    fn guarded<T, F>(
        &self,
        op: impl FnOnce(RedisStore) -> F,
    ) -> Result<
        (
            &IoThread,
            impl Future<Output = Result<T, StoreError>> + Send + 'static,
        ),
        StoreError,
    >
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let io = self.io()?;
        let pass = self.breaker.admit().ok_or(StoreError::CircuitOpen)?;
        if pass == Pass::Probe {
            self.telemetry.breaker(BreakerState::HalfOpen);
        }
        let verdict = Verdict {
            breaker: Arc::clone(&self.breaker),
            store: self.store.clone(),
            telemetry: Arc::clone(&self.telemetry),
            pass: Some(pass),
        };
        let op = op(self.store.clone());
        // The deadline counts from the caller's request, not from when the
        // I/O thread gets to it. Taken from the std clock: a caller's paused
        // tokio test clock must not make it expire at once.
        let deadline = tokio::time::Instant::from_std(Instant::now() + self.wait_limit);
        Ok((io, async move {
            let mut verdict = verdict;
            // The store's own deadline (from when it starts) fires first for
            // an operation that started in time; this one fires first only
            // when the operation queued here too long — no news about Redis.
            let result = tokio::time::timeout_at(deadline, op)
                .await
                .unwrap_or(Err(StoreError::Overloaded));
            verdict.give(
                match &result {
                    // A wrong-type reply is a data problem; Redis itself answered.
                    Ok(_) | Err(StoreError::WrongType) => Evidence::Healthy,
                    Err(StoreError::Overloaded) => Evidence::None,
                    Err(_) => Evidence::Failed,
                },
                result.as_ref().err(),
            );
            result
        }))
    }

    pub(crate) async fn get(&self, key: Arc<str>) -> Result<Option<Bytes>, StoreError> {
        let (io, op) = self.guarded(|store| async move { store.get(&key).await })?;
        io.run(op).await.unwrap_or(Err(StoreError::IoUnavailable))
    }

    pub(crate) fn get_blocking(&self, key: Arc<str>) -> Result<Option<Bytes>, StoreError> {
        let (io, op) = self.guarded(|store| async move { store.get(&key).await })?;
        io.run_blocking(op, self.wait_limit)
            .unwrap_or(Err(StoreError::Timeout(self.wait_limit)))
    }

    /// Writes behind the caller. `Err` when the write was not even started:
    /// too many in flight, the breaker open, or no I/O thread.
    pub(crate) fn set(
        &self,
        key: Arc<str>,
        bytes: Bytes,
        ttl: Duration,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) -> Result<(), WriteSkipped> {
        let permit: OwnedSemaphorePermit = Arc::clone(&self.writes.permits)
            .try_acquire_owned()
            .map_err(|_| WriteSkipped::QueueFull)?;
        let (io, op) = self
            .guarded(|store| async move { store.set(&key, bytes, ttl).await })
            .map_err(|_| WriteSkipped::Unavailable)?;
        let writes = Arc::clone(&self.writes);
        io.spawn(async move {
            let result = op.await;
            if let Err(err) = &result {
                tracing::debug!(error = %err, "redis write failed");
            }
            done(result);
            drop(permit);
            if writes.permits.available_permits() == writes.max {
                writes.idle.notify_waiters();
            }
        });
        Ok(())
    }

    /// Deletes an invalid entry in the background, only if it is unchanged
    /// (`bad`), or only while it is not a string (`None`).
    pub(crate) fn purge(&self, key: Arc<str>, bad: Option<Bytes>) {
        let guarded = self.guarded(|store| async move {
            match bad {
                Some(bytes) => store.purge(&key, bytes).await,
                None => store.purge_wrong_type(&key).await,
            }
        });
        if let Ok((io, op)) = guarded {
            io.spawn(async move {
                if let Err(err) = op.await {
                    tracing::debug!(error = %err, "purging an invalid entry failed");
                }
            });
        }
    }

    /// Clears a domain. An operator's explicit request: it is not subject to
    /// the breaker, and each `SCAN`/`UNLINK` round trip has the operation
    /// deadline rather than the whole walk, which on a large database takes
    /// as long as it takes.
    pub(crate) async fn clear(&self, prefix: String) -> Result<u64, StoreError> {
        let store = self.store.clone();
        self.io()?
            .run(async move { store.clear(&prefix).await })
            .await
            .unwrap_or(Err(StoreError::IoUnavailable))
    }

    pub(crate) fn clear_blocking(&self, prefix: String, wait: Duration) -> Result<u64, StoreError> {
        let store = self.store.clone();
        self.io()?
            .run_blocking(async move { store.clear(&prefix).await }, wait)
            .unwrap_or(Err(StoreError::Timeout(wait)))
    }

    /// Waits until no write is in flight, at most `wait`. Does not hold up
    /// new writes meanwhile.
    pub(crate) fn flush_future(
        &self,
        wait: Duration,
    ) -> Result<(&IoThread, impl Future<Output = bool> + Send + 'static), StoreError> {
        let io = self.io()?;
        let writes = Arc::clone(&self.writes);
        Ok((io, async move {
            let idle = async {
                loop {
                    let notified = writes.idle.notified();
                    let mut notified = std::pin::pin!(notified);
                    notified.as_mut().enable();
                    if writes.permits.available_permits() == writes.max {
                        return;
                    }
                    notified.await;
                }
            };
            tokio::time::timeout(wait, idle).await.is_ok()
        }))
    }
}

/// Why a write was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteSkipped {
    QueueFull,
    Unavailable,
}

/// Reports an admitted operation's outcome to the breaker exactly once —
/// and, if the operation is dropped unfinished (its runtime shutting down),
/// reports "no evidence", so a probe can never leave the breaker half-open.
struct Verdict {
    breaker: Arc<Breaker>,
    store: RedisStore,
    telemetry: Arc<Telemetry>,
    pass: Option<Pass>,
}

impl Verdict {
    fn give(&mut self, evidence: Evidence, error: Option<&StoreError>) {
        let Some(pass) = self.pass.take() else { return };
        let probe = pass == Pass::Probe;
        let transition = self.breaker.record(pass, evidence);
        if let Some(transition) = transition {
            log_transition(transition, &self.store, &self.telemetry, error);
        }
        if probe || transition.is_some() {
            // A probe without evidence changes the state without a
            // transition (back to open, ready for the next probe).
            self.telemetry.breaker(self.breaker.state());
        }
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        self.give(Evidence::None, None);
    }
}

/// Logs a breaker transition (rate-limited per kind, so a flapping Redis
/// or a short open window cannot flood the log), and drops the connection
/// when the breaker stops trusting Redis, so the next probe starts from a
/// fresh connection rather than a stuck one.
fn log_transition(
    transition: Transition,
    store: &RedisStore,
    telemetry: &Telemetry,
    error: Option<&StoreError>,
) {
    let error = error.map(ToString::to_string);
    match transition {
        Transition::Opened => {
            store.reset();
            telemetry.warn("breaker_opened", |suppressed| {
                tracing::warn!(
                    ?error,
                    suppressed,
                    "redis circuit breaker opened; serving from memory"
                );
            });
        }
        Transition::Reopened => {
            store.reset();
            telemetry.warn("breaker_reopened", |suppressed| {
                tracing::warn!(
                    ?error,
                    suppressed,
                    "redis probe failed; circuit breaker open again"
                );
            });
        }
        Transition::Closed => telemetry.warn("breaker_closed", |suppressed| {
            tracing::warn!(suppressed, "redis probe succeeded; circuit breaker closed");
        }),
    }
}
