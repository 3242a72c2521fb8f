//! Per-call latency of a cached function while Redis is healthy, refusing,
//! blackholed, or cut off by the breaker, against calling the body directly.
//!
//! ```sh
//! cargo bench --bench outage
//! ```
//!
//! Prints one line per scenario with p50 / p99 / max over its calls. Starts
//! its own `redis-server` and fake endpoints; needs nothing running.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::{Blackhole, RedisServer, refused_url};

/// Distinct arguments cycled through, so lookups are spread over keys.
const KEYS: u64 = 100;

/// Stands in for a modest computation (about 100 µs here).
fn body(seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(16);
    for i in 0..60_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if i % 4_000 == 0 {
            out.push(x);
        }
    }
    out
}

#[redis_cached(domain = "bench", ttl = 600, runtime = rt, skip(rt))]
async fn cached(seed: u64, rt: &Runtime) -> Vec<u64> {
    body(seed)
}

fn runtime(url: &str, enabled: bool, breaker_failures: u32) -> Runtime {
    let config = Config::builder()
        .redis_enabled(enabled)
        .redis_url(url)
        .breaker_failures(breaker_failures)
        .build()
        .expect("valid config");
    Runtime::new(config)
}

struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn report(name: &str, calls: usize, f: &Figures) {
    println!(
        "{name:<44} {calls:>6} {:>12.1?} {:>12.1?} {:>12.1?}",
        f.p50, f.p99, f.max
    );
}

/// Warms the runtime (every key computed once, the breaker settled), then times `calls` calls.
async fn measure(rt: &Runtime, warm_up: bool, calls: usize) -> Figures {
    if warm_up {
        for seed in 0..KEYS {
            black_box(cached(seed, rt).await);
        }
        rt.flush(Duration::from_secs(5)).await;
    }
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        black_box(cached(i as u64 % KEYS, rt).await);
        samples.push(started.elapsed());
    }
    figures(samples)
}

#[tokio::main]
async fn main() {
    const CALLS: usize = 5_000;
    println!(
        "{:<44} {:>6} {:>12} {:>12} {:>12}",
        "scenario", "calls", "p50", "p99", "max"
    );

    let direct: Vec<Duration> = (0..CALLS)
        .map(|i| {
            let started = Instant::now();
            black_box(body(i as u64 % KEYS));
            started.elapsed()
        })
        .collect();
    report("body called directly (no cache)", CALLS, &figures(direct));

    let memory = runtime(&refused_url(), false, 5);
    report(
        "flag off: memory hit",
        CALLS,
        &measure(&memory, true, CALLS).await,
    );

    let server = RedisServer::start();
    let healthy = runtime(&server.url(), true, 5);
    report(
        "healthy Redis: hit",
        CALLS,
        &measure(&healthy, true, CALLS).await,
    );
    let cold = runtime(&server.url(), true, 5);
    let misses: Vec<Duration> = {
        let mut samples = Vec::new();
        for seed in 10_000..10_000 + CALLS as u64 {
            let started = Instant::now();
            black_box(cached(seed, &cold).await);
            samples.push(started.elapsed());
        }
        samples
    };
    report(
        "healthy Redis: miss (lookup + body + write-behind)",
        CALLS,
        &figures(misses),
    );

    let never_open = u32::MAX;
    let refused = refused_url();
    report(
        "refused, breaker disabled: memory fallback",
        CALLS,
        &measure(&runtime(&refused, true, never_open), true, CALLS).await,
    );
    report(
        "refused, breaker open: memory",
        CALLS,
        &measure(&runtime(&refused, true, 5), true, CALLS).await,
    );

    let blackhole = Blackhole::start();
    report(
        "blackholed, breaker disabled: memory fallback",
        20,
        &measure(&runtime(&blackhole.url(), true, never_open), false, 20).await,
    );
    let tripped = runtime(&blackhole.url(), true, 5);
    // Five calls at the 100 ms deadline open the breaker; then memory serves.
    report(
        "blackholed, breaker opening (first 5 calls)",
        5,
        &measure(&tripped, false, 5).await,
    );
    report(
        "blackholed, breaker open: memory",
        CALLS,
        &measure(&tripped, true, CALLS).await,
    );
}
