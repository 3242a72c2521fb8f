//! The one shared Redis connection of a runtime — to a node, to a master
//! found through Sentinel, or to a Redis Cluster — made lazily and
//! replaced when it fails.
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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::aio::{AsyncPushSender, ConnectionLike, MultiplexedConnection, SendError};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, PushInfo, PushKind, RedisError,
    RedisFuture, Value,
};
use tokio::sync::watch;
use tokio::time::timeout;

use super::sentinel::Sentinel;
use super::topology::Topology;
use crate::config::Config;
use crate::io::Io;
use crate::near::NearCache;
use crate::telemetry::Telemetry;

/// What a connection attempt produced: a connection and its generation.
type Attempt = Option<Result<(Conn, u64), RedisError>>;

/// How connections are made.
pub(crate) enum Connector {
    Node(Client),
    /// A node over RESP3 with `CLIENT TRACKING ON`: the server pushes the
    /// keys read through it that change, and they leave the near-cache.
    Tracking {
        client: Client,
        copies: Arc<NearCache>,
    },
    Sentinel(Sentinel),
    Cluster(Box<ClusterClient>),
}

impl Connector {
    /// The connector of the deployment `config` names — one node, the
    /// master Sentinel names, or a cluster — with its credentials and TLS:
    /// what the runtime and the operator's `admin` both connect through.
    pub(crate) fn for_deployment(config: &Config) -> redis::RedisResult<Connector> {
        let credentials = &config.credentials;
        Ok(match &config.topology {
            Topology::Single => Connector::Node(credentials.client(config.redis_url.as_str())?),
            Topology::Sentinel { sentinels, master } => {
                Connector::Sentinel(Sentinel::new(sentinels, master, credentials)?)
            }
            Topology::Cluster { seeds } => Connector::Cluster(Box::new(
                credentials.cluster_client(seeds, config.redis_timeout, config.connect_timeout)?,
            )),
        })
    }
}

/// A live connection: multiplexed to one node, or the cluster client's
/// (which keeps one per node and routes each command by its key's slot).
#[derive(Clone)]
pub(crate) enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// What the tracking connection's pushes do: an invalidation drops the
/// copies of the keys it names (all of them after a flush); the
/// connection's loss drops the connection and every copy, since no change
/// can reach them any more. Runs on the connection's driver, in order with
/// its replies.
struct Tracking {
    connection: Weak<Connection>,
    generation: u64,
    copies: Weak<NearCache>,
}

impl AsyncPushSender for Tracking {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        let Some(copies) = self.copies.upgrade() else {
            return Ok(());
        };
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    copies.invalidate(keys.iter().filter_map(|key| match key {
                        Value::BulkString(key) => Some(&key[..]),
                        _ => None,
                    }))
                }
                // A null after FLUSHALL / FLUSHDB: every key changed.
                _ => copies.clear(),
            },
            // Dropping the connection drops its copies (`forget_copies`);
            // if it was replaced already, they went with it then.
            PushKind::Disconnection => {
                if let Some(connection) = self.connection.upgrade() {
                    connection.reset_generation(self.generation);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What one round trip sends.
#[derive(Clone, Copy)]
pub(crate) enum Request<'a> {
    /// A command: to the cluster node at the address given, else routed
    /// by its key (a keyless one to any node).
    Command(Option<(&'a str, u16)>, &'a Cmd),
    /// Commands in one round trip, to the cluster node at the address
    /// given, else routed by their first key. The reply is the array of
    /// theirs, an error reply in its place.
    Pipeline(Option<(&'a str, u16)>, &'a Pipeline),
}

impl Conn {
    /// Sends `request`. A cluster client fails a request addressed to a
    /// node it holds no connection to (`ClusterConnectionNotFound`); it
    /// never sends it elsewhere.
    pub(crate) async fn send(&mut self, request: Request<'_>) -> redis::RedisResult<Value> {
        match (request, &mut *self) {
            (Request::Command(None, cmd), conn) => conn.req_packed_command(cmd).await,
            (Request::Command(Some(_), cmd), Conn::Node(conn)) => {
                conn.req_packed_command(cmd).await
            }
            (Request::Command(Some((host, port)), cmd), Conn::Cluster(conn)) => {
                let node = RoutingInfo::SingleNode(by_address(host, port));
                conn.route_command(cmd.clone(), node).await
            }
            (Request::Pipeline(address, pipeline), conn) => conn
                .send_pipeline(address, pipeline)
                .await
                .map(Value::Array),
        }
    }

    async fn send_pipeline(
        &mut self,
        address: Option<(&str, u16)>,
        pipeline: &Pipeline,
    ) -> redis::RedisResult<Vec<Value>> {
        let count = pipeline.len();
        match (address, self) {
            (Some((host, port)), Conn::Cluster(conn)) => {
                conn.route_pipeline(pipeline.clone(), 0, count, by_address(host, port))
                    .await
            }
            (_, conn) => conn.req_packed_commands(pipeline, 0, count).await,
        }
    }
}

fn by_address(host: &str, port: u16) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    }
}

pub(crate) struct Connection {
    connector: Connector,
    connect_timeout: Duration,
    telemetry: Arc<Telemetry>,
    slot: Mutex<Slot>,
    generations: AtomicU64,
}

enum Slot {
    Empty,
    Connecting(watch::Receiver<Attempt>),
    /// A connection and its generation, which tells connections apart.
    Ready(Conn, u64),
}

impl Connection {
    pub(crate) fn new(
        connector: Connector,
        connect_timeout: Duration,
        telemetry: Arc<Telemetry>,
    ) -> Connection {
        Connection {
            connector,
            connect_timeout,
            telemetry,
            slot: Mutex::new(Slot::Empty),
            generations: AtomicU64::new(0),
        }
    }

    /// The shared connection and its generation, connecting if there is none.
    pub(crate) async fn get(self: &Arc<Self>, io: &Io) -> Result<(Conn, u64), RedisError> {
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
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let attempt = timeout(self.connect_timeout, async {
            match &self.connector {
                Connector::Node(client) => client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Conn::Node),
                Connector::Tracking { client, copies } => {
                    let pushes = Tracking {
                        connection: Arc::downgrade(&self),
                        generation,
                        copies: Arc::downgrade(copies),
                    };
                    let config = config.clone().set_push_sender(pushes);
                    let mut conn = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    let () = redis::cmd("CLIENT")
                        .arg("TRACKING")
                        .arg("ON")
                        .query_async(&mut conn)
                        .await?;
                    // Copies made through an earlier connection are not
                    // tracked by this one.
                    copies.clear();
                    Ok(Conn::Node(conn))
                }
                Connector::Sentinel(sentinel) => sentinel.connect(&config).await.map(Conn::Node),
                Connector::Cluster(client) => {
                    client.get_async_connection().await.map(Conn::Cluster)
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from((
                ErrorKind::Io,
                "no connection within the connect timeout",
            )))
        })
        .map(|conn| (conn, generation));
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

    /// Drops the connection so the next operation reconnects — except a
    /// cluster's: its client replaces a failed node's connection itself,
    /// and replacing the whole would disturb every healthy node.
    pub(super) fn reset(&self) {
        if matches!(self.connector, Connector::Cluster(_)) {
            return;
        }
        let mut slot = self.lock();
        if matches!(*slot, Slot::Ready(..)) {
            *slot = Slot::Empty;
            self.forget_copies();
        }
    }

    /// Drops the connection of `generation` if it is still the current one,
    /// so a failure never discards a fresh connection made meanwhile.
    /// Generations start at 1; 0 means no connection was used.
    pub(crate) fn reset_generation(&self, generation: u64) {
        if matches!(self.connector, Connector::Cluster(_)) {
            return;
        }
        let mut slot = self.lock();
        if matches!(*slot, Slot::Ready(_, current) if current == generation) {
            *slot = Slot::Empty;
            self.forget_copies();
        }
    }

    /// A tracking connection given up may still be alive, but its pushes
    /// are no longer heard: the copies it tracked go with it.
    fn forget_copies(&self) {
        if let Connector::Tracking { copies, .. } = &self.connector {
            copies.clear();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every critical section leaves the slot consistent.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
