//! What an outage writes to the log: each breaker transition once, never a
//! line per call, never the password, and per call a span with the key's
//! hash but not the arguments. One global subscriber, so this
//! file holds a single test.

mod common;

use std::time::Duration;

use cached_redis::{BreakerState, Config, Runtime, redis_cached};
use cached_redis_test_support::{RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", runtime = rt, skip(rt))]
async fn natal(req: &NatalRequest, rt: &Runtime) -> Chart {
    compute_chart(req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_logs_each_transition_once_and_no_secret() {
    let captured = capture_logs(tracing::Level::TRACE);

    const PASSWORD: &str = "hunter2-correct-horse";
    let server = RedisServer::builder().password(PASSWORD).start();
    let mut admin = server.connection();
    let wrong = server.url().replace(PASSWORD, "not-the-password");
    let config = Config::builder()
        .redis_enabled(true)
        .redis_url(wrong)
        .breaker_open(Duration::from_millis(200))
        .build()
        .unwrap();
    tracing::info!(?config, "configured");
    let rt = Runtime::new(config);
    for i in 0..50 {
        natal(&NatalRequest::new(&format!("1990-01-{i:02}")), &rt).await;
    }
    assert_ne!(rt.breaker_state(), BreakerState::Closed);

    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("not-the-password")
        .query(&mut admin)
        .unwrap();
    let fresh = NatalRequest::new("2000-01-01");
    let closed = wait_until(SETTLE, || {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(natal(&fresh, &rt))
        });
        rt.breaker_state() == BreakerState::Closed
    });
    assert!(closed);

    let log = captured.text();
    assert_eq!(log.matches("circuit breaker opened").count(), 1, "{log}");
    assert_eq!(log.matches("circuit breaker closed").count(), 1, "{log}");
    assert!(!log.contains(PASSWORD), "the real password leaked");
    assert!(
        !log.contains("not-the-password"),
        "the configured password leaked:\n{log}"
    );
    assert!(log.contains("***"), "the redacted URL is logged: {log}");

    // One span per call, with the key's hash part and the outcome, never the arguments.
    assert!(log.contains("cached_call{domain=\"natal\" key=\""), "{log}");
    assert!(
        log.contains("outcome=\"fallback\"") || log.contains("outcome=\"miss\""),
        "{log}"
    );
    assert!(!log.contains("1990-01-"), "an argument reached the log");
}
