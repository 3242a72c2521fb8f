//! `ls --domain D [--version V]`: a domain's keys, how many, how large,
//! and how long they have left.

use std::collections::BTreeMap;
use std::time::Duration;

use cached_redis_core::admin::redis::{self, Value};
use cached_redis_core::admin::{Admin, Batch};
use serde::Serialize;

use crate::error::CliError;
use crate::output::{self, Align, Report};
use crate::progress::Progress;

/// The histogram's buckets: upper bounds of remaining TTL, then keys
/// without one.
const BUCKETS: [(&str, Duration); 6] = [
    ("< 1m", Duration::from_secs(60)),
    ("1m - 10m", Duration::from_secs(600)),
    ("10m - 1h", Duration::from_secs(3600)),
    ("1h - 6h", Duration::from_secs(6 * 3600)),
    ("6h - 1d", Duration::from_secs(86_400)),
    (">= 1d", Duration::MAX),
];
const NO_EXPIRY: &str = "no expiry";

pub struct Options<'a> {
    pub domain: &'a str,
    pub version: &'a str,
    pub limit: usize,
    pub json: bool,
}

#[derive(Serialize)]
struct Listing {
    pattern: String,
    keys: u64,
    bytes: u64,
    /// Keys under the pattern holding something other than a string.
    non_string: u64,
    ttl_histogram: Vec<Bucket>,
    /// The first keys in key order, at most `--limit` of them.
    listed: Vec<Row>,
}

#[derive(Serialize)]
struct Bucket {
    ttl: &'static str,
    keys: u64,
}

#[derive(Serialize)]
struct Row {
    key: String,
    /// `null` for a non-string value.
    bytes: Option<u64>,
    /// `null`: no expiry.
    ttl_ms: Option<u64>,
}

pub fn run(admin: &Admin, options: &Options<'_>) -> Result<Report, CliError> {
    let pattern = admin.domain_pattern(options.domain, options.version)?;
    let mut listing = Listing {
        pattern: pattern.clone(),
        keys: 0,
        bytes: 0,
        non_string: 0,
        ttl_histogram: BUCKETS
            .iter()
            .map(|(ttl, _)| *ttl)
            .chain([NO_EXPIRY])
            .map(|ttl| Bucket { ttl, keys: 0 })
            .collect(),
        listed: Vec::new(),
    };
    // Only the first keys in key order are kept: bounded memory however
    // large the domain, and the same listing on every run.
    let mut kept: BTreeMap<String, Row> = BTreeMap::new();
    let progress = Progress::start(&format!("listing {pattern}"));
    for batch in admin.scan(&pattern) {
        for row in measure(admin, &batch?)? {
            listing.keys += 1;
            listing.bytes += row.bytes.unwrap_or(0);
            listing.non_string += u64::from(row.bytes.is_none());
            let bucket = match row.ttl_ms {
                Some(ms) => BUCKETS
                    .iter()
                    .position(|(_, bound)| Duration::from_millis(ms) < *bound)
                    .unwrap_or(BUCKETS.len() - 1),
                None => BUCKETS.len(),
            };
            if let Some(bucket) = listing.ttl_histogram.get_mut(bucket) {
                bucket.keys += 1;
            }
            if options.limit == 0 || kept.len() < options.limit {
                kept.insert(row.key.clone(), row);
            } else if kept
                .last_key_value()
                .is_some_and(|(last, _)| row.key < *last)
            {
                kept.pop_last();
                kept.insert(row.key.clone(), row);
            }
        }
        progress.update(|| format!("listing {pattern}: {} keys", output::count(listing.keys)));
    }
    drop(progress);
    if listing.keys == 0 {
        return Err(CliError::NoKeys(pattern));
    }
    listing.listed = kept.into_values().collect();
    if options.json {
        return Ok(Report::ok(output::json(&listing)?));
    }
    Ok(Report::ok(text(&listing)))
}

/// Each key's size (`STRLEN`) and remaining time (`PTTL`), one pipeline
/// per batch, sent to the node the batch came from. Keys gone since the
/// scan are left out.
fn measure(admin: &Admin, batch: &Batch) -> Result<Vec<Row>, CliError> {
    if batch.keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipeline = redis::pipe();
    for key in &batch.keys {
        pipeline.cmd("STRLEN").arg(key).cmd("PTTL").arg(key);
    }
    let replies = admin.pipeline_on(&batch.node, &pipeline).wait()?;
    let rows = batch
        .keys
        .iter()
        .zip(replies.chunks(2))
        .filter_map(|(key, replies)| {
            let ttl_ms = match replies.get(1)? {
                Value::Int(-2) => return None,
                Value::Int(ms) => u64::try_from(*ms).ok(),
                _ => None,
            };
            let bytes = match replies.first()? {
                Value::Int(len) => Some(len.unsigned_abs()),
                _ => None,
            };
            Some(Row {
                key: String::from_utf8_lossy(key).into_owned(),
                bytes,
                ttl_ms,
            })
        })
        .collect();
    Ok(rows)
}

fn text(listing: &Listing) -> String {
    let rows: Vec<Vec<String>> = listing
        .listed
        .iter()
        .map(|row| {
            vec![
                row.key.clone(),
                row.bytes
                    .map_or_else(|| "(not a string)".to_owned(), output::count),
                row.ttl_ms.map_or_else(
                    || NO_EXPIRY.to_owned(),
                    |ms| output::duration(Duration::from_millis(ms)),
                ),
            ]
        })
        .collect();
    let mut out = output::table(
        &["KEY", "BYTES", "TTL"],
        &[Align::Left, Align::Right, Align::Right],
        &rows,
    );
    let hidden = listing.keys - listing.listed.len() as u64;
    if hidden > 0 {
        out.push_str(&format!(
            "... and {} more (--limit 0 lists them all)\n",
            output::count(hidden)
        ));
    }
    out.push_str(&format!(
        "\n{} keys, {} ({} bytes) matching {}\n",
        output::count(listing.keys),
        output::bytes(listing.bytes),
        output::count(listing.bytes),
        listing.pattern
    ));
    if listing.non_string > 0 {
        out.push_str(&format!(
            "{} of them {} a non-string value (not a cache entry; the runtime purges it on read)\n",
            output::count(listing.non_string),
            if listing.non_string == 1 {
                "holds"
            } else {
                "hold"
            }
        ));
    }
    let histogram: Vec<Vec<String>> = listing
        .ttl_histogram
        .iter()
        .map(|bucket| {
            vec![
                bucket.ttl.to_owned(),
                output::count(bucket.keys),
                output::bar(bucket.keys, listing.keys, 30),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&output::table(
        &["TTL LEFT", "KEYS", ""],
        &[Align::Left, Align::Right, Align::Left],
        &histogram,
    ));
    out
}
