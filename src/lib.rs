//! Redis-backed memoization that is safe to turn on in production.
//!
//! `#[redis_cached]` rewrites a function so that its result is stored under
//! a versioned key built from its arguments, and served from there by the
//! next equal call:
//!
//! ```
//! use cached_redis::redis_cached;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize)]
//! struct NatalRequest { born: String, lat: f64, lon: f64 }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Chart { sun_longitude: f64 }
//!
//! #[derive(Debug)]
//! struct ChartError;
//!
//! #[redis_cached(domain = "natal", ttl = 3600)]
//! async fn natal_chart(req: &NatalRequest) -> Result<Chart, ChartError> {
//!     // ...an expensive computation...
//!     Ok(Chart { sun_longitude: 280.4 })
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let req = NatalRequest { born: "1990-01-01T12:00:00Z".into(), lat: 51.48, lon: 0.0 };
//! let first = natal_chart(&req).await.unwrap();   // computed, then stored
//! let second = natal_chart(&req).await.unwrap();  // served from the cache
//! assert_eq!(first, second);
//! # }
//! ```
//!
//! # Where values live
//!
//! The flag `ENABLE_REDIS_CACHE` decides. Off (the default, and how unit
//! tests run) Redis is never contacted and a bounded in-memory cache serves.
//! On, Redis is read first; a value just computed is kept in memory too, so
//! the memory cache can answer while Redis is unavailable. No Redis error
//! ever reaches the caller: the worst case is that the body runs. Every
//! variable is listed in `docs/configuration.md`.
//!
//! # What is cached
//!
//! * `Result<T, E>` caches `Ok` only: an `Err` is returned and never stored.
//! * `Option<T>` caches `Some` only, unless `cache_none = true`.
//! * Any other `T: Serialize + DeserializeOwned` is cached as is.
//!
//! The choice follows the type, not its spelling: `io::Result<T>` is a
//! `Result`, a type of your own named `Result` is not. A generic return type
//! `T` is cached as is, even when `T` turns out to be an `Option`.
//!
//! # Keys
//!
//! `{namespace}:{version}:{domain}:{hex(sha256(input))[..16]}`, e.g.
//! `meridian:v1:natal:3f9a0c1d2e4b5a69`. The hashed input holds the key
//! arguments with their names (in a canonical encoding: maps sorted, struct
//! and variant names included), the function's path and type parameters,
//! and a fingerprint of the cached type's serde shape, so two functions
//! never share a key and a changed type reads fresh keys. The whole digest
//! is checked on every read, so a collision of the short hash is a miss,
//! never another request's value. See [`KeyBuilder`] to build keys by hand.
#![doc = include_str!("attribute.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use cached_redis_core::*;

/// Caches a function's results; see the [crate documentation](crate#the-attribute).
pub use cached_redis_macros::redis_cached;

#[doc(hidden)]
pub mod __private {
    pub use cached_redis_core::__private::*;
}

/// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Compiles the configuration guide's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/configuration.md")]
pub struct ConfigurationDoctests;
