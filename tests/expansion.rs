//! The expansion compiles cleanly in awkward surroundings: lints denied,
//! `Result`/`Option` shadowed, renamed crate, every kind of signature.
#![deny(warnings, clippy::all)]

use std::sync::Arc;

use cached_redis::{Config, Runtime, redis_cached};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Types named like the prelude's, which generated code must not pick up.
#[allow(dead_code)]
mod shadowing {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Result<T>(pub T);
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Option;
    pub struct Some;
    pub struct Ok;
    pub struct Duration;
    pub struct Box;

    #[redis_cached(domain = "shadow", ttl = "1h")]
    pub fn wrapped(x: u32) -> Result<u32> {
        Result(x)
    }

    #[redis_cached(domain = "shadow")]
    pub fn unit_like(_x: u32) -> Option {
        Option
    }

    #[redis_cached(domain = "shadow")]
    pub fn real_result(x: u32) -> std::result::Result<u32, String> {
        std::result::Result::Ok(x)
    }
}

mod renamed {
    pub use ::cached_redis as cache;
}

#[redis_cached(domain = "renamed", crate = crate::renamed::cache)]
fn through_renamed_crate(x: u8) -> u8 {
    x
}

/// Attributes and visibility are kept.
#[must_use]
#[inline]
#[redis_cached(domain = "attrs", ttl = 5)]
pub(crate) fn attributed(x: &str) -> String {
    x.to_uppercase()
}

#[redis_cached(domain = "lifetimes")]
fn borrowed<'a>(parts: &'a [&'a str], sep: &str) -> String {
    parts.join(sep)
}

#[redis_cached(domain = "patterns")]
fn destructured((a, b): (u32, u32), [c, _]: [u8; 2], Point { x, .. }: Point) -> u64 {
    u64::from(a + b) + u64::from(c) + u64::from(x)
}

#[derive(Serialize)]
struct Point {
    x: u16,
    y: u16,
}

#[redis_cached(domain = "impl-arg")]
fn impl_argument(values: impl Serialize + IntoIterator<Item = u32>) -> u32 {
    values.into_iter().sum()
}

#[redis_cached(domain = "unit")]
fn no_arguments() -> u32 {
    42
}

#[redis_cached(domain = "unit")]
fn returns_unit(_x: u32) {}

#[redis_cached(domain = "question-mark")]
async fn uses_question_mark(text: String) -> std::result::Result<u32, std::num::ParseIntError> {
    let value: u32 = text.parse()?;
    if value > 100 {
        return std::result::Result::Ok(100);
    }
    std::result::Result::Ok(value)
}

#[redis_cached(domain = "custom-key", key = (text.len(), flag))]
fn custom_key(text: &str, flag: bool, _unused: &Arc<String>) -> usize {
    text.len() + usize::from(flag)
}

#[redis_cached(domain = "generic", ttl = 30)]
fn generic<T, U: Serialize>(t: T, u: U) -> Vec<T>
where
    T: Serialize + DeserializeOwned + Clone,
{
    let _ = serde_json_like(&u);
    vec![t.clone(), t]
}

/// A value that borrows for a lifetime: served from memory by decoding (a
/// decoded copy needs `'static`), and must still compile.
#[redis_cached(domain = "lifetime")]
fn with_lifetime<'a>(text: &'a str) -> std::borrow::Cow<'a, str> {
    std::borrow::Cow::Borrowed(text)
}

/// Not `Clone`: decoded on every hit.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct NotClone(u32);

#[redis_cached(domain = "not-clone")]
fn not_clone(x: u32) -> NotClone {
    NotClone(x)
}

fn serde_json_like<U: Serialize>(_: &U) -> usize {
    0
}

trait Service {
    fn handle(&self, x: u32) -> u32;
}

struct Impl(Runtime);

impl Service for Impl {
    #[redis_cached(domain = "trait-impl", runtime = &self.0)]
    fn handle(&self, x: u32) -> u32 {
        x + 1
    }
}

#[tokio::test]
async fn every_shape_runs() {
    assert_eq!(shadowing::wrapped(3), shadowing::Result(3));
    assert_eq!(shadowing::unit_like(1), shadowing::Option);
    assert_eq!(shadowing::real_result(2), std::result::Result::Ok(2));
    assert_eq!(through_renamed_crate(9), 9);
    assert_eq!(attributed("natal"), "NATAL");
    assert_eq!(borrowed(&["a", "b"], "-"), "a-b");
    assert_eq!(destructured((1, 2), [3, 4], Point { x: 5, y: 6 }), 11);
    assert_eq!(impl_argument(vec![1, 2, 3]), 6);
    assert_eq!(no_arguments(), 42);
    returns_unit(1);
    assert_eq!(
        uses_question_mark("7".into()).await,
        std::result::Result::Ok(7)
    );
    assert!(uses_question_mark("x".into()).await.is_err());
    assert_eq!(custom_key("abc", true, &Arc::new(String::new())), 4);
    assert_eq!(generic(1_u8, "u"), vec![1, 1]);
    assert_eq!(with_lifetime("twice"), "twice");
    assert_eq!(with_lifetime("twice"), "twice");
    assert_eq!(not_clone(5), NotClone(5));
    assert_eq!(not_clone(5), NotClone(5));
    let service = Impl(Runtime::new(Config::default()));
    assert_eq!(service.handle(1), 2);
    assert_eq!(service.handle(1), 2);
    assert_eq!(service.0.stats().total.memory_hits, 1);
}

#[redis_cached(domain = "patterns", runtime = rt, skip(rt))]
fn partly_ignored(Point { x, .. }: Point, (a, _): (u8, u8), rt: &Runtime) -> u32 {
    u32::from(x) + u32::from(a)
}

#[test]
fn ignored_pattern_parts_are_not_in_the_key() {
    // `y` and the tuple's second field are ignored by the patterns, so they
    // cannot change the result: the second call is a hit.
    let rt = Runtime::new(Config::default());
    assert_eq!(partly_ignored(Point { x: 7, y: 1 }, (1, 1), &rt), 8);
    assert_eq!(partly_ignored(Point { x: 7, y: 2 }, (1, 2), &rt), 8);
    assert_eq!(rt.stats().total.memory_hits, 1);
    assert_eq!(partly_ignored(Point { x: 8, y: 2 }, (1, 2), &rt), 9);
    assert_eq!(rt.stats().total.computes, 2);
}
