//! The one shared Redis connection of a runtime, made lazily and replaced
//! when it fails.
//!
//! The connection's driver runs on the cache's I/O thread, so it outlives
//! whichever executor first needed it; callers hand commands to it and await
//! the replies directly. Connecting happens in a task of its own on that
//! thread, shared by every caller that needs the connection meanwhile, so a
//! caller giving up at its deadline does not abort the attempt for the
//! others. Every attempt starts from the client's settings, never from a
//! cached failure — unlike the redis crate's `ConnectionManager`, which keeps
//! returning an authentication error forever — so a restarted server or a
//! corrected password is picked up by the next attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::io::Io;
use crate::telemetry::Telemetry;

/// What a connection attempt produced: a connection and its generation.
type Attempt = Option<Result<(MultiplexedConnection, u64), RedisError>>;

pub(super) struct Connection {
    client: Client,
    connect_timeout: Duration,
    telemetry: Arc<Telemetry>,
    slot: Mutex<Slot>,
    generations: AtomicU64,
}

enum Slot {
    Empty,
    Connecting(watch::Receiver<Attempt>),
    /// A connection and its generation, which tells connections apart.
    Ready(MultiplexedConnection, u64),
}

impl Connection {
    pub(super) fn new(
        client: Client,
        connect_timeout: Duration,
        telemetry: Arc<Telemetry>,
    ) -> Connection {
        Connection {
            client,
            connect_timeout,
            telemetry,
            slot: Mutex::new(Slot::Empty),
            generations: AtomicU64::new(0),
        }
    }

    /// The shared connection and its generation, connecting if there is none.
    pub(super) async fn get(
        self: &Arc<Self>,
        io: &Io,
    ) -> Result<(MultiplexedConnection, u64), RedisError> {
        let mut receiver = {
            let mut slot = self.lock();
            match &*slot {
                Slot::Ready(conn, generation) => return Ok((conn.clone(), *generation)),
                Slot::Connecting(receiver) => receiver.clone(),
                Slot::Empty => {
                    let (sender, receiver) = watch::channel(None);
                    *slot = Slot::Connecting(receiver.clone());
                    io.spawn(Arc::clone(self).connect(sender));
                    receiver
                }
            }
        };
        let attempt = receiver
            .wait_for(Option::is_some)
            .await
            .map(|attempt| attempt.clone());
        if let Ok(Some(result)) = attempt {
            return result;
        }
        // The attempt's task is gone: free the slot so the next operation
        // starts a new attempt instead of failing forever.
        let mut slot = self.lock();
        if matches!(&*slot, Slot::Connecting(r) if r.same_channel(&receiver)) {
            *slot = Slot::Empty;
        }
        Err(RedisError::from((
            ErrorKind::Io,
            "the connection attempt was abandoned",
        )))
    }

    async fn connect(self: Arc<Self>, sender: watch::Sender<Attempt>) {
        // No response timeout of the client's own: it would arm a timer on
        // the caller's executor, which may have none. Each operation's
        // deadline is ours (see `Redis::run`); the connect deadline is this one.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let attempt = timeout(
            self.connect_timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from((
                ErrorKind::Io,
                "no connection within the connect timeout",
            )))
        })
        .map(|conn| (conn, self.generations.fetch_add(1, Ordering::Relaxed) + 1));
        *self.lock() = match &attempt {
            Ok((conn, generation)) => Slot::Ready(conn.clone(), *generation),
            Err(err) => {
                // Why, rate-limited: a certificate or password that does
                // not verify fails every attempt the same way.
                self.telemetry.warn("connect", |suppressed| {
                    tracing::warn!(error = %err, suppressed, "cannot connect to Redis; calls fall back");
                });
                tracing::debug!(error = %err, "redis connection attempt failed");
                Slot::Empty
            }
        };
        sender.send_replace(Some(attempt));
    }

    /// Drops the connection so the next operation reconnects.
    pub(super) fn reset(&self) {
        let mut slot = self.lock();
        if matches!(*slot, Slot::Ready(..)) {
            *slot = Slot::Empty;
        }
    }

    /// Drops the connection of `generation` if it is still the current one,
    /// so a failure never discards a fresh connection made meanwhile.
    /// Generations start at 1; 0 means no connection was used.
    pub(super) fn reset_generation(&self, generation: u64) {
        let mut slot = self.lock();
        if matches!(*slot, Slot::Ready(_, current) if current == generation) {
            *slot = Slot::Empty;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every critical section leaves the slot consistent.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
