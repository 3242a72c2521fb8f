//! No secret — URL password, `REDIS_PASSWORD`, a client key, an HMAC key —
//! reaches a `Debug` or `Display`, an error, a span field or a log line at
//! any level, on the refused, wrong-password, TLS-failure and timeout
//! paths. One global TRACE subscriber, so this file holds a single test.

mod common;

use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::{Blackhole, Pki, RedisServer, refused_url};
use common::*;

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt))]
async fn natal(req: &NatalRequest, rt: &Runtime) -> Chart {
    compute_chart(req)
}

const URL_SECRET: &str = "url-secret-Zq81";
const ENV_SECRET: &str = "env-secret-Kx27";
const HMAC_SECRET: &str = "hmac-secret-Wv55-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_an_error_or_a_debug_string() {
    let captured = capture_logs(tracing::Level::TRACE);

    let dir = std::env::temp_dir().join(format!("cached-redis-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let files = pki.write(&dir);
    // A distinctive piece of the client key's PEM body.
    let key_body: String = pki
        .client
        .key
        .lines()
        .nth(1)
        .unwrap()
        .chars()
        .take(40)
        .collect();

    // A server whose certificate our CA did not sign.
    let foreign = dir.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    let tls = RedisServer::builder()
        .tls(&Pki::new(&["127.0.0.1"]).write(&foreign), false)
        .start();
    let password_server = RedisServer::builder()
        .password("the-servers-own-pw")
        .start();
    let blackhole = Blackhole::start();
    let with_secret = |url: String| url.replacen("://", &format!("://cache:{URL_SECRET}@"), 1);
    let urls = [
        ("refused", with_secret(refused_url())),
        ("wrong password", with_secret(password_server.url())),
        ("timeout", with_secret(blackhole.url())),
        ("tls failure", with_secret(tls.tls_url())),
    ];
    let mut shown = String::new();
    for (path, url) in urls {
        let client_key = files.client_key.display().to_string();
        let client_cert = files.client_cert.display().to_string();
        let ca = files.ca.display().to_string();
        let tls_path = url.starts_with("rediss://");
        let config = Config::from_lookup(|name| {
            Some(match name {
                "ENABLE_REDIS_CACHE" => "1".to_owned(),
                "REDIS_URL" => url.clone(),
                "REDIS_PASSWORD" => ENV_SECRET.to_owned(),
                "CACHE_HMAC_KEY" => HMAC_SECRET.to_owned(),
                "CACHE_REDIS_TIMEOUT" => "50ms".to_owned(),
                "REDIS_CA_CERT" if tls_path => ca.clone(),
                "REDIS_CLIENT_CERT" if tls_path => client_cert.clone(),
                "REDIS_CLIENT_KEY" if tls_path => client_key.clone(),
                _ => return None,
            })
        })
        .unwrap_or_else(|err| panic!("{path}: {err}"));
        tracing::info!(?config, path, "configured");
        shown += &format!(
            "{config:?}\n{}\n{}\n",
            config.redis_url_redacted(),
            config.redis_target_redacted()
        );
        let rt = Runtime::new(config);
        for i in 0..8 {
            let req = NatalRequest::new(&format!("1990-01-{i:02}"));
            assert_eq!(natal(&req, &rt).await, compute_chart(&req), "{path}");
        }
        match rt.clear("natal", "v1").await {
            Ok(n) => panic!("{path}: clear succeeded ({n})"),
            Err(err) => shown += &format!("{err}\n{err:?}\n"),
        }
    }
    // Configuration errors carry no secret either.
    for bad in [
        format!("redis://cache:{URL_SECRET}@127.0.0.1:notaport"),
        format!("redis://cache:{URL_SECRET}@127.0.0.1:6379/#insecure"),
        format!("rediss://cache:{URL_SECRET}@127.0.0.1:6379/#insecure"),
    ] {
        let err = Config::builder()
            .redis_url(bad)
            .hmac_key("short")
            .build()
            .unwrap_err();
        shown += &format!("{err}\n{err:?}\n");
    }

    let log = captured.text() + &shown;
    assert!(
        log.contains("cannot connect to Redis"),
        "the failures were logged: {log}"
    );
    for secret in [
        URL_SECRET,
        ENV_SECRET,
        HMAC_SECRET,
        &key_body,
        "PRIVATE KEY",
    ] {
        assert!(!log.contains(secret), "{secret:?} leaked:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
