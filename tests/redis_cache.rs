//! Caching against a real, throw-away `redis-server`.

mod common;

use std::sync::Arc;

use cached_redis::{Runtime, redis_cached};
use cached_redis_test_support::{RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

#[tokio::test]
async fn test_redis_hit_miss_cycle() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();
    let (a, b) = (
        NatalRequest::new("1990-01-01"),
        NatalRequest::new("1984-06-30"),
    );

    assert_eq!(natal(&a, &rt, &calls).await, compute_chart(&a));
    assert_eq!(natal(&a, &rt, &calls).await, compute_chart(&a));
    assert_eq!(calls.get(), 1, "two equal calls run the body once");

    assert_eq!(natal(&b, &rt, &calls).await, compute_chart(&b));
    assert_eq!(calls.get(), 2, "a different argument runs the body again");

    wait_for_keys(&server, "meridian:v1:natal:*", 2);
    // A second runtime (another process, in effect) is served by Redis.
    let other = redis_runtime(&server.url());
    assert_eq!(natal(&a, &other, &calls).await, compute_chart(&a));
    assert_eq!(calls.get(), 2);
    assert_eq!(other.stats().total.redis_hits, 1);
}

#[redis_cached(domain = "natal", ttl = "1s", runtime = rt, skip(rt, calls))]
fn natal_short(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

#[redis_cached(domain = "natal", runtime = rt, skip(rt, calls))]
fn natal_default_ttl(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

fn pttl(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut server.connection())
        .expect("PTTL")
}

#[test]
fn test_redis_ttl_expiry() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();
    let req = NatalRequest::new("2000-02-29");

    natal_short(&req, &rt, &calls);
    let key = wait_for_keys(&server, "meridian:v1:natal:*", 1).remove(0);
    let ttl = pttl(&server, &key);
    assert!((1..=1000).contains(&ttl), "PTTL {ttl}");

    assert!(
        wait_until(SETTLE, || raw(&server, &key).is_none()),
        "entry outlived its TTL"
    );
    // Memory holds the value for the same TTL, so it has expired there too.
    assert_eq!(natal_short(&req, &rt, &calls), compute_chart(&req));
    assert_eq!(calls.get(), 2, "the body reruns after expiry");

    // Without `ttl` in the attribute, the runtime's default applies.
    let server = RedisServer::start();
    let config = cached_redis::Config::builder()
        .redis_enabled(true)
        .redis_url(server.url())
        .default_ttl(std::time::Duration::from_secs(42))
        .build()
        .unwrap();
    let rt = Runtime::new(config);
    natal_default_ttl(&NatalRequest::new("1970-01-01"), &rt, &Calls::default());
    let key = wait_for_keys(&server, "meridian:v1:natal:*", 1).remove(0);
    let ttl = pttl(&server, &key);
    assert!((40_000..=42_000).contains(&ttl), "PTTL {ttl}");
}

#[redis_cached(domain = "acg-lines", version = "v2", runtime = rt, skip(rt))]
fn acg_lines(lat: i32, rt: &Runtime) -> Vec<i32> {
    vec![lat, -lat]
}

#[redis_cached(domain = "batch", segments(batch_size), hash_len = 12, runtime = rt, skip(rt))]
fn batch(batch_size: u32, ids: Vec<u64>, rt: &Runtime) -> u64 {
    ids.iter().sum::<u64>() * u64::from(batch_size)
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn key_format() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    natal(&NatalRequest::new("1990-01-01"), &rt, &Calls::default()).await;
    acg_lines(51, &rt);
    batch(500, vec![1, 2, 3], &rt);

    let natal_key = wait_for_keys(&server, "meridian:v1:natal:*", 1).remove(0);
    let hash = natal_key.strip_prefix("meridian:v1:natal:").unwrap();
    assert!(is_hex(hash, 16), "{natal_key}");
    println!("natal key: {natal_key}");

    let acg_key = wait_for_keys(&server, "meridian:v2:acg-lines:*", 1).remove(0);
    assert!(
        is_hex(acg_key.strip_prefix("meridian:v2:acg-lines:").unwrap(), 16),
        "{acg_key}"
    );

    let batch_key = wait_for_keys(&server, "meridian:v1:batch:*", 1).remove(0);
    assert!(
        is_hex(
            batch_key.strip_prefix("meridian:v1:batch:500:").unwrap(),
            12
        ),
        "{batch_key}"
    );

    // Keys are a pure function of the input: another runtime computes the same one.
    let again = redis_runtime(&server.url());
    natal(&NatalRequest::new("1990-01-01"), &again, &Calls::default()).await;
    assert_eq!(again.stats().total.redis_hits, 1);
}

#[redis_cached(domain = "natal", runtime = rt, skip(rt, calls))]
async fn fallible(
    req: &NatalRequest,
    fail: bool,
    rt: &Runtime,
    calls: &Calls,
) -> Result<Chart, String> {
    calls.bump();
    if fail {
        Err(format!("no ephemeris for {}", req.born))
    } else {
        Ok(compute_chart(req))
    }
}

#[tokio::test]
async fn err_is_returned_and_never_stored() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();
    let req = NatalRequest::new("1066-10-14");

    for expected_calls in 1..=2 {
        let err = fallible(&req, true, &rt, &calls).await.unwrap_err();
        assert_eq!(err, "no ephemeris for 1066-10-14");
        assert_eq!(
            calls.get(),
            expected_calls,
            "an Err is recomputed every time"
        );
    }
    assert!(rt.flush(SETTLE).await);
    assert!(
        keys(&server, "meridian:*").is_empty(),
        "an Err reached Redis"
    );

    assert_eq!(
        fallible(&req, false, &rt, &calls).await,
        Ok(compute_chart(&req))
    );
    assert_eq!(
        fallible(&req, false, &rt, &calls).await,
        Ok(compute_chart(&req))
    );
    assert_eq!(calls.get(), 3, "Ok is cached");
}

#[redis_cached(domain = "lookup", runtime = rt, skip(rt, calls))]
fn find(id: u32, rt: &Runtime, calls: &Calls) -> Option<String> {
    calls.bump();
    id.is_multiple_of(2).then(|| format!("item {id}"))
}

#[redis_cached(domain = "lookup", cache_none = true, runtime = rt, skip(rt, calls))]
fn find_remembering_none(id: u32, rt: &Runtime, calls: &Calls) -> Option<String> {
    calls.bump();
    id.is_multiple_of(2).then(|| format!("item {id}"))
}

#[test]
fn none_is_cached_only_when_asked() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();

    assert_eq!(find(1, &rt, &calls), None);
    assert_eq!(find(1, &rt, &calls), None);
    assert_eq!(calls.get(), 2, "None is not cached by default");
    assert_eq!(find(2, &rt, &calls), Some("item 2".into()));
    assert_eq!(find(2, &rt, &calls), Some("item 2".into()));
    assert_eq!(calls.get(), 3, "Some is cached");

    let calls = Calls::default();
    assert_eq!(find_remembering_none(1, &rt, &calls), None);
    assert_eq!(find_remembering_none(1, &rt, &calls), None);
    assert_eq!(calls.get(), 1, "cache_none = true stores None");
    assert!(rt.flush(SETTLE).wait());
    assert_eq!(keys(&server, "meridian:v1:lookup:*").len(), 2);
}

struct Ephemeris {
    rt: Runtime,
    calls: Calls,
    offset: f64,
}

impl Ephemeris {
    #[redis_cached(domain = "ephemeris", runtime = &self.rt)]
    fn position(&self, body: &str, day: u32) -> f64 {
        self.calls.bump();
        self.offset + f64::from(day) + body.len() as f64
    }

    #[redis_cached(domain = "ephemeris", runtime = &self.rt)]
    async fn position_mut(&mut self, body: &str, day: u32) -> f64 {
        self.calls.bump();
        self.offset += 0.0;
        self.offset + f64::from(day) * 2.0 + body.len() as f64
    }

    #[redis_cached(domain = "ephemeris", runtime = self.rt.clone())]
    async fn position_arc(self: Arc<Self>, body: String) -> f64 {
        self.calls.bump();
        self.offset + body.len() as f64 * 3.0
    }
}

#[tokio::test]
async fn methods_leave_the_receiver_out_of_the_key() {
    let server = RedisServer::start();
    let mut eph = Ephemeris {
        rt: redis_runtime(&server.url()),
        calls: Calls::default(),
        offset: 0.5,
    };
    assert_eq!(eph.position("moon", 3), 7.5);
    assert_eq!(eph.position("moon", 3), 7.5);
    assert_eq!(eph.position_mut("moon", 3).await, 10.5);
    assert_eq!(eph.position_mut("moon", 3).await, 10.5);
    assert_eq!(
        eph.calls.get(),
        2,
        "each method computed once; the two never share a key"
    );
    let eph = Arc::new(eph);
    assert_eq!(Arc::clone(&eph).position_arc("sun".into()).await, 9.5);
    assert_eq!(Arc::clone(&eph).position_arc("sun".into()).await, 9.5);
    assert_eq!(eph.calls.get(), 3);
}

#[redis_cached(domain = "generic", runtime = rt, skip(rt, calls))]
fn echo<T>(value: T, rt: &Runtime, calls: &Calls) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    calls.bump();
    value
}

#[test]
fn generic_functions_key_by_type() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();
    assert_eq!(echo(7_u8, &rt, &calls), 7);
    assert_eq!(echo(7_u8, &rt, &calls), 7);
    assert_eq!(calls.get(), 1);
    // Same bytes on the wire (postcard 7u8 == 7u16), different type: a different key.
    assert_eq!(echo(7_u16, &rt, &calls), 7);
    assert_eq!(echo(String::from("seven"), &rt, &calls), "seven");
    assert_eq!(calls.get(), 3);
    assert!(rt.flush(SETTLE).wait());
    assert_eq!(keys(&server, "meridian:v1:generic:*").len(), 3);
}

#[redis_cached(domain = "sync", runtime = rt, skip(rt, calls))]
fn blocking_square(x: u64, rt: &Runtime, calls: &Calls) -> u64 {
    calls.bump();
    x * x
}

#[tokio::test(flavor = "current_thread")]
async fn sync_function_inside_a_current_thread_runtime() {
    let server = RedisServer::start();
    let rt = redis_runtime(&server.url());
    let calls = Calls::default();
    assert_eq!(blocking_square(12, &rt, &calls), 144);
    wait_for_keys(&server, "meridian:v1:sync:*", 1);
    assert_eq!(blocking_square(12, &rt, &calls), 144);
    assert_eq!(calls.get(), 1);
    assert_eq!(
        rt.stats().total.redis_hits,
        1,
        "the second call was served by Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_futures_are_send() {
    let server = RedisServer::start();
    let rt = Arc::new(redis_runtime(&server.url()));
    let calls = Arc::new(Calls::default());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (rt, calls) = (Arc::clone(&rt), Arc::clone(&calls));
            tokio::spawn(async move {
                let req = NatalRequest::new(&format!("2001-01-{:02}", i % 2 + 1));
                natal(&req, &rt, &calls).await == compute_chart(&req)
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
}
