//! The key's hash input, framed field by field, and the digest.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::text::KeyText;
use super::{CacheKey, KeyError};

/// Domain-separates this hash from any other use of SHA-256 and versions the
/// input layout: changing how the input is framed must change every key.
const HASH_CONTEXT: &[u8] = b"cached-redis/key/1\0";

/// The hashed input, in the order `docs/design.md` gives ("Key format").
pub(super) struct Input<'a, G, S> {
    pub(super) namespace: &'a str,
    pub(super) version: &'a str,
    pub(super) domain: &'a str,
    pub(super) function: &'a str,
    pub(super) generics: G,
    pub(super) schema: Option<&'a [u8; 32]>,
    pub(super) segments: S,
    pub(super) parts: &'a Parts,
}

impl<'a, G, S> Input<'a, G, S>
where
    G: ExactSizeIterator<Item = &'a str> + Clone,
    S: ExactSizeIterator<Item = &'a str> + Clone,
{
    /// The key; `parts` must be [`Parts::frame`]d.
    pub(super) fn key(self, hash_len: usize) -> CacheKey {
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
    pub(super) fn head(&self) -> Sha256 {
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
pub(super) fn tail<'a>(
    mut hasher: Sha256,
    labels: [&str; 3],
    segments: impl ExactSizeIterator<Item = &'a str> + Clone,
    parts: &Parts,
    hash_len: usize,
) -> CacheKey {
    if segments.len() == 0 {
        // Segment count and framed parts, in one piece.
        hasher.update(parts.framed_after_no_segments());
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
/// tail of its input in one piece. Empty until first used, so an unused
/// buffer costs no allocation.
#[derive(Debug, Clone, Default)]
pub(super) struct Parts(Vec<u8>);

/// Bytes kept free in front of the parts.
const PARTS_HEADER: usize = 16;

impl Parts {
    fn header(&mut self) -> &mut Vec<u8> {
        if self.0.len() < PARTS_HEADER {
            self.0.resize(PARTS_HEADER, 0);
        }
        &mut self.0
    }

    /// Writes the frame in front of the parts: a segment count of 0, then
    /// the parts' length. Called once all parts are in, before reading them.
    pub(super) fn frame(&mut self) {
        self.header();
        let len = (self.0.len() - PARTS_HEADER) as u64;
        self.0[..8].copy_from_slice(&0_u64.to_le_bytes());
        self.0[8..PARTS_HEADER].copy_from_slice(&len.to_le_bytes());
    }

    /// The parts framed (`len as u64 LE` + bytes), once [`Parts::frame`]d.
    pub(super) fn framed(&self) -> &[u8] {
        self.0.get(8..).unwrap_or_default()
    }

    /// A segment count of 0, then the parts framed.
    fn framed_after_no_segments(&self) -> &[u8] {
        &self.0
    }

    /// Forgets the parts, keeping the buffer.
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// Appends one named part: framed name, then `len as u64 LE` + the
    /// canonical encoding. On failure the parts are left as they were, so
    /// a failed part cannot erase others.
    pub(super) fn push<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        part: &T,
    ) -> Result<(), KeyError> {
        let parts = self.header();
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
