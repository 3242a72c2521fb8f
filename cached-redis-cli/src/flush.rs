//! `flush`: remove a domain's keys (or, when told twice, the whole
//! namespace's) with `SCAN` and `UNLINK` in batches. Never `FLUSHDB`:
//! other keys in the database are not the cache's to remove.

use cached_redis_core::admin::Admin;
use serde::Serialize;

use crate::error::CliError;
use crate::output::{self, Report};
use crate::progress::Progress;

pub struct Options<'a> {
    pub domain: Option<&'a str>,
    pub version: &'a str,
    pub dry_run: bool,
    pub all_namespace: bool,
    pub yes: bool,
    pub json: bool,
}

#[derive(Serialize)]
struct Summary {
    pattern: String,
    dry_run: bool,
    /// Keys found (dry run) or removed.
    keys: u64,
}

/// Refuses a flush that names no domain, unless the whole namespace is
/// asked for twice over (`--all-namespace --yes`).
pub fn check(options: &Options<'_>) -> Result<(), CliError> {
    match (options.domain, options.all_namespace, options.yes) {
        (Some(_), _, _) | (None, true, true) => Ok(()),
        (None, true, false) => Err(CliError::Refused(
            "--all-namespace removes every key of the namespace; add --yes to confirm",
        )),
        (None, false, _) => Err(CliError::Refused(
            "flush needs --domain D (or --all-namespace --yes for the whole namespace)",
        )),
    }
}

pub fn run(admin: &Admin, options: &Options<'_>) -> Result<Report, CliError> {
    check(options)?;
    let pattern = match options.domain {
        Some(domain) => admin.domain_pattern(domain, options.version)?,
        None => admin.namespace_pattern(),
    };
    let verb = if options.dry_run { "found" } else { "removed" };
    let progress = Progress::start(&format!("flushing {pattern}"));
    let mut keys = 0;
    for batch in admin.scan(&pattern) {
        let batch = batch?;
        keys += if options.dry_run {
            batch.keys.len() as u64
        } else {
            // The count of keys that still existed: one expiring meanwhile
            // is not counted twice.
            admin.unlink(&batch).wait()?
        };
        progress.update(|| format!("{pattern}: {} keys {verb}", output::count(keys)));
    }
    drop(progress);
    // Nothing to remove is success: a flush after a deploy must be safe to
    // run again (`ls` is the place to learn that a domain holds nothing).
    let summary = Summary {
        pattern,
        dry_run: options.dry_run,
        keys,
    };
    if options.json {
        return Ok(Report::ok(output::json(&summary)?));
    }
    Ok(Report::ok(if options.dry_run {
        format!(
            "would remove {} keys matching {} (dry run: nothing removed)\n",
            output::count(keys),
            summary.pattern
        )
    } else {
        format!(
            "removed {} keys matching {}\n",
            output::count(keys),
            summary.pattern
        )
    }))
}
