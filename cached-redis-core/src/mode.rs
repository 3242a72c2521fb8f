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

/// The mode in force, and whether only the next cached call takes it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Scope {
    mode: CacheMode,
    /// A companion's scope (`refresh`, `warm`): the next cached call takes
    /// the mode, and tells how it went; the calls its body makes run as
    /// usual.
    once: bool,
}

const NORMAL: Scope = Scope {
    mode: CacheMode::Normal,
    once: false,
};

thread_local! {
    static SCOPE: Cell<Scope> = const { Cell::new(NORMAL) };
    static OBSERVED: Cell<Option<Observed>> = const { Cell::new(None) };
}

/// The mode of the calls made here and now.
pub fn cache_mode() -> CacheMode {
    SCOPE.with(Cell::get).mode
}

/// The mode a cached call starting here runs in, and whether it reports
/// how it went ([`report`]). A one-call scope is used up by it.
pub(crate) fn take_mode() -> (CacheMode, bool) {
    let scope = SCOPE.with(Cell::get);
    if scope.once {
        SCOPE.with(|cell| cell.set(NORMAL));
    }
    (scope.mode, scope.once)
}

/// How the call of a one-call scope went: what a warm-up counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// A cached value was returned.
    Hit,
    /// The body ran and returned a value.
    Computed,
    /// The body failed (an `Err`, or a stale value stood in for it).
    Failed,
}

/// Tells the one-call scope being polled how its call went.
pub(crate) fn report(observed: Observed) {
    OBSERVED.with(|cell| cell.set(Some(observed)));
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
    in_scope(Scope { mode, once: false }, f)
}

fn in_scope<R>(scope: Scope, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(SCOPE.with(|cell| cell.replace(scope)));
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
        scope: Some(Scope { mode, once: false }),
        observed: None,
        future: Box::pin(future),
    }
}

/// The future of [`with_mode`].
#[must_use = "a future does nothing until awaited"]
pub struct WithMode<F> {
    /// `None` once a one-call scope's call has taken it.
    scope: Option<Scope>,
    observed: Option<Observed>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for WithMode<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let (poll, observed) = observing(|| match this.scope {
            // Its call took the mode on an earlier poll; the rest of its
            // body runs in the caller's mode.
            None => this.future.as_mut().poll(cx),
            Some(scope) => in_scope(scope, || {
                let poll = this.future.as_mut().poll(cx);
                if scope.once && SCOPE.with(Cell::get) != scope {
                    this.scope = None;
                }
                poll
            }),
        });
        this.observed = this.observed.or(observed);
        poll
    }
}

/// Runs `f`, and returns what a one-call scope's call reported meanwhile.
fn observing<R>(f: impl FnOnce() -> R) -> (R, Option<Observed>) {
    let outer = OBSERVED.with(|cell| cell.take());
    let result = f();
    let observed = OBSERVED.with(|cell| cell.replace(outer));
    (result, observed)
}

/// The next cached call `future` makes runs in `mode`, and how it went is
/// reported: what a companion's `refresh` and `warm` run.
pub(crate) fn once<F: Future>(mode: CacheMode, future: F) -> WithMode<F> {
    WithMode {
        scope: Some(Scope { mode, once: true }),
        observed: None,
        future: Box::pin(future),
    }
}

/// [`once`], for a sync call.
pub(crate) fn once_sync<R>(mode: CacheMode, f: impl FnOnce() -> R) -> (R, Option<Observed>) {
    observing(|| in_scope(Scope { mode, once: true }, f))
}

impl<F: Future> WithMode<F> {
    /// How the call of a one-call scope went, once it has.
    pub(crate) fn observed(&self) -> Option<Observed> {
        self.observed
    }
}

/// Puts the scope back when it ends, a panic included.
struct Restore(Scope);

impl Drop for Restore {
    fn drop(&mut self) {
        SCOPE.with(|cell| cell.set(self.0));
    }
}
