//! Compression: encoded values from `CACHE_COMPRESS_MIN_BYTES` on are
//! stored LZ4-compressed and flagged; smaller ones are not; and a runtime
//! with another threshold reads both, so changing it leaves the cache warm.

mod common;

use cached_redis::advanced::envelope::FLAG_COMPRESSED;
use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

fn lines(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("line {i}: the Sun trines the Moon"))
        .collect()
}

/// About 4 KB encoded for 120 lines, most of it repeated words.
#[redis_cached(domain = "report", ttl = 600, runtime = rt, skip(rt, calls))]
async fn report(n: u32, rt: &Runtime, calls: &Calls) -> Vec<String> {
    calls.bump();
    lines(n)
}

/// Under 1 KiB encoded.
#[redis_cached(domain = "note", ttl = 600, runtime = rt, skip(rt, calls))]
async fn note(n: u32, rt: &Runtime, calls: &Calls) -> Vec<String> {
    calls.bump();
    lines(n)
}

fn runtime(server: &RedisServer, compress_min_bytes: usize) -> Runtime {
    Runtime::new(
        redis_config(&server.url())
            .compress_min_bytes(compress_min_bytes)
            .build()
            .expect("valid config"),
    )
}

/// The flags and size of the one entry of `domain`.
fn entry(server: &RedisServer, domain: &str) -> (u16, usize) {
    let key = wait_for_keys(server, &format!("meridian:v1:{domain}:*"), 1).remove(0);
    let bytes = raw(server, &key).expect("an entry");
    (u16::from_le_bytes([bytes[6], bytes[7]]), bytes.len())
}

fn encoded_len(n: u32) -> usize {
    postcard::to_allocvec(&lines(n)).expect("encodes").len()
}

#[tokio::test]
async fn large_values_are_compressed_and_any_threshold_reads_them() {
    let server = RedisServer::start();
    let (writer, calls) = (runtime(&server, 1024), Calls::default());
    assert_eq!(report(120, &writer, &calls).await, lines(120));
    assert_eq!(note(10, &writer, &calls).await, lines(10));
    assert!(writer.flush(SETTLE).await);

    let (flags, size) = entry(&server, "report");
    assert_eq!(flags & FLAG_COMPRESSED, FLAG_COMPRESSED);
    assert!(encoded_len(120) > 1024);
    assert!(
        size < encoded_len(120) / 3,
        "{size} of {}",
        encoded_len(120)
    );
    let (flags, size) = entry(&server, "note");
    assert_eq!(flags, 0, "under the threshold: as it is");
    assert!(size > encoded_len(10));

    // Another threshold (never compress) reads the compressed entry...
    let never = runtime(&server, usize::MAX);
    assert_eq!(report(120, &never, &calls).await, lines(120));
    assert_eq!(note(10, &never, &calls).await, lines(10));
    assert_eq!(never.stats().total.redis_hits, 2);
    // ...and what it writes uncompressed is read by the first.
    assert_eq!(report(200, &never, &calls).await, lines(200));
    assert!(never.flush(SETTLE).await);
    let reader = runtime(&server, 1024);
    assert_eq!(report(200, &reader, &calls).await, lines(200));
    assert_eq!(reader.stats().total.redis_hits, 1);
    assert_eq!(calls.get(), 3, "computed once per input");
}
