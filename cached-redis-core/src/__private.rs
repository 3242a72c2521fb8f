//! What `#[redis_cached]` expands to calls. Not a public API: it changes
//! with the macro, which always comes in the same release.

use std::borrow::Borrow;
use std::fmt::Display;
use std::time::Duration;

use serde::Serialize;

pub use crate::policy::{
    OkOnly, Plain, Policy, Probe, ProbeNone, SomeOnly, ViaOption, ViaPlain, ViaResult,
};
pub use std::any::type_name_of_val;

use crate::duration::{DurationError, parse_duration};
use crate::key::{KeyBuilder, KeyError};
pub use crate::runtime::Runtime;

/// One annotated function, as written in its attribute.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// `domain = "…"`.
    pub domain: &'static str,
    /// `version = "…"`.
    pub version: &'static str,
    /// The function's path, from `type_name_of_val` of an item nested in it.
    pub function: &'static str,
    /// `ttl = …`, or the runtime's default.
    pub ttl: Option<Duration>,
    /// `hash_len = …`.
    pub hash_len: usize,
}

/// The key arguments of one call, hashed as they are added.
pub struct KeyInput {
    builder: KeyBuilder,
    failed: Option<KeyError>,
}

impl KeyInput {
    /// Builds the key under `namespace` for a value of the fingerprinted type.
    pub(crate) fn finish(
        self,
        namespace: &str,
        schema: [u8; 32],
    ) -> Result<crate::key::CacheKey, KeyError> {
        match self.failed {
            Some(err) => Err(err),
            None => self.builder.namespace(namespace).schema(schema).build(),
        }
    }

    /// Starts the key of one call of `site`.
    pub fn new(site: &Site) -> Self {
        let builder = KeyBuilder::new(site.domain)
            .version(site.version)
            .function(site.function)
            .hash_len(site.hash_len);
        KeyInput {
            builder,
            failed: None,
        }
    }
}

/// Marks what may be hashed into a key; implemented for every `Serialize` type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the cache key because it does not implement `serde::Serialize`",
    label = "not `Serialize`",
    note = "leave the argument out of the key with `skip(...)`, or derive `Serialize` for it"
)]
pub trait KeyPart {
    /// Hashes `self` into the key under the argument's `name`.
    fn push_into(&self, name: &str, builder: &mut KeyBuilder) -> Result<(), KeyError>;
}

impl<T: Serialize + ?Sized> KeyPart for T {
    fn push_into(&self, name: &str, builder: &mut KeyBuilder) -> Result<(), KeyError> {
        builder.push_named_part(name, self)
    }
}

/// Hashes one argument (or the `key = …` expression, named `key`).
pub fn key_part<T: KeyPart + ?Sized>(input: &mut KeyInput, name: &str, part: &T) {
    if input.failed.is_none()
        && let Err(err) = part.push_into(name, &mut input.builder)
    {
        input.failed = Some(err);
    }
}

/// Hashes a type the function is generic over, or `Self`.
pub fn key_type<T: ?Sized>(input: &mut KeyInput) {
    input.builder.push_type(std::any::type_name::<T>());
}

/// Shows one argument in plain text before the hash.
pub fn key_segment<T: Display + ?Sized>(input: &mut KeyInput, segment: &T) {
    input.builder.push_segment(&segment);
}

/// The default runtime.
pub fn default_runtime() -> &'static Runtime {
    crate::global::runtime()
}

/// Accepts `Runtime`, `&Runtime`, `Arc<Runtime>`… for `runtime = expr`.
pub fn as_runtime<R: Borrow<Runtime> + ?Sized>(runtime: &R) -> &Runtime {
    runtime.borrow()
}

/// `ttl = "15m"`, checked by const evaluation so a bad literal fails the build.
pub const fn ttl_literal(text: &str) -> Duration {
    match parse_duration(text) {
        Ok(ttl) => ttl,
        Err(DurationError::Zero) => panic!("invalid `ttl`: zero would cache nothing"),
        Err(DurationError::Overflow) => panic!("invalid `ttl`: too large"),
        Err(DurationError::Empty | DurationError::NotANumber | DurationError::UnknownUnit) => {
            panic!(
                "invalid `ttl`: expected a whole number followed by ms, s, m, h or d, such as \"90s\" or \"15m\""
            )
        }
    }
}

pub use crate::call::{call_async, call_sync};
