//! Test harness for `cached-redis`: throw-away `redis-server` processes and
//! fake TCP endpoints.
//!
//! The memoization layer has to behave well when Redis is healthy, slow,
//! down, or never contacted at all. Mocks cannot prove that, so the tests use
//! real sockets:
//!
//! - [`RedisServer`] starts a private `redis-server` on a free loopback port,
//!   with its own temporary directory and log file, and can kill, restart,
//!   pause (`SIGSTOP`) and resume it. Every test gets its own server, so
//!   tests can run in parallel without sharing state.
//! - [`ConnectionRecorder`] counts TCP connections and closes each one
//!   immediately, to prove that a code path never even tried to connect.
//! - [`Blackhole`] accepts connections and never answers, to exercise
//!   timeouts.
//! - [`RedisCluster`] starts primaries in cluster mode and forms a cluster
//!   of them, with the slots split evenly.
//! - [`RedisSentinel`] starts a master, a replica and a Sentinel that
//!   fails over to the replica when the master dies.
//! - [`Pki`] makes a CA and certificates signed by it, for TLS servers
//!   ([`RedisServerBuilder::tls`]) and clients.
//! - [`refused_url`] gives a URL where nothing listens.
//! - [`wait_until`] polls a condition, so tests need no fixed sleeps.
//!
//! This crate is test-only code: setup failures panic, and every panic caused
//! by a misbehaving server carries the tail of that server's log.
//!
//! `redis-server` (7.0 or newer, for `--enable-debug-command`) must be on
//! `PATH`; on Debian or Ubuntu, `apt-get install -y redis-server`.
//!
//! ```no_run
//! use cached_redis_test_support::RedisServer;
//!
//! let server = RedisServer::start();
//! let mut con = server.connection();
//! let pong: String = redis::cmd("PING").query(&mut con).unwrap();
//! assert_eq!(pong, "PONG");
//! ```

mod cluster;
mod listeners;
mod pki;
mod sentinel;
mod server;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

pub use cluster::RedisCluster;
pub use listeners::{Blackhole, ConnectionRecorder};
pub use pki::{Pem, Pki, PkiFiles};
pub use sentinel::RedisSentinel;
pub use server::{RedisServer, RedisServerBuilder};

/// Returns a `redis://127.0.0.1:PORT/` URL where nothing listens, so
/// connecting to it is refused at once.
///
/// The port was free when this function returned; another process could in
/// theory bind it later, which is unlikely within a test's lifetime.
pub fn refused_url() -> String {
    format!("redis://127.0.0.1:{}/", free_port())
}

/// Calls `condition` about every 10 ms until it returns `true` or `timeout`
/// has passed, and returns whether it became `true`.
///
/// `condition` is always called at least once, and once more after the
/// deadline, so a condition that became true during the last sleep is not
/// missed. Use this instead of fixed sleeps when waiting for background
/// effects.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    const POLL_INTERVAL: Duration = Duration::from_millis(10);
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Asks the kernel for a currently unused loopback port.
///
/// The listener is dropped before returning, so the port is only likely, not
/// guaranteed, to still be free when the caller uses it; callers that start
/// servers on it must handle "address in use".
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind a loopback port to find a free one: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the address of a loopback listener: {e}"))
        .port()
}
