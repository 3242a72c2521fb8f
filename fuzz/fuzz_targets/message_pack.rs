//! Untrusted bytes read from Redis, for a self-describing type: the
//! MessagePack decode the runtime does for types postcard cannot read back
//! (`MessagePack::decode` in cached-redis-core/src/codec.rs: `rmp_serde`
//! over the slice, then no byte left over). Nothing may panic, abort or
//! allocate without bound; whatever decodes must encode again and decode
//! to the same encoding.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Every shape that needs `deserialize_any`.
#[derive(Debug, Serialize, Deserialize)]
struct Reading {
    name: String,
    body: Body,
    position: Position,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Body {
    Planet { moons: u32, ring: Option<Vec<f64>> },
    Star { magnitude: f64 },
    Other,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Position {
    Ecliptic { longitude: f64, latitude: f64 },
    House(u8),
    Named(String),
}

/// What the runtime does with a body it reads.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut rest = bytes;
    let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest)).ok()?;
    rest.is_empty().then_some(value)
}

fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    let Some(value) = decode::<T>(bytes) else {
        return;
    };
    let again = rmp_serde::to_vec_named(&value).expect("a decoded value encodes");
    let value: T = decode(&again).expect("and decodes again");
    let third = rmp_serde::to_vec_named(&value).expect("encodes");
    assert_eq!(again, third, "encoding is stable after one round trip");
}

fuzz_target!(|bytes: &[u8]| {
    round_trip::<Reading>(bytes);
    round_trip::<serde_json::Value>(bytes);
    round_trip::<Vec<Position>>(bytes);
});
