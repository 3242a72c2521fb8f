//! `ls --domain D`: keys, count, bytes, TTL histogram.

use cached_redis_test_support::RedisServer;

use crate::support::*;

#[test]
fn lists_a_domain_with_counts_bytes_and_a_ttl_histogram() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    let mut natal = write_natal(&rt, 0..3);
    write_transits(&rt, 0..2);
    // A key of the domain without expiry, and one of another version.
    server.set("meridian:v1:natal:by-hand", b"12345");
    server.set("meridian:v2:natal:next", b"x");
    natal.push("meridian:v1:natal:by-hand".to_owned());
    let bytes: u64 = natal.iter().map(|key| strlen(&server, key)).sum();
    // Not a string: listed, counted apart, no bytes.
    command(&server, &["RPUSH", "meridian:v1:natal:list", "x"]);
    natal.push("meridian:v1:natal:list".to_owned());
    natal.sort();

    let json = cli_on(&server, &["ls", "--domain", "natal", "--json"]);
    json.assert_ok();
    let json = json.json();
    assert_eq!(json["pattern"], "meridian:v1:natal:*");
    assert_eq!(json["keys"], 5);
    assert_eq!(json["bytes"], bytes);
    assert_eq!(json["non_string"], 1);
    let listed: Vec<&str> = json["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["key"].as_str().unwrap())
        .collect();
    assert_eq!(listed, natal);
    let histogram: Vec<(String, u64)> = json["ttl_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["ttl"].as_str().unwrap().to_owned(),
                b["keys"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = [
        ("< 1m", 0),
        ("1m - 10m", 0),
        ("10m - 1h", 3),
        ("1h - 6h", 0),
        ("6h - 1d", 0),
        (">= 1d", 0),
        ("no expiry", 2),
    ]
    .into_iter()
    .map(|(ttl, n)| (ttl.to_owned(), n))
    .collect();
    assert_eq!(histogram, expected);

    let text = cli_on(&server, &["ls", "--domain", "natal"]);
    text.assert_ok();
    let out = &text.stdout;
    assert!(out.starts_with("KEY "), "{out}");
    for key in &natal {
        assert!(out.contains(key.as_str()), "{key} in {out}");
    }
    assert!(!out.contains("transits"), "{out}");
    assert!(
        out.contains(&format!(
            "\n5 keys, {} ({bytes} bytes) matching meridian:v1:natal:*\n",
            fmt_bytes(bytes)
        )),
        "{out}"
    );
    assert!(out.contains("meridian:v1:natal:by-hand"), "{out}");
    let list = out
        .lines()
        .find(|line| line.starts_with("meridian:v1:natal:list "))
        .unwrap();
    assert!(list.ends_with("(not a string)  no expiry"), "{out}");
    assert!(
        out.contains("\n1 of them holds a non-string value"),
        "{out}"
    );
    // Bars of 30 cells at most: 3 of 5 keys is 18, 2 is 12.
    assert!(
        out.contains(&format!("\n10m - 1h      3  {}\n", "#".repeat(18))),
        "{out}"
    );
    assert!(
        out.contains(&format!("\nno expiry     2  {}\n", "#".repeat(12))),
        "{out}"
    );
    assert!(out.contains("\n< 1m          0\n"), "{out}");

    let limited = cli_on(&server, &["ls", "--domain", "natal", "--limit", "2"]);
    limited.assert_ok();
    assert!(
        limited
            .stdout
            .contains("... and 3 more (--limit 0 lists them all)"),
        "{}",
        limited.stdout
    );
    assert!(limited.stdout.contains(&natal[1]) && !limited.stdout.contains(&natal[2]));

    let v2 = cli_on(
        &server,
        &["ls", "--domain", "natal", "--version", "v2", "--json"],
    );
    v2.assert_ok();
    assert_eq!(v2.json()["keys"], 1);
}

fn fmt_bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

#[test]
fn a_domain_without_keys_is_one_line_and_exit_1() {
    let server = RedisServer::start();
    let run = cli_on(&server, &["ls", "--domain", "nosuch"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        "cached-redis-cli: no keys match meridian:v1:nosuch:*"
    );
}

#[test]
fn an_invalid_domain_is_a_usage_error() {
    let server = RedisServer::start();
    let run = cli_on(&server, &["ls", "--domain", "Natal*"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.error_line().contains("invalid domain \"Natal*\""),
        "{run:#?}"
    );
}

#[test]
fn many_keys_are_walked_in_batches() {
    let server = RedisServer::start();
    let mut pipe = cached_redis::admin::redis::pipe();
    for i in 0..1_300 {
        pipe.cmd("SET")
            .arg(format!("meridian:v1:bulk:{i:05}"))
            .arg("v")
            .arg("EX")
            .arg(90)
            .ignore();
    }
    let () = pipe.query(&mut server.connection()).unwrap();
    let run = cli_on(
        &server,
        &["ls", "--domain", "bulk", "--json", "--limit", "0"],
    );
    run.assert_ok();
    let json = run.json();
    assert_eq!(json["keys"], 1_300);
    assert_eq!(json["bytes"], 1_300);
    assert_eq!(json["listed"].as_array().unwrap().len(), 1_300);
    assert_eq!(json["ttl_histogram"][1]["keys"], 1_300, "1m - 10m");
}
