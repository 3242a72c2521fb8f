//! One function, three ways, measured side by side in one process against
//! one throw-away `redis-server`:
//!
//! - **floor**: a bare `redis` `MultiplexedConnection` — `GET` + postcard
//!   decode; on a miss compute, encode, `SET … EX` (what a careful user
//!   writes by hand);
//! - **ours**: `#[redis_cached(domain = "natal", ttl = 3600)]`, default settings;
//! - **cached**: the `cached` crate's `#[concurrent_cached]` over its
//!   `AsyncRedisCache`;
//! - in the latency rows also **own thread**: the floor's code, with its
//!   connection driven by a thread of its own, as ours is — what this
//!   design costs before any of our work; and **ours, HMAC** (with
//!   `CACHE_HMAC_KEY`) and **ours, TLS** (`rediss://` to the same server's
//!   TLS port): what those options cost on a hit;
//! - in the near rows (`ONLY=near`), ours with `near = true`, returning
//!   the `Chart` or an `Arc<Chart>`, against the memory cache alone and
//!   against a clone of the value (the ceiling of any cache that hands out
//!   owned copies);
//! - in the scale rows (`ONLY=scale`), the floor and ours against a
//!   3-primary Redis Cluster on the same machine: the floor over the redis
//!   crate's `ClusterConnection`, ours with `REDIS_CLUSTER_URLS`.
//!
//! ```sh
//! cargo bench --bench side_by_side
//! ```
//!
//! Absolute times on a shared machine swing 2–3× from run to run, so the
//! implementations run in interleaved slices, in an order that rotates every
//! round, and the table quotes ratios to the floor with the spread of the
//! per-round ratios. Heap allocations are counted by a counting global
//! allocator (every thread: the Redis client's driver included).
//!
//! For instruction counts (stable under noise), run one scenario alone under
//! callgrind, once with `CALLS=0` and once with `CALLS=N`, and divide the
//! difference by N (see `docs/performance.md`):
//!
//! ```sh
//! SCENARIO=memory-hit CALLS=20000 valgrind --tool=callgrind target/release/deps/side_by_side-…
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use cached::macros::concurrent_cached;
use cached_redis::{Config, KeyBuilder, Runtime, redis_cached};
use cached_redis_test_support::{Pki, RedisCluster, RedisServer};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- allocations

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ------------------------------------------------------------ the function

#[derive(Debug, Clone, Serialize)]
struct NatalRequest {
    born: String,
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Planet {
    name: String,
    longitude: f64,
    latitude: f64,
    speed: f64,
    house: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Aspect {
    from: u8,
    to: u8,
    kind: u8,
    orb: f64,
}

/// About 1 KB postcard-encoded: 12 planets, 12 house cusps, 40 aspects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chart {
    planets: Vec<Planet>,
    cusps: [f64; 12],
    aspects: Vec<Aspect>,
}

#[derive(Debug)]
struct ChartError(#[allow(dead_code)] String);

const PLANETS: [&str; 12] = [
    "Sun", "Moon", "Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto",
    "Chiron", "Node",
];

/// The "expensive" body: cheap on purpose, so the cache's own cost shows.
fn compute(req: &NatalRequest) -> Result<Chart, ChartError> {
    let seed = req.born.bytes().fold(7_u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let angle = |i: u64| ((seed.wrapping_mul(i + 1) % 36_000) as f64) / 100.0 + req.lat / 1e3;
    Ok(Chart {
        planets: PLANETS
            .iter()
            .enumerate()
            .map(|(i, name)| Planet {
                name: (*name).to_owned(),
                longitude: angle(i as u64),
                latitude: angle(i as u64 + 20) / 90.0,
                speed: angle(i as u64 + 40) / 360.0,
                house: (i % 12) as u8 + 1,
            })
            .collect(),
        cusps: std::array::from_fn(|i| angle(i as u64 + 60) + req.lon),
        aspects: (0..40)
            .map(|i| Aspect {
                from: (i % 12) as u8,
                to: ((i * 7) % 12) as u8,
                kind: (i % 5) as u8,
                orb: angle(i + 80) / 100.0,
            })
            .collect(),
    })
}

fn fresh_request(i: u64) -> NatalRequest {
    NatalRequest {
        born: format!(
            "1990-01-01T{:02}:{:02}:{:02}Z",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60
        ),
        lat: 51.48,
        lon: -0.0015,
    }
}

/// The warm keys' arguments, built once so building them is not measured.
static WARM: LazyLock<Vec<NatalRequest>> = LazyLock::new(|| (0..KEYS).map(fresh_request).collect());

fn request(i: u64) -> &'static NatalRequest {
    &WARM[(i % KEYS) as usize]
}

/// The floor's key: what a hand-written cache would format.
fn floor_key(req: &NatalRequest) -> String {
    format!("floor:natal:{}:{}:{}", req.born, req.lat, req.lon)
}

/// The floor's connection, made on (and driven by) the runtime it is used on.
static FLOOR: OnceLock<MultiplexedConnection> = OnceLock::new();
static FLOOR_CURRENT_THREAD: OnceLock<MultiplexedConnection> = OnceLock::new();
static FLOOR_OWN_THREAD: OnceLock<MultiplexedConnection> = OnceLock::new();
static FLOOR_CLUSTER: OnceLock<ClusterConnection> = OnceLock::new();

async fn floor<C: ConnectionLike + Clone + Send>(
    conn: &C,
    req: &NatalRequest,
) -> Result<Chart, ChartError> {
    let mut conn = conn.clone();
    let key = floor_key(req);
    let found: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| ChartError(e.to_string()))?;
    if let Some(bytes) = found {
        return postcard::from_bytes(&bytes).map_err(|e| ChartError(e.to_string()));
    }
    let chart = compute(req)?;
    let bytes = postcard::to_allocvec(&chart).map_err(|e| ChartError(e.to_string()))?;
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(bytes)
        .arg("EX")
        .arg(3600)
        .query_async(&mut conn)
        .await
        .map_err(|e| ChartError(e.to_string()))?;
    Ok(chart)
}

#[redis_cached(domain = "natal", ttl = 3600)]
async fn ours(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

/// Flag off: the embedded default, the memory cache serves.
static MEMORY: LazyLock<Runtime> = LazyLock::new(|| Runtime::new(Config::default()));

#[redis_cached(domain = "natal", ttl = 3600, runtime = &*MEMORY)]
async fn ours_memory(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

/// The same function as a plain `fn`: the sync path.
#[redis_cached(domain = "natal", ttl = 3600, runtime = &*MEMORY)]
fn ours_memory_sync(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

/// Redis on, entries signed; a namespace of its own, so unsigned entries
/// of `ours` are not taken for forgeries.
static HMAC: OnceLock<Runtime> = OnceLock::new();

#[redis_cached(domain = "natal", ttl = 3600, runtime = HMAC.get().expect("set"))]
async fn ours_hmac(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

/// Redis on over TLS (the same server's TLS port), a namespace of its own.
static TLS: OnceLock<Runtime> = OnceLock::new();

#[redis_cached(domain = "natal", ttl = 3600, runtime = TLS.get().expect("set"))]
async fn ours_tls(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

/// Redis on, with the near-cache, a namespace of its own.
static NEAR: OnceLock<Runtime> = OnceLock::new();

#[redis_cached(domain = "natal", ttl = 3600, near = true, runtime = NEAR.get().expect("set"))]
async fn ours_near(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

/// The same, for a value shared rather than copied: a hit on the copy
/// hands out the one `Arc` it holds.
#[redis_cached(domain = "natal_shared", ttl = 3600, near = true, runtime = NEAR.get().expect("set"))]
async fn ours_near_shared(req: &NatalRequest) -> Result<Arc<Chart>, ChartError> {
    compute(req).map(Arc::new)
}

/// A value like every warm key's, built once: [`Imp::CloneOnly`] clones it.
static BUILT: LazyLock<Chart> = LazyLock::new(|| compute(request(0)).expect("a chart"));

/// Redis on, against a 3-primary cluster.
static CLUSTER: OnceLock<Runtime> = OnceLock::new();

#[redis_cached(domain = "natal", ttl = 3600, runtime = CLUSTER.get().expect("set"))]
async fn ours_cluster(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

static CACHED_URL: OnceLock<String> = OnceLock::new();

#[concurrent_cached(
    ty = "cached::AsyncRedisCache<String, Chart>",
    create = r##"{
        cached::AsyncRedisCache::builder("cached:natal")
            .ttl(Duration::from_secs(3600))
            .connection_string(CACHED_URL.get().expect("url set"))
            .build()
            .await
            .expect("cached 4.1 connects")
    }"##,
    convert = r##"{ floor_key(req) }"##,
    map_error = r##"|e| ChartError(format!("{e:?}"))"##
)]
async fn with_cached(req: &NatalRequest) -> Result<Chart, ChartError> {
    compute(req)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Imp {
    Floor,
    /// The floor on a current-thread runtime, with its own connection there.
    FloorHere,
    /// The floor's code, its connection driven by a thread of its own.
    OwnThread,
    Cached,
    Ours,
    OursHmac,
    OursTls,
    /// The floor's code over the redis crate's cluster connection.
    FloorCluster,
    OursCluster,
    OursNear,
    /// Redis off: the memory cache serves (the ceiling of our in-process copies).
    OursMemory,
    /// The near-cache, the value an `Arc<Chart>`.
    OursNearShared,
    /// No cache: a clone of a value already built, what any cache handing
    /// out owned copies pays at least.
    CloneOnly,
}

/// What an implementation returns, held only to be dropped as a caller's
/// value would be.
enum Answer {
    Owned(#[allow(dead_code)] Chart),
    Shared(#[allow(dead_code)] Arc<Chart>),
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Floor | Imp::FloorHere => "floor",
            Imp::OwnThread => "own thread",
            Imp::Cached => "cached 4.1",
            Imp::Ours => "ours",
            Imp::OursHmac => "ours, HMAC",
            Imp::OursTls => "ours, TLS",
            Imp::FloorCluster => "floor, cluster",
            Imp::OursCluster => "ours, cluster",
            Imp::OursNear => "ours, near",
            Imp::OursMemory => "ours, memory",
            Imp::OursNearShared => "near, Arc",
            Imp::CloneOnly => "clone only",
        }
    }

    async fn call(self, req: &NatalRequest) -> Answer {
        let result = match self {
            Imp::OursNearShared => {
                return Answer::Shared(ours_near_shared(req).await.expect("answers"));
            }
            Imp::CloneOnly => {
                // Yields now and then, as a hit of ours does: else the 64
                // loops of the throughput rows would starve its timer.
                tokio::task::consume_budget().await;
                Ok(BUILT.clone())
            }
            Imp::Floor => floor(FLOOR.get().expect("connected"), req).await,
            Imp::FloorHere => floor(FLOOR_CURRENT_THREAD.get().expect("connected"), req).await,
            Imp::OwnThread => floor(FLOOR_OWN_THREAD.get().expect("connected"), req).await,
            Imp::Cached => with_cached(req).await,
            Imp::Ours => ours(req).await,
            Imp::OursHmac => ours_hmac(req).await,
            Imp::OursTls => ours_tls(req).await,
            Imp::FloorCluster => floor(FLOOR_CLUSTER.get().expect("connected"), req).await,
            Imp::OursCluster => ours_cluster(req).await,
            Imp::OursNear => ours_near(req).await,
            Imp::OursMemory => ours_memory(req).await,
        };
        Answer::Owned(result.expect("every implementation answers"))
    }
}

// ------------------------------------------------------------ measuring

const KEYS: u64 = 100;
const ROUNDS: usize = 60;

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// One scenario: per implementation, what each slice measured. The first
/// implementation is the floor; slice `n` of every implementation ran in
/// the same round, back to back.
struct Table {
    scenario: &'static str,
    unit: &'static str,
    /// For latencies: each implementation's pooled p50, which is the headline.
    pooled: Option<Vec<f64>>,
    slices: Vec<(Imp, Vec<f64>)>,
}

impl Table {
    /// Each implementation's ratio to the floor: of the pooled p50s for
    /// latencies, else the median round's; and the spread of the per-round
    /// ratios, so the noise is visible.
    fn print(&self) {
        let floor = &self.slices[0].1;
        println!("\n{} ({})", self.scenario, self.unit);
        println!(
            "  {:<14} {:>9} {:>16} {:>10} {:>19}",
            "", "ratio", "rounds min..max", "value", "rounds min..max"
        );
        for (at, (imp, slices)) in self.slices.iter().enumerate() {
            let ratios: Vec<f64> = slices.iter().zip(floor).map(|(s, f)| s / f).collect();
            let (lo, hi) = min_max(&ratios);
            let (slo, shi) = min_max(slices);
            let (ratio, value) = match &self.pooled {
                Some(pooled) => (pooled[at] / pooled[0], pooled[at]),
                None => (median(&ratios), median(slices)),
            };
            println!(
                "  {:<14} {:>8.2}× {:>7.2}..{:<8.2} {:>10.1} {:>8.1}..{:<10.1}",
                imp.name(),
                ratio,
                lo,
                hi,
                value,
                slo,
                shi
            );
        }
    }
}

/// Runs `measure` for each implementation once per round, in an order that
/// rotates every round so none is always first (warmest) or last.
async fn rounds<F, Fut>(
    scenario: &'static str,
    unit: &'static str,
    imps: &[Imp],
    mut measure: F,
) -> Table
where
    F: FnMut(Imp) -> Fut,
    Fut: Future<Output = f64>,
{
    let mut slices: Vec<(Imp, Vec<f64>)> = imps.iter().map(|imp| (*imp, Vec::new())).collect();
    for round in 0..ROUNDS {
        for i in 0..imps.len() {
            let at = (i + round) % imps.len();
            let value = measure(imps[at]).await;
            slices[at].1.push(value);
        }
    }
    Table {
        scenario,
        unit,
        pooled: None,
        slices,
    }
}

/// p50 latency of one caller calling warm keys: per round, a slice of 250
/// calls of each implementation, in an order that rotates every round. The
/// headline is the p50 of all calls; the rounds give the spread.
async fn hit_latency(scenario: &'static str, imps: &[Imp]) -> Table {
    const CALLS: usize = 250;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); imps.len()];
    let mut slices: Vec<(Imp, Vec<f64>)> = imps.iter().map(|imp| (*imp, Vec::new())).collect();
    for round in 0..ROUNDS {
        for i in 0..imps.len() {
            let at = (i + round) % imps.len();
            let mut slice = Vec::with_capacity(CALLS);
            for call in 0..CALLS {
                let req = request(call as u64);
                let started = Instant::now();
                let value = imps[at].call(req).await;
                slice.push(started.elapsed());
                drop(black_box(value));
            }
            slices[at]
                .1
                .push(percentile(&mut slice, 0.5).as_secs_f64() * 1e6);
            samples[at].extend(slice);
        }
    }
    let pooled = samples
        .iter_mut()
        .map(|all| percentile(all, 0.5).as_secs_f64() * 1e6)
        .collect();
    Table {
        scenario,
        unit: "µs",
        pooled: Some(pooled),
        slices,
    }
}

/// Thousands of calls per second of 64 concurrent tasks on warm keys.
async fn hit_throughput(imp: Imp) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..64)
        .map(|task| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                // Counted per task and summed at the end: a counter shared
                // by all would bounce between the cores on every call and
                // cost the fastest implementations most.
                let mut done = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    black_box(imp.call(request(task + done)).await);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut done = 0;
    for worker in workers {
        done += worker.await.expect("no worker panicked");
    }
    done as f64 / started.elapsed().as_secs_f64() / 1e3
}

/// Thousands of calls per second of one caller whose every call is a miss.
async fn miss_throughput(imp: Imp, next: &Cell<u64>) -> f64 {
    const CALLS: u32 = 100;
    let started = Instant::now();
    for _ in 0..CALLS {
        next.set(next.get() + 1);
        black_box(imp.call(&fresh_request(next.get())).await);
    }
    f64::from(CALLS) / started.elapsed().as_secs_f64() / 1e3
}

/// Calls timed together in the CPU-bound rows: a clock read costs ~25 ns
/// here, which timing each call alone would add to every sample.
const BATCH: usize = 10;

/// The per-call p50 of `calls` calls of `f` per round, timed in batches of
/// [`BATCH`] (from the first call to the last return; the results are
/// dropped after): the median round, best and worst.
async fn cpu_p50<R, Fut: Future<Output = R>>(
    calls: usize,
    mut f: impl FnMut(u64) -> Fut,
) -> (f64, f64, f64) {
    let mut p50s = Vec::with_capacity(ROUNDS);
    let mut values = Vec::with_capacity(BATCH);
    for _ in 0..ROUNDS {
        let mut slice = Vec::with_capacity(calls / BATCH);
        for batch in 0..calls / BATCH {
            let started = Instant::now();
            for i in 0..BATCH {
                values.push(f((batch * BATCH + i) as u64 % KEYS).await);
            }
            slice.push(started.elapsed() / BATCH as u32);
            values.clear();
        }
        p50s.push(percentile(&mut slice, 0.5).as_secs_f64() * 1e6);
    }
    let (best, worst) = min_max(&p50s);
    (median(&p50s), best, worst)
}

/// Heap allocations per call of `imp` on warm keys.
async fn allocations_per_call(imp: Imp) -> f64 {
    const CALLS: u64 = 20_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..CALLS {
        black_box(imp.call(request(i)).await);
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / CALLS as f64
}

/// The function on the flag-off runtime, awaited in a task already running.
async fn memory_hit(i: u64) -> Chart {
    ours_memory(request(i)).await.expect("memory answers")
}

/// The sync function on the flag-off runtime: no executor at all.
fn memory_hit_sync(i: u64) -> Chart {
    ours_memory_sync(request(i)).expect("memory answers")
}

/// Key + envelope alone: what a hit costs in CPU besides the lookup and the decode.
fn key_and_envelope(body: &[u8], i: u64) -> usize {
    use cached_redis::advanced::envelope::{open, seal};
    let key = KeyBuilder::new("natal")
        .part(request(i))
        .and_then(|builder| builder.build())
        .expect("a valid key");
    let sealed = seal(key.digest(), 1, Duration::from_secs(3600), body);
    open(&sealed, key.digest(), 1).expect("valid").body.len()
}

async fn warm(imps: &[Imp]) {
    for imp in imps {
        for i in 0..KEYS {
            imp.call(request(i)).await;
        }
    }
    // Write-behind: let every write land before hits are measured.
    assert!(cached_redis::runtime().flush(Duration::from_secs(5)).await);
    for i in 0..KEYS {
        drop(memory_hit(i).await);
        drop(memory_hit_sync(i));
    }
}

fn connect(runtime: &tokio::runtime::Runtime, url: &str) -> MultiplexedConnection {
    runtime.block_on(async {
        redis::Client::open(url)
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("floor connects")
    })
}

/// A connection whose driver runs on a current-thread runtime of its own
/// thread, and that answers callers on any executor (no response timeout:
/// it would arm a timer on the caller's runtime).
fn connect_on_own_thread(url: &str) -> MultiplexedConnection {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let client = redis::Client::open(url).expect("valid url");
    let connection = runtime
        .block_on(client.get_multiplexed_async_connection_with_config(&config))
        .expect("connects");
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    connection
}

/// `SCENARIO=… CALLS=n`: warm up, then run one scenario `n` times, untimed —
/// for counting instructions under callgrind.
fn count_only(
    scenario: &str,
    current: &tokio::runtime::Runtime,
    body: &[u8],
    (url, config): (&str, &Config),
) {
    let calls: u64 = std::env::var("CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    current.block_on(warm(&[Imp::FloorHere, Imp::Ours]));
    if scenario.starts_with("near-hit") {
        let near = [Imp::OursNear, Imp::OursNearShared];
        NEAR.set(near_runtime(url, config))
            .map_err(drop)
            .expect("set once");
        // Twice: the first read of each key fills the copy.
        current.block_on(warm(&near));
        current.block_on(async {
            assert!(
                NEAR.get()
                    .expect("set")
                    .flush(Duration::from_secs(60))
                    .await
            );
        });
        current.block_on(warm(&near));
    }
    current.block_on(async {
        for i in 0..calls {
            match scenario {
                "memory-hit" => drop(memory_hit(i).await),
                "memory-hit-sync" => drop(memory_hit_sync(i)),
                "key-envelope" => drop(key_and_envelope(body, i)),
                "redis-hit" => drop(Imp::Ours.call(request(i)).await),
                "near-hit" => drop(Imp::OursNear.call(request(i)).await),
                "near-hit-shared" => drop(Imp::OursNearShared.call(request(i)).await),
                "floor-hit" => drop(Imp::FloorHere.call(request(i)).await),
                other => panic!("unknown SCENARIO {other}"),
            }
        }
    });
}

fn main() {
    let pki_dir = std::env::temp_dir().join(format!("side-by-side-{}", std::process::id()));
    std::fs::create_dir_all(&pki_dir).expect("a directory for certificates");
    let pki = Pki::new(&["127.0.0.1"]).write(&pki_dir);
    let server = RedisServer::builder().tls(&pki, false).start();
    let url = server.url();
    CACHED_URL.set(url.clone()).expect("set once");
    // Default settings, but the environment may raise the deadlines (under
    // callgrind everything runs ~50× slower).
    let config = Config::from_lookup(|name| match name {
        "ENABLE_REDIS_CACHE" => Some("1".to_owned()),
        "REDIS_URL" => Some(url.clone()),
        other => std::env::var(other).ok(),
    })
    .expect("valid config");
    cached_redis::install(Runtime::new(config.clone())).expect("the first runtime");
    let with = |build: &dyn Fn(cached_redis::ConfigBuilder) -> cached_redis::ConfigBuilder| {
        let builder = Config::builder()
            .redis_enabled(true)
            .redis_timeout(config.redis_timeout())
            .connect_timeout(config.connect_timeout());
        Runtime::new(build(builder).build().expect("valid config"))
    };
    let signed = with(&|b| {
        b.redis_url(&url)
            .namespace("signed")
            .hmac_key("a-bench-key-0123456789abcdef012345")
    });
    HMAC.set(signed).map_err(drop).expect("set once");
    let tls_url = server.tls_url();
    let tls = with(&|b| {
        b.redis_url(&tls_url)
            .namespace("tls")
            .redis_ca_cert(&pki.ca)
    });
    TLS.set(tls).map_err(drop).expect("set once");
    let body = postcard::to_allocvec(&compute(request(0)).expect("chart")).expect("encodes");

    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    FLOOR.set(connect(&workers, &url)).expect("set once");
    FLOOR_OWN_THREAD
        .set(connect_on_own_thread(&url))
        .expect("set once");
    FLOOR_CURRENT_THREAD
        .set(connect(&current, &url))
        .expect("set once");

    if let Ok(scenario) = std::env::var("SCENARIO") {
        return count_only(&scenario, &current, &body, (&url, &config));
    }

    println!("payload {} bytes (postcard); {ROUNDS} rounds", body.len());
    let all = [Imp::Floor, Imp::Cached, Imp::Ours];
    let options = [Imp::OursHmac, Imp::OursTls];
    // `ONLY=latency,throughput,miss,current,allocations,cpu,scale,near,compression`
    // runs a subset.
    let only = std::env::var("ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|part| part == name);
    workers.block_on(async {
        warm(&all).await;
        warm(&options).await;
        if wanted("latency") {
            hit_latency(
                "Redis hit, 1 caller, 2 workers: p50",
                &[
                    Imp::Floor,
                    Imp::Cached,
                    Imp::Ours,
                    Imp::OwnThread,
                    Imp::OursHmac,
                    Imp::OursTls,
                ],
            )
            .await
            .print();
        }
        if wanted("throughput") {
            rounds(
                "Redis hit, 64 tasks on 2 workers: throughput",
                "k calls/s",
                &all,
                hit_throughput,
            )
            .await
            .print();
        }
        if wanted("miss") {
            let next = &Cell::new(KEYS);
            rounds("miss, 1 caller: throughput", "k calls/s", &all, |imp| {
                miss_throughput(imp, next)
            })
            .await
            .print();
        }
    });
    // The caller's own runtime drives the floor's connection here; ours is
    // driven by the cache's I/O thread, one hand-off each way.
    if wanted("current") {
        current.block_on(async {
            warm(&[Imp::FloorHere]).await;
            hit_latency(
                "Redis hit, 1 caller, current-thread runtime: p50",
                &[Imp::FloorHere, Imp::Ours, Imp::OwnThread],
            )
            .await
            .print();
        });
    }
    if wanted("allocations") {
        allocations(&workers, &current, &all);
    }
    if wanted("scale") {
        scale(&workers, &config);
    }
    if wanted("near") {
        near(&workers, &url, &config);
    }
    if wanted("cpu") {
        current.block_on(cpu_bound(&body));
    }
    if wanted("compression") {
        compression(&body);
    }
}

/// The compression candidates on the chart value and on ~100 KB of
/// charts: size ratio, and per-call p50 of compressing and decompressing.
fn compression(chart: &[u8]) {
    type Pack = fn(&[u8]) -> Vec<u8>;
    let charts: Vec<Chart> = (0..KEYS)
        .map(|i| compute(request(i)).expect("chart"))
        .collect();
    let hundred_kb = postcard::to_allocvec(&charts).expect("encodes");
    // The same charts as MessagePack, as a self-describing type is stored:
    // every field name repeated.
    let named = rmp_serde::to_vec_named(&charts).expect("encodes");
    let candidates: [(&str, Pack, Pack); 4] = [
        ("lz4 (lz4_flex)", lz4_flex::compress_prepend_size, |bytes| {
            lz4_flex::decompress_size_prepended(bytes).expect("lz4")
        }),
        (
            "zstd -1",
            |bytes| zstd::bulk::compress(bytes, -1).expect("zstd"),
            |bytes| zstd::bulk::decompress(bytes, 1 << 20).expect("zstd"),
        ),
        (
            "zstd 1",
            |bytes| zstd::bulk::compress(bytes, 1).expect("zstd"),
            |bytes| zstd::bulk::decompress(bytes, 1 << 20).expect("zstd"),
        ),
        (
            "zstd 3",
            |bytes| zstd::bulk::compress(bytes, 3).expect("zstd"),
            |bytes| zstd::bulk::decompress(bytes, 1 << 20).expect("zstd"),
        ),
    ];
    println!("\ncompression: size after / before, per-call p50 (µs) over {ROUNDS} rounds");
    let payloads = [
        ("chart", chart),
        ("100 charts, postcard", &hundred_kb[..]),
        ("100 charts, MessagePack", &named[..]),
    ];
    for (name, payload) in payloads {
        println!("  {name}, {} bytes", payload.len());
        for (codec, pack, unpack) in candidates {
            let packed = pack(payload);
            assert_eq!(unpack(&packed), payload);
            let time = |f: &dyn Fn() -> Vec<u8>| {
                let mut p50s: Vec<f64> = (0..ROUNDS)
                    .map(|_| {
                        let mut slice: Vec<Duration> = (0..20)
                            .map(|_| {
                                let started = Instant::now();
                                black_box(f());
                                started.elapsed()
                            })
                            .collect();
                        percentile(&mut slice, 0.5).as_secs_f64() * 1e6
                    })
                    .collect();
                p50s.sort_by(f64::total_cmp);
                median(&p50s)
            };
            println!(
                "    {codec:<16} {:>6.3}   compress {:>8.2}   decompress {:>8.2}",
                packed.len() as f64 / payload.len() as f64,
                time(&|| pack(payload)),
                time(&|| unpack(&packed)),
            );
        }
    }
}

/// The runtime of `ours_near`, with `config`'s deadlines.
fn near_runtime(url: &str, config: &Config) -> Runtime {
    Runtime::new(
        Config::builder()
            .redis_enabled(true)
            .redis_url(url)
            .namespace("near")
            .redis_timeout(config.redis_timeout())
            .connect_timeout(config.connect_timeout())
            .build()
            .expect("valid config"),
    )
}

/// The near-cache: hit throughput against the floor, and how soon a change
/// made through another connection reaches the copy.
fn near(workers: &tokio::runtime::Runtime, url: &str, config: &Config) {
    NEAR.set(near_runtime(url, config))
        .map_err(drop)
        .expect("set once");
    let imps = [
        Imp::Floor,
        Imp::Ours,
        Imp::OursNear,
        Imp::OursMemory,
        Imp::OursNearShared,
        Imp::CloneOnly,
    ];
    workers.block_on(async {
        warm(&imps).await;
        assert!(NEAR.get().expect("set").flush(Duration::from_secs(5)).await);
        // Twice: the first read of each key fills the copy.
        warm(&imps).await;
        rounds(
            "near: Redis hit, 64 tasks on 2 workers: throughput",
            "k calls/s",
            &imps,
            hit_throughput,
        )
        .await
        .print();
        invalidation_latency(url).await;
    });
}

/// 1,000 trials: the key is in the copy; another connection deletes it;
/// how long until a call here no longer gets the old value (it computes).
async fn invalidation_latency(url: &str) {
    const TRIALS: usize = 1_000;
    let mut other = redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let near = NEAR.get().expect("set");
    let req = request(0);
    let computes = || near.stats().total.computes;
    let mut samples = Vec::with_capacity(TRIALS);
    for _ in 0..TRIALS {
        // In the copy: computed if need be, stored, then read from Redis.
        black_box(ours_near(req).await.expect("answers"));
        assert!(near.flush(Duration::from_secs(5)).await);
        black_box(ours_near(req).await.expect("answers"));
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("near:*")
            .query_async(&mut other)
            .await
            .expect("KEYS");
        let before = computes();
        let started = Instant::now();
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut other)
            .await
            .expect("DEL");
        while computes() == before {
            black_box(ours_near(req).await.expect("answers"));
        }
        samples.push(started.elapsed());
    }
    let mut all = samples.clone();
    println!(
        "\nnear: a change made elsewhere, seen here after ({TRIALS} trials, from the DEL's reply)"
    );
    for q in [0.5, 0.9, 0.99, 1.0] {
        println!(
            "  p{:<5} {:>8.1} µs",
            q * 100.0,
            percentile(&mut all, q).as_secs_f64() * 1e6
        );
    }
}

/// One node against a 3-primary cluster on the same machine: the hit
/// path's latency and throughput, for the floor and for ours.
fn scale(workers: &tokio::runtime::Runtime, config: &Config) {
    let cluster = RedisCluster::start(3);
    let runtime = Runtime::new(
        Config::builder()
            .redis_enabled(true)
            .redis_cluster(cluster.urls())
            .redis_timeout(config.redis_timeout())
            .connect_timeout(config.connect_timeout())
            .build()
            .expect("valid config"),
    );
    CLUSTER.set(runtime).map_err(drop).expect("set once");
    let imps = [Imp::Floor, Imp::FloorCluster, Imp::Ours, Imp::OursCluster];
    workers.block_on(async {
        let floor = redis::cluster::ClusterClient::new(cluster.urls())
            .expect("valid urls")
            .get_async_connection()
            .await
            .expect("the cluster floor connects");
        FLOOR_CLUSTER.set(floor).map_err(drop).expect("set once");
        warm(&imps).await;
        assert!(
            CLUSTER
                .get()
                .expect("set")
                .flush(Duration::from_secs(5))
                .await
        );
        hit_latency("scale: Redis hit, 1 caller, 2 workers: p50", &imps)
            .await
            .print();
        rounds(
            "scale: Redis hit, 64 tasks on 2 workers: throughput",
            "k calls/s",
            &imps,
            hit_throughput,
        )
        .await
        .print();
    });
}

fn allocations(workers: &tokio::runtime::Runtime, current: &tokio::runtime::Runtime, all: &[Imp]) {
    println!("\nheap allocations per call (Redis hit; every thread, the client's driver included)");
    workers.block_on(async {
        for &imp in all {
            println!(
                "  {:<11} {:>6.1}",
                imp.name(),
                allocations_per_call(imp).await
            );
        }
    });
    let per_call = |calls: &mut dyn FnMut(u64)| {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for i in 0..20_000 {
            calls(i);
        }
        (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / 20_000.0
    };
    let memory = per_call(&mut |i| {
        current.block_on(async { drop(memory_hit(i).await) });
    }) - per_call(&mut |_| current.block_on(async {}));
    println!("  memory hit  {memory:>6.1}");
    let sync = per_call(&mut |i| drop(memory_hit_sync(i)));
    println!("  memory hit, sync fn {sync:>6.1}");
}

async fn cpu_bound(body: &[u8]) {
    println!(
        "\nCPU-bound paths, per-call p50 per round (µs; timed in batches of {BATCH}): median round, best..worst"
    );
    let row = |name: &str, (p50, best, worst): (f64, f64, f64)| {
        println!("  {name:<46} {p50:>6.2}  {best:.2}..{worst:.2}");
    };
    row("memory hit (flag off)", cpu_p50(5_000, memory_hit).await);
    row(
        "memory hit (flag off), sync fn",
        cpu_p50(5_000, |i| std::future::ready(memory_hit_sync(i))).await,
    );
    row(
        "  of it, decoding the value (the value's own)",
        cpu_p50(5_000, |_| {
            std::future::ready(postcard::from_bytes::<Chart>(body).expect("decodes"))
        })
        .await,
    );
    let chart: Chart = postcard::from_bytes(body).expect("decodes");
    row(
        "  cloning the value instead",
        cpu_p50(5_000, |_| std::future::ready(chart.clone())).await,
    );
    row(
        "key build + envelope seal + open (1 KB)",
        cpu_p50(5_000, |i| std::future::ready(key_and_envelope(body, i))).await,
    );
}
