//! `stats`: a canned `/metrics` page served by a tiny HTTP server, and
//! key counts from Redis.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use cached_redis_test_support::RedisServer;

use crate::support::*;

/// What metrics-exporter-prometheus renders for two domains (trimmed).
const PAGE: &str = "\
# TYPE cache_calls_total counter
cache_calls_total{domain=\"natal\",outcome=\"hit\"} 6
cache_calls_total{domain=\"natal\",outcome=\"memory_hit\"} 1
cache_calls_total{domain=\"natal\",outcome=\"miss\"} 2
cache_calls_total{domain=\"natal\",outcome=\"bypass\"} 5
cache_calls_total{domain=\"natal\",outcome=\"fallback\"} 1
cache_calls_total{domain=\"transits\",outcome=\"miss\"} 4
# TYPE cache_redis_errors_total counter
cache_redis_errors_total{domain=\"natal\",kind=\"timeout\"} 3
cache_redis_errors_total{domain=\"transits\",kind=\"connection\"} 1
cache_redis_corrupt_total{domain=\"natal\",reason=\"damaged\"} 2
cache_redis_corrupt_total{domain=\"natal\",reason=\"hmac\"} 0
# TYPE cache_breaker_state gauge
cache_breaker_state{domain=\"natal\"} 2
cache_breaker_state{domain=\"transits\"} 2
cache_compute_seconds_sum{domain=\"natal\"} 0.031489473
";

/// Serves `status` and `body` to every request, on a thread that ends
/// with the test process. Returns the page's URL.
fn serve(status: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // The request, up to its blank line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}/metrics")
}

#[test]
fn metrics_and_key_counts() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    write_natal(&rt, 0..3);
    write_transits(&rt, 0..2);
    server.set("meridian:v2:natal:next", b"x");
    server.set("meridian:stray", b"x");
    server.set("elsewhere:v1:natal:1", b"x");
    let url = serve("200 OK", PAGE);

    let run = cli_on(&server, &["stats", "--metrics-url", &url]);
    run.assert_ok();
    let out = &run.stdout;
    assert!(out.starts_with(&format!("Metrics from {url}\n")), "{out}");
    // natal: hits 6+1+1 of 10 lookups (bypass is none), a miss of 2.
    assert!(
        out.contains("natal        15     8       2     80.0 %             3  open"),
        "{out}"
    );
    assert!(
        out.contains("transits      4     0       4      0.0 %             1  open"),
        "{out}"
    );
    assert!(
        out.contains("total        19     8       6     57.1 %             4  open"),
        "{out}"
    );
    assert!(
        out.contains("Redis errors by kind: connection 1, timeout 3\n"),
        "{out}"
    );
    assert!(
        out.contains("Entries refused by reason: damaged 2\n"),
        "{out}"
    );
    assert!(out.contains("Keys in Redis matching meridian:*\n"), "{out}");
    assert!(out.contains("natal     v1          3\n"), "{out}");
    assert!(out.contains("natal     v2          1\n"), "{out}");
    assert!(out.contains("transits  v1          2\n"), "{out}");
    assert!(out.contains("(other)               1\n"), "{out}");
    assert!(out.contains("total                 7\n"), "{out}");

    let json = cli_on(&server, &["stats", "--metrics-url", &url, "--json"]);
    json.assert_ok();
    let json = json.json();
    let natal = &json["metrics"]["domains"][0];
    assert_eq!(natal["domain"], "natal");
    assert_eq!(natal["hit_ratio"], 0.8);
    assert_eq!(natal["breaker"], "open");
    assert_eq!(json["metrics"]["total"]["redis_errors"], 4);
    assert_eq!(json["keys"]["total"], 7);
    assert_eq!(json["keys"]["other"], 1);
}

#[test]
fn without_a_metrics_url_only_keys_are_counted() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    write_natal(&rt, 0..2);
    let run = cli_on(&server, &["stats", "--json"]);
    run.assert_ok();
    let json = run.json();
    assert!(json["metrics"].is_null());
    assert_eq!(json["keys"]["domains"][0]["keys"], 2);
    let text = cli_on(&server, &["stats"]);
    text.assert_ok();
    assert!(
        text.stdout.starts_with("(no --metrics-url:"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_bad_metrics_endpoint_is_one_line() {
    let server = RedisServer::start();
    let missing = serve("404 Not Found", "no such page\n");
    let run = cli_on(&server, &["stats", "--metrics-url", &missing]);
    assert_eq!(run.code, 4, "{run:#?}");
    assert_eq!(
        run.error_line(),
        format!("cached-redis-cli: metrics: {missing} answered 404 Not Found")
    );

    let refused = cached_redis_test_support::refused_url().replace("redis://", "http://");
    let run = cli_on(&server, &["stats", "--metrics-url", &refused]);
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(
        run.error_line().contains("cannot connect to 127.0.0.1:"),
        "{run:#?}"
    );

    let run = cli_on(
        &server,
        &["stats", "--metrics-url", "https://example.invalid/metrics"],
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.error_line().contains("only http:// URLs are supported"));
}
