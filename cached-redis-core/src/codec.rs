//! How cached values become bytes.

use serde::{Serialize, de::DeserializeOwned};

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CodecError {
    /// postcard rejected the value or the bytes.
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
    /// The bytes decoded, but some were left over: they were not written for this type.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

/// A serialization format for cached values.
///
/// Each codec has an [`ID`](Codec::ID) that is written into the envelope, so
/// bytes written by one codec are never handed to another. One exists
/// today; the trait keeps the envelope's codec byte honest for the next.
pub(crate) trait Codec {
    /// Identifies the format in the envelope header; never reuse a value.
    const ID: u8;

    /// Serializes `value`.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError>;

    /// Deserializes a whole `T` from `bytes`; leftover bytes are an error.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// [postcard](https://docs.rs/postcard): compact, deterministic, maintained.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Postcard;

impl Codec for Postcard {
    const ID: u8 = 1;

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        Ok(postcard::to_allocvec(value)?)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        let (value, rest) = postcard::take_from_bytes(bytes)?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(CodecError::TrailingBytes(rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Postcard::encode(&7_u32).unwrap();
        bytes.push(0);
        assert!(matches!(
            Postcard::decode::<u32>(&bytes),
            Err(CodecError::TrailingBytes(1))
        ));
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let bytes = Postcard::encode(&"a longer string").unwrap();
        assert!(Postcard::decode::<String>(&bytes[..4]).is_err());
    }
}
