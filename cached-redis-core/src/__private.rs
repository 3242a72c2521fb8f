//! What `#[redis_cached]` expands to calls. Not a public API: it changes
//! with the macro, which always comes in the same release.
//!
//! The attribute's literals are checked here, by `const fn`s the generated
//! code evaluates at compile time, with the very rules the runtime uses —
//! the macro itself only checks their form.

use std::borrow::Borrow;
use std::fmt::Display;
use std::time::Duration;

use serde::Serialize;

pub use crate::call::{
    Body, Detach, Near, Site, SiteOptions, Spawn, ViaLocal, ViaSend, call_async, call_sync,
};
pub use crate::companion::{InvalidateError, WarmReport};
pub use crate::companion::{
    function_name, invalidate, key as companion_key, refresh, refresh_sync, warm, warm_sync,
};
pub use crate::key::{CacheKey, KeyError};
pub use crate::key::{DEFAULT_HASH_LEN, DEFAULT_VERSION, KeyInput};
pub use crate::policy::{
    Cloned, Conditions, Copier, Copies, OkOnly, Plain, Policy, Probe, ProbeNone, SomeOnly,
    ViaClone, ViaDecode, ViaOption, ViaPlain, ViaResult,
};
pub use crate::runtime::{Operation, Runtime};
pub use std::any::type_name_of_val;
pub use std::sync::OnceLock;

use crate::duration::{DurationError, parse_duration};
use crate::key;

/// Starts the key of one call of `site`.
pub fn key_input(site: &'static Site) -> KeyInput {
    KeyInput::new(&site.key)
}

/// Marks what may be hashed into a key; implemented for every `Serialize` type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the cache key because it does not implement `serde::Serialize`",
    label = "not `Serialize`",
    note = "leave the argument out of the key with `skip(...)`, or derive `Serialize` for it"
)]
pub trait KeyPart {
    /// Hashes `self` into the key under the argument's `name`.
    fn push_into(&self, name: &str, input: &mut KeyInput);
}

impl<T: Serialize + ?Sized> KeyPart for T {
    fn push_into(&self, name: &str, input: &mut KeyInput) {
        input.push_part(name, self);
    }
}

/// Hashes one argument (or the `key = …` expression, named `key`).
pub fn key_part<T: KeyPart + ?Sized>(input: &mut KeyInput, name: &str, part: &T) {
    part.push_into(name, input);
}

/// Hashes a type the function is generic over, or `Self`.
pub fn key_type<T: ?Sized>(input: &mut KeyInput) {
    input.push_type(std::any::type_name::<T>());
}

/// Shows one argument in plain text before the hash.
pub fn key_segment<T: Display + ?Sized>(input: &mut KeyInput, segment: &T) {
    input.push_segment(&segment);
}

/// The default runtime.
pub fn default_runtime() -> &'static Runtime {
    crate::global::runtime()
}

/// Accepts `Runtime`, `&Runtime`, `Arc<Runtime>`… for `runtime = expr`.
pub fn as_runtime<R: Borrow<Runtime> + ?Sized>(runtime: &R) -> &Runtime {
    runtime.borrow()
}

/// `domain = "…"`, checked by const evaluation so a bad literal fails the build.
pub const fn domain_literal(domain: &'static str) -> &'static str {
    if !key::is_valid_domain(domain) {
        panic!("invalid `domain`: use one or more of a-z, 0-9, '_' and '-'");
    }
    domain
}

/// `version = "…"`, checked by const evaluation.
pub const fn version_literal(version: &'static str) -> &'static str {
    if !key::is_valid_label(version) {
        panic!("invalid `version`: use one or more of A-Z, a-z, 0-9, '_', '.' and '-'");
    }
    version
}

/// `hash_len = …`, checked by const evaluation.
pub const fn hash_len_literal(hex_chars: usize) -> usize {
    if !key::is_valid_hash_len(hex_chars) {
        panic!("invalid `hash_len`: a key shows 8 to 64 hex characters of its hash");
    }
    hex_chars
}

/// Which duration option a literal belongs to, for its error messages.
pub enum DurationOption {
    /// `ttl`
    Ttl,
    /// `stale_if_error`
    StaleIfError,
    /// `timeout`
    Timeout,
    /// `near`
    Near,
}

impl DurationOption {
    const fn reject(self, error: DurationError) -> ! {
        use DurationOption::{Near, StaleIfError, Timeout, Ttl};
        match (self, error) {
            (Ttl, DurationError::Zero) => panic!("invalid `ttl`: zero would cache nothing"),
            (StaleIfError, DurationError::Zero) => {
                panic!("invalid `stale_if_error`: zero would keep no stale value; leave it out")
            }
            (Timeout, DurationError::Zero) => {
                panic!("invalid `timeout`: zero would never let the body finish")
            }
            (Near, DurationError::Zero) => {
                panic!("invalid `near`: zero would keep no copy; use `near = false`")
            }
            (Ttl, DurationError::Overflow) => panic!("invalid `ttl`: too large"),
            (StaleIfError, DurationError::Overflow) => {
                panic!("invalid `stale_if_error`: too large")
            }
            (Timeout, DurationError::Overflow) => panic!("invalid `timeout`: too large"),
            (Near, DurationError::Overflow) => panic!("invalid `near`: too large"),
            (Ttl, _) => panic!(
                "invalid `ttl`: expected a whole number followed by ms, s, m, h or d, such as \"90s\" or \"15m\""
            ),
            (StaleIfError, _) => panic!(
                "invalid `stale_if_error`: expected a whole number followed by ms, s, m, h or d, such as \"1h\""
            ),
            (Timeout, _) => panic!(
                "invalid `timeout`: expected a whole number followed by ms, s, m, h or d, such as \"2s\""
            ),
            (Near, _) => panic!(
                "invalid `near`: expected `true`, `false`, or a whole number followed by ms, s, m, h or d, such as \"30s\""
            ),
        }
    }
}

/// `ttl = 3600` (and the other duration options in seconds), checked by
/// const evaluation.
pub const fn duration_seconds(option: DurationOption, seconds: u64) -> Duration {
    if seconds == 0 {
        option.reject(DurationError::Zero)
    }
    Duration::from_secs(seconds)
}

/// `jitter = "10%"`: the fraction, checked by const evaluation — a whole
/// percentage from 1 to 90.
pub const fn jitter_literal(text: &str) -> f64 {
    let bytes = text.as_bytes();
    let mut percent: u32 = 0;
    let mut i = 0;
    while i + 1 < bytes.len() && bytes[i].is_ascii_digit() && percent <= 100 {
        percent = percent * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    let whole = i > 0 && i + 1 == bytes.len() && bytes[i] == b'%';
    if !whole || percent < 1 || percent > 90 {
        panic!("invalid `jitter`: expected a whole percentage from \"1%\" to \"90%\"");
    }
    percent as f64 / 100.0
}

/// `early_refresh = 2.0`: β, checked by const evaluation.
pub const fn early_refresh_literal(beta: f64) -> f64 {
    if !(beta > 0.0 && beta <= 1000.0) {
        panic!(
            "invalid `early_refresh`: β must be a number above 0 and at most 1000, usually 1 to 3"
        );
    }
    beta
}

/// `ttl = "15m"` (and the other duration options as text), checked by
/// const evaluation.
pub const fn duration_literal(option: DurationOption, text: &str) -> Duration {
    match parse_duration(text) {
        Ok(duration) => duration,
        Err(error) => option.reject(error),
    }
}
