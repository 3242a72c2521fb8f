//! The operator's view of a cache's Redis: connect exactly as the runtime
//! does, then read entries, walk a namespace, remove keys and check that
//! the server is fit for the cache.
//!
//! This is what `cached-redis-cli` is built on. It shares the runtime's
//! connection code — `REDIS_URL`, TLS and client certificates, the ACL
//! user, Redis Cluster and Sentinel, all read by
//! [`Config::from_env`](crate::Config::from_env) — so a tool built on it
//! reaches Redis the way the service does, or fails the way the service
//! would. Unlike the runtime it has no circuit breaker, no memory cache and
//! no retries: an operator wants to see each failure. (The one exception is
//! a cluster client that holds no connection to the node a command is
//! addressed to; it is replaced and the command sent once more.)
//! `ENABLE_REDIS_CACHE` is not consulted; connecting is the point.
//!
//! Every operation has one deadline, [`Config::redis_timeout`]
//! (connecting too, bounded by [`Config::connect_timeout`]), and returns
//! an [`Operation`]: `.await` it, or [`wait`](Operation::wait) for it from
//! sync code. Commands are built with the [`redis`] crate re-exported here,
//! so a caller's version always matches this crate's.
//!
//! ```no_run
//! use cached_redis_core::Config;
//! use cached_redis_core::admin::{Admin, Entry, redis};
//!
//! let config = Config::from_env()?;
//! let admin = Admin::connect(&config).wait()?;
//! for batch in admin.scan(&admin.domain_pattern("natal", "v1")?) {
//!     for key in batch?.keys {
//!         let reply = admin.query(redis::cmd("GET").arg(&key)).wait()?;
//!         if let redis::Value::BulkString(bytes) = reply {
//!             let entry = Entry::read(&bytes, &config)?;
//!             println!("{} bytes, codec {}", entry.size, entry.codec);
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Config::redis_timeout`]: crate::Config::redis_timeout
//! [`Config::connect_timeout`]: crate::Config::connect_timeout

mod entry;
mod error;
mod permissions;
mod scan;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::{Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, Value};

/// The [`redis`](https://docs.rs/redis) crate this crate talks through:
/// build commands with `admin::redis::cmd`, read replies as
/// `admin::redis::Value`.
pub use ::redis;

pub use self::entry::{Checksum, Entry, EntryProblem, Signature};
pub use self::error::AdminError;
pub use self::permissions::{PermissionCheck, PermissionReport, Verdict};
pub use self::scan::{Batch, Scan};
use crate::config::Config;
use crate::io::{Io, io};
use crate::key::{KeyError, domain_prefix};
use crate::redis::topology::Topology;
use crate::redis::{Conn, Connection, Connector, Request, is_tls, parse_slots, unlink_each, walk};
use crate::runtime::Operation;

/// Keys asked for per `SCAN` round trip (a hint to Redis, as in `clear`).
const SCAN_COUNT: usize = 500;

/// A connection to a cache's Redis for operators' tools.
///
/// Made with [`Admin::connect`]; cheap to share by reference between
/// threads (commands are multiplexed on one connection, or on the cluster
/// client's one per node).
pub struct Admin {
    connection: Arc<Connection>,
    io: &'static Io,
    deployment: Deployment,
    timeout: Duration,
    namespace: String,
    target: String,
    tls: Option<Tls>,
    local: bool,
    username: Option<String>,
    /// The node of a single-node deployment, for display.
    only: Node,
    /// Whether the runtime would open a tracking connection (`CACHE_NEAR`
    /// on a single node), so `CLIENT TRACKING` is among its commands.
    near: bool,
}

/// Which kind of deployment the configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deployment {
    /// One node at `REDIS_URL`.
    Single,
    /// A Redis Cluster found through `REDIS_CLUSTER_URLS`.
    Cluster,
    /// The master that `REDIS_SENTINEL_URLS` name as `REDIS_SENTINEL_MASTER`.
    Sentinel,
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deployment::Single => "single node",
            Deployment::Cluster => "cluster",
            Deployment::Sentinel => "sentinel",
        })
    }
}

/// How connections are encrypted, when they are (`rediss://`). The
/// server's certificate is always verified — the runtime has no switch to
/// skip it — against [`ca_file`](Tls::ca_file) or the system's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    ca_file: Option<PathBuf>,
    client_certificate: bool,
}

impl Tls {
    /// The CA file servers are verified against (`REDIS_CA_CERT`);
    /// `None`: the system's roots.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Whether a client certificate is presented (`REDIS_CLIENT_CERT`).
    pub fn client_certificate(&self) -> bool {
        self.client_certificate
    }
}

/// One Redis server of the deployment: the only one, or a cluster primary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Node {
    address: Option<(String, u16)>,
}

impl Node {
    /// `host` and `port`, when known (not for a master found through
    /// Sentinel, nor a Unix socket).
    pub fn address(&self) -> Option<(&str, u16)> {
        self.address
            .as_ref()
            .map(|(host, port)| (host.as_str(), *port))
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Some((host, port)) if host.contains(':') => write!(f, "[{host}]:{port}"),
            Some((host, port)) => write!(f, "{host}:{port}"),
            None => f.write_str("the server"),
        }
    }
}

impl Admin {
    /// Connects as the runtime configured by `config` would, and resolves
    /// once the connection is made (a cluster's slot map read, a Sentinel's
    /// master found and checked with `ROLE`). A failure is
    /// [`AdminError::Connect`], with the reason the client gave.
    ///
    /// ```no_run
    /// # use cached_redis_core::{Config, admin::Admin};
    /// let config = Config::builder().redis_url("redis://127.0.0.1:6379").build()?;
    /// let admin = Admin::connect(&config).wait()?;
    /// assert_eq!(admin.namespace(), "meridian");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(config: &Config) -> Operation<'static, Result<Admin, AdminError>> {
        let admin = Admin::new(config);
        Operation::new(async move {
            let admin = admin?;
            let deadline = admin.deadline();
            match admin
                .io
                .timeout(deadline, admin.connection.get(admin.io))
                .await
            {
                Ok(Ok(_)) => Ok(admin),
                Ok(Err(source)) => Err(admin.connect_error(source)),
                Err(_elapsed) => Err(admin.connect_error(::redis::RedisError::from((
                    ::redis::ErrorKind::Io,
                    "no connection within the deadline",
                )))),
            }
        })
    }

    fn new(config: &Config) -> Result<Admin, AdminError> {
        let io = io().ok_or(AdminError::NoIoThread)?;
        let target = config.redis_target_redacted();
        let credentials = &config.credentials;
        let connector =
            Connector::for_deployment(config).map_err(|source| AdminError::Connect {
                target: target.clone(),
                source,
            })?;
        let (deployment, urls) = match &config.topology {
            Topology::Single => (Deployment::Single, std::slice::from_ref(&config.redis_url)),
            Topology::Cluster { seeds } => (Deployment::Cluster, &seeds[..]),
            Topology::Sentinel { sentinels, .. } => (Deployment::Sentinel, &sentinels[..]),
        };
        // The configuration checked every URL when it was built.
        let infos: Vec<ConnectionInfo> = urls
            .iter()
            .filter_map(|url| url.as_str().into_connection_info().ok())
            .collect();
        let tls = infos.iter().any(is_tls).then(|| Tls {
            ca_file: credentials.ca_cert.clone(),
            client_certificate: credentials.client_cert.is_some(),
        });
        let local = infos.iter().all(|info| match info.addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => is_loopback(host),
            ConnectionAddr::Unix(_) => true,
            _ => false,
        });
        // Sentinels authenticate with their own URLs' credentials; the
        // master with the configured ones only.
        let username = credentials.username.clone().or_else(|| match deployment {
            Deployment::Sentinel => None,
            _ => infos
                .first()
                .and_then(|info| info.redis_settings().username().map(str::to_owned)),
        });
        let only = match (deployment, infos.first().map(ConnectionInfo::addr)) {
            (Deployment::Single, Some(ConnectionAddr::Tcp(host, port)))
            | (Deployment::Single, Some(ConnectionAddr::TcpTls { host, port, .. })) => Node {
                address: Some((host.clone(), *port)),
            },
            _ => Node::default(),
        };
        let connection = Arc::new(Connection::new(
            connector,
            config.connect_timeout,
            Arc::default(),
        ));
        Ok(Admin {
            connection,
            io,
            deployment,
            timeout: config.redis_timeout,
            namespace: config.namespace.clone(),
            target,
            tls,
            local,
            username,
            only,
            near: config.near.is_some() && deployment == Deployment::Single,
        })
    }

    /// The kind of deployment connected to.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// The key namespace (`CACHE_NAMESPACE`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Where Redis is, passwords replaced by `***`: safe to print.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// TLS settings when connections are encrypted; `None` for plain TCP.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// Whether every configured address is on this machine (a loopback
    /// address, `localhost` or a Unix socket), where plain TCP exposes
    /// nothing to the network.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The ACL user configured (`REDIS_USERNAME` or the URL's); `None`:
    /// the server's `default` user.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The deadline of each operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `SCAN MATCH` pattern of one domain and version of the
    /// namespace, `{namespace}:{version}:{domain}:*`; an error if either
    /// is not valid in a key.
    ///
    /// ```no_run
    /// # let admin = cached_redis_core::admin::Admin::connect(&Default::default()).wait()?;
    /// assert_eq!(admin.domain_pattern("natal", "v1")?, "meridian:v1:natal:*");
    /// assert!(admin.domain_pattern("Natal!", "v1").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn domain_pattern(&self, domain: &str, version: &str) -> Result<String, KeyError> {
        Ok(domain_prefix(&self.namespace, version, domain)? + "*")
    }

    /// The `SCAN MATCH` pattern of the whole namespace, `{namespace}:*`.
    pub fn namespace_pattern(&self) -> String {
        format!("{}:*", self.namespace)
    }

    /// Sends `cmd`; a cluster routes it by its key (a keyless command goes
    /// to any node). An error reply is an [`AdminError::Command`].
    pub fn query<'a>(&'a self, cmd: &'a Cmd) -> Operation<'a, Result<Value, AdminError>> {
        Operation::new(self.run(cmd, None))
    }

    /// Sends `cmd` to `node` (one of [`primaries`](Self::primaries)); on
    /// a single node, or through Sentinel, the same as [`query`](Self::query).
    pub fn query_on<'a>(
        &'a self,
        node: &'a Node,
        cmd: &'a Cmd,
    ) -> Operation<'a, Result<Value, AdminError>> {
        Operation::new(self.run(cmd, Some(node)))
    }

    /// Sends every command of `pipeline` to `node` in one round trip and
    /// returns each reply as Redis gave it: an error reply to one command
    /// is a [`Value::ServerError`] in its place, not a failure of the whole.
    /// In a cluster, every key in it must be served by `node` (as the keys
    /// of a [`Batch`] from that node are).
    pub fn pipeline_on<'a>(
        &'a self,
        node: &'a Node,
        pipeline: &'a Pipeline,
    ) -> Operation<'a, Result<Vec<Value>, AdminError>> {
        Operation::new(async move {
            let request = Request::Pipeline(node.address(), pipeline);
            match self.attempt("pipeline", request).await? {
                Value::Array(replies) => Ok(replies),
                _ => Err(AdminError::UnexpectedReply("pipeline")),
            }
        })
    }

    /// The primaries a walk of the whole key space visits: the one node,
    /// or every primary in the cluster's slot map, read now
    /// (`CLUSTER SLOTS`). An [`AdminError::SlotMap`] if that map leaves a
    /// slot without a primary: a walk of the others would miss keys.
    pub fn primaries(&self) -> Operation<'_, Result<Vec<Node>, AdminError>> {
        Operation::new(self.primaries_now())
    }

    /// Walks every key matching `pattern` with `SCAN` (never `KEYS`), on
    /// the one node or on each cluster primary in turn, in batches. The
    /// usual `SCAN` guarantees hold: a key present for the whole walk is
    /// seen at least once; keys written meanwhile may or may not be. The
    /// walk starts with [`primaries`](Self::primaries), and fails as it
    /// does.
    pub fn scan(&self, pattern: &str) -> Scan<'_> {
        Scan::new(self, pattern, SCAN_COUNT)
    }

    /// `UNLINK`s the keys of `batch` on the node they came from, one
    /// `UNLINK` per key in one round trip (as `clear` does), and resolves
    /// to how many still existed.
    pub fn unlink<'a>(&'a self, batch: &'a Batch) -> Operation<'a, Result<u64, AdminError>> {
        Operation::new(async move {
            if batch.keys.is_empty() {
                return Ok(0);
            }
            let mut removed = 0;
            let unlinks = unlink_each(&batch.keys);
            for reply in self.pipeline_on(&batch.node, &unlinks).await? {
                match reply.extract_error() {
                    Ok(Value::Int(existed)) => removed += u64::try_from(existed).unwrap_or(0),
                    Ok(_) => return Err(AdminError::UnexpectedReply("UNLINK")),
                    Err(source) => {
                        return Err(AdminError::Command {
                            command: "UNLINK".to_owned(),
                            source,
                        });
                    }
                }
            }
            Ok(removed)
        })
    }

    async fn primaries_now(&self) -> Result<Vec<Node>, AdminError> {
        if self.deployment != Deployment::Cluster {
            return Ok(vec![self.only.clone()]);
        }
        let mut cmd = Cmd::new();
        cmd.arg("CLUSTER").arg("SLOTS");
        let ranges = parse_slots(self.run(&cmd, None).await?)
            .map_err(|_| AdminError::UnexpectedReply("CLUSTER SLOTS"))?;
        let nodes = walk(&ranges)?
            .into_iter()
            .map(|address| Node {
                address: Some(address),
            })
            .collect();
        Ok(nodes)
    }

    /// `cmd` on `node` (or routed by key), under the deadline.
    async fn run(&self, cmd: &Cmd, node: Option<&Node>) -> Result<Value, AdminError> {
        let command = command_name(cmd);
        let request = Request::Command(node.and_then(Node::address), cmd);
        self.attempt(&command, request)
            .await?
            .extract_error()
            .map_err(|source| AdminError::Command { command, source })
    }

    /// Sends `request`, under the deadline. The one failure tried again is
    /// a cluster client holding no connection to the node a request was
    /// addressed to: that is the client's state (it connects only to the
    /// nodes of the slot map it last read, which the node it asked may
    /// have given before it knew them all), not an answer from Redis, and
    /// the fresh client of the second try reads the map again.
    async fn attempt(&self, command: &str, request: Request<'_>) -> Result<Value, AdminError> {
        let work = async {
            let mut tried = false;
            loop {
                let (mut conn, generation) = self.conn().await?;
                let source = match conn.send(request).await {
                    Ok(reply) => return Ok(reply),
                    Err(source) => source,
                };
                let again =
                    !tried && source.kind() == ::redis::ErrorKind::ClusterConnectionNotFound;
                let err = self.failed(generation, command.to_owned(), source);
                if !again {
                    return Err(err);
                }
                tried = true;
            }
        };
        self.bounded(work).await
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, AdminError>>,
    ) -> Result<T, AdminError> {
        self.io
            .timeout(self.deadline(), work)
            .await
            .unwrap_or(Err(AdminError::Timeout(self.timeout)))
    }

    async fn conn(&self) -> Result<(Conn, u64), AdminError> {
        self.connection
            .get(self.io)
            .await
            .map_err(|source| self.connect_error(source))
    }

    /// A command's failure; a connection that broke under it is dropped,
    /// so the next operation reconnects.
    fn failed(&self, generation: u64, command: String, source: ::redis::RedisError) -> AdminError {
        if source.is_unrecoverable_error() || source.is_connection_dropped() {
            self.connection.reset_generation(generation);
        }
        AdminError::Command { command, source }
    }

    fn connect_error(&self, source: ::redis::RedisError) -> AdminError {
        AdminError::Connect {
            target: self.target.clone(),
            source,
        }
    }

    fn deadline(&self) -> Instant {
        // Configuration bounds the deadline to a minute: this cannot overflow.
        Instant::now()
            .checked_add(self.timeout)
            .unwrap_or_else(Instant::now)
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("deployment", &self.deployment)
            .field("target", &self.target)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A command's name for messages: its first word, and the second of a
/// command with subcommands (`CLIENT TRACKING`), never its arguments,
/// which may be keys or values.
fn command_name(cmd: &Cmd) -> String {
    let mut words = cmd.args_iter().filter_map(|arg| match arg {
        ::redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).to_ascii_uppercase()),
        _ => None,
    });
    let first = words.next().unwrap_or_default();
    match (first.as_str(), words.next()) {
        ("CLIENT" | "CLUSTER" | "CONFIG" | "ACL" | "MEMORY" | "SCRIPT", Some(second)) => {
            format!("{first} {second}")
        }
        _ => first,
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_never_carry_arguments() {
        let mut get = Cmd::new();
        get.arg("get").arg("meridian:v1:natal:0123");
        assert_eq!(command_name(&get), "GET");
        let mut tracking = Cmd::new();
        tracking.arg("CLIENT").arg("TRACKING").arg("ON");
        assert_eq!(command_name(&tracking), "CLIENT TRACKING");
        assert_eq!(command_name(&Cmd::new()), "");
    }

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "localhost", "[::1]", "::1", "127.1.2.3"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "redis.internal", "[2001:db8::1]"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn nodes_display_their_address() {
        let node = Node {
            address: Some(("10.0.0.1".to_owned(), 7000)),
        };
        assert_eq!(node.to_string(), "10.0.0.1:7000");
        let v6 = Node {
            address: Some(("::1".to_owned(), 7000)),
        };
        assert_eq!(v6.to_string(), "[::1]:7000");
        assert_eq!(Node::default().to_string(), "the server");
    }
}
