//! Redis Cluster, on a real 3-primary cluster the harness forms: keys
//! spread over every primary and hit from another process; `clear` walks
//! every primary, and removes nothing when a slot has none; a primary
//! killed mid-traffic takes only its own keys to the fallback, and its
//! slots cache again once it is back; a slot migrated during traffic
//! (`ASK`, then `MOVED`) costs no error and no wrong value.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cached_redis::{ClearError, Config, RedisError, Runtime, SlotMapError, redis_cached};
use cached_redis_test_support::{Pki, RedisCluster, RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", ttl = 600, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

#[redis_cached(domain = "transit", ttl = 600, runtime = rt, skip(rt))]
async fn transit(req: &NatalRequest, rt: &Runtime) -> Chart {
    compute_chart(req)
}

/// Enough keys that each of three primaries holds several.
const KEYS: usize = 30;

fn requests() -> Vec<NatalRequest> {
    (1..=KEYS)
        .map(|i| NatalRequest::new(&format!("1990-02-{i:02}")))
        .collect()
}

/// The operation deadline of these tests: the tests' clusters (three nodes
/// each, gossiping) and processes share two cores, so the default 100 ms —
/// and, in CI, 500 ms — is missed under load: a write dropped at its
/// deadline leaves an entry out of `fill`, and an `UNLINK` retried after
/// its deadline, though its first attempt went through, finds its keys
/// gone and makes `clear`'s count short. A primary killed refuses at once,
/// so calls while it is down take milliseconds, not a deadline.
const DEADLINE: Duration = Duration::from_secs(2);

fn cluster_runtime(cluster: &RedisCluster) -> Runtime {
    Runtime::new(
        Config::builder()
            .redis_enabled(true)
            .redis_cluster(cluster.urls())
            .redis_timeout(DEADLINE)
            .connect_timeout(PATIENT)
            .breaker_open(Duration::from_millis(200))
            .build()
            .expect("valid config"),
    )
}

/// Keys on one node.
fn node_keys(node: &RedisServer, pattern: &str) -> Vec<String> {
    keys(node, pattern)
}

fn all_keys(cluster: &RedisCluster, pattern: &str) -> usize {
    cluster
        .nodes()
        .iter()
        .filter(|node| node.is_running())
        .map(|node| node_keys(node, pattern).len())
        .sum()
}

/// Computes and stores every request through `rt`, and waits until all
/// entries are in the cluster.
async fn fill(cluster: &RedisCluster, rt: &Runtime, calls: &Calls) {
    round(rt, calls).await;
    assert!(rt.flush(SETTLE).await);
    assert!(
        wait_until(SETTLE, || all_keys(cluster, "meridian:v1:natal:*") == KEYS),
        "{} of {KEYS} entries stored",
        all_keys(cluster, "meridian:v1:natal:*")
    );
}

/// Set (to the test's name) in the process the test below starts.
const CHILD: &str = "CACHED_REDIS_TEST_CHILD";

#[tokio::test]
async fn entries_spread_over_every_primary_and_hit_from_another_process() {
    const NAME: &str = "entries_spread_over_every_primary_and_hit_from_another_process";
    if std::env::var(CHILD).as_deref() == Ok(NAME) {
        // The other process: configured from the environment as a service
        // is, it finds every entry in the cluster and computes none.
        let rt = Runtime::new(Config::from_env().expect("a valid environment"));
        let calls = Calls::default();
        let stats = round(&rt, &calls).await;
        assert_eq!(
            (stats.redis_hits, stats.redis_errors),
            (KEYS as u64, 0),
            "{stats:?}"
        );
        assert_eq!(calls.get(), 0);
        return;
    }
    let cluster = RedisCluster::start(3);
    let writer = cluster_runtime(&cluster);
    let calls = Calls::default();
    fill(&cluster, &writer, &calls).await;
    for node in cluster.nodes() {
        assert!(
            !node_keys(node, "meridian:*").is_empty(),
            "node {} holds none of the {KEYS} keys",
            node.port()
        );
    }
    let child = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", NAME, "--nocapture"])
        .env(CHILD, NAME)
        .env("ENABLE_REDIS_CACHE", "on")
        .env("REDIS_CLUSTER_URLS", cluster.urls().join(","))
        // Its first read of each node opens the connection: on a loaded
        // machine that can miss the default deadlines, and compute.
        .env("CACHE_REDIS_TIMEOUT", "5s")
        .env("CACHE_REDIS_CONNECT_TIMEOUT", "5s")
        .output()
        .expect("the other process runs");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "the other process failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert_eq!(calls.get(), KEYS, "computed once, by the writer");
}

#[tokio::test]
async fn clear_walks_every_primary_and_spares_other_domains() {
    let cluster = RedisCluster::start(3);
    let rt = cluster_runtime(&cluster);
    let calls = Calls::default();
    fill(&cluster, &rt, &calls).await;
    for req in &requests()[..10] {
        transit(req, &rt).await;
    }
    assert!(rt.flush(SETTLE).await);
    assert!(wait_until(SETTLE, || all_keys(
        &cluster,
        "meridian:v1:transit:*"
    ) == 10));

    let removed = rt.clear("natal", "v1").await.expect("clear");
    let left: Vec<usize> = cluster
        .nodes()
        .iter()
        .map(|node| node_keys(node, "meridian:v1:natal:*").len())
        .collect();
    assert_eq!(
        removed, KEYS as u64,
        "the count covers every primary; natal keys left per node: {left:?}"
    );
    assert_eq!(all_keys(&cluster, "meridian:v1:natal:*"), 0);
    assert_eq!(all_keys(&cluster, "meridian:v1:transit:*"), 10);
}

#[tokio::test]
async fn clear_removes_nothing_when_a_slot_has_no_primary() {
    let cluster = RedisCluster::start(3);
    let rt = cluster_runtime(&cluster);
    let calls = Calls::default();
    fill(&cluster, &rt, &calls).await;
    // What a node that has not heard yet what another serves reports.
    cluster.unassign_slots(0, 99);

    let err = rt
        .clear("natal", "v1")
        .await
        .expect_err("a walk would miss keys");
    assert!(
        matches!(
            err,
            ClearError::Redis(RedisError::SlotMap(SlotMapError::Uncovered {
                uncovered: 100
            }))
        ),
        "{err}"
    );
    assert_eq!(all_keys(&cluster, "meridian:v1:natal:*"), KEYS);
}

/// Calls every request in rounds until told to stop; checks every value
/// and records the slowest call.
struct Traffic {
    stop: AtomicBool,
    rounds: AtomicUsize,
    slowest_us: AtomicUsize,
}

impl Traffic {
    fn start(rt: &Runtime, calls: &Arc<Calls>) -> (Arc<Traffic>, tokio::task::JoinHandle<()>) {
        let traffic = Arc::new(Traffic {
            stop: AtomicBool::new(false),
            rounds: AtomicUsize::new(0),
            slowest_us: AtomicUsize::new(0),
        });
        let (rt, calls, state) = (rt.clone(), Arc::clone(calls), Arc::clone(&traffic));
        let task = tokio::spawn(async move {
            let requests = requests();
            while !state.stop.load(Ordering::SeqCst) {
                for req in &requests {
                    let started = Instant::now();
                    let chart = natal(req, &rt, &calls).await;
                    let took = started.elapsed().as_micros() as usize;
                    state.slowest_us.fetch_max(took, Ordering::SeqCst);
                    assert_eq!(chart, compute_chart(req), "a wrong value");
                }
                state.rounds.fetch_add(1, Ordering::SeqCst);
            }
        });
        (traffic, task)
    }

    /// Waits until `more` further rounds have completed.
    fn wait_rounds(&self, more: usize) {
        let target = self.rounds.load(Ordering::SeqCst) + more;
        assert!(
            wait_until(Duration::from_secs(20), || self
                .rounds
                .load(Ordering::SeqCst)
                >= target),
            "traffic stalled"
        );
    }

    async fn finish(&self, task: tokio::task::JoinHandle<()>) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        task.await.expect("traffic saw only right values");
        Duration::from_micros(self.slowest_us.load(Ordering::SeqCst) as u64)
    }
}

/// One call of every request; returns the counters the round moved, so a
/// failed assertion shows where every value came from.
async fn round(rt: &Runtime, calls: &Calls) -> cached_redis::CacheStats {
    let before = rt.stats().total;
    for req in &requests() {
        assert_eq!(natal(req, rt, calls).await, compute_chart(req));
    }
    rt.stats().total.since(&before)
}

/// Rounds through `rt` until one is served by Redis alone, within the
/// settle time. Under load a runtime's first read of a node, which also
/// opens the connection, may miss its deadline and compute: the next round
/// reads it again. A miss never happens: every entry is in Redis.
async fn until_redis_serves_a_round(rt: &Runtime, calls: &Calls) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let stats = round(rt, calls).await;
        assert_eq!(stats.redis_misses, 0, "an entry was missing: {stats:?}");
        if stats.redis_hits == KEYS as u64 {
            return;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        assert!(rt.flush(SETTLE).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_takes_only_its_own_keys_to_the_fallback() {
    let cluster = RedisCluster::start(3);
    let calls = Arc::new(Calls::default());
    let rt = cluster_runtime(&cluster);
    fill(&cluster, &rt, &calls).await;
    let victim = &cluster.nodes()[1];
    let on_victim = node_keys(victim, "meridian:*").len();
    let elsewhere = KEYS - on_victim;
    assert!(on_victim > 0 && elsewhere > 0);

    // Killed mid-traffic: every call right, none slow.
    let (traffic, task) = Traffic::start(&rt, &calls);
    let waiting = Arc::clone(&traffic);
    tokio::task::spawn_blocking(move || waiting.wait_rounds(2))
        .await
        .unwrap();
    victim.kill();
    let waiting = Arc::clone(&traffic);
    tokio::task::spawn_blocking(move || waiting.wait_rounds(3))
        .await
        .unwrap();
    let slowest = traffic.finish(task).await;
    assert!(
        slowest < DEADLINE + Duration::from_secs(1),
        "a call took {slowest:?} while a primary was down"
    );

    // Its breaker open, the dead primary's keys come from memory and
    // every other key still hits Redis.
    assert_eq!(rt.breaker_state(), cached_redis::BreakerState::Open);
    let stats = round(&rt, &calls).await;
    assert_eq!(stats.redis_hits, elsewhere as u64, "{stats:?}");
    assert_eq!(stats.memory_hits, on_victim as u64, "{stats:?}");
    assert_eq!(calls.get(), KEYS, "nothing computed again");

    // Back (empty, its slots kept in nodes.conf): its keys are stored there
    // again as calls probe it.
    victim.restart();
    assert!(
        wait_until(Duration::from_secs(20), || cluster.is_ok()),
        "the cluster did not recover"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while node_keys(victim, "meridian:*").len() < on_victim {
        assert!(
            Instant::now() < deadline,
            "caching on the restarted primary's slots did not resume: {} of {on_victim}",
            node_keys(victim, "meridian:*").len()
        );
        round(&rt, &calls).await;
        assert!(rt.flush(SETTLE).await);
        // Between rounds, the breaker's open window (200 ms) passes.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        calls.get(),
        KEYS + on_victim,
        "the restarted node's keys, computed again"
    );
    // Another runtime now finds every key in Redis, the restarted node's
    // too.
    until_redis_serves_a_round(&cluster_runtime(&cluster), &calls).await;
}

fn node_id(node: &RedisServer) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut node.connection())
        .expect("CLUSTER MYID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrated_during_traffic_costs_no_error_and_no_wrong_value() {
    let cluster = RedisCluster::start(3);
    let rt = cluster_runtime(&cluster);
    let calls = Arc::new(Calls::default());
    fill(&cluster, &rt, &calls).await;
    let filled = rt.stats().total;
    let (source, target) = (&cluster.nodes()[0], &cluster.nodes()[2]);
    let moving = node_keys(source, "meridian:*");
    let slots: Vec<i64> = moving
        .iter()
        .take(3)
        .map(|key| {
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query(&mut source.connection())
                .expect("CLUSTER KEYSLOT")
        })
        .collect();
    let (source_id, target_id) = (node_id(source), node_id(target));

    let (traffic, task) = Traffic::start(&rt, &calls);
    let migrate = tokio::task::spawn_blocking({
        let traffic = Arc::clone(&traffic);
        let target_port = target.port();
        let (source, target) = (source.url(), target.url());
        move || {
            let conn = |url: &str| {
                redis::Client::open(url)
                    .and_then(|c| c.get_connection())
                    .expect("connect")
            };
            let (mut src, mut dst) = (conn(&source), conn(&target));
            let setslot = |con: &mut redis::Connection, slot: i64, how: &str, id: &str| {
                let () = redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(how)
                    .arg(id)
                    .query(con)
                    .expect("CLUSTER SETSLOT");
            };
            for &slot in &slots {
                setslot(&mut dst, slot, "IMPORTING", &source_id);
                setslot(&mut src, slot, "MIGRATING", &target_id);
                traffic.wait_rounds(1);
                let keys: Vec<String> = redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(100)
                    .query(&mut src)
                    .expect("GETKEYSINSLOT");
                if !keys.is_empty() {
                    let () = redis::cmd("MIGRATE")
                        .arg("127.0.0.1")
                        .arg(target_port)
                        .arg("")
                        .arg(0)
                        .arg(5000)
                        .arg("KEYS")
                        .arg(&keys)
                        .query(&mut src)
                        .expect("MIGRATE");
                }
                // Keys now on the target, slot still owned by the source:
                // the source answers ASK.
                traffic.wait_rounds(1);
                setslot(&mut dst, slot, "NODE", &target_id);
                setslot(&mut src, slot, "NODE", &target_id);
                // Owned by the target: the source answers MOVED.
                traffic.wait_rounds(1);
            }
        }
    });
    migrate.await.expect("migration steps");
    traffic.wait_rounds(1);
    traffic.finish(task).await;

    let stats = rt.stats().total.since(&filled);
    assert_eq!(
        stats.redis_errors, 0,
        "redirects are not failures: {stats:?}"
    );
    for key in moving.iter().take(3) {
        assert!(
            keys(target, key).len() == 1,
            "{key} lives on the target after the migration"
        );
    }
    assert_eq!(calls.get(), KEYS, "every value still came from the cache");
}

#[tokio::test]
async fn the_documented_acl_line_suffices_on_every_node() {
    let cluster = RedisCluster::start(3);
    // The documented line, plus the slot map and the client's node checks.
    let rules = format!("{CACHE_RULES} +cluster|slots +ping");
    for node in cluster.nodes() {
        acl_setuser(node, "cache", "cache-pw", &rules);
    }
    let as_cache = || {
        Runtime::new(
            Config::builder()
                .redis_enabled(true)
                .redis_cluster(cluster.urls())
                .redis_username("cache")
                .redis_password("cache-pw")
                .redis_timeout(DEADLINE)
                .connect_timeout(PATIENT)
                .build()
                .expect("valid config"),
        )
    };
    let (writer, reader) = (as_cache(), as_cache());
    let calls = Calls::default();
    fill(&cluster, &writer, &calls).await;
    // Every entry read back from Redis as this user.
    until_redis_serves_a_round(&reader, &calls).await;
    // A damaged entry is purged by script, as this user.
    let victim = node_keys(&cluster.nodes()[0], "meridian:*").remove(0);
    put(&cluster.nodes()[0], &victim, b"garbage");
    for req in &requests() {
        natal(req, &as_cache(), &calls).await;
    }
    assert!(wait_until(SETTLE, || raw(&cluster.nodes()[0], &victim)
        .is_some_and(|bytes| bytes != b"garbage")));
    assert_eq!(
        writer.clear("natal", "v1").await.expect("clear"),
        KEYS as u64
    );
    for node in cluster.nodes() {
        let denied = acl_log(node);
        assert!(denied.is_empty(), "node {}: {denied:?}", node.port());
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut node.connection())
            .unwrap();
        assert!(clients.contains("user=cache"), "{clients}");
    }
}

#[tokio::test]
async fn a_tls_cluster_is_reached_with_rediss_seeds_and_the_ca() {
    let dir = TempDir::new();
    let pki = Pki::new(&["127.0.0.1"]).write(dir.path());
    let cluster = RedisCluster::start_tls(3, &pki);
    let over_tls = || {
        Runtime::new(
            Config::builder()
                .redis_enabled(true)
                .redis_cluster(cluster.tls_urls())
                .redis_ca_cert(&pki.ca)
                // Three TLS handshakes and the slot map, on a loaded
                // machine: not this test's subject.
                .redis_timeout(PATIENT)
                .connect_timeout(PATIENT)
                .build()
                .expect("valid config"),
        )
    };
    let (writer, reader) = (over_tls(), over_tls());
    let calls = Calls::default();
    fill(&cluster, &writer, &calls).await;
    let stats = round(&reader, &calls).await;
    assert_eq!(stats.redis_hits, KEYS as u64, "{stats:?}");
    assert_eq!(
        reader.clear("natal", "v1").await.expect("clear"),
        KEYS as u64
    );
    for node in cluster.nodes() {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut node.connection())
            .unwrap();
        let tls_clients = clients
            .lines()
            .filter(|l| l.contains(&format!("laddr=127.0.0.1:{}", node.tls_port())))
            .count();
        assert!(
            tls_clients > 0,
            "no TLS client on node {}: {clients}",
            node.port()
        );
    }
}
