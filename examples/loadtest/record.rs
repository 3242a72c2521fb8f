//! What a run measured, second by second: each call's latency (from the
//! caller), and from the runtime's counters and the Redis server's own
//! command count, what happened underneath.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cached_redis::{CacheStats, Runtime};

/// One second of the run.
#[derive(Default, Clone)]
pub struct Second {
    /// Latencies of the calls that finished in this second, in µs.
    pub latencies: Vec<u32>,
    /// The runtime's counters over the second.
    pub stats: CacheStats,
    /// Commands the Redis server executed, when it could tell.
    pub redis_commands: Option<u64>,
}

impl Second {
    pub fn calls(&self) -> u64 {
        self.latencies.len() as u64
    }

    pub fn hit_ratio(&self) -> Option<f64> {
        self.stats.hit_ratio()
    }
}

/// Calls that fell back: Redis failed, or the breaker skipped it.
pub fn fallbacks(stats: &CacheStats) -> u64 {
    stats.redis_errors + stats.redis_skipped
}

/// Latencies, pushed by every calling task.
pub struct Samples {
    start: Instant,
    calls: Mutex<Vec<(u32, u32)>>,
}

impl Samples {
    pub fn new(start: Instant) -> Samples {
        Samples {
            start,
            calls: Mutex::new(Vec::with_capacity(1 << 20)),
        }
    }

    /// A call that finished now, `took` after it was due.
    pub fn record(&self, took: Duration) {
        let second = self.start.elapsed().as_secs() as u32;
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((second, micros));
    }

    pub fn count(&self) -> usize {
        self.calls.lock().map_or(0, |calls| calls.len())
    }

    /// Puts each latency into its second; a call that finished after the
    /// run's `last` second counts in it.
    pub fn into_seconds(self, mut seconds: Vec<Second>, last: usize) -> Vec<Second> {
        let calls = self
            .calls
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seconds.truncate(last + 1);
        for (second, micros) in calls {
            let second = (second as usize).min(last);
            if second >= seconds.len() {
                seconds.resize(second + 1, Second::default());
            }
            seconds[second].latencies.push(micros);
        }
        for second in &mut seconds {
            second.latencies.sort_unstable();
        }
        seconds
    }
}

/// The counters one sampler tick reads, to subtract from the next.
pub struct Counters {
    stats: CacheStats,
    redis_commands: Option<u64>,
}

impl Counters {
    pub fn read(runtime: &Runtime, redis: Option<&mut RedisCounter>) -> Counters {
        Counters {
            stats: runtime.stats().total,
            redis_commands: redis.and_then(RedisCounter::commands),
        }
    }

    /// What happened between `self` and `later`.
    pub fn delta(&self, later: &Counters) -> Second {
        Second {
            latencies: Vec::new(),
            stats: later.stats.since(&self.stats),
            redis_commands: match (self.redis_commands, later.redis_commands) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            },
        }
    }
}

/// Reads how many commands the Redis server has executed (`INFO
/// commandstats`, less its own `INFO`s), over a connection of its own
/// with a short timeout: a paused or killed server gives `None`.
pub struct RedisCounter {
    client: redis::Client,
    connection: Option<redis::Connection>,
}

impl RedisCounter {
    pub fn new(url: &str) -> Option<RedisCounter> {
        Some(RedisCounter {
            client: redis::Client::open(url).ok()?,
            connection: None,
        })
    }

    fn commands(&mut self) -> Option<u64> {
        const LIMIT: Duration = Duration::from_millis(200);
        if self.connection.is_none() {
            let connection = self.client.get_connection_with_timeout(LIMIT).ok()?;
            connection.set_read_timeout(Some(LIMIT)).ok()?;
            connection.set_write_timeout(Some(LIMIT)).ok()?;
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut()?;
        let info: Result<String, _> = redis::cmd("INFO").arg("commandstats").query(connection);
        let Ok(info) = info else {
            self.connection = None;
            return None;
        };
        Some(
            info.lines()
                .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info:"))
                .filter_map(|line| {
                    line.split("calls=")
                        .nth(1)?
                        .split(',')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum(),
        )
    }
}

/// `q` of sorted `latencies`, in µs.
pub fn quantile(latencies: &[u32], q: f64) -> Option<u32> {
    let last = latencies.len().checked_sub(1)?;
    latencies.get((last as f64 * q).round() as usize).copied()
}
