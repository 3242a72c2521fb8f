//! Tamper detection: with `CACHE_HMAC_KEY` set, every envelope written
//! carries an HMAC-SHA256 of its header and body, and an entry read from
//! Redis is used only if that HMAC verifies under the key or under
//! `CACHE_HMAC_KEY_PREVIOUS` (so a key can be rotated without a cold
//! cache). Whoever can write to Redis but lacks the key cannot make the
//! cache return a value of their choosing.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// The shortest key accepted.
pub(crate) const MIN_KEY_LEN: usize = 16;

/// The keys an envelope is signed and checked with.
#[derive(Clone)]
pub(crate) struct Signer {
    current: Hmac<Sha256>,
    previous: Option<Hmac<Sha256>>,
}

impl Signer {
    /// `None` when a key is shorter than [`MIN_KEY_LEN`] (configuration
    /// checks that first).
    pub(crate) fn new(current: &[u8], previous: Option<&[u8]>) -> Option<Signer> {
        let keyed = |key: &[u8]| {
            (key.len() >= MIN_KEY_LEN)
                .then(|| Hmac::<Sha256>::new_from_slice(key).ok())
                .flatten()
        };
        Some(Signer {
            current: keyed(current)?,
            previous: match previous {
                Some(key) => Some(keyed(key)?),
                None => None,
            },
        })
    }

    /// The tag of `parts`, one after the other, under the current key.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut mac = self.current.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is that of `parts` under either key (compared in
    /// constant time).
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .any(|key| {
                let mut mac = key.clone();
                for part in parts {
                    mac.update(part);
                }
                mac.verify_slice(tag).is_ok()
            })
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &[u8] = b"0123456789abcdef-first";
    const K2: &[u8] = b"0123456789abcdef-second";

    #[test]
    fn a_tag_verifies_under_its_key_or_as_the_previous_one() {
        let old = Signer::new(K1, None).unwrap();
        let new = Signer::new(K2, None).unwrap();
        let rotating = Signer::new(K2, Some(K1)).unwrap();
        let tag = old.sign(&[b"header", b"body"]);
        assert!(old.verify(&[b"header", b"body"], &tag));
        assert!(!new.verify(&[b"header", b"body"], &tag));
        assert!(rotating.verify(&[b"header", b"body"], &tag));
        assert!(!old.verify(&[b"header", b"bodY"], &tag));
        assert!(!old.verify(&[b"header", b"body"], &tag[..31]));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Signer::new(b"short", None).is_none());
        assert!(Signer::new(K1, Some(b"short")).is_none());
    }
}
