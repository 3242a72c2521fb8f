//! The path of one cached call: key, single-flight, lookup, body, store —
//! counted, traced, and never failing the caller.

use std::future::Future;
use std::time::Instant;

use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::__private::{KeyInput, Policy, Site};
use crate::flight::{Landing, Role};
use crate::runtime::{Call, Lookup, Runtime, decode};
use crate::schema::schema;
use crate::stats::Tally;
use crate::store::Bytes;

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
    let trace = Trace::start(runtime, site);
    let span = trace.span.clone();
    async move {
        let Some(call) = prepare::<P>(runtime, site, input) else {
            let output = computed(runtime, site.domain, body).await;
            return trace.end("bypass", output);
        };
        trace.span.record("key", call.key.hash());
        // A waiter whose leader stalls takes that flight off the air and
        // joins again, once: usually it then leads, looking the key up first.
        for _ in 0..2 {
            match runtime.flights().join(call.key.as_str()) {
                Role::Lead(leader) => {
                    let lookup = runtime.lookup::<P::Stored>(&call).await;
                    if let Some((value, bytes, outcome)) = served(runtime, &call, lookup) {
                        leader.land(Some(bytes));
                        return trace.end(outcome, policy.restore(value));
                    }
                    // A panic or cancellation in the body drops `leader`,
                    // which releases the waiters to compute for themselves.
                    let output = computed(runtime, site.domain, body).await;
                    leader.land(store(runtime, &call, &policy, &output));
                    return trace.end("miss", output);
                }
                Role::Wait(flight) => match flight.wait(runtime.single_flight_wait()).await {
                    Landing::Shared(bytes) => match shared(runtime, &call, &bytes) {
                        Some(value) => {
                            return trace.end("coalesced", policy.restore(value));
                        }
                        None => break,
                    },
                    Landing::Empty => break,
                    Landing::Stalled => runtime.flights().abandon(call.key.as_str(), &flight),
                },
            }
        }
        let output = computed(runtime, site.domain, body).await;
        store(runtime, &call, &policy, &output);
        trace.end("miss", output)
    }
    .instrument(span)
    .await
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
    let trace = Trace::start(runtime, site);
    let _entered = trace.span.enter();
    let Some(call) = prepare::<P>(runtime, site, input) else {
        let output = computed_sync(runtime, site.domain, body);
        return trace.end("bypass", output);
    };
    trace.span.record("key", call.key.hash());
    for _ in 0..2 {
        match runtime.flights().join(call.key.as_str()) {
            Role::Lead(leader) => {
                let lookup = runtime.lookup_blocking::<P::Stored>(&call);
                if let Some((value, bytes, outcome)) = served(runtime, &call, lookup) {
                    leader.land(Some(bytes));
                    return trace.end(outcome, policy.restore(value));
                }
                let output = computed_sync(runtime, site.domain, body);
                leader.land(store(runtime, &call, &policy, &output));
                return trace.end("miss", output);
            }
            Role::Wait(flight) => match flight.wait_blocking(runtime.single_flight_wait()) {
                Landing::Shared(bytes) => match shared(runtime, &call, &bytes) {
                    Some(value) => {
                        return trace.end("coalesced", policy.restore(value));
                    }
                    None => break,
                },
                Landing::Empty => break,
                Landing::Stalled => runtime.flights().abandon(call.key.as_str(), &flight),
            },
        }
    }
    let output = computed_sync(runtime, site.domain, body);
    store(runtime, &call, &policy, &output);
    trace.end("miss", output)
}

/// One call's span and clock. The span's fields: the domain, the key's hash
/// part (never the arguments or the value), the outcome and the latency.
struct Trace<'a> {
    runtime: &'a Runtime,
    domain: &'static str,
    span: tracing::Span,
    started: Instant,
}

impl<'a> Trace<'a> {
    fn start(runtime: &'a Runtime, site: &Site) -> Self {
        let span = tracing::debug_span!(
            "cached_call",
            domain = site.domain,
            key = Empty,
            outcome = Empty,
            latency_us = Empty
        );
        Trace {
            runtime,
            domain: site.domain,
            span,
            started: Instant::now(),
        }
    }

    /// Records how the call ended and hands its output back.
    fn end<T>(&self, outcome: &'static str, output: T) -> T {
        self.runtime.telemetry().call(self.domain, outcome);
        let latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.span.record("outcome", outcome);
        self.span.record("latency_us", latency_us);
        tracing::debug!(outcome, latency_us, "cached call");
        output
    }
}

fn prepare<P: Policy>(runtime: &Runtime, site: &Site, input: KeyInput) -> Option<Call> {
    if !runtime.caches() {
        runtime.telemetry().record(site.domain, Tally::Bypass);
        return None;
    }
    let stored = schema::<P::Stored>();
    if !stored.decodable {
        // Warned about once per type when its schema was traced.
        runtime.telemetry().record(site.domain, Tally::Bypass);
        return None;
    }
    match input.finish(runtime.namespace(), stored.fingerprint) {
        Ok(key) => Some(Call {
            key,
            domain: site.domain,
            ttl: site.ttl.unwrap_or_else(|| runtime.default_ttl()),
        }),
        Err(err) => {
            runtime.telemetry().record(site.domain, Tally::Bypass);
            runtime.telemetry().warn("key", |suppressed| {
                tracing::warn!(domain = site.domain, error = %err, suppressed, "cache key not built; calling through");
            });
            None
        }
    }
}

/// Counts a lookup; the value, its bytes and the outcome, if one was found.
fn served<T>(
    runtime: &Runtime,
    call: &Call,
    lookup: Lookup<T>,
) -> Option<(T, Bytes, &'static str)> {
    let telemetry = runtime.telemetry();
    match lookup {
        Lookup::Redis(value, bytes) => {
            telemetry.record(call.domain, Tally::RedisHit);
            Some((value, bytes, "hit"))
        }
        Lookup::Memory(value, bytes) => {
            telemetry.record(call.domain, Tally::MemoryHit);
            Some((value, bytes, "memory_hit"))
        }
        Lookup::Fallback(value, bytes) => {
            telemetry.record(call.domain, Tally::MemoryHit);
            Some((value, bytes, "fallback"))
        }
        Lookup::Miss => None,
    }
}

/// Decodes what a concurrent call of the same key landed. The bytes are
/// checked against this call's own digest: two inputs whose short hashes
/// collide share a flight, never a value.
fn shared<T: DeserializeOwned>(runtime: &Runtime, call: &Call, landed: &Bytes) -> Option<T> {
    let value = decode(landed, &call.key).ok()?;
    runtime.telemetry().record(call.domain, Tally::Coalesced);
    Some(value)
}

async fn computed<F: Future>(runtime: &Runtime, domain: &'static str, body: F) -> F::Output {
    let started = Instant::now();
    let output = body.await;
    runtime.telemetry().compute(domain, started.elapsed());
    output
}

fn computed_sync<T>(runtime: &Runtime, domain: &'static str, body: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let output = body();
    runtime.telemetry().compute(domain, started.elapsed());
    output
}

/// Stores the output if the policy allows; the sealed bytes, for waiters.
fn store<P: Policy>(
    runtime: &Runtime,
    call: &Call,
    policy: &P,
    output: &P::Output,
) -> Option<Bytes> {
    runtime.store(call, policy.storable(output)?)
}
