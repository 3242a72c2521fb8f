//! Conditional and adaptive caching: `unless` keeps a result out of the
//! cache, `ttl_from` picks each value's TTL (bounded by `ttl` when both are
//! given), `jitter` spreads the TTLs of entries written together.

mod common;

use std::time::Duration;

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Transits {
    day: u32,
    /// Computed while an ephemeris was missing: not worth keeping.
    partial: bool,
}

fn transits_of(day: u32) -> Transits {
    Transits {
        day,
        partial: day % 2 == 1,
    }
}

fn is_partial(transits: &Transits) -> bool {
    transits.partial
}

/// Today's transits change within minutes; other days' never.
fn lifetime(transits: &Transits) -> Duration {
    match transits.day {
        0 => Duration::from_secs(5),
        _ => Duration::from_secs(7200),
    }
}

#[redis_cached(domain = "unless", ttl = 600, unless = is_partial, runtime = rt, skip(rt, calls))]
async fn complete_only(day: u32, rt: &Runtime, calls: &Calls) -> Result<Transits, String> {
    calls.bump();
    Ok(transits_of(day))
}

#[redis_cached(domain = "bounded", ttl = 600, ttl_from = lifetime, runtime = rt, skip(rt))]
async fn bounded(day: u32, rt: &Runtime) -> Transits {
    transits_of(day)
}

#[redis_cached(domain = "chosen", ttl_from = lifetime, runtime = rt, skip(rt))]
fn chosen(day: u32, rt: &Runtime) -> Transits {
    transits_of(day)
}

#[redis_cached(domain = "jittered", ttl = 100, jitter = "20%", runtime = rt, skip(rt))]
async fn jittered(day: u32, rt: &Runtime) -> Transits {
    transits_of(day)
}

/// Milliseconds left on each entry matching `pattern`, in key order.
fn pttls(server: &RedisServer, pattern: &str) -> Vec<i64> {
    keys(server, pattern)
        .iter()
        .map(|key| {
            redis::cmd("PTTL")
                .arg(key)
                .query::<i64>(&mut server.connection())
                .expect("PTTL")
        })
        .collect()
}

#[tokio::test]
async fn unless_returns_a_partial_result_without_storing_it() {
    let server = RedisServer::start();
    let (rt, calls) = (redis_runtime(&server.url()), Calls::default());
    for _ in 0..3 {
        assert_eq!(complete_only(2, &rt, &calls).await, Ok(transits_of(2)));
        assert_eq!(complete_only(3, &rt, &calls).await, Ok(transits_of(3)));
    }
    assert_eq!(
        calls.get(),
        1 + 3,
        "the complete one once, the partial one each time"
    );
    assert!(rt.flush(SETTLE).await);
    assert_eq!(keys(&server, "meridian:v1:unless:*").len(), 1);
}

#[tokio::test]
async fn ttl_from_picks_each_values_ttl_within_the_functions() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    bounded(0, &rt).await;
    assert!(rt.flush(SETTLE).await);
    let today = pttls(&server, "meridian:v1:bounded:*");
    assert!(
        today.len() == 1 && (1..=5_000).contains(&today[0]),
        "{today:?}"
    );
    bounded(1, &rt).await;
    assert!(rt.flush(SETTLE).await);
    let both = pttls(&server, "meridian:v1:bounded:*");
    assert!(
        both.iter().any(|ms| (590_000..=600_000).contains(ms)),
        "7200 s chosen, 600 s the bound: {both:?}"
    );
    // Without a `ttl` of its own the chosen TTL stands.
    chosen(1, &rt);
    assert!(rt.flush(SETTLE).await);
    let chosen = pttls(&server, "meridian:v1:chosen:*");
    assert!(chosen.len() == 1 && chosen[0] > 7_100_000, "{chosen:?}");
}

#[tokio::test]
async fn jitter_spreads_entries_written_together() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    for day in 0..40 {
        jittered(day, &rt).await;
    }
    assert!(rt.flush(SETTLE).await);
    let ttls = pttls(&server, "meridian:v1:jittered:*");
    assert_eq!(ttls.len(), 40);
    let (low, high) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
    assert!(
        *low >= 79_000 && *high <= 100_000,
        "within 20 % of 100 s: {ttls:?}"
    );
    assert!(
        high - low > 4_000,
        "spread out, not written alike: {ttls:?}"
    );
}
