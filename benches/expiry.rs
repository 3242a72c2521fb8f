//! A hot key at its expiry, with and without `early_refresh`.
//!
//! ```sh
//! cargo bench --bench expiry
//! ```
//!
//! Calls to one key arrive 2,000 times a second (open loop, each a task on
//! a 2-worker runtime, timed from its scheduled arrival); its TTL is 1 s
//! and its body takes 50 ms, so the run crosses an expiry every second. Without early refresh every caller that arrives while the key
//! is being recomputed waits for it; with it, one caller recomputes
//! shortly before the expiry and the others keep hitting. The two
//! functions run in alternating slices (each on its own key space and
//! runtime), so the machine's noise falls on both. Prints per-call latency
//! percentiles, the calls that waited (over 10 ms), the computations, and
//! the calls that waited per 100 ms window around the expiries.

use std::time::{Duration, Instant};

use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::RedisServer;

const TTL: Duration = Duration::from_secs(1);
const WORK: Duration = Duration::from_millis(50);
/// One call every 500 µs: 2,000 calls per second.
const INTERVAL: Duration = Duration::from_micros(500);
/// Each slice spans this many expiries of the key.
const SLICE: Duration = Duration::from_millis(4_500);
const SLICES: usize = 3;
/// A call slower than this waited for a computation.
const WAITED: Duration = Duration::from_millis(10);
const WINDOW: Duration = Duration::from_millis(100);

#[redis_cached(domain = "hot", ttl = "1s", early_refresh = true, runtime = rt, skip(rt))]
async fn early(slice: usize, rt: &Runtime) -> Vec<u64> {
    tokio::time::sleep(WORK).await;
    vec![slice as u64; 64]
}

#[redis_cached(domain = "hot-plain", ttl = "1s", runtime = rt, skip(rt))]
async fn plain(slice: usize, rt: &Runtime) -> Vec<u64> {
    tokio::time::sleep(WORK).await;
    vec![slice as u64; 64]
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    Early,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "without early_refresh",
            Variant::Early => "early_refresh = true",
        }
    }
}

/// Every call of a slice: when it started (since the slice began) and how long it took.
#[derive(Default)]
struct Calls(Vec<(Duration, Duration)>);

async fn slice(variant: Variant, slice: usize, rt: &'static Runtime) -> Calls {
    let call = move || async move {
        match variant {
            Variant::Plain => plain(slice, rt).await,
            Variant::Early => early(slice, rt).await,
        }
    };
    // The first call stores the key; the slice's clock starts then, so its
    // expiries fall near whole seconds of it.
    call().await;
    assert!(rt.flush(Duration::from_secs(5)).await);
    let started = Instant::now();
    // Open loop: calls arrive on schedule whether or not earlier ones are
    // done, as requests do, and each is timed from its scheduled arrival —
    // callers stuck behind a recomputation do not slow the arrivals down.
    let mut arrivals = tokio::time::interval(INTERVAL);
    let mut calls = Vec::new();
    while started.elapsed() < SLICE {
        let due = arrivals.tick().await;
        calls.push(tokio::spawn(async move {
            let value = call().await;
            assert_eq!(value.len(), 64);
            (due.into_std() - started, due.elapsed())
        }));
    }
    let mut all = Calls::default();
    for call in calls {
        all.0.push(call.await.expect("a call"));
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[at - 1]
}

fn report(variant: Variant, calls: &Calls, computes: u64) {
    let mut took: Vec<Duration> = calls.0.iter().map(|&(_, took)| took).collect();
    took.sort_unstable();
    let waited = took.iter().filter(|&&t| t > WAITED).count();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {:<22} {:>9} {:>8.3} {:>8.3} {:>8.1} {:>8.1} {:>8} {:>9}",
        variant.name(),
        took.len(),
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
        ms(percentile(&took, 0.999)),
        ms(percentile(&took, 1.0)),
        waited,
        computes,
    );
}

/// Per 100 ms window of the slice's second (every second of every slice
/// together): the calls that waited, and the p99 latency of the calls
/// made in it — where in the TTL the waiting happens.
fn windows(variant: Variant, calls: &Calls) {
    let per_second = (TTL.as_millis() / WINDOW.as_millis()) as usize;
    let mut took = vec![Vec::new(); per_second];
    for &(at, call) in &calls.0 {
        let window = (at.as_millis() % TTL.as_millis()) / WINDOW.as_millis();
        took[window as usize].push(call);
    }
    let waited: Vec<String> = took
        .iter()
        .map(|calls| format!("{:>7}", calls.iter().filter(|&&t| t > WAITED).count()))
        .collect();
    let p99: Vec<String> = took
        .iter_mut()
        .map(|calls| {
            calls.sort_unstable();
            let p99 = calls.is_empty().then_some(Duration::ZERO);
            let p99 = p99.unwrap_or_else(|| percentile(calls, 0.99));
            format!("{:>7.2}", p99.as_secs_f64() * 1e3)
        })
        .collect();
    println!("  {:<22} waited {}", variant.name(), waited.join(""));
    println!("  {:<22} p99 ms {}", "", p99.join(""));
}

fn runtime(url: &str, namespace: &str) -> &'static Runtime {
    Box::leak(Box::new(Runtime::new(
        Config::builder()
            .redis_enabled(true)
            .redis_url(url)
            .namespace(namespace)
            .build()
            .expect("valid config"),
    )))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs nothing.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let server = RedisServer::start();
    let runtimes = [
        (Variant::Plain, runtime(&server.url(), "plain")),
        (Variant::Early, runtime(&server.url(), "early")),
    ];
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut results: Vec<(Variant, Calls)> = vec![
        (Variant::Plain, Calls::default()),
        (Variant::Early, Calls::default()),
    ];
    workers.block_on(async {
        for round in 0..SLICES {
            // Alternating, in rotating order.
            for k in 0..runtimes.len() {
                let (variant, rt) = runtimes[(round + k) % runtimes.len()];
                let calls = slice(variant, round, rt).await;
                let into = results.iter_mut().find(|(v, _)| *v == variant);
                if let Some((_, all)) = into {
                    all.0.extend(calls.0);
                }
            }
        }
    });
    println!(
        "hot key, TTL {} s, body {} ms, a call every {} µs, {SLICES} slices of {} s each",
        TTL.as_secs(),
        WORK.as_millis(),
        INTERVAL.as_micros(),
        SLICE.as_secs_f64()
    );
    println!(
        "  {:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "", "calls", "p50 ms", "p99 ms", "p99.9", "max ms", "waited", "computes"
    );
    for (variant, calls) in &results {
        let rt = runtimes
            .iter()
            .find(|(v, _)| v == variant)
            .map(|(_, rt)| rt);
        let computes = rt.map_or(0, |rt| rt.stats().total.computes);
        report(*variant, calls, computes);
    }
    println!("per 100 ms window of each second (the key expires near 0)");
    let header: Vec<String> = (0..10).map(|w| format!("{:>7}", w * 100)).collect();
    println!("  {:<29} {}", "ms into the second", header.join(""));
    for (variant, calls) in &results {
        windows(*variant, calls);
    }
}
