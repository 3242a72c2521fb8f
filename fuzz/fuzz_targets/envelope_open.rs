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
//!    decoded, the sealed bytes must be exactly the documented layout, and
//!    one damaged byte of the sealed entry must be rejected;
//! 3. as a *signed* entry built by hand from the documented layout (flag
//!    bit 0, a 32-byte tag after the header: the first 32 input bytes),
//!    which the public `open` accepts without checking the HMAC (it has no
//!    key): it must find the body after the tag.
//!
//! Paths 2 and 3 are what take the fuzzer deep into postcard: arbitrary
//! bodies almost never come with a matching CRC-32 on the first.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use cached_redis_core::KeyBuilder;
use cached_redis_core::advanced::envelope::{
    ENVELOPE_VERSION, EnvelopeError, FLAG_SIGNED, HEADER_LEN, MAGIC, open, seal,
};
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

/// An envelope built from the layout in the documentation (offsets, LE
/// fields, CRC-32 of bytes 0..60 then all that follows them), not by `seal`.
fn by_the_book(flags: u16, created_at_ms: u64, ttl_ms: u64, tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&MAGIC);
    bytes.push(ENVELOPE_VERSION);
    bytes.push(POSTCARD);
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&DIGEST);
    bytes.extend_from_slice(&created_at_ms.to_le_bytes());
    bytes.extend_from_slice(&ttl_ms.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes);
    crc.update(tag);
    crc.update(body);
    bytes.extend_from_slice(&crc.finalize().to_le_bytes());
    bytes.extend_from_slice(tag);
    bytes.extend_from_slice(body);
    bytes
}

/// One byte changed anywhere (header, tag or body) is always caught: the
/// fields are checked or covered by the CRC-32, which detects every burst
/// of up to 32 bits.
fn check_damage_is_caught(sealed: &[u8], data: &[u8]) {
    let at = (usize::from(data.last().copied().unwrap_or(0)) * 31 + data.len()) % sealed.len();
    let mut damaged = sealed.to_vec();
    damaged[at] ^= data.get(1).copied().unwrap_or(0x40) | 1;
    assert!(
        open(&damaged, &DIGEST, POSTCARD).is_err(),
        "byte {at} damaged, yet the entry opened"
    );
    // A truncated entry is refused too.
    assert!(open(&sealed[..sealed.len() - 1], &DIGEST, POSTCARD).is_err());
}

fuzz_target!(|data: &[u8]| {
    // 1. The input as stored bytes.
    if let Ok(envelope) = open(data, &DIGEST, POSTCARD) {
        let signed = u16::from_le_bytes([data[6], data[7]]) & FLAG_SIGNED != 0;
        let tag_len = if signed { 32 } else { 0 };
        assert_eq!(envelope.body, &data[HEADER_LEN + tag_len..]);
        if let Some(chart) = decode(envelope.body) {
            check_round_trip(&chart);
        }
    }

    // 2. The input as the body of a valid envelope.
    let ttl = Duration::from_millis(u64::from(data.first().copied().unwrap_or(0)) * 1000);
    let sealed = seal(&DIGEST, POSTCARD, ttl, data);
    let envelope = open(&sealed, &DIGEST, POSTCARD).expect("a sealed entry opens");
    assert_eq!(envelope.body, data);
    assert_eq!(envelope.ttl, ttl);
    let ttl_ms = ttl.as_millis() as u64;
    assert_eq!(
        sealed,
        by_the_book(0, envelope.created_at_ms, ttl_ms, &[], data),
        "seal does not write the documented layout"
    );
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
    check_damage_is_caught(&sealed, data);

    // 3. A signed entry: the first 32 bytes as the tag, the rest as the body.
    if let Some((tag, body)) = data.split_at_checked(32) {
        let signed = by_the_book(FLAG_SIGNED, 1_700_000_000_000, ttl_ms, tag, body);
        let envelope = open(&signed, &DIGEST, POSTCARD).expect("a signed entry opens");
        assert_eq!(envelope.body, body);
        assert_eq!(envelope.created_at_ms, 1_700_000_000_000);
        if let Some(chart) = decode(envelope.body) {
            check_round_trip(&chart);
        }
        check_damage_is_caught(&signed, data);
    }
});
