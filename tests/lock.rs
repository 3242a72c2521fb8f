//! One compute across processes (`CACHE_LOCK`), with real processes: each
//! test re-runs its own binary as the other processes (the environment
//! says which role), all against one throw-away `redis-server`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::{RedisServer, wait_until};
use common::*;

/// Set in the processes a test starts: `{test}:{role}`.
const ROLE: &str = "CACHED_REDIS_TEST_ROLE";
/// Raw keys the processes coordinate and count through (outside the cache's namespace).
const READY: &str = "test:ready";
const GO: &str = "test:go";
const COMPUTES: &str = "test:computes";

/// Counts computations in Redis, so every process's count adds up.
struct Counter(redis::Client);

impl Counter {
    fn from_env() -> Counter {
        let url = std::env::var("REDIS_URL").expect("REDIS_URL set for the child");
        Counter(redis::Client::open(url).expect("a valid URL"))
    }

    fn bump(&self) {
        let _: i64 = redis::cmd("INCR")
            .arg(COMPUTES)
            .query(&mut self.0.get_connection().expect("connect"))
            .expect("INCR");
    }
}

/// A slow computation: long enough that every process misses together.
#[redis_cached(domain = "natal", ttl = 600, skip(counter, slow))]
async fn natal(req: &NatalRequest, counter: &Counter, slow: Duration) -> Chart {
    counter.bump();
    tokio::time::sleep(slow).await;
    compute_chart(req)
}

fn cold_key() -> NatalRequest {
    NatalRequest::new("1977-07-07")
}

fn int(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("GET")
        .arg(key)
        .query::<Option<i64>>(&mut server.connection())
        .expect("GET")
        .unwrap_or(0)
}

/// Starts this test binary as another process in `role`, configured
/// through the environment as a service would be.
fn spawn(test: &str, role: &str, server: &RedisServer, wait: &str) -> Child {
    Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", test, "--nocapture"])
        .env(ROLE, format!("{test}:{role}"))
        .env("ENABLE_REDIS_CACHE", "on")
        .env("REDIS_URL", server.url())
        .env("CACHE_LOCK", "on")
        .env("CACHE_SINGLE_FLIGHT_WAIT", wait)
        // Eight processes on two cores: a lock command that missed the
        // default 100 ms deadline would count as no lock, and compute.
        .env("CACHE_REDIS_TIMEOUT", "5s")
        .env("CACHE_REDIS_CONNECT_TIMEOUT", "5s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the other process starts")
}

fn succeeded(child: Child) {
    let output = child.wait_with_output().expect("the other process ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "another process failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// In a started process: `callers` concurrent calls of the cold key, once
/// the test says go; every value must be right.
async fn call_together(callers: usize, slow: Duration) {
    let counter = Counter::from_env();
    let mut con = counter.0.get_connection().expect("connect");
    let _: i64 = redis::cmd("INCR").arg(READY).query(&mut con).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !redis::cmd("EXISTS")
        .arg(GO)
        .query::<bool>(&mut con)
        .unwrap()
    {
        assert!(Instant::now() < deadline, "never told to go");
        std::thread::sleep(Duration::from_millis(1));
    }
    let rt = Runtime::new(Config::from_env().expect("a valid environment"));
    cached_redis::install(rt.clone()).expect("the only runtime of this process");
    let counter = std::sync::Arc::new(counter);
    let calls: Vec<_> = (0..callers)
        .map(|_| {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move { natal(&cold_key(), &counter, slow).await })
        })
        .collect();
    for call in calls {
        assert_eq!(
            call.await.expect("no call panicked"),
            compute_chart(&cold_key())
        );
    }
    assert!(rt.flush(SETTLE).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_compute_a_cold_key_once() {
    const TEST: &str = "eight_processes_compute_a_cold_key_once";
    if std::env::var(ROLE).as_deref() == Ok(&format!("{TEST}:caller")) {
        return call_together(50, Duration::from_millis(300)).await;
    }
    let server = RedisServer::start();
    let children: Vec<Child> = (0..8)
        .map(|_| spawn(TEST, "caller", &server, "10s"))
        .collect();
    assert!(
        wait_until(Duration::from_secs(30), || int(&server, READY) == 8),
        "the processes did not start"
    );
    let () = redis::cmd("SET")
        .arg(GO)
        .arg(1)
        .query(&mut server.connection())
        .unwrap();
    for child in children {
        succeeded(child);
    }
    assert_eq!(
        int(&server, COMPUTES),
        1,
        "8 processes × 50 callers, one compute"
    );
    assert_eq!(
        keys(&server, "meridian:*").len(),
        1,
        "the entry, and no lock left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_killed_mid_compute_delays_the_others_one_lease() {
    const TEST: &str = "a_lock_holder_killed_mid_compute_delays_the_others_one_lease";
    match std::env::var(ROLE).as_deref() {
        Ok(role) if role == format!("{TEST}:holder") => {
            // Never finishes: it is killed while computing.
            return call_together(1, Duration::from_secs(600)).await;
        }
        Ok(role) if role == format!("{TEST}:waiter") => {
            return call_together(10, Duration::from_millis(100)).await;
        }
        _ => {}
    }
    let server = RedisServer::start();
    // The holder's lease (its wait) is 2 s; the waiters would wait 10 s.
    let mut holder = spawn(TEST, "holder", &server, "2s");
    assert!(wait_until(SETTLE, || int(&server, READY) == 1));
    let () = redis::cmd("SET")
        .arg(GO)
        .arg(1)
        .query(&mut server.connection())
        .unwrap();
    assert!(
        wait_until(SETTLE, || keys(&server, "meridian:*:lock").len() == 1),
        "the holder took the lock"
    );
    let waiters: Vec<Child> = (0..3)
        .map(|_| spawn(TEST, "waiter", &server, "10s"))
        .collect();
    assert!(wait_until(SETTLE, || int(&server, READY) == 4));
    holder.kill().expect("SIGKILL the holder");
    let killed = Instant::now();
    holder.wait().expect("reaped");
    for waiter in waiters {
        succeeded(waiter);
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(2) + SETTLE,
        "the waiters finished {took:?} after the holder died (its lease: 2 s)"
    );
    assert_eq!(
        int(&server, COMPUTES),
        2,
        "the holder's computation, then one among the waiters"
    );
    assert_eq!(
        keys(&server, "meridian:*").len(),
        1,
        "the entry, and no lock left"
    );
}
