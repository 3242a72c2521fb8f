//! The near-cache (`near`, `CACHE_NEAR`): a hot key is served from this
//! process's copy without a round trip; a change made by another process
//! reaches it through Redis's invalidation; a lost connection empties it.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

/// What the body computes this time: the value changes with it.
#[derive(Default)]
struct Epoch(AtomicU64);

#[redis_cached(domain = "natal", ttl = 600, near = true, runtime = rt, skip(rt, epoch, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, epoch: &Epoch, calls: &Calls) -> (u64, Chart) {
    calls.bump();
    (epoch.0.load(Ordering::SeqCst), compute_chart(req))
}

/// Redis on, no memory fallback: every value seen came from Redis or the
/// near-cache (and none computed because a read missed its deadline).
fn runtime(server: &RedisServer) -> Runtime {
    Runtime::new(
        redis_config(&server.url())
            .memory_fallback(false)
            .breaker_open(Duration::from_millis(50))
            .build()
            .expect("valid config"),
    )
}

/// `GET`s the server has answered (`INFO commandstats`).
fn gets(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.connection())
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_hot_key_is_served_without_a_round_trip() {
    let server = RedisServer::start();
    let rt = runtime(&server);
    let (epoch, calls) = (Epoch::default(), Calls::default());
    let req = NatalRequest::new("1990-01-01");
    natal(&req, &rt, &epoch, &calls).await;
    assert!(rt.flush(SETTLE).await);
    // The first read from Redis fills this process's copy.
    assert_eq!(
        natal(&req, &rt, &epoch, &calls).await,
        (0, compute_chart(&req))
    );
    let before = gets(&server);
    for _ in 0..100 {
        assert_eq!(
            natal(&req, &rt, &epoch, &calls).await,
            (0, compute_chart(&req))
        );
    }
    assert_eq!(gets(&server), before, "100 hits, no GET reached Redis");
    assert_eq!(calls.get(), 1);
    assert_eq!(rt.stats().total.redis_hits, 101);
}

#[redis_cached(domain = "shared", ttl = 600, near = true, runtime = rt, skip(rt))]
async fn shared_chart(req: &NatalRequest, rt: &Runtime) -> std::sync::Arc<Chart> {
    std::sync::Arc::new(compute_chart(req))
}

#[tokio::test]
async fn an_arc_value_is_shared_by_every_hit_not_copied() {
    // The advice for a value that is costly to clone: return `Arc<T>`
    // (serde's `rc` feature). A hit on the copy then hands out the one
    // value Redis's entry decoded to — a reference count, no deep clone.
    let server = RedisServer::start();
    let rt = runtime(&server);
    let req = NatalRequest::new("1990-01-01");
    shared_chart(&req, &rt).await;
    assert!(rt.flush(SETTLE).await);
    let first = shared_chart(&req, &rt).await;
    assert_eq!(*first, compute_chart(&req));
    let before = gets(&server);
    for _ in 0..10 {
        let hit = shared_chart(&req, &rt).await;
        assert!(
            std::sync::Arc::ptr_eq(&hit, &first),
            "a hit copied the value"
        );
    }
    assert_eq!(gets(&server), before, "every hit served from the copy");
}

/// Calls until the value computed at `epoch` is returned; how long that took.
async fn until_value(
    rt: &Runtime,
    req: &NatalRequest,
    epoch: &Epoch,
    calls: &Calls,
    want: u64,
) -> Duration {
    let started = Instant::now();
    while natal(req, rt, epoch, calls).await.0 != want {
        assert!(
            started.elapsed() < SETTLE,
            "the change never reached this process"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_change_made_by_another_process_reaches_the_copy() {
    let server = RedisServer::start();
    let (near, other) = (runtime(&server), runtime(&server));
    let (epoch, calls) = (Epoch::default(), Calls::default());
    let req = NatalRequest::new("1990-01-02");
    natal(&req, &near, &epoch, &calls).await;
    assert!(near.flush(SETTLE).await);
    natal(&req, &near, &epoch, &calls).await;

    // Another process clears the domain and stores a new value.
    epoch.0.store(1, Ordering::SeqCst);
    other.clear("natal", "v1").await.expect("clear");
    assert_eq!(natal(&req, &other, &epoch, &calls).await.0, 1);
    assert!(other.flush(SETTLE).await);
    until_value(&near, &req, &epoch, &calls, 1).await;
}

#[tokio::test]
async fn a_lost_connection_empties_the_copy() {
    let server = RedisServer::start();
    let rt = runtime(&server);
    let (epoch, calls) = (Epoch::default(), Calls::default());
    let req = NatalRequest::new("1990-01-03");
    natal(&req, &rt, &epoch, &calls).await;
    assert!(rt.flush(SETTLE).await);
    assert_eq!(natal(&req, &rt, &epoch, &calls).await.0, 0);

    // Restarted empty: no invalidation can reach the old connection.
    epoch.0.store(1, Ordering::SeqCst);
    server.restart();
    until_value(&rt, &req, &epoch, &calls, 1).await;
}

#[tokio::test]
async fn the_documented_acl_line_suffices_for_the_near_cache() {
    let server = RedisServer::start();
    // The documented line, plus what the near-cache sends.
    let rules = format!("{CACHE_RULES} +client|tracking");
    acl_setuser(&server, "cache", "cache-pw", &rules);
    let as_cache = || {
        Runtime::new(
            redis_config(&server.url())
                .redis_username("cache")
                .redis_password("cache-pw")
                .build()
                .expect("valid config"),
        )
    };
    let (rt, other) = (as_cache(), as_cache());
    let (epoch, calls) = (Epoch::default(), Calls::default());
    let req = NatalRequest::new("1990-01-04");
    natal(&req, &rt, &epoch, &calls).await;
    assert!(rt.flush(SETTLE).await);
    let before = gets(&server);
    for _ in 0..10 {
        natal(&req, &rt, &epoch, &calls).await;
    }
    assert_eq!(gets(&server), before + 1, "one GET, then the copy");
    epoch.0.store(1, Ordering::SeqCst);
    other.clear("natal", "v1").await.expect("clear");
    natal(&req, &other, &epoch, &calls).await;
    assert!(other.flush(SETTLE).await);
    until_value(&rt, &req, &epoch, &calls, 1).await;
    let denied = acl_log(&server);
    assert!(denied.is_empty(), "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_alternating_writes_and_reads_never_read_a_stale_copy() {
    let server = RedisServer::start();
    let runtimes = [runtime(&server), runtime(&server)];
    let (epoch, calls) = (Epoch::default(), Calls::default());
    let reqs: Vec<NatalRequest> = (1..=5)
        .map(|day| NatalRequest::new(&format!("1991-01-{day:02}")))
        .collect();
    let mut stale = 0;
    for round in 1..=100_u64 {
        let (writer, reader) = (
            &runtimes[(round % 2) as usize],
            &runtimes[1 - (round % 2) as usize],
        );
        // A write: the domain cleared and every key computed anew.
        epoch.0.store(round, Ordering::SeqCst);
        writer.clear("natal", "v1").await.expect("clear");
        for req in &reqs {
            assert_eq!(natal(req, writer, &epoch, &calls).await.0, round);
        }
        assert!(writer.flush(SETTLE).await);
        // The other process reads every key, each already in its copy.
        for req in &reqs {
            if natal(req, reader, &epoch, &calls).await.0 != round {
                stale += 1;
            }
        }
    }
    assert_eq!(stale, 0, "stale reads out of 500");
    assert_eq!(
        calls.get(),
        500,
        "the readers computed nothing: they read the writers' values"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_delete_by_another_client_reaches_the_copy() {
    let server = RedisServer::start();
    let rt = runtime(&server);
    let (epoch, calls) = (Epoch::default(), Calls::default());
    let req = NatalRequest::new("1990-01-09");
    natal(&req, &rt, &epoch, &calls).await;
    assert!(rt.flush(SETTLE).await);
    natal(&req, &rt, &epoch, &calls).await;
    natal(&req, &rt, &epoch, &calls).await;
    epoch.0.store(1, Ordering::SeqCst);
    let key = keys(&server, "meridian:*").remove(0);
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query(&mut server.connection())
        .unwrap();
    until_value(&rt, &req, &epoch, &calls, 1).await;
}
