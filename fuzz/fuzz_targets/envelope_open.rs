//! Untrusted bytes read from Redis: the envelope check, then the postcard
//! decode of the body into a representative cached value. Nothing may
//! panic, abort or allocate without bound.
//!
//! Every input is used twice:
//!
//! 1. as the stored bytes themselves: `open` must reject or accept them
//!    without panicking, and whatever it accepts is decoded;
//! 2. as the *body* of an envelope made with `seal` (so the header is valid
//!    and the checksum right): `open` must accept it unchanged, the body is
//!    decoded, and one damaged byte of the sealed entry must be rejected.
//!
//! The second path is what takes the fuzzer deep into postcard: arbitrary
//! bodies almost never come with a matching CRC-32 on the first.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use cached_redis_core::KeyBuilder;
use cached_redis_core::advanced::envelope::{EnvelopeError, HEADER_LEN, open, seal};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

/// The digest of the key the entry is read under.
const DIGEST: [u8; 32] = [0x5a; 32];
/// The postcard codec's id (`Postcard::ID` in cached-redis-core/src/codec.rs).
const POSTCARD: u8 = 1;

/// A cached value of the kind the service stores: strings, nested structs,
/// fixed float arrays, options, an enum of every variant shape, a map.
#[derive(Debug, Serialize, Deserialize)]
struct Chart {
    name: String,
    tags: Vec<String>,
    bodies: Vec<Body>,
    cusps: [f64; 12],
    ascendant: Option<f64>,
    system: HouseSystem,
    counts: HashMap<String, u32>,
    computed_at: i64,
    id: u128,
    glyph: char,
    raw: Vec<u8>,
    pair: (u16, bool),
    note: Option<Box<Note>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Body {
    name: String,
    longitude: f64,
    latitude: f64,
    speed: f32,
    retrograde: bool,
    aspects: Vec<(u8, f64)>,
}

#[derive(Debug, Serialize, Deserialize)]
enum HouseSystem {
    Placidus,
    WholeSign(u8),
    Custom { name: String, cusps: Vec<f64> },
    Offset(i32, i64),
    Unit(()),
}

#[derive(Debug, Serialize, Deserialize)]
struct Note(String);

/// What the runtime's codec does (`Postcard::decode`): the whole value,
/// leftover bytes are an error.
fn decode(body: &[u8]) -> Option<Chart> {
    let (value, rest) = postcard::take_from_bytes::<Chart>(body).ok()?;
    rest.is_empty().then_some(value)
}

/// A value's identity as the key encoder sees it: floats by their bits,
/// maps whatever their iteration order.
fn identity(chart: &Chart) -> [u8; 32] {
    *KeyBuilder::new("d")
        .part(chart)
        .expect("a decoded value always has a key")
        .build()
        .expect("fixed labels are valid")
        .digest()
}

/// Whatever decodes must survive re-encoding and decoding unchanged.
fn check_round_trip(chart: &Chart) {
    let bytes = postcard::to_allocvec(chart).expect("a decoded value encodes");
    let again = decode(&bytes).expect("an encoded value decodes");
    assert_eq!(
        identity(chart),
        identity(&again),
        "round trip changed the value"
    );
}

fuzz_target!(|data: &[u8]| {
    // 1. The input as stored bytes.
    if let Ok(envelope) = open(data, &DIGEST, POSTCARD) {
        assert_eq!(envelope.body, &data[HEADER_LEN..]);
        if let Some(chart) = decode(envelope.body) {
            check_round_trip(&chart);
        }
    }

    // 2. The input as the body of a valid envelope.
    let ttl = Duration::from_millis(u64::from(data.first().copied().unwrap_or(0)) * 1000);
    let sealed = seal(&DIGEST, POSTCARD, ttl, data);
    assert_eq!(sealed.len(), HEADER_LEN + data.len());
    let envelope = open(&sealed, &DIGEST, POSTCARD).expect("a sealed entry opens");
    assert_eq!(envelope.body, data);
    assert_eq!(envelope.ttl, ttl);
    if let Some(chart) = decode(envelope.body) {
        check_round_trip(&chart);
    }
    assert_eq!(
        open(&sealed, &[0xa5; 32], POSTCARD),
        Err(EnvelopeError::DigestMismatch)
    );
    assert!(matches!(
        open(&sealed, &DIGEST, POSTCARD + 1),
        Err(EnvelopeError::CodecMismatch { .. })
    ));
    // One damaged byte anywhere (header or body) is always caught: CRC-32
    // detects every burst of up to 32 bits.
    let at = (usize::from(data.last().copied().unwrap_or(0)) * 31 + data.len()) % sealed.len();
    let mut damaged = sealed.clone();
    damaged[at] ^= data.get(1).copied().unwrap_or(0x40) | 1;
    assert!(
        open(&damaged, &DIGEST, POSTCARD).is_err(),
        "byte {at} damaged, yet the entry opened"
    );
    // A truncated entry is refused too.
    assert!(open(&sealed[..sealed.len() - 1], &DIGEST, POSTCARD).is_err());
});
