//! Drives a cached function under load, with Redis on, and reports what a
//! service would see: ops/s, hit ratio, latency percentiles, errors,
//! fallbacks and Redis round trips per call — live, then as a table, a
//! per-second CSV/JSON and an SVG plot. With `--spawn-redis` it starts its
//! own `redis-server` and can pause or kill it mid-run, so the breaker and
//! the fallback can be watched at work.
//!
//! ```sh
//! cargo run --release --example loadtest -- --spawn-redis --duration 30s \
//!     --concurrency 64 --keys 10000 --zipf 1.0 --ttl 60s \
//!     --fault pause --fault-at 10s --fault-for 5s \
//!     --csv run.csv --plot run.svg
//! ```
//!
//! Without `--spawn-redis` it uses the runtime's own configuration (the
//! environment: `REDIS_URL`, TLS, ACL, cluster…), so it measures the
//! deployment it is pointed at. `docs/performance.md` ("Load test") says
//! how to read it to choose a TTL and a memory capacity.

mod keys;
mod record;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cached_redis::advanced::parse_duration;
use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use keys::{Keys, Rng};
use record::{Counters, RedisCounter, Samples, Second};
use report::Summary;

#[derive(Parser)]
#[command(
    about = "Load-tests a cached function with Redis on, and reports what a service would see"
)]
struct Args {
    /// How long to run (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = duration)]
    duration: Duration,
    /// Calls in flight at once (closed loop). Ignored with --rate.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Calls per second, whatever their latency (open loop: a slow call
    /// does not hold back the next, and is measured from when it was due).
    #[arg(long)]
    rate: Option<u64>,
    /// Distinct arguments the calls draw from.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Zipf exponent of the draw (about 1 for real traffic); 0 is uniform.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// TTL of each stored value (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = duration)]
    ttl: Duration,
    /// How long the function's body takes.
    #[arg(long, default_value = "5ms", value_parser = duration)]
    compute: Duration,
    /// Size of each value.
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// The memory cache's capacity in entries (`CACHE_MEMORY_CAPACITY`).
    #[arg(long)]
    memory_capacity: Option<u64>,
    /// Serve hot keys from this process's near-cache (`CACHE_NEAR`).
    #[arg(long)]
    near: bool,
    /// Start a throw-away redis-server for the run (else: the environment's).
    #[arg(long)]
    spawn_redis: bool,
    /// A fault to inject into the spawned server.
    #[arg(long, value_enum, requires = "spawn_redis")]
    fault: Option<Fault>,
    /// When the fault starts.
    #[arg(long, default_value = "10s", value_parser = duration)]
    fault_at: Duration,
    /// How long it lasts (a killed server is restarted after it).
    #[arg(long, default_value = "5s", value_parser = duration)]
    fault_for: Duration,
    /// Per-second figures, as CSV (or JSON lines, for a `.json` path).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// The latency and hit-ratio plot, as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fault {
    /// SIGSTOP: connections hang, nothing answers (a frozen or partitioned server).
    Pause,
    /// SIGKILL, then a restart on the same port (an empty cache comes back).
    Kill,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|err| err.to_string())
}

/// What the body makes: a value of the asked size, and its TTL (`ttl_from`).
#[derive(Serialize, Deserialize, Clone)]
struct Value {
    key: u64,
    ttl_ms: u64,
    bytes: Vec<u8>,
}

fn ttl_of(value: &Value) -> Duration {
    Duration::from_millis(value.ttl_ms)
}

/// The work a call stands for.
struct Work {
    compute: Duration,
    ttl: Duration,
    value_bytes: usize,
}

#[redis_cached(domain = "loadtest", ttl_from = ttl_of, runtime = rt, skip(rt, work))]
async fn fetch(key: u64, rt: &Runtime, work: &Work) -> Value {
    tokio::time::sleep(work.compute).await;
    Value {
        key,
        ttl_ms: u64::try_from(work.ttl.as_millis()).unwrap_or(u64::MAX),
        bytes: vec![(key % 251) as u8; work.value_bytes],
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let server = args.spawn_redis.then(|| Arc::new(RedisServer::start()));
    let runtime = runtime(&args, server.as_deref())?;
    let redis_url = server
        .as_ref()
        .map(|s| s.url())
        .or_else(|| std::env::var("REDIS_URL").ok());
    let work = Arc::new(Work {
        compute: args.compute,
        ttl: args.ttl,
        value_bytes: args.value_bytes,
    });
    let keys = Arc::new(Keys::new(args.keys, args.zipf));

    eprintln!("{}", plan(&args, &runtime));
    let start = Instant::now();
    let samples = Arc::new(Samples::new(start));
    let stop = Arc::new(AtomicBool::new(false));
    let fault = server.clone().zip(args.fault).map(|(server, fault)| {
        tokio::spawn(inject(server, fault, start + args.fault_at, args.fault_for))
    });
    let sampler = tokio::spawn(sample(
        runtime.clone(),
        redis_url,
        Arc::clone(&samples),
        Arc::clone(&stop),
        args.duration,
    ));
    let drivers = drive(
        &args,
        &runtime,
        &work,
        &keys,
        &samples,
        start + args.duration,
    );
    for driver in drivers {
        driver.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let seconds = sampler.await?;
    if let Some(fault) = fault {
        fault.await?;
    }
    let samples = Arc::try_unwrap(samples).map_err(|_| "a call outlived the run")?;
    let last = (args.duration.as_secs().max(1) - 1) as usize;
    let seconds = samples.into_seconds(seconds, last);

    println!(
        "{}",
        Summary::of(&seconds, runtime.stats().total, elapsed).table()
    );
    if let Some(path) = &args.csv {
        report::write_figures(path, &seconds)?;
        println!("  per-second figures: {}", path.display());
    }
    if let Some(path) = &args.plot {
        let window = args.fault.map(|fault| {
            let from = args.fault_at.as_secs_f64();
            let label = match fault {
                Fault::Pause => "Redis paused",
                Fault::Kill => "Redis killed",
            };
            (from, from + args.fault_for.as_secs_f64(), label)
        });
        report::plot(path, &seconds, window)?;
        println!("  plot: {}", path.display());
    }
    Ok(())
}

/// The runtime as the environment configures it, with Redis on and the
/// flags given here put in the variables' place.
fn runtime(
    args: &Args,
    server: Option<&RedisServer>,
) -> Result<Runtime, Box<dyn std::error::Error>> {
    let url = server.map(RedisServer::url);
    let capacity = args.memory_capacity.map(|c| c.to_string());
    let config = Config::from_lookup(|name| match name {
        "ENABLE_REDIS_CACHE" => Some("on".into()),
        "REDIS_URL" if url.is_some() => url.clone(),
        "CACHE_MEMORY_CAPACITY" if capacity.is_some() => capacity.clone(),
        "CACHE_NEAR" if args.near => Some("on".into()),
        _ => std::env::var(name).ok(),
    })?;
    Ok(Runtime::new(config))
}

fn plan(args: &Args, runtime: &Runtime) -> String {
    let load = match args.rate {
        Some(rate) => format!("{rate} calls/s"),
        None => format!("{} in flight", args.concurrency),
    };
    let draw = if args.zipf > 0.0 {
        format!("Zipf s={}", args.zipf)
    } else {
        "uniform".into()
    };
    format!(
        "loadtest: {load} for {:?} over {} keys ({draw}), ttl {:?}, body {:?}, {} B values, Redis {}",
        args.duration,
        args.keys,
        args.ttl,
        args.compute,
        args.value_bytes,
        runtime.config().redis_target_redacted()
    )
}

/// Starts the calling tasks: `concurrency` loops, or one task per call at `rate`.
fn drive(
    args: &Args,
    runtime: &Runtime,
    work: &Arc<Work>,
    keys: &Arc<Keys>,
    samples: &Arc<Samples>,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    let call = {
        let (runtime, work) = (runtime.clone(), Arc::clone(work));
        move |key: u64| {
            let (runtime, work) = (runtime.clone(), Arc::clone(&work));
            async move {
                fetch(key, &runtime, &work).await;
            }
        }
    };
    match args.rate {
        None => (0..args.concurrency.max(1) as u64)
            .map(|task| {
                let (call, keys, samples) = (call.clone(), Arc::clone(keys), Arc::clone(samples));
                tokio::spawn(async move {
                    let mut rng = Rng::new(task);
                    while Instant::now() < until {
                        let due = Instant::now();
                        call(keys.draw(&mut rng)).await;
                        samples.record(due.elapsed());
                    }
                })
            })
            .collect(),
        Some(rate) => {
            let (keys, samples) = (Arc::clone(keys), Arc::clone(samples));
            let every = Duration::from_secs(1) / u32::try_from(rate.max(1)).unwrap_or(u32::MAX);
            vec![tokio::spawn(async move {
                let mut rng = Rng::new(1);
                let mut due = tokio::time::Instant::now();
                let mut calls = Vec::new();
                while due.into_std() < until {
                    tokio::time::sleep_until(due).await;
                    let (call, key, samples) =
                        (call.clone(), keys.draw(&mut rng), Arc::clone(&samples));
                    let scheduled = due.into_std();
                    calls.push(tokio::spawn(async move {
                        call(key).await;
                        samples.record(scheduled.elapsed());
                    }));
                    due += every;
                }
                for call in calls {
                    let _ = call.await;
                }
            })]
        }
    }
}

/// Reads the counters once a second (and draws the live line), until told to stop.
async fn sample(
    runtime: Runtime,
    redis_url: Option<String>,
    samples: Arc<Samples>,
    stop: Arc<AtomicBool>,
    planned: Duration,
) -> Vec<Second> {
    let mut redis = redis_url.as_deref().and_then(RedisCounter::new);
    let bar = ProgressBar::new(planned.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut seconds = Vec::new();
    let mut last = counters(&runtime, &mut redis).await;
    let mut calls_before = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let now = counters(&runtime, &mut redis).await;
        let second = last.delta(&now);
        let calls = samples.count();
        let ratio = second.hit_ratio().map_or("-".into(), |r| format!("{r:.3}"));
        bar.set_message(format!(
            "{} ops/s  hit ratio {ratio}  fallbacks {}  breaker {:?}",
            calls - calls_before,
            record::fallbacks(&second.stats),
            runtime.breaker_state()
        ));
        bar.inc(1);
        calls_before = calls;
        seconds.push(second);
        last = now;
    }
    bar.finish_and_clear();
    seconds
}

/// Reads the counters off the runtime's threads: the Redis one blocks (at
/// most its short timeout).
async fn counters(runtime: &Runtime, redis: &mut Option<RedisCounter>) -> Counters {
    let runtime = runtime.clone();
    let mut taken = redis.take();
    let (counters, back) = tokio::task::spawn_blocking(move || {
        let counters = Counters::read(&runtime, taken.as_mut());
        (counters, taken)
    })
    .await
    .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
    *redis = back;
    counters
}

/// Pauses or kills the spawned server at `at`, for `lasting`.
async fn inject(server: Arc<RedisServer>, fault: Fault, at: Instant, lasting: Duration) {
    tokio::time::sleep_until(at.into()).await;
    let begin = Arc::clone(&server);
    let _ = tokio::task::spawn_blocking(move || match fault {
        Fault::Pause => begin.pause(),
        Fault::Kill => begin.kill(),
    })
    .await;
    tokio::time::sleep(lasting).await;
    let _ = tokio::task::spawn_blocking(move || match fault {
        Fault::Pause => server.resume(),
        Fault::Kill => server.restart(),
    })
    .await;
}
