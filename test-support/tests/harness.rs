//! Tests of the harness itself, against real redis-server processes.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cached_redis_test_support::{
    Blackhole, ConnectionRecorder, RedisServer, refused_url, wait_until,
};
use redis::{Client, Connection, RedisResult};

fn ping(con: &mut Connection) -> RedisResult<String> {
    redis::cmd("PING").query(con)
}

/// `kill -0` succeeds for any process that exists, so it tells whether a pid
/// is gone without sending a real signal.
fn process_exists(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("run kill -0")
        .success()
}

#[test]
fn start_answers_ping_on_its_loopback_port() {
    let server = RedisServer::start();
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert!(server.is_running());
    assert!(!server.is_paused());
    assert_eq!(ping(&mut server.connection()).unwrap(), "PONG");
    assert!(server.log().contains("Ready to accept connections"));
}

#[test]
fn harness_config_is_applied() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut con)
        .unwrap();
    assert_eq!(save, ["save", ""]);
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        std::path::Path::new(&dir[1]).canonicalize().unwrap(),
        server.dir().canonicalize().unwrap()
    );
    // DEBUG is what tests use to make the server slow on purpose.
    let ok: String = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
}

#[test]
fn extra_args_are_passed_through() {
    let server = RedisServer::builder()
        .arg("--maxmemory")
        .arg("10mb")
        .start();
    let maxmemory: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(maxmemory, ["maxmemory", "10485760"]);
}

#[test]
#[should_panic(expected = "no-such-option")]
fn bad_config_panics_with_the_server_output() {
    RedisServer::builder()
        .arg("--no-such-option")
        .arg("1")
        .start();
}

#[test]
fn kill_refuses_connections_and_is_idempotent() {
    let server = RedisServer::start();
    let pid = server.pid();
    server.kill();
    assert!(!server.is_running());
    assert!(!process_exists(pid), "pid {pid} should be gone");
    let err = server
        .try_connection()
        .err()
        .expect("connecting to a killed server must fail");
    assert!(err.is_connection_refusal(), "unexpected error: {err}");
    server.kill();
    assert!(!server.is_running());
}

#[test]
fn restart_serves_again_on_the_same_port_with_no_data() {
    let server = RedisServer::start();
    let port = server.port();
    let first_pid = server.pid();
    let mut con = server.connection();
    redis::cmd("SET")
        .arg("key")
        .arg("value")
        .exec(&mut con)
        .unwrap();

    server.restart();

    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), first_pid);
    assert!(server.is_running());
    // The old connection died with the old process.
    assert!(ping(&mut con).is_err());
    let mut con = server.connection();
    assert_eq!(ping(&mut con).unwrap(), "PONG");
    let value: Option<String> = redis::cmd("GET").arg("key").query(&mut con).unwrap();
    assert_eq!(value, None, "nothing is persisted across restarts");
    // Restarting a killed server works as well.
    server.kill();
    server.restart();
    assert_eq!(ping(&mut server.connection()).unwrap(), "PONG");
}

#[test]
fn pause_makes_reads_time_out_until_resume() {
    let server = RedisServer::start();
    let mut con = server.connection();
    con.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    server.pause();
    assert!(server.is_paused());
    assert!(server.is_running(), "a paused server is still running");
    let started = Instant::now();
    let err = ping(&mut con).expect_err("a paused server must not answer");
    assert!(err.is_timeout(), "unexpected error: {err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    server.resume();
    assert!(!server.is_paused());
    assert_eq!(ping(&mut server.connection()).unwrap(), "PONG");
}

#[test]
fn paused_server_can_be_killed_and_restarted() {
    let server = RedisServer::start();
    server.pause();
    server.restart();
    assert!(!server.is_paused());
    assert_eq!(ping(&mut server.connection()).unwrap(), "PONG");
}

#[test]
fn password_is_required_and_used_by_url_and_connection() {
    let server = RedisServer::builder().password("s3cret:/@").start();
    assert_eq!(
        server.url(),
        format!("redis://:s3cret%3A%2F%40@127.0.0.1:{}/", server.port())
    );
    assert_eq!(ping(&mut server.connection()).unwrap(), "PONG");

    let anonymous = format!("redis://127.0.0.1:{}/", server.port());
    let mut con = Client::open(anonymous).unwrap().get_connection().unwrap();
    let err = ping(&mut con).expect_err("PING without AUTH must fail");
    assert!(
        err.to_string().contains("NOAUTH"),
        "unexpected error: {err}"
    );
}

#[test]
fn drop_kills_the_process_and_removes_its_directory() {
    let server = RedisServer::start();
    let pid = server.pid();
    let dir = server.dir().to_owned();
    assert!(dir.join("redis.log").exists());
    server.pause();
    drop(server);
    assert!(!process_exists(pid), "pid {pid} should be gone");
    assert!(!dir.exists(), "{} should be removed", dir.display());
}

#[test]
fn parallel_servers_get_distinct_ports() {
    let servers: Vec<RedisServer> = (0..4)
        .map(|_| thread::spawn(RedisServer::start))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(ping(&mut server.connection()).unwrap(), "PONG");
    }
}

#[test]
fn recorder_counts_and_closes_connections() {
    let recorder = ConnectionRecorder::start();
    assert_eq!(
        recorder.url(),
        format!("redis://127.0.0.1:{}/", recorder.port())
    );
    assert_eq!(recorder.connections(), 0);

    let _raw = TcpStream::connect(("127.0.0.1", recorder.port())).unwrap();
    assert_eq!(recorder.connections(), 1);

    // A redis client gets its connection closed instead of an answer.
    let result = Client::open(recorder.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .and_then(|mut con| ping(&mut con));
    assert!(result.is_err());
    assert_eq!(recorder.connections(), 2);
}

#[test]
fn blackhole_accepts_but_never_answers() {
    let blackhole = Blackhole::start();
    let started = Instant::now();
    let result = Client::open(blackhole.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_millis(200))
        .and_then(|mut con| ping(&mut con));
    let err = result.expect_err("a blackhole must not answer");
    assert!(err.is_timeout(), "unexpected error: {err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(blackhole.accepted(), 1);
}

#[test]
fn refused_url_refuses() {
    let url = refused_url();
    let port: u16 = url
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let err = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let err = Client::open(url).unwrap().get_connection().err().unwrap();
    assert!(err.is_connection_refusal(), "unexpected error: {err}");
}

#[test]
fn wait_until_reports_whether_the_condition_became_true() {
    let started = Instant::now();
    let mut calls = 0;
    assert!(wait_until(Duration::from_secs(5), || {
        calls += 1;
        calls == 3
    }));
    assert!(started.elapsed() < Duration::from_secs(1));

    let started = Instant::now();
    assert!(!wait_until(Duration::from_millis(50), || false));
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn restart_waits_for_a_port_that_is_briefly_taken() {
    let server = RedisServer::start();
    server.kill();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", server.port())).unwrap();
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        drop(squatter);
    });
    server.restart();
    release.join().unwrap();
    assert_eq!(ping(&mut server.connection()).unwrap(), "PONG");
    assert!(server.log().contains("Address already in use"));
}
