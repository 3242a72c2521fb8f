//! `rediss://` against a TLS `redis-server` with certificates made at test
//! time: verified connections cache across runtimes; a certificate that
//! does not verify, or a missing client certificate, is a connection
//! failure — correct values, fallback, bounded latency — never plain TCP.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cached_redis::{Config, ConfigError, Runtime, redis_cached};
use cached_redis_test_support::{Pki, PkiFiles, RedisServer};
use common::*;

#[redis_cached(domain = "natal", ttl = 60, runtime = rt, skip(rt, calls))]
async fn natal(req: &NatalRequest, rt: &Runtime, calls: &Calls) -> Chart {
    calls.bump();
    compute_chart(req)
}

const HOST_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

struct Setup {
    server: RedisServer,
    files: PkiFiles,
    _dir: TempDir,
}

fn tls_server(server_names: &[&str], auth_clients: bool) -> Setup {
    let dir = TempDir::new();
    let files = Pki::new(server_names).write(dir.path());
    let server = RedisServer::builder().tls(&files, auth_clients).start();
    Setup {
        server,
        files,
        _dir: dir,
    }
}

fn runtime(
    url: &str,
    build: impl FnOnce(cached_redis::ConfigBuilder) -> cached_redis::ConfigBuilder,
) -> Runtime {
    let builder = Config::builder()
        .redis_enabled(true)
        .redis_url(url)
        .connect_timeout(Duration::from_secs(2))
        // Generous: a TLS handshake on a loaded test machine can take more
        // than the default 100 ms, which would turn a hit into a fallback.
        .redis_timeout(Duration::from_secs(2));
    Runtime::new(build(builder).build().expect("valid config"))
}

#[tokio::test]
async fn a_verified_server_serves_hits_across_runtimes() {
    let setup = tls_server(&HOST_NAMES, false);
    let ca = setup.files.ca.clone();
    let calls = Calls::default();
    let req = NatalRequest::new("1990-01-01");
    for url in [
        setup.server.tls_url(),
        setup.server.tls_url().replace("127.0.0.1", "localhost"),
    ] {
        let writer = runtime(&url, |b| b.redis_ca_cert(&ca));
        assert_eq!(natal(&req, &writer, &calls).await, compute_chart(&req));
        assert!(writer.flush(SETTLE).await);
        // Another runtime (as another process would) finds it in Redis.
        let reader = runtime(&url, |b| b.redis_ca_cert(&ca));
        assert_eq!(natal(&req, &reader, &calls).await, compute_chart(&req));
        assert_eq!(reader.stats().total.redis_hits, 1, "{url}");
        writer.clear("natal", "v1").await.expect("clear over TLS");
    }
    assert_eq!(calls.get(), 2, "one computation per URL");
}

#[tokio::test]
async fn an_unverified_server_falls_back_and_never_downgrades() {
    // Signed by a CA the client does not trust; and a certificate for
    // another host name, signed by the trusted CA.
    let untrusted = tls_server(&HOST_NAMES, false);
    let other_ca = Pki::new(&HOST_NAMES);
    let dir = TempDir::new();
    let other_files = other_ca.write(dir.path());
    let wrong_name = tls_server(&["example.com"], false);
    for (server, ca) in [
        (&untrusted.server, &other_files.ca),
        (&wrong_name.server, &wrong_name.files.ca),
    ] {
        let rt = runtime(&server.tls_url(), |b| b.redis_ca_cert(ca));
        let calls = Calls::default();
        let req = NatalRequest::new("1990-01-01");
        for _ in 0..3 {
            let started = Instant::now();
            assert_eq!(natal(&req, &rt, &calls).await, compute_chart(&req));
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
        }
        assert_eq!(calls.get(), 1, "memory served after the failed read");
        let stats = rt.stats().total;
        assert!(stats.redis_errors + stats.redis_skipped >= 1, "{stats:?}");
        assert_eq!(stats.redis_hits, 0);
        assert!(rt.flush(SETTLE).await);
        assert!(
            keys(server, "*").is_empty(),
            "nothing was written in clear or otherwise"
        );
    }
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let setup = tls_server(&HOST_NAMES, true);
    let files = &setup.files;
    let req = NatalRequest::new("1990-01-01");

    let without = runtime(&setup.server.tls_url(), |b| b.redis_ca_cert(&files.ca));
    let calls = Calls::default();
    assert_eq!(natal(&req, &without, &calls).await, compute_chart(&req));
    assert!(without.flush(SETTLE).await);
    assert_eq!(without.stats().total.redis_hits, 0);
    assert!(keys(&setup.server, "*").is_empty());

    let with = |b: cached_redis::ConfigBuilder| {
        b.redis_ca_cert(&files.ca)
            .redis_client_cert(&files.client_cert, &files.client_key)
    };
    let writer = runtime(&setup.server.tls_url(), with);
    assert_eq!(natal(&req, &writer, &calls).await, compute_chart(&req));
    assert!(writer.flush(SETTLE).await);
    let reader = runtime(&setup.server.tls_url(), with);
    assert_eq!(natal(&req, &reader, &calls).await, compute_chart(&req));
    assert_eq!(reader.stats().total.redis_hits, 1);
}

#[test]
fn bad_tls_files_are_configuration_errors_naming_the_variable() {
    let dir = TempDir::new();
    let files = Pki::new(&HOST_NAMES).write(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    let env = |vars: &[(&str, &Path)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.display().to_string()))
            .collect();
        Config::from_lookup(move |name| match name {
            "REDIS_URL" => Some("rediss://127.0.0.1:6380".to_owned()),
            _ => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        })
    };
    let named = |result: Result<Config, ConfigError>| match result {
        Err(ConfigError::InvalidFile { name, .. })
        | Err(ConfigError::InvalidSetting { name, .. }) => name,
        other => panic!("expected a file error, got {other:?}"),
    };
    assert_eq!(named(env(&[("REDIS_CA_CERT", &missing)])), "REDIS_CA_CERT");
    assert_eq!(named(env(&[("REDIS_CA_CERT", &garbage)])), "REDIS_CA_CERT");
    assert_eq!(
        named(env(&[
            ("REDIS_CLIENT_CERT", &garbage),
            ("REDIS_CLIENT_KEY", &files.client_key)
        ])),
        "REDIS_CLIENT_CERT"
    );
    assert_eq!(
        named(env(&[
            ("REDIS_CLIENT_CERT", &files.client_cert),
            ("REDIS_CLIENT_KEY", &files.client_cert)
        ])),
        "REDIS_CLIENT_KEY"
    );
    assert_eq!(
        named(env(&[("REDIS_CLIENT_CERT", &files.client_cert)])),
        "REDIS_CLIENT_KEY"
    );
    let ok = env(&[
        ("REDIS_CA_CERT", &files.ca),
        ("REDIS_CLIENT_CERT", &files.client_cert),
        ("REDIS_CLIENT_KEY", &files.client_key),
    ])
    .expect("valid TLS files");
    let shown = format!("{ok:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    // TLS files with a plain URL, and skipping verification, are refused.
    let plain = Config::builder()
        .redis_url("redis://127.0.0.1:6379")
        .redis_ca_cert(&files.ca)
        .build();
    assert!(plain.is_err());
    let insecure = Config::builder()
        .redis_url("rediss://127.0.0.1:6380/#insecure")
        .build();
    assert!(
        matches!(insecure, Err(ConfigError::InvalidRedisUrl { .. })),
        "{insecure:?}"
    );
}
