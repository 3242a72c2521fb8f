//! The runtime behind [`cached-redis`](https://docs.rs/cached-redis): keys,
//! the payload envelope, the Redis and memory stores, and the path of a
//! cached call. Most users depend on `cached-redis` and use its
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
//!
//! Inside, one module per concern: `call` owns a call's path (lookup,
//! single-flight, body, store, write-behind), `redis` everything that
//! talks to Redis (connection, commands, breaker, deadlines), `io` the two
//! background threads both rely on (I/O, timers), `runtime` the handle
//! users hold.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod advanced;
mod call;
mod canonical;
mod codec;
mod companion;
mod compress;
mod config;
mod duration;
mod envelope;
mod global;
mod io;
mod key;
mod memory;
mod mode;
mod near;
mod park;
mod policy;
mod redis;
mod runtime;
mod schema;
mod signing;
mod stats;
mod telemetry;

#[doc(hidden)]
pub mod __private;

pub use canonical::Error as KeyEncodeError;
pub use companion::{InvalidateError, WarmReport};
pub use config::{Config, ConfigBuilder, ConfigError};
pub use global::{InitError, init_from_env, install, runtime};
pub use key::{CacheKey, KeyBuilder, KeyError, build_key};
pub use mode::{CacheMode, WithMode, cache_mode, with_mode, with_mode_sync};
pub use redis::{BreakerState, RedisError, SlotMapError};
pub use runtime::{ClearError, Operation, Runtime};
pub use stats::{CacheStats, Stats};
