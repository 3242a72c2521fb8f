//! The companions generated beside a cached function (`natal_chart::key`,
//! `::invalidate`, `::refresh`, `::warm`), on a real Redis: each uses the
//! very key the function's calls use.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cached_redis::{Runtime, WarmReport, redis_cached};
use cached_redis_test_support::RedisServer;
use common::*;

/// What the bodies compute this time (the value changes with it), and how
/// often they ran: one per test, passed to the functions, never hashed.
#[derive(Default)]
struct Epoch {
    value: AtomicU64,
    calls: Calls,
}

impl Epoch {
    fn next(&self) -> u64 {
        self.value.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn now(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }
}

#[redis_cached(domain = "natal", ttl = 600, runtime = rt, skip(rt, epoch))]
async fn natal_chart(req: &NatalRequest, rt: &Runtime, epoch: &Epoch) -> (u64, Chart) {
    epoch.calls.bump();
    (epoch.now(), compute_chart(req))
}

#[redis_cached(domain = "pairs", segments(size), runtime = rt, skip(rt))]
fn pairs<T: serde::Serialize>(size: u32, (a, b): (u8, u8), tag: T, rt: &Runtime) -> u32 {
    size + u32::from(a) + u32::from(b)
}

struct Charts {
    rt: Runtime,
    calls: Calls,
}

impl Charts {
    #[redis_cached(domain = "natal-method", runtime = &self.rt, companions = true)]
    async fn natal(&self, req: &NatalRequest) -> Chart {
        self.calls.bump();
        compute_chart(req)
    }

    #[redis_cached(domain = "day-method", runtime = &self.rt, companions = true)]
    fn day(&self, day: u32) -> u32 {
        self.calls.bump();
        day * 2
    }
}

fn runtime(server: &RedisServer, near: bool) -> Runtime {
    Runtime::new(
        redis_config(&server.url())
            .near(near)
            .build()
            .expect("valid config"),
    )
}

#[tokio::test]
async fn the_key_is_the_one_a_call_writes() {
    let server = RedisServer::start();
    let rt = runtime(&server, false);
    let epoch = Epoch::default();
    let req = NatalRequest::new("1990-01-01");

    #[redis_cached(domain = "local", runtime = rt, skip(rt))]
    async fn local(day: u32, rt: &Runtime) -> u32 {
        day + 1
    }

    natal_chart(&req, &rt, &epoch).await;
    pairs(7, (1, 2), "x", &rt);
    local(3, &rt).await;
    let charts = Charts {
        rt: rt.clone(),
        calls: Calls::default(),
    };
    charts.natal(&req).await;
    charts.day(4);
    assert!(rt.flush(SETTLE).await);

    let mut expected = vec![
        natal_chart::key(&req, &rt, &epoch).unwrap().to_string(),
        pairs::key(7, (1, 2), "x", &rt).unwrap().to_string(),
        local::key(3, &rt).unwrap().to_string(),
        charts.natal_key(&req).unwrap().to_string(),
        charts.day_key(4).unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(wait_for_keys(&server, "meridian:*", 5), expected);
    assert!(
        expected
            .iter()
            .any(|key| key.starts_with("meridian:v1:pairs:7:"))
    );
    // Other arguments, other keys; the generic's type is part of it.
    assert_ne!(
        pairs::key(7, (1, 2), "x", &rt).unwrap(),
        pairs::key(7, (1, 2), 'x', &rt).unwrap()
    );
}

#[tokio::test]
async fn invalidate_removes_the_entry_here_in_redis_and_in_other_processes() {
    let server = RedisServer::start();
    // Two processes, each with its near-cache copy of the entry.
    let (here, there) = (runtime(&server, true), runtime(&server, true));
    let (epoch_here, epoch_there) = (Epoch::default(), Epoch::default());
    let req = NatalRequest::new("1991-02-02");
    let first = epoch_here.next();
    natal_chart(&req, &here, &epoch_here).await;
    assert!(here.flush(SETTLE).await);
    let key = natal_chart::key(&req, &here, &epoch_here).unwrap();
    wait_for_keys(&server, key.as_str(), 1);
    assert_eq!(natal_chart(&req, &there, &epoch_there).await.0, first);
    assert_eq!(natal_chart(&req, &there, &epoch_there).await.0, first);
    assert_eq!(
        epoch_there.calls.get(),
        0,
        "the other process read it from Redis"
    );

    let second = epoch_here.next();
    assert!(
        natal_chart::invalidate(&req, &here, &epoch_here)
            .await
            .unwrap()
    );
    assert!(keys(&server, key.as_str()).is_empty());
    // Here: computed again at once.
    assert_eq!(natal_chart(&req, &here, &epoch_here).await.0, second);
    assert_eq!(epoch_here.calls.get(), 2);
    // Its write landed before the other process looks: else that one
    // could miss, compute the old value and race it into Redis.
    assert!(here.flush(SETTLE).await);
    // There: the near copy is dropped by Redis's invalidation, so the new
    // value shows; without it, that copy would serve the old one forever.
    let deadline = Instant::now() + SETTLE;
    while natal_chart(&req, &there, &epoch_there).await.0 != second {
        assert!(
            Instant::now() < deadline,
            "the other process kept the old value"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(epoch_there.calls.get(), 0, "the new value came from Redis");
    // Nothing left to remove, the second time, once the write has landed.
    assert!(here.flush(SETTLE).await);
    assert!(
        natal_chart::invalidate(&req, &here, &epoch_here)
            .await
            .unwrap()
    );
    assert!(
        !natal_chart::invalidate(&req, &here, &epoch_here)
            .await
            .unwrap()
    );
}

#[test]
fn invalidate_with_redis_off_removes_the_memory_entry() {
    let server = RedisServer::start();
    let rt = memory_runtime(&server.url());
    let charts = Charts {
        rt,
        calls: Calls::default(),
    };
    assert_eq!(charts.day(5), 10);
    assert_eq!(charts.day(5), 10);
    assert_eq!(charts.calls.get(), 1);
    assert!(charts.day_invalidate(5).wait().unwrap());
    assert!(!charts.day_invalidate(5).wait().unwrap());
    assert_eq!(charts.day(5), 10);
    assert_eq!(charts.calls.get(), 2, "computed again after invalidate");
    assert!(keys(&server, "*").is_empty(), "Redis is never contacted");
}

/// An outer function calling an inner one: a refresh of the outer must not
/// refresh the inner.
#[redis_cached(domain = "inner", runtime = rt, skip(rt, epoch))]
async fn inner(day: u32, rt: &Runtime, epoch: &Epoch) -> u64 {
    epoch.calls.bump();
    epoch.now() + u64::from(day)
}

#[redis_cached(domain = "outer", runtime = rt, skip(rt, epoch))]
async fn outer(day: u32, rt: &Runtime, epoch: &Epoch) -> (u64, u64) {
    let inner_value = inner(day, rt, epoch).await;
    (epoch.now(), inner_value)
}

#[tokio::test]
async fn refresh_recomputes_and_stores_but_only_that_call() {
    let server = RedisServer::start();
    let rt = runtime(&server, false);
    let epoch = Epoch::default();
    let first = outer(9, &rt, &epoch).await;
    assert_eq!(epoch.calls.get(), 1);
    // The value changes; the cache still serves the old one.
    epoch.next();
    assert_eq!(outer(9, &rt, &epoch).await, first);

    let refreshed = outer::refresh(9, &rt, &epoch).await;
    assert_eq!(refreshed.0, first.0 + 1, "the outer body ran again");
    assert_eq!(
        refreshed.1, first.1,
        "the inner call was served from the cache"
    );
    assert_eq!(epoch.calls.get(), 1, "the inner body did not run");
    assert_eq!(outer(9, &rt, &epoch).await, refreshed, "and it was stored");
    assert!(rt.flush(SETTLE).await);

    // Another process reads the refreshed value from Redis.
    let other = runtime(&server, false);
    assert_eq!(outer(9, &other, &epoch).await, refreshed);
    assert_eq!(epoch.calls.get(), 1);
}

/// A body that fails for odd days, and counts how many run at once.
struct Tracked {
    rt: Runtime,
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Tracked {
    fn enter(&self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    #[redis_cached(domain = "warm-async", runtime = &self.rt, companions = true)]
    async fn transit(&self, day: u32) -> Result<u32, String> {
        self.enter();
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.leave();
        if day % 2 == 1 {
            Err(format!("day {day}"))
        } else {
            Ok(day)
        }
    }

    #[redis_cached(domain = "warm-sync", runtime = &self.rt, companions = true)]
    fn progression(&self, day: u32) -> Result<u32, String> {
        self.enter();
        std::thread::sleep(Duration::from_millis(20));
        self.leave();
        if day % 2 == 1 {
            Err(format!("day {day}"))
        } else {
            Ok(day)
        }
    }
}

fn tracked(server: &RedisServer) -> Tracked {
    Tracked {
        rt: runtime(server, false),
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    }
}

/// Checks a warm-up of days 0..20 after days 0, 2, 4 were cached.
fn check_warm(
    server: &RedisServer,
    tracked: &Tracked,
    report: WarmReport,
    seen: &[WarmReport],
    domain: &str,
) {
    assert_eq!(
        (report.hits, report.computed, report.failed),
        (3, 7, 10),
        "3 cached, 7 even days computed, 10 odd days failed"
    );
    assert_eq!(seen.len(), 20, "progress after every call");
    assert!(
        seen.windows(2)
            .all(|pair| pair[1].total() == pair[0].total() + 1)
    );
    assert_eq!(seen.last(), Some(&report));
    let most = tracked.most.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "{most} bodies ran at once, at most 4 asked"
    );
    // Only the successes are stored.
    assert_eq!(
        wait_for_keys(server, &format!("meridian:v1:{domain}:*"), 10).len(),
        10
    );
}

#[tokio::test]
async fn warm_computes_the_missing_with_bounded_concurrency() {
    let server = RedisServer::start();
    let tracked = tracked(&server);
    for day in [0, 2, 4] {
        tracked.transit(day).await.unwrap();
    }
    assert!(tracked.rt.flush(SETTLE).await);
    tracked.most.store(0, Ordering::SeqCst);
    let mut seen = Vec::new();
    let report = tracked
        .transit_warm(0..20, 4, |progress| seen.push(*progress))
        .await;
    assert!(tracked.rt.flush(SETTLE).await);
    check_warm(&server, &tracked, report, &seen, "warm-async");
}

#[test]
fn warm_of_a_sync_function_runs_on_threads() {
    let server = RedisServer::start();
    let tracked = tracked(&server);
    for day in [0, 2, 4] {
        tracked.progression(day).unwrap();
    }
    assert!(tracked.rt.flush(SETTLE).wait());
    tracked.most.store(0, Ordering::SeqCst);
    let seen = Mutex::new(Vec::new());
    let report = tracked.progression_warm(0..20, 4, |progress| {
        seen.lock().unwrap().push(*progress);
    });
    assert!(tracked.rt.flush(SETTLE).wait());
    check_warm(
        &server,
        &tracked,
        report,
        &seen.into_inner().unwrap(),
        "warm-sync",
    );
}

#[tokio::test]
async fn warm_of_a_free_function_takes_argument_tuples() {
    let server = RedisServer::start();
    let rt = runtime(&server, false);
    let epoch = Epoch::default();
    let requests: Vec<NatalRequest> = (1..=5)
        .map(|day| NatalRequest::new(&format!("2000-01-0{day}")))
        .collect();
    let items = || requests.iter().map(|req| (req, &rt, &epoch));
    let report = natal_chart::warm(items(), 2, |_| {}).await;
    assert_eq!((report.hits, report.computed, report.failed), (0, 5, 0));
    let again = natal_chart::warm(items(), 2, |_| {}).await;
    assert_eq!((again.hits, again.computed, again.failed), (5, 0, 0));
    assert_eq!(epoch.calls.get(), 5);
}
