//! Redis sick, slow, killed, misconfigured: correct values, bounded
//! latency, no panics, and caching that resumes by itself.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cached_redis::{BreakerState, Config, Runtime, redis_cached};
use cached_redis_test_support::{RedisServer, wait_until};
use common::*;

const BOUNDED: Duration = DEADLINE_BOUND;
/// Short enough that recovery fits in a test, long enough that the checks
/// made while the breaker is open finish inside it on a loaded machine.
const WINDOW: Duration = Duration::from_millis(1_500);

/// A runtime whose breaker reopens after [`WINDOW`].
fn runtime(url: &str) -> Runtime {
    deadline_runtime(url, WINDOW)
}

#[redis_cached(domain = "natal", ttl = 600, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

#[redis_cached(domain = "natal", ttl = 600, runtime = rt, skip(rt, calls))]
fn natal_sync(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

fn request(i: usize) -> NatalRequest {
    NatalRequest::new(&format!("19{:02}-01-01T{:02}", i % 100, i / 100))
}

/// Commands (served or refused) that reached `server`, by name.
fn commands(server: &RedisServer, names: &[&str]) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.connection())
        .unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_")?.split_once(':'))
        .filter(|(name, _)| names.contains(name))
        .flat_map(|(_, fields)| fields.split(','))
        .filter_map(|field| field.split_once('='))
        .filter(|(field, _)| matches!(*field, "calls" | "rejected_calls"))
        .map(|(_, count)| count.parse::<u64>().unwrap_or(0))
        .sum()
}

const CACHE_COMMANDS: &[&str] = &["get", "set", "evalsha", "eval"];

#[tokio::test]
async fn test_redis_timeout_fallback() {
    let server = RedisServer::start();
    let rt = runtime(&server.url());
    let calls = Calls::default();
    natal(&request(0), &rt, &calls).await; // connected and healthy
    server.pause();
    for i in 1..4 {
        let started = Instant::now();
        assert_eq!(
            natal(&request(i), &rt, &calls).await,
            compute_chart(&request(i))
        );
        assert!(
            started.elapsed() < BOUNDED,
            "async call took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert_eq!(
            natal_sync(&request(i + 10), &rt, &calls),
            compute_chart(&request(i + 10))
        );
        assert!(
            started.elapsed() < BOUNDED,
            "sync call took {:?}",
            started.elapsed()
        );
    }
    assert!(rt.stats().total.redis_errors >= 3, "{:?}", rt.stats());
    // A value cached before the freeze is still served, from memory.
    assert_eq!(
        natal(&request(0), &rt, &calls).await,
        compute_chart(&request(0))
    );
    assert_eq!(calls.get(), 7);
    server.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_circuit_breaker_trip_reset() {
    let server = RedisServer::start();
    // Failures here are refusals (`NOPERM`), never deadlines: with a patient
    // deadline, a probe that reconnects on a loaded machine is not counted
    // as one more failure.
    let rt = Runtime::new(
        redis_config(&server.url())
            .breaker_open(WINDOW)
            .build()
            .expect("valid config"),
    );
    let calls = Calls::default();
    let acl = |rule: &str| {
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg(rule)
            .query(&mut server.connection())
            .unwrap();
    };
    natal(&request(0), &rt, &calls).await;
    assert!(rt.flush(SETTLE).await);
    let before = commands(&server, CACHE_COMMANDS);

    // Every GET and SET now fails with NOPERM while Redis stays up to count them.
    acl("-get");
    acl("-set");
    let mut i = 1;
    while rt.breaker_state() == BreakerState::Closed {
        assert!(i < 10, "the breaker did not open");
        assert_eq!(
            natal(&request(i), &rt, &calls).await,
            compute_chart(&request(i))
        );
        assert!(rt.flush(SETTLE).await);
        i += 1;
    }
    assert_eq!(
        commands(&server, CACHE_COMMANDS) - before,
        5,
        "opened after exactly 5 failures"
    );

    // Open: Redis is not contacted at all.
    for j in 100..150 {
        assert_eq!(
            natal(&request(j), &rt, &calls).await,
            compute_chart(&request(j))
        );
    }
    assert!(rt.flush(SETTLE).await);
    assert_eq!(
        commands(&server, CACHE_COMMANDS) - before,
        5,
        "traffic while open"
    );
    assert!(rt.stats().total.redis_skipped >= 50);

    // Half-open while Redis still fails: of a burst, exactly one probe goes out, and fails.
    assert!(wait_until(SETTLE, || rt.breaker_state() == BreakerState::HalfOpen));
    let shared = Arc::new((rt.clone(), Calls::default()));
    let burst: Vec<_> = (200..220)
        .map(|j| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                natal(&request(j), &shared.0, &shared.1).await == compute_chart(&request(j))
            })
        })
        .collect();
    for task in burst {
        assert!(task.await.unwrap());
    }
    assert_eq!(commands(&server, CACHE_COMMANDS) - before, 6, "one probe");
    assert_eq!(rt.breaker_state(), BreakerState::Open);

    // Redis healthy again: the next probe closes the breaker and caching resumes.
    acl("+@all");
    assert!(wait_until(SETTLE, || rt.breaker_state() == BreakerState::HalfOpen));
    let fresh = request(300);
    natal(&fresh, &rt, &calls).await;
    assert_eq!(rt.breaker_state(), BreakerState::Closed);
    assert!(rt.flush(SETTLE).await);
    let hits = rt.stats().total.redis_hits;
    natal(&fresh, &rt, &calls).await;
    assert_eq!(
        rt.stats().total.redis_hits,
        hits + 1,
        "served by Redis again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_traffic_then_restarted() {
    const CALLS: usize = 10_000;
    const KEYS: usize = 250;
    let server = RedisServer::start();
    let rt = Arc::new(runtime(&server.url()));
    let calls = Arc::new(Calls::default());
    let done = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (server_pid, done) = (server.pid(), Arc::clone(&done));
        std::thread::spawn(move || {
            assert!(wait_until(Duration::from_secs(60), || done
                .load(Ordering::SeqCst)
                >= CALLS / 4));
            server_pid
        })
    };
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let (rt, calls, done) = (Arc::clone(&rt), Arc::clone(&calls), Arc::clone(&done));
            tokio::spawn(async move {
                // Spread the calls over about a second so the kill lands among them.
                tokio::time::sleep(Duration::from_micros(i as u64 * 100)).await;
                let req = request(i % KEYS);
                let correct = natal(&req, &rt, &calls).await == compute_chart(&req);
                done.fetch_add(1, Ordering::SeqCst);
                correct
            })
        })
        .collect();
    let _ = killer.join();
    let done_at_kill = done.load(Ordering::SeqCst);
    server.kill();
    assert!(
        done_at_kill < CALLS / 2,
        "the kill came too late: {done_at_kill} calls done"
    );
    let mut wrong = 0;
    for task in tasks {
        if !task.await.expect("no call panicked") {
            wrong += 1;
        }
    }
    assert_eq!(wrong, 0, "every call returned the correct value");
    assert!(done.load(Ordering::SeqCst) == CALLS);

    // Restarted (empty): caching resumes by itself within a breaker window.
    server.restart();
    let fresh = request(KEYS + 1);
    let resumed = wait_until(SETTLE, || {
        futures_block_on(natal(&fresh, &rt, &calls));
        rt.flush(SETTLE).wait();
        !keys(&server, "meridian:v1:natal:*").is_empty()
    });
    assert!(
        resumed,
        "no value reached the restarted Redis; stats {:?}",
        rt.stats()
    );
    let hits = rt.stats().total.redis_hits;
    natal(&fresh, &rt, &calls).await;
    assert_eq!(rt.stats().total.redis_hits, hits + 1);
}

/// Runs an async cached call to completion from inside a sync closure.
fn futures_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_then_fixed_on_the_server() {
    let server = RedisServer::builder().password("right-password").start();
    let mut admin = server.connection();
    let url = server.url().replace("right-password", "wrong-password");
    let rt = runtime(&url);
    let calls = Calls::default();
    for i in 0..8 {
        let started = Instant::now();
        assert_eq!(
            natal(&request(i), &rt, &calls).await,
            compute_chart(&request(i))
        );
        assert!(started.elapsed() < BOUNDED);
    }
    assert_ne!(rt.breaker_state(), BreakerState::Closed, "{:?}", rt.stats());

    // The server's password is changed to the one the process has.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("wrong-password")
        .query(&mut admin)
        .unwrap();
    let fresh = request(50);
    let resumed = wait_until(SETTLE, || {
        futures_block_on(natal(&fresh, &rt, &calls));
        rt.breaker_state() == BreakerState::Closed
    });
    assert!(resumed, "caching did not resume; stats {:?}", rt.stats());
    assert!(rt.flush(SETTLE).await);
    let hits = rt.stats().total.redis_hits;
    natal(&fresh, &rt, &calls).await;
    assert_eq!(rt.stats().total.redis_hits, hits + 1, "served by Redis");
}

#[redis_cached(domain = "stampede", runtime = rt, skip(rt, calls))]
async fn slow(key: u32, rt: &Runtime, calls: &Calls) -> u32 {
    calls.bump();
    tokio::time::sleep(Duration::from_millis(100)).await;
    key * 2
}

#[redis_cached(domain = "stampede", runtime = rt, skip(rt, calls))]
fn slow_sync(key: u32, rt: &Runtime, calls: &Calls) -> u32 {
    calls.bump();
    std::thread::sleep(Duration::from_millis(100));
    key * 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_runs_the_body_once() {
    let server = RedisServer::start();
    for rt in [runtime(&server.url()), Runtime::new(Config::default())] {
        let shared = Arc::new((rt, Calls::default()));
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { slow(21, &shared.0, &shared.1).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 42);
        }
        assert_eq!(shared.1.get(), 1, "500 concurrent calls, one computation");
        assert_eq!(shared.0.stats().total.computes, 1);
    }
}

#[test]
fn stampede_of_sync_callers_runs_the_body_once() {
    let rt = Runtime::new(Config::default());
    let calls = Calls::default();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..100)
            .map(|_| scope.spawn(|| slow_sync(7, &rt, &calls)))
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), 21);
        }
    });
    assert_eq!(calls.get(), 1);
}

#[redis_cached(domain = "flaky", runtime = rt, skip(rt, calls))]
async fn panics_first(key: u32, rt: &Runtime, calls: &Calls) -> u32 {
    calls.bump();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(calls.get() > 1, "first computation fails");
    key + 1
}

#[redis_cached(domain = "flaky", runtime = rt, skip(rt, calls))]
fn err_first(key: u32, rt: &Runtime, calls: &Calls) -> Result<u32, String> {
    calls.bump();
    if calls.get() == 1 {
        Err("transient".into())
    } else {
        Ok(key + 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_computation_does_not_poison_the_key() {
    let shared = Arc::new((Runtime::new(Config::default()), Calls::default()));
    let leader = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move { panics_first(1, &shared.0, &shared.1).await })
    };
    assert!(
        wait_until(SETTLE, || shared.1.get() == 1),
        "the leader started"
    );
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { panics_first(1, &shared.0, &shared.1).await })
        })
        .collect();
    assert!(
        leader.await.unwrap_err().is_panic(),
        "the panic reaches its own caller"
    );
    for waiter in waiters {
        let value = tokio::time::timeout(SETTLE, waiter)
            .await
            .expect("waiters are released");
        assert_eq!(value.unwrap(), 2);
    }
    assert_eq!(panics_first(1, &shared.0, &shared.1).await, 2);

    let (rt, calls) = (Runtime::new(Config::default()), Calls::default());
    assert_eq!(err_first(1, &rt, &calls), Err("transient".to_owned()));
    assert_eq!(
        err_first(1, &rt, &calls),
        Ok(2),
        "the next caller computes again"
    );
    assert_eq!(err_first(1, &rt, &calls), Ok(2));
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn a_stalled_leader_does_not_hang_the_others() {
    // The first call becomes the leader, loses a `select!` and is kept
    // without being polled again: later calls of the same key stop waiting
    // for it after `single_flight_wait` and compute for themselves.
    let config = Config::builder()
        .single_flight_wait(Duration::from_millis(200))
        .build()
        .unwrap();
    let rt = Runtime::new(config);
    let calls = Calls::default();
    let mut parked = Box::pin(slow(5, &rt, &calls));
    tokio::select! {
        _ = &mut parked => panic!("the body takes 100 ms"),
        () = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    let started = Instant::now();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), slow(5, &rt, &calls)).await,
        Ok(10)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(parked);
}

#[tokio::test]
async fn oom_and_readonly_replies_fall_back() {
    let server = RedisServer::start();
    let rt = runtime(&server.url());
    let calls = Calls::default();
    let mut admin = server.connection();
    // Out of memory: every write is refused with OOM; reads still work.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut admin)
        .unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut admin)
        .unwrap();
    for i in 0..3 {
        assert_eq!(
            natal(&request(i), &rt, &calls).await,
            compute_chart(&request(i))
        );
        assert!(rt.flush(SETTLE).await);
    }
    assert!(rt.stats().total.redis_errors >= 3, "{:?}", rt.stats());
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query(&mut admin)
        .unwrap();

    // A replica of a primary that does not exist: writes get READONLY.
    let refused_port = cached_redis_test_support::refused_url()
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/')
        .to_owned();
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&refused_port)
        .query(&mut admin)
        .unwrap();
    let errors = rt.stats().total.redis_errors;
    for i in 10..12 {
        assert_eq!(
            natal(&request(i), &rt, &calls).await,
            compute_chart(&request(i))
        );
        assert!(rt.flush(SETTLE).await);
    }
    assert!(
        rt.stats().total.redis_errors >= errors + 2,
        "{:?}",
        rt.stats()
    );
    assert_eq!(calls.get(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_drops_writes_without_blocking() {
    // Against a blackhole every operation hangs until its deadline. Ten
    // concurrent misses reach the write step together: two writes fill the
    // queue, the other eight must be dropped, not waited for. A deadline of
    // a second keeps the two writes in the queue while the slowest of the
    // ten, on a loaded machine, reaches it; a call that waited for a write
    // would take two deadlines.
    const DEADLINE: Duration = Duration::from_secs(1);
    let blackhole = cached_redis_test_support::Blackhole::start();
    let config = Config::builder()
        .redis_enabled(true)
        .redis_url(blackhole.url())
        .redis_timeout(DEADLINE)
        .connect_timeout(Duration::from_secs(5))
        .breaker_failures(u32::MAX)
        .max_pending_writes(2)
        .build()
        .unwrap();
    let shared = Arc::new((Runtime::new(config), Calls::default()));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let started = Instant::now();
                let correct =
                    natal(&request(i), &shared.0, &shared.1).await == compute_chart(&request(i));
                (correct, started.elapsed())
            })
        })
        .collect();
    for task in tasks {
        let (correct, took) = task.await.unwrap();
        assert!(correct);
        assert!(
            took < DEADLINE + Duration::from_millis(800),
            "a call waited for a write: {took:?}"
        );
    }
    assert_eq!(
        shared.0.stats().total.writes_dropped,
        8,
        "{:?}",
        shared.0.stats()
    );
    // This process still serves them, from memory.
    assert_eq!(
        natal(&request(5), &shared.0, &shared.1).await,
        compute_chart(&request(5))
    );
    assert_eq!(shared.1.get(), 10);
}
