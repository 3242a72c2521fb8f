//! A throw-away Redis Cluster: primaries started as [`RedisServer`]s with
//! cluster mode on, introduced to each other, the 16384 slots split evenly
//! between them, and waited for until every node reports `cluster_state:ok`.

use std::time::Duration;

use crate::{PkiFiles, RedisServer, wait_until};

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;
/// How long a cluster may take to agree it is whole.
const FORM_TIMEOUT: Duration = Duration::from_secs(20);

/// A cluster of primaries (no replicas) on loopback ports of their own.
///
/// ```no_run
/// use cached_redis_test_support::RedisCluster;
///
/// let cluster = RedisCluster::start(3);
/// assert_eq!(cluster.urls().len(), 3);
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    tls: bool,
}

impl RedisCluster {
    /// Starts `primaries` nodes and forms the cluster.
    ///
    /// # Panics
    ///
    /// If a node does not start, or the cluster is not `ok` within 20 s
    /// (the message includes every node's `CLUSTER INFO`).
    pub fn start(primaries: usize) -> RedisCluster {
        RedisCluster::start_with(primaries, None)
    }

    /// Like [`start`](Self::start), with every node also listening for TLS
    /// ([`RedisServerBuilder::tls`](crate::RedisServerBuilder::tls), no
    /// client certificates) and the cluster bus over TLS
    /// (`tls-cluster yes`): a client connected over TLS is told the nodes'
    /// TLS ports. [`tls_urls`](Self::tls_urls) are the seeds.
    pub fn start_tls(primaries: usize, files: &PkiFiles) -> RedisCluster {
        RedisCluster::start_with(primaries, Some(files))
    }

    fn start_with(primaries: usize, tls: Option<&PkiFiles>) -> RedisCluster {
        assert!(primaries >= 1, "a cluster needs a primary");
        let nodes: Vec<RedisServer> = (0..primaries)
            .map(|_| {
                let builder = match tls {
                    // On the bus each node is also a TLS client, and the
                    // server certificate is for server authentication only.
                    Some(files) => RedisServer::builder()
                        .tls(files, false)
                        .arg("--tls-cluster")
                        .arg("yes")
                        .arg("--tls-client-cert-file")
                        .arg(&files.client_cert.to_string_lossy())
                        .arg("--tls-client-key-file")
                        .arg(&files.client_key.to_string_lossy()),
                    None => RedisServer::builder(),
                };
                builder
                    .cluster_node()
                    .arg("--cluster-node-timeout")
                    .arg("1000")
                    // One primary down must leave the others serving
                    // their slots (the default stops the whole cluster).
                    .arg("--cluster-require-full-coverage")
                    .arg("no")
                    .start()
            })
            .collect();
        let cluster = RedisCluster {
            nodes,
            tls: tls.is_some(),
        };
        cluster.form();
        cluster
    }

    fn form(&self) {
        let first = &self.nodes[0];
        for node in self.nodes.iter().skip(1) {
            // Over a TLS bus, a node is known by its TLS port.
            let port = if self.tls {
                node.tls_port()
            } else {
                node.port()
            };
            let () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(port)
                .arg(node.bus_port())
                .query(&mut first.connection())
                .expect("CLUSTER MEET");
        }
        let count = self.nodes.len() as u16;
        for (i, node) in self.nodes.iter().enumerate() {
            let i = i as u16;
            let (start, end) = (SLOTS * i / count, SLOTS * (i + 1) / count - 1);
            let () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(start)
                .arg(end)
                .query(&mut node.connection())
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        if !wait_until(FORM_TIMEOUT, || self.is_ok()) {
            panic!("the cluster did not form:\n{}", self.describe());
        }
    }

    /// Whether every running node sees every node and every slot served by
    /// a node it is linked to. `cluster_state:ok` alone is not enough: with
    /// `cluster-require-full-coverage no` a node reports it before it has
    /// heard what another node serves.
    pub fn is_ok(&self) -> bool {
        self.nodes.iter().filter(|n| n.is_running()).all(|node| {
            let Ok(mut con) = node.try_connection() else {
                return false;
            };
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .unwrap_or_default();
            let known = format!("cluster_known_nodes:{}", self.nodes.len());
            info.contains("cluster_state:ok")
                && info.contains(&known)
                && info.contains(&format!("cluster_slots_ok:{SLOTS}"))
        })
    }

    /// Every node's `CLUSTER INFO`, for failure messages.
    fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|node| {
                let info: String = node
                    .try_connection()
                    .and_then(|mut con| redis::cmd("CLUSTER").arg("INFO").query(&mut con))
                    .unwrap_or_else(|e| format!("unreachable: {e}"));
                let log = node.log();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!(
                    "127.0.0.1:{}\n{info}\nlog:\n{}",
                    node.port(),
                    tail.join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The nodes' URLs (`redis://127.0.0.1:PORT/`), the seeds a cluster
    /// client starts from.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes' TLS URLs, for a cluster made with
    /// [`start_tls`](Self::start_tls).
    pub fn tls_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::tls_url).collect()
    }

    /// The nodes, to kill, pause, restart or inspect one.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Leaves slots `first..=last` served by no node, in every node's view
    /// (`CLUSTER DELSLOTSRANGE` on each): what a client sees of a cluster
    /// still forming, or of one that lost a primary while
    /// `cluster-require-full-coverage` is `no`. The keys in them stay
    /// where they were.
    pub fn unassign_slots(&self, first: u16, last: u16) {
        for node in &self.nodes {
            let () = redis::cmd("CLUSTER")
                .arg("DELSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut node.connection())
                .expect("CLUSTER DELSLOTSRANGE");
        }
    }

    /// The node serving `key`'s slot.
    pub fn node_for(&self, key: &str) -> &RedisServer {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].connection())
            .expect("CLUSTER KEYSLOT");
        let count = self.nodes.len() as u32;
        let index = (u32::from(slot) * count / u32::from(SLOTS)) as usize;
        &self.nodes[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_primaries_form_a_cluster_and_split_the_slots() {
        let cluster = RedisCluster::start(3);
        assert!(cluster.is_ok());
        // Each node holds what the slot map says it holds: a key written to
        // its node is there, and another node redirects it.
        for key in ["a", "b", "c", "natal:1", "natal:2", "natal:3"] {
            let node = cluster.node_for(key);
            let () = redis::cmd("SET")
                .arg(key)
                .arg(1)
                .query(&mut node.connection())
                .expect("the slot's own node takes the write");
            let other = cluster
                .nodes()
                .iter()
                .find(|n| n.port() != node.port())
                .unwrap();
            let moved = redis::cmd("GET")
                .arg(key)
                .query::<Option<i64>>(&mut other.connection());
            let err = moved.expect_err("another node redirects");
            assert_eq!(err.code(), Some("MOVED"), "{err}");
        }
    }
}
