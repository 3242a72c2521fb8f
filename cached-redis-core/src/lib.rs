//! The runtime behind [`cached-redis`](https://docs.rs/cached-redis): keys,
//! the payload envelope, the Redis and memory stores, and the read/write
//! path of a cached call. Most users depend on `cached-redis` and use its
//! `#[redis_cached]` attribute; this crate is what the attribute calls.
//!
//! ```
//! use cached_redis_core::{Config, Runtime, build_key};
//!
//! // The embedded default: Redis off, a bounded memory cache on.
//! let runtime = Runtime::new(Config::default());
//! assert!(!runtime.config().redis_enabled());
//!
//! let key = build_key("natal", &("1990-01-01T12:00:00Z", 51.48_f64, -0.0015_f64), "v1")?;
//! assert!(key.as_str().starts_with("meridian:v1:natal:"));
//! # Ok::<(), cached_redis_core::KeyError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod breaker;
mod call;
mod canonical;
mod codec;
mod config;
mod duration;
pub mod envelope;
mod flight;
mod global;
mod io;
mod key;
mod policy;
mod runtime;
mod schema;
mod stats;
pub mod store;
mod telemetry;

#[doc(hidden)]
pub mod __private;

pub use breaker::BreakerState;
pub use canonical::Error as KeyEncodeError;
pub use codec::{Codec, CodecError, Postcard};
pub use config::{
    Config, ConfigBuilder, ConfigError, DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_OPEN,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PENDING_WRITES, DEFAULT_MEMORY_CAPACITY,
    DEFAULT_REDIS_RETRIES, DEFAULT_REDIS_TIMEOUT, DEFAULT_REDIS_URL, DEFAULT_SINGLE_FLIGHT_WAIT,
    DEFAULT_TTL,
};
pub use duration::{DurationError, parse_duration};
pub use global::{InitError, init_from_env, install, runtime};
pub use key::{
    CacheKey, DEFAULT_HASH_LEN, DEFAULT_NAMESPACE, DEFAULT_VERSION, KeyBuilder, KeyError,
    MAX_HASH_LEN, MIN_HASH_LEN, build_key,
};
pub use runtime::{ClearError, Runtime};
pub use schema::schema_fingerprint;
pub use stats::{CacheStats, Stats};
pub use store::{StoreError, StoreStats};
