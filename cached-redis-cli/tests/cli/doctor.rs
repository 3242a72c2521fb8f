//! `doctor`: green on a default server, red for a missing permission,
//! yellow for settings a cache should not run with.

use cached_redis::admin::redis;
use cached_redis_test_support::{Pki, RedisCluster, RedisSentinel, RedisServer};

use crate::support::*;

/// The minimal ACL line of docs/security.md.
const CACHE_RULES: &str =
    "on >cache-pw ~meridian:* resetchannels -@all +get +set +unlink +scan +evalsha +eval +type";

fn acl_setuser(server: &RedisServer, user: &str, rules: &str) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg(user);
    for rule in rules.split_whitespace() {
        cmd.arg(rule);
    }
    let () = cmd.query(&mut server.connection()).expect("ACL SETUSER");
}

fn line<'a>(run: &'a Run, marker: &str, check: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|line| {
            line.starts_with(marker) && line[marker.len()..].trim_start().starts_with(check)
        })
        .unwrap_or_else(|| panic!("no {marker} {check} line in:\n{}", run.stdout))
}

#[test]
fn a_default_server_has_no_red_line() {
    let server = RedisServer::start();
    let run = cli_on(&server, &["doctor"]);
    run.assert_ok();
    assert!(!run.stdout.contains("[FAIL]"), "{}", run.stdout);
    line(&run, "[ ok ]", "connection");
    assert!(line(&run, "[ ok ]", "latency").contains("5 PINGs: p50 "));
    line(&run, "[ ok ]", "tls");
    assert!(line(&run, "[ ok ]", "auth").contains("authenticated as 'default'"));
    let acl = line(&run, "[ ok ]", "acl");
    assert!(
        acl.contains("SET GET TYPE EVAL EVALSHA SCAN UNLINK permitted (tried on meridian:doctor:"),
        "{acl}"
    );
    assert!(acl.ends_with("removed)"), "{acl}");
    assert!(line(&run, "[ ok ]", "server").contains("role master"));
    line(&run, "[ ok ]", "persistence");
    assert!(
        run.stdout.ends_with(" 2 warnings, 0 failures\n"),
        "{}",
        run.stdout
    );
    assert!(
        server.keys("meridian:doctor:*").is_empty(),
        "the throw-away key is gone"
    );

    let json = cli_on(&server, &["doctor", "--json"]);
    json.assert_ok();
    let json = json.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["failures"], 0);
    assert_eq!(json["deployment"], "single node");
    assert!(json["checks"].as_array().unwrap().len() >= 9);
}

#[test]
fn noeviction_and_unbounded_memory_are_warnings() {
    let default = RedisServer::start();
    let run = cli_on(&default, &["doctor"]);
    run.assert_ok();
    assert!(line(&run, "[warn]", "eviction").contains("maxmemory-policy noeviction"));
    assert!(line(&run, "[warn]", "maxmemory").contains("0 (unbounded)"));

    let tuned = RedisServer::builder()
        .arg("--maxmemory")
        .arg("10mb")
        .arg("--maxmemory-policy")
        .arg("allkeys-lru")
        .start();
    let run = cli_on(&tuned, &["doctor"]);
    run.assert_ok();
    assert!(!run.stdout.contains("[warn]"), "{}", run.stdout);
    assert!(line(&run, "[ ok ]", "eviction").ends_with("maxmemory-policy allkeys-lru"));
    assert!(line(&run, "[ ok ]", "maxmemory").ends_with("10.0 MiB"));
    assert!(line(&run, "[ ok ]", "memory").contains(" of 10.0 MiB ("));
}

#[test]
fn a_user_lacking_a_permission_is_a_red_line_naming_the_command() {
    let server = RedisServer::start();
    acl_setuser(&server, "nosets", &CACHE_RULES.replace(" +set", ""));
    let url = format!("redis://nosets:cache-pw@127.0.0.1:{}", server.port());
    let run = cli(&["--url", &url, "doctor"], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let red = line(&run, "[FAIL]", "acl");
    assert!(
        red.contains("SET denied: NOPERM") && red.contains("'set'"),
        "{red}"
    );
    assert_eq!(run.stdout.matches("[FAIL]").count(), 1, "{}", run.stdout);
    assert_eq!(run.error_line(), "cached-redis-cli: doctor: 1 check failed");
    assert!(
        !run.stdout.contains("cache-pw"),
        "no password in the output"
    );
}

#[test]
fn the_documented_minimal_user_passes_with_what_it_cannot_read_in_yellow() {
    let server = RedisServer::start();
    acl_setuser(&server, "cache", CACHE_RULES);
    let url = format!("redis://127.0.0.1:{}", server.port());
    let run = cli(
        &["--url", &url, "doctor"],
        &[("REDIS_USERNAME", "cache"), ("REDIS_PASSWORD", "cache-pw")],
    );
    run.assert_ok();
    assert!(!run.stdout.contains("[FAIL]"), "{}", run.stdout);
    assert!(
        line(&run, "[ ok ]", "auth")
            .contains("'cache' (as configured; ACL WHOAMI is not permitted)")
    );
    assert!(
        line(&run, "[ ok ]", "acl").contains("SET GET TYPE EVAL EVALSHA SCAN UNLINK permitted")
    );
    assert!(line(&run, "[warn]", "server").contains("INFO is not permitted"));
    assert!(line(&run, "[warn]", "maxmemory").contains("cannot read"));
    assert!(line(&run, "[warn]", "eviction").contains("cannot read"));
    // Its own commands, and nothing else, were sent: no ACL LOG entry
    // but the ones the probes of INFO, CONFIG and ACL WHOAMI caused.
    let log = command(&server, &["ACL", "LOG"]);
    let log = format!("{log:?}");
    for command in [
        "\"set\"",
        "\"get\"",
        "\"type\"",
        "\"eval\"",
        "\"evalsha\"",
        "\"scan\"",
        "\"unlink\"",
    ] {
        assert!(!log.contains(command), "{command} was refused: {log}");
    }
}

#[test]
fn near_cache_adds_client_tracking() {
    let server = RedisServer::start();
    acl_setuser(&server, "cache", CACHE_RULES);
    let url = format!("redis://cache:cache-pw@127.0.0.1:{}", server.port());
    let run = cli(&["--url", &url, "doctor"], &[("CACHE_NEAR", "on")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(line(&run, "[FAIL]", "acl").contains("CLIENT TRACKING denied: NOPERM"));

    acl_setuser(&server, "cache", "+client|tracking");
    let run = cli(&["--url", &url, "doctor"], &[("CACHE_NEAR", "on")]);
    run.assert_ok();
    assert!(line(&run, "[ ok ]", "acl").contains("UNLINK CLIENT TRACKING permitted"));
}

#[test]
fn tls_is_reported_as_verified() {
    let dir = std::env::temp_dir().join(format!("cached-redis-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = Pki::new(&["localhost", "127.0.0.1"]).write(&dir);
    let server = RedisServer::builder().tls(&files, false).start();
    let ca = files.ca.to_string_lossy().into_owned();
    let run = cli(
        &["--url", &server.tls_url(), "doctor"],
        &[("REDIS_CA_CERT", &ca)],
    );
    let _ = std::fs::remove_dir_all(&dir);
    run.assert_ok();
    assert!(
        line(&run, "[ ok ]", "tls").contains(&format!("verified against REDIS_CA_CERT ({ca})")),
        "{}",
        run.stdout
    );
    assert!(line(&run, "[ ok ]", "connection").contains("rediss://"));
}

/// 30 keys of `domain`, each written to the primary that serves it.
fn write_keys(cluster: &RedisCluster, domain: &str) -> Vec<String> {
    let keys: Vec<String> = (0..30)
        .map(|i| format!("meridian:v1:{domain}:{i:04}"))
        .collect();
    for key in &keys {
        cluster.node_for(key).set(key, b"v");
    }
    keys
}

fn exists(cluster: &RedisCluster, key: &str) -> bool {
    cluster.node_for(key).get(key).is_some()
}

#[test]
fn a_cluster_is_walked_on_every_primary() {
    let cluster = RedisCluster::start(3);
    let seeds = cluster.urls().join(",");
    let env = [("REDIS_CLUSTER_URLS", seeds.as_str())];
    let written = write_keys(&cluster, "spread");
    let nodes: std::collections::HashSet<u16> = written
        .iter()
        .map(|key| cluster.node_for(key).port())
        .collect();
    assert_eq!(nodes.len(), 3, "the keys spread over every primary");

    let doctor = cli(&["doctor"], &env);
    doctor.assert_ok();
    assert!(
        line(&doctor, "[ ok ]", "cluster").contains("cluster_state ok on 3 primaries"),
        "{doctor:#?}"
    );
    assert!(line(&doctor, "[ ok ]", "acl").contains("CLUSTER SLOTS PING permitted"));
    assert_eq!(
        doctor.stdout.matches("] eviction").count(),
        3,
        "one line per primary"
    );

    let ls = cli(&["ls", "--domain", "spread", "--json"], &env);
    ls.assert_ok();
    assert_eq!(ls.json()["keys"], 30, "{ls:#?}");

    let flush = cli(&["flush", "--domain", "spread"], &env);
    flush.assert_ok();
    assert_eq!(
        flush.stdout,
        "removed 30 keys matching meridian:v1:spread:*\n"
    );
    for key in &written {
        assert!(!exists(&cluster, key), "{key}");
    }
}

#[test]
fn a_slot_without_a_primary_stops_every_walk_before_it_starts() {
    let cluster = RedisCluster::start(3);
    let seeds = cluster.urls().join(",");
    let env = [("REDIS_CLUSTER_URLS", seeds.as_str())];
    let keys = write_keys(&cluster, "gap");
    // What a node that has not heard yet what another serves reports.
    cluster.unassign_slots(0, 99);
    let gap = "100 of the cluster's 16384 slots have no known primary";

    let ls = cli(&["ls", "--domain", "gap"], &env);
    assert_eq!(ls.code, 4, "{ls:#?}");
    assert!(ls.stderr.contains(gap), "{}", ls.stderr);

    let flush = cli(&["flush", "--domain", "gap"], &env);
    assert_eq!(flush.code, 4, "{flush:#?}");
    assert!(flush.stderr.contains(gap), "{}", flush.stderr);
    for key in &keys {
        assert!(
            exists(&cluster, key),
            "{key}: a refused walk removes nothing"
        );
    }

    let doctor = cli(&["doctor"], &env);
    assert_eq!(doctor.code, 1, "{doctor:#?}");
    assert!(line(&doctor, "[FAIL]", "cluster").contains(gap));
}

#[test]
fn behind_sentinel_the_master_is_checked_and_role_is_tried() {
    let group = RedisSentinel::start("cli-master");
    let sentinel = group.sentinel_url();
    let env = [
        ("REDIS_SENTINEL_URLS", sentinel.as_str()),
        ("REDIS_SENTINEL_MASTER", group.name()),
    ];
    let run = cli(&["doctor"], &env);
    run.assert_ok();
    assert!(line(&run, "[ ok ]", "connection").contains("master 'cli-master' of Sentinel"));
    line(&run, "[ ok ]", "sentinel");
    assert!(line(&run, "[ ok ]", "acl").contains("UNLINK ROLE permitted"));
    assert!(line(&run, "[ ok ]", "server").contains("role master"));

    let master = &group.nodes()[0];
    master.set("meridian:v1:natal:by-hand", b"x");
    let ls = cli(&["ls", "--domain", "natal", "--json"], &env);
    ls.assert_ok();
    assert_eq!(ls.json()["keys"], 1);
}
