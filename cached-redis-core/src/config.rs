//! Runtime configuration, from code or from the environment.

use std::fmt;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::key::{DEFAULT_NAMESPACE, is_valid_label};
use crate::redis::topology::{CLUSTER_URLS, SENTINEL_MASTER, SENTINEL_URLS, Topology};
use crate::redis::{Credentials, Secret};
use crate::signing::{MIN_KEY_LEN, Signer};

/// Default `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default TTL for functions that do not set one (`CACHE_DEFAULT_TTL`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Default bound on memory entries (`CACHE_MEMORY_CAPACITY`).
pub const DEFAULT_MEMORY_CAPACITY: u64 = 10_000;
/// Default deadline of one Redis operation (`CACHE_REDIS_TIMEOUT`).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// Default deadline of establishing a Redis connection (`CACHE_REDIS_CONNECT_TIMEOUT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default extra attempts after a transient Redis failure (`CACHE_REDIS_RETRIES`).
pub const DEFAULT_REDIS_RETRIES: u32 = 1;
/// Default consecutive failures that open the circuit breaker (`CACHE_BREAKER_FAILURES`).
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default time the breaker stays open before probing (`CACHE_BREAKER_OPEN`).
pub const DEFAULT_BREAKER_OPEN: Duration = Duration::from_secs(30);
/// Default longest wait for a concurrent call's result (`CACHE_SINGLE_FLIGHT_WAIT`).
pub const DEFAULT_SINGLE_FLIGHT_WAIT: Duration = Duration::from_secs(10);
/// Longest accepted Redis deadline: beyond it a "cache" is an outage amplifier.
const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest accepted breaker window and single-flight wait.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Most Redis writes that may be in flight.
const MAX_PENDING_WRITES: usize = 1 << 20;
/// Default largest sealed value stored (`CACHE_MAX_VALUE_BYTES`), 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// Default size from which a value is compressed (`CACHE_COMPRESS_MIN_BYTES`), 1 KiB.
pub const DEFAULT_COMPRESS_MIN_BYTES: usize = 1 << 10;
/// Default bound on the memory cache's size (`CACHE_MEMORY_MAX_BYTES`), 64 MiB.
pub const DEFAULT_MEMORY_MAX_BYTES: u64 = 64 << 20;
/// Largest accepted value limit: Redis itself refuses strings over 512 MiB.
const MAX_VALUE_BYTES: usize = 512 << 20;
/// Default bound on Redis writes in flight; more are dropped and counted.
pub const DEFAULT_MAX_PENDING_WRITES: usize = 1024;

/// A configuration value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable holds a value of the wrong form.
    #[error("{name}={value:?} is invalid: expected {expected}")]
    InvalidVar {
        /// The variable, e.g. `ENABLE_REDIS_CACHE`.
        name: &'static str,
        /// What it held.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// The Redis URL does not parse. The URL is not repeated: it may hold a password.
    #[error("{name} is not a valid Redis URL: {reason}")]
    InvalidRedisUrl {
        /// Where the URL came from (`REDIS_URL`, or `Config::redis_url`).
        name: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// A file named by a setting cannot be read or holds no usable PEM.
    #[error("{name}: {path}: {reason}")]
    InvalidFile {
        /// The variable naming the file, e.g. `REDIS_CA_CERT`.
        name: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it (never its contents).
        reason: String,
    },
    /// A value set in code is out of range.
    #[error("{name} is invalid: expected {expected}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
}

/// What a [`Runtime`](crate::Runtime) does and where it connects.
///
/// ```
/// use std::time::Duration;
/// use cached_redis_core::Config;
///
/// let config = Config::builder()
///     .redis_enabled(true)
///     .redis_url("redis://127.0.0.1:6379")
///     .namespace("meridian")
///     .default_ttl(Duration::from_secs(600))
///     .build()?;
/// assert!(config.redis_enabled());
/// # Ok::<(), cached_redis_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) redis_enabled: bool,
    pub(crate) redis_url: String,
    pub(crate) topology: Topology,
    pub(crate) namespace: String,
    pub(crate) default_ttl: Duration,
    pub(crate) memory_capacity: u64,
    pub(crate) memory_fallback: bool,
    pub(crate) redis_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) redis_retries: u32,
    pub(crate) breaker_failures: u32,
    pub(crate) breaker_open: Duration,
    pub(crate) single_flight_wait: Duration,
    pub(crate) lock: bool,
    pub(crate) near: Option<Duration>,
    pub(crate) max_pending_writes: usize,
    pub(crate) max_value_bytes: usize,
    pub(crate) compress_min_bytes: usize,
    pub(crate) memory_max_bytes: u64,
    pub(crate) credentials: Credentials,
    pub(crate) hmac_key: Option<Secret<Vec<u8>>>,
    pub(crate) hmac_key_previous: Option<Secret<Vec<u8>>>,
}

impl Default for Config {
    /// The embedded default: Redis off, memory cache on.
    fn default() -> Self {
        Config {
            redis_enabled: false,
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            topology: Topology::Single,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            default_ttl: DEFAULT_TTL,
            memory_capacity: DEFAULT_MEMORY_CAPACITY,
            memory_fallback: true,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            redis_retries: DEFAULT_REDIS_RETRIES,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_open: DEFAULT_BREAKER_OPEN,
            single_flight_wait: DEFAULT_SINGLE_FLIGHT_WAIT,
            lock: false,
            near: None,
            max_pending_writes: DEFAULT_MAX_PENDING_WRITES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            compress_min_bytes: DEFAULT_COMPRESS_MIN_BYTES,
            memory_max_bytes: DEFAULT_MEMORY_MAX_BYTES,
            credentials: Credentials::default(),
            hmac_key: None,
            hmac_key_previous: None,
        }
    }
}

impl Config {
    /// Starts from the embedded default.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
        }
    }

    /// Reads the variables listed in `docs/configuration.md`.
    ///
    /// ```
    /// let config = cached_redis_core::Config::from_env()?;
    /// # Ok::<(), cached_redis_core::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Config::from_env), reading variables through `lookup`
    /// (for tests and for configuration systems other than the process environment).
    ///
    /// ```
    /// use cached_redis_core::Config;
    ///
    /// let config = Config::from_lookup(|name| match name {
    ///     "ENABLE_REDIS_CACHE" => Some("on".to_owned()),
    ///     "CACHE_DEFAULT_TTL" => Some("15m".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert!(config.redis_enabled());
    /// assert_eq!(config.default_ttl().as_secs(), 900);
    /// # Ok::<(), cached_redis_core::ConfigError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut builder = Config::builder();
        let var = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        };
        if let Some((name, value)) = var("ENABLE_REDIS_CACHE") {
            builder = builder.redis_enabled(parse_flag(name, &value)?);
        }
        if let Some((_, value)) = var("REDIS_URL") {
            builder = builder.redis_url(value);
        }
        match (var(CLUSTER_URLS), var(SENTINEL_URLS), var(SENTINEL_MASTER)) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError::InvalidSetting {
                    name: CLUSTER_URLS,
                    expected: "either REDIS_CLUSTER_URLS or REDIS_SENTINEL_URLS, not both",
                });
            }
            (Some((_, seeds)), None, _) => {
                builder = builder.redis_cluster(Topology::url_list(&seeds));
            }
            (None, Some((_, sentinels)), Some((_, master))) => {
                builder = builder.redis_sentinel(Topology::url_list(&sentinels), master.trim());
            }
            (None, Some(_), None) => {
                return Err(ConfigError::InvalidSetting {
                    name: SENTINEL_MASTER,
                    expected: "the master's name whenever REDIS_SENTINEL_URLS is set",
                });
            }
            (None, None, _) => {}
        }
        if let Some((_, value)) = var("REDIS_USERNAME") {
            builder = builder.redis_username(value);
        }
        // Not trimmed or filtered when blank: a password is taken as given.
        if let Some(value) = lookup("REDIS_PASSWORD").filter(|v| !v.is_empty()) {
            builder = builder.redis_password(value);
        }
        if let Some((_, value)) = var("REDIS_CA_CERT") {
            builder = builder.redis_ca_cert(value);
        }
        // One without the other is refused when the configuration is built.
        builder.config.credentials.client_cert = var("REDIS_CLIENT_CERT").map(|(_, v)| v.into());
        builder.config.credentials.client_key = var("REDIS_CLIENT_KEY").map(|(_, v)| v.into());
        // Keys are taken byte for byte, never trimmed.
        if let Some(value) = lookup("CACHE_HMAC_KEY").filter(|v| !v.is_empty()) {
            builder = builder.hmac_key(value);
        }
        if let Some(value) = lookup("CACHE_HMAC_KEY_PREVIOUS").filter(|v| !v.is_empty()) {
            builder = builder.hmac_key_previous(value);
        }
        if let Some((_, value)) = var("CACHE_NAMESPACE") {
            builder = builder.namespace(value);
        }
        if let Some((name, value)) = var("CACHE_DEFAULT_TTL") {
            builder = builder.default_ttl(parse_env_duration(name, &value)?);
        }
        if let Some((name, value)) = var("CACHE_MEMORY_CAPACITY") {
            builder =
                builder.memory_capacity(parse_count(name, &value, "a whole number of entries")?);
        }
        if let Some((name, value)) = var("CACHE_MEMORY_MAX_BYTES") {
            builder =
                builder.memory_max_bytes(parse_count(name, &value, "a whole number of bytes")?);
        }
        if let Some((name, value)) = var("CACHE_MAX_VALUE_BYTES") {
            builder =
                builder.max_value_bytes(parse_count(name, &value, "a whole number of bytes")?);
        }
        if let Some((name, value)) = var("CACHE_COMPRESS_MIN_BYTES") {
            builder =
                builder.compress_min_bytes(parse_count(name, &value, "a whole number of bytes")?);
        }
        if let Some((name, value)) = var("CACHE_MEMORY_FALLBACK") {
            builder = builder.memory_fallback(parse_flag(name, &value)?);
        }
        if let Some((name, value)) = var("CACHE_REDIS_TIMEOUT") {
            builder = builder.redis_timeout(parse_env_duration(name, &value)?);
        }
        if let Some((name, value)) = var("CACHE_REDIS_CONNECT_TIMEOUT") {
            builder = builder.connect_timeout(parse_env_duration(name, &value)?);
        }
        if let Some((name, value)) = var("CACHE_REDIS_RETRIES") {
            builder =
                builder.redis_retries(parse_count(name, &value, "a whole number of retries")?);
        }
        if let Some((name, value)) = var("CACHE_BREAKER_FAILURES") {
            const EXPECTED: &str = "a whole number of failures, at least 1";
            let failures: u32 = parse_count(name, &value, EXPECTED)?;
            if failures == 0 {
                return Err(ConfigError::InvalidVar {
                    name,
                    value,
                    expected: EXPECTED,
                });
            }
            builder = builder.breaker_failures(failures);
        }
        if let Some((name, value)) = var("CACHE_BREAKER_OPEN") {
            builder = builder.breaker_open(parse_env_duration(name, &value)?);
        }
        if let Some((name, value)) = var("CACHE_SINGLE_FLIGHT_WAIT") {
            builder = builder.single_flight_wait(parse_env_duration(name, &value)?);
        }
        if let Some((name, value)) = var("CACHE_LOCK") {
            builder = builder.lock(parse_flag(name, &value)?);
        }
        if let Some((name, value)) = var("CACHE_NEAR") {
            builder = match parse_flag(name, &value) {
                Ok(on) => builder.near(on),
                Err(_) => builder.near_within(parse_duration(value.trim()).map_err(|_| {
                    ConfigError::InvalidVar {
                        name,
                        value: value.clone(),
                        expected: "on, off, or a duration such as 30s bounding each copy",
                    }
                })?),
            };
        }
        builder.build_named("REDIS_URL", "CACHE_NAMESPACE")
    }

    /// Whether Redis is used at all (`ENABLE_REDIS_CACHE`).
    pub fn redis_enabled(&self) -> bool {
        self.redis_enabled
    }
    /// The key namespace (`CACHE_NAMESPACE`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The TTL of functions that do not set one (`CACHE_DEFAULT_TTL`).
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }
    /// Maximum memory entries (`CACHE_MEMORY_CAPACITY`).
    pub fn memory_capacity(&self) -> u64 {
        self.memory_capacity
    }
    /// Largest sealed value stored (`CACHE_MAX_VALUE_BYTES`).
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }
    /// Size from which an encoded value is compressed (`CACHE_COMPRESS_MIN_BYTES`).
    pub fn compress_min_bytes(&self) -> usize {
        self.compress_min_bytes
    }
    /// Bound on the bytes the memory cache holds (`CACHE_MEMORY_MAX_BYTES`).
    pub fn memory_max_bytes(&self) -> u64 {
        self.memory_max_bytes
    }
    /// Whether the memory cache serves (`CACHE_MEMORY_FALLBACK`).
    pub fn memory_fallback(&self) -> bool {
        self.memory_fallback
    }
    /// Deadline of one Redis operation (`CACHE_REDIS_TIMEOUT`).
    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }
    /// Deadline of establishing a connection (`CACHE_REDIS_CONNECT_TIMEOUT`).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// Extra attempts after a transient Redis failure (`CACHE_REDIS_RETRIES`).
    pub fn redis_retries(&self) -> u32 {
        self.redis_retries
    }
    /// Consecutive failures that open the breaker (`CACHE_BREAKER_FAILURES`).
    pub fn breaker_failures(&self) -> u32 {
        self.breaker_failures
    }
    /// How long the breaker stays open before a probe (`CACHE_BREAKER_OPEN`).
    pub fn breaker_open(&self) -> Duration {
        self.breaker_open
    }
    /// Longest wait for a concurrent call's result (`CACHE_SINGLE_FLIGHT_WAIT`).
    pub fn single_flight_wait(&self) -> Duration {
        self.single_flight_wait
    }
    /// Whether a missed key is computed by one process only, for functions
    /// that do not say (`CACHE_LOCK`).
    pub fn lock(&self) -> bool {
        self.lock
    }
    /// For functions that do not say: `None` without a near-cache, else how
    /// long a copy may serve without Redis (`Duration::MAX`: as long as the
    /// entry lives) (`CACHE_NEAR`).
    pub fn near(&self) -> Option<Duration> {
        self.near
    }
    /// What entries are signed and checked with, if a key is set.
    pub(crate) fn signer(&self) -> Option<Signer> {
        let key = self.hmac_key.as_ref()?;
        Signer::new(&key.0, self.hmac_key_previous.as_ref().map(|k| &k.0[..]))
    }
    /// The Redis URL with any password replaced by `***`, safe to log.
    pub fn redis_url_redacted(&self) -> String {
        redact_url(&self.redis_url)
    }
    /// Where Redis is — the URL, a cluster's seeds, or a Sentinel master
    /// and its Sentinels — with passwords replaced by `***`, safe to log.
    ///
    /// ```
    /// let config = cached_redis_core::Config::builder()
    ///     .redis_cluster(["redis://:pw@10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()?;
    /// assert_eq!(
    ///     config.redis_target_redacted(),
    ///     "the cluster of redis://:***@10.0.0.1:7000, redis://10.0.0.2:7000"
    /// );
    /// # Ok::<(), cached_redis_core::ConfigError>(())
    /// ```
    pub fn redis_target_redacted(&self) -> String {
        self.topology.describe(&self.redis_url)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redis_enabled", &self.redis_enabled)
            .field("redis_url", &self.redis_url_redacted())
            .field("topology", &self.topology)
            .field("namespace", &self.namespace)
            .field("default_ttl", &self.default_ttl)
            .field("memory_capacity", &self.memory_capacity)
            .field("memory_fallback", &self.memory_fallback)
            .field("redis_timeout", &self.redis_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("redis_retries", &self.redis_retries)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_open", &self.breaker_open)
            .field("single_flight_wait", &self.single_flight_wait)
            .field("lock", &self.lock)
            .field("near", &self.near)
            .field("max_pending_writes", &self.max_pending_writes)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("compress_min_bytes", &self.compress_min_bytes)
            .field("memory_max_bytes", &self.memory_max_bytes)
            .field("credentials", &self.credentials)
            .field("hmac_key", &self.hmac_key)
            .field("hmac_key_previous", &self.hmac_key_previous)
            .finish()
    }
}

/// Builds a [`Config`]; every setting starts at the embedded default.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Turns Redis on or off (default off).
    pub fn redis_enabled(mut self, enabled: bool) -> Self {
        self.config.redis_enabled = enabled;
        self
    }
    /// Sets the Redis URL, e.g. `redis://:password@host:6379/0`.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.redis_url = url.into();
        self
    }
    /// Talks to a Redis Cluster found through these seed nodes
    /// (`REDIS_CLUSTER_URLS`) instead of the one node at
    /// [`redis_url`](Self::redis_url). All `redis://`, or all `rediss://`;
    /// username, password and TLS settings apply to every node.
    pub fn redis_cluster<S: Into<String>>(mut self, seeds: impl IntoIterator<Item = S>) -> Self {
        self.config.topology = Topology::Cluster {
            seeds: seeds.into_iter().map(Into::into).collect(),
        };
        self
    }
    /// Talks to the master these Sentinels know as `master`
    /// (`REDIS_SENTINEL_URLS`, `REDIS_SENTINEL_MASTER`), found again after
    /// a failover, instead of the one node at [`redis_url`](Self::redis_url).
    /// The Sentinels authenticate with what their URLs carry; the master
    /// with the username and password set here (or in `REDIS_USERNAME`,
    /// `REDIS_PASSWORD`). TLS settings apply to both.
    pub fn redis_sentinel<S: Into<String>>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> Self {
        self.config.topology = Topology::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master: master.into(),
        };
        self
    }
    /// Sets the username to authenticate as (an ACL user); wins over the URL's.
    pub fn redis_username(mut self, username: impl Into<String>) -> Self {
        self.config.credentials.username = Some(username.into());
        self
    }
    /// Sets the password to authenticate with; wins over the URL's, so a
    /// secret store's value need not be spliced into a URL. Never printed.
    pub fn redis_password(mut self, password: impl Into<String>) -> Self {
        self.config.credentials.password = Some(Secret(password.into()));
        self
    }
    /// Trusts the CAs in this PEM file (instead of the system's roots) for
    /// `rediss://` connections (`REDIS_CA_CERT`).
    pub fn redis_ca_cert(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.config.credentials.ca_cert = Some(pem_file.into());
        self
    }
    /// Presents this client certificate and key (PEM files) to `rediss://`
    /// servers that require one (`REDIS_CLIENT_CERT`, `REDIS_CLIENT_KEY`).
    pub fn redis_client_cert(
        mut self,
        cert_file: impl Into<std::path::PathBuf>,
        key_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.config.credentials.client_cert = Some(cert_file.into());
        self.config.credentials.client_key = Some(key_file.into());
        self
    }
    /// Sets the key namespace (`[A-Za-z0-9_.-]+`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = namespace.into();
        self
    }
    /// Sets the TTL used when a function does not set one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.config.default_ttl = ttl;
        self
    }
    /// Bounds the memory cache to this many entries.
    pub fn memory_capacity(mut self, entries: u64) -> Self {
        self.config.memory_capacity = entries;
        self
    }
    /// `false` disables the memory cache: with Redis off or failing, the body always runs.
    pub fn memory_fallback(mut self, enabled: bool) -> Self {
        self.config.memory_fallback = enabled;
        self
    }
    /// Sets the deadline of one Redis operation (connection included).
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.config.redis_timeout = timeout;
        self
    }
    /// Sets the deadline of establishing a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }
    /// Sets the extra attempts after a transient failure, all within the operation deadline.
    pub fn redis_retries(mut self, retries: u32) -> Self {
        self.config.redis_retries = retries;
        self
    }
    /// Sets how many consecutive failures open the circuit breaker (at least 1).
    pub fn breaker_failures(mut self, failures: u32) -> Self {
        self.config.breaker_failures = failures;
        self
    }
    /// Sets how long the breaker stays open before one probe tests Redis again.
    pub fn breaker_open(mut self, window: Duration) -> Self {
        self.config.breaker_open = window;
        self
    }
    /// Sets how long a call waits for a concurrent call of the same key
    /// before computing itself (guards against a leader that stalls).
    pub fn single_flight_wait(mut self, wait: Duration) -> Self {
        self.config.single_flight_wait = wait;
        self
    }
    /// On a miss, computes in one process only while the others wait for
    /// its value (a lock key in Redis), for functions that do not set
    /// `lock` themselves (`CACHE_LOCK`; default off). A process waits at
    /// most [`single_flight_wait`](Self::single_flight_wait), which is also
    /// the lock's lease.
    pub fn lock(mut self, enabled: bool) -> Self {
        self.config.lock = enabled;
        self
    }
    /// Serves hot keys from a copy in this process, kept coherent by Redis
    /// (server-assisted client-side caching), for functions that do not set
    /// `near` themselves (`CACHE_NEAR=on`; default off). A single node only.
    pub fn near(mut self, enabled: bool) -> Self {
        self.config.near = enabled.then_some(Duration::MAX);
        self
    }
    /// [`near`](Self::near), with each copy serving at most `bound` without
    /// asking Redis (`CACHE_NEAR=30s`).
    pub fn near_within(mut self, bound: Duration) -> Self {
        self.config.near = Some(bound);
        self
    }
    /// Bounds the Redis writes in flight; a write beyond it is dropped and counted.
    pub fn max_pending_writes(mut self, writes: usize) -> Self {
        self.config.max_pending_writes = writes;
        self
    }
    /// Bounds a stored value, sealed: a larger one is returned to the caller
    /// but stored nowhere, and counted (`CACHE_MAX_VALUE_BYTES`).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.config.max_value_bytes = bytes;
        self
    }
    /// Compresses (LZ4) every encoded value of at least `bytes` that
    /// compression makes smaller (`CACHE_COMPRESS_MIN_BYTES`, default 1 KiB;
    /// `usize::MAX` never compresses). Entries are read whether compressed
    /// or not, so the threshold can change without a cold cache.
    ///
    /// ```
    /// let config = cached_redis_core::Config::builder().compress_min_bytes(4096).build()?;
    /// assert_eq!(config.compress_min_bytes(), 4096);
    /// # Ok::<(), cached_redis_core::ConfigError>(())
    /// ```
    pub fn compress_min_bytes(mut self, bytes: usize) -> Self {
        self.config.compress_min_bytes = bytes;
        self
    }
    /// Signs every entry written with this key (HMAC-SHA256) and accepts
    /// from Redis only entries whose signature verifies (`CACHE_HMAC_KEY`;
    /// at least 16 bytes, 32 random ones recommended). Never printed.
    pub fn hmac_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.config.hmac_key = Some(Secret(key.into()));
        self
    }
    /// Also accepts entries signed with this key, the one being rotated
    /// out (`CACHE_HMAC_KEY_PREVIOUS`). Never printed.
    pub fn hmac_key_previous(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.config.hmac_key_previous = Some(Secret(key.into()));
        self
    }
    /// Bounds the memory cache by the bytes its entries hold, as well as
    /// by their number (`CACHE_MEMORY_MAX_BYTES`).
    pub fn memory_max_bytes(mut self, bytes: u64) -> Self {
        self.config.memory_max_bytes = bytes;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.build_named("Config::redis_url", "Config::namespace")
    }

    fn build_named(
        self,
        url_name: &'static str,
        namespace_name: &'static str,
    ) -> Result<Config, ConfigError> {
        let mut config = self.config;
        let (urls, url_name) = config.topology.urls(&config.redis_url, url_name)?;
        config.credentials.load(urls, url_name)?;
        if !is_valid_label(&config.namespace) {
            return Err(ConfigError::InvalidVar {
                name: namespace_name,
                value: config.namespace,
                expected: "one or more of A-Z, a-z, 0-9, '_', '.' and '-'",
            });
        }
        let within = |name, d: Duration, max: Duration, expected| {
            if d.is_zero() || d > max {
                Err(ConfigError::InvalidSetting { name, expected })
            } else {
                Ok(())
            }
        };
        const UP_TO_A_MINUTE: &str = "a duration greater than zero and at most 60 s";
        const UP_TO_A_DAY: &str = "a duration greater than zero and at most a day";
        within(
            "default_ttl",
            config.default_ttl,
            Duration::MAX,
            "a duration greater than zero",
        )?;
        within(
            "redis_timeout",
            config.redis_timeout,
            MAX_REDIS_TIMEOUT,
            UP_TO_A_MINUTE,
        )?;
        within(
            "connect_timeout",
            config.connect_timeout,
            MAX_REDIS_TIMEOUT,
            UP_TO_A_MINUTE,
        )?;
        within("breaker_open", config.breaker_open, MAX_WINDOW, UP_TO_A_DAY)?;
        within(
            "single_flight_wait",
            config.single_flight_wait,
            MAX_WINDOW,
            UP_TO_A_DAY,
        )?;
        if config.breaker_failures == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "breaker_failures",
                expected: "at least 1",
            });
        }
        if !(1..=MAX_VALUE_BYTES).contains(&config.max_value_bytes) {
            return Err(ConfigError::InvalidSetting {
                name: "max_value_bytes",
                expected: "from 1 to 536870912 (512 MiB)",
            });
        }
        let short =
            |key: &Option<Secret<Vec<u8>>>| key.as_ref().is_some_and(|k| k.0.len() < MIN_KEY_LEN);
        if short(&config.hmac_key) {
            return Err(ConfigError::InvalidSetting {
                name: "CACHE_HMAC_KEY",
                expected: "at least 16 bytes (32 random bytes recommended)",
            });
        }
        if short(&config.hmac_key_previous) {
            return Err(ConfigError::InvalidSetting {
                name: "CACHE_HMAC_KEY_PREVIOUS",
                expected: "at least 16 bytes (32 random bytes recommended)",
            });
        }
        if config.hmac_key.is_none() && config.hmac_key_previous.is_some() {
            return Err(ConfigError::InvalidSetting {
                name: "CACHE_HMAC_KEY",
                expected: "a key whenever CACHE_HMAC_KEY_PREVIOUS is set",
            });
        }
        if config.memory_max_bytes == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "memory_max_bytes",
                expected: "at least 1",
            });
        }
        if !(1..=MAX_PENDING_WRITES).contains(&config.max_pending_writes) {
            return Err(ConfigError::InvalidSetting {
                name: "max_pending_writes",
                expected: "from 1 to 1048576",
            });
        }
        Ok(config)
    }
}

fn parse_flag(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::InvalidVar {
            name,
            value: value.to_owned(),
            expected: "one of 1/true/yes/on or 0/false/no/off",
        }),
    }
}

fn parse_count<T: std::str::FromStr>(
    name: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::InvalidVar {
        name,
        value: value.to_owned(),
        expected,
    })
}

fn parse_env_duration(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value.trim()).map_err(|_| ConfigError::InvalidVar {
        name,
        value: value.to_owned(),
        expected: "a positive duration such as 3600, 500ms, 90s, 15m, 1h or 1d",
    })
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we understand: it may hold anything, show none of it.
        return "<redacted>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// Masks `pass=` / `password=` query parameters (unix-socket URLs carry the
/// password there).
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _))
                if matches!(name.to_ascii_lowercase().as_str(), "pass" | "password") =>
            {
                format!("{name}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn unset_environment_is_the_embedded_default() {
        let config = from(&[]).unwrap();
        assert!(!config.redis_enabled());
        assert!(config.memory_fallback());
        assert_eq!(config.namespace(), "meridian");
        assert_eq!(config.default_ttl(), DEFAULT_TTL);
        assert_eq!(config.redis_timeout(), Duration::from_millis(100));
    }

    #[test]
    fn flag_accepts_the_documented_spellings() {
        for on in ["1", "true", "YES", "On"] {
            assert!(
                from(&[("ENABLE_REDIS_CACHE", on)]).unwrap().redis_enabled(),
                "{on}"
            );
        }
        for off in ["0", "false", "no", "OFF", ""] {
            assert!(
                !from(&[("ENABLE_REDIS_CACHE", off)])
                    .unwrap()
                    .redis_enabled(),
                "{off}"
            );
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("ENABLE_REDIS_CACHE", "maybe"),
            ("CACHE_DEFAULT_TTL", "0"),
            ("CACHE_DEFAULT_TTL", "soon"),
            ("CACHE_MEMORY_CAPACITY", "-1"),
            ("CACHE_MEMORY_FALLBACK", "2"),
            ("CACHE_NAMESPACE", "a:b"),
            ("CACHE_REDIS_TIMEOUT", "0ms"),
            ("CACHE_REDIS_RETRIES", "many"),
            ("CACHE_BREAKER_FAILURES", "0"),
            ("CACHE_BREAKER_OPEN", "0s"),
            ("CACHE_SINGLE_FLIGHT_WAIT", "never"),
            ("CACHE_LOCK", "sometimes"),
        ];
        for (name, value) in cases {
            let err = from(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn cluster_and_sentinel_urls_select_their_topology() {
        let cluster = from(&[(
            "REDIS_CLUSTER_URLS",
            " redis://10.0.0.1:7000, redis://:pw@10.0.0.2:7000 ,",
        )])
        .unwrap();
        assert_eq!(
            cluster.topology,
            Topology::Cluster {
                seeds: vec![
                    "redis://10.0.0.1:7000".to_owned(),
                    "redis://:pw@10.0.0.2:7000".to_owned()
                ]
            }
        );
        assert!(!format!("{cluster:?}").contains("pw@"), "{cluster:?}");

        let sentinel = from(&[
            (
                "REDIS_SENTINEL_URLS",
                "redis://10.0.0.1:26379,redis://10.0.0.2:26379",
            ),
            ("REDIS_SENTINEL_MASTER", "cache"),
        ])
        .unwrap();
        assert!(matches!(
            sentinel.topology,
            Topology::Sentinel { ref sentinels, ref master } if sentinels.len() == 2 && master == "cache"
        ));
        assert_eq!(from(&[]).unwrap().topology, Topology::Single);
    }

    #[test]
    fn a_topology_that_cannot_work_is_refused_by_name() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (
                &[
                    ("REDIS_CLUSTER_URLS", "redis://a:1"),
                    ("REDIS_SENTINEL_URLS", "redis://b:2"),
                    ("REDIS_SENTINEL_MASTER", "m"),
                ],
                "REDIS_CLUSTER_URLS",
            ),
            (
                &[("REDIS_SENTINEL_URLS", "redis://b:2")],
                "REDIS_SENTINEL_MASTER",
            ),
            (&[("REDIS_CLUSTER_URLS", " , ")], "REDIS_CLUSTER_URLS"),
            (
                &[("REDIS_CLUSTER_URLS", "redis://a:1,rediss://b:2")],
                "REDIS_CLUSTER_URLS",
            ),
            (
                &[
                    ("REDIS_SENTINEL_URLS", "nope://b:2"),
                    ("REDIS_SENTINEL_MASTER", "m"),
                ],
                "REDIS_SENTINEL_URLS",
            ),
        ];
        for (vars, name) in cases {
            let err = from(vars).unwrap_err();
            assert!(err.to_string().starts_with(name), "{vars:?}: {err}");
        }
        let blank_master = Config::builder()
            .redis_sentinel(["redis://b:2"], "a b")
            .build();
        assert!(
            blank_master
                .unwrap_err()
                .to_string()
                .starts_with("REDIS_SENTINEL_MASTER")
        );
    }

    #[test]
    fn extreme_settings_are_refused_not_panicked_on() {
        let huge = Duration::MAX;
        assert!(Config::builder().redis_timeout(huge).build().is_err());
        assert!(Config::builder().breaker_open(huge).build().is_err());
        assert!(Config::builder().single_flight_wait(huge).build().is_err());
        assert!(
            Config::builder()
                .max_pending_writes(usize::MAX)
                .build()
                .is_err()
        );
        assert!(Config::builder().max_pending_writes(0).build().is_err());
        assert!(Config::builder().default_ttl(huge).build().is_ok());
    }

    #[test]
    fn bad_url_error_hides_the_password() {
        let err = from(&[("REDIS_URL", "nope://:hunter2@host")]).unwrap_err();
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = from(&[("REDIS_URL", "redis://user:hunter2@127.0.0.1:6379/0")]).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("redis://user:***@127.0.0.1:6379/0"),
            "{debug}"
        );
    }

    #[test]
    fn redaction_cases() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("rediss://pw@h"), "rediss://***@h");
        assert_eq!(redact_url("redis://h:1/0?x=a@b"), "redis://h:1/0?x=a@b");
        assert_eq!(redact_url("redis://u:p@ss@h"), "redis://u:***@h");
        assert_eq!(
            redact_url("redis+unix:///tmp/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///tmp/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            redact_url("unix:///r.sock?PASSWORD=s3cret&db=2"),
            "unix:///r.sock?PASSWORD=***&db=2"
        );
        assert_eq!(redact_url("not a url :s3cret"), "<redacted>");
    }
}
