//! Fail-safe (`stale_if_error`): past its TTL, an entry's value stands in
//! when the body fails, panics or runs past its `timeout` — from Redis, in
//! another runtime too, and from memory with Redis off; without the option
//! nothing changes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

/// What the body does on its next calls.
#[derive(Default)]
struct Mode(AtomicU8);

const WORK: u8 = 0;
const FAIL: u8 = 1;
const PANIC: u8 = 2;
const HANG: u8 = 3;

impl Mode {
    fn set(&self, mode: u8) {
        self.0.store(mode, Ordering::SeqCst);
    }
}

/// The TTL: short, so the tests can outlive it.
const TTL: Duration = Duration::from_millis(300);

#[redis_cached(
    domain = "natal",
    ttl = "300ms",
    stale_if_error = "1h",
    timeout = "100ms",
    runtime = rt,
    skip(rt, mode, calls)
)]
async fn natal(
    req: &NatalRequest,
    rt: &Runtime,
    mode: &Mode,
    calls: &Calls,
) -> Result<Chart, String> {
    calls.bump();
    match mode.0.load(Ordering::SeqCst) {
        FAIL => Err("the ephemeris service is down".to_owned()),
        PANIC => panic!("the ephemeris table is corrupt"),
        HANG => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Err("too late".to_owned())
        }
        _ => Ok(compute_chart(req)),
    }
}

#[redis_cached(domain = "transit", ttl = "300ms", runtime = rt, skip(rt, mode))]
async fn transit(req: &NatalRequest, rt: &Runtime, mode: &Mode) -> Result<Chart, String> {
    match mode.0.load(Ordering::SeqCst) {
        FAIL => Err("down".to_owned()),
        _ => Ok(compute_chart(req)),
    }
}

#[redis_cached(domain = "sync", ttl = "300ms", stale_if_error = "1h", runtime = rt, skip(rt, mode))]
fn natal_sync(req: &NatalRequest, rt: &Runtime, mode: &Mode) -> Result<Chart, String> {
    match mode.0.load(Ordering::SeqCst) {
        FAIL => Err("down".to_owned()),
        _ => Ok(compute_chart(req)),
    }
}

/// Lets the entries written so far pass their TTL (the scenario itself,
/// not a wait for something to happen).
async fn outlive_the_ttl() {
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
}

fn pttl(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut server.connection())
        .expect("PTTL")
}

#[tokio::test]
async fn past_its_ttl_a_value_stands_in_for_an_error_in_any_runtime() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let (mode, calls) = (Mode::default(), Calls::default());
    let req = NatalRequest::new("1990-01-01");
    assert_eq!(
        natal(&req, &rt, &mode, &calls).await,
        Ok(compute_chart(&req))
    );
    assert!(rt.flush(SETTLE).await);
    let key = wait_for_keys(&server, "meridian:v1:natal:*", 1).remove(0);
    assert!(
        pttl(&server, &key) > 3_000_000,
        "Redis keeps it for the TTL and the stale window"
    );

    outlive_the_ttl().await;
    mode.set(FAIL);
    assert_eq!(
        natal(&req, &rt, &mode, &calls).await,
        Ok(compute_chart(&req)),
        "the old value, not the error"
    );
    // Another runtime (another process, in effect) reads it from Redis.
    let other = redis_runtime(&server.url());
    assert_eq!(
        natal(&req, &other, &mode, &calls).await,
        Ok(compute_chart(&req))
    );
    assert_eq!(
        calls.get(),
        3,
        "the body ran each time: the value is past its TTL"
    );
    for runtime in [&rt, &other] {
        let stats = runtime.stats().total;
        assert_eq!(stats.stale_served, 1, "{stats:?}");
    }

    // Working again: a fresh value, stored, and no stale one served.
    mode.set(WORK);
    assert_eq!(
        natal(&req, &rt, &mode, &calls).await,
        Ok(compute_chart(&req))
    );
    assert!(rt.flush(SETTLE).await);
    assert_eq!(
        natal(&req, &other, &mode, &calls).await,
        Ok(compute_chart(&req))
    );
    assert_eq!(calls.get(), 4, "the fresh value was a hit");
    assert_eq!(other.stats().total.stale_served, 1);
}

#[tokio::test]
async fn a_panic_or_a_body_past_its_timeout_gives_way_to_the_stale_value() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let (mode, calls) = (Mode::default(), Calls::default());
    let req = NatalRequest::new("1990-01-02");
    assert!(natal(&req, &rt, &mode, &calls).await.is_ok());
    outlive_the_ttl().await;

    mode.set(PANIC);
    assert_eq!(
        natal(&req, &rt, &mode, &calls).await,
        Ok(compute_chart(&req))
    );

    mode.set(HANG);
    let started = Instant::now();
    assert_eq!(
        natal(&req, &rt, &mode, &calls).await,
        Ok(compute_chart(&req))
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the 100 ms soft limit held: {took:?}"
    );
    assert_eq!(rt.stats().total.stale_served, 2);

    // With nothing stale at hand, a panic is the caller's, as always.
    let fresh = NatalRequest::new("1990-01-03");
    let unwound = tokio::spawn({
        let rt = rt.clone();
        async move {
            let (mode, calls) = (Mode::default(), Calls::default());
            mode.set(PANIC);
            natal(&fresh, &rt, &mode, &calls).await
        }
    })
    .await;
    assert!(unwound.is_err_and(|err| err.is_panic()));
}

#[tokio::test]
async fn with_redis_off_memory_keeps_the_stale_value() {
    let rt = memory_runtime(&cached_redis_test_support::refused_url());
    let mode = Mode::default();
    let req = NatalRequest::new("1990-01-04");
    assert_eq!(natal_sync(&req, &rt, &mode), Ok(compute_chart(&req)));
    outlive_the_ttl().await;
    mode.set(FAIL);
    assert_eq!(natal_sync(&req, &rt, &mode), Ok(compute_chart(&req)));
    assert_eq!(rt.stats().total.stale_served, 1);
}

#[tokio::test]
async fn without_the_option_an_error_past_the_ttl_is_the_callers() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let mode = Mode::default();
    let req = NatalRequest::new("1990-01-05");
    assert!(transit(&req, &rt, &mode).await.is_ok());
    assert!(rt.flush(SETTLE).await);
    let key = wait_for_keys(&server, "meridian:v1:transit:*", 1).remove(0);
    assert!(pttl(&server, &key) <= TTL.as_millis() as i64);
    outlive_the_ttl().await;
    mode.set(FAIL);
    assert_eq!(transit(&req, &rt, &mode).await, Err("down".to_owned()));
    assert_eq!(rt.stats().total.stale_served, 0);
}

/// Takes its arguments by value: past its `timeout` it can go on without
/// the caller.
#[redis_cached(
    domain = "owned",
    ttl = "300ms",
    stale_if_error = "1h",
    timeout = "100ms",
    runtime = rt,
    skip(rt, slow, calls)
)]
async fn owned(
    day: u32,
    rt: Runtime,
    slow: Arc<AtomicBool>,
    calls: Arc<Calls>,
) -> Result<u32, String> {
    calls.bump();
    if slow.load(Ordering::SeqCst) {
        // Far past the soft limit, so the bound below tells them apart
        // even on a loaded machine.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    Ok(day * 100 + calls.get() as u32)
}

#[tokio::test]
async fn a_body_past_its_timeout_finishes_in_the_background_and_is_stored() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let (slow, calls) = (Arc::new(AtomicBool::new(false)), Arc::new(Calls::default()));
    let call = || owned(1, rt.clone(), Arc::clone(&slow), Arc::clone(&calls));
    assert_eq!(call().await, Ok(101));
    outlive_the_ttl().await;
    slow.store(true, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(call().await, Ok(101), "the stale value, at the soft limit");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The body goes on, and stores its value when it finishes.
    let stored = |rt: &Runtime| rt.stats().total.computes == 3;
    let deadline = Instant::now() + SETTLE;
    while !stored(&rt) && Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stored(&rt), "{:?}", rt.stats().total);
    assert_eq!(call().await, Ok(102), "the next call is fresh");
    assert_eq!(calls.get(), 2, "and computed nothing");
}
