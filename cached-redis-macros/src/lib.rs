//! The `#[redis_cached]` attribute of [`cached-redis`](https://docs.rs/cached-redis).
//!
//! This crate only parses, checks and expands; everything at run time lives
//! in `cached-redis-core`, reached through `::cached_redis::__private`. Use
//! the attribute through the `cached-redis` crate, which documents it.

mod attr;
mod companion;
mod expand;
mod func;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Caches a function's results in Redis (or memory). Documented on
/// `cached_redis::redis_cached`.
#[proc_macro_attribute]
pub fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::redis_cached(args.into(), item.into()).into()
}
