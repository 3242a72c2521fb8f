//! An entry as an operator sees it: every header field, and the result of
//! each check the runtime makes, side by side.
//!
//! The runtime's reader (`envelope::open_stored`) stops at the first
//! failed check, which is right for a cache and useless for a diagnosis;
//! this one frames the bytes with the same code (`envelope::sections`),
//! then reports the checksum, the signature, the codec and the digest
//! separately.

use std::fmt;
use std::time::Duration;

use crate::codec::{Codec, MessagePack, Postcard};
use crate::config::Config;
use crate::envelope::{self, EnvelopeError, FLAG_COMPRESSED, FLAG_SIGNED, FLAG_TIMED, u64_at};
use crate::key::{MAX_HASH_LEN, MIN_HASH_LEN};

/// A stored entry's header and the outcome of each check on it.
///
/// ```
/// use std::time::Duration;
/// use cached_redis_core::Config;
/// use cached_redis_core::admin::{Checksum, Entry, Signature};
/// use cached_redis_core::advanced::envelope::seal;
///
/// let bytes = seal(&[0xab; 32], 1, Duration::from_secs(60), b"value");
/// let entry = Entry::read(&bytes, &Config::default())?;
/// assert_eq!(entry.codec_name(), Some("postcard"));
/// assert_eq!(entry.ttl, Duration::from_secs(60));
/// assert_eq!(entry.checksum, Checksum::Valid);
/// assert_eq!(entry.signature, Signature::Unsigned);
/// assert!(entry.problems("meridian:v1:natal:abababababababab").is_empty());
/// assert!(!entry.problems("meridian:v1:natal:0000000000000000").is_empty());
/// # Ok::<(), cached_redis_core::advanced::envelope::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The envelope layout version.
    pub envelope_version: u8,
    /// The codec id: 1 postcard, 2 MessagePack.
    pub codec: u8,
    /// The raw flags (see [`FLAG_SIGNED`](crate::advanced::envelope::FLAG_SIGNED) and the others).
    pub flags: u16,
    /// SHA-256 of the key input; a key shows a prefix of it in hex.
    pub digest: [u8; 32],
    /// When the value was computed, Unix milliseconds.
    pub created_at_ms: u64,
    /// The TTL the value was stored with (its freshness, not Redis's
    /// expiry, which may be longer for `stale_if_error`).
    pub ttl: Duration,
    /// How long the value took to compute, when recorded (`early_refresh`).
    pub compute: Option<Duration>,
    /// The whole entry, in bytes.
    pub size: usize,
    /// The body (the encoded value as stored), in bytes.
    pub body_len: usize,
    /// The value's length before compression, when compressed.
    pub uncompressed_len: Option<u32>,
    /// Whether the checksum matches the bytes.
    pub checksum: Checksum,
    /// What the HMAC says, as far as this configuration can tell.
    pub signature: Signature,
}

/// The outcome of the CRC-32 check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The bytes are as written.
    Valid,
    /// The bytes were damaged (or forged carelessly).
    Mismatch,
}

/// The outcome of the HMAC check, given the configured keys
/// (`CACHE_HMAC_KEY`, `CACHE_HMAC_KEY_PREVIOUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signature {
    /// Signed, and the HMAC verifies under a configured key.
    Verified,
    /// Signed, and the HMAC verifies under none of the configured keys:
    /// a forgery, or another key's entry. The runtime refuses it.
    Invalid,
    /// Not signed while a key is configured: the runtime refuses it.
    Missing,
    /// Signed, but no key is configured to check it with. The runtime
    /// accepts it unchecked.
    NotVerified,
    /// Not signed, and no key is configured.
    Unsigned,
}

impl Signature {
    /// A short description: `verified`, `invalid`, `missing`,
    /// `not verified (no key)`, `unsigned`.
    pub fn describe(self) -> &'static str {
        match self {
            Signature::Verified => "verified",
            Signature::Invalid => "does not verify",
            Signature::Missing => "unsigned, but CACHE_HMAC_KEY is set",
            Signature::NotVerified => "signed, not verified (no key)",
            Signature::Unsigned => "unsigned",
        }
    }
}

/// A reason the runtime would not use an entry that frames correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryProblem {
    /// A codec this version does not know.
    UnknownCodec(u8),
    /// The checksum does not match.
    ChecksumMismatch,
    /// The HMAC does not verify under the configured keys.
    BadSignature,
    /// Unsigned while `CACHE_HMAC_KEY` is set.
    Unsigned,
    /// The digest does not begin with the key's hash: the entry belongs to
    /// another key input (a copied value, or a short-hash collision).
    DigestMismatch,
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::UnknownCodec(id) => write!(f, "unknown codec {id}"),
            EntryProblem::ChecksumMismatch => f.write_str("checksum mismatch (damaged bytes)"),
            EntryProblem::BadSignature => f.write_str("HMAC does not verify"),
            EntryProblem::Unsigned => f.write_str("unsigned while CACHE_HMAC_KEY is set"),
            EntryProblem::DigestMismatch => {
                f.write_str("digest does not match the key (another input's entry)")
            }
        }
    }
}

impl Entry {
    /// Reads `bytes` as an envelope, checking the HMAC with `config`'s keys
    /// when it has any. An error only when the bytes do not frame as an
    /// envelope at all (too short, bad magic, unknown version or flags, a
    /// body length that disagrees): those are not cached-redis entries.
    /// Damage and bad signatures are reported in the result instead.
    pub fn read(bytes: &[u8], config: &Config) -> Result<Entry, EnvelopeError> {
        let sections = envelope::sections(bytes)?;
        let (header, flags, body) = (sections.header, sections.flags, sections.body);
        let checksum = if sections.checksum_matches() {
            Checksum::Valid
        } else {
            Checksum::Mismatch
        };
        let signature = match (sections.tag.is_empty(), config.signer()) {
            (true, Some(_)) => Signature::Missing,
            (true, None) => Signature::Unsigned,
            (false, None) => Signature::NotVerified,
            (false, Some(signer)) if sections.signed_by(&signer) => Signature::Verified,
            (false, Some(_)) => Signature::Invalid,
        };
        let mut digest = [0; 32];
        digest.copy_from_slice(&header[8..40]);
        Ok(Entry {
            envelope_version: header[4],
            codec: header[5],
            flags,
            digest,
            created_at_ms: u64_at(header, 40),
            ttl: Duration::from_millis(u64_at(header, 48)),
            compute: sections.compute(),
            size: bytes.len(),
            body_len: body.len(),
            uncompressed_len: (flags & FLAG_COMPRESSED != 0)
                .then(|| body.first_chunk::<4>().map(|len| u32::from_le_bytes(*len)))
                .flatten(),
            checksum,
            signature,
        })
    }

    /// The codec's name: `postcard`, `MessagePack`, or `None` for an id
    /// this version does not know.
    pub fn codec_name(&self) -> Option<&'static str> {
        match self.codec {
            Postcard::ID => Some("postcard"),
            MessagePack::ID => Some("MessagePack"),
            _ => None,
        }
    }

    /// Whether the entry carries an HMAC.
    pub fn is_signed(&self) -> bool {
        self.flags & FLAG_SIGNED != 0
    }

    /// Whether the entry records its compute time.
    pub fn is_timed(&self) -> bool {
        self.flags & FLAG_TIMED != 0
    }

    /// Whether the body is LZ4-compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    /// The digest in lowercase hex.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether the digest begins with the hash that ends `key`; `None`
    /// when `key` does not end in a hash (8 to 64 lowercase hex digits
    /// after its last `:`).
    pub fn matches_key(&self, key: &str) -> Option<bool> {
        let (_, hash) = key.rsplit_once(':')?;
        let is_hash = (MIN_HASH_LEN..=MAX_HASH_LEN).contains(&hash.len())
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        is_hash.then(|| self.digest_hex().starts_with(hash))
    }

    /// Everything that would make the runtime refuse this entry when read
    /// under `key` (whatever the reader's type: the codec is only checked
    /// to be one this version knows). Empty: the runtime would use it.
    pub fn problems(&self, key: &str) -> Vec<EntryProblem> {
        let mut problems = Vec::new();
        if self.codec_name().is_none() {
            problems.push(EntryProblem::UnknownCodec(self.codec));
        }
        if self.checksum == Checksum::Mismatch {
            problems.push(EntryProblem::ChecksumMismatch);
        }
        match self.signature {
            Signature::Invalid => problems.push(EntryProblem::BadSignature),
            Signature::Missing => problems.push(EntryProblem::Unsigned),
            Signature::Verified | Signature::NotVerified | Signature::Unsigned => {}
        }
        if self.matches_key(key) == Some(false) {
            problems.push(EntryProblem::DigestMismatch);
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Extras, HEADER_LEN, TIMED_LEN, seal_at};
    use crate::signing::Signer;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn config(key: Option<&[u8]>) -> Config {
        let builder = Config::builder();
        match key {
            Some(key) => builder.hmac_key(key),
            None => builder,
        }
        .build()
        .unwrap()
    }

    fn sealed(signer: Option<&Signer>, compressed: bool) -> Vec<u8> {
        let extras = Extras {
            signer,
            compute: Some(Duration::from_millis(42)),
            compressed,
        };
        let body: &[u8] = if compressed {
            b"\x10\0\0\0lz4"
        } else {
            b"body"
        };
        seal_at(&[0xab; 32], 2, Duration::from_secs(90), body, extras, 1_700)
    }

    #[test]
    fn every_field_is_read() {
        let entry = Entry::read(&sealed(None, true), &config(None)).unwrap();
        assert_eq!(entry.envelope_version, 1);
        assert_eq!(entry.codec_name(), Some("MessagePack"));
        assert!(entry.is_timed() && entry.is_compressed() && !entry.is_signed());
        assert_eq!(entry.created_at_ms, 1_700);
        assert_eq!(entry.ttl, Duration::from_secs(90));
        assert_eq!(entry.compute, Some(Duration::from_millis(42)));
        assert_eq!(entry.body_len, 7);
        assert_eq!(entry.size, HEADER_LEN + TIMED_LEN + 7);
        assert_eq!(entry.uncompressed_len, Some(16));
        assert_eq!(entry.digest_hex(), "ab".repeat(32));
    }

    #[test]
    fn signatures_are_judged_by_the_configured_keys() {
        let signer = Signer::new(KEY, None).unwrap();
        let signed = sealed(Some(&signer), false);
        let unsigned = sealed(None, false);
        let cases = [
            (&signed, Some(KEY), Signature::Verified),
            (&signed, Some(OTHER), Signature::Invalid),
            (&signed, None, Signature::NotVerified),
            (&unsigned, Some(KEY), Signature::Missing),
            (&unsigned, None, Signature::Unsigned),
        ];
        for (bytes, key, expected) in cases {
            assert_eq!(
                Entry::read(bytes, &config(key)).unwrap().signature,
                expected
            );
        }
        let problems = Entry::read(&unsigned, &config(Some(KEY)))
            .unwrap()
            .problems("k");
        assert_eq!(problems, [EntryProblem::Unsigned]);
    }

    #[test]
    fn damage_is_reported_not_refused() {
        let mut bytes = sealed(None, false);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let entry = Entry::read(&bytes, &config(None)).unwrap();
        assert_eq!(entry.checksum, Checksum::Mismatch);
        assert_eq!(
            entry.problems("meridian:v1:natal:abababab"),
            [EntryProblem::ChecksumMismatch]
        );
        assert_eq!(
            entry.problems("meridian:v1:natal:abababac"),
            [EntryProblem::ChecksumMismatch, EntryProblem::DigestMismatch]
        );
        assert_eq!(entry.matches_key("meridian:v1:natal:lock"), None);
    }

    #[test]
    fn bytes_that_are_no_envelope_are_refused() {
        let config = config(None);
        assert_eq!(
            Entry::read(b"hello", &config),
            Err(EnvelopeError::TooShort(5))
        );
        assert_eq!(
            Entry::read(&[b'x'; 80], &config),
            Err(EnvelopeError::BadMagic)
        );
        let good = sealed(None, false);
        assert!(matches!(
            Entry::read(&good[..good.len() - 1], &config),
            Err(EnvelopeError::LengthMismatch { .. })
        ));
    }
}
