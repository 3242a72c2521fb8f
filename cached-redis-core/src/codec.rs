//! How cached values become bytes.
//!
//! Two formats, chosen per stored type by its serde shape (see `schema`):
//! postcard, compact and fast, for every type that says what it expects;
//! MessagePack for the types that ask the format what comes next
//! (`deserialize_any`: internally tagged and untagged enums,
//! `#[serde(flatten)]`, `serde_json::Value`), which postcard writes but
//! can never read back. The envelope names the format, so bytes written
//! in one are never handed to the other.

use serde::{Serialize, de::DeserializeOwned};

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CodecError {
    /// postcard rejected the value or the bytes.
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
    /// MessagePack could not write the value.
    #[error("MessagePack: {0}")]
    MessagePackEncode(#[from] rmp_serde::encode::Error),
    /// MessagePack could not read the bytes as the type.
    #[error("MessagePack: {0}")]
    MessagePackDecode(#[from] rmp_serde::decode::Error),
    /// The bytes decoded, but some were left over: they were not written for this type.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

/// A serialization format for cached values.
///
/// Each codec has an [`ID`](Codec::ID) that is written into the envelope, so
/// bytes written by one codec are never handed to another.
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

/// [MessagePack](https://docs.rs/rmp-serde), self-describing: structs as
/// maps with their field names, so `flatten` and `deserialize_any` work.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MessagePack;

impl Codec for MessagePack {
    const ID: u8 = 2;

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        Ok(rmp_serde::to_vec_named(value)?)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        let mut rest = bytes;
        let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest))?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(CodecError::TrailingBytes(rest.len()))
        }
    }
}

/// The codec a stored type uses, chosen once per type (see `schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Postcard,
    MessagePack,
}

impl Format {
    /// The envelope's codec byte.
    pub(crate) fn id(self) -> u8 {
        match self {
            Format::Postcard => Postcard::ID,
            Format::MessagePack => MessagePack::ID,
        }
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Format::Postcard => Postcard::encode(value),
            Format::MessagePack => MessagePack::encode(value),
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Format::Postcard => Postcard::decode(bytes),
            Format::MessagePack => MessagePack::decode(bytes),
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
    fn message_pack_reads_back_what_needs_a_self_describing_format() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        enum Tagged {
            Circle { r: f64 },
            Square { side: u32 },
        }
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Outer {
            name: String,
            #[serde(flatten)]
            shape: Tagged,
        }
        let value = Outer {
            name: "a".into(),
            shape: Tagged::Square { side: 3 },
        };
        let bytes = MessagePack::encode(&value).unwrap();
        assert_eq!(MessagePack::decode::<Outer>(&bytes).unwrap(), value);
        // postcard cannot even write it (a map of unknown length).
        let postcard = Postcard::encode(&value).and_then(|bytes| Postcard::decode::<Outer>(&bytes));
        assert!(postcard.is_err());
        let mut longer = bytes.clone();
        longer.push(0xc0);
        assert!(matches!(
            MessagePack::decode::<Outer>(&longer),
            Err(CodecError::TrailingBytes(1))
        ));
        assert!(MessagePack::decode::<Outer>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn message_pack_lengths_beyond_the_input_reserve_nothing() {
        // Headers claiming 4 Gi elements or bytes, and nothing after them:
        // an error at the end of the input, not an allocation of that size.
        let array = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(MessagePack::decode::<Vec<u64>>(&array).is_err());
        let text = [0xdb, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert!(MessagePack::decode::<String>(&text).is_err());
        let map = [0xdf, 0xff, 0xff, 0xff, 0xff];
        assert!(MessagePack::decode::<std::collections::HashMap<String, u8>>(&map).is_err());
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let bytes = Postcard::encode(&"a longer string").unwrap();
        assert!(Postcard::decode::<String>(&bytes[..4]).is_err());
    }
}
