//! The canonical encoding of key arguments.
//!
//! Keys need more than a compact encoding: equal arguments must always give
//! the same bytes, and arguments that differ in a way the function can see
//! must not. postcard (the payload codec) falls short on both counts: it
//! writes a `HashMap` in iteration order, which changes from one map to the
//! next, and it leaves out names, so reordering two `f64` fields of an
//! argument struct — or passing `true` where `1u8` was — gives the same
//! bytes. This encoder is a small serde `Serializer` that
//!
//! * tags every value with its kind (so `1u8`, `1u16` and `true` differ),
//! * writes struct, field, enum and variant names,
//! * sorts map entries by their encoded key, and
//! * is prefix-free: every value is tagged and length-delimited, so a
//!   sequence of values can be concatenated without ambiguity.
//!
//! Byte layout: see `docs/design.md` ("Canonical key arguments").

use std::fmt;

use serde::ser::{self, Serialize};

/// Kind tags; each value starts with one.
mod tag {
    pub const UNIT: u8 = 0x00;
    pub const BOOL: u8 = 0x01;
    pub const I8: u8 = 0x02;
    pub const I16: u8 = 0x03;
    pub const I32: u8 = 0x04;
    pub const I64: u8 = 0x05;
    pub const I128: u8 = 0x06;
    pub const U8: u8 = 0x07;
    pub const U16: u8 = 0x08;
    pub const U32: u8 = 0x09;
    pub const U64: u8 = 0x0a;
    pub const U128: u8 = 0x0b;
    pub const F32: u8 = 0x0c;
    pub const F64: u8 = 0x0d;
    pub const CHAR: u8 = 0x0e;
    pub const STR: u8 = 0x0f;
    pub const BYTES: u8 = 0x10;
    pub const NONE: u8 = 0x11;
    pub const SOME: u8 = 0x12;
    pub const UNIT_STRUCT: u8 = 0x13;
    pub const UNIT_VARIANT: u8 = 0x14;
    pub const NEWTYPE_STRUCT: u8 = 0x15;
    pub const NEWTYPE_VARIANT: u8 = 0x16;
    pub const SEQ: u8 = 0x17;
    pub const TUPLE: u8 = 0x18;
    pub const TUPLE_STRUCT: u8 = 0x19;
    pub const TUPLE_VARIANT: u8 = 0x1a;
    pub const MAP: u8 = 0x1b;
    pub const STRUCT: u8 = 0x1c;
    pub const STRUCT_VARIANT: u8 = 0x1d;
    /// Ends a sequence (whose length serde may not know in advance).
    pub const END: u8 = 0x1e;
    /// A struct field left out by `#[serde(skip_serializing_if)]`.
    pub const SKIPPED: u8 = 0x1f;
}

/// Appends the canonical encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    value.serialize(&mut Encoder { out })
}

/// A key argument's `Serialize` implementation refused to serialize it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<M: fmt::Display>(message: M) -> Self {
        Error(message.to_string())
    }
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    fn tag(&mut self, tag: u8) {
        self.out.push(tag);
    }

    fn len(&mut self, len: usize) {
        self.out.extend_from_slice(&(len as u64).to_le_bytes());
    }

    fn text(&mut self, text: &[u8]) {
        self.len(text.len());
        self.out.extend_from_slice(text);
    }

    fn variant(&mut self, tag: u8, name: &str, index: u32, variant: &str) {
        self.tag(tag);
        self.text(name.as_bytes());
        self.out.extend_from_slice(&index.to_le_bytes());
        self.text(variant.as_bytes());
    }
}

macro_rules! fixed {
    ($($method:ident($ty:ty) => $tag:expr;)*) => {$(
        fn $method(self, value: $ty) -> Result<(), Error> {
            self.tag($tag);
            self.out.extend_from_slice(&value.to_le_bytes());
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapEncoder<'a, 'b>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fixed! {
        serialize_i8(i8) => tag::I8;
        serialize_i16(i16) => tag::I16;
        serialize_i32(i32) => tag::I32;
        serialize_i64(i64) => tag::I64;
        serialize_i128(i128) => tag::I128;
        serialize_u8(u8) => tag::U8;
        serialize_u16(u16) => tag::U16;
        serialize_u32(u32) => tag::U32;
        serialize_u64(u64) => tag::U64;
        serialize_u128(u128) => tag::U128;
    }

    fn serialize_bool(self, value: bool) -> Result<(), Error> {
        self.tag(tag::BOOL);
        self.out.push(u8::from(value));
        Ok(())
    }

    fn serialize_f32(self, value: f32) -> Result<(), Error> {
        self.tag(tag::F32);
        self.out.extend_from_slice(&value.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, value: f64) -> Result<(), Error> {
        self.tag(tag::F64);
        self.out.extend_from_slice(&value.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), Error> {
        self.tag(tag::CHAR);
        self.out.extend_from_slice(&u32::from(value).to_le_bytes());
        Ok(())
    }

    fn serialize_str(self, value: &str) -> Result<(), Error> {
        self.tag(tag::STR);
        self.text(value.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), Error> {
        self.tag(tag::BYTES);
        self.text(value);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.tag(tag::NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.tag(tag::SOME);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.tag(tag::UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        self.tag(tag::UNIT_STRUCT);
        self.text(name.as_bytes());
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(tag::UNIT_VARIANT, name, index, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.tag(tag::NEWTYPE_STRUCT);
        self.text(name.as_bytes());
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(tag::NEWTYPE_VARIANT, name, index, variant);
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Error> {
        self.tag(tag::SEQ);
        Ok(self)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self, Error> {
        self.tag(tag::TUPLE);
        self.len(len);
        Ok(self)
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self, Error> {
        self.tag(tag::TUPLE_STRUCT);
        self.text(name.as_bytes());
        self.len(len);
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Error> {
        self.variant(tag::TUPLE_VARIANT, name, index, variant);
        self.len(len);
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<MapEncoder<'a, 'b>, Error> {
        Ok(MapEncoder {
            encoder: self,
            entries: Vec::new(),
            key: None,
        })
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self, Error> {
        self.tag(tag::STRUCT);
        self.text(name.as_bytes());
        self.len(len);
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Error> {
        self.variant(tag::STRUCT_VARIANT, name, index, variant);
        self.len(len);
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeSeq for &mut Encoder<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        self.tag(tag::END);
        Ok(())
    }
}

macro_rules! fields_in_order {
    ($($trait:ident :: $method:ident;)*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}

fields_in_order! {
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

macro_rules! named_fields {
    ($($trait:ident;)*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
                self.text(key.as_bytes());
                value.serialize(&mut **self)
            }
            fn skip_field(&mut self, key: &'static str) -> Result<(), Error> {
                self.text(key.as_bytes());
                self.tag(tag::SKIPPED);
                Ok(())
            }
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}

named_fields! {
    SerializeStruct;
    SerializeStructVariant;
}

/// Buffers a map's entries so they can be written sorted by encoded key.
pub(crate) struct MapEncoder<'a, 'b> {
    encoder: &'a mut Encoder<'b>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    key: Option<Vec<u8>>,
}

impl ser::SerializeMap for MapEncoder<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        let mut bytes = Vec::new();
        encode_into(key, &mut bytes)?;
        self.key = Some(bytes);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error("a map value without a key".into()))?;
        let mut bytes = Vec::new();
        encode_into(value, &mut bytes)?;
        self.entries.push((key, bytes));
        Ok(())
    }

    fn end(mut self) -> Result<(), Error> {
        self.entries.sort_unstable();
        self.encoder.tag(tag::MAP);
        self.encoder.len(self.entries.len());
        for (key, value) in &self.entries {
            self.encoder.out.extend_from_slice(key);
            self.encoder.out.extend_from_slice(value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;

    use super::*;

    fn bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(value, &mut out).unwrap();
        out
    }

    #[test]
    fn equal_values_encode_equally_whatever_the_map_order() {
        let a: HashMap<String, u32> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let b: HashMap<String, u32> = (0..50).rev().map(|i| (format!("k{i}"), i)).collect();
        assert_eq!(bytes(&a), bytes(&b));
        let sorted: BTreeMap<String, u32> = a.clone().into_iter().collect();
        assert_eq!(bytes(&a), bytes(&sorted), "a map is a map");
    }

    #[test]
    fn kinds_are_tagged() {
        let values = [
            bytes(&1_u8),
            bytes(&1_u16),
            bytes(&true),
            bytes(&1_i8),
            bytes(&'\u{1}'),
            bytes(&Some(1_u8)),
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(
            bytes(&0.0_f64),
            bytes(&-0.0_f64),
            "distinct bits, distinct keys (a miss, never a wrong value)"
        );
    }

    #[test]
    fn names_are_part_of_the_encoding() {
        #[derive(Serialize)]
        struct LatLon {
            lat: f64,
            lon: f64,
        }
        #[derive(Serialize)]
        #[serde(rename = "LatLon")]
        struct LonLat {
            lon: f64,
            lat: f64,
        }
        assert_ne!(
            bytes(&LatLon { lat: 1.0, lon: 2.0 }),
            bytes(&LonLat { lon: 1.0, lat: 2.0 })
        );
    }

    #[test]
    fn concatenation_is_unambiguous() {
        let mut ab_c = bytes("ab");
        ab_c.extend(bytes("c"));
        let mut a_bc = bytes("a");
        a_bc.extend(bytes("bc"));
        assert_ne!(ab_c, a_bc);
        let nested = bytes(&(vec![vec![1_u8], vec![]], vec![2_u8]));
        let shifted = bytes(&(vec![vec![1_u8]], vec![vec![2_u8]]));
        assert_ne!(nested, shifted);
    }

    #[test]
    fn unknown_length_sequences_work() {
        struct Counting(u8);
        impl Serialize for Counting {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..self.0).filter(|i| i % 2 == 0))
            }
        }
        assert_eq!(bytes(&Counting(5)), bytes(&vec![0_u8, 2, 4]));
    }
}
