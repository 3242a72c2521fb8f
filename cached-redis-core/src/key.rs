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
//! feed [`digest`] and [`KeyText::render`], and the label rules below are
//! `const fn`s the attribute's compile-time checks call too.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

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

/// Domain-separates this hash from any other use of SHA-256 and versions the
/// input layout: changing how the input is framed must change every key.
const HASH_CONTEXT: &[u8] = b"cached-redis/key/1\0";

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

/// Bytes of key text kept inline; longer keys (long namespaces or
/// segments) go to the heap.
const INLINE: usize = 94;

/// The key's text, inline when short (almost always), so a call builds its
/// key without allocating.
#[derive(Clone, PartialEq, Eq, Hash)]
enum KeyText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl KeyText {
    /// `namespace:version:domain:` + each segment (sanitized) + `:` + `hash_len` hex digits.
    fn render<'a>(
        head: [&str; 3],
        mut segments: impl ExactSizeIterator<Item = &'a str>,
        digest: &[u8; 32],
        hash_len: usize,
    ) -> KeyText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hex = (0..hash_len).map(|i| {
            let byte = digest[i / 2];
            HEX[usize::from(if i % 2 == 0 { byte >> 4 } else { byte & 0x0f })]
        });
        let labels: usize = head.iter().map(|label| label.len() + 1).sum();
        if segments.len() == 0 && labels + hash_len <= INLINE {
            // The common shape, written in place.
            let mut bytes = [0; INLINE];
            let mut at = 0;
            for label in head {
                bytes[at..at + label.len()].copy_from_slice(label.as_bytes());
                bytes[at + label.len()] = b':';
                at += label.len() + 1;
            }
            for (slot, digit) in bytes[at..at + hash_len].iter_mut().zip(hex) {
                *slot = digit;
            }
            return KeyText::Inline {
                // `INLINE` < 256.
                len: (at + hash_len) as u8,
                bytes,
            };
        }
        let mut out = Writer::default();
        for label in head {
            out.push_str(label);
            out.push(b':');
        }
        for segment in segments.by_ref() {
            push_sanitized(&mut out, segment);
            out.push(b':');
        }
        for digit in hex {
            out.push(digit);
        }
        out.finish()
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyText::Heap(text) => text.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever written (labels, sanitized segments, hex):
        // the check cannot fail.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// Writes key text inline until it no longer fits.
struct Writer {
    len: usize,
    inline: [u8; INLINE],
    heap: Option<Vec<u8>>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            len: 0,
            inline: [0; INLINE],
            heap: None,
        }
    }
}

impl Writer {
    fn push(&mut self, ascii: u8) {
        self.push_ascii(&[ascii]);
    }

    fn push_str(&mut self, text: &str) {
        self.push_ascii(text.as_bytes());
    }

    /// Appends bytes the caller knows to be ASCII.
    fn push_ascii(&mut self, ascii: &[u8]) {
        if let Some(heap) = &mut self.heap {
            heap.extend_from_slice(ascii);
        } else if self.len + ascii.len() <= INLINE {
            self.inline[self.len..self.len + ascii.len()].copy_from_slice(ascii);
            self.len += ascii.len();
        } else {
            let mut heap = Vec::with_capacity(2 * INLINE);
            heap.extend_from_slice(&self.inline[..self.len]);
            heap.extend_from_slice(ascii);
            self.heap = Some(heap);
        }
    }

    fn finish(self) -> KeyText {
        match self.heap {
            Some(heap) => KeyText::Heap(String::from_utf8_lossy(&heap).into()),
            None => KeyText::Inline {
                // `INLINE` < 256.
                len: self.len as u8,
                bytes: self.inline,
            },
        }
    }
}

fn push_sanitized(out: &mut Writer, segment: &str) {
    if segment.is_empty() {
        out.push(b'_');
        return;
    }
    for c in segment.chars().take(MAX_SEGMENT_LEN) {
        out.push(if c.is_ascii() && is_label_char(c as u8) {
            c as u8
        } else {
            b'_'
        });
    }
}

/// The hashed input, in the order `docs/design.md` gives ("Key format").
struct Input<'a, G, S> {
    namespace: &'a str,
    version: &'a str,
    domain: &'a str,
    function: &'a str,
    generics: G,
    schema: Option<&'a [u8; 32]>,
    segments: S,
    parts: &'a mut Parts,
}

impl<'a, G, S> Input<'a, G, S>
where
    G: ExactSizeIterator<Item = &'a str> + Clone,
    S: ExactSizeIterator<Item = &'a str> + Clone,
{
    fn key(self, hash_len: usize) -> CacheKey {
        let head = self.head();
        tail(
            head,
            [self.namespace, self.version, self.domain],
            self.segments,
            self.parts,
            hash_len,
        )
    }

    /// The hash state after the fields every call of one function (and
    /// one instantiation) shares: context to schema.
    fn head(&self) -> Sha256 {
        let mut hasher = Sha256::new();
        hasher.update(HASH_CONTEXT);
        for field in [self.namespace, self.version, self.domain, self.function] {
            framed(&mut hasher, field.as_bytes());
        }
        hasher.update((self.generics.len() as u64).to_le_bytes());
        for type_name in self.generics.clone() {
            framed(&mut hasher, type_name.as_bytes());
        }
        framed(&mut hasher, self.schema.map_or(&[][..], |s| &s[..]));
        hasher
    }
}

/// The key, from the state after the head: segments, then the parts.
fn tail<'a>(
    mut hasher: Sha256,
    labels: [&str; 3],
    segments: impl ExactSizeIterator<Item = &'a str> + Clone,
    parts: &mut Parts,
    hash_len: usize,
) -> CacheKey {
    if segments.len() == 0 {
        // Segment count and framed parts, in one piece.
        hasher.update(parts.framed_after_count(0));
    } else {
        hasher.update((segments.len() as u64).to_le_bytes());
        for segment in segments.clone() {
            framed(&mut hasher, segment.as_bytes());
        }
        hasher.update(parts.framed());
    }
    let digest: [u8; 32] = hasher.finalize().into();
    let text = KeyText::render(labels, segments, &digest, hash_len);
    CacheKey { text, digest }
}

fn framed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The key parts, encoded, after 16 bytes kept free in front: room for
/// the segment count and the parts' length, so the hash takes the whole
/// tail of its input in one piece.
#[derive(Debug, Clone)]
struct Parts(Vec<u8>);

/// Bytes kept free in front of the parts.
const PARTS_HEADER: usize = 16;

impl Default for Parts {
    fn default() -> Self {
        Parts(vec![0; PARTS_HEADER])
    }
}

impl Parts {
    /// The parts framed (`len as u64 LE` + bytes).
    fn framed(&mut self) -> &[u8] {
        let len = (self.0.len() - PARTS_HEADER) as u64;
        self.0[8..PARTS_HEADER].copy_from_slice(&len.to_le_bytes());
        &self.0[8..]
    }

    /// `count as u64 LE`, then the parts framed.
    fn framed_after_count(&mut self, count: u64) -> &[u8] {
        self.framed();
        self.0[..8].copy_from_slice(&count.to_le_bytes());
        &self.0
    }

    /// Forgets the parts, keeping the buffer.
    fn clear(&mut self) {
        self.0.truncate(PARTS_HEADER);
    }

    fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// Appends one named part: framed name, then `len as u64 LE` + the
    /// canonical encoding. On failure the parts are left as they were, so
    /// a failed part cannot erase others.
    fn push<T: Serialize + ?Sized>(&mut self, name: &str, part: &T) -> Result<(), KeyError> {
        let parts = &mut self.0;
        let start = parts.len();
        parts.extend_from_slice(&(name.len() as u64).to_le_bytes());
        parts.extend_from_slice(name.as_bytes());
        // Reserve the length prefix, encode in place, then patch the length.
        let at = parts.len();
        parts.extend_from_slice(&[0; 8]);
        if let Err(err) = crate::canonical::encode_into(part, parts) {
            parts.truncate(start);
            return Err(err.into());
        }
        let len = (parts.len() - at - 8) as u64;
        parts[at..at + 8].copy_from_slice(&len.to_le_bytes());
        Ok(())
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
            parts: &mut parts,
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

// ------------------------------------------------- from generated code

/// What the attribute knows about a key at compile time; its labels were
/// checked then, so calls never check them again.
pub(crate) struct KeyShape {
    pub(crate) domain: &'static str,
    pub(crate) version: &'static str,
    pub(crate) hash_len: usize,
    pub(crate) function: fn() -> &'static str,
    /// The hash state after the fields every call shares, for a function
    /// with no type parameters: a call hashes only its own arguments.
    pub(crate) head: OnceLock<Head>,
}

/// A hashed head, and the namespace and schema it was hashed with.
pub(crate) struct Head {
    namespace: Box<str>,
    schema: [u8; 32],
    state: Sha256,
}

/// Reusable buffers of one thread: a call's key input is written here and
/// hashed, so building a key allocates nothing once a thread has warmed up.
#[derive(Default)]
struct Scratch {
    parts: Parts,
    generics: Vec<&'static str>,
    segments: String,
    segment_ends: Vec<usize>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// Buffers larger than this are not kept for the next call.
const KEEP_SCRATCH: usize = 64 * 1024;

/// One call's key input, collected by generated code and hashed once.
pub(crate) struct KeyInput {
    shape: &'static KeyShape,
    scratch: Scratch,
    failed: Option<KeyError>,
}

impl KeyInput {
    pub(crate) fn new(shape: &'static KeyShape) -> KeyInput {
        let scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
        KeyInput {
            shape,
            scratch,
            failed: None,
        }
    }

    pub(crate) fn push_part<T: Serialize + ?Sized>(&mut self, name: &str, part: &T) {
        if self.failed.is_none()
            && let Err(err) = self.scratch.parts.push(name, part)
        {
            self.failed = Some(err);
        }
    }

    pub(crate) fn push_type(&mut self, type_name: &'static str) {
        self.scratch.generics.push(type_name);
    }

    pub(crate) fn push_segment(&mut self, value: &dyn fmt::Display) {
        let scratch = &mut self.scratch;
        // Writing to a String cannot fail.
        let _ = write!(scratch.segments, "{value}");
        scratch.segment_ends.push(scratch.segments.len());
    }

    /// The key under `namespace` (checked when the configuration was built)
    /// for a value of the fingerprinted type.
    pub(crate) fn finish(
        mut self,
        namespace: &str,
        schema: &[u8; 32],
    ) -> Result<CacheKey, KeyError> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        let shape = self.shape;
        let scratch = &mut self.scratch;
        let segments = SegmentIter {
            text: &scratch.segments,
            ends: &scratch.segment_ends,
            next: 0,
        };
        let labels = [namespace, shape.version, shape.domain];
        // The common case: no type parameters, the head already hashed.
        if scratch.generics.is_empty()
            && let Some(head) = shape.head.get()
            && *head.namespace == *namespace
            && head.schema == *schema
        {
            let state = head.state.clone();
            return Ok(tail(
                state,
                labels,
                segments,
                &mut scratch.parts,
                shape.hash_len,
            ));
        }
        let input = Input {
            namespace,
            version: shape.version,
            domain: shape.domain,
            function: (shape.function)(),
            generics: scratch.generics.iter().copied(),
            schema: Some(schema),
            segments,
            parts: &mut scratch.parts,
        };
        if !scratch.generics.is_empty() {
            return Ok(input.key(shape.hash_len));
        }
        let state = input.head();
        let _ = shape.head.set(Head {
            namespace: namespace.into(),
            schema: *schema,
            state: state.clone(),
        });
        Ok(tail(
            state,
            labels,
            input.segments,
            input.parts,
            shape.hash_len,
        ))
    }
}

impl Drop for KeyInput {
    fn drop(&mut self) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if scratch.parts.capacity() + scratch.segments.capacity() > KEEP_SCRATCH {
            return;
        }
        scratch.parts.clear();
        scratch.generics.clear();
        scratch.segments.clear();
        scratch.segment_ends.clear();
        let _ = SCRATCH.try_with(|cell| cell.set(scratch));
    }
}

/// The segments of a [`Scratch`], each a slice of its text.
#[derive(Clone)]
struct SegmentIter<'a> {
    text: &'a str,
    ends: &'a [usize],
    next: usize,
}

impl<'a> Iterator for SegmentIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = *self.ends.get(self.next)?;
        let start = match self.next {
            0 => 0,
            n => self.ends[n - 1],
        };
        self.next += 1;
        self.text.get(start..end)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.ends.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for SegmentIter<'_> {}

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
