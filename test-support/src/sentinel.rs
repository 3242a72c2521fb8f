//! A throw-away Sentinel deployment: a master, one replica of it, and one
//! Sentinel (quorum 1) that fails over to the replica 200 ms after the
//! master stops answering.

use std::collections::HashMap;
use std::time::Duration;

use crate::{RedisServer, wait_until};

/// How long the group may take to be ready, or to fail over.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A master, a replica and a Sentinel monitoring them, on loopback ports.
///
/// ```no_run
/// use cached_redis_test_support::RedisSentinel;
///
/// let group = RedisSentinel::start("cache");
/// assert_eq!(group.master_port(), Some(group.nodes()[0].port()));
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    name: String,
    /// The initial master, then the replica.
    nodes: [RedisServer; 2],
    sentinel: RedisServer,
}

impl RedisSentinel {
    /// Starts the three processes and waits until the replica is in sync
    /// and the Sentinel knows it, so a failover can be made at once.
    ///
    /// # Panics
    ///
    /// If a process does not start, or the group is not ready within 20 s.
    pub fn start(name: &str) -> RedisSentinel {
        // A replica's first sync waits 5 s by default, for more replicas
        // to share one transfer: there is only one.
        let master = RedisServer::builder()
            .arg("--repl-diskless-sync-delay")
            .arg("0")
            .start();
        let replica = RedisServer::builder()
            .arg("--replicaof")
            .arg("127.0.0.1")
            .arg(&master.port().to_string())
            .start();
        let synced = wait_until(READY_TIMEOUT, || {
            info(&replica, "replication").contains("master_link_status:up")
        });
        assert!(synced, "the replica did not sync:\n{}", replica.log());
        // After a diskless sync the master streams writes to the replica
        // only once the replica has acknowledged (its first `REPLCONF ACK`,
        // up to a second later): until then a write would not reach it.
        // A write, then `WAIT` for the replica to acknowledge it: asked,
        // the replica acknowledges at once, and is streamed to from then on.
        let mut con = master.connection();
        let streaming = wait_until(READY_TIMEOUT, || {
            redis::cmd("INCR")
                .arg("harness:replication")
                .query::<u64>(&mut con)
                .and_then(|_| redis::cmd("WAIT").arg(1).arg(1_000).query::<u64>(&mut con))
                .is_ok_and(|replicas| replicas == 1)
        });
        assert!(
            streaming,
            "the replica did not acknowledge:\n{}",
            replica.log()
        );
        let _: redis::RedisResult<u64> =
            redis::cmd("DEL").arg("harness:replication").query(&mut con);
        let sentinel = RedisServer::builder()
            .sentinel(&format!(
                "sentinel monitor {name} 127.0.0.1 {port} 1\n\
                 sentinel down-after-milliseconds {name} 200\n\
                 sentinel failover-timeout {name} 2000\n",
                port = master.port()
            ))
            .start();
        let group = RedisSentinel {
            name: name.to_owned(),
            nodes: [master, replica],
            sentinel,
        };
        // Promotable: connected, in sync, and its INFO read by Sentinel
        // (until then `SENTINEL FAILOVER` answers NOGOODSLAVE).
        let knows_replica = wait_until(READY_TIMEOUT, || {
            redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg(name)
                .query::<Vec<HashMap<String, String>>>(&mut group.sentinel.connection())
                .is_ok_and(|replicas| {
                    replicas.iter().any(|replica| {
                        let field = |name: &str| replica.get(name).map(String::as_str);
                        field("flags") == Some("slave")
                            && field("master-link-status") == Some("ok")
                            && field("info-refresh")
                                .and_then(|ms| ms.parse::<u64>().ok())
                                .is_some_and(|ms| ms < 5_000)
                    })
                })
        });
        assert!(
            knows_replica,
            "Sentinel did not find the replica:\n{}",
            group.sentinel.log()
        );
        group
    }

    /// The Sentinel's URL, for `REDIS_SENTINEL_URLS`.
    pub fn sentinel_url(&self) -> String {
        self.sentinel.url()
    }

    /// The Sentinel process.
    pub fn sentinel(&self) -> &RedisServer {
        &self.sentinel
    }

    /// The master's name, for `REDIS_SENTINEL_MASTER`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data nodes: the initial master, then its replica.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The port Sentinel names as the master's now, if it answers.
    pub fn master_port(&self) -> Option<u16> {
        let mut con = self.sentinel.try_connection().ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.name)
            .query(&mut con)
            .ok()?;
        Some(port)
    }

    /// Waits until Sentinel names `node` as the master and `node` says it
    /// is one; `false` after 20 s.
    pub fn wait_for_master(&self, node: &RedisServer) -> bool {
        wait_until(READY_TIMEOUT, || {
            self.master_port() == Some(node.port())
                && info(node, "replication").contains("role:master")
        })
    }
}

/// A section of `INFO`, empty if the server does not answer.
fn info(server: &RedisServer, section: &str) -> String {
    server
        .try_connection()
        .and_then(|mut con| redis::cmd("INFO").arg(section).query(&mut con))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_fails_over_to_the_replica_when_the_master_dies() {
        let group = RedisSentinel::start("harness");
        assert_eq!(group.master_port(), Some(group.nodes()[0].port()));
        group.nodes()[0].kill();
        assert!(
            group.wait_for_master(&group.nodes()[1]),
            "{}",
            group.sentinel().log()
        );
    }
}
