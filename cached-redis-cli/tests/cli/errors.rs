//! What every subcommand does when Redis cannot be reached, and help.

use std::time::Duration;

use cached_redis_test_support::refused_url;

use crate::support::*;

#[test]
fn an_unreachable_server_is_one_line_exit_3_and_fast() {
    let url = refused_url();
    for args in [
        &["inspect", "meridian:v1:natal:0123456789abcdef"][..],
        &["ls", "--domain", "natal"],
        &["flush", "--domain", "natal"],
        &["stats"],
        &["doctor"],
    ] {
        let mut all = vec!["--url", url.as_str()];
        all.extend_from_slice(args);
        let run = cli(&all, &[]);
        assert_eq!(run.code, 3, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, "", "{args:?}");
        let line = run.error_line();
        assert!(
            line.starts_with(&format!(
                "cached-redis-cli: cannot connect to {}",
                url.trim_end_matches('/')
            )),
            "{line}"
        );
        assert!(
            run.took < Duration::from_secs(2),
            "{args:?} took {:?}",
            run.took
        );
    }
}

#[test]
fn the_environment_is_read_like_the_runtime() {
    let url = refused_url();
    // REDIS_URL from the environment, and a bad variable named in one line.
    let run = cli(&["ls", "--domain", "natal"], &[("REDIS_URL", &url)]);
    assert_eq!(run.code, 3, "{run:#?}");
    let bad = cli(&["doctor"], &[("CACHE_NAMESPACE", "no spaces please")]);
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert!(bad.error_line().contains("CACHE_NAMESPACE"), "{bad:#?}");
    // A password in the URL never reaches the output.
    let secret = url.replace("redis://", "redis://:hunter2@");
    let run = cli(&["--url", &secret, "doctor"], &[]);
    assert_eq!(run.code, 3);
    assert!(!run.stderr.contains("hunter2"), "{run:#?}");
    assert!(run.error_line().contains(":***@"), "{run:#?}");
}

#[test]
fn every_subcommand_has_help_with_the_exit_codes() {
    for command in [
        &[][..],
        &["inspect"],
        &["ls"],
        &["flush"],
        &["stats"],
        &["doctor"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = cli(&args, &[]);
        run.assert_ok();
        assert!(run.stdout.contains("Usage: cached-redis-cli"), "{run:#?}");
        assert!(run.stdout.contains("Exit codes:"), "{run:#?}");
        assert!(run.stdout.contains("3  cannot connect"), "{run:#?}");
    }
    let usage = cli(&["ls"], &[]);
    assert_eq!(usage.code, 2);
    assert!(usage.error_line().contains("--domain"), "{usage:#?}");
    let timeout = cli(&["--timeout", "2m", "doctor"], &[]);
    assert_eq!(timeout.code, 2);
    timeout.error_line();
}
