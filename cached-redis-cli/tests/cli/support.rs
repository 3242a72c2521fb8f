//! Running the binary, and writing real entries through the runtime.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use cached_redis::admin::redis;
use cached_redis::{Config, Runtime, redis_cached};
use cached_redis_test_support::RedisServer;
use serde::{Deserialize, Serialize};

/// Bound for write-behind to land.
pub const SETTLE: Duration = Duration::from_secs(5);

/// What a run of the binary left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// The one line on stderr (failing the test if there are more or none).
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr: {self:#?}");
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "{self:#?}"
        );
        lines[0]
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:#?}");
        assert_eq!(self.stderr, "", "{self:#?}");
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:#?}"))
    }
}

/// Runs the binary with `args` and `env`, and nothing of this process's
/// own Redis or cache settings.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cached-redis-cli"));
    for (name, _) in std::env::vars() {
        if name.starts_with("REDIS_") || name.starts_with("CACHE_") || name == "ENABLE_REDIS_CACHE"
        {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied());
    let started = Instant::now();
    let output = command.output().expect("the binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// [`cli`] against `server`, through `--url`.
pub fn cli_on(server: &RedisServer, args: &[&str]) -> Run {
    let url = server.url();
    let mut all = vec!["--url", &url];
    all.extend_from_slice(args);
    cli(&all, &[])
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub day: u32,
    pub sun_longitude: f64,
}

#[redis_cached(domain = "natal", ttl = 3600, runtime = rt, skip(rt))]
pub fn natal(day: u32, rt: &Runtime) -> Chart {
    Chart {
        day,
        sun_longitude: f64::from(day) * 0.9856,
    }
}

#[redis_cached(domain = "transits", ttl = 600, runtime = rt, skip(rt))]
pub fn transits(day: u32, rt: &Runtime) -> u32 {
    day * 3
}

/// A runtime writing to `url`, signing with `hmac_key` if given.
pub fn runtime(url: &str, hmac_key: Option<&str>) -> Runtime {
    // Patient deadlines: a write that missed the default 100 ms on a loaded
    // machine would leave a key out of the counts these tests assert.
    let patient = std::time::Duration::from_secs(5);
    let mut config = Config::builder()
        .redis_enabled(true)
        .redis_url(url)
        .redis_timeout(patient)
        .connect_timeout(patient);
    if let Some(key) = hmac_key {
        config = config.hmac_key(key);
    }
    Runtime::new(config.build().expect("valid config"))
}

/// Calls `natal` for each day on `rt`, waits for the writes, returns the keys.
pub fn write_natal(rt: &Runtime, days: std::ops::Range<u32>) -> Vec<String> {
    write(rt, days, |day| {
        natal(day, rt);
        natal::key(day, rt)
    })
}

/// Calls `transits` for each day on `rt`, waits for the writes, returns the keys.
pub fn write_transits(rt: &Runtime, days: std::ops::Range<u32>) -> Vec<String> {
    write(rt, days, |day| {
        transits(day, rt);
        transits::key(day, rt)
    })
}

/// Runs `call` for each day (a cached call, then its key), waits for the
/// writes, returns the keys.
fn write(
    rt: &Runtime,
    days: std::ops::Range<u32>,
    call: impl Fn(u32) -> Result<cached_redis::CacheKey, cached_redis::KeyError>,
) -> Vec<String> {
    let keys = days
        .map(|day| call(day).expect("a key").to_string())
        .collect();
    assert!(rt.flush(SETTLE).wait(), "writes landed");
    keys
}

pub fn exists(server: &RedisServer, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(&mut server.connection())
        .expect("EXISTS")
        == 1
}

pub fn strlen(server: &RedisServer, key: &str) -> u64 {
    redis::cmd("STRLEN")
        .arg(key)
        .query(&mut server.connection())
        .expect("STRLEN")
}

pub fn command(server: &RedisServer, args: &[&str]) -> redis::Value {
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query(&mut server.connection()).expect("the command")
}
