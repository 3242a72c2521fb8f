//! The path of one cached call, and everything it goes through:
//! key → lookup → single-flight → body → store → write-behind, ending in
//! one recorded [`Outcome`]. Sync and async callers share it: the sync entry
//! drives the same future on the calling thread (see `park`).
//!
//! ```text
//! call ─▶ key ─▶ lookup ──found──────────────────────────────────────────▶ value
//!                  │ missed
//!                  ▼
//!               flight ──wait──▶ leader's bytes ────────────────────────▶ value
//!                  │ lead
//!                  ▼
//!         (landed since? look again) ─▶ body ─▶ seal ─▶ memory, waiters ─▶ value
//!                                                  └──▶ Redis, behind the caller
//! ```

mod body;
mod early;
mod flight;
mod lock;
mod lookup;
mod site;
mod stale;
mod store;
mod trace;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::body::{Background, Detached, Work};
pub use self::body::{Body, Detach, Spawn, ViaLocal, ViaSend};
use self::flight::{Flights, Landing, Role};
use self::lock::Remote;
pub use self::site::{Near, Site, SiteOptions};
use self::stale::Ran;
pub(crate) use self::store::InFlight;
use self::trace::Trace;
use crate::codec::Format;
use crate::config::Config;
use crate::key::{CallKey, KeyInput};
use crate::memory::MemoryStore;
use crate::mode::{self, CacheMode, Observed};
use crate::policy::Policy;
use crate::redis::Redis;
use crate::runtime::Runtime;
use crate::signing::Signer;
use crate::telemetry::{Domain, Outcome, Telemetry, Write};

/// What a runtime's calls go through: its stores and their coordination.
pub(crate) struct CallPath {
    pub(crate) memory: Option<MemoryStore>,
    pub(crate) redis: Option<Arc<Redis>>,
    /// Values whose Redis write is in flight (read-your-writes).
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) telemetry: Arc<Telemetry>,
    flights: Flights,
    namespace: String,
    default_ttl: Duration,
    max_value_bytes: usize,
    /// Encoded values this large or larger are compressed, if that shrinks them.
    compress_min_bytes: usize,
    /// Signs entries written and checks entries read (`CACHE_HMAC_KEY`).
    signer: Option<Signer>,
    single_flight_wait: Duration,
    /// One compute across processes, unless the function says (`CACHE_LOCK`).
    lock: bool,
    /// The near-cache's bound, unless the function says (`CACHE_NEAR`).
    near: Option<Duration>,
}

/// One call, once its key is built.
struct Call<'a> {
    key: CallKey<'a>,
    terms: Terms,
    stats: &'a Arc<Domain>,
    runtime: &'a Runtime,
}

/// What the function's attribute and the runtime say about its calls.
#[derive(Clone, Copy)]
struct Terms {
    /// The codec of the function's stored type.
    format: Format,
    ttl: Duration,
    /// The function's own `ttl`, if it gave one: bounds a `ttl_from`.
    ttl_bound: Option<Duration>,
    /// `jitter`: the most of a stored TTL cut off at random.
    jitter: Option<f64>,
    /// `stale_if_error`: how long past its TTL an entry is kept.
    window: Option<Duration>,
    /// `timeout`: the body's soft limit, when a stale value can stand in.
    timeout: Option<Duration>,
    /// `near`: how long this process's copy may serve without Redis.
    near: Option<Duration>,
    /// `early_refresh`: β, how early a value is recomputed before it expires.
    early_refresh: Option<f64>,
}

impl Call<'_> {
    /// This call's state, owned: for work that outlives it.
    fn detach(&self) -> Detached {
        Detached {
            runtime: self.runtime.clone(),
            key: self.key.detach(),
            terms: self.terms,
            stats: Arc::clone(self.stats),
        }
    }
}

impl Terms {
    /// How long Redis and memory keep an entry of `ttl`: its TTL, and the
    /// stale window after it.
    fn kept_for(&self, ttl: Duration) -> Duration {
        ttl.saturating_add(self.window.unwrap_or_default())
    }

    /// The TTL a value is stored with: the one it chose (`ttl_from`), never
    /// above the function's `ttl` when both are given, else the function's;
    /// then shortened by up to the `jitter` fraction, at random.
    fn ttl_of(&self, chosen: Option<Duration>) -> Duration {
        let ttl = match (chosen, self.ttl_bound) {
            (Some(chosen), Some(bound)) => chosen.min(bound),
            (Some(chosen), None) => chosen,
            (None, _) => self.ttl,
        };
        match self.jitter {
            Some(jitter) => ttl.saturating_sub(ttl.mul_f64(jitter * early::draw())),
            None => ttl,
        }
    }
}

/// Runs an async body through the cache.
#[inline]
pub async fn call_async<P, F>(
    runtime: &Runtime,
    site: &'static Site,
    input: KeyInput,
    policy: P,
    body: Body<P, F>,
) -> P::Output
where
    P: Policy,
    F: Future<Output = P::Output>,
{
    // No `Instrumented` wrapper: the span is entered around each poll of
    // the call's own state, built once, in place.
    let trace = Trace::start(site);
    let stats = site
        .stats
        .get(&runtime.call_path().telemetry, site.domain());
    let (mode, observed) = mode::take_mode();
    let mut run = pin!(CallPath::run(
        runtime, site, input, &policy, &stats, &trace, mode, body
    ));
    let (output, outcome) = poll_fn(|cx| trace.poll_in_span(run.as_mut(), cx)).await;
    stats.call(outcome);
    trace.finish(outcome);
    if observed {
        mode::report(match outcome {
            Outcome::Computed { .. } | Outcome::Bypassed { .. } if !policy.failed(&output) => {
                Observed::Computed
            }
            Outcome::Computed { .. } | Outcome::Bypassed { .. } | Outcome::Stale { .. } => {
                Observed::Failed
            }
            Outcome::RedisHit | Outcome::MemoryHit | Outcome::Fallback | Outcome::Coalesced => {
                Observed::Hit
            }
        });
    }
    // A hit in memory or the near-cache never waits: a task calling
    // in a loop would hold its worker forever. Counted against tokio's
    // cooperative budget, it yields now and then (no-op off tokio).
    tokio::task::coop::consume_budget().await;
    output
}

/// Runs a sync body through the cache: the same path as [`call_async`],
/// driven on the calling thread. Never uses an executor's `block_on`, so it
/// is safe inside any async runtime, including a current-thread one.
#[inline]
pub fn call_sync<P, F>(
    runtime: &Runtime,
    site: &'static Site,
    input: KeyInput,
    policy: P,
    body: F,
) -> P::Output
where
    P: Policy,
    F: FnOnce() -> P::Output,
{
    // Outside tokio's cooperative budget: inside a task whose budget ran
    // out, a tokio primitive (or the yield in `call_async`) would defer its
    // wake-up to the task's next turn, which this blocked thread never
    // gives it.
    crate::park::block_on(tokio::task::unconstrained(call_async(
        runtime,
        site,
        input,
        policy,
        Body::local(async move { body() }),
    )))
}

impl CallPath {
    pub(crate) fn new(config: &Config) -> CallPath {
        let telemetry = Arc::new(Telemetry::default());
        let redis = if config.redis_enabled {
            Redis::new(config, Arc::clone(&telemetry))
                .map_err(|err| tracing::error!(error = %err, "invalid Redis configuration; Redis is unused"))
                .ok()
                .map(Arc::new)
        } else {
            None
        };
        CallPath {
            memory: config
                .memory_fallback
                .then(|| MemoryStore::new(config.memory_capacity, config.memory_max_bytes)),
            redis,
            in_flight: Arc::default(),
            telemetry,
            flights: Flights::default(),
            namespace: config.namespace.clone(),
            default_ttl: config.default_ttl,
            max_value_bytes: config.max_value_bytes,
            compress_min_bytes: config.compress_min_bytes,
            signer: config.signer(),
            single_flight_wait: config.single_flight_wait,
            lock: config.lock,
            near: config.near,
        }
    }

    /// The namespace every key of this runtime starts with.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    // One call's parts, each borrowed from `call_async` for the call.
    #[allow(clippy::too_many_arguments)]
    async fn run<P, F>(
        runtime: &Runtime,
        site: &'static Site,
        input: KeyInput,
        policy: &P,
        stats: &Arc<Domain>,
        trace: &Trace,
        mode: CacheMode,
        body: Body<P, F>,
    ) -> (P::Output, Outcome)
    where
        P: Policy,
        F: Future<Output = P::Output>,
    {
        let this = runtime.call_path();
        let prepared = match mode {
            CacheMode::Bypass => None,
            _ => this.prepare::<P>(runtime, site, input, stats),
        };
        let Some(call) = prepared else {
            let (output, took) = timed(body.future).await;
            return (output, Outcome::Bypassed { took });
        };
        trace.record_key(&call.key);
        let mark = this.flights.mark();
        let copier = policy.copier();
        let mut stale = None;
        let found = match mode {
            CacheMode::Refresh => None,
            _ => this.lookup(&call, copier).await,
        };
        if let Some(found) = found {
            if call.terms.window.is_some() && !found.is_fresh() {
                // Past its TTL: computed again, and kept at hand in case that fails.
                stale = Some(found);
            } else if mode != CacheMode::Normal || !this.refreshes_early(&call, &found) {
                return (policy.restore(found.value), found.outcome);
            } else if let Some(spawn) = body.detachable() {
                // Refreshed in the background; this caller has its value.
                let refresh = Work::Refresh { mark };
                spawn(Background::new(
                    call.detach(),
                    *policy,
                    Box::pin(body.future),
                    refresh,
                ));
                return (policy.restore(found.value), found.outcome);
            } else {
                // Refreshed before it expires by this caller (the body
                // borrows its arguments), unless one in this process is on
                // it already; the current value stands in if that fails.
                return match this.flights.join(call.key.as_bytes()) {
                    Role::Lead(leader) => {
                        this.lead(&call, policy, body, Some(found), None, leader)
                            .await
                    }
                    Role::Wait(_) => (policy.restore(found.value), found.outcome),
                };
            }
        }
        // Overridden for this call (`with_mode`): computed here, outside
        // single-flight — a refresh must not take another call's value, and
        // a call that stores nothing must not lead waiters to nothing.
        if mode != CacheMode::Normal {
            let (output, took) = timed(body.future).await;
            let write = match mode {
                CacheMode::Refresh => this.store(&call, policy, (&output, took), None).1,
                _ => Write::None,
            };
            return (output, Outcome::Computed { took, write });
        }
        // A waiter whose leader stalls takes that flight off the air and
        // joins again, once: usually it then leads.
        for _ in 0..2 {
            match this.flights.join(call.key.as_bytes()) {
                Role::Lead(leader) => {
                    if this.flights.landed_since(call.key.digest(), mark)
                        && let Some(found) = this.landed(&call, copier)
                    {
                        leader.land(Some(found.sealed.into_bytes()));
                        return (policy.restore(found.value), found.outcome);
                    }
                    let lock = match site.options.lock.unwrap_or(this.lock) {
                        true => match this.across_processes(&call, copier).await {
                            Remote::Found(found) => {
                                leader.land(Some(found.sealed.into_bytes()));
                                return (policy.restore(found.value), found.outcome);
                            }
                            Remote::Compute(lock) => lock,
                        },
                        false => None,
                    };
                    return this.lead(&call, policy, body, stale, lock, leader).await;
                }
                Role::Wait(flight) => match flight.wait(this.single_flight_wait).await {
                    Landing::Shared(bytes) => match lookup::open_own(&bytes, &call) {
                        Ok(opened) => return (policy.restore(opened.value), Outcome::Coalesced),
                        // Another input whose short hash collides with ours.
                        Err(_) => break,
                    },
                    Landing::Empty => break,
                    Landing::Stalled => this.flights.abandon(call.key.as_bytes(), &flight),
                },
            }
        }
        match this.compute(&call, policy, body, stale).await {
            Ran::Output(output, took) => {
                let (_, write) = this.store(&call, policy, (&output, took), None);
                (output, Outcome::Computed { took, write })
            }
            Ran::Stale(output, outcome, _) => (output, outcome),
        }
    }

    /// The leader of a flight: computes (with `stale` at hand), stores, and
    /// hands the waiters what it got. A panic or cancellation in the body
    /// drops `leader`, which releases the waiters to compute for themselves.
    async fn lead<P, F>(
        &self,
        call: &Call<'_>,
        policy: &P,
        body: Body<P, F>,
        stale: Option<lookup::Found<P::Stored>>,
        lock: Option<lock::Lock>,
        leader: flight::Leader<'_>,
    ) -> (P::Output, Outcome)
    where
        P: Policy,
        F: Future<Output = P::Output>,
    {
        match self.compute(call, policy, body, stale).await {
            Ran::Output(output, took) => {
                let (sealed, write) = self.store(call, policy, (&output, took), lock);
                leader.land(sealed);
                (output, Outcome::Computed { took, write })
            }
            // The waiters get what the leader got.
            Ran::Stale(output, outcome, sealed) => {
                leader.land(Some(sealed));
                (output, outcome)
            }
        }
    }

    /// Whether this caller recomputes `found`, fresh still, before it
    /// expires (`early_refresh`; see `early`).
    fn refreshes_early<T>(&self, call: &Call<'_>, found: &lookup::Found<T>) -> bool {
        let (Some(beta), Some(compute)) = (call.terms.early_refresh, found.compute) else {
            return false;
        };
        let now = crate::envelope::now_ms();
        early::refresh_early(now, found.fresh_until_ms, compute, beta, early::draw())
    }

    /// Builds the call's key, or `None` when the cache must be bypassed.
    fn prepare<'a, P: Policy>(
        &'a self,
        runtime: &'a Runtime,
        site: &'static Site,
        input: KeyInput,
        stats: &'a Arc<Domain>,
    ) -> Option<Call<'a>> {
        if self.redis.is_none() && self.memory.is_none() {
            return None;
        }
        let stored = site.schema.get::<P::Stored>();
        match input.finish(&self.namespace, &stored.fingerprint) {
            Ok(key) => Some(Call {
                key,
                terms: Terms {
                    format: stored.format,
                    ttl: site.options.ttl.unwrap_or(self.default_ttl),
                    ttl_bound: site.options.ttl,
                    jitter: site.options.jitter,
                    window: site.options.stale_if_error,
                    timeout: site.options.timeout,
                    near: site.options.near.bound(self.near),
                    early_refresh: site.options.early_refresh,
                },
                stats,
                runtime,
            }),
            Err(err) => {
                self.telemetry.warn("key", |suppressed| {
                    tracing::warn!(domain = site.domain(), error = %err, suppressed, "cache key not built; calling through");
                });
                None
            }
        }
    }
}

async fn timed<F: Future>(body: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let output = body.await;
    (output, started.elapsed())
}
