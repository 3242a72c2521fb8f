//! The key's text: `namespace:version:domain:[segment:]…hash`, inline
//! when short, so building a key does not allocate.

use super::{MAX_SEGMENT_LEN, is_label_char};

/// Bytes of key text kept inline; longer keys (long namespaces or
/// segments) go to the heap.
const INLINE: usize = 94;

/// The key's text, inline when short (almost always), so a call builds its
/// key without allocating.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) enum KeyText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl KeyText {
    /// `namespace:version:domain:` + each segment (sanitized) + `:` + `hash_len` hex digits.
    pub(super) fn render<'a>(
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

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyText::Heap(text) => text.as_bytes(),
        }
    }

    pub(super) fn as_str(&self) -> &str {
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
