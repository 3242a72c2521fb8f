//! Early refresh (`early_refresh`): a hot key is recomputed before it
//! expires by one of its callers, so under steady load it never misses; a
//! refresh that fails leaves the current value served; only functions
//! with the option write the compute time into their entries.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cached_redis::advanced::envelope;
use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

/// How long the body takes: the Δ early refresh weighs.
const WORK: Duration = Duration::from_millis(50);

#[redis_cached(domain = "transits", ttl = "1s", early_refresh = true, runtime = rt, skip(rt, calls))]
async fn transits(day: u32, rt: &Runtime, calls: &Calls) -> Vec<u32> {
    calls.bump();
    tokio::time::sleep(WORK).await;
    vec![day; 8]
}

#[redis_cached(domain = "transits-plain", ttl = "1s", runtime = rt, skip(rt, calls))]
async fn transits_plain(day: u32, rt: &Runtime, calls: &Calls) -> Vec<u32> {
    calls.bump();
    tokio::time::sleep(WORK).await;
    vec![day; 8]
}

/// A runtime whose Redis deadline leaves room for a loaded machine: a read
/// that timed out would fall back and blur the counts.
fn runtime(server: &RedisServer) -> Runtime {
    Runtime::new(
        Config::builder()
            .redis_enabled(true)
            .redis_url(server.url())
            .redis_timeout(Duration::from_secs(2))
            .build()
            .expect("valid config"),
    )
}

/// Four callers asking for one key without pause, for `span`.
async fn hammer<F, Fut>(span: Duration, call: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<u32>>,
{
    let until = Instant::now() + span;
    let caller = || async {
        while Instant::now() < until {
            assert_eq!(call().await, vec![7; 8]);
        }
    };
    tokio::join!(caller(), caller(), caller(), caller());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_never_expires_under_load() {
    let server = RedisServer::start();
    let (early, plain) = (runtime(&server), runtime(&server));
    let (early_calls, plain_calls) = (Calls::default(), Calls::default());
    // One call first, then three TTLs of steady load on each.
    transits(7, &early, &early_calls).await;
    transits_plain(7, &plain, &plain_calls).await;
    let span = Duration::from_millis(3_200);
    hammer(span, || transits(7, &early, &early_calls)).await;
    hammer(span, || transits_plain(7, &plain, &plain_calls)).await;

    let (early, plain) = (early.stats().total, plain.stats().total);
    assert_eq!(
        early.redis_misses, 1,
        "with early refresh only the very first call misses: {early:?}"
    );
    assert!(
        early.computes >= 3,
        "refreshed about once per TTL: {early:?}"
    );
    assert_eq!(early.coalesced, 0, "nobody waited on a refresh: {early:?}");
    assert!(
        plain.redis_misses >= 3,
        "without it, the key misses at every expiry: {plain:?}"
    );
    assert!(
        plain.coalesced > 0,
        "and its callers queue behind the recomputation: {plain:?}"
    );
}

#[redis_cached(
    domain = "transits-failing",
    ttl = "1s",
    early_refresh = 1000,
    runtime = rt,
    skip(rt, failing, calls)
)]
async fn transits_failing(
    day: u32,
    rt: &Runtime,
    failing: &AtomicBool,
    calls: &Calls,
) -> Result<Vec<u32>, String> {
    calls.bump();
    tokio::time::sleep(WORK).await;
    match failing.load(Ordering::SeqCst) {
        true => Err("the ephemeris service is down".into()),
        false => Ok(vec![day; 8]),
    }
}

#[tokio::test]
async fn a_failed_refresh_serves_the_current_value() {
    let server = RedisServer::start();
    let rt = runtime(&server);
    let (failing, calls) = (AtomicBool::new(false), Calls::default());
    assert_eq!(
        transits_failing(3, &rt, &failing, &calls).await,
        Ok(vec![3; 8])
    );
    failing.store(true, Ordering::SeqCst);
    // β = 1000 with a 50 ms body: nearly every call refreshes, and fails.
    let deadline = Instant::now() + SETTLE;
    while calls.get() < 4 && Instant::now() < deadline {
        assert_eq!(
            transits_failing(3, &rt, &failing, &calls).await,
            Ok(vec![3; 8]),
            "a failed refresh never reaches the caller"
        );
    }
    assert!(
        calls.get() >= 4,
        "refreshes were attempted: {}",
        calls.get()
    );
    assert!(rt.stats().total.stale_served >= 3, "{:?}", rt.stats().total);
    // Once the body works again, a refresh stores its value.
    failing.store(false, Ordering::SeqCst);
    let before = rt.stats().total;
    let deadline = Instant::now() + SETTLE;
    while rt.stats().total.computes == before.computes && Instant::now() < deadline {
        assert_eq!(
            transits_failing(3, &rt, &failing, &calls).await,
            Ok(vec![3; 8])
        );
    }
    let after = rt.stats().total;
    assert_eq!(after.computes, before.computes + 1, "{after:?}");
    assert_eq!(after.stale_served, before.stale_served, "{after:?}");
}

#[tokio::test]
async fn only_early_refresh_entries_carry_a_compute_time() {
    let server = RedisServer::start();
    let rt = runtime(&server);
    let calls = Calls::default();
    transits(1, &rt, &calls).await;
    transits_plain(1, &rt, &calls).await;
    assert!(rt.flush(SETTLE).await);
    let entry = |pattern: &str| {
        let key = wait_for_keys(&server, pattern, 1).remove(0);
        raw(&server, &key).expect("an entry")
    };
    let compute = |bytes: &[u8]| {
        let header = envelope::HEADER_LEN;
        let digest: [u8; 32] = bytes[8..40].try_into().expect("a digest");
        assert!(bytes.len() > header);
        envelope::open(bytes, &digest, 1).expect("valid").compute
    };
    let timed = compute(&entry("meridian:v1:transits:*"));
    assert!(
        timed.is_some_and(|took| took >= WORK && took < WORK * 20),
        "{timed:?}"
    );
    // Readers of versions before the option still read plain entries.
    let plain = entry("meridian:v1:transits-plain:*");
    assert_eq!(compute(&plain), None);
    assert_eq!(u16::from_le_bytes([plain[6], plain[7]]), 0, "no flag set");
}

/// Takes its arguments by value: refreshed in the background.
#[redis_cached(domain = "owned", ttl = "2s", early_refresh = 1000, runtime = rt, skip(rt, calls))]
async fn owned(day: u32, rt: Runtime, calls: Arc<Calls>) -> u32 {
    calls.bump();
    tokio::time::sleep(Duration::from_millis(300)).await;
    day * 100 + calls.get() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_owns_its_arguments_is_refreshed_in_the_background() {
    let server = RedisServer::start();
    let rt = runtime(&server);
    let calls = Arc::new(Calls::default());
    let call = || owned(1, rt.clone(), Arc::clone(&calls));
    assert_eq!(call().await, 101);
    // β = 1000 with a 300 ms body: this call draws a refresh, and returns
    // the current value at once while the refresh runs.
    assert_eq!(call().await, 101, "the current value, not the refresh's");
    let deadline = Instant::now() + SETTLE;
    let mut latest = 101;
    while latest == 101 && Instant::now() < deadline {
        latest = call().await;
    }
    assert!(latest > 101, "a refreshed value is served: {latest}");
    assert!(calls.get() >= 2);
    assert_eq!(rt.stats().total.coalesced, 0, "nobody waited on a refresh");
}
