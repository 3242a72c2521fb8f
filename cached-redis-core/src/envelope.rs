//! The bytes stored under a key: a fixed header, then the encoded value.
//!
//! ```text
//! offset size field
//!  0      4   magic  b"CRDS"
//!  4      1   envelope version (1)
//!  5      1   codec id (1 = postcard)
//!  6      2   flags (LE u16): bit 0 set = signed, bit 1 set = timed,
//!             bit 2 set = compressed (the body is LZ4, see `compress`);
//!             other bits must be 0
//!  8     32   SHA-256 digest of the key input
//! 40      8   created at, Unix milliseconds (LE u64)
//! 48      8   TTL in milliseconds (LE u64)
//! 56      4   body length (LE u32)
//! 60      4   CRC-32 (IEEE) of bytes 0..60 and all that follows them (LE u32)
//! 64      4   timed only: how long the value took to compute, ms (LE u32)
//! then   32   signed only: HMAC-SHA256 of bytes 0..60, the compute time
//!             if timed, and the body
//! then    n   body
//! ```
//!
//! The compute time is written only for functions with `early_refresh`
//! (it is what XFetch weighs); a reader older than the timed flag refuses
//! such an entry as damaged.
//!
//! Every field is checked on read; anything that does not validate is a
//! miss, never a value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::signing::{Signer, TAG_LEN};

/// First four bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"CRDS";
/// The layout version this crate writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// The flag of an envelope that carries an HMAC after its header.
pub const FLAG_SIGNED: u16 = 1;
/// The flag of an envelope that carries its value's compute time.
pub const FLAG_TIMED: u16 = 2;
/// The flag of an envelope whose body is compressed.
pub const FLAG_COMPRESSED: u16 = 4;
/// Size of the compute time of a timed envelope.
pub(crate) const TIMED_LEN: usize = 4;

/// Why stored bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Fewer bytes than a header.
    #[error("{0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    /// Not written by cached-redis.
    #[error("bad magic bytes")]
    BadMagic,
    /// Written by an incompatible version of cached-redis.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// Written with another codec.
    #[error("codec {found} where {expected} was expected")]
    CodecMismatch {
        /// The codec this reader uses.
        expected: u8,
        /// The codec named in the header.
        found: u8,
    },
    /// Reserved flag bits were set.
    #[error("unknown flags {0:#06x}")]
    UnknownFlags(u16),
    /// The value belongs to another key input (a truncated-hash collision or a misplaced write).
    #[error("the entry belongs to a different key")]
    DigestMismatch,
    /// The header's body length disagrees with the bytes present.
    #[error("body length {declared} but {actual} bytes follow the header")]
    LengthMismatch {
        /// Length written in the header.
        declared: usize,
        /// Bytes actually present.
        actual: usize,
    },
    /// The checksum does not match: the bytes were damaged.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// An HMAC key is configured and the entry carries no HMAC.
    #[error("the entry is not signed")]
    Unsigned,
    /// The entry's HMAC verifies under none of the configured keys.
    #[error("the entry's HMAC does not verify")]
    BadSignature,
}

impl EnvelopeError {
    /// Whether this is a failed signature check (rather than damage).
    pub(crate) fn is_signature(&self) -> bool {
        matches!(self, EnvelopeError::Unsigned | EnvelopeError::BadSignature)
    }
}

/// A validated envelope, borrowing the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// When the value was computed, Unix milliseconds.
    pub created_at_ms: u64,
    /// The TTL the value was stored with.
    pub ttl: Duration,
    /// How long the value took to compute, when it was stored with it
    /// (whole milliseconds).
    pub compute: Option<Duration>,
    /// Whether the body is compressed (LZ4, its length prepended).
    pub compressed: bool,
    /// The encoded value.
    pub body: &'a [u8],
}

/// Wraps an encoded value for storage under the key whose digest is given.
///
/// ```
/// use std::time::Duration;
/// use cached_redis_core::advanced::envelope::{open, seal};
///
/// let digest = [9; 32];
/// let bytes = seal(&digest, 1, Duration::from_secs(60), b"value");
/// let envelope = open(&bytes, &digest, 1)?;
/// assert_eq!(envelope.body, b"value");
/// assert!(open(&bytes, &[0; 32], 1).is_err());
/// # Ok::<(), cached_redis_core::advanced::envelope::EnvelopeError>(())
/// ```
pub fn seal(digest: &[u8; 32], codec: u8, ttl: Duration, body: &[u8]) -> Vec<u8> {
    seal_at(digest, codec, ttl, body, Extras::default(), now_ms())
}

/// What an envelope may carry besides its header and body.
#[derive(Clone, Copy, Default)]
pub(crate) struct Extras<'s> {
    /// Signs it with the signer's current key.
    pub(crate) signer: Option<&'s Signer>,
    /// Records how long the value took to compute.
    pub(crate) compute: Option<Duration>,
    /// Marks the body as compressed.
    pub(crate) compressed: bool,
}

impl Extras<'_> {
    fn flags(self) -> u16 {
        let flag = |set: bool, flag: u16| if set { flag } else { 0 };
        flag(self.signer.is_some(), FLAG_SIGNED)
            | flag(self.compute.is_some(), FLAG_TIMED)
            | flag(self.compressed, FLAG_COMPRESSED)
    }

    /// Bytes between the header and the body.
    fn len(self) -> usize {
        self.signer.map_or(0, |_| TAG_LEN) + self.compute.map_or(0, |_| TIMED_LEN)
    }
}

/// [`seal`] with `extras`, stamped now.
pub(crate) fn seal_with(
    digest: &[u8; 32],
    codec: u8,
    ttl: Duration,
    body: &[u8],
    extras: Extras<'_>,
) -> Vec<u8> {
    seal_at(digest, codec, ttl, body, extras, now_ms())
}

/// The sealed size of a body of `body_len` bytes.
pub(crate) fn sealed_len(body_len: usize, extras: Extras<'_>) -> usize {
    HEADER_LEN + extras.len() + body_len
}

/// The clock envelopes are stamped with: Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What tells two entries of one key apart without opening them: creation
/// time and checksum, read from a header (zeros where bytes are missing).
pub(crate) fn stamp(bytes: &[u8]) -> (u64, u32) {
    match bytes.first_chunk::<HEADER_LEN>() {
        Some(header) => (u64_at(header, 40), u32_at(header, 60)),
        None => (0, 0),
    }
}

pub(crate) fn seal_at(
    digest: &[u8; 32],
    codec: u8,
    ttl: Duration,
    body: &[u8],
    extras: Extras<'_>,
    created_at_ms: u64,
) -> Vec<u8> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    // Bodies over 4 GiB cannot be stored in Redis (512 MB limit) anyway;
    // saturating keeps this infallible and makes such an entry fail validation.
    let body_len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let flags = extras.flags();
    let mut bytes = Vec::with_capacity(sealed_len(body.len(), extras));
    bytes.extend_from_slice(&MAGIC);
    bytes.push(ENVELOPE_VERSION);
    bytes.push(codec);
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(digest);
    bytes.extend_from_slice(&created_at_ms.to_le_bytes());
    bytes.extend_from_slice(&ttl_ms.to_le_bytes());
    bytes.extend_from_slice(&body_len.to_le_bytes());
    let timed = extras.compute.map(|took| {
        u32::try_from(took.as_millis())
            .unwrap_or(u32::MAX)
            .to_le_bytes()
    });
    let timed: &[u8] = timed.as_ref().map_or(&[], |timed| &timed[..]);
    let tag = extras
        .signer
        .map(|signer| signer.sign(&[&bytes, timed, body]));
    let tag: &[u8] = tag.as_ref().map_or(&[], |tag| &tag[..]);
    let crc = checksum(&bytes, &[timed, tag, body]);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(timed);
    bytes.extend_from_slice(tag);
    bytes.extend_from_slice(body);
    bytes
}

/// Validates `bytes` as an envelope for `digest` written with `codec`.
/// A signed entry is accepted without checking its HMAC (there is no key
/// here to check it with).
pub fn open<'a>(
    bytes: &'a [u8],
    digest: &[u8; 32],
    codec: u8,
) -> Result<Envelope<'a>, EnvelopeError> {
    open_checked(bytes, Some(digest), codec, Check::Stored(None))
}

/// [`open`] for bytes read from Redis: with a `signer`, only an entry
/// whose HMAC verifies is accepted.
pub(crate) fn open_stored<'a>(
    bytes: &'a [u8],
    digest: &[u8; 32],
    codec: u8,
    signer: Option<&Signer>,
) -> Result<Envelope<'a>, EnvelopeError> {
    open_checked(bytes, Some(digest), codec, Check::Stored(signer))
}

/// What to check besides the format and the digest.
#[derive(Clone, Copy)]
enum Check<'s> {
    /// Bytes from outside: the checksum, and the HMAC if a signer is given.
    Stored(Option<&'s Signer>),
    /// Bytes this process sealed or validated: nothing more.
    Own,
}

/// [`open`] for bytes this process sealed, or read and validated, itself
/// (the memory cache, a write in flight, a flight's landing): everything
/// but the checksum and HMAC, which cannot have changed in memory. The digest is
/// still compared — two inputs whose short hashes collide share a key.
pub(crate) fn open_own<'a>(
    bytes: &'a [u8],
    digest: &[u8; 32],
    codec: u8,
) -> Result<Envelope<'a>, EnvelopeError> {
    open_checked(bytes, Some(digest), codec, Check::Own)
}

/// [`open_own`] for bytes the memory cache holds under a call's exact key
/// input: they were validated against that input's digest when stored, so
/// there is no digest to compare.
pub(crate) fn open_held(bytes: &[u8], codec: u8) -> Result<Envelope<'_>, EnvelopeError> {
    open_checked(bytes, None, codec, Check::Own)
}

/// An envelope cut into its parts, its framing checked — magic, version,
/// flags, lengths — and nothing else: what every reader starts from.
pub(crate) struct Sections<'a> {
    pub(crate) header: &'a [u8; HEADER_LEN],
    pub(crate) flags: u16,
    /// The compute time, when timed (`TIMED_LEN` bytes), else empty.
    pub(crate) timed: &'a [u8],
    /// The HMAC, when signed, else empty.
    pub(crate) tag: &'a [u8],
    pub(crate) body: &'a [u8],
    /// Everything after the header: what the checksum covers.
    pub(crate) rest: &'a [u8],
}

#[inline]
pub(crate) fn sections(bytes: &[u8]) -> Result<Sections<'_>, EnvelopeError> {
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(EnvelopeError::TooShort(bytes.len()));
    };
    if header[0..4] != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    if header[4] != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(header[4]));
    }
    let flags = u16::from_le_bytes([header[6], header[7]]);
    if flags & !(FLAG_SIGNED | FLAG_TIMED | FLAG_COMPRESSED) != 0 {
        return Err(EnvelopeError::UnknownFlags(flags));
    }
    let timed_len = if flags & FLAG_TIMED != 0 {
        TIMED_LEN
    } else {
        0
    };
    let tag_len = if flags & FLAG_SIGNED != 0 { TAG_LEN } else { 0 };
    let declared = u32_at(header, 56) as usize;
    let Some(((timed, tag), body)) = rest
        .split_at_checked(timed_len + tag_len)
        .map(|(extras, body)| (extras.split_at(timed_len), body))
        .filter(|(_, body)| body.len() == declared)
    else {
        return Err(EnvelopeError::LengthMismatch {
            declared,
            actual: rest.len().saturating_sub(timed_len + tag_len),
        });
    };
    Ok(Sections {
        header,
        flags,
        timed,
        tag,
        body,
        rest,
    })
}

impl Sections<'_> {
    /// Whether the checksum matches the bytes.
    pub(crate) fn checksum_matches(&self) -> bool {
        checksum(&self.header[..60], &[self.rest]) == u32_at(self.header, 60)
    }

    /// Whether `signer` made the HMAC (`false` when unsigned).
    pub(crate) fn signed_by(&self, signer: &Signer) -> bool {
        !self.tag.is_empty()
            && signer.verify(&[&self.header[..60], self.timed, self.body], self.tag)
    }

    /// The compute time, when timed.
    pub(crate) fn compute(&self) -> Option<Duration> {
        <[u8; TIMED_LEN]>::try_from(self.timed)
            .ok()
            .map(|ms| Duration::from_millis(u64::from(u32::from_le_bytes(ms))))
    }
}

fn open_checked<'a>(
    bytes: &'a [u8],
    digest: Option<&[u8; 32]>,
    codec: u8,
    check: Check<'_>,
) -> Result<Envelope<'a>, EnvelopeError> {
    let sections = sections(bytes)?;
    let header = sections.header;
    if header[5] != codec {
        return Err(EnvelopeError::CodecMismatch {
            expected: codec,
            found: header[5],
        });
    }
    if let Check::Stored(_) = check
        && !sections.checksum_matches()
    {
        return Err(EnvelopeError::ChecksumMismatch);
    }
    // Checked after the checksum so a damaged digest reads as damage.
    if digest.is_some_and(|digest| header[8..40] != digest[..]) {
        return Err(EnvelopeError::DigestMismatch);
    }
    if let Check::Stored(Some(signer)) = check {
        if sections.tag.is_empty() {
            return Err(EnvelopeError::Unsigned);
        }
        if !sections.signed_by(signer) {
            return Err(EnvelopeError::BadSignature);
        }
    }
    Ok(Envelope {
        created_at_ms: u64_at(header, 40),
        ttl: Duration::from_millis(u64_at(header, 48)),
        compute: sections.compute(),
        compressed: sections.flags & FLAG_COMPRESSED != 0,
        body: sections.body,
    })
}

fn checksum(head: &[u8], rest: &[&[u8]]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    for part in rest {
        crc.update(part);
    }
    crc.finalize()
}

fn u32_at(header: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
}

pub(crate) fn u64_at(header: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut field = [0; 8];
    field.copy_from_slice(&header[at..at + 8]);
    u64::from_le_bytes(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: [u8; 32] = [0xab; 32];
    const TTL: Duration = Duration::from_secs(90);

    fn sealed() -> Vec<u8> {
        seal_at(
            &DIGEST,
            1,
            TTL,
            b"body bytes",
            Extras::default(),
            1_700_000_000_000,
        )
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let bytes = sealed();
        assert_eq!(bytes.len(), HEADER_LEN + 10);
        let envelope = open(&bytes, &DIGEST, 1).unwrap();
        assert_eq!(
            envelope,
            Envelope {
                created_at_ms: 1_700_000_000_000,
                ttl: TTL,
                compute: None,
                compressed: false,
                body: b"body bytes"
            }
        );
    }

    #[test]
    fn the_compute_time_is_kept_and_checksummed() {
        let timed = |compute| Extras {
            compute: Some(compute),
            ..Extras::default()
        };
        let bytes = seal_at(
            &DIGEST,
            1,
            TTL,
            b"body",
            timed(Duration::from_millis(1234)),
            7,
        );
        assert_eq!(bytes.len(), HEADER_LEN + TIMED_LEN + 4);
        let envelope = open(&bytes, &DIGEST, 1).unwrap();
        assert_eq!(envelope.compute, Some(Duration::from_millis(1234)));
        assert_eq!(envelope.body, b"body");
        let mut changed = bytes.clone();
        changed[HEADER_LEN] ^= 1;
        assert_eq!(
            open(&changed, &DIGEST, 1),
            Err(EnvelopeError::ChecksumMismatch)
        );
        // Beyond 49 days it saturates rather than wraps.
        let long = seal_at(&DIGEST, 1, TTL, b"", timed(Duration::MAX), 7);
        let compute = open(&long, &DIGEST, 1).unwrap().compute;
        assert_eq!(compute, Some(Duration::from_millis(u64::from(u32::MAX))));
    }

    #[test]
    fn empty_body_round_trips() {
        let bytes = seal(&DIGEST, 1, TTL, b"");
        assert_eq!(open(&bytes, &DIGEST, 1).unwrap().body, b"");
    }

    #[test]
    fn every_rejection() {
        let good = sealed();
        let with = |at: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[at] = value;
            bytes
        };
        let cases: Vec<(Vec<u8>, EnvelopeError)> = vec![
            (Vec::new(), EnvelopeError::TooShort(0)),
            (
                good[..HEADER_LEN - 1].to_vec(),
                EnvelopeError::TooShort(HEADER_LEN - 1),
            ),
            (with(0, b'X'), EnvelopeError::BadMagic),
            (with(4, 2), EnvelopeError::UnsupportedVersion(2)),
            (
                with(5, 9),
                EnvelopeError::CodecMismatch {
                    expected: 1,
                    found: 9,
                },
            ),
            (with(7, 1), EnvelopeError::UnknownFlags(0x0100)),
            (
                good[..good.len() - 1].to_vec(),
                EnvelopeError::LengthMismatch {
                    declared: 10,
                    actual: 9,
                },
            ),
            (
                [good.as_slice(), b"!"].concat(),
                EnvelopeError::LengthMismatch {
                    declared: 10,
                    actual: 11,
                },
            ),
            (with(HEADER_LEN, b'B'), EnvelopeError::ChecksumMismatch),
            (with(8, 0), EnvelopeError::ChecksumMismatch),
            (with(45, 0xff), EnvelopeError::ChecksumMismatch),
            (
                seal(&[0xcd; 32], 1, TTL, b"body bytes"),
                EnvelopeError::DigestMismatch,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                open(&bytes, &DIGEST, 1),
                Err(expected.clone()),
                "{expected}"
            );
        }
    }

    #[test]
    fn own_bytes_skip_only_the_checksum() {
        let mut damaged = sealed();
        damaged[HEADER_LEN] ^= 1;
        assert_eq!(open_own(&damaged, &DIGEST, 1).unwrap().body, b"cody bytes");
        assert_eq!(
            open(&damaged, &DIGEST, 1),
            Err(EnvelopeError::ChecksumMismatch)
        );
        assert_eq!(
            open_own(&sealed(), &[0xcd; 32], 1),
            Err(EnvelopeError::DigestMismatch),
            "another key's entry is still refused"
        );
        assert_eq!(
            open_own(&sealed()[..HEADER_LEN], &DIGEST, 1),
            Err(EnvelopeError::LengthMismatch {
                declared: 10,
                actual: 0
            })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            assert!(open(&bytes, &DIGEST, 1).is_err());
        }
    }
}
