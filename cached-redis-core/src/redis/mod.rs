//! Redis as the runtime uses it: every operation admitted by the circuit
//! breaker and run under one deadline, counted from the caller's request,
//! that covers connecting, the round trip and any retry.
//!
//! The caller awaits the reply itself; the connection's driver and the
//! deadline's timer live on the cache's own threads (see `io`). If the
//! caller's future is dropped mid-operation, a drop guard tells the breaker
//! "no evidence", so a cancelled probe never leaves it half-open.

mod breaker;
mod cluster;
mod connection;
mod credentials;
mod error;
mod sentinel;
pub(crate) mod topology;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionLike;
use ::redis::{Cmd, Pipeline, Script, Value};
use tokio::sync::Notify;

pub use self::breaker::BreakerState;
use self::breaker::{Breaker, Evidence, Pass, Transition};
use self::cluster::{Node, Nodes};
pub(crate) use self::cluster::{parse_slots, walk};
pub(crate) use self::connection::{Conn, Connection, Connector, Request};
pub(crate) use self::credentials::{Credentials, Secret, is_tls};
pub use self::error::{RedisError, SlotMapError};
use self::topology::Topology;
use crate::config::Config;
use crate::io::io;
use crate::near::NearCache;
use crate::telemetry::{Telemetry, WARN_EVERY};

/// Keys removed per `UNLINK` while clearing a domain.
const CLEAR_BATCH: usize = 500;

/// Deletes the key only while it still holds the bytes we judged bad, so a
/// valid value written meanwhile by another process survives.
pub(crate) const DELETE_IF_UNCHANGED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0";

/// Deletes the key only while it still holds a non-string value.
pub(crate) const DELETE_IF_NOT_STRING: &str = r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'string' and kind ~= 'none' then
  return redis.call('UNLINK', KEYS[1])
end
return 0";

pub(crate) struct Redis {
    connection: Arc<Connection>,
    /// The near-cache, and the tracking connection it learns of changes
    /// through (RESP3, made on first use); a single node's only.
    near: Option<Near>,
    health: Health,
    deadline: Duration,
    retries: u32,
    writes: Writes,
    telemetry: Arc<Telemetry>,
    delete_if_unchanged: Script,
    delete_if_not_string: Script,
}

/// The near-cache and its tracking connection.
struct Near {
    connection: Arc<Connection>,
    copies: Arc<NearCache>,
}

/// Which breaker admits an operation.
enum Health {
    /// One node, or the master Sentinel names: one breaker.
    One(Breaker),
    /// A cluster: one breaker per primary, by the slot map, and one for
    /// keys whose slot the map does not know (before the cluster was
    /// first reached).
    PerNode {
        unmapped: Breaker,
        nodes: Arc<Nodes>,
    },
}

/// Counts the writes in flight, bounds them, and tells `flush` when none is left.
struct Writes {
    in_flight: AtomicUsize,
    max: usize,
    idle: Notify,
}

/// A slot among the writes in flight, given back when dropped.
pub(crate) struct WritePermit {
    redis: Arc<Redis>,
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        let writes = &self.redis.writes;
        if writes.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            writes.idle.notify_waiters();
        }
    }
}

impl Redis {
    pub(crate) fn new(config: &Config, telemetry: Arc<Telemetry>) -> Result<Redis, RedisError> {
        let credentials = &config.credentials;
        let connector = Connector::for_deployment(config)?;
        // A probe is bounded by its deadline when polled; twice that
        // means its caller stopped polling it.
        let breaker = Breaker::new(
            config.breaker_failures,
            config.breaker_open,
            config.redis_timeout.saturating_mul(2),
        );
        let near = match &config.topology {
            Topology::Single => {
                let copies = Arc::new(NearCache::new(
                    config.memory_capacity,
                    config.memory_max_bytes,
                ));
                let connection = Arc::new(Connection::new(
                    Connector::Tracking {
                        client: credentials.resp3_client(config.redis_url.as_str())?,
                        copies: Arc::clone(&copies),
                    },
                    config.connect_timeout,
                    Arc::clone(&telemetry),
                ));
                Some(Near { connection, copies })
            }
            _ => None,
        };
        let cluster = matches!(connector, Connector::Cluster(_));
        let connection = Arc::new(Connection::new(
            connector,
            config.connect_timeout,
            Arc::clone(&telemetry),
        ));
        let health = if cluster {
            let nodes = Arc::new(Nodes::new(breaker.like(), Arc::clone(&telemetry)));
            if let Some(io) = io() {
                Nodes::refresh_periodically(
                    Arc::downgrade(&nodes),
                    Arc::downgrade(&connection),
                    io,
                    config.redis_timeout,
                );
            }
            Health::PerNode {
                nodes,
                unmapped: breaker,
            }
        } else {
            Health::One(breaker)
        };
        Ok(Redis {
            connection,
            near,
            health,
            deadline: config.redis_timeout,
            retries: config.redis_retries,
            writes: Writes {
                in_flight: AtomicUsize::new(0),
                max: config.max_pending_writes,
                idle: Notify::new(),
            },
            telemetry,
            delete_if_unchanged: Script::new(DELETE_IF_UNCHANGED),
            delete_if_not_string: Script::new(DELETE_IF_NOT_STRING),
        })
    }

    /// The breaker's state; in a cluster, the worst primary's.
    pub(crate) fn breaker_state(&self) -> BreakerState {
        match &self.health {
            Health::One(breaker) => breaker.state(),
            // The unmapped breaker stops mattering once the map is read.
            Health::PerNode { unmapped, nodes } => {
                nodes.worst_state().unwrap_or_else(|| unmapped.state())
            }
        }
    }

    /// The state of the breaker that admits operations on `key`.
    pub(crate) fn breaker_state_for(&self, key: &[u8]) -> BreakerState {
        match &self.health {
            Health::One(breaker) => breaker.state(),
            Health::PerNode { unmapped, nodes } => nodes
                .for_key(key)
                .map_or_else(|| unmapped.state(), |node| node.breaker.state()),
        }
    }

    /// `GET key`: `None` when absent.
    pub(crate) async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, RedisError> {
        self.get_on(&self.connection, key).await
    }

    /// [`get`](Self::get) on `connection`.
    async fn get_on(
        &self,
        connection: &Arc<Connection>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, RedisError> {
        let mut cmd = Cmd::new();
        cmd.arg("GET").arg(key);
        let verdict = self.admit(key)?;
        let reply = self
            .run_with(connection, Request::Command(None, &cmd), self.deadline())
            .await;
        match verdict.judge(reply)? {
            Value::Nil => Ok(None),
            Value::BulkString(bytes) => Ok(Some(bytes)),
            _ => Err(RedisError::WrongType),
        }
    }

    /// The near-cache, when there is one (a single node).
    pub(crate) fn near(&self) -> Option<&NearCache> {
        self.near.as_ref().map(|near| &*near.copies)
    }

    /// `GET key` through the tracking connection, so the server tells this
    /// process when the key changes (see `near`); a plain `GET` without one.
    pub(crate) async fn get_tracked(&self, key: &[u8]) -> Result<Option<Vec<u8>>, RedisError> {
        let connection = self
            .near
            .as_ref()
            .map_or(&self.connection, |near| &near.connection);
        self.get_on(connection, key).await
    }

    /// `SET key bytes PX ttl`.
    pub(crate) async fn set(
        &self,
        key: &[u8],
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<(), RedisError> {
        let mut cmd = Cmd::new();
        cmd.arg("SET").arg(key).arg(bytes).arg("PX").arg(px(ttl));
        let verdict = self.admit(key)?;
        verdict
            .judge(self.run(&cmd, self.deadline()).await)
            .map(drop)
    }

    /// `SET key value NX PX ttl`: `true` if the key was free and is now ours.
    pub(crate) async fn set_nx(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let mut cmd = Cmd::new();
        cmd.arg("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(px(ttl));
        let verdict = self.admit(key)?;
        match verdict.judge(self.run(&cmd, self.deadline()).await)? {
            Value::Nil => Ok(false),
            _ => Ok(true),
        }
    }

    /// `UNLINK key`: `true` if it was there.
    pub(crate) async fn unlink(&self, key: &[u8]) -> Result<bool, RedisError> {
        let mut cmd = Cmd::new();
        cmd.arg("UNLINK").arg(key);
        let verdict = self.admit(key)?;
        verdict
            .judge(self.run(&cmd, self.deadline()).await)
            .and_then(parse::<i64>)
            .map(|removed| removed > 0)
    }

    /// Deletes `key` only while it still holds exactly `bad`, or, with
    /// `None`, only while it holds a non-string value; `true` if it did.
    pub(crate) async fn purge(&self, key: &[u8], bad: Option<&[u8]>) -> Result<bool, RedisError> {
        let script = match bad {
            Some(_) => &self.delete_if_unchanged,
            None => &self.delete_if_not_string,
        };
        let invoke = |first: &str, script: &str| {
            let mut cmd = Cmd::new();
            cmd.arg(first).arg(script).arg(1).arg(key);
            if let Some(bytes) = bad {
                cmd.arg(bytes);
            }
            cmd
        };
        let verdict = self.admit(key)?;
        // One deadline for both round trips: by hash first; a server that
        // has not seen the script gets its text.
        let deadline = self.deadline();
        let result = match self
            .run(&invoke("EVALSHA", script.get_hash()), deadline)
            .await
        {
            Err(RedisError::Client(err)) if err.code() == Some("NOSCRIPT") => {
                let text = match bad {
                    Some(_) => DELETE_IF_UNCHANGED,
                    None => DELETE_IF_NOT_STRING,
                };
                self.run(&invoke("EVAL", text), deadline).await
            }
            other => other,
        };
        verdict
            .judge(result)
            .and_then(parse::<i64>)
            .map(|deleted| deleted > 0)
    }

    /// Removes every key starting with `prefix`, `SCAN` + `UNLINK` in
    /// batches; returns how many. An operator's explicit request: not
    /// subject to the breaker, and each round trip has the operation
    /// deadline rather than the whole walk, which on a large database takes
    /// as long as it takes.
    pub(crate) async fn clear(&self, prefix: &str) -> Result<u64, RedisError> {
        let Health::PerNode { nodes, .. } = &self.health else {
            let removed = self.clear_on(None, prefix).await;
            // This process's copies go too, at once: the server's
            // invalidations of them are still on their way, and the caller
            // may read right after.
            if let Some(near) = &self.near {
                near.copies.clear();
            }
            return removed;
        };
        // No cluster-wide SCAN: walk each primary the cluster names now.
        let io = io().ok_or(RedisError::NoIoThread)?;
        let ranges = nodes.load(&self.connection, io, self.deadline).await?;
        let mut removed = 0;
        for (host, port) in walk(&ranges)? {
            removed += self.clear_on(Some((&host, port)), prefix).await?;
        }
        Ok(removed)
    }

    /// [`clear`](Self::clear) on one node: the only one, or a cluster primary.
    async fn clear_on(&self, node: Option<(&str, u16)>, prefix: &str) -> Result<u64, RedisError> {
        let pattern = format!("{prefix}*");
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = Cmd::new();
            scan.arg("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CLEAR_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = parse(
                self.run_with(
                    &self.connection,
                    Request::Command(node, &scan),
                    self.deadline(),
                )
                .await?,
            )?;
            for batch in keys.chunks(CLEAR_BATCH) {
                let request = Request::Pipeline(node, &unlink_each(batch));
                let replies = self
                    .run_with(&self.connection, request, self.deadline())
                    .await?;
                removed += parse::<Vec<u64>>(replies)?.into_iter().sum::<u64>();
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// A slot for one more write in flight, unless `max_pending_writes` are.
    pub(crate) fn write_permit(self: &Arc<Self>) -> Option<WritePermit> {
        let writes = &self.writes;
        writes
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < writes.max).then_some(n + 1)
            })
            .ok()
            .map(|_| WritePermit {
                redis: Arc::clone(self),
            })
    }

    /// Waits until no write is in flight, at most `wait`; `true` when none
    /// is left. Does not hold up new writes meanwhile.
    pub(crate) async fn flush(&self, wait: Duration) -> bool {
        let Some(io) = io() else { return true };
        let idle = async {
            loop {
                let notified = self.writes.idle.notified();
                let mut notified = std::pin::pin!(notified);
                // Registered before checking, so a write ending in between is not missed.
                notified.as_mut().enable();
                if self.writes.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        match Instant::now().checked_add(wait) {
            Some(deadline) => io.timeout(deadline, idle).await.is_ok(),
            // A wait too long to express is a wait without a limit.
            None => {
                idle.await;
                true
            }
        }
    }

    /// An operation's deadline, counted from now: from the caller's request.
    fn deadline(&self) -> Instant {
        // Configuration bounds the deadline to a minute: this cannot overflow.
        Instant::now()
            .checked_add(self.deadline)
            .unwrap_or_else(Instant::now)
    }

    /// Permission from the breaker to contact Redis, as a guard that
    /// reports what the operation showed (or, dropped unfinished, nothing).
    fn admit(&self, key: &[u8]) -> Result<Verdict<'_>, RedisError> {
        let held = match &self.health {
            Health::One(breaker) => Held::Shared(breaker),
            Health::PerNode { unmapped, nodes } => match nodes.for_key(key) {
                Some(node) => Held::Node(node),
                None => {
                    self.refresh_slots();
                    Held::Shared(unmapped)
                }
            },
        };
        let Some(pass) = held.breaker().admit() else {
            if matches!(held, Held::Node(_)) {
                // The slot may have moved to a healthy primary since.
                self.refresh_slots();
            }
            return Err(RedisError::CircuitOpen);
        };
        if matches!(pass, Pass::Probe(_)) {
            self.telemetry.breaker(BreakerState::HalfOpen);
        }
        Ok(Verdict {
            redis: self,
            held,
            pass: Some(pass),
        })
    }

    /// Drops the connections, so the next operation starts from fresh ones
    /// — the tracking one with its copies (see `Connection::reset`): while
    /// the breaker was not trusting Redis, no change reached them.
    fn reset_connections(&self) {
        self.connection.reset();
        if let Some(near) = &self.near {
            near.connection.reset();
        }
    }

    /// In a cluster, reads the slot map again soon (rate-limited).
    fn refresh_slots(&self) {
        if let (Health::PerNode { nodes, .. }, Some(io)) = (&self.health, io()) {
            nodes.refresh(&self.connection, io, self.deadline);
        }
    }

    /// Sends `cmd` on the shared connection, connecting first if needed,
    /// all before `deadline`. An attempt that fails with a transient error
    /// (see [`is_transient`]) is retried after a jittered, doubling
    /// backoff, before the same deadline.
    async fn run(&self, cmd: &Cmd, deadline: Instant) -> Result<Value, RedisError> {
        self.run_with(&self.connection, Request::Command(None, cmd), deadline)
            .await
    }

    /// [`run`](Self::run) of `request` on `connection`.
    async fn run_with(
        &self,
        connection: &Arc<Connection>,
        request: Request<'_>,
        deadline: Instant,
    ) -> Result<Value, RedisError> {
        let io = io().ok_or(RedisError::NoIoThread)?;
        // The generation of the connection the last attempt used (0: none
        // yet), so a failure discards that one and not a fresh one made
        // meanwhile.
        let used = AtomicU64::new(0);
        let attempts = async {
            let mut attempt = 0;
            loop {
                let result = match connection.get(io).await {
                    Ok((mut conn, generation)) => {
                        used.store(generation, Ordering::Relaxed);
                        // A key's command goes through the boxed
                        // `ConnectionLike` future, as `query_async` does: the
                        // client's allocation keeps this future small, so
                        // moving a call costs little. The rest (`clear`'s)
                        // are boxed here, not to enlarge every GET's.
                        // An error reply comes back as a value; make it an error.
                        match request {
                            Request::Command(None, cmd) => {
                                ConnectionLike::req_packed_command(&mut conn, cmd).await
                            }
                            addressed => Box::pin(conn.send(addressed)).await,
                        }
                        .and_then(Value::extract_error)
                    }
                    Err(err) => Err(err),
                };
                let err = match result {
                    Ok(value) => return Ok(value),
                    Err(err) => err,
                };
                // A master demoted to replica answers READONLY: connect
                // again — through Sentinel, which names the new master; to
                // a single node's URL, which a managed service's failover
                // points at the new primary.
                if err.is_unrecoverable_error()
                    || err.is_connection_dropped()
                    || err.code() == Some("READONLY")
                {
                    connection.reset_generation(used.load(Ordering::Relaxed));
                }
                if attempt >= self.retries || !is_transient(&err) {
                    return Err(RedisError::Client(err));
                }
                io.sleep(backoff(attempt)).await;
                attempt += 1;
            }
        };
        match io.timeout(deadline, attempts).await {
            Ok(result) => result,
            Err(_elapsed) => {
                // A connection that lets a command time out may be dead
                // without knowing it (a silent network drop, a failed-over
                // address): replacing it costs one reconnect, keeping it may
                // cost every call until the breaker opens.
                connection.reset_generation(used.load(Ordering::Relaxed));
                Err(RedisError::Timeout(self.deadline))
            }
        }
    }
}

/// Reports an admitted operation's outcome to the breaker exactly once —
/// and, if the operation is dropped unfinished (a cancelled caller),
/// reports "no evidence", so a probe can never leave the breaker half-open.
struct Verdict<'a> {
    redis: &'a Redis,
    held: Held<'a>,
    pass: Option<Pass>,
}

/// The breaker an operation was admitted by.
enum Held<'a> {
    Shared(&'a Breaker),
    Node(Arc<Node>),
}

impl Held<'_> {
    fn breaker(&self) -> &Breaker {
        match self {
            Held::Shared(breaker) => breaker,
            Held::Node(node) => &node.breaker,
        }
    }
}

impl Verdict<'_> {
    /// Tells the breaker what `result` showed about Redis, and hands it back.
    fn judge(mut self, result: Result<Value, RedisError>) -> Result<Value, RedisError> {
        let result = result.map_err(|err| match err {
            RedisError::Client(err) if err.code() == Some("WRONGTYPE") => RedisError::WrongType,
            other => other,
        });
        if let Err(RedisError::Client(err)) = &result
            && err.code() == Some("NOPERM")
        {
            // A misconfigured ACL user fails the same way on every call:
            // say which permission is missing, rate-limited.
            self.redis.telemetry.warn("noperm", |suppressed| {
                tracing::warn!(error = %err, suppressed, "the Redis user lacks a permission the cache needs (see docs/security.md)");
            });
        }
        let evidence = match &result {
            // A wrong-type reply is a data problem; Redis itself answered.
            Ok(_) | Err(RedisError::WrongType) => Evidence::Healthy,
            Err(_) => Evidence::Failed,
        };
        self.give(evidence, result.as_ref().err());
        if evidence == Evidence::Failed {
            // A failure may mean the slot moved to another primary.
            self.redis.refresh_slots();
        }
        result
    }

    fn give(&mut self, evidence: Evidence, error: Option<&RedisError>) {
        let Some(pass) = self.pass.take() else { return };
        let probe = matches!(pass, Pass::Probe(_));
        let redis = self.redis;
        let transition = self.held.breaker().record(pass, evidence);
        if let Some(transition) = transition {
            let node = match &self.held {
                Held::Shared(_) => None,
                Held::Node(node) => Some(node.address()),
            };
            log_transition(transition, redis, node, error);
        }
        if probe || transition.is_some() {
            // A probe without evidence changes the state without a
            // transition (back to open, ready for the next probe).
            redis.telemetry.breaker(redis.breaker_state());
        }
    }
}

impl Drop for Verdict<'_> {
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
    redis: &Redis,
    node: Option<String>,
    error: Option<&RedisError>,
) {
    let error = error.map(ToString::to_string);
    let telemetry = &redis.telemetry;
    // In a cluster, per node: one primary's news must not hide another's.
    let (subject, every) = (node.as_deref().unwrap_or(""), WARN_EVERY);
    match transition {
        Transition::Opened => {
            redis.reset_connections();
            telemetry.warn_for("breaker_opened", subject, every, |suppressed| {
                tracing::warn!(
                    ?error,
                    node = node.as_deref(),
                    suppressed,
                    "redis circuit breaker opened; serving from memory"
                );
            });
        }
        Transition::Reopened => {
            redis.reset_connections();
            telemetry.warn_for("breaker_reopened", subject, every, |suppressed| {
                tracing::warn!(
                    ?error,
                    node = node.as_deref(),
                    suppressed,
                    "redis probe failed; circuit breaker open again"
                );
            });
        }
        Transition::Closed => telemetry.warn_for("breaker_closed", subject, every, |suppressed| {
            tracing::warn!(
                node = node.as_deref(),
                suppressed,
                "redis probe succeeded; circuit breaker closed"
            );
        }),
    }
}

/// A TTL as `PX` milliseconds. Redis rejects `PX 0`: a sub-millisecond
/// TTL rounds up rather than failing.
fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One `UNLINK` per key, to send in one round trip to the node `SCAN` found
/// `keys` on. A cluster client would split one many-key `UNLINK` by slot
/// and leave out, without a word, the slots of a node it holds no
/// connection to; a pipeline addressed to the node fails instead.
pub(crate) fn unlink_each(keys: &[Vec<u8>]) -> Pipeline {
    let mut unlinks = Pipeline::with_capacity(keys.len());
    for key in keys {
        unlinks.cmd("UNLINK").arg(key);
    }
    unlinks
}

/// Reads a reply as `T`.
fn parse<T: ::redis::FromRedisValue>(reply: Value) -> Result<T, RedisError> {
    ::redis::from_redis_value(reply).map_err(|err| RedisError::Client(err.into()))
}

/// Errors worth another attempt within the same deadline: a connection
/// that broke under us (a restarted server; the retry reconnects) and the
/// server's own "try again" replies, and `READONLY` (a demoted master: the
/// retry reconnects to the new one), and a cluster client that held no
/// connection to the node a command was addressed to (it keeps one only
/// to the nodes of the slot map it last read, and the node it read it
/// from may not have known yet what that one serves; the retry gets a
/// fresh client, which reads the map again). A refused connection is not retried: nothing listens,
/// and waiting to ask again would only slow the fallback.
fn is_transient(err: &::redis::RedisError) -> bool {
    err.kind() == ::redis::ErrorKind::ClusterConnectionNotFound
        || (err.is_connection_dropped() && !err.is_connection_refusal())
        || matches!(
            err.code(),
            Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "READONLY")
        )
}

/// Full-jitter exponential backoff: uniform in `[0, 1 ms × 2^attempt]`.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let ceiling_us = 1_000_u64 << attempt.min(6);
    // `RandomState` is seeded per instance: a dependency-free source of jitter.
    let noise = RandomState::new().hash_one(attempt);
    Duration::from_micros(noise % ceiling_us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::park::block_on;
    use cached_redis_test_support::RedisServer;

    fn redis(server: &RedisServer) -> Redis {
        let config = Config::builder()
            .redis_enabled(true)
            .redis_url(server.url())
            .redis_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Redis::new(&config, Arc::default()).unwrap()
    }

    fn set(server: &RedisServer, key: &str, value: &[u8]) {
        let () = ::redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query(&mut server.connection())
            .unwrap();
    }

    fn get(server: &RedisServer, key: &str) -> Option<Vec<u8>> {
        ::redis::cmd("GET")
            .arg(key)
            .query(&mut server.connection())
            .unwrap()
    }

    #[test]
    fn purge_deletes_only_unchanged_bytes() {
        // A valid value written between our read and our purge must survive.
        let server = RedisServer::start();
        let redis = redis(&server);
        set(&server, "k", b"newer valid value");
        assert!(!block_on(redis.purge(b"k", Some(b"the bytes we judged bad"))).unwrap());
        assert_eq!(
            get(&server, "k").as_deref(),
            Some(&b"newer valid value"[..])
        );
        assert!(block_on(redis.purge(b"k", Some(b"newer valid value"))).unwrap());
        assert_eq!(get(&server, "k"), None);

        let _: i64 = ::redis::cmd("RPUSH")
            .arg("l")
            .arg("x")
            .query(&mut server.connection())
            .unwrap();
        set(&server, "s", b"a string");
        assert!(block_on(redis.purge(b"l", None)).unwrap());
        assert!(!block_on(redis.purge(b"s", None)).unwrap());
        assert!(get(&server, "s").is_some());
    }
}
