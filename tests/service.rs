//! The example HTTP service against a real Redis: requests go in, and the
//! Prometheus `/metrics` page, scraped over HTTP, shows what the cache did —
//! a miss then hits, errors once Redis is killed, memory hits while the
//! breaker is open. One global metrics recorder, so one test in this file.

#[allow(dead_code)]
#[path = "../examples/natal_service.rs"]
mod natal_service;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use cached_redis::{BreakerState, Config, Runtime};
use cached_redis_test_support::{RedisServer, wait_until};

/// A plain HTTP/1.1 GET; the body, or a panic with the status line.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("service reachable");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    body.to_owned()
}

/// The sum of every series of `name` whose labels include all of `labels`.
fn metric(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

fn natal_path(born: &str) -> String {
    format!("/natal?born={born}&lat=51.48&lon=0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_misses_hits_errors_and_fallbacks() {
    let metrics = natal_service::install_metrics().expect("the only recorder in this test binary");
    let server = RedisServer::start();
    // Generous deadlines: the first phase counts exact misses and hits, which
    // a stall on a loaded machine must not turn into fallbacks. The kill
    // phase is refused at once, so it does not wait on them.
    let config = Config::builder()
        .redis_enabled(true)
        .redis_url(server.url())
        .redis_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .breaker_open(Duration::from_secs(60))
        .build()
        .unwrap();
    let runtime = Runtime::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, natal_service::app(runtime.clone(), metrics)).into_future());
    let natal = [("domain", "natal")];

    // One miss, then a Redis hit.
    let first = tokio::task::spawn_blocking(move || get(addr, &natal_path("1990-01-01")))
        .await
        .unwrap();
    assert!(first.contains("\"born\":\"1990-01-01\""), "{first}");
    assert!(runtime.flush(Duration::from_secs(5)).await);
    let again = tokio::task::spawn_blocking(move || get(addr, &natal_path("1990-01-01")))
        .await
        .unwrap();
    assert_eq!(first, again);
    let page = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert_eq!(
        metric(&page, "cache_redis_misses_total", &natal),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric(&page, "cache_redis_hits_total", &natal),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric(&page, "cache_redis_errors_total", &natal),
        0.0,
        "{page}"
    );
    assert!(
        metric(&page, "cache_compute_seconds_count", &natal) >= 1.0,
        "{page}"
    );
    assert!(
        metric(
            &page,
            "cache_redis_op_seconds_count",
            &[("domain", "natal"), ("op", "get")]
        ) >= 2.0,
        "{page}"
    );
    assert_eq!(metric(&page, "cache_breaker_state", &natal), 0.0, "{page}");

    // Redis killed: errors are counted, the breaker opens, memory serves.
    server.kill();
    let mut day = 1;
    let opened = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), || {
            day += 1;
            get(addr, &natal_path(&format!("2001-01-{day:02}")));
            runtime.breaker_state() == BreakerState::Open
        })
    });
    assert!(opened, "{:?}", runtime.stats());
    // The gauge is published just after the state changes, by the I/O thread.
    let published = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(5), || {
            metric(&get(addr, "/metrics"), "cache_breaker_state", &natal) == 2.0
        })
    });
    assert!(published);
    let served_from_memory =
        tokio::task::spawn_blocking(move || get(addr, &natal_path("1990-01-01")))
            .await
            .unwrap();
    assert_eq!(served_from_memory, first);
    let page = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(
        metric(
            &page,
            "cache_redis_errors_total",
            &[("domain", "natal"), ("kind", "connection")]
        ) >= 1.0,
        "{page}"
    );
    assert_eq!(metric(&page, "cache_breaker_state", &natal), 2.0, "{page}");
    assert!(
        metric(&page, "cache_memory_hits_total", &natal) >= 1.0,
        "{page}"
    );
    assert!(
        metric(&page, "cache_redis_skipped_total", &natal) >= 1.0,
        "{page}"
    );

    // The plain-struct view agrees, with no exporter involved.
    let stats = runtime.stats();
    assert_eq!(stats.domain("natal").redis_hits, 1);
    assert_eq!(stats.total.redis_misses, stats.domain("natal").redis_misses);
    assert!(stats.hit_ratio().is_some());
}
