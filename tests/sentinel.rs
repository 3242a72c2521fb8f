//! Sentinel, on a real master, replica and Sentinel the harness starts:
//! the master is found through Sentinel; when it dies and the replica is
//! promoted, caching resumes against the new master, with every value right
//! meanwhile; a master demoted under a live connection (a forced failover)
//! answers `READONLY` once at most before writes go to the new master.

mod common;

use std::time::{Duration, Instant};

use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::{Blackhole, RedisSentinel, RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", ttl = 600, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

/// Every data node gets the cache's ACL user — the documented line, plus
/// the master check — (a replica promoted later must know it too; ACLs are
/// not replicated).
fn with_cache_user(group: &RedisSentinel) {
    let rules = format!("{CACHE_RULES} +role");
    for node in group.nodes() {
        acl_setuser(node, "cache", "cache-pw", &rules);
    }
}

/// Runs as the ACL user: the master authenticates with it, the Sentinel
/// (which has no password) with what its URL says.
fn sentinel_runtime(group: &RedisSentinel) -> Runtime {
    Runtime::new(
        Config::builder()
            .redis_enabled(true)
            .redis_sentinel([group.sentinel_url()], group.name())
            .redis_username("cache")
            .redis_password("cache-pw")
            .redis_timeout(PATIENT)
            .connect_timeout(PATIENT)
            .breaker_open(Duration::from_millis(100))
            .build()
            .expect("valid config"),
    )
}

fn request(i: usize) -> NatalRequest {
    NatalRequest::new(&format!("1985-03-{i:02}"))
}

/// Calls new requests until one's entry is stored on `node`; returns how
/// long that took. Every value is checked.
async fn until_stored_on(node: &RedisServer, rt: &Runtime, calls: &Calls, from: usize) -> Duration {
    let started = Instant::now();
    for i in from.. {
        let req = request(i);
        assert_eq!(natal(&req, rt, calls).await, compute_chart(&req));
        rt.flush(SETTLE).await;
        if stored(node, &req).await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no entry reached port {} after 30 s",
            node.port()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

/// Whether `req`'s entry is on `node`: a fresh runtime's Redis hit there.
async fn stored(node: &RedisServer, req: &NatalRequest) -> bool {
    let probe = redis_runtime(&node.url());
    let calls = Calls::default();
    natal(req, &probe, &calls).await;
    probe.stats().total.redis_hits == 1
}

#[tokio::test]
async fn caching_resumes_on_the_promoted_replica_after_the_master_dies() {
    let group = RedisSentinel::start("cache-master");
    let [master, replica] = group.nodes() else {
        unreachable!()
    };
    with_cache_user(&group);
    let rt = sentinel_runtime(&group);
    let calls = Calls::default();

    until_stored_on(master, &rt, &calls, 1).await;
    let reader = sentinel_runtime(&group);
    let before = calls.get();
    assert_eq!(
        natal(&request(1), &reader, &calls).await,
        compute_chart(&request(1))
    );
    assert_eq!(
        calls.get(),
        before,
        "found through Sentinel by another runtime"
    );

    // What the master holds is on the replica before the master dies.
    let replicated: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5_000)
        .query(&mut master.connection())
        .expect("WAIT");
    assert_eq!(replicated, 1, "the replica acknowledged the writes");
    master.kill();
    let killed = Instant::now();
    // When Sentinel names the new master, seen from outside.
    let switched = tokio::task::spawn_blocking({
        let (sentinel, port) = (group.sentinel_url(), replica.port());
        move || {
            let named = || {
                redis::Client::open(sentinel.as_str())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut con| {
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg("cache-master")
                            .query::<(String, u16)>(&mut con)
                    })
                    .is_ok_and(|(_, named)| named == port)
            };
            wait_until(Duration::from_secs(30), named).then(|| killed.elapsed())
        }
    });
    until_stored_on(replica, &rt, &calls, 100).await;
    let resumed = killed.elapsed();
    let switched = switched.await.unwrap().expect("Sentinel failed over");
    eprintln!(
        "caching resumed on the promoted replica {resumed:?} after the master died; \
         Sentinel named it after {switched:?}"
    );
    assert!(group.wait_for_master(replica));
    // Entries replicated before the failover are still hits.
    let fresh = sentinel_runtime(&group);
    assert_eq!(
        natal(&request(1), &fresh, &calls).await,
        compute_chart(&request(1))
    );
    assert_eq!(
        fresh.stats().total.redis_hits,
        1,
        "{:?}",
        fresh.stats().total
    );
    assert!(acl_log(replica).is_empty(), "{:?}", acl_log(replica));
}

/// `READONLY` replies `node` has sent (`INFO errorstats`).
fn readonly_errors(node: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut node.connection())
        .expect("INFO errorstats");
    info.lines()
        .find_map(|line| line.strip_prefix("errorstat_READONLY:count="))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_demoted_master_answers_readonly_once_at_most() {
    let group = RedisSentinel::start("cache-master");
    let [old, new] = group.nodes() else {
        unreachable!()
    };
    with_cache_user(&group);
    let rt = sentinel_runtime(&group);
    let calls = Calls::default();
    until_stored_on(old, &rt, &calls, 1).await;

    // Forced failover: the old master lives on as a replica, with our
    // connection to it still open.
    let () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(group.name())
        .query(&mut group.sentinel().connection())
        .expect("SENTINEL FAILOVER");
    assert!(group.wait_for_master(new), "{}", group.sentinel().log());
    // What Sentinel does to the old master on its next check (up to 10 s
    // later; until then the old master still takes writes, which its
    // conversion discards: entries lost, never a wrong value).
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(new.port())
        .query(&mut old.connection())
        .expect("REPLICAOF");

    until_stored_on(new, &rt, &calls, 100).await;
    eprintln!("READONLY replies: {}", readonly_errors(old));
    assert!(
        readonly_errors(old) <= 1,
        "writes kept going to the demoted master: {} READONLY replies",
        readonly_errors(old)
    );
}

#[tokio::test]
async fn a_hung_sentinel_costs_nothing_while_another_answers() {
    let group = RedisSentinel::start("cache-master");
    with_cache_user(&group);
    let hung = Blackhole::start();
    let rt = Runtime::new(
        Config::builder()
            .redis_enabled(true)
            .redis_sentinel([hung.url(), group.sentinel_url()], group.name())
            .redis_username("cache")
            .redis_password("cache-pw")
            .build()
            .expect("valid config"),
    );
    let calls = Calls::default();
    until_stored_on(&group.nodes()[0], &rt, &calls, 1).await;
    assert_eq!(rt.stats().total.redis_errors, 0, "{:?}", rt.stats().total);
    assert!(hung.accepted() > 0, "the hung Sentinel was asked too");
}
