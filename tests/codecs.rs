//! Every serde type is cached: the shapes postcard cannot read back
//! (internally tagged and untagged enums, `#[serde(flatten)]`,
//! `serde_json::Value`) are stored as MessagePack, and another process
//! reads them back as the right values; a value no codec can write is
//! returned, counted, and stored nowhere.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Body {
    Planet { name: String, moons: u32 },
    Star { name: String, magnitude: f64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Position {
    Ecliptic { longitude: f64, latitude: f64 },
    House(u8),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Aspect {
    between: (String, String),
    #[serde(flatten)]
    extra: BTreeMap<String, f64>,
}

#[redis_cached(domain = "tagged", ttl = 600, runtime = rt, skip(rt))]
async fn body(name: &str, rt: &Runtime) -> Body {
    match name {
        "Sun" => Body::Star {
            name: name.into(),
            magnitude: -26.74,
        },
        _ => Body::Planet {
            name: name.into(),
            moons: name.len() as u32,
        },
    }
}

#[redis_cached(domain = "untagged", ttl = 600, runtime = rt, skip(rt))]
async fn position(house: bool, rt: &Runtime) -> Vec<Position> {
    match house {
        true => vec![Position::House(7), Position::House(12)],
        false => vec![Position::Ecliptic {
            longitude: 123.25,
            latitude: -1.5,
        }],
    }
}

#[redis_cached(domain = "flatten", ttl = 600, runtime = rt, skip(rt))]
async fn aspect(orb: f64, rt: &Runtime) -> Aspect {
    Aspect {
        between: ("Sun".into(), "Moon".into()),
        extra: BTreeMap::from([("orb".into(), orb), ("angle".into(), 120.0)]),
    }
}

#[redis_cached(domain = "json", ttl = 600, runtime = rt, skip(rt))]
async fn json(id: u32, rt: &Runtime) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "name": "natal",
        "bodies": [{"name": "Sun", "longitude": 10.5}, {"name": "Moon", "longitude": -3}],
        "retrograde": null,
        "big": u64::MAX,
    })
}

/// Each function's expected value, computed by calling its body's logic
/// directly (a runtime with nothing cached).
async fn every_value(rt: &Runtime) -> Vec<String> {
    vec![
        format!("{:?}", body("Sun", rt).await),
        format!("{:?}", body("Mars", rt).await),
        format!("{:?}", position(true, rt).await),
        format!("{:?}", position(false, rt).await),
        format!("{:?}", aspect(2.5, rt).await),
        format!("{:?}", json(9, rt).await),
    ]
}

const ROLE: &str = "CACHED_REDIS_TEST_CODECS";

#[tokio::test]
async fn self_describing_shapes_are_read_back_by_another_process() {
    let fresh = Runtime::new(Config::default());
    let expected = every_value(&fresh).await;
    if std::env::var(ROLE).is_ok() {
        // The other process: every value is a Redis hit, and right.
        let rt = Runtime::new(Config::from_env().expect("a valid environment"));
        assert_eq!(every_value(&rt).await, expected);
        let stats = rt.stats().total;
        assert_eq!(
            (stats.redis_hits, stats.computes, stats.corrupt),
            (6, 0, 0),
            "{stats:?}"
        );
        return;
    }
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    assert_eq!(every_value(&rt).await, expected);
    assert!(rt.flush(SETTLE).await);
    assert_eq!(rt.stats().total.computes, 6);
    // Stored as MessagePack: the envelope's codec byte is 2.
    for key in keys(&server, "meridian:v1:*") {
        let bytes = raw(&server, &key).expect("an entry");
        assert_eq!(bytes[5], 2, "{key}");
    }
    let output = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "self_describing_shapes_are_read_back_by_another_process",
        ])
        .env(ROLE, "reader")
        .env("ENABLE_REDIS_CACHE", "on")
        .env("REDIS_URL", server.url())
        .env("CACHE_REDIS_TIMEOUT", "5s")
        .env("CACHE_REDIS_CONNECT_TIMEOUT", "5s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the other process runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the other process failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Serialized as a sequence of unknown length, which postcard cannot write.
#[derive(Debug, PartialEq, Deserialize)]
struct Unsized(Vec<u32>);

impl Serialize for Unsized {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().filter(|_| true))
    }
}

#[redis_cached(domain = "unsized", runtime = rt, skip(rt))]
fn unsized_value(n: u32, rt: &Runtime) -> Unsized {
    Unsized((0..n).collect())
}

#[test]
fn a_value_no_codec_can_write_is_returned_and_counted() {
    let rt = Runtime::new(Config::default());
    for _ in 0..3 {
        assert_eq!(unsized_value(3, &rt), Unsized(vec![0, 1, 2]));
    }
    let stats = rt.stats().total;
    assert_eq!((stats.computes, stats.unencodable), (3, 3), "{stats:?}");
}
