//! Tamper detection: with `CACHE_HMAC_KEY`, an entry whose HMAC does not
//! verify — signed with another key, unsigned, or forged with a valid
//! checksum — is never returned: it is purged if unchanged and recomputed.
//! `CACHE_HMAC_KEY_PREVIOUS` keeps a rotated-out key's entries valid.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use cached_redis::advanced::envelope::{HEADER_LEN, seal};
use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::{RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

const K1: &str = "first-key-0123456789abcdef0123456789";
const K2: &str = "second-key-0123456789abcdef012345678";

fn signed(server: &RedisServer, key: &str, previous: Option<&str>) -> Runtime {
    let mut builder = redis_config(&server.url()).hmac_key(key);
    if let Some(previous) = previous {
        builder = builder.hmac_key_previous(previous);
    }
    Runtime::new(builder.build().expect("valid config"))
}

/// Writes the value for `req` with `rt` and returns its Redis key.
async fn write(server: &RedisServer, rt: &Runtime, req: &NatalRequest) -> String {
    let calls = Calls::default();
    natal(req, rt, &calls).await;
    assert!(rt.flush(SETTLE).await);
    wait_for_keys(server, "meridian:v1:natal:*", 1).remove(0)
}

/// The process's metrics, rendered (one recorder for the test binary).
fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("the only recorder");
        handle
    })
}

fn counter(page: &str, series: &str) -> u64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn another_key_is_rejected_and_the_previous_key_accepted() {
    let metrics = metrics();
    let server = RedisServer::start();
    let req = NatalRequest::new("1990-01-01");
    let key = write(&server, &signed(&server, K1, None), &req).await;
    let by_k1 = raw(&server, &key).expect("written");

    // Rotating: K2 with K1 as the previous key reads K1's entry.
    let rotating = signed(&server, K2, Some(K1));
    let calls = Calls::default();
    assert_eq!(natal(&req, &rotating, &calls).await, compute_chart(&req));
    assert_eq!((calls.get(), rotating.stats().total.redis_hits), (0, 1));

    // K2 alone does not: recomputed, counted, and the entry replaced.
    let k2 = signed(&server, K2, None);
    assert_eq!(natal(&req, &k2, &calls).await, compute_chart(&req));
    assert_eq!(calls.get(), 1);
    assert_eq!(k2.stats().total.corrupt, 1);
    assert!(k2.flush(SETTLE).await);
    assert!(wait_until(SETTLE, || raw(&server, &key).is_some_and(|b| b != by_k1)));
    // Now K2's own: K2 hits, and K1 alone rejects it in turn.
    let again = signed(&server, K2, None);
    assert_eq!(natal(&req, &again, &calls).await, compute_chart(&req));
    assert_eq!(again.stats().total.redis_hits, 1);
    let k1 = signed(&server, K1, None);
    assert_eq!(natal(&req, &k1, &calls).await, compute_chart(&req));
    assert_eq!((calls.get(), k1.stats().total.corrupt), (2, 1));
    // Counted by reason (the other test adds hmac rejections too, never damage).
    let page = metrics.render();
    let series =
        |reason: &str| format!("cache_redis_corrupt_total{{domain=\"natal\",reason=\"{reason}\"}}");
    assert!(counter(&page, &series("hmac")) >= 2, "{page}");
    assert_eq!(counter(&page, &series("damaged")), 0, "{page}");
}

#[tokio::test]
async fn a_forged_entry_with_a_valid_checksum_is_never_returned() {
    metrics();
    let server = RedisServer::start();
    let req = NatalRequest::new("1990-01-01");
    let rt = signed(&server, K1, None);
    let key = write(&server, &rt, &req).await;
    let genuine = raw(&server, &key).expect("written");
    let digest: [u8; 32] = genuine[8..40].try_into().unwrap();

    let mut fake = compute_chart(&req);
    fake.born = "forged".to_owned();
    let body = postcard::to_allocvec(&fake).unwrap();
    // Unsigned, as anyone could write it: a valid envelope for this key.
    let unsigned = seal(&digest, 1, Duration::from_secs(60), &body);
    // Signed with a key that is not ours: flag set, tag of the wrong key.
    let wrong_key = {
        let other = signed(&server, "someone-elses-key-0123456789abcdef", None);
        natal(&NatalRequest::new("2000-02-02"), &other, &Calls::default()).await;
        assert!(other.flush(SETTLE).await);
        let all = wait_for_keys(&server, "meridian:v1:natal:*", 2);
        let other_key = all.iter().find(|k| **k != key).unwrap();
        let theirs = raw(&server, other_key).unwrap();
        let mut forged = genuine.clone();
        forged[HEADER_LEN..HEADER_LEN + 32].copy_from_slice(&theirs[HEADER_LEN..HEADER_LEN + 32]);
        // Recompute the checksum, as a forger would: only the tag is wrong.
        let crc = crc32(&[&forged[..60], &forged[64..]]);
        forged[60..64].copy_from_slice(&crc.to_le_bytes());
        forged
    };
    for forged in [unsigned, wrong_key] {
        put(&server, &key, &forged);
        let fresh = signed(&server, K1, None);
        let calls = Calls::default();
        assert_eq!(natal(&req, &fresh, &calls).await, compute_chart(&req));
        assert_eq!(calls.get(), 1, "recomputed, not the forged value");
        assert_eq!(fresh.stats().total.corrupt, 1);
        assert!(fresh.flush(SETTLE).await);
        assert!(wait_until(SETTLE, || raw(&server, &key).is_some_and(|b| b != forged)));
    }
    // Without a key the unsigned entry would have been used: the check above is what stops it.
    put(
        &server,
        &key,
        &seal(&digest, 1, Duration::from_secs(60), &body),
    );
    let unkeyed = redis_runtime(&server.url());
    assert_eq!(natal(&req, &unkeyed, &Calls::default()).await, fake);
}

/// CRC-32 (IEEE) of the parts, as the envelope's checksum field holds it.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0_u32;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
