//! Redis Cluster: which primary holds a key, and a breaker per primary.
//!
//! The cluster client routes every command itself, following `MOVED` and
//! `ASK` and refreshing its topology; a followed redirect is a success.
//! This map exists for health alone: each operation is admitted by, and
//! reports to, the breaker of the primary that serves its key's slot, so
//! a dead primary opens its own breaker while the others stay closed and
//! keep serving. The map is read with `CLUSTER SLOTS` when the cluster is
//! first reached, every 10 s, and — at most once a second — after a
//! failure or a call refused by an open breaker (signs that a slot may
//! have moved), and before every `clear`.
//!
//! Keys are never hash-tagged (`meridian:v1:natal:{hash}` has no braces;
//! domains and namespaces cannot contain them), so a domain's keys spread
//! over every primary, and every command the cache sends names one key.
//! `clear` walks each primary with `SCAN` and removes what it found there
//! with one `UNLINK` per key, sent to that primary: a many-key `UNLINK`
//! would be split by slot by the client, which leaves out, without a word,
//! the slots of a node it holds no connection to.

use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::{Cmd, Value};

use super::breaker::{Breaker, BreakerState};
use super::connection::Connection;
use super::error::{RedisError, SlotMapError};
use crate::io::Io;
use crate::telemetry::Telemetry;

/// Slots in a Redis Cluster.
const SLOTS: usize = 16_384;
/// Marks a slot no primary is known to serve.
const UNKNOWN: u16 = u16::MAX;
/// The shortest time between two reads of the slot map on demand.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How often the map is read regardless: a failover or a resharding the
/// client followed silently shows here.
const REFRESH_ANYWAY: Duration = Duration::from_secs(10);

/// A primary, as `CLUSTER SLOTS` names it, and its breaker.
pub(super) struct Node {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) breaker: Breaker,
}

impl Node {
    /// `host:port`, for logs.
    pub(super) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The cluster's primaries by slot, each with its breaker, and when the
/// map was last read.
pub(super) struct Nodes {
    /// The breaker new nodes copy their settings from.
    template: Breaker,
    map: RwLock<Map>,
    last_refresh: Mutex<Option<Instant>>,
    /// Where a failed read of the map is reported.
    telemetry: Arc<Telemetry>,
}

/// One reading of `CLUSTER SLOTS`.
#[derive(Default)]
struct Map {
    /// Index into `nodes` of each slot's primary, or [`UNKNOWN`].
    slots: Vec<u16>,
    nodes: Vec<Arc<Node>>,
}

/// A slot range and its primary's address (`None`: the node does not know it).
pub(crate) type Range = (u16, u16, Option<(String, u16)>);

impl Nodes {
    pub(super) fn new(template: Breaker, telemetry: Arc<Telemetry>) -> Nodes {
        Nodes {
            template,
            map: RwLock::default(),
            last_refresh: Mutex::new(None),
            telemetry,
        }
    }

    /// The primary serving `key`'s slot, if the map knows it.
    pub(super) fn for_key(&self, key: &[u8]) -> Option<Arc<Node>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let index = *map.slots.get(usize::from(slot(key)))?;
        map.nodes.get(usize::from(index)).cloned()
    }

    /// The worst state among the primaries' breakers; `None` before the
    /// map was first read.
    pub(super) fn worst_state(&self) -> Option<BreakerState> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        worst(map.nodes.iter().map(|node| node.breaker.state()))
    }

    /// Reads the slot map again in the background, unless it was read (or
    /// a read began) in the last second.
    pub(super) fn refresh(
        self: &Arc<Self>,
        connection: &Arc<Connection>,
        io: &'static Io,
        deadline: Duration,
    ) {
        let mut last = self
            .last_refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        let (nodes, connection) = (Arc::clone(self), Arc::clone(connection));
        io.spawn(async move { nodes.load_or_warn(&connection, io, deadline).await });
    }

    /// Reads the slot map every [`REFRESH_ANYWAY`] for as long as the
    /// runtime holding `nodes` lives.
    pub(super) fn refresh_periodically(
        nodes: Weak<Nodes>,
        connection: Weak<Connection>,
        io: &'static Io,
        deadline: Duration,
    ) {
        io.spawn(async move {
            loop {
                io.sleep(REFRESH_ANYWAY).await;
                let (Some(nodes), Some(connection)) = (nodes.upgrade(), connection.upgrade())
                else {
                    return;
                };
                nodes.load_or_warn(&connection, io, deadline).await;
            }
        });
    }

    async fn load_or_warn(
        &self,
        connection: &Arc<Connection>,
        io: &'static Io,
        deadline: Duration,
    ) {
        if let Err(err) = self.load(connection, io, deadline).await {
            // Breakers then judge by an old map: say so, rate-limited.
            self.telemetry.warn("cluster_slots", |suppressed| {
                tracing::warn!(error = %err, suppressed, "cannot read the cluster's slot map");
            });
        }
    }

    /// Reads the slot map now (`CLUSTER SLOTS`), keeping each known
    /// primary's breaker; resolves to what was read.
    pub(super) async fn load(
        &self,
        connection: &Arc<Connection>,
        io: &'static Io,
        deadline: Duration,
    ) -> Result<Vec<Range>, RedisError> {
        let until = Instant::now()
            .checked_add(deadline)
            .unwrap_or_else(Instant::now);
        let reply = io
            .timeout(until, async {
                let (mut conn, _) = connection.get(io).await?;
                let mut cmd = Cmd::new();
                cmd.arg("CLUSTER").arg("SLOTS");
                conn.req_packed_command(&cmd)
                    .await
                    .and_then(Value::extract_error)
            })
            .await
            .map_err(|_| RedisError::Timeout(deadline))??;
        let ranges = parse_slots(reply)?;
        self.install(&ranges);
        Ok(ranges)
    }

    fn install(&self, ranges: &[Range]) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        let mut slots = vec![UNKNOWN; SLOTS];
        for (start, end, address) in ranges {
            let Some((host, port)) = address else {
                continue;
            };
            let (host, port) = (host.clone(), *port);
            let same = |n: &&Arc<Node>| n.host == host && n.port == port;
            let index = match nodes.iter().position(|n| same(&n)) {
                Some(index) => index,
                None => {
                    // A primary already known keeps its breaker.
                    let known = map.nodes.iter().find(same).cloned();
                    nodes.push(known.unwrap_or_else(|| {
                        Arc::new(Node {
                            host,
                            port,
                            breaker: self.template.like(),
                        })
                    }));
                    nodes.len() - 1
                }
            };
            // At most 16,384 primaries: the index fits, and is never UNKNOWN.
            let index = u16::try_from(index).unwrap_or(UNKNOWN);
            let end = usize::from(*end).min(SLOTS - 1);
            if let Some(range) = slots.get_mut(usize::from(*start)..=end) {
                range.fill(index);
            }
        }
        *map = Map { slots, nodes };
    }
}

/// The primaries a walk of the whole key space visits (`clear`, the
/// admin's `SCAN`s): each primary of `ranges` once, sorted, provided every
/// primary has an address and every slot has a primary. The node asked
/// may not know yet what another serves, or a primary may be down; a walk
/// of fewer than all would leave keys out without a word.
pub(crate) fn walk(ranges: &[Range]) -> Result<Vec<(String, u16)>, SlotMapError> {
    let mut covered = vec![false; SLOTS];
    let mut primaries: Vec<(String, u16)> = Vec::new();
    for (start, end, address) in ranges {
        let address = address.as_ref().ok_or(SlotMapError::UnknownNode)?;
        if !primaries.contains(address) {
            primaries.push(address.clone());
        }
        let end = usize::from(*end).min(SLOTS - 1);
        if let Some(range) = covered.get_mut(usize::from(*start)..=end) {
            range.fill(true);
        }
    }
    let uncovered = covered.iter().filter(|served| !**served).count();
    if uncovered > 0 {
        return Err(SlotMapError::Uncovered { uncovered });
    }
    primaries.sort();
    Ok(primaries)
}

/// The worst of `states` (open, then half-open, then closed); `None` if empty.
fn worst(states: impl Iterator<Item = BreakerState>) -> Option<BreakerState> {
    states.max_by_key(|state| state.as_gauge())
}

/// The slot Redis Cluster assigns `key` to: CRC16 (XMODEM) of the key, or
/// of its hash tag — the text between the first `{` and the next `}`, if
/// not empty — modulo 16,384.
fn slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    let hashed = crc16::State::<crc16::XMODEM>::calculate(tag.unwrap_or(key));
    // SLOTS is a power of two below u16::MAX: the remainder fits.
    hashed % (SLOTS as u16)
}

/// `CLUSTER SLOTS`: `[[start, end, [host, port, id, …], replicas…], …]`.
/// A primary that does not know its address reports `""`, `"?"` or nil.
pub(crate) fn parse_slots(reply: Value) -> Result<Vec<Range>, RedisError> {
    const MALFORMED: RedisError = RedisError::UnexpectedReply("CLUSTER SLOTS");
    let Value::Array(entries) = reply else {
        return Err(MALFORMED);
    };
    entries
        .into_iter()
        .map(|entry| {
            let Value::Array(parts) = entry else {
                return Err(MALFORMED);
            };
            let number = |value: &Value| match value {
                Value::Int(n) => u16::try_from(*n).ok(),
                _ => None,
            };
            let (Some(start), Some(end), Some(Value::Array(primary))) = (
                parts.first().and_then(number),
                parts.get(1).and_then(number),
                parts.get(2),
            ) else {
                return Err(MALFORMED);
            };
            let host = match primary.first() {
                Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
                Some(Value::Nil) => String::new(),
                _ => return Err(MALFORMED),
            };
            let port = primary.get(1).and_then(number).ok_or(MALFORMED)?;
            let known = !host.is_empty() && host != "?";
            Ok((start, end, known.then_some((host, port))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn range(start: i64, end: i64, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![bulk("127.0.0.1"), Value::Int(port), bulk("id")]),
        ])
    }

    #[test]
    fn keys_map_to_the_primary_of_their_slot_and_breakers_survive_a_refresh() {
        let nodes = Nodes::new(
            Breaker::new(1, Duration::from_secs(60), Duration::from_secs(1)),
            Arc::default(),
        );
        assert!(
            nodes.for_key(b"k").is_none(),
            "unknown before the first map"
        );
        let slots = |ports: [i64; 2]| {
            parse_slots(Value::Array(vec![
                range(0, 8191, ports[0]),
                range(8192, 16383, ports[1]),
            ]))
            .unwrap()
        };
        nodes.install(&slots([7000, 7001]));
        // Slot of "a" is 15495, of "b" 3300 (CLUSTER KEYSLOT).
        assert_eq!(nodes.for_key(b"a").unwrap().port, 7001);
        assert_eq!(nodes.for_key(b"b").unwrap().port, 7000);
        // Hash tags: only the tag is hashed.
        assert_eq!(nodes.for_key(b"x{b}y").unwrap().port, 7000);

        let before = nodes.for_key(b"a").unwrap();
        let pass = before.breaker.admit().unwrap();
        before
            .breaker
            .record(pass, super::super::breaker::Evidence::Failed);
        assert_eq!(nodes.worst_state(), Some(BreakerState::Open));
        nodes.install(&slots([7001, 7002]));
        let after = nodes.for_key(b"b").unwrap();
        assert_eq!(after.port, 7001);
        assert!(Arc::ptr_eq(&before, &after), "7001 keeps its breaker");
        assert_eq!(nodes.for_key(b"a").unwrap().port, 7002);
    }

    #[test]
    fn slots_match_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"a"), 15495);
        assert_eq!(slot(b"b"), 3300);
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        let whole = crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") % 16_384;
        assert_eq!(
            slot(b"foo{}{bar}"),
            whole,
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn a_primary_without_an_address_leaves_its_slots_unknown() {
        let nodes = Nodes::new(
            Breaker::new(1, Duration::from_secs(60), Duration::from_secs(1)),
            Arc::default(),
        );
        let nameless = Value::Array(vec![
            Value::Int(8192),
            Value::Int(16383),
            Value::Array(vec![bulk(""), Value::Int(7001), bulk("id")]),
        ]);
        let ranges = parse_slots(Value::Array(vec![range(0, 8191, 7000), nameless])).unwrap();
        nodes.install(&ranges);
        assert_eq!(nodes.for_key(b"b").unwrap().port, 7000);
        assert!(nodes.for_key(b"a").is_none());
        assert_eq!(walk(&ranges), Err(SlotMapError::UnknownNode));
    }

    #[test]
    fn a_walk_needs_every_slot_served() {
        let whole = parse_slots(Value::Array(vec![
            range(8192, 16383, 7001),
            range(0, 8191, 7000),
            range(100, 200, 7001),
        ]))
        .unwrap();
        let ports: Vec<u16> = walk(&whole)
            .unwrap()
            .into_iter()
            .map(|(_, port)| port)
            .collect();
        assert_eq!(ports, [7000, 7001], "each primary once, sorted");

        // What a node that has not yet heard what 7002 serves reports.
        let partial = parse_slots(Value::Array(vec![
            range(0, 5460, 7000),
            range(10923, 16383, 7001),
        ]))
        .unwrap();
        assert_eq!(
            walk(&partial),
            Err(SlotMapError::Uncovered { uncovered: 5462 })
        );
    }

    #[test]
    fn a_malformed_reply_is_an_error() {
        assert!(parse_slots(Value::Int(1)).is_err());
        assert!(parse_slots(Value::Array(vec![Value::Array(vec![Value::Int(0)])])).is_err());
    }
}
