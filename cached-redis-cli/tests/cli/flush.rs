//! `flush`: dry run, then the real thing; only the domain goes.

use cached_redis_test_support::RedisServer;

use crate::support::*;

#[test]
fn dry_run_then_flush_removes_the_domain_only() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    let natal = write_natal(&rt, 0..3);
    let transits = write_transits(&rt, 0..2);
    server.set("meridian:v2:natal:next", b"x");
    server.set("unrelated", b"keep");

    let dry = cli_on(&server, &["flush", "--domain", "natal", "--dry-run"]);
    dry.assert_ok();
    assert_eq!(
        dry.stdout,
        "would remove 3 keys matching meridian:v1:natal:* (dry run: nothing removed)\n"
    );
    assert!(
        natal.iter().all(|key| exists(&server, key)),
        "a dry run removes nothing"
    );

    let flush = cli_on(&server, &["flush", "--domain", "natal"]);
    flush.assert_ok();
    assert_eq!(
        flush.stdout,
        "removed 3 keys matching meridian:v1:natal:*\n"
    );
    assert!(server.keys("meridian:v1:natal:*").is_empty());
    assert!(
        transits.iter().all(|key| exists(&server, key)),
        "other domain untouched"
    );
    assert!(
        exists(&server, "meridian:v2:natal:next"),
        "other version untouched"
    );
    assert!(exists(&server, "unrelated"));

    // Again: nothing left, and that is not a failure (a flush is safe to repeat).
    let again = cli_on(&server, &["flush", "--domain", "natal"]);
    again.assert_ok();
    assert_eq!(
        again.stdout,
        "removed 0 keys matching meridian:v1:natal:*\n"
    );

    let json = cli_on(&server, &["flush", "--domain", "transits", "--json"]);
    json.assert_ok();
    assert_eq!(json.json()["keys"], 2);
    assert_eq!(json.json()["dry_run"], false);
}

#[test]
fn flush_without_a_domain_is_refused() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    let natal = write_natal(&rt, 0..2);

    for args in [
        &["flush"][..],
        &["flush", "--dry-run"],
        &["flush", "--yes"],
        &["flush", "--all-namespace"],
    ] {
        let run = cli_on(&server, args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, "");
        assert!(run.error_line().contains("--all-namespace"), "{run:#?}");
    }
    let both = cli_on(
        &server,
        &["flush", "--domain", "natal", "--all-namespace", "--yes"],
    );
    assert_eq!(both.code, 2, "{both:#?}");
    both.error_line();
    assert!(
        natal.iter().all(|key| exists(&server, key)),
        "nothing removed"
    );
}

#[test]
fn the_whole_namespace_goes_only_when_told_twice() {
    let server = RedisServer::start();
    let rt = runtime(&server.url(), None);
    write_natal(&rt, 0..2);
    write_transits(&rt, 0..2);
    server.set("other:v1:natal:1", b"keep");

    let run = cli_on(&server, &["flush", "--all-namespace", "--yes"]);
    run.assert_ok();
    assert_eq!(run.stdout, "removed 4 keys matching meridian:*\n");
    assert!(server.keys("meridian:*").is_empty());
    assert!(exists(&server, "other:v1:natal:1"));
}
