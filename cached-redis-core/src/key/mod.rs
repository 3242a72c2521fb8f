//! Cache keys: `{namespace}:{version}:{domain}[:{segment}…]:{hex(sha256)[..n]}`.
//!
//! The readable prefix lets operators find and clear a domain with
//! `SCAN MATCH`; the hash keeps keys short and arguments out of Redis. The
//! full 32-byte digest travels in the payload envelope, so two inputs whose
//! truncated hashes collide are told apart on read instead of returning one
//! request's value to the other.
//!
//! Two ways in, one hash: [`KeyBuilder`] for keys built by hand (owned
//! strings, checked when built), and `KeyInput` for the attribute's
//! generated code (checked at compile time, no allocation per call). Both
//! feed `hash` and `text`, and the label rules below are
//! `const fn`s the attribute's compile-time checks call too.

mod hash;
mod input;
mod text;

use std::fmt;

use serde::Serialize;

use self::hash::{Input, Parts};
pub use self::input::KeyInput;
pub(crate) use self::input::{CallKey, KeyShape};
use self::text::KeyText;

/// The namespace used when none is configured (`CACHE_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "meridian";
/// The key version used when none is given.
pub const DEFAULT_VERSION: &str = "v1";
/// Hex characters of the hash shown in a key when not set otherwise.
pub const DEFAULT_HASH_LEN: usize = 16;
/// The shortest hash a key may carry (32 bits).
pub const MIN_HASH_LEN: usize = 8;
/// The longest hash a key may carry (the whole SHA-256).
pub const MAX_HASH_LEN: usize = 64;
/// Plain segments longer than this are cut in the key (they stay whole in the hash).
const MAX_SEGMENT_LEN: usize = 64;

/// Why a key could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The domain is empty or uses characters outside `[a-z0-9_-]`.
    #[error("invalid domain {0:?}: use one or more of a-z, 0-9, '_' and '-'")]
    InvalidDomain(String),
    /// The version is empty or uses characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid version {0:?}: use one or more of A-Z, a-z, 0-9, '_', '.' and '-'")]
    InvalidVersion(String),
    /// The namespace is empty or uses characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid namespace {0:?}: use one or more of A-Z, a-z, 0-9, '_', '.' and '-'")]
    InvalidNamespace(String),
    /// The requested hash length is outside `8..=64` hex characters.
    #[error("hash length {0} is outside {MIN_HASH_LEN}..={MAX_HASH_LEN}")]
    InvalidHashLen(usize),
    /// A key part could not be serialized.
    #[error("a key part could not be serialized: {0}")]
    Encode(#[from] crate::canonical::Error),
}

// ------------------------------------------------------------------ rules

/// `true` when `domain` is one or more of `a-z`, `0-9`, `_`, `-`.
pub(crate) const fn is_valid_domain(domain: &str) -> bool {
    let bytes = domain.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_domain_char(bytes[i]) {
            return false;
        }
        i += 1;
    }
    !bytes.is_empty()
}

/// `true` when `label` (a version or namespace) is one or more of
/// `A-Z`, `a-z`, `0-9`, `_`, `.`, `-`.
pub(crate) const fn is_valid_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_label_char(bytes[i]) {
            return false;
        }
        i += 1;
    }
    !bytes.is_empty()
}

/// `true` when a key may show `hex_chars` of its hash.
pub(crate) const fn is_valid_hash_len(hex_chars: usize) -> bool {
    hex_chars >= MIN_HASH_LEN && hex_chars <= MAX_HASH_LEN
}

const fn is_domain_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

const fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

// -------------------------------------------------------------- the key

/// A finished key: the Redis key string and the digest of everything in it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    text: KeyText,
    digest: [u8; 32],
}

impl CacheKey {
    /// The Redis key, e.g. `meridian:v1:natal:3f9a0c1d2e4b5a69`.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The key's bytes (ASCII), what the stores use.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// The hash part of the key (after the last `:`): safe to log, it
    /// reveals nothing of the arguments.
    pub fn hash(&self) -> &str {
        let key = self.as_str();
        key.rsplit_once(':').map_or(key, |(_, hash)| hash)
    }

    /// SHA-256 of the whole key input; stored in the envelope and checked on read.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CacheKey").field(&self.as_str()).finish()
    }
}

// ------------------------------------------------------- by hand

/// Builds a [`CacheKey`] from a domain, a version and serializable parts.
///
/// Parts are hashed in the order given, each in a canonical, name-aware,
/// length-prefixed encoding, so equal parts always give equal keys (maps
/// included, whatever their iteration order) and `("ab", "c")` never meets
/// `("a", "bc")`.
///
/// ```
/// use cached_redis_core::KeyBuilder;
///
/// let key = KeyBuilder::new("batch")
///     .segment(&500)
///     .hash_len(12)
///     .part(&("natal", 1990_u16))?
///     .build()?;
/// assert!(key.as_str().starts_with("meridian:v1:batch:500:"));
/// assert_eq!(key.as_str().len(), "meridian:v1:batch:500:".len() + 12);
/// # Ok::<(), cached_redis_core::KeyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    namespace: String,
    version: String,
    domain: String,
    function: String,
    generics: Vec<String>,
    schema: Option<[u8; 32]>,
    segments: Vec<String>,
    hash_len: usize,
    parts: Parts,
}

impl KeyBuilder {
    /// Starts a key in `domain` with the default namespace, version and hash length.
    pub fn new(domain: impl Into<String>) -> Self {
        KeyBuilder {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            version: DEFAULT_VERSION.to_owned(),
            domain: domain.into(),
            function: String::new(),
            generics: Vec::new(),
            schema: None,
            segments: Vec::new(),
            hash_len: DEFAULT_HASH_LEN,
            parts: Parts::default(),
        }
    }

    /// Sets the namespace (first key segment).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the version (second key segment); bump it to invalidate a domain.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Names the function whose results this key caches, so two functions
    /// with equal arguments in one domain never share a key. Hashed, not shown.
    pub fn function(mut self, function: impl Into<String>) -> Self {
        self.function = function.into();
        self
    }

    /// Adds the fingerprint of the cached value's type, so a changed type
    /// gets new keys. Hashed, not shown.
    pub fn schema(mut self, fingerprint: [u8; 32]) -> Self {
        self.schema = Some(fingerprint);
        self
    }

    /// Adds a plain segment before the hash, rendered with `Display`.
    ///
    /// Characters outside `[A-Za-z0-9_.-]` are shown as `_` and long values
    /// are cut, so a segment can never break the key's shape or a `SCAN`
    /// pattern; the exact value is hashed, so two values that look alike in
    /// the key still get different keys.
    pub fn segment(mut self, value: &dyn fmt::Display) -> Self {
        self.push_segment(value);
        self
    }

    /// Sets how many hex characters of the hash the key shows (8–64, default 16).
    pub fn hash_len(mut self, hex_chars: usize) -> Self {
        self.hash_len = hex_chars;
        self
    }

    /// Hashes one more part.
    pub fn part<T: Serialize + ?Sized>(mut self, part: &T) -> Result<Self, KeyError> {
        self.push_part(part)?;
        Ok(self)
    }

    /// Hashes one more part in place.
    pub fn push_part<T: Serialize + ?Sized>(&mut self, part: &T) -> Result<(), KeyError> {
        self.push_named_part("", part)
    }

    /// Hashes one more part with the name of the argument it came from, so
    /// a swap of two same-typed arguments between deploys changes the key.
    pub fn push_named_part<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        part: &T,
    ) -> Result<(), KeyError> {
        self.parts.push(name, part)
    }

    /// Adds a type the function is generic over (or `Self`), so two
    /// instantiations of one generic function never share a key.
    pub fn push_type(&mut self, type_name: &str) {
        self.generics.push(type_name.to_owned());
    }

    /// Pushes a plain segment in place.
    pub fn push_segment(&mut self, value: &dyn fmt::Display) {
        self.segments.push(value.to_string());
    }

    /// Validates the pieces and produces the key.
    pub fn build(&self) -> Result<CacheKey, KeyError> {
        let mut parts = self.parts.clone();
        parts.frame();
        check_labels(&self.namespace, &self.version, &self.domain)?;
        if !is_valid_hash_len(self.hash_len) {
            return Err(KeyError::InvalidHashLen(self.hash_len));
        }
        Ok(Input {
            namespace: &self.namespace,
            version: &self.version,
            domain: &self.domain,
            function: &self.function,
            generics: self.generics.iter().map(String::as_str),
            schema: self.schema.as_ref(),
            segments: self.segments.iter().map(String::as_str),
            parts: &parts,
        }
        .key(self.hash_len))
    }
}

/// Builds `meridian:{version}:{domain}:{16 hex}` from one serializable value
/// (use a tuple for several parts).
///
/// ```
/// let key = cached_redis_core::build_key("natal", &("1990-01-01", 51.5_f64), "v1")?;
/// assert!(key.as_str().starts_with("meridian:v1:natal:"));
/// # Ok::<(), cached_redis_core::KeyError>(())
/// ```
pub fn build_key<P: Serialize + ?Sized>(
    domain: &str,
    parts: &P,
    version: &str,
) -> Result<CacheKey, KeyError> {
    KeyBuilder::new(domain)
        .version(version)
        .part(parts)?
        .build()
}

fn check_labels(namespace: &str, version: &str, domain: &str) -> Result<(), KeyError> {
    if !is_valid_domain(domain) {
        return Err(KeyError::InvalidDomain(domain.to_owned()));
    }
    if !is_valid_label(version) {
        return Err(KeyError::InvalidVersion(version.to_owned()));
    }
    if !is_valid_label(namespace) {
        return Err(KeyError::InvalidNamespace(namespace.to_owned()));
    }
    Ok(())
}

/// The `SCAN MATCH` pattern prefix of one namespace + version + domain.
pub(crate) fn domain_prefix(
    namespace: &str,
    version: &str,
    domain: &str,
) -> Result<String, KeyError> {
    check_labels(namespace, version, domain)?;
    Ok(format!("{namespace}:{version}:{domain}:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(key: &CacheKey) -> &str {
        key.as_str().rsplit(':').next().unwrap_or_default()
    }

    #[test]
    fn key_has_the_documented_shape() {
        let key = build_key("natal", &("1990-01-01", 12_u8), "v1").unwrap();
        let (prefix, hash) = key.as_str().rsplit_once(':').unwrap();
        assert_eq!(prefix, "meridian:v1:natal");
        assert_eq!(hash.len(), 16);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hash, hex(&key.digest()[..8]));
    }

    #[test]
    fn equal_parts_give_equal_keys() {
        let a = build_key("natal", &("x", 1_u32), "v1").unwrap();
        let b = build_key("natal", &("x", 1_u32), "v1").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn part_boundaries_are_unambiguous() {
        let split = |a: &str, b: &str| {
            KeyBuilder::new("d")
                .part(a)
                .unwrap()
                .part(b)
                .unwrap()
                .build()
                .unwrap()
        };
        assert_ne!(split("ab", "c"), split("a", "bc"));
        assert_ne!(split("", "abc"), split("abc", ""));
    }

    #[test]
    fn every_input_changes_the_hash() {
        let base = || KeyBuilder::new("d").part(&1_u8).unwrap();
        let keys = [
            base().build().unwrap(),
            base().namespace("other").build().unwrap(),
            base().version("v2").build().unwrap(),
            base().function("crate::f").build().unwrap(),
            base().schema([7; 32]).build().unwrap(),
            base().part(&2_u8).unwrap().build().unwrap(),
            KeyBuilder::new("d").part(&2_u8).unwrap().build().unwrap(),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a.digest(), b.digest(), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn segments_are_shown_and_hashed_raw() {
        let key = |seg: &str| {
            KeyBuilder::new("batch")
                .segment(&seg)
                .hash_len(12)
                .part(&())
                .unwrap()
                .build()
                .unwrap()
        };
        let plain = key("500");
        assert!(plain.as_str().starts_with("meridian:v1:batch:500:"));
        assert_eq!(hash_of(&plain).len(), 12);
        let (odd, lookalike) = (key("a:b*"), key("a_b_"));
        assert!(odd.as_str().starts_with("meridian:v1:batch:a_b_:"));
        assert_ne!(odd.digest(), lookalike.digest());
        assert!(key("").as_str().starts_with("meridian:v1:batch:_:"));
    }

    #[test]
    fn a_failed_part_leaves_the_others_intact() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let build = |first: &str| {
            let mut builder = KeyBuilder::new("d");
            builder.push_part(first).unwrap();
            assert!(builder.push_part(&Refuses).is_err());
            builder.push_part("x").unwrap();
            builder.build().unwrap()
        };
        assert_ne!(build("user-1"), build("user-2"));
    }

    #[test]
    fn argument_names_and_generics_change_the_hash() {
        let named = |a: &str, b: &str| {
            let mut builder = KeyBuilder::new("d");
            builder.push_named_part(a, &1.0_f64).unwrap();
            builder.push_named_part(b, &2.0_f64).unwrap();
            builder.build().unwrap()
        };
        assert_ne!(named("from", "to"), named("to", "from"));
        let generic = |ty: &str| {
            let mut builder = KeyBuilder::new("d");
            builder.push_type(ty);
            builder.build().unwrap()
        };
        assert_ne!(generic("u8"), generic("bool"));
    }

    #[test]
    fn odd_hash_lengths_are_exact() {
        for len in [MIN_HASH_LEN, 9, 33, MAX_HASH_LEN] {
            let key = KeyBuilder::new("d").hash_len(len).build().unwrap();
            assert_eq!(hash_of(&key).len(), len);
        }
    }

    #[test]
    fn rejects_bad_labels() {
        assert!(matches!(
            build_key("Natal", &(), "v1"),
            Err(KeyError::InvalidDomain(_))
        ));
        assert!(matches!(
            build_key("na:tal", &(), "v1"),
            Err(KeyError::InvalidDomain(_))
        ));
        assert!(matches!(
            build_key("", &(), "v1"),
            Err(KeyError::InvalidDomain(_))
        ));
        assert!(matches!(
            build_key("natal", &(), "v*"),
            Err(KeyError::InvalidVersion(_))
        ));
        let ns = KeyBuilder::new("d").namespace("a b").build();
        assert!(matches!(ns, Err(KeyError::InvalidNamespace(_))));
        let short = KeyBuilder::new("d").hash_len(7).build();
        assert!(matches!(short, Err(KeyError::InvalidHashLen(7))));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
