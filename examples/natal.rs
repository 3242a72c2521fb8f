//! A natal-chart service in miniature: an expensive function cached with
//! `#[redis_cached]`, called a few times to show misses and hits, then timed.
//!
//! ```sh
//! cargo run --example natal                                   # memory cache (embedded default)
//! ENABLE_REDIS_CACHE=1 REDIS_URL=redis://127.0.0.1:6379 cargo run --example natal
//! ```

use std::time::{Duration, Instant};

use cached_redis::{CacheStats, redis_cached};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
struct NatalRequest {
    born: String,
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chart {
    sun_longitude: f64,
    ascendant: f64,
}

#[derive(Debug)]
struct ChartError(String);

/// Stands in for an ephemeris computation that takes tens of milliseconds.
#[redis_cached(domain = "natal", ttl = 3600)]
async fn natal_chart(req: &NatalRequest) -> Result<Chart, ChartError> {
    if req.born.is_empty() {
        return Err(ChartError("a birth time is required".into()));
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    let seed = req.born.bytes().fold(7_u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    Ok(Chart {
        sun_longitude: (seed % 36_000) as f64 / 100.0,
        ascendant: (req.lat + req.lon).abs() % 360.0,
    })
}

fn outcome(before: CacheStats, after: CacheStats) -> &'static str {
    if after.redis_hits > before.redis_hits {
        "redis hit"
    } else if after.memory_hits > before.memory_hits {
        "memory hit"
    } else {
        "miss (body ran)"
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runtime = match cached_redis::init_from_env() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("configuration error: {err}");
            std::process::exit(2);
        }
    };
    let config = runtime.config();
    if config.redis_enabled() {
        println!("Redis cache on at {}", config.redis_target_redacted());
    } else {
        println!(
            "Redis cache off: the in-memory cache serves (set ENABLE_REDIS_CACHE=1 to use Redis)"
        );
    }

    // Debug events carry each call's key and outcome.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_target(false)
        .without_time()
        .finish();
    let logging = tracing::subscriber::set_default(subscriber);

    let london = NatalRequest {
        born: "1990-01-01T12:00:00Z".into(),
        lat: 51.48,
        lon: -0.0015,
    };
    let paris = NatalRequest {
        born: "1984-06-30T08:15:00Z".into(),
        lat: 48.85,
        lon: 2.35,
    };
    for (i, req) in [&london, &london, &paris, &london, &paris]
        .into_iter()
        .enumerate()
    {
        let before = runtime.stats().total;
        let started = Instant::now();
        let chart = natal_chart(req).await.expect("valid request");
        let took = started.elapsed();
        println!(
            "call {}: {} -> sun {:.2}°  {:<16} {:>10.1?}",
            i + 1,
            req.born,
            chart.sun_longitude,
            outcome(before, runtime.stats().total),
            took
        );
        // Let the write-behind land so the next call can be a Redis hit.
        runtime.flush(Duration::from_secs(1)).await;
    }
    let invalid = NatalRequest {
        born: String::new(),
        lat: 0.0,
        lon: 0.0,
    };
    if let Err(ChartError(reason)) = natal_chart(&invalid).await {
        println!("an error is returned, never cached: {reason}");
    }
    drop(logging);

    const HITS: usize = 2_000;
    let mut samples = Vec::with_capacity(HITS);
    for _ in 0..HITS {
        let started = Instant::now();
        let chart = natal_chart(&london).await;
        samples.push(started.elapsed());
        std::hint::black_box(chart.ok());
    }
    samples.sort();
    let kind = if config.redis_enabled() {
        "Redis hit"
    } else {
        "memory hit"
    };
    println!(
        "{HITS} × {kind}: p50 {:.1?}, p99 {:.1?} (the body takes 40 ms)",
        samples[HITS / 2],
        samples[HITS * 99 / 100]
    );
    println!("stats: {:?}", runtime.stats());
    runtime.flush(Duration::from_secs(1)).await;
}
