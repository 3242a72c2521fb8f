//! A value larger than `CACHE_MAX_VALUE_BYTES` is returned to its caller
//! and stored nowhere (memory nor Redis), counted, and logged once per
//! domain per minute — not once per call.

mod common;

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

/// `len` bytes that do not compress (the limit is on the value as stored).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[redis_cached(domain = "blobs", ttl = 60, runtime = rt, skip(rt, calls))]
async fn blob(len: usize, rt: &Runtime, calls: &Calls) -> Vec<u8> {
    calls.bump();
    noise(len)
}

#[tokio::test]
async fn an_oversize_value_is_returned_counted_and_stored_nowhere() {
    let captured = capture_logs(tracing::Level::WARN);

    let server = RedisServer::start();
    let config = redis_config(&server.url())
        .max_value_bytes(4096)
        .build()
        .unwrap();
    let rt = Runtime::new(config);
    let calls = Calls::default();
    for _ in 0..3 {
        assert_eq!(blob(10_000, &rt, &calls).await, noise(10_000));
    }
    assert_eq!(calls.get(), 3, "neither memory nor Redis kept it");
    // A value under the limit is cached as usual.
    for _ in 0..3 {
        assert_eq!(blob(1_000, &rt, &calls).await, noise(1_000));
    }
    assert_eq!(calls.get(), 4);
    assert!(rt.flush(SETTLE).await);
    assert_eq!(
        keys(&server, "meridian:v1:blobs:*").len(),
        1,
        "only the small one"
    );
    let stats = rt.stats().domain("blobs");
    assert_eq!(stats.oversize, 3);

    let log = captured.text();
    let warned = log
        .lines()
        .filter(|l| l.contains("CACHE_MAX_VALUE_BYTES"))
        .count();
    assert_eq!(warned, 1, "{log}");
    assert!(
        log.contains("domain=\"blobs\"") || log.contains("domain=blobs"),
        "{log}"
    );
}
