//! The key encoder (the canonical serde `Serializer` behind
//! `KeyBuilder::part`) on arbitrary values of every serde shape.
//!
//! Checked on every input:
//!
//! * nothing panics, and `build` either refuses the labels or gives a key
//!   of the documented shape (`ns:version:domain:[segment:]…hex`);
//! * determinism: building twice, or from a clone, gives the same key;
//! * map order does not matter: every map in the value serialized with its
//!   entries in another order, and a `HashMap` filled in two different
//!   orders, give the same key;
//! * distinct values give distinct keys: two generated values whose keys
//!   are equal must be equal (floats by bits, maps as multisets), otherwise
//!   the encoding is ambiguous.
#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::{Arbitrary, Unstructured};
use cached_redis_core::{CacheKey, KeyBuilder};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// A value of any serde shape.
#[derive(Arbitrary, Serialize, Debug, Clone)]
enum Node {
    Unit,
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    I128(i128),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    U128(u128),
    F32(Float32),
    F64(Float64),
    Char(char),
    Str(String),
    Bytes(Bytes),
    Opt(Option<Box<Node>>),
    Seq(Seq),
    Tuple((Box<Node>, u8, String)),
    Pair(Box<Node>, Box<Node>),
    Fields {
        first: Box<Node>,
        second: Option<Float64>,
    },
    Record(Record),
    Skippy(Skippy),
    UnitStruct(Marker),
    Newtype(Wrapper),
    TupleStruct(Triple),
    Map(Map),
    Unitish(()),
}

/// An `f64` that is NaN (any payload), ±0, ±inf or subnormal more often
/// than chance.
#[derive(Serialize, Debug, Clone, Copy)]
#[serde(transparent)]
struct Float64(f64);

/// An `f32`, likewise.
#[derive(Serialize, Debug, Clone, Copy)]
#[serde(transparent)]
struct Float32(f32);

impl<'a> Arbitrary<'a> for Float64 {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let bits = u64::arbitrary(u)?;
        Ok(Float64(f64::from_bits(match u8::arbitrary(u)? % 8 {
            // NaN: all exponent bits set, a nonzero mantissa.
            0 => bits | 0x7ff0_0000_0000_0000 | 1,
            // ±0, ±inf.
            1 => bits & 0x8000_0000_0000_0000,
            2 => (bits & 0x8000_0000_0000_0000) | 0x7ff0_0000_0000_0000,
            // Subnormal.
            3 => bits & 0x800f_ffff_ffff_ffff,
            _ => bits,
        })))
    }
}

impl<'a> Arbitrary<'a> for Float32 {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let bits = u32::arbitrary(u)?;
        Ok(Float32(f32::from_bits(match u8::arbitrary(u)? % 8 {
            0 => bits | 0x7f80_0000 | 1,
            1 => bits & 0x8000_0000,
            2 => (bits & 0x8000_0000) | 0x7f80_0000,
            3 => bits & 0x807f_ffff,
            _ => bits,
        })))
    }
}

impl Float64 {
    fn same(self, other: Float64) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

/// `serialize_bytes`, not a sequence of `u8`.
#[derive(Arbitrary, Debug, Clone)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// A sequence, with its length given to the serializer or not.
#[derive(Arbitrary, Debug, Clone)]
struct Seq {
    items: Vec<Node>,
    hide_len: bool,
}

impl Serialize for Seq {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.hide_len {
            // A filter hides the length from `collect_seq`.
            s.collect_seq(self.items.iter().filter(|_| true))
        } else {
            s.collect_seq(&self.items)
        }
    }
}

#[derive(Arbitrary, Serialize, Debug, Clone)]
struct Record {
    name: String,
    weights: [Float64; 3],
    child: Option<Box<Node>>,
    flags: Vec<bool>,
}

#[derive(Arbitrary, Serialize, Debug, Clone)]
struct Skippy {
    #[serde(skip_serializing_if = "Option::is_none")]
    maybe: Option<Box<Node>>,
    always: u8,
}

#[derive(Arbitrary, Serialize, Debug, Clone)]
struct Marker;

#[derive(Arbitrary, Serialize, Debug, Clone)]
struct Wrapper(Box<Node>);

#[derive(Arbitrary, Serialize, Debug, Clone)]
struct Triple(i16, Box<Node>, char);

/// A map serialized with its entries in the order held (duplicates kept),
/// the way a `HashMap` hands them over in whatever order it iterates.
#[derive(Arbitrary, Debug, Clone)]
struct Map(Vec<(Node, Node)>);

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Node {
    /// The same value with every map's entries in another order.
    fn reordered(&self, turn: usize) -> Node {
        let r = |node: &Node| node.reordered(turn);
        let rb = |node: &Node| Box::new(node.reordered(turn));
        match self {
            Node::Opt(inner) => Node::Opt(inner.as_deref().map(rb)),
            Node::Seq(seq) => Node::Seq(Seq {
                items: seq.items.iter().map(r).collect(),
                hide_len: !seq.hide_len,
            }),
            Node::Tuple((a, b, c)) => Node::Tuple((rb(a), *b, c.clone())),
            Node::Pair(a, b) => Node::Pair(rb(a), rb(b)),
            Node::Fields { first, second } => Node::Fields {
                first: rb(first),
                second: *second,
            },
            Node::Record(record) => Node::Record(Record {
                child: record.child.as_deref().map(rb),
                ..record.clone()
            }),
            Node::Skippy(skippy) => Node::Skippy(Skippy {
                maybe: skippy.maybe.as_deref().map(rb),
                always: skippy.always,
            }),
            Node::Newtype(Wrapper(inner)) => Node::Newtype(Wrapper(rb(inner))),
            Node::TupleStruct(Triple(a, b, c)) => Node::TupleStruct(Triple(*a, rb(b), *c)),
            Node::Map(Map(entries)) => {
                let mut entries: Vec<(Node, Node)> =
                    entries.iter().map(|(k, v)| (r(k), r(v))).collect();
                entries.reverse();
                if !entries.is_empty() {
                    let by = turn % entries.len();
                    entries.rotate_left(by);
                }
                Node::Map(Map(entries))
            }
            other => other.clone(),
        }
    }
}

/// Equal as the key sees values: floats by bits, sequences whatever their
/// announced length, maps as multisets of entries.
fn same(a: &Node, b: &Node) -> bool {
    use Node::*;
    let sb = |a: &Node, b: &Node| same(a, b);
    let so = |a: &Option<Box<Node>>, b: &Option<Box<Node>>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same(a, b),
        _ => false,
    };
    match (a, b) {
        (Unit, Unit) => true,
        (Bool(a), Bool(b)) => a == b,
        (I8(a), I8(b)) => a == b,
        (I16(a), I16(b)) => a == b,
        (I32(a), I32(b)) => a == b,
        (I64(a), I64(b)) => a == b,
        (I128(a), I128(b)) => a == b,
        (U8(a), U8(b)) => a == b,
        (U16(a), U16(b)) => a == b,
        (U32(a), U32(b)) => a == b,
        (U64(a), U64(b)) => a == b,
        (U128(a), U128(b)) => a == b,
        (F32(a), F32(b)) => a.0.to_bits() == b.0.to_bits(),
        (F64(a), F64(b)) => a.same(*b),
        (Char(a), Char(b)) => a == b,
        (Str(a), Str(b)) => a == b,
        (Bytes(a), Bytes(b)) => a.0 == b.0,
        (Opt(a), Opt(b)) => so(a, b),
        (Seq(a), Seq(b)) => {
            a.items.len() == b.items.len() && a.items.iter().zip(&b.items).all(|(a, b)| same(a, b))
        }
        (Tuple((a0, a1, a2)), Tuple((b0, b1, b2))) => sb(a0, b0) && a1 == b1 && a2 == b2,
        (Pair(a0, a1), Pair(b0, b1)) => sb(a0, b0) && sb(a1, b1),
        (
            Fields {
                first: a0,
                second: a1,
            },
            Fields {
                first: b0,
                second: b1,
            },
        ) => {
            sb(a0, b0)
                && match (a1, b1) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.same(*b),
                    _ => false,
                }
        }
        (Record(a), Record(b)) => {
            a.name == b.name
                && a.weights.iter().zip(&b.weights).all(|(a, b)| a.same(*b))
                && so(&a.child, &b.child)
                && a.flags == b.flags
        }
        (Skippy(a), Skippy(b)) => so(&a.maybe, &b.maybe) && a.always == b.always,
        (UnitStruct(_), UnitStruct(_)) => true,
        (Newtype(a), Newtype(b)) => sb(&a.0, &b.0),
        (TupleStruct(a), TupleStruct(b)) => a.0 == b.0 && sb(&a.1, &b.1) && a.2 == b.2,
        (Map(a), Map(b)) => same_multiset(&a.0, &b.0),
        (Unitish(()), Unitish(())) => true,
        _ => false,
    }
}

fn same_multiset(a: &[(Node, Node)], b: &[(Node, Node)]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|(ak, av)| {
        let found = b
            .iter()
            .enumerate()
            .position(|(i, (bk, bv))| !used[i] && same(ak, bk) && same(av, bv));
        found.map(|i| used[i] = true).is_some()
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    value: Node,
    other: Node,
    /// Filled into a `HashMap` forwards and backwards.
    entries: Vec<(String, Node)>,
    segments: Vec<String>,
    function: String,
    /// Tried as is, then mapped into 8..=64 for the other checks.
    hash_len: u8,
    /// Namespace, version and domain to try besides the fixed ones.
    labels: Option<(String, String, String)>,
    turn: u8,
}

/// The parts of one key: a top-level argument and a `HashMap` argument.
#[derive(Serialize)]
struct Args<'a> {
    value: &'a Node,
    map: &'a HashMap<String, &'a Node>,
}

/// A valid hash length (8..=64) from the input.
fn hash_len(input: &Input) -> usize {
    8 + usize::from(input.hash_len) % 57
}

fn builder(
    input: &Input,
    labels: Option<[&str; 3]>,
    value: &Node,
    map: &HashMap<String, &Node>,
) -> KeyBuilder {
    let mut builder = match labels {
        Some([namespace, version, domain]) => KeyBuilder::new(domain)
            .namespace(namespace)
            .version(version),
        None => KeyBuilder::new("d"),
    }
    .function(input.function.clone())
    .hash_len(hash_len(input));
    for segment in &input.segments {
        builder.push_segment(segment);
    }
    builder
        .part(&Args { value, map })
        .expect("every value of these types serializes")
}

fn check_shape(key: &CacheKey, input: &Input, labels: [&str; 3]) {
    let text = key.as_str();
    assert!(text.is_ascii(), "{text:?}");
    let prefix = format!("{}:{}:{}:", labels[0], labels[1], labels[2]);
    assert!(text.starts_with(&prefix), "{text:?} lacks {prefix:?}");
    let pieces: Vec<&str> = text[prefix.len()..].split(':').collect();
    assert_eq!(pieces.len(), input.segments.len() + 1, "{text:?}");
    for (shown, segment) in pieces.iter().zip(&input.segments) {
        assert!(!shown.is_empty() && shown.len() <= 64, "{shown:?}");
        assert!(
            shown
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "segment {segment:?} shown as {shown:?}"
        );
    }
    let hash = key.hash();
    assert_eq!(Some(&hash), pieces.last());
    assert_eq!(hash.len(), hash_len(input));
    let hex: String = key.digest().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, &hex[..hash.len()]);
}

fuzz_target!(|input: Input| {
    // A HashMap argument, filled in two orders (first occurrence of a key wins).
    let mut seen = HashSet::new();
    let entries: Vec<(&String, &Node)> = input
        .entries
        .iter()
        .filter(|(k, _)| seen.insert(k))
        .map(|(k, v)| (k, v))
        .collect();
    let forward: HashMap<String, &Node> = entries.iter().map(|&(k, v)| (k.clone(), v)).collect();
    let backward: HashMap<String, &Node> =
        entries.iter().rev().map(|&(k, v)| (k.clone(), v)).collect();

    // Any hash length is refused or honoured, never a panic.
    let odd_len = KeyBuilder::new("d").hash_len(usize::from(input.hash_len));
    assert_eq!(
        odd_len.build().is_ok(),
        (8..=64).contains(&input.hash_len),
        "hash_len {}",
        input.hash_len
    );

    let first = builder(&input, None, &input.value, &forward);
    let key = first.build().expect("valid labels and hash length");
    check_shape(&key, &input, ["meridian", "v1", "d"]);

    // Determinism: again, from a clone, and from a builder made anew.
    assert_eq!(first.build().unwrap(), key);
    assert_eq!(first.clone().build().unwrap(), key);
    let anew = builder(&input, None, &input.value, &forward);
    assert_eq!(anew.build().unwrap(), key);

    // Map order: every nested map reordered, the HashMap filled backwards.
    let reordered = input.value.reordered(usize::from(input.turn));
    let other_order = builder(&input, None, &reordered, &backward);
    assert_eq!(
        other_order.build().unwrap(),
        key,
        "map order changed the key"
    );

    // Distinct values, distinct keys (and equal values, equal keys).
    let other = builder(&input, None, &input.other, &forward);
    assert_eq!(
        other.build().unwrap() == key,
        same(&input.value, &input.other),
        "{:?} vs {:?}",
        input.value,
        input.other
    );

    // Arbitrary labels: refused, or a key of the right shape.
    if let Some((namespace, version, domain)) = &input.labels {
        let labels = [namespace.as_str(), version.as_str(), domain.as_str()];
        let labelled = builder(&input, Some(labels), &input.value, &forward);
        if let Ok(key) = labelled.build() {
            check_shape(&key, &input, labels);
        }
    }
});
