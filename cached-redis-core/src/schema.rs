//! A fingerprint of a type's serde shape, hashed into every key.
//!
//! postcard is not self-describing: bytes written for an old shape of a type
//! can decode "successfully" into a new one. Putting the shape into the key
//! means a deploy that changes the cached type reads fresh keys instead.
//!
//! The shape is found by driving `T::deserialize` with a deserializer that
//! records what `T` asks for (struct and field names, enum variants, scalar
//! kinds, element types) and feeds back placeholder values. Limits, all
//! deterministic: only the first variant of an enum is followed into its
//! fields, recursion stops at [`MAX_DEPTH`], and types that need a
//! self-describing format (`deserialize_any`) contribute their name only.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{LazyLock, RwLock};

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use sha2::{Digest, Sha256};

const MAX_DEPTH: u32 = 16;
const CONTEXT: &[u8] = b"cached-redis/schema/1\0";

/// Fingerprints are computed once per type; keyed by type name because a
/// `DeserializeOwned` type need not be `'static` (no `TypeId`).
static FINGERPRINTS: LazyLock<RwLock<HashMap<&'static str, [u8; 32]>>> =
    LazyLock::new(Default::default);

/// The SHA-256 fingerprint of `T`'s name and serde shape.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct V1 { a: u32 }
/// #[derive(serde::Deserialize)]
/// struct V2 { a: u32, b: u32 }
/// use cached_redis_core::schema_fingerprint;
/// assert_ne!(schema_fingerprint::<V1>(), schema_fingerprint::<V2>());
/// ```
pub fn schema_fingerprint<T: DeserializeOwned>() -> [u8; 32] {
    let name = std::any::type_name::<T>();
    let cached = FINGERPRINTS
        .read()
        .ok()
        .and_then(|map| map.get(name).copied());
    if let Some(fingerprint) = cached {
        return fingerprint;
    }
    let mut hasher = Sha256::new();
    hasher.update(CONTEXT);
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(trace::<T>().as_bytes());
    let fingerprint: [u8; 32] = hasher.finalize().into();
    if let Ok(mut map) = FINGERPRINTS.write() {
        map.insert(name, fingerprint);
    }
    fingerprint
}

/// The recorded shape of `T` (exposed to tests and to `docs/design.md`'s examples).
pub(crate) fn trace<T: DeserializeOwned>() -> String {
    let mut out = String::new();
    // A type that refuses our placeholders still leaves a deterministic
    // prefix of its shape in `out`, which is all the fingerprint needs.
    let _ = T::deserialize(Tracer {
        out: &mut out,
        depth: 0,
    });
    out
}

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shape trace stopped")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop
    }
}

struct Tracer<'a> {
    out: &'a mut String,
    depth: u32,
}

impl<'a> Tracer<'a> {
    fn nested(&mut self) -> Result<Tracer<'_>, Stop> {
        if self.depth >= MAX_DEPTH {
            self.out.push('…');
            return Err(Stop);
        }
        Ok(Tracer {
            out: self.out,
            depth: self.depth + 1,
        })
    }

    fn mark(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.out.write_fmt(args);
    }

    /// Feeds `visitor` `left` traced elements, then closes with `close`.
    fn elements<'de, V: Visitor<'de>>(
        mut self,
        left: usize,
        close: char,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let value = visitor.visit_seq(Elements {
            tracer: self.nested()?,
            left,
        })?;
        self.out.push(close);
        Ok(value)
    }

    /// Feeds `visitor` traced entries with `keys`, then closes the braces.
    fn entries<'de, V: Visitor<'de>>(
        mut self,
        keys: MapKeys,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let value = visitor.visit_map(Entries {
            tracer: self.nested()?,
            keys,
        })?;
        self.out.push('}');
        Ok(value)
    }
}

macro_rules! scalar {
    ($($method:ident => $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
            self.out.push_str(concat!(stringify!($visit), ";"));
            visitor.$visit($value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = Stop;

    scalar! {
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_i8(1);
        deserialize_i16 => visit_i16(1);
        deserialize_i32 => visit_i32(1);
        deserialize_i64 => visit_i64(1);
        deserialize_i128 => visit_i128(1);
        deserialize_u8 => visit_u8(1);
        deserialize_u16 => visit_u16(1);
        deserialize_u32 => visit_u32(1);
        deserialize_u64 => visit_u64(1);
        deserialize_u128 => visit_u128(1);
        deserialize_f32 => visit_f32(1.0);
        deserialize_f64 => visit_f64(1.0);
        deserialize_char => visit_char('a');
        deserialize_str => visit_str("");
        deserialize_string => visit_string(String::new());
        deserialize_bytes => visit_bytes(&[]);
        deserialize_byte_buf => visit_byte_buf(Vec::new());
        deserialize_identifier => visit_str("");
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.out.push_str("any;");
        Err(Stop)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("option<");
        let value = visitor.visit_some(self.nested()?)?;
        self.out.push('>');
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("unit;");
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.mark(format_args!("unit {name};"));
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.mark(format_args!("newtype {name}("));
        let value = visitor.visit_newtype_struct(self.nested()?)?;
        self.out.push(')');
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("seq[");
        self.elements(1, ']', visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.mark(format_args!("tuple{len}("));
        self.elements(len, ')', visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.mark(format_args!("tuple struct {name}{len}("));
        self.elements(len, ')', visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.out.push_str("map{");
        self.entries(MapKeys::One(false), visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.mark(format_args!("struct {name}{{"));
        self.entries(MapKeys::Fields(fields), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.mark(format_args!("enum {name}{variants:?}("));
        let first = variants.first().copied().ok_or(Stop)?;
        let value = visitor.visit_enum(Variant {
            tracer: self.nested()?,
            name: first,
        })?;
        self.out.push(')');
        Ok(value)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

struct Elements<'a> {
    tracer: Tracer<'a>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = Stop;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let depth = self.tracer.depth;
        seed.deserialize(Tracer {
            out: self.tracer.out,
            depth,
        })
        .map(Some)
    }
}

enum MapKeys {
    /// A map: one traced key/value pair; the flag says whether it was given.
    One(bool),
    /// A struct: its field names, in order.
    Fields(&'static [&'static str]),
}

struct Entries<'a> {
    tracer: Tracer<'a>,
    keys: MapKeys,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        let depth = self.tracer.depth;
        match &mut self.keys {
            MapKeys::One(true) => Ok(None),
            MapKeys::One(given) => {
                *given = true;
                self.tracer.out.push_str("key:");
                seed.deserialize(Tracer {
                    out: self.tracer.out,
                    depth,
                })
                .map(Some)
            }
            MapKeys::Fields([]) => Ok(None),
            MapKeys::Fields([field, rest @ ..]) => {
                let field = *field;
                self.keys = MapKeys::Fields(rest);
                self.tracer.mark(format_args!("{field}:"));
                seed.deserialize(field.into_deserializer()).map(Some)
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
        let depth = self.tracer.depth;
        seed.deserialize(Tracer {
            out: self.tracer.out,
            depth,
        })
    }
}

struct Variant<'a> {
    tracer: Tracer<'a>,
    name: &'static str,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = Stop;
    type Variant = Tracer<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Tracer<'a>), Stop> {
        let tag = seed.deserialize(self.name.into_deserializer())?;
        Ok((tag, self.tracer))
    }
}

impl<'de> de::VariantAccess<'de> for Tracer<'_> {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Stop> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Chart {
        planets: Vec<Planet>,
        house_system: Option<String>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Planet {
        Sun { longitude: f64 },
        Moon(f64),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Node {
        children: Vec<Node>,
    }

    mod renamed {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Chart {
            pub planets: Vec<u8>,
        }
    }

    #[test]
    fn trace_records_the_nested_shape() {
        let shape = trace::<Chart>();
        assert_eq!(
            shape,
            "struct Chart{planets:seq[enum Planet[\"Sun\", \"Moon\"](struct {longitude:visit_f64;})]\
             house_system:option<visit_string;>}"
        );
    }

    #[test]
    fn recursive_types_terminate() {
        assert!(trace::<Node>().ends_with('…'));
        assert_eq!(schema_fingerprint::<Node>(), schema_fingerprint::<Node>());
    }

    #[test]
    fn shape_changes_change_the_fingerprint() {
        assert_ne!(
            schema_fingerprint::<Chart>(),
            schema_fingerprint::<renamed::Chart>()
        );
        assert_ne!(schema_fingerprint::<u32>(), schema_fingerprint::<u64>());
        assert_ne!(
            schema_fingerprint::<Vec<u8>>(),
            schema_fingerprint::<Option<u8>>()
        );
    }
}
