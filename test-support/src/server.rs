//! Throw-away `redis-server` processes, one per test.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Client, Connection, RedisResult};

use crate::{PkiFiles, free_port};

/// How many fresh ports `start` tries before giving up. A port found free
/// can be taken by a parallel test before redis-server binds it.
const PORT_ATTEMPTS: usize = 10;
/// How long a freshly spawned server gets to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `restart` keeps retrying when its old port is still taken.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect/read/write timeout of connections handed to tests, so that a
/// paused or wedged server fails a test instead of hanging it.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of the readiness probe; short, because a probe that hangs delays
/// noticing that the process has died.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
const LOG_TAIL_LINES: usize = 40;
/// redis-server's own log (`--logfile`).
const LOG_FILE: &str = "redis.log";
/// stdout and stderr of the process: config errors are printed there,
/// before the log file is opened.
const OUTPUT_FILE: &str = "redis-server.out";
/// A Sentinel's configuration file, in its directory.
const SENTINEL_FILE: &str = "sentinel.conf";
/// A cluster node's configuration file, in its directory.
const NODES_FILE: &str = "nodes.conf";
/// What redis-server logs when its port is taken.
const ADDRESS_IN_USE: &str = "Address already in use";

/// Configures a [`RedisServer`] before starting it.
///
/// ```no_run
/// use cached_redis_test_support::RedisServer;
///
/// let server = RedisServer::builder()
///     .password("s3cret")
///     .arg("--maxmemory")
///     .arg("10mb")
///     .start();
/// ```
#[derive(Debug, Clone)]
pub struct RedisServerBuilder {
    password: Option<String>,
    tls: Option<Tls>,
    /// Sentinel mode: the configuration file's initial contents.
    sentinel: Option<String>,
    /// Cluster mode, with a bus port of its own.
    cluster: bool,
    extra_args: Vec<String>,
    program: String,
}

impl Default for RedisServerBuilder {
    fn default() -> Self {
        Self {
            password: None,
            tls: None,
            sentinel: None,
            cluster: false,
            extra_args: Vec::new(),
            program: "redis-server".to_owned(),
        }
    }
}

impl RedisServerBuilder {
    /// Requires clients to authenticate with `password` (`requirepass`).
    ///
    /// [`RedisServer::url`] and [`RedisServer::connection`] then include it.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Also listens for TLS on a port of its own ([`RedisServer::tls_url`]),
    /// with the server certificate and CA of `files`; with `auth_clients`,
    /// only clients presenting a certificate signed by that CA are let in.
    /// The plain port stays open for the harness and the test's own checks.
    pub fn tls(mut self, files: &PkiFiles, auth_clients: bool) -> Self {
        self.tls = Some(Tls {
            files: files.clone(),
            auth_clients,
        });
        self
    }

    /// Runs a Sentinel (`redis-server sentinel.conf --sentinel`) instead of
    /// a data node, starting from `config` — `sentinel monitor …` lines and
    /// the like. Sentinel rewrites the file as it learns; it lives in the
    /// server's directory and survives [`RedisServer::restart`].
    pub fn sentinel(mut self, config: &str) -> Self {
        self.sentinel = Some(config.to_owned());
        self
    }

    /// Runs as a Redis Cluster node (`cluster-enabled`, its `nodes.conf` in
    /// its directory) with a cluster bus port of its own,
    /// [`RedisServer::bus_port`], chosen afresh with its port on every
    /// attempt to start. [`RedisCluster`](crate::RedisCluster) forms
    /// clusters of these.
    pub fn cluster_node(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// Appends one extra command-line argument for `redis-server`, e.g.
    /// `.arg("--maxmemory").arg("10mb")`.
    ///
    /// Each call adds exactly one argument. Extra arguments come after the
    /// harness's own, so for single-valued options they win.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_owned());
        self
    }

    /// Runs a different executable instead of `redis-server` from `PATH`;
    /// only the harness's own tests need this.
    #[cfg(test)]
    pub(crate) fn program(mut self, program: &str) -> Self {
        self.program = program.to_owned();
        self
    }

    /// Starts the server on a free loopback port and waits until it answers
    /// `PING`.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed, if it exits or does not answer
    /// within 10 seconds (the message includes its log), or if no free port
    /// could be bound in 10 attempts.
    pub fn start(self) -> RedisServer {
        let mut server = RedisServer {
            config: self,
            port: 0,
            tls_port: 0,
            bus_port: 0,
            dir: create_private_dir(),
            last_pid: AtomicU32::new(0),
            log_reported: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            server.tls_port = free_port();
            if server.config.cluster {
                server.bus_port = free_port();
                // A node that failed to bind may have written its identity
                // and ports; the next attempt starts as a new node.
                let _ = fs::remove_file(server.dir.join(NODES_FILE));
            }
            let mut state = lock(&server.state);
            if server.launch(&mut state) == Launch::Ready {
                drop(state);
                return server;
            }
        }
        panic!(
            "{}",
            server.failure(&format!(
                "could not bind a free port in {PORT_ATTEMPTS} attempts: \
                 other processes kept taking them first"
            ))
        );
    }
}

/// A private `redis-server` process for one test.
///
/// It listens on `127.0.0.1` only, on a port of its own, keeps its files in a
/// temporary directory of its own, persists nothing (`--save ""`,
/// `--appendonly no`), and has the `DEBUG` command enabled (e.g. `DEBUG
/// SLEEP` to simulate a slow server).
///
/// Dropping it kills the process and removes the directory. If the thread is
/// panicking at that point (a failed assertion), the tail of the server's log
/// is printed to stderr, where the test harness shows it.
///
/// All methods take `&self`, so a server can be shared with helper threads
/// (e.g. one that pauses it while another one issues requests).
#[derive(Debug)]
pub struct RedisServer {
    config: RedisServerBuilder,
    port: u16,
    /// Used only with [`RedisServerBuilder::tls`].
    tls_port: u16,
    /// Used only with [`RedisServerBuilder::cluster_node`].
    bus_port: u16,
    dir: PathBuf,
    /// Kept outside `state` so that failure messages and `pid()` never need
    /// the lock, which is held while a launch is in progress.
    last_pid: AtomicU32,
    /// Set once a panic message has carried the log, so that `Drop` does not
    /// print it a second time.
    log_reported: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
struct Tls {
    files: PkiFiles,
    auth_clients: bool,
}

#[derive(Debug, Default)]
struct State {
    /// `None` once killed, or once the process has been seen to exit.
    child: Option<Child>,
    paused: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Launch {
    Ready,
    PortInUse,
}

impl RedisServer {
    /// Starts a server with the default configuration (no password, no
    /// extra arguments). See [`RedisServerBuilder::start`] for panics.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Returns a builder for a server with a password or extra arguments.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The loopback port the server listens on; it stays the same across
    /// [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port of a server started with [`RedisServerBuilder::tls`].
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The cluster bus port of a server started with
    /// [`RedisServerBuilder::cluster_node`]; it stays the same across
    /// [`restart`](Self::restart).
    pub fn bus_port(&self) -> u16 {
        self.bus_port
    }

    /// The URL of the server: `redis://127.0.0.1:PORT/`, or
    /// `redis://:PASSWORD@127.0.0.1:PORT/` when a password is set (with the
    /// password percent-encoded).
    pub fn url(&self) -> String {
        match &self.config.password {
            Some(password) => format!(
                "redis://:{}@127.0.0.1:{}/",
                percent_encode(password),
                self.port
            ),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The TLS URL of a server started with [`RedisServerBuilder::tls`]:
    /// `rediss://127.0.0.1:PORT/`, with the password as in [`url`](Self::url).
    pub fn tls_url(&self) -> String {
        let plain = self.url();
        let (_, rest) = plain.split_once("://").unwrap_or(("", &plain));
        let rest = rest.replace(&format!(":{}/", self.port), &format!(":{}/", self.tls_port));
        format!("rediss://{rest}")
    }

    /// A new synchronous connection, authenticated if a password is set, with
    /// 5-second connect, read and write timeouts.
    ///
    /// # Panics
    ///
    /// If the connection cannot be made; the message includes the server's
    /// log. Use [`try_connection`](Self::try_connection) when failure is
    /// expected.
    pub fn connection(&self) -> Connection {
        self.try_connection().unwrap_or_else(|e| {
            panic!(
                "{}",
                self.failure(&format!("could not be connected to: {e}"))
            )
        })
    }

    /// Like [`connection`](Self::connection), but returns the error, e.g. to
    /// check that a killed server refuses connections.
    pub fn try_connection(&self) -> RedisResult<Connection> {
        connect(&self.url(), CONNECTION_TIMEOUT)
    }

    /// Every key matching `pattern`, sorted (`KEYS`: fine on a test server).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connection())
            .expect("KEYS");
        keys.sort();
        keys
    }

    /// The raw bytes under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection())
            .expect("GET")
    }

    /// Writes `bytes` under `key`, with no TTL.
    pub fn set(&self, key: &str, bytes: &[u8]) {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .query(&mut self.connection())
            .expect("SET");
    }

    /// The whole content of the server's log file (empty if it does not exist
    /// yet). It accumulates across restarts.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join(LOG_FILE), 0)
    }

    /// The server's private directory (its working directory, holding its
    /// log). Removed when the server is dropped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id of the running server, or of the last one after
    /// [`kill`](Self::kill).
    pub fn pid(&self) -> u32 {
        self.last_pid.load(Ordering::SeqCst)
    }

    /// Whether the process is alive. A paused server is still running.
    pub fn is_running(&self) -> bool {
        let mut state = lock(&self.state);
        running(&mut state)
    }

    /// Whether the server is currently stopped by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        lock(&self.state).paused
    }

    /// Kills the process with `SIGKILL` and reaps it; connections to it are
    /// refused afterwards. Does nothing if it is not running.
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent or the process cannot be reaped.
    pub fn kill(&self) {
        let mut state = lock(&self.state);
        if let Err(e) = stop(&mut state) {
            drop(state);
            panic!("{}", self.failure(&format!("could not be killed: {e}")));
        }
    }

    /// Kills the server if it is running, then starts it again on the same
    /// port with the same configuration and waits until it answers `PING`.
    ///
    /// Nothing is persisted, so the restarted server is empty.
    ///
    /// # Panics
    ///
    /// Like [`RedisServerBuilder::start`], or if the port stays taken by
    /// another process for 5 seconds.
    pub fn restart(&self) {
        self.kill();
        let mut state = lock(&self.state);
        // redis-server sets SO_REUSEADDR, so connections of the killed
        // process lingering in TIME_WAIT do not block the port; only another
        // process that grabbed it in the meantime does, so retry briefly.
        let deadline = Instant::now() + REBIND_TIMEOUT;
        while self.launch(&mut state) == Launch::PortInUse {
            if Instant::now() >= deadline {
                drop(state);
                panic!(
                    "{}",
                    self.failure(&format!(
                        "could not be restarted: its port stayed in use by another \
                         process for {REBIND_TIMEOUT:?}"
                    ))
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process with `SIGSTOP`: connections still succeed (the
    /// kernel completes the handshake) but nothing is answered, simulating a
    /// hung server. Undo with [`resume`](Self::resume).
    ///
    /// # Panics
    ///
    /// If the server is not running or the signal cannot be sent.
    pub fn pause(&self) {
        let mut state = lock(&self.state);
        self.signal(&mut state, "STOP");
        state.paused = true;
    }

    /// Continues a paused process with `SIGCONT`; requests sent meanwhile are
    /// then answered.
    ///
    /// # Panics
    ///
    /// If the server is not running or the signal cannot be sent.
    pub fn resume(&self) {
        let mut state = lock(&self.state);
        self.signal(&mut state, "CONT");
        state.paused = false;
    }

    /// Spawns redis-server on `self.port` and waits until it answers.
    ///
    /// Returns `PortInUse` (with the process gone) if it could not bind, and
    /// panics on any other failure.
    fn launch(&self, state: &mut State) -> Launch {
        let log_path = self.dir.join(LOG_FILE);
        let output_path = self.dir.join(OUTPUT_FILE);
        // Both files accumulate across attempts and restarts; only what this
        // attempt writes may decide whether the port was taken.
        let log_offset = file_len(&log_path);
        let output_offset = file_len(&output_path);

        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", output_path.display()));
        let output_copy = output
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate a file handle: {e}"));

        let mut args = self.command_line(&log_path);
        if let Some(config) = &self.config.sentinel {
            // Sentinel needs its configuration file first, and writable.
            let path = self.dir.join(SENTINEL_FILE);
            if !path.exists() {
                fs::write(&path, config)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            }
            args.splice(
                0..0,
                [path.to_string_lossy().into_owned(), "--sentinel".to_owned()],
            );
        }
        let child = Command::new(&self.config.program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_copy)
            .spawn()
            .unwrap_or_else(|e| self.spawn_failed(e));
        self.last_pid.store(child.id(), Ordering::SeqCst);
        state.child = Some(child);
        state.paused = false;

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = exited(state) {
                let new_output =
                    read_lossy(&log_path, log_offset) + &read_lossy(&output_path, output_offset);
                if new_output.contains(ADDRESS_IN_USE) {
                    return Launch::PortInUse;
                }
                panic!(
                    "{}",
                    self.failure(&format!("exited ({status}) before answering PING"))
                );
            }
            let probe = self.probe();
            if probe.is_ok() {
                return Launch::Ready;
            }
            if Instant::now() >= deadline {
                let _ = stop(state);
                panic!(
                    "{}",
                    self.failure(&format!(
                        "did not answer PING within {READY_TIMEOUT:?} (last error: {})",
                        probe.unwrap_err()
                    ))
                );
            }
            thread::sleep(PROBE_INTERVAL);
        }
    }

    fn command_line(&self, log_path: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            // An empty argument, not the two characters `""`: no shell here.
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &self.dir.to_string_lossy(),
            "--logfile",
            &log_path.to_string_lossy(),
            "--daemonize",
            "no",
            "--enable-debug-command",
            "yes",
            "--protected-mode",
            "no",
        ]
        .map(str::to_owned)
        .into();
        if let Some(password) = &self.config.password {
            args.extend(["--requirepass".to_owned(), password.clone()]);
        }
        if let Some(tls) = &self.config.tls {
            let path = |p: &Path| p.to_string_lossy().into_owned();
            args.extend([
                "--tls-port".to_owned(),
                self.tls_port.to_string(),
                "--tls-cert-file".to_owned(),
                path(&tls.files.server_cert),
                "--tls-key-file".to_owned(),
                path(&tls.files.server_key),
                "--tls-ca-cert-file".to_owned(),
                path(&tls.files.ca),
                "--tls-auth-clients".to_owned(),
                if tls.auth_clients { "yes" } else { "no" }.to_owned(),
            ]);
        }
        if self.config.cluster {
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    NODES_FILE,
                    // Not port + 10000, which may be taken or past 65535.
                    "--cluster-port",
                    &self.bus_port.to_string(),
                ]
                .map(str::to_owned),
            );
        }
        args.extend(self.config.extra_args.iter().cloned());
        args
    }

    /// Checks that *our* process answers: right after a port race, another
    /// test's redis-server may be listening on the port while ours is about
    /// to exit with "address in use".
    fn probe(&self) -> Result<(), String> {
        let mut con = connect(&self.url(), PROBE_TIMEOUT).map_err(|e| e.to_string())?;
        let pong: String = redis::cmd("PING")
            .query(&mut con)
            .map_err(|e| e.to_string())?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut con)
            .map_err(|e| e.to_string())?;
        let answering_pid = info
            .lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        if answering_pid != Some(self.pid()) {
            return Err(format!(
                "port {} is answered by another process ({answering_pid:?})",
                self.port
            ));
        }
        Ok(())
    }

    fn spawn_failed(&self, error: io::Error) -> ! {
        if error.kind() == io::ErrorKind::NotFound {
            panic!(
                "`{}` was not found on PATH ({error}). These tests need a real Redis \
                 server, version 7.0 or newer. Install it, e.g. on Debian/Ubuntu: \
                 `apt-get install -y redis-server`",
                self.config.program
            );
        }
        panic!("cannot start `{}`: {error}", self.config.program);
    }

    fn signal(&self, state: &mut State, signal: &str) {
        if !running(state) {
            panic!(
                "{}",
                self.failure(&format!("is not running, so it cannot get SIG{signal}"))
            );
        }
        let pid = self.pid().to_string();
        let result = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .stdin(Stdio::null())
            .output();
        match result {
            Ok(output) if output.status.success() => {}
            Ok(output) => panic!(
                "{}",
                self.failure(&format!(
                    "could not get SIG{signal}: `kill -{signal} {pid}` failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            ),
            Err(e) => panic!("cannot run `kill -{signal} {pid}` (is `kill` on PATH?): {e}"),
        }
    }

    /// A panic message about this server, with the tails of its log and of
    /// its stdout/stderr.
    fn failure(&self, what: &str) -> String {
        self.log_reported.store(true, Ordering::SeqCst);
        let log_path = self.dir.join(LOG_FILE);
        let mut message = format!(
            "redis-server on 127.0.0.1:{} (pid {}) {what}\n\
             --- last {LOG_TAIL_LINES} lines of {} ---\n{}",
            self.port,
            self.pid(),
            log_path.display(),
            tail(&read_lossy(&log_path, 0), LOG_TAIL_LINES),
        );
        let output = read_lossy(&self.dir.join(OUTPUT_FILE), 0);
        if !output.trim().is_empty() {
            let _ = write!(
                message,
                "\n--- last {LOG_TAIL_LINES} lines of its stdout/stderr ---\n{}",
                tail(&output, LOG_TAIL_LINES)
            );
        }
        message
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Errors are ignored: panicking in a destructor would abort the whole
        // test binary, and SIGKILL of our own child practically cannot fail.
        let _ = stop(state);
        if thread::panicking() && !self.log_reported.load(Ordering::SeqCst) {
            eprintln!("note: {}", self.failure("was dropped during a panic"));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Locks the state even if a thread panicked while holding it: the state is
/// kept consistent at every point where a panic can happen.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reaps the child if it has exited and returns its status.
fn exited(state: &mut State) -> Option<ExitStatus> {
    let child = state.child.as_mut()?;
    match child.try_wait() {
        Ok(Some(status)) => {
            state.child = None;
            state.paused = false;
            Some(status)
        }
        // An error here means the child cannot be waited for; treat it as
        // alive so that `stop` still gets to kill it.
        Ok(None) | Err(_) => None,
    }
}

fn running(state: &mut State) -> bool {
    exited(state);
    state.child.is_some()
}

/// SIGKILLs and reaps the child, if any. A stopped process is killed too.
fn stop(state: &mut State) -> io::Result<()> {
    if let Some(child) = state.child.as_mut() {
        child.kill()?;
        child.wait()?;
    }
    state.child = None;
    state.paused = false;
    Ok(())
}

fn connect(url: &str, timeout: Duration) -> RedisResult<Connection> {
    let client = Client::open(url)?;
    // The timeout passed here also covers the AUTH/HELLO handshake, which is
    // what hangs on a paused server.
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// Creates a fresh directory under the system temp dir. Unique per process
/// (pid), per call (counter), and against stale leftovers of an earlier
/// process with the same pid (clock, then retry).
fn create_private_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    let mut last_error = None;
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = base.join(format!(
            "cached-redis-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&path) {
            Ok(()) => return path,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => panic!("cannot create a directory in {}: {e}", base.display()),
        }
    }
    panic!(
        "cannot create a unique directory in {}: {last_error:?}",
        base.display()
    );
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// The content of `path` from byte `offset` on, or "" if it cannot be read.
fn read_lossy(path: &Path, offset: u64) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return "(empty)".to_owned();
    }
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Encodes everything but RFC 3986 unreserved characters, so that any
/// password survives the trip through a URL (the redis crate decodes it).
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "apt-get install -y redis-server")]
    fn missing_binary_explains_how_to_install_it() {
        RedisServer::builder()
            .program("redis-server-that-does-not-exist")
            .start();
    }

    #[test]
    fn launch_reports_a_taken_port_instead_of_panicking() {
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = RedisServer {
            config: RedisServerBuilder::default(),
            port: squatter.local_addr().unwrap().port(),
            tls_port: 0,
            bus_port: 0,
            dir: create_private_dir(),
            last_pid: AtomicU32::new(0),
            log_reported: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        };
        let mut state = lock(&server.state);
        assert_eq!(server.launch(&mut state), Launch::PortInUse);
        assert!(state.child.is_none());
    }

    #[test]
    fn percent_encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 2), "(empty)");
    }
}
