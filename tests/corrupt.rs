//! Invalid entries are purged and recomputed, never returned.

mod common;

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::{RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sun(f64);

/// The same arguments and domain as `natal`, another stored type.
#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt))]
async fn natal_sun(req: &NatalRequest, rt: &Runtime) -> Sun {
    Sun(compute_chart(req).sun_longitude)
}

/// What to plant under the key before a call.
enum Plant {
    Bytes(Vec<u8>),
    List,
    Hash,
}

/// A freshly written entry for the same key: same size and the same header
/// up to and including the key digest (only timestamp and checksum differ).
fn is_fresh_entry(bytes: &[u8], valid: &[u8]) -> bool {
    bytes.len() == valid.len() && bytes[..40] == valid[..40]
}

#[tokio::test]
async fn test_redis_corrupt_payload() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let req = NatalRequest::new("1990-01-01");
    let other_req = NatalRequest::new("1984-06-30");

    natal(&req, &rt, &Calls::default()).await;
    let key = wait_for_keys(&server, "meridian:v1:natal:*", 1).remove(0);
    natal(&other_req, &rt, &Calls::default()).await;
    natal_sun(&req, &rt).await;
    let all = wait_for_keys(&server, "meridian:v1:natal:*", 3);
    let valid = raw(&server, &key).unwrap();
    let mut other_key_envelope = None;
    let mut other_schema_envelope = None;
    for k in all.iter().filter(|k| **k != key) {
        let bytes = raw(&server, k).unwrap();
        // The Sun envelope is the short one: one f64 against a whole Chart.
        if bytes.len() < valid.len() {
            other_schema_envelope = Some(bytes);
        } else {
            other_key_envelope = Some(bytes);
        }
    }
    let mut bad_checksum = valid.clone();
    *bad_checksum.last_mut().unwrap() ^= 0x55;

    let cases = [
        (
            "random bytes",
            Plant::Bytes((0..200_u8).map(|b| b.wrapping_mul(37)).collect()),
        ),
        ("empty value", Plant::Bytes(Vec::new())),
        (
            "truncated envelope",
            Plant::Bytes(valid[..valid.len() - 3].to_vec()),
        ),
        ("header only", Plant::Bytes(valid[..64].to_vec())),
        ("bad checksum", Plant::Bytes(bad_checksum)),
        (
            "another key's valid envelope",
            Plant::Bytes(other_key_envelope.unwrap()),
        ),
        (
            "another schema's valid envelope",
            Plant::Bytes(other_schema_envelope.unwrap()),
        ),
        ("a list at the key", Plant::List),
        ("a hash at the key", Plant::Hash),
    ];
    let mut conn = server.connection();
    for (i, (what, plant)) in cases.into_iter().enumerate() {
        // Our own last write is done: until then it is read from the
        // writes in flight (read-your-writes), not from Redis.
        assert!(rt.flush(SETTLE).await, "{what}: earlier write finished");
        let () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
        let _: () = match &plant {
            Plant::Bytes(bytes) => redis::cmd("SET")
                .arg(&key)
                .arg(bytes)
                .query(&mut conn)
                .unwrap(),
            Plant::List => redis::cmd("RPUSH")
                .arg(&key)
                .arg("x")
                .query(&mut conn)
                .map(|_: i64| ())
                .unwrap(),
            Plant::Hash => redis::cmd("HSET")
                .arg(&key)
                .arg("f")
                .arg("v")
                .query(&mut conn)
                .map(|_: i64| ())
                .unwrap(),
        };
        let calls = Calls::default();
        assert_eq!(
            natal(&req, &rt, &calls).await,
            compute_chart(&req),
            "{what}: correct value"
        );
        assert_eq!(calls.get(), 1, "{what}: recomputed, not returned");
        assert_eq!(rt.stats().total.corrupt, i as u64 + 1, "{what}: counted");
        let replaced = wait_until(SETTLE, || {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
            kind == "string" && raw(&server, &key).is_some_and(|b| is_fresh_entry(&b, &valid))
        });
        assert!(
            replaced,
            "{what}: the bad entry is gone and a valid one took its place"
        );
    }
    // The neighbours were never touched.
    assert_eq!(
        natal_sun(&req, &rt).await,
        Sun(compute_chart(&req).sun_longitude)
    );
    assert_eq!(
        natal(&other_req, &rt, &Calls::default()).await,
        compute_chart(&other_req)
    );
    assert_eq!(rt.stats().total.corrupt, 9);
}
