use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Client, RedisError, Script, Value};
use tokio::time::timeout;

use super::connection::Connector;
use super::{Bytes, Store, StoreError, StoreStats};

/// Keys removed per `UNLINK` while clearing a domain.
const CLEAR_BATCH: usize = 500;

/// Deletes the key only while it still holds the bytes we judged bad, so a
/// valid value written meanwhile by another process survives.
const DELETE_IF_UNCHANGED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0";

/// Deletes the key only while it still holds a non-string value.
const DELETE_IF_NOT_STRING: &str = r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'string' and kind ~= 'none' then
  return redis.call('UNLINK', KEYS[1])
end
return 0";

/// How long a [`RedisStore`] may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Deadline of one operation, connection and retries included.
    pub operation: Duration,
    /// Deadline of one connection attempt.
    pub connect: Duration,
    /// Extra attempts after a transient failure, within the operation deadline.
    pub retries: u32,
}

/// A Redis store: lazily connected, every operation under a deadline.
///
/// Its futures must run on a tokio runtime; the [`Runtime`](crate::Runtime)
/// runs them on its own I/O thread so that cached functions work from any
/// context.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Arc<Connector>,
    op_timeout: Duration,
    retries: u32,
    errors: AtomicU64,
    delete_if_unchanged: Script,
    delete_if_not_string: Script,
}

impl RedisStore {
    /// A store for `url`. Nothing connects until the first operation.
    pub fn new(url: &str, timeouts: Timeouts) -> Result<Self, StoreError> {
        let client = Client::open(url)?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                connector: Arc::new(Connector::new(client, timeouts.connect, timeouts.operation)),
                op_timeout: timeouts.operation,
                retries: timeouts.retries,
                errors: AtomicU64::new(0),
                delete_if_unchanged: Script::new(DELETE_IF_UNCHANGED),
                delete_if_not_string: Script::new(DELETE_IF_NOT_STRING),
            }),
        })
    }

    /// Deletes `key` if it still holds exactly `bad`; returns whether it did.
    pub async fn purge(&self, key: &str, bad: Bytes) -> Result<bool, StoreError> {
        let script = &self.inner.delete_if_unchanged;
        let bad = &*bad;
        let deleted: i64 = self
            .run(|mut c| async move { script.key(key).arg(bad).invoke_async(&mut c).await })
            .await?;
        Ok(deleted > 0)
    }

    /// Deletes `key` if it holds a non-string value; returns whether it did.
    pub async fn purge_wrong_type(&self, key: &str) -> Result<bool, StoreError> {
        let script = &self.inner.delete_if_not_string;
        let deleted: i64 = self
            .run(|mut c| async move { script.key(key).invoke_async(&mut c).await })
            .await?;
        Ok(deleted > 0)
    }

    /// Runs one command on the shared connection. Attempts that fail fast
    /// with a transient error (see [`is_transient`]) are retried after a
    /// jittered, doubling backoff; all attempts together stay within the one
    /// operation deadline.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = self.inner.op_timeout;
        // The generation of the connection the last attempt used, so a
        // failure discards that one and not a fresh one made meanwhile.
        let mut used = None;
        let attempts = async {
            let mut attempt = 0;
            loop {
                let result = match self.inner.connector.get().await {
                    Ok((conn, generation)) => {
                        used = Some(generation);
                        op(conn).await
                    }
                    Err(err) => Err(err),
                };
                let Err(err) = result else {
                    return result.map_err(StoreError::from);
                };
                if err.is_unrecoverable_error() || err.is_connection_dropped() {
                    self.inner.connector.reset_generation(used);
                }
                if attempt >= self.inner.retries || !is_transient(&err) {
                    return Err(StoreError::from(err));
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
        };
        let outcome = timeout(deadline, attempts).await;
        let result = outcome.unwrap_or_else(|_| {
            // A connection that lets a command time out may be dead without
            // knowing it (a silent network drop, a failed-over address):
            // replacing it costs one reconnect, keeping it may cost every
            // call until the breaker opens.
            self.inner.connector.reset_generation(used);
            Err(StoreError::Timeout(deadline))
        });
        if result.is_err() {
            self.inner.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Drops the connection so the next operation reconnects (the breaker
    /// calls this when it stops trusting Redis).
    pub(crate) fn reset(&self) {
        self.inner.connector.reset();
    }
}

impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        {
            let value: Value = self
                .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
                .await
                .map_err(|err| match err {
                    StoreError::Redis(e) if e.code() == Some("WRONGTYPE") => StoreError::WrongType,
                    other => other,
                })?;
            match value {
                Value::Nil => Ok(None),
                Value::BulkString(bytes) => Ok(Some(bytes.into())),
                _ => Err(StoreError::WrongType),
            }
        }
    }

    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        // Redis rejects PX 0; a sub-millisecond TTL rounds up rather than failing.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        async move {
            let value = &*value;
            self.run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut c)
                    .await
            })
            .await
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.run(|mut c| async move { redis::cmd("UNLINK").arg(key).query_async(&mut c).await })
            .await
    }

    fn clear(&self, prefix: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let pattern = format!("{prefix}*");
        async move {
            let mut cursor: u64 = 0;
            let mut removed = 0;
            loop {
                let pattern = &pattern;
                let (next, keys): (u64, Vec<String>) = self
                    .run(|mut c| async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(CLEAR_BATCH)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                for batch in keys.chunks(CLEAR_BATCH) {
                    let unlinked: u64 = self
                        .run(|mut c| async move {
                            redis::cmd("UNLINK").arg(batch).query_async(&mut c).await
                        })
                        .await?;
                    removed += unlinked;
                }
                if next == 0 {
                    return Ok(removed);
                }
                cursor = next;
            }
        }
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            entries: None,
            errors: self.inner.errors.load(Ordering::Relaxed),
        }
    }
}

/// Errors worth another attempt within the same deadline: a connection
/// that broke under us (a restarted server; the retry reconnects) and the
/// server's own "try again" replies. A refused connection is not retried:
/// nothing listens, and waiting to ask again would only slow the fallback.
fn is_transient(err: &RedisError) -> bool {
    (err.is_connection_dropped() && !err.is_connection_refusal())
        || matches!(err.code(), Some("LOADING" | "TRYAGAIN" | "MASTERDOWN"))
}

/// Full-jitter exponential backoff: uniform in `[0, 1 ms × 2^attempt]`.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let ceiling_us = 1_000_u64 << attempt.min(6);
    // `RandomState` is seeded per instance: a dependency-free source of jitter.
    let noise = RandomState::new().hash_one(attempt);
    Duration::from_micros(noise % ceiling_us)
}
