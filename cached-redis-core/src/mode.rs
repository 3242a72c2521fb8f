//! Per-call overrides: how the cached calls made inside a scope use the
//! cache, without changing any function's signature.
//!
//! The mode lives in a thread-local set while the scope runs — for an
//! async scope, during each poll of its future — so it reaches every
//! cached call made inside, sync or async, nested ones included, and
//! nothing outside.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// How the calls made inside [`with_mode`] or [`with_mode_sync`] use the cache.
///
/// ```
/// use cached_redis_core::{CacheMode, with_mode_sync};
/// assert_eq!(with_mode_sync(CacheMode::Refresh, cached_redis_core::cache_mode), CacheMode::Refresh);
/// assert_eq!(cached_redis_core::cache_mode(), CacheMode::Normal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheMode {
    /// Read, and store what is computed: as configured.
    #[default]
    Normal,
    /// Compute without reading, and store the result: a forced refresh.
    Refresh,
    /// Read; on a miss compute, but store nothing.
    NoStore,
    /// Neither read nor store: the body runs as without the attribute.
    Bypass,
}

thread_local! {
    static MODE: Cell<CacheMode> = const { Cell::new(CacheMode::Normal) };
}

/// The mode of the calls made here and now.
pub fn cache_mode() -> CacheMode {
    MODE.with(Cell::get)
}

/// Runs `f` with the cached calls it makes in `mode`.
///
/// ```
/// use cached_redis_core::{CacheMode, with_mode_sync};
/// # fn natal_chart(day: u32) -> u32 { day }
/// // Recompute and store, whatever is cached.
/// let chart = with_mode_sync(CacheMode::Refresh, || natal_chart(7));
/// # assert_eq!(chart, 7);
/// ```
pub fn with_mode_sync<R>(mode: CacheMode, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(MODE.with(|cell| cell.replace(mode)));
    f()
}

/// Runs `future` with the cached calls it makes in `mode`.
///
/// ```
/// use cached_redis_core::{CacheMode, with_mode};
/// # async fn natal_chart(day: u32) -> u32 { day }
/// # async fn run() {
/// // Read, but keep this (say, a preview's) result out of the cache.
/// let chart = with_mode(CacheMode::NoStore, natal_chart(7)).await;
/// # assert_eq!(chart, 7);
/// # }
/// ```
pub fn with_mode<F: Future>(mode: CacheMode, future: F) -> WithMode<F> {
    WithMode {
        mode,
        future: Box::pin(future),
    }
}

/// The future of [`with_mode`].
#[must_use = "a future does nothing until awaited"]
pub struct WithMode<F> {
    mode: CacheMode,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for WithMode<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mode = self.mode;
        with_mode_sync(mode, || self.future.as_mut().poll(cx))
    }
}

/// Puts the mode back when a scope ends, a panic included.
struct Restore(CacheMode);

impl Drop for Restore {
    fn drop(&mut self) {
        MODE.with(|cell| cell.set(self.0));
    }
}
