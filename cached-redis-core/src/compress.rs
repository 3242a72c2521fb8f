//! LZ4 compression of large values (`CACHE_COMPRESS_MIN_BYTES`).
//!
//! LZ4 rather than zstd: a compressed entry is decompressed on every Redis
//! hit, and LZ4 does that 1.3–1.6× faster than zstd's fastest level on
//! 90–220 KB values (far faster on small ones, where zstd's setup
//! dominates), for 0.6–0.7× the size saving zstd gives
//! (`docs/performance.md`, `ONLY=compression`); it is also pure Rust
//! (`lz4_flex`, its safe decoder), so no C toolchain is needed. A compressed body is the
//! uncompressed length (LE u32) followed by one LZ4 block.

/// Why a stored body does not decompress.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecompressError {
    /// It claims more bytes than LZ4 can expand its block to: not ours.
    #[error("claims {claimed} bytes from a {block}-byte block")]
    Implausible { claimed: usize, block: usize },
    /// The block is damaged.
    #[error("lz4: {0}")]
    Lz4(#[from] lz4_flex::block::DecompressError),
    /// The block holds another length than its prefix says.
    #[error("{found} bytes where {claimed} were claimed")]
    LengthMismatch { claimed: usize, found: usize },
}

/// LZ4 expands a block at most this much (a 255-byte run per token byte).
const MAX_RATIO: usize = 255;

/// `body` compressed, if that makes it smaller.
pub(crate) fn compress(body: &[u8]) -> Option<Vec<u8>> {
    Some(lz4_flex::compress_prepend_size(body)).filter(|packed| packed.len() < body.len())
}

/// The body a compressed one holds. Its claimed length is checked against
/// what the block could expand to before anything is reserved, so a
/// forged length cannot make it reserve gigabytes.
pub(crate) fn decompress(stored: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let (claimed, block) = lz4_flex::block::uncompressed_size(stored)?;
    if claimed > block.len().saturating_mul(MAX_RATIO).saturating_add(16) {
        return Err(DecompressError::Implausible {
            claimed,
            block: block.len(),
        });
    }
    let mut body = vec![0; claimed];
    let found = lz4_flex::block::decompress_into(block, &mut body)?;
    if found != claimed {
        return Err(DecompressError::LengthMismatch { claimed, found });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_only_when_smaller() {
        let text = b"natal natal natal natal natal natal natal natal natal natal".repeat(20);
        let packed = compress(&text).expect("repetitive text shrinks");
        assert!(packed.len() < text.len() / 5, "{}", packed.len());
        assert_eq!(decompress(&packed).unwrap(), text);
        // Random-looking bytes do not shrink: stored as they are.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..2048)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert_eq!(compress(&noise), None);
    }

    #[test]
    fn a_forged_length_reserves_nothing() {
        let mut forged = compress(&[7; 4096]).unwrap();
        forged[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decompress(&forged),
            Err(DecompressError::Implausible { .. })
        ));
        let mut short = compress(&[7; 4096]).unwrap();
        short[..4].copy_from_slice(&5000_u32.to_le_bytes());
        assert!(decompress(&short).is_err());
        assert!(decompress(&[1, 0]).is_err());
        // A cut block (LZ4 has no checksum of its own: the envelope's CRC
        // catches changed bytes before this is reached).
        let packed = compress(&b"abcabcabcabc".repeat(100)).unwrap();
        assert!(decompress(&packed[..packed.len() - 2]).is_err());
    }
}
