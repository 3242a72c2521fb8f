//! Helpers shared by the integration tests (each test file uses a subset).
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cached_redis::{Config, ConfigBuilder, Runtime};
use cached_redis_test_support::{RedisServer, wait_until};
use serde::{Deserialize, Serialize};

/// Generous bound for background effects (write-behind, expiry) to show.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Operation and connect deadline of runtimes whose tests are about what is
/// cached, not about deadlines (those use [`deadline_runtime`]): on a loaded
/// machine, or under the coverage run, a first read — which also opens the
/// connection — can take longer than the default 100 ms, and a call that
/// misses its deadline computes, which such a test would count as a miss.
pub const PATIENT: Duration = Duration::from_secs(5);

/// Redis on, pointed at `url`, with [`PATIENT`] deadlines: what the
/// runtimes of tests about what is cached start from.
pub fn redis_config(url: &str) -> ConfigBuilder {
    Config::builder()
        .redis_enabled(true)
        .redis_url(url)
        .redis_timeout(PATIENT)
        .connect_timeout(PATIENT)
}

/// A runtime of [`redis_config`].
pub fn redis_runtime(url: &str) -> Runtime {
    Runtime::new(redis_config(url).build().expect("valid config"))
}

/// A runtime with Redis off (the embedded default), pointed at `url` anyway.
pub fn memory_runtime(url: &str) -> Runtime {
    Runtime::new(
        Config::builder()
            .redis_enabled(false)
            .redis_url(url)
            .build()
            .expect("valid config"),
    )
}

/// Every key on `server` matching `pattern`.
pub fn keys(server: &RedisServer, pattern: &str) -> Vec<String> {
    server.keys(pattern)
}

/// Waits until exactly `count` keys match `pattern`, and returns them.
pub fn wait_for_keys(server: &RedisServer, pattern: &str, count: usize) -> Vec<String> {
    let appeared = wait_until(SETTLE, || keys(server, pattern).len() == count);
    let found = keys(server, pattern);
    assert!(
        appeared,
        "expected {count} keys matching {pattern}, found {found:?}"
    );
    found
}

/// Raw bytes under `key`.
pub fn raw(server: &RedisServer, key: &str) -> Option<Vec<u8>> {
    server.get(key)
}

/// Overwrites `key` with `bytes`.
pub fn put(server: &RedisServer, key: &str, bytes: &[u8]) {
    server.set(key, bytes)
}

/// Counts how often a function body ran.
#[derive(Default)]
pub struct Calls(AtomicUsize);

impl Calls {
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatalRequest {
    pub born: String,
    pub lat: f64,
    pub lon: f64,
}

impl NatalRequest {
    pub fn new(born: &str) -> Self {
        NatalRequest {
            born: born.to_owned(),
            lat: 51.48,
            lon: -0.0015,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub born: String,
    pub sun_longitude: f64,
}

/// A deterministic stand-in for an expensive computation.
pub fn compute_chart(req: &NatalRequest) -> Chart {
    let sun = req.born.bytes().fold(0_u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    Chart {
        born: req.born.clone(),
        sun_longitude: (sun % 36_000) as f64 / 100.0,
    }
}

/// Redis on, with a connect timeout far above the operation deadline, so
/// that only the 100 ms operation deadline can keep a call short.
pub fn deadline_runtime(url: &str, breaker_open: Duration) -> Runtime {
    let config = Config::builder()
        .redis_enabled(true)
        .redis_url(url)
        .connect_timeout(Duration::from_secs(5))
        .breaker_open(breaker_open)
        .build()
        .expect("valid config");
    Runtime::new(config)
}

/// A call must finish within the 100 ms deadline plus this much slack: well
/// under the 5 s connect timeout (and the client has no response timeout of
/// its own), so a lost deadline fails the test.
pub const DEADLINE_BOUND: Duration = Duration::from_millis(500);

/// Every line the process logs, as the formatter writes it.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the process's log at `level` and above: one global subscriber
/// per test binary, installed by the first call (a binary that captures
/// uses a single level).
pub fn capture_logs(level: tracing::Level) -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
    .clone()
}

/// A private directory for one test's certificate files.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "cached-redis-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The permissions `docs/security.md` documents, after `user cache on >…`.
pub const CACHE_RULES: &str =
    "~meridian:* resetchannels -@all +get +set +unlink +scan +evalsha +eval +type";

/// Creates (or replaces) the ACL user `user` with `password` and `rules`.
pub fn acl_setuser(server: &RedisServer, user: &str, password: &str, rules: &str) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"));
    for rule in rules.split_whitespace() {
        cmd.arg(rule);
    }
    let () = cmd.query(&mut server.connection()).expect("ACL SETUSER");
}

/// Commands the server denied, as `ACL LOG` shows them.
pub fn acl_log(server: &RedisServer) -> Vec<String> {
    let entries: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query(&mut server.connection())
        .expect("ACL LOG");
    entries.iter().map(|entry| format!("{entry:?}")).collect()
}
