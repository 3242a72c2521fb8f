//! Per-call overrides (`with_mode`, `with_mode_sync`): a forced refresh, a
//! read that stores nothing, a bypass — for the calls made inside the
//! scope only, sync and async alike.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use cached_redis::{CacheMode, Config, Runtime, redis_cached, with_mode, with_mode_sync};
use cached_redis_test_support::RedisServer;
use common::*;

/// Counts its computations and returns the count: which computation a
/// value came from shows.
#[derive(Default)]
struct Counter(AtomicU32);

impl Counter {
    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[redis_cached(domain = "modes", ttl = 600, runtime = rt, skip(rt, counter))]
async fn computed(day: u32, rt: &Runtime, counter: &Counter) -> (u32, u32) {
    (day, counter.next())
}

#[redis_cached(domain = "modes-sync", ttl = 600, runtime = rt, skip(rt, counter))]
fn computed_sync(day: u32, rt: &Runtime, counter: &Counter) -> (u32, u32) {
    (day, counter.next())
}

async fn check(rt: &Runtime) {
    let counter = Counter::default();
    assert_eq!(computed(1, rt, &counter).await, (1, 1));
    assert_eq!(computed(1, rt, &counter).await, (1, 1), "a hit");
    // Refresh: computed again and stored.
    let refreshed = with_mode(CacheMode::Refresh, computed(1, rt, &counter)).await;
    assert_eq!(refreshed, (1, 2));
    assert_eq!(
        computed(1, rt, &counter).await,
        (1, 2),
        "the refreshed value"
    );
    // Bypass: computed, and the cache neither read nor changed.
    let bypassed = with_mode(CacheMode::Bypass, computed(1, rt, &counter)).await;
    assert_eq!(bypassed, (1, 3));
    assert_eq!(computed(1, rt, &counter).await, (1, 2));
    // No store: a hit is still a hit, a miss is computed and not kept.
    assert_eq!(
        with_mode(CacheMode::NoStore, computed(1, rt, &counter)).await,
        (1, 2)
    );
    assert_eq!(
        with_mode(CacheMode::NoStore, computed(2, rt, &counter)).await,
        (2, 4)
    );
    assert_eq!(computed(2, rt, &counter).await, (2, 5), "nothing was kept");
    // Only inside the scope.
    assert_eq!(cached_redis::cache_mode(), CacheMode::Normal);

    let counter = Counter::default();
    assert_eq!(computed_sync(1, rt, &counter), (1, 1));
    let refreshed = with_mode_sync(CacheMode::Refresh, || computed_sync(1, rt, &counter));
    assert_eq!(refreshed, (1, 2));
    assert_eq!(computed_sync(1, rt, &counter), (1, 2));
}

#[tokio::test]
async fn modes_apply_in_memory() {
    check(&Runtime::new(Config::default())).await;
}

#[tokio::test]
async fn modes_apply_over_redis() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    check(&rt).await;
    assert!(rt.flush(SETTLE).await);
    // Read back by another runtime: the refreshed values are what Redis holds.
    let other = redis_runtime(&server.url());
    let counter = Counter::default();
    assert_eq!(computed(1, &other, &counter).await, (1, 2));
    assert_eq!(computed_sync(1, &other, &counter), (1, 2));
}
