//! `Runtime::clear` removes one domain's keys and nothing else.

mod common;

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

#[redis_cached(domain = "natal", runtime = rt, skip(rt))]
fn natal(day: u32, rt: &Runtime) -> u32 {
    day * 2
}

#[redis_cached(domain = "natal-v2", runtime = rt, skip(rt))]
fn natal_v2(day: u32, rt: &Runtime) -> u32 {
    day * 3
}

#[redis_cached(domain = "natal", version = "v2", runtime = rt, skip(rt))]
fn natal_next(day: u32, rt: &Runtime) -> u32 {
    day * 4
}

#[tokio::test]
async fn clear_touches_only_its_domain() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    for day in 0..3 {
        natal(day, &rt);
        natal_v2(day, &rt);
        natal_next(day, &rt);
    }
    let mut conn = server.connection();
    // Many keys in the domain, written directly, to exercise SCAN/UNLINK batching.
    let mut pipe = redis::pipe();
    for i in 0..1_200 {
        pipe.cmd("SET")
            .arg(format!("meridian:v1:natal:bulk{i:04}"))
            .arg("x")
            .ignore();
    }
    for key in [
        "meridian:v1:natalx:1",
        "other:v1:natal:1",
        "meridian:v1:natal",
        "unrelated",
    ] {
        pipe.cmd("SET").arg(key).arg("keep").ignore();
    }
    let () = pipe.query(&mut conn).unwrap();
    wait_for_keys(&server, "meridian:v1:natal:*", 1_203);

    let removed = rt.clear("natal", "v1").await.unwrap();
    assert_eq!(removed, 1_203);
    assert!(keys(&server, "meridian:v1:natal:*").is_empty());
    assert_eq!(keys(&server, "meridian:v1:natal-v2:*").len(), 3);
    assert_eq!(keys(&server, "meridian:v2:natal:*").len(), 3);
    for key in [
        "meridian:v1:natalx:1",
        "other:v1:natal:1",
        "meridian:v1:natal",
        "unrelated",
    ] {
        assert_eq!(raw(&server, key).as_deref(), Some(&b"keep"[..]), "{key}");
    }

    // Memory was cleared too: the next call computes again (and is correct).
    assert_eq!(natal(1, &rt), 2);
    assert_eq!(rt.stats().total.redis_misses, 10);

    let invalid = rt.clear("Natal*", "v1").await;
    assert!(invalid.is_err(), "a pattern is not a domain");
}

#[tokio::test]
async fn with_redis_off_clear_empties_only_its_domain_in_memory() {
    let rt = memory_runtime(&cached_redis_test_support::refused_url());
    for day in 1..=3 {
        natal(day, &rt);
        natal_v2(day, &rt);
        natal_next(day, &rt);
    }
    let served = |rt: &Runtime| rt.stats().total.memory_hits;
    let before = served(&rt);
    assert_eq!(rt.clear("natal", "v1").await.unwrap(), 0);
    for day in 1..=3 {
        assert_eq!(natal(day, &rt), day * 2);
        assert_eq!(natal_v2(day, &rt), day * 3);
        assert_eq!(natal_next(day, &rt), day * 4);
    }
    // natal v1 computed again; natal-v2 and natal v2 were still held.
    assert_eq!(rt.stats().domain("natal").computes, 9);
    assert_eq!(served(&rt) - before, 6);
}
