//! Cached calls from any executor: runtimes built without the time or I/O
//! driver, connections that outlive the runtime that first used them, and
//! futures dropped part-way — the breaker and the flights stay consistent.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use cached_redis::{BreakerState, Config, Runtime, redis_cached};
use cached_redis_test_support::{Blackhole, RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", ttl = 600, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    // Yields once, so two concurrent calls interleave even on one thread.
    tokio::task::yield_now().await;
    compute_chart(req)
}

#[redis_cached(domain = "natal", ttl = 600, runtime = rt, skip(rt, calls))]
fn natal_sync(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

/// Runs `future` on a runtime with neither the time nor the I/O driver.
fn on_a_bare_runtime<F: Future>(multi_thread: bool, future: F) -> F::Output {
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().build()
    };
    runtime.expect("a runtime").block_on(future)
}

#[test]
fn a_runtime_without_time_or_io_drivers_never_panics() {
    let server = RedisServer::start();
    for multi_thread in [false, true] {
        let rt = redis_runtime(&server.url());
        let calls = Calls::default();
        let req = NatalRequest::new(if multi_thread {
            "1990-01-02"
        } else {
            "1990-01-01"
        });
        on_a_bare_runtime(multi_thread, async {
            assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
            assert!(rt.flush(SETTLE).await);
            assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
        });
        assert_eq!(calls.get(), 1, "{:?}", rt.stats());
        assert_eq!(rt.stats().total.redis_hits, 1, "served by Redis");
    }

    // Redis that never answers: the deadline still holds without a timer here.
    let blackhole = Blackhole::start();
    let rt = deadline_runtime(&blackhole.url(), Duration::from_secs(30));
    let calls = Calls::default();
    let req = NatalRequest::new("1990-01-03");
    on_a_bare_runtime(false, async {
        let started = Instant::now();
        assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
        assert!(
            started.elapsed() < DEADLINE_BOUND,
            "{:?}",
            started.elapsed()
        );
    });

    // Redis off: two concurrent calls of a cold key, one computes and the
    // other waits for it (its wait bounded by a timer it does not own).
    let rt = Runtime::new(Config::default());
    let calls = Calls::default();
    on_a_bare_runtime(false, async {
        let (a, b) = tokio::join!(natal(&req, &rt, &calls), natal(&req, &rt, &calls));
        assert_eq!((a, b), (compute_chart(&req), compute_chart(&req)));
        natal(&req, &rt, &calls).await;
    });
    assert_eq!(calls.get(), 1);
    assert_eq!(rt.stats().total.coalesced, 1);
    assert_eq!(rt.stats().total.memory_hits, 1);
}

#[test]
fn connections_outlive_the_runtime_that_made_them() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();
    let req = NatalRequest::new("1990-02-01");
    let first = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    // The connection is made while this runtime runs, and the runtime ends.
    first().block_on(async {
        natal(&req, &rt, &calls).await;
        assert!(rt.flush(SETTLE).await);
    });
    first().block_on(async {
        assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
    });
    // And from a plain thread, with no runtime at all.
    std::thread::scope(|scope| {
        scope.spawn(|| assert_eq!(natal_sync(&req, &rt, &calls), compute_chart(&req)));
    });
    let stats = rt.stats().total;
    assert_eq!(calls.get(), 2, "one computation per function: {stats:?}");
    assert_eq!(stats.redis_errors, 0, "{stats:?}");
    assert_eq!(stats.redis_hits, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_probe_hands_the_probe_to_the_next_call() {
    let server = RedisServer::start();
    // A deadline long enough that a stalled probe would hold the breaker
    // half-open for the whole test: only the drop can release it in time.
    let config = Config::builder()
        .redis_enabled(true)
        .redis_url(server.url())
        .redis_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .breaker_failures(1)
        .breaker_open(Duration::from_millis(100))
        .build()
        .unwrap();
    let rt = Runtime::new(config);
    let calls = Calls::default();
    let acl = |rule: &str| {
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg(rule)
            .query(&mut server.connection())
            .unwrap();
    };
    acl("-get");
    natal(&NatalRequest::new("1990-03-01"), &rt, &calls).await;
    assert_eq!(
        rt.breaker_state(),
        BreakerState::Open,
        "one failure opens it"
    );
    acl("+@all");
    assert!(wait_until(SETTLE, || rt.breaker_state() == BreakerState::HalfOpen));

    // The probe's caller gives up while Redis is frozen.
    server.pause();
    let frozen = NatalRequest::new("1990-03-02");
    let probe = tokio::time::timeout(Duration::from_millis(50), natal(&frozen, &rt, &calls));
    assert!(probe.await.is_err(), "the probe was still waiting");
    server.resume();

    // The next call probes at once instead of waiting out the stalled one.
    let started = Instant::now();
    let req = NatalRequest::new("1990-03-03");
    assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
    assert_eq!(rt.breaker_state(), BreakerState::Closed, "{:?}", rt.stats());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[redis_cached(domain = "slow", runtime = rt, skip(rt, calls))]
async fn slow(key: u32, rt: &Runtime, calls: &Calls) -> u32 {
    calls.bump();
    tokio::time::sleep(Duration::from_millis(100)).await;
    key * 2
}

#[tokio::test]
async fn a_cancelled_leader_frees_its_key_at_once() {
    // Waiting for the cancelled leader would take `single_flight_wait`.
    let config = Config::builder()
        .single_flight_wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let rt = Runtime::new(config);
    let calls = Calls::default();
    let cancelled = tokio::time::timeout(Duration::from_millis(10), slow(5, &rt, &calls)).await;
    assert!(cancelled.is_err());
    let started = Instant::now();
    assert_eq!(slow(5, &rt, &calls).await, 10);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls.get(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_memory_hits_lets_the_other_tasks_run() {
    let rt = memory_runtime(&cached_redis_test_support::refused_url());
    let calls = Calls::default();
    let req = NatalRequest::new("1990-01-01");
    natal(&req, &rt, &calls).await;
    let other_ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&other_ran);
    tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
    // Hits never wait on anything; on one thread, the spawned task runs
    // only if the calls yield now and then.
    let mut hits = 0;
    while !other_ran.load(std::sync::atomic::Ordering::SeqCst) {
        natal(&req, &rt, &calls).await;
        hits += 1;
        assert!(
            hits < 10_000,
            "10,000 hits without letting another task run"
        );
    }
    assert_eq!(calls.get(), 1);
}

#[test]
fn sync_calls_inside_a_task_never_wait_on_its_cooperative_budget() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        tokio.block_on(async {
            let rt = memory_runtime(&cached_redis_test_support::refused_url());
            let calls = Calls::default();
            let req = NatalRequest::new("1990-01-01");
            // Far more calls than a task's budget (128).
            for _ in 0..1_000 {
                assert_eq!(natal_sync(&req, &rt, &calls), compute_chart(&req));
            }
        });
        let _ = done.send(());
    });
    assert!(
        finished.recv_timeout(Duration::from_secs(30)).is_ok(),
        "sync calls hung inside a task whose budget ran out"
    );
}
