//! Redis off, or unreachable: correct values, bounded latency, no Redis traffic when off.

mod common;

use std::time::{Duration, Instant};

use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::{Blackhole, ConnectionRecorder, refused_url};
use common::*;

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt, calls))]
fn natal_sync(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

#[tokio::test]
async fn flag_off_never_connects_and_memory_serves() {
    let recorder = ConnectionRecorder::start();
    let rt = memory_runtime(&recorder.url());
    let calls = Calls::default();
    let req = NatalRequest::new("1990-01-01");
    for _ in 0..3 {
        assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
        assert_eq!(natal_sync(&req, &rt, &calls), compute_chart(&req));
    }
    assert_eq!(
        calls.get(),
        2,
        "one computation per function, then memory hits"
    );
    assert_eq!(rt.stats().total.memory_hits, 4);
    assert!(rt.flush(SETTLE).await);
    rt.clear("natal", "v1").await.unwrap();
    assert_eq!(
        recorder.connections(),
        0,
        "Redis was contacted with the flag off"
    );

    // The recorder does see a runtime with the flag on, so the zero above means something.
    let on = redis_runtime(&recorder.url());
    natal(&req, &on, &calls).await;
    assert!(recorder.connections() > 0);
}

#[redis_cached(domain = "names", ttl = 60, runtime = rt, skip(rt, calls))]
fn names(prefix: &str, rt: &Runtime, calls: &Calls) -> Vec<String> {
    calls.bump();
    vec![format!("{prefix}-a"), format!("{prefix}-b")]
}

/// Not `Clone`: memory decodes it on every hit instead of cloning a copy.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Opaque(Vec<String>);

#[redis_cached(domain = "opaque", ttl = 60, runtime = rt, skip(rt, calls))]
fn opaque(prefix: &str, rt: &Runtime, calls: &Calls) -> Opaque {
    calls.bump();
    Opaque(vec![prefix.to_owned()])
}

#[test]
fn memory_hits_are_values_of_their_own() {
    let rt = memory_runtime(&refused_url());
    let calls = Calls::default();
    let mut first = names("x", &rt, &calls);
    // What one caller does with its value never reaches the next caller's.
    first.push("mine".into());
    first[0].push_str("-changed");
    for _ in 0..3 {
        assert_eq!(names("x", &rt, &calls), ["x-a", "x-b"]);
    }
    assert_eq!(names("y", &rt, &calls), ["y-a", "y-b"]);
    for _ in 0..3 {
        assert_eq!(opaque("z", &rt, &calls), Opaque(vec!["z".into()]));
    }
    assert_eq!(calls.get(), 3, "one computation per input");
    assert_eq!(rt.stats().total.memory_hits, 5);
}

#[test]
fn without_memory_fallback_the_body_always_runs() {
    let recorder = ConnectionRecorder::start();
    let config = Config::builder()
        .redis_url(recorder.url())
        .memory_fallback(false)
        .build()
        .unwrap();
    let rt = Runtime::new(config);
    let calls = Calls::default();
    let req = NatalRequest::new("1990-01-01");
    for _ in 0..3 {
        assert_eq!(natal_sync(&req, &rt, &calls), compute_chart(&req));
    }
    assert_eq!(calls.get(), 3);
    assert_eq!(recorder.connections(), 0);
}

async fn assert_bounded_and_correct(rt: &Runtime) {
    let calls = Calls::default();
    for i in 0..5 {
        let req = NatalRequest::new(&format!("1999-12-{:02}", i % 2 + 1));
        let started = Instant::now();
        assert_eq!(natal(&req, rt, &calls).await, compute_chart(&req));
        assert!(
            started.elapsed() < DEADLINE_BOUND,
            "async call took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert_eq!(natal_sync(&req, rt, &calls), compute_chart(&req));
        assert!(
            started.elapsed() < DEADLINE_BOUND,
            "sync call took {:?}",
            started.elapsed()
        );
    }
    assert!(rt.stats().total.redis_errors > 0, "{:?}", rt.stats());
    assert!(
        rt.stats().total.memory_hits > 0,
        "the memory cache serves while Redis is down"
    );
}

#[tokio::test]
async fn refused_connection_falls_back() {
    assert_bounded_and_correct(&deadline_runtime(&refused_url(), Duration::from_secs(30))).await;
}

#[tokio::test]
async fn blackhole_falls_back_within_the_deadline() {
    let blackhole = Blackhole::start();
    assert_bounded_and_correct(&deadline_runtime(&blackhole.url(), Duration::from_secs(30))).await;
    assert!(blackhole.accepted() > 0, "the blackhole was never reached");
}

#[redis_cached(domain = "versions", ttl = 600, runtime = rt, skip(rt, calls))]
async fn version_of(name: &str, rt: &Runtime, calls: &Calls) -> usize {
    calls.bump();
    calls.get()
}

#[tokio::test]
async fn the_memory_fallback_never_goes_back_in_time() {
    let server = cached_redis_test_support::RedisServer::start();
    let (mine, other) = (redis_runtime(&server.url()), redis_runtime(&server.url()));
    let calls = Calls::default();
    assert_eq!(version_of("chart", &mine, &calls).await, 1);
    assert!(mine.flush(SETTLE).await);
    // Another process clears the domain and computes the value anew.
    other.clear("versions", "v1").await.unwrap();
    assert_eq!(version_of("chart", &other, &calls).await, 2);
    assert!(other.flush(SETTLE).await);
    assert_eq!(
        version_of("chart", &mine, &calls).await,
        2,
        "Redis is read first"
    );
    // Redis gone: this process's memory serves what Redis last said.
    server.kill();
    assert_eq!(version_of("chart", &mine, &calls).await, 2);
    assert_eq!(mine.stats().total.memory_hits, 1, "{:?}", mine.stats());
}

#[tokio::test]
async fn waits_of_any_length_are_accepted() {
    let server = cached_redis_test_support::RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();
    natal(&NatalRequest::new("2000-01-01"), &rt, &calls).await;
    assert!(rt.flush(Duration::MAX).await);
    assert!(matches!(
        rt.clear("natal", "v1").wait_for(Duration::MAX),
        Some(Ok(1))
    ));
}
