//! A fingerprint of a type's serde shape, hashed into every key.
//!
//! postcard is not self-describing: bytes written for an old shape of a type
//! can decode "successfully" into a new one. Putting the shape into the key
//! means a deploy that changes the cached type reads fresh keys instead.
//!
//! The shape is found by driving `T::deserialize` with a deserializer that
//! records what `T` asks for — struct and field names, enum and variant
//! names, scalar kinds, element types — and feeds back placeholder values.
//! One pass cannot see everything, so the trace runs in rounds:
//!
//! * round `r` follows variant `r mod n` of every enum of `n` variants, until
//!   every variant of every enum has been followed once;
//! * a field whose type refuses the placeholders (a `Uuid` parsed from a
//!   string, a validated newtype) is recorded with its type name and moved
//!   to the end of its struct in the next round, so the fields after it are
//!   traced too.
//!
//! Limits, all deterministic: recursion stops at [`MAX_DEPTH`], at most
//! [`MAX_ROUNDS`] rounds run, and a type that asks for `deserialize_any`
//! (internally tagged or untagged enums, `#[serde(flatten)]`, `serde_json::
//! Value`) is recorded as such — postcard cannot decode it, so the runtime
//! stores it as MessagePack (see [`Schema::format`]).

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{LazyLock, OnceLock, RwLock};

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use sha2::{Digest, Sha256};

use crate::codec::Format;

const MAX_DEPTH: u32 = 16;
const MAX_ROUNDS: usize = 64;
const CONTEXT: &[u8] = b"cached-redis/schema/2\0";

/// What the runtime needs to know about a stored type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schema {
    /// SHA-256 of the type's name and traced shape.
    pub fingerprint: [u8; 32],
    /// The codec: MessagePack when the type needs a self-describing format
    /// (postcard would write it but never read it back), else postcard.
    pub format: Format,
}

/// Computed once per type; keyed by type name because a `DeserializeOwned`
/// type need not be `'static` (no `TypeId`).
static SCHEMAS: LazyLock<RwLock<HashMap<&'static str, Schema>>> = LazyLock::new(Default::default);

/// The SHA-256 fingerprint of `T`'s name and serde shape.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct V1 { a: u32 }
/// #[derive(serde::Deserialize)]
/// struct V2 { a: u32, b: u32 }
/// use cached_redis_core::advanced::schema_fingerprint;
/// assert_ne!(schema_fingerprint::<V1>(), schema_fingerprint::<V2>());
/// ```
pub fn schema_fingerprint<T: DeserializeOwned>() -> [u8; 32] {
    schema::<T>().fingerprint
}

/// One call site's schema, so a call does not look its type up in the
/// process-wide map. Keyed by type name: a generic site instantiated with
/// another type than the first falls back to the map.
pub(crate) struct SchemaSlot(OnceLock<(&'static str, Schema)>);

impl SchemaSlot {
    pub(crate) const fn new() -> SchemaSlot {
        SchemaSlot(OnceLock::new())
    }

    pub(crate) fn get<T: DeserializeOwned>(&self) -> Schema {
        let name = std::any::type_name::<T>();
        // The same type's name is normally the same static string: compare
        // the pointers first, the text only when they differ.
        if let Some((cached, schema)) = self.0.get()
            && (std::ptr::eq(*cached, name) || *cached == name)
        {
            return *schema;
        }
        let schema = schema::<T>();
        let _ = self.0.set((name, schema));
        schema
    }
}

pub(crate) fn schema<T: DeserializeOwned>() -> Schema {
    let name = std::any::type_name::<T>();
    if let Some(schema) = SCHEMAS.read().ok().and_then(|map| map.get(name).copied()) {
        return schema;
    }
    let (shape, decodable) = trace::<T>();
    let format = match decodable {
        true => Format::Postcard,
        false => Format::MessagePack,
    };
    let mut hasher = Sha256::new();
    hasher.update(CONTEXT);
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(shape.as_bytes());
    let schema = Schema {
        fingerprint: hasher.finalize().into(),
        format,
    };
    if let Ok(mut map) = SCHEMAS.write() {
        map.insert(name, schema);
    }
    schema
}

/// The recorded shape of `T` over all rounds, and whether postcard can decode it.
pub(crate) fn trace<T: DeserializeOwned>() -> (String, bool) {
    let mut state = State::default();
    let mut shape = String::new();
    for round in 0..MAX_ROUNDS {
        state.round = round;
        state.new_failure = false;
        state.out.clear();
        // A user `Deserialize` may panic on our placeholders; the prefix it
        // left is still deterministic, which is all the fingerprint needs.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            T::deserialize(Tracer {
                state: &mut state,
                depth: 0,
            })
        }));
        shape.push_str(&state.out);
        shape.push('\n');
        let all_variants_seen = round + 1 >= state.most_variants;
        if outcome.is_err() || (!state.new_failure && all_variants_seen) {
            break;
        }
    }
    (shape, !state.saw_any)
}

#[derive(Default)]
struct State {
    out: String,
    round: usize,
    most_variants: usize,
    /// `Struct.field` paths whose value refused the placeholders.
    failed: HashSet<String>,
    new_failure: bool,
    saw_any: bool,
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
    state: &'a mut State,
    depth: u32,
}

impl Tracer<'_> {
    fn nested(&mut self) -> Result<Tracer<'_>, Stop> {
        if self.depth >= MAX_DEPTH {
            self.state.out.push('…');
            return Err(Stop);
        }
        Ok(Tracer {
            state: self.state,
            depth: self.depth + 1,
        })
    }

    fn same_depth(&mut self) -> Tracer<'_> {
        Tracer {
            state: self.state,
            depth: self.depth,
        }
    }

    fn mark(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.state.out.write_fmt(args);
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
        self.state.out.push(close);
        Ok(value)
    }

    /// Feeds `visitor` traced entries, then closes the braces.
    fn entries<'de, V: Visitor<'de>>(mut self, keys: Keys, visitor: V) -> Result<V::Value, Stop> {
        let value = visitor.visit_map(Entries {
            tracer: self.nested()?,
            keys,
            current: None,
        })?;
        self.state.out.push('}');
        Ok(value)
    }
}

macro_rules! scalar {
    ($($method:ident => $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
            self.state.out.push_str(concat!(stringify!($visit), ";"));
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
        self.state.out.push_str("any;");
        self.state.saw_any = true;
        Err(Stop)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        self.state.out.push_str("option<");
        let value = visitor.visit_some(self.nested()?)?;
        self.state.out.push('>');
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.state.out.push_str("unit;");
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
        self.state.out.push(')');
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.state.out.push_str("seq[");
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
        self.state.out.push_str("map{");
        self.entries(Keys::One { given: false }, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.mark(format_args!("struct {name}{{"));
        // Fields that refused the placeholders in an earlier round go last,
        // so the ones after them are traced this round.
        let (mut order, failed): (Vec<_>, Vec<_>) = fields
            .iter()
            .copied()
            .partition(|field| !self.state.failed.contains(&format!("{name}.{field}")));
        order.extend(failed);
        self.entries(
            Keys::Fields {
                name,
                order,
                next: 0,
            },
            visitor,
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.state.most_variants = self.state.most_variants.max(variants.len());
        let Some(chosen) = variants
            .get(self.state.round % variants.len().max(1))
            .copied()
        else {
            self.mark(format_args!("enum {name}[]"));
            return Err(Stop);
        };
        self.mark(format_args!("enum {name}{variants:?}::{chosen}("));
        let value = visitor.visit_enum(Variant {
            tracer: self.nested()?,
            name: chosen,
        })?;
        self.state.out.push(')');
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
        seed.deserialize(self.tracer.same_depth()).map(Some)
    }
}

enum Keys {
    /// A map: one traced key/value pair.
    One { given: bool },
    /// A struct: its field names, in the order to feed them.
    Fields {
        name: &'static str,
        order: Vec<&'static str>,
        next: usize,
    },
}

struct Entries<'a> {
    tracer: Tracer<'a>,
    keys: Keys,
    /// The struct field whose value comes next, as `Struct.field`.
    current: Option<String>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match &mut self.keys {
            Keys::One { given: true } => Ok(None),
            Keys::One { given } => {
                *given = true;
                self.tracer.state.out.push_str("key:");
                seed.deserialize(self.tracer.same_depth()).map(Some)
            }
            Keys::Fields { name, order, next } => {
                let Some(field) = order.get(*next).copied() else {
                    return Ok(None);
                };
                *next += 1;
                self.current = Some(format!("{name}.{field}"));
                self.tracer.mark(format_args!("{field}:"));
                seed.deserialize(field.into_deserializer()).map(Some)
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
        let value = seed.deserialize(self.tracer.same_depth());
        if value.is_err()
            && let Some(path) = self.current.take()
        {
            // The type name of what refused keeps the fingerprint sensitive
            // to a change of that field's type.
            self.tracer
                .mark(format_args!("!{};", std::any::type_name::<S::Value>()));
            if self.tracer.state.failed.insert(path) {
                self.tracer.state.new_failure = true;
            }
        }
        value
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

    /// Refuses every placeholder, like a `Uuid` parsed from text.
    #[allow(dead_code)]
    struct Strict;

    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let _ = String::deserialize(d)?;
            Err(de::Error::custom("not a valid id"))
        }
    }

    mod v1 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Pos {
            pub id: super::Strict,
            pub lat: f64,
            pub lon: u32,
        }

        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub enum Body {
            Sun,
            Moon { lat: f64, lon: u32 },
        }
    }

    mod v2 {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Pos {
            pub id: super::Strict,
            pub lon: u32,
            pub lat: f64,
        }

        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub enum Body {
            Sun,
            Moon { lon: u32, lat: f64 },
        }
    }

    #[derive(Deserialize)]
    #[serde(tag = "kind")]
    #[allow(dead_code)]
    enum Tagged {
        A { x: u32 },
    }

    #[test]
    fn every_variant_is_followed() {
        let (shape, decodable) = trace::<Chart>();
        assert!(decodable);
        assert!(
            shape.contains("::Sun(struct {longitude:visit_f64;})"),
            "{shape}"
        );
        assert!(shape.contains("::Moon(visit_f64;)"), "{shape}");
    }

    #[test]
    fn fields_after_a_refusing_field_are_traced() {
        let (shape, _) = trace::<v1::Pos>();
        assert!(shape.contains("lat:visit_f64;lon:visit_u32;"), "{shape}");
        assert!(shape.contains("Strict"), "{shape}");
        // Same names, same struct name, fields reordered behind the refusing one.
        assert_ne!(trace::<v1::Pos>().0, trace::<v2::Pos>().0);
    }

    #[test]
    fn changes_inside_later_variants_are_seen() {
        assert_ne!(trace::<v1::Body>().0, trace::<v2::Body>().0);
    }

    #[test]
    fn recursive_types_terminate() {
        assert!(trace::<Node>().0.contains('…'));
        assert_eq!(schema_fingerprint::<Node>(), schema_fingerprint::<Node>());
    }

    #[test]
    fn self_describing_types_are_stored_as_message_pack() {
        assert_eq!(schema::<Tagged>().format, Format::MessagePack);
        assert_eq!(schema::<Chart>().format, Format::Postcard);
    }

    #[test]
    fn shape_changes_change_the_fingerprint() {
        assert_ne!(schema_fingerprint::<u32>(), schema_fingerprint::<u64>());
        assert_ne!(
            schema_fingerprint::<Vec<u8>>(),
            schema_fingerprint::<Option<u8>>()
        );
    }
}
