//! What `#[redis_cached]` expands to calls. Not a public API: it changes
//! with the macro, which always comes in the same release.

use std::borrow::Borrow;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

pub use crate::policy::{
    OkOnly, Plain, Policy, Probe, ProbeNone, SomeOnly, ViaOption, ViaPlain, ViaResult,
};
pub use std::any::type_name_of_val;

use crate::duration::{DurationError, parse_duration};
use crate::flight::{Landing, Role};
use crate::key::{KeyBuilder, KeyError};
pub use crate::runtime::Runtime;
use crate::runtime::{Lookup, decode};
use crate::schema::schema;
use crate::store::Bytes;

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

/// Runs an async body through the cache.
pub async fn call_async<P, F>(
    runtime: &Runtime,
    site: &Site,
    input: KeyInput,
    policy: P,
    body: F,
) -> P::Output
where
    P: Policy,
    F: Future<Output = P::Output>,
{
    let Some(prepared) = prepare::<P>(runtime, site, input) else {
        return computed(runtime, body.await);
    };
    let key = prepared.key.as_str();
    // A waiter whose leader stalls takes that flight off the air and joins
    // again, once: usually it then leads, looking the key up before computing.
    for _ in 0..2 {
        match runtime.flights().join(key) {
            Role::Lead(leader) => {
                let lookup = runtime.lookup::<P::Stored>(&prepared.key).await;
                if let Some((value, bytes)) = served(runtime, &prepared, lookup) {
                    leader.land(Some(bytes));
                    return policy.restore(value);
                }
                // A panic or cancellation in the body drops `leader`, which
                // releases the waiters to compute for themselves.
                let output = computed(runtime, body.await);
                leader.land(finish(runtime, &prepared, &policy, &output));
                return output;
            }
            Role::Wait(flight) => match flight.wait(runtime.single_flight_wait()).await {
                Landing::Shared(bytes) => match shared(runtime, &prepared, &bytes) {
                    Some(value) => return policy.restore(value),
                    None => break,
                },
                Landing::Empty => break,
                Landing::Stalled => runtime.flights().abandon(key, &flight),
            },
        }
    }
    let output = computed(runtime, body.await);
    finish(runtime, &prepared, &policy, &output);
    output
}

/// Runs a sync body through the cache. Never uses `block_on`, so it is safe
/// inside any async runtime, including a current-thread one.
pub fn call_sync<P, F>(
    runtime: &Runtime,
    site: &Site,
    input: KeyInput,
    policy: P,
    body: F,
) -> P::Output
where
    P: Policy,
    F: FnOnce() -> P::Output,
{
    let Some(prepared) = prepare::<P>(runtime, site, input) else {
        return computed(runtime, body());
    };
    let key = prepared.key.as_str();
    for _ in 0..2 {
        match runtime.flights().join(key) {
            Role::Lead(leader) => {
                let lookup = runtime.lookup_blocking::<P::Stored>(&prepared.key);
                if let Some((value, bytes)) = served(runtime, &prepared, lookup) {
                    leader.land(Some(bytes));
                    return policy.restore(value);
                }
                let output = computed(runtime, body());
                leader.land(finish(runtime, &prepared, &policy, &output));
                return output;
            }
            Role::Wait(flight) => match flight.wait_blocking(runtime.single_flight_wait()) {
                Landing::Shared(bytes) => match shared(runtime, &prepared, &bytes) {
                    Some(value) => return policy.restore(value),
                    None => break,
                },
                Landing::Empty => break,
                Landing::Stalled => runtime.flights().abandon(key, &flight),
            },
        }
    }
    let output = computed(runtime, body());
    finish(runtime, &prepared, &policy, &output);
    output
}

struct Prepared {
    key: crate::key::CacheKey,
    ttl: Duration,
}

fn prepare<P: Policy>(runtime: &Runtime, site: &Site, input: KeyInput) -> Option<Prepared> {
    if !runtime.caches() {
        return None;
    }
    let stored = schema::<P::Stored>();
    if !stored.decodable {
        // Logged once per type when its schema was traced.
        runtime.counters().bypass();
        return None;
    }
    let built = match input.failed {
        Some(err) => Err(err),
        None => input
            .builder
            .namespace(runtime.namespace())
            .schema(stored.fingerprint)
            .build(),
    };
    match built {
        Ok(key) => Some(Prepared {
            key,
            ttl: site.ttl.unwrap_or_else(|| runtime.default_ttl()),
        }),
        Err(err) => {
            tracing::warn!(domain = site.domain, error = %err, "cache key not built; calling through");
            runtime.counters().bypass();
            None
        }
    }
}

/// Counts and logs a lookup; the value and its bytes, if one was found.
fn served<T>(runtime: &Runtime, prepared: &Prepared, lookup: Lookup<T>) -> Option<(T, Bytes)> {
    let (found, outcome) = match lookup {
        Lookup::Redis(value, bytes) => {
            runtime.counters().redis_hit();
            ((value, bytes), "hit")
        }
        Lookup::Memory(value, bytes) => {
            runtime.counters().memory_hit();
            ((value, bytes), "memory_hit")
        }
        Lookup::Miss => return None,
    };
    tracing::debug!(key = prepared.key.as_str(), outcome, "cached call");
    Some(found)
}

/// Decodes what a concurrent call of the same key landed. The bytes are
/// checked against this call's own digest: two inputs whose short hashes
/// collide share a flight, never a value.
fn shared<T: serde::de::DeserializeOwned>(
    runtime: &Runtime,
    prepared: &Prepared,
    landed: &Bytes,
) -> Option<T> {
    let value = decode(landed, &prepared.key).ok()?;
    runtime.counters().coalesced();
    tracing::debug!(
        key = prepared.key.as_str(),
        outcome = "coalesced",
        "cached call"
    );
    Some(value)
}

fn computed<T>(runtime: &Runtime, output: T) -> T {
    runtime.counters().compute();
    output
}

/// Stores the output if the policy allows; the sealed bytes, for waiters.
fn finish<P: Policy>(
    runtime: &Runtime,
    prepared: &Prepared,
    policy: &P,
    output: &P::Output,
) -> Option<Bytes> {
    tracing::debug!(key = prepared.key.as_str(), outcome = "miss", "cached call");
    runtime.store(&prepared.key, policy.storable(output)?, prepared.ttl)
}
