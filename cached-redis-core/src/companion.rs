//! What a cached function's companions run — `natal_chart::key`,
//! `::invalidate`, `::refresh` and `::warm`, generated beside it by the
//! attribute (see its documentation).
//!
//! A companion never derives a key of its own: `key` and `invalidate` build
//! it with the function's own site and policy, from the same arguments, so
//! no key made by hand can differ from the function's; `refresh` and `warm`
//! call the function itself, its next cached call taking the mode (see
//! `mode`), so the calls its body makes run as usual.

use std::future::{Future, poll_fn};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use crate::call::Site;
use crate::key::{CacheKey, KeyError, KeyInput};
use crate::mode::{self, CacheMode, Observed};
use crate::policy::Policy;
use crate::redis::RedisError;
use crate::runtime::{Operation, Runtime};

/// Why a companion's `invalidate` failed.
///
/// The entry is gone from this process either way; a Redis failure may
/// have left it in Redis, where it lives until its TTL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidateError {
    /// An argument could not be hashed into the key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Redis failed (or the breaker was open): the entry may remain there.
    #[error("invalidating in Redis failed: {0}")]
    Redis(#[from] RedisError),
}

/// What a companion's `warm` did, and, passed to its progress callback,
/// what it has done so far.
///
/// ```
/// use cached_redis_core::WarmReport;
///
/// let report = WarmReport::default();
/// assert_eq!(report.total(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmReport {
    /// Arguments whose value was cached already.
    pub hits: u64,
    /// Arguments whose value was computed (and stored, as the function's
    /// attribute says).
    pub computed: u64,
    /// Arguments whose computation failed: an `Err`, or a panic-free
    /// failure a stale value stood in for. Nothing new was stored.
    pub failed: u64,
}

impl WarmReport {
    /// Arguments done: hits, computed and failed.
    pub fn total(&self) -> u64 {
        self.hits + self.computed + self.failed
    }

    fn count(&mut self, observed: Option<Observed>) {
        match observed {
            Some(Observed::Hit) => self.hits += 1,
            Some(Observed::Failed) => self.failed += 1,
            // A call that made no cached call at all ran its body.
            Some(Observed::Computed) | None => self.computed += 1,
        }
    }
}

/// The key one call of `site` with these arguments uses.
pub fn key<P: Policy>(
    runtime: &Runtime,
    site: &'static Site,
    input: KeyInput,
    _: &P,
) -> Result<CacheKey, KeyError> {
    finish::<P>(runtime, site, input).map(|(_, key)| key)
}

/// The exact input (what memory and the near-cache are keyed by) and the
/// Redis key of one call of `site`: its namespace and stored type's
/// fingerprint, as a call's own key has them.
fn finish<P: Policy>(
    runtime: &Runtime,
    site: &'static Site,
    input: KeyInput,
) -> Result<(Vec<u8>, CacheKey), KeyError> {
    let stored = site.schema.get::<P::Stored>();
    let key = input.finish(runtime.call_path().namespace(), &stored.fingerprint)?;
    Ok((key.exact().to_vec(), key.key().clone()))
}

/// Removes the entry one call of `site` with these arguments uses: from
/// this process's memory, near-cache and pending writes, then from Redis
/// (whose `UNLINK` reaches every other process's near-cache). Resolves to
/// whether Redis held it (with Redis off: whether memory did).
pub fn invalidate<P: Policy>(
    runtime: &Runtime,
    site: &'static Site,
    input: KeyInput,
    _: &P,
) -> Operation<'static, Result<bool, InvalidateError>> {
    let built = finish::<P>(runtime, site, input);
    let runtime = runtime.clone();
    Operation::new(async move {
        let (exact, key) = built?;
        let path = runtime.call_path();
        let held = path.forget(&exact, &key);
        let Some(redis) = &path.redis else {
            return Ok(held);
        };
        // A write of the key started before this must not land after the
        // `UNLINK`: let those finish first (bounded, as in `clear`).
        redis
            .flush(runtime.config().redis_timeout.saturating_mul(2))
            .await;
        let removed = redis.unlink(key.as_bytes()).await?;
        // A call meanwhile may have taken the old entry from Redis.
        path.forget(&exact, &key);
        Ok(removed)
    })
}

/// The function's call `future`, computed and stored whatever is cached;
/// the cached calls its body makes run as usual.
pub async fn refresh<F: Future>(future: F) -> F::Output {
    mode::once(CacheMode::Refresh, future).await
}

/// [`refresh`], for a sync function's call.
pub fn refresh_sync<R>(call: impl FnOnce() -> R) -> R {
    mode::once_sync(CacheMode::Refresh, call).0
}

/// Calls the function once per item, at most `concurrency` calls at a time
/// (at least one), all on the calling task: a cached value is a hit, a
/// missing one is computed and stored. `progress` is told after each.
pub async fn warm<I, C, F>(
    items: I,
    concurrency: usize,
    mut call: C,
    mut progress: impl FnMut(&WarmReport),
) -> WarmReport
where
    I: IntoIterator,
    C: FnMut(I::Item) -> F,
    F: Future,
{
    let mut items = items.into_iter();
    let limit = concurrency.max(1);
    let mut running = Vec::with_capacity(limit);
    let mut report = WarmReport::default();
    poll_fn(|cx| {
        loop {
            while running.len() < limit {
                match items.next() {
                    Some(item) => running.push(mode::once(CacheMode::Normal, call(item))),
                    None => break,
                }
            }
            if running.is_empty() {
                return Poll::Ready(());
            }
            let before = running.len();
            let mut i = 0;
            while i < running.len() {
                match std::pin::Pin::new(&mut running[i]).poll(cx) {
                    Poll::Ready(_) => {
                        report.count(running.swap_remove(i).observed());
                        progress(&report);
                    }
                    Poll::Pending => i += 1,
                }
            }
            // Only room made for more is a reason to go round again.
            if running.len() == before {
                return Poll::Pending;
            }
        }
    })
    .await;
    report
}

/// [`warm`], for a sync function: its calls run on `concurrency` scoped
/// threads (at least one), each taking the next item.
pub fn warm_sync<I, C, R>(
    items: I,
    concurrency: usize,
    call: C,
    progress: impl FnMut(&WarmReport) + Send,
) -> WarmReport
where
    I: IntoIterator,
    I::IntoIter: Send,
    I::Item: Send,
    C: Fn(I::Item) -> R + Sync,
{
    let items = Mutex::new(items.into_iter());
    let tally = Mutex::new((WarmReport::default(), progress));
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            scope.spawn(|| {
                loop {
                    // The lock is released before the call: `next` alone is
                    // under it.
                    let next = lock(&items).next();
                    let Some(item) = next else { break };
                    let (_, observed) = mode::once_sync(CacheMode::Normal, || call(item));
                    let mut tally = lock(&tally);
                    let (report, progress) = &mut *tally;
                    report.count(observed);
                    progress(report);
                }
            });
        }
    });
    let (report, _) = tally.into_inner().unwrap_or_else(PoisonError::into_inner);
    report
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The name the function's own body gives its site, so a site moved out
/// of the body (to be shared with the companions) keeps the function's
/// keys: `nested` is the name of an item `up` levels below the
/// function's parent; an `async` body adds a `{{closure}}` level.
pub fn function_name(nested: &str, up: usize, function: &str, in_async: bool) -> String {
    let mut parent = nested;
    for _ in 0..up {
        parent = parent.rsplit_once("::").map_or("", |(parent, _)| parent);
    }
    let closure = if in_async { "::{{closure}}" } else { "" };
    format!("{parent}::{function}{closure}::__cached_redis_here")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_those_the_body_gives() {
        assert_eq!(
            function_name(
                "app::natal_chart::__cached_redis_here",
                2,
                "natal_chart",
                true
            ),
            "app::natal_chart::{{closure}}::__cached_redis_here"
        );
        assert_eq!(
            function_name(
                "app::W<_>::__cached_redis_site_m::__cached_redis_here",
                2,
                "m",
                false
            ),
            "app::W<_>::m::__cached_redis_here"
        );
    }

    #[test]
    fn counts_each_outcome() {
        let mut report = WarmReport::default();
        for observed in [Some(Observed::Hit), Some(Observed::Failed), None] {
            report.count(observed);
        }
        assert_eq!((report.hits, report.computed, report.failed), (1, 1, 1));
        assert_eq!(report.total(), 3);
    }
}
