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

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt))]
async fn natal_other_shape(req: &NatalRequest, rt: &Runtime) -> Sun {
    Sun(compute_chart(req).sun_longitude)
}

/// Sets up a server holding valid entries for two requests, and returns their keys.
async fn two_entries(server: &RedisServer, rt: &Runtime) -> (String, String) {
    let calls = Calls::default();
    natal(&NatalRequest::new("1990-01-01"), rt, &calls).await;
    let first = wait_for_keys(server, "meridian:v1:natal:*", 1).remove(0);
    natal(&NatalRequest::new("1984-06-30"), rt, &calls).await;
    let both = wait_for_keys(server, "meridian:v1:natal:*", 2);
    let second = both.into_iter().find(|k| *k != first).unwrap();
    (first, second)
}

/// A newly written entry for the same key: same size and the same header up
/// to and including the key digest (only the timestamp and checksum differ).
fn is_fresh_entry(bytes: &[u8], valid: &[u8]) -> bool {
    bytes.len() == valid.len() && bytes[..40] == valid[..40]
}

#[tokio::test]
async fn corrupt_entries_are_purged_and_recomputed() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let (key, other_key) = two_entries(&server, &rt).await;
    let valid = raw(&server, &key).unwrap();
    let other_valid = raw(&server, &other_key).unwrap();
    let mut bad_checksum = valid.clone();
    *bad_checksum.last_mut().unwrap() ^= 0x55;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "random bytes",
            (0..200_u8).map(|b| b.wrapping_mul(37)).collect(),
        ),
        ("empty value", Vec::new()),
        ("truncated envelope", valid[..valid.len() - 3].to_vec()),
        ("header only", valid[..64].to_vec()),
        ("bad checksum", bad_checksum),
        ("another key's valid envelope", other_valid),
    ];
    let req = NatalRequest::new("1990-01-01");
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        put(&server, &key, &bytes);
        let calls = Calls::default();
        assert_eq!(
            natal(&req, &rt, &calls).await,
            compute_chart(&req),
            "{what}"
        );
        assert_eq!(calls.get(), 1, "{what}: the value was recomputed");
        assert_eq!(rt.stats().corrupt, i as u64 + 1, "{what}: counted");
        let repaired = wait_until(SETTLE, || {
            raw(&server, &key).is_some_and(|b| is_fresh_entry(&b, &valid))
        });
        assert!(repaired, "{what}: the bad entry was not replaced");
    }
}

#[tokio::test]
async fn wrong_redis_type_is_purged() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let (key, _) = two_entries(&server, &rt).await;
    for kind in ["list", "hash"] {
        let mut conn = server.connection();
        let () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
        let _: i64 = match kind {
            "list" => redis::cmd("RPUSH")
                .arg(&key)
                .arg("x")
                .query(&mut conn)
                .unwrap(),
            _ => redis::cmd("HSET")
                .arg(&key)
                .arg("f")
                .arg("v")
                .query(&mut conn)
                .unwrap(),
        };
        let calls = Calls::default();
        let req = NatalRequest::new("1990-01-01");
        assert_eq!(
            natal(&req, &rt, &calls).await,
            compute_chart(&req),
            "{kind}"
        );
        assert_eq!(calls.get(), 1, "{kind}");
        let restored = wait_until(SETTLE, || {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
            kind == "string"
        });
        assert!(
            restored,
            "{kind} at the key was not replaced by a valid entry"
        );
    }
    assert_eq!(rt.stats().corrupt, 2);
}

#[tokio::test]
async fn another_schema_never_reads_these_bytes() {
    // The same arguments under a function returning another type get
    // another key, so an old-shape value is never decoded as the new shape.
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let req = NatalRequest::new("1990-01-01");
    natal(&req, &rt, &Calls::default()).await;
    let sun = natal_other_shape(&req, &rt).await;
    assert_eq!(sun, Sun(compute_chart(&req).sun_longitude));
    wait_for_keys(&server, "meridian:v1:natal:*", 2);

    // And an envelope written for another schema, planted under this key, is rejected.
    let keys = keys(&server, "meridian:v1:natal:*");
    let (a, b) = (
        raw(&server, &keys[0]).unwrap(),
        raw(&server, &keys[1]).unwrap(),
    );
    put(&server, &keys[0], &b);
    put(&server, &keys[1], &a);
    let calls = Calls::default();
    assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
    assert_eq!(natal_other_shape(&req, &rt).await, sun);
    assert_eq!(calls.get(), 1);
    assert_eq!(rt.stats().corrupt, 2);
}
