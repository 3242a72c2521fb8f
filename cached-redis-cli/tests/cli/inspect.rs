//! `inspect KEY` on real entries, signed and unsigned, and on keys that
//! hold no entry.

use cached_redis_test_support::RedisServer;

use crate::support::*;

const HMAC_KEY: &str = "inspect-test-key-0123456789abcdef";

#[test]
fn a_real_entry_decodes_in_text_and_json() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    let key = write_natal(&rt, 0..1).remove(0);

    let run = cli_on(&server, &["inspect", &key]);
    run.assert_ok();
    let size = strlen(&server, &key);
    for expected in [
        format!("key         {key}"),
        "envelope    version 1".to_owned(),
        "codec       1 (postcard)".to_owned(),
        "flags       none".to_owned(),
        "(matches the key)".to_owned(),
        "stored TTL  1h 00m (fresh for 59m".to_owned(),
        "(Redis PTTL)".to_owned(),
        format!("size        {size} B (header 64, body {})", size - 64),
        "checksum    ok".to_owned(),
        "HMAC        unsigned".to_owned(),
        "verdict     valid: the runtime would use this entry".to_owned(),
    ] {
        assert!(
            run.stdout.contains(&expected),
            "{expected:?} in:\n{}",
            run.stdout
        );
    }

    let json = cli_on(&server, &["inspect", &key, "--json"]);
    json.assert_ok();
    let json = json.json();
    assert_eq!(json["key"], key.as_str());
    assert_eq!(json["valid"], true);
    assert_eq!(json["codec"], 1);
    assert_eq!(json["codec_name"], "postcard");
    assert_eq!(json["envelope_version"], 1);
    assert_eq!(json["ttl_ms"], 3_600_000);
    assert_eq!(json["fresh"], true);
    assert_eq!(json["checksum"], "ok");
    assert_eq!(json["hmac"], "unsigned");
    assert_eq!(json["digest_matches_key"], true);
    assert_eq!(json["size"], size);
    let hash = key.rsplit(':').next().unwrap();
    assert!(json["digest"].as_str().unwrap().starts_with(hash));
    let left = json["expires_in_ms"].as_u64().expect("a Redis TTL");
    assert!(left > 3_500_000 && left <= 3_600_000, "{left}");
    assert!(json["age_ms"].as_u64().unwrap() < 60_000);
}

#[test]
fn signatures_are_checked_with_the_configured_key() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), Some(HMAC_KEY));
    let key = write_natal(&rt, 0..1).remove(0);
    let url = server.url();

    let verified = cli(
        &["--url", &url, "inspect", &key],
        &[("CACHE_HMAC_KEY", HMAC_KEY)],
    );
    verified.assert_ok();
    assert!(
        verified.stdout.contains("flags       signed\n"),
        "{}",
        verified.stdout
    );
    assert!(
        verified.stdout.contains("HMAC        verified\n"),
        "{}",
        verified.stdout
    );

    let unchecked = cli(&["--url", &url, "inspect", &key], &[]);
    unchecked.assert_ok();
    assert!(
        unchecked
            .stdout
            .contains("HMAC        signed, not verified (no key)\n"),
        "{}",
        unchecked.stdout
    );

    let other_key = "another-key-0123456789abcdef-xyz";
    let forged = cli(
        &["--url", &url, "inspect", &key, "--json"],
        &[("CACHE_HMAC_KEY", other_key)],
    );
    assert_eq!(forged.code, 1, "{forged:#?}");
    assert_eq!(forged.json()["hmac"], "invalid");
    assert_eq!(forged.json()["valid"], false);
    assert_eq!(
        forged.error_line(),
        format!(
            "cached-redis-cli: {key}: the runtime would refuse this entry: HMAC does not verify"
        )
    );
}

#[test]
fn a_damaged_entry_is_shown_and_refused() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    let key = write_natal(&rt, 0..1).remove(0);
    let mut bytes = server.get(&key).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    server.set(&key, &bytes);

    let run = cli_on(&server, &["inspect", &key]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains("checksum    MISMATCH (damaged bytes)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("verdict     REFUSED: checksum mismatch"),
        "{}",
        run.stdout
    );
    assert!(
        run.error_line()
            .contains("the runtime would refuse this entry")
    );
}

#[test]
fn an_unknown_key_is_one_line_and_exit_1() {
    let server = RedisServer::start();
    let run = cli_on(&server, &["inspect", "meridian:v1:natal:0123456789abcdef"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        "cached-redis-cli: no such key: meridian:v1:natal:0123456789abcdef"
    );
}

#[test]
fn a_value_that_is_no_entry_is_one_line_and_exit_1() {
    let server = RedisServer::start();
    server.set("meridian:v1:natal:by-hand", b"hello, not an envelope");
    let run = cli_on(&server, &["inspect", "meridian:v1:natal:by-hand"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        "cached-redis-cli: meridian:v1:natal:by-hand is not a cached-redis entry \
         (22 bytes: 22 bytes is shorter than the 64-byte header)"
    );

    server.set("long", &[b'x'; 100]);
    let run = cli_on(&server, &["inspect", "long"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.error_line().ends_with("(100 bytes: bad magic bytes)"),
        "{run:#?}"
    );

    command(&server, &["RPUSH", "meridian:v1:natal:list", "x"]);
    let run = cli_on(&server, &["inspect", "meridian:v1:natal:list"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.error_line(),
        "cached-redis-cli: meridian:v1:natal:list holds a Redis list, not a cached-redis entry"
    );
}
