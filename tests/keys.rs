//! Which calls share a key, and which never do.

use std::collections::HashMap;
use std::fmt::Debug;

use cached_redis::{Config, Runtime, redis_cached};
use serde::Serialize;

fn rt() -> Runtime {
    Runtime::new(Config::default())
}

#[redis_cached(domain = "describe", runtime = rt, skip(rt))]
fn describe<T: Serialize + Debug>(value: T, rt: &Runtime) -> String {
    format!("{value:?}")
}

#[test]
fn one_generic_function_never_mixes_its_instantiations() {
    let rt = rt();
    assert_eq!(describe(1_u8, &rt), "1");
    assert_eq!(describe(true, &rt), "true");
    assert_eq!(describe(1_u64, &rt), "1");
    assert_eq!(describe("a", &rt), "\"a\"");
    assert_eq!(describe('a', &rt), "'a'");
    assert_eq!(describe(vec![97_u8], &rt), "[97]");
    assert_eq!(rt.stats().total.computes, 6);
    assert_eq!(describe(true, &rt), "true");
    assert_eq!(rt.stats().total.memory_hits, 1);
}

struct Wrapper<T>(std::marker::PhantomData<T>);

impl<T> Wrapper<T> {
    #[redis_cached(domain = "wrapper", runtime = rt, skip(rt))]
    fn name(n: u8, rt: &Runtime) -> String {
        format!("{}:{n}", std::any::type_name::<Self>())
    }
}

trait Shape {
    const SIDES: u32;

    #[redis_cached(domain = "shape", runtime = rt, skip(rt))]
    fn sides_times(n: u32, rt: &Runtime) -> u32 {
        Self::SIDES * n
    }
}

struct Triangle;
struct Square;

impl Shape for Triangle {
    const SIDES: u32 = 3;
}

impl Shape for Square {
    const SIDES: u32 = 4;
}

#[test]
fn the_implementing_type_is_part_of_the_key() {
    let rt = rt();
    assert!(Wrapper::<u8>::name(1, &rt).ends_with("Wrapper<u8>:1"));
    assert!(Wrapper::<String>::name(1, &rt).ends_with("Wrapper<alloc::string::String>:1"));
    assert_eq!(Triangle::sides_times(2, &rt), 6);
    assert_eq!(Square::sides_times(2, &rt), 8);
}

#[redis_cached(domain = "lookup", cache_none = true, runtime = rt, skip(rt, fail))]
fn maybe(id: u32, fail: bool, rt: &Runtime) -> Result<Option<u32>, String> {
    if fail {
        Err("database down".into())
    } else {
        Ok((id > 0).then_some(id))
    }
}

#[test]
fn cache_none_never_caches_an_err() {
    let rt = rt();
    assert_eq!(maybe(0, true, &rt), Err("database down".into()));
    assert_eq!(maybe(0, false, &rt), Ok(None), "the Err was not stored");
    assert_eq!(maybe(0, true, &rt), Ok(None), "Ok(None) was stored");
}

#[redis_cached(domain = "totals", runtime = rt, skip(rt))]
fn total(weights: HashMap<String, u32>, rt: &Runtime) -> u32 {
    weights.values().sum()
}

#[test]
fn equal_maps_share_a_key_whatever_their_order() {
    let rt = rt();
    for _ in 0..20 {
        let weights: HashMap<String, u32> = (0..30).map(|i| (format!("planet-{i}"), i)).collect();
        assert_eq!(total(weights, &rt), 435);
    }
    assert_eq!(rt.stats().total.computes, 1);
}

#[redis_cached(domain = "route", runtime = rt, skip(rt))]
fn leg(from: f64, to: f64, rt: &Runtime) -> f64 {
    to - from
}

#[test]
fn different_arguments_never_share_a_value() {
    let rt = rt();
    assert_eq!(leg(1.0, 2.0, &rt), 1.0);
    assert_eq!(leg(2.0, 1.0, &rt), -1.0);
    assert_eq!(leg(1.0, 2.0, &rt), 1.0);
    assert_eq!(rt.stats().total.computes, 2);
}

#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind")]
enum Tagged {
    Planet { name: String },
}

#[redis_cached(domain = "tagged", runtime = rt, skip(rt))]
fn tagged(name: &str, rt: &Runtime) -> Tagged {
    Tagged::Planet {
        name: name.to_owned(),
    }
}

#[test]
fn types_postcard_cannot_read_back_are_cached_as_message_pack() {
    // An internally tagged enum needs a self-describing format: stored as
    // MessagePack (tests/codecs.rs covers the other shapes, over Redis).
    let rt = rt();
    for _ in 0..3 {
        assert_eq!(
            tagged("moon", &rt),
            Tagged::Planet {
                name: "moon".into()
            }
        );
    }
    let stats = rt.stats().total;
    assert_eq!((stats.computes, stats.bypassed, stats.corrupt), (1, 0, 0));
}
