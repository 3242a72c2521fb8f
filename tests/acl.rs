//! An ACL user with only what the cache needs (the line `docs/security.md`
//! gives) runs the whole cycle; a user missing one permission falls back and
//! the log names the permission; a password changed on the server is
//! survived, and caching resumes once the configured password is valid
//! again, without a restart.

mod common;

use std::time::{Duration, Instant};

use cached_redis::{ConfigBuilder, Runtime, redis_cached};
use cached_redis_test_support::{RedisServer, wait_until};
use common::*;

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

fn runtime_as(server: &RedisServer, user: &str, password: &str) -> Runtime {
    runtime_with(server, user, password, |config| config)
}

fn runtime_with(
    server: &RedisServer,
    user: &str,
    password: &str,
    tune: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Runtime {
    let config = redis_config(&server.url())
        .redis_username(user)
        .redis_password(password)
        .breaker_open(Duration::from_millis(100));
    Runtime::new(tune(config).build().expect("valid config"))
}

#[tokio::test]
async fn the_documented_acl_line_suffices_for_the_whole_cycle() {
    let server = RedisServer::start();
    acl_setuser(&server, "cache", "cache-pw", CACHE_RULES);
    let (writer, reader) = (
        runtime_as(&server, "cache", "cache-pw"),
        runtime_as(&server, "cache", "cache-pw"),
    );
    let calls = Calls::default();
    let req = NatalRequest::new("1990-01-01");

    // Miss, write, then a hit in another runtime.
    assert_eq!(natal(&req, &writer, &calls).await, compute_chart(&req));
    assert!(writer.flush(SETTLE).await);
    let key = wait_for_keys(&server, "meridian:*", 1).remove(0);
    assert_eq!(natal(&req, &reader, &calls).await, compute_chart(&req));
    assert_eq!(reader.stats().total.redis_hits, 1);

    // A damaged entry and a non-string value are purged (the scripts run
    // GET, TYPE and UNLINK as this user) and recomputed.
    for plant in [
        redis::cmd("SET")
            .arg(&key)
            .arg(b"garbage".as_slice())
            .clone(),
        redis::cmd("LPUSH").arg(&key).arg("x").clone(),
    ] {
        let _: () = redis::cmd("DEL")
            .arg(&key)
            .query(&mut server.connection())
            .unwrap();
        let _: redis::Value = plant.query(&mut server.connection()).unwrap();
        let fresh = runtime_as(&server, "cache", "cache-pw");
        assert_eq!(natal(&req, &fresh, &calls).await, compute_chart(&req));
        assert_eq!(fresh.stats().total.corrupt, 1);
        assert!(fresh.flush(SETTLE).await);
        assert!(
            wait_until(SETTLE, || raw_type(&server, &key) == "string"
                && raw(&server, &key).is_some_and(|b| b != b"garbage")),
            "the bad value was replaced"
        );
    }

    // `clear` walks the domain with SCAN and UNLINK.
    assert!(
        writer
            .clear("natal", "v1")
            .await
            .expect("clear as the cache user")
            >= 1
    );
    assert!(keys(&server, "meridian:*").is_empty());
    assert_eq!(calls.get(), 3, "one computation, then one per purged entry");
    assert!(
        acl_log(&server).is_empty(),
        "denied: {:?}",
        acl_log(&server)
    );
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.connection())
        .unwrap();
    assert!(clients.contains("user=cache"), "{clients}");
}

#[tokio::test]
async fn a_missing_permission_falls_back_and_is_named_in_the_log() {
    let logs = capture_logs(tracing::Level::WARN);
    let server = RedisServer::start();
    acl_setuser(
        &server,
        "cache-noset",
        "pw",
        &CACHE_RULES.replace(" +set", ""),
    );
    // One refused write opens the breaker, for longer than the test.
    let rt = runtime_with(&server, "cache-noset", "pw", |config| {
        config
            .breaker_failures(1)
            .breaker_open(Duration::from_secs(60))
    });
    let calls = Calls::default();
    let req = NatalRequest::new("1990-01-01");
    for _ in 0..3 {
        assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
        // The write is refused before the next call looks.
        assert!(rt.flush(SETTLE).await);
    }
    assert_eq!(calls.get(), 1, "memory serves what Redis would not take");
    assert_eq!(rt.stats().total.memory_hits, 2);
    assert!(keys(&server, "meridian:*").is_empty());
    assert!(
        wait_until(SETTLE, || logs
            .text()
            .lines()
            .any(|line| line.contains("WARN")
                && line.contains("lacks a permission")
                && line.contains("'set'"))),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn a_password_change_is_survived_and_caching_resumes() {
    let server = RedisServer::start();
    acl_setuser(&server, "rotating", "first-pw", CACHE_RULES);
    let rt = runtime_as(&server, "rotating", "first-pw");
    let calls = Calls::default();
    let reqs: Vec<NatalRequest> = (1..=9)
        .map(|d| NatalRequest::new(&format!("2000-01-0{d}")))
        .collect();
    assert_eq!(natal(&reqs[0], &rt, &calls).await, compute_chart(&reqs[0]));
    // That write lands before the change (it is behind the caller).
    assert!(rt.flush(SETTLE).await);
    wait_for_keys(&server, "meridian:*", 1);

    // The server's password changes and the live connections are dropped.
    acl_setuser(&server, "rotating", "second-pw", CACHE_RULES);
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("rotating")
        .query(&mut server.connection())
        .unwrap();
    for req in &reqs[1..4] {
        assert_eq!(
            natal(req, &rt, &calls).await,
            compute_chart(req),
            "correct while rejected"
        );
    }
    assert!(rt.flush(SETTLE).await);
    let written_while_rejected = keys(&server, "meridian:*").len();
    assert_eq!(
        written_while_rejected, 1,
        "only the write before the change"
    );

    // The application's password is valid again: caching resumes by itself.
    acl_setuser(&server, "rotating", "first-pw", CACHE_RULES);
    let deadline = Instant::now() + SETTLE;
    for day in 1.. {
        let req = NatalRequest::new(&format!("2001-01-{day:02}"));
        assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
        if keys(&server, "meridian:*").len() > written_while_rejected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write landed after the password was restored"
        );
        // The breaker's 100 ms window, between attempts.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn raw_type(server: &RedisServer, key: &str) -> String {
    redis::cmd("TYPE")
        .arg(key)
        .query(&mut server.connection())
        .unwrap()
}
