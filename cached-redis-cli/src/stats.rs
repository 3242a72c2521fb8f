//! `stats`: a service's hit ratio, errors and breaker state from its
//! `/metrics` page, and key counts per domain from Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use cached_redis_core::admin::Admin;
use serde::Serialize;

use crate::error::CliError;
use crate::output::{self, Align, Report};
use crate::progress::Progress;
use crate::{http, prometheus};

/// The `outcome`s of `cache_calls_total` that a hit ratio counts as hits;
/// `bypass` is no lookup at all (as in docs/observability.md's query).
const HITS: [&str; 4] = ["hit", "memory_hit", "fallback", "coalesced"];

pub struct Options<'a> {
    pub metrics_url: Option<&'a str>,
    pub timeout: Duration,
    pub json: bool,
}

#[derive(Serialize)]
struct Stats {
    metrics: Option<Metrics>,
    keys: Keys,
}

#[derive(Serialize)]
struct Metrics {
    url: String,
    domains: Vec<DomainMetrics>,
    total: DomainMetrics,
    redis_errors_by_kind: BTreeMap<String, u64>,
    refused_entries_by_reason: BTreeMap<String, u64>,
}

#[derive(Serialize, Default, Clone)]
struct DomainMetrics {
    domain: String,
    calls: u64,
    hits: u64,
    misses: u64,
    /// `null` before the first lookup.
    hit_ratio: Option<f64>,
    redis_errors: u64,
    /// `closed`, `half-open`, `open`; `null` if the page has no gauge.
    breaker: Option<&'static str>,
    #[serde(skip)]
    lookups: u64,
    #[serde(skip)]
    breaker_gauge: Option<f64>,
}

#[derive(Serialize)]
struct Keys {
    pattern: String,
    total: u64,
    domains: Vec<DomainKeys>,
    /// Keys of the namespace not shaped `{namespace}:{version}:{domain}:…`.
    other: u64,
}

#[derive(Serialize)]
struct DomainKeys {
    domain: String,
    version: String,
    keys: u64,
}

pub fn run(admin: &Admin, options: &Options<'_>) -> Result<Report, CliError> {
    let metrics = options
        .metrics_url
        .map(|url| {
            let page = http::get(url, options.timeout)?;
            Ok::<_, CliError>(summarize(url, &prometheus::parse(&page)))
        })
        .transpose()?;
    let keys = count_keys(admin)?;
    let stats = Stats { metrics, keys };
    if options.json {
        return Ok(Report::ok(output::json(&stats)?));
    }
    Ok(Report::ok(text(&stats)))
}

fn summarize(url: &str, samples: &[prometheus::Sample]) -> Metrics {
    let mut domains: BTreeMap<String, DomainMetrics> = BTreeMap::new();
    let mut by_kind = BTreeMap::new();
    let mut by_reason = BTreeMap::new();
    for sample in samples {
        let Some(domain) = sample.label("domain") else {
            continue;
        };
        let entry = domains
            .entry(domain.to_owned())
            .or_insert_with(|| DomainMetrics {
                domain: domain.to_owned(),
                ..DomainMetrics::default()
            });
        // Counters are whole numbers rendered as floats.
        let count = sample.value.max(0.0) as u64;
        match sample.name.as_str() {
            "cache_calls_total" => {
                let outcome = sample.label("outcome").unwrap_or_default();
                entry.calls += count;
                if HITS.contains(&outcome) {
                    entry.hits += count;
                }
                if outcome == "miss" {
                    entry.misses += count;
                }
                if outcome != "bypass" {
                    entry.lookups += count;
                }
            }
            "cache_redis_errors_total" => {
                entry.redis_errors += count;
                let kind = sample.label("kind").unwrap_or("unknown").to_owned();
                *by_kind.entry(kind).or_insert(0) += count;
            }
            "cache_redis_corrupt_total" => {
                let reason = sample.label("reason").unwrap_or("unknown").to_owned();
                *by_reason.entry(reason).or_insert(0) += count;
            }
            "cache_breaker_state" => {
                entry.breaker_gauge = Some(
                    entry
                        .breaker_gauge
                        .map_or(sample.value, |g| g.max(sample.value)),
                );
            }
            _ => {}
        }
    }
    let mut total = DomainMetrics {
        domain: "total".to_owned(),
        ..DomainMetrics::default()
    };
    let mut domains: Vec<DomainMetrics> = domains.into_values().collect();
    for domain in &mut domains {
        finish(domain);
        total.calls += domain.calls;
        total.hits += domain.hits;
        total.misses += domain.misses;
        total.lookups += domain.lookups;
        total.redis_errors += domain.redis_errors;
        total.breaker_gauge = match (total.breaker_gauge, domain.breaker_gauge) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    finish(&mut total);
    Metrics {
        url: url.to_owned(),
        domains,
        total,
        redis_errors_by_kind: by_kind,
        refused_entries_by_reason: by_reason,
    }
}

fn finish(domain: &mut DomainMetrics) {
    domain.hit_ratio = (domain.lookups > 0).then(|| domain.hits as f64 / domain.lookups as f64);
    domain.breaker = domain.breaker_gauge.map(|gauge| match gauge as u8 {
        0 => "closed",
        1 => "half-open",
        _ => "open",
    });
}

/// Keys per domain and version: one walk of the namespace.
fn count_keys(admin: &Admin) -> Result<Keys, CliError> {
    let pattern = admin.namespace_pattern();
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    let (mut total, mut other) = (0, 0);
    let progress = Progress::start(&format!("counting {pattern}"));
    for batch in admin.scan(&pattern) {
        for key in batch?.keys {
            total += 1;
            let key = String::from_utf8_lossy(&key);
            let mut segments = key.splitn(4, ':').skip(1);
            match (segments.next(), segments.next(), segments.next()) {
                (Some(version), Some(domain), Some(_)) => {
                    *counts
                        .entry((domain.to_owned(), version.to_owned()))
                        .or_insert(0) += 1;
                }
                _ => other += 1,
            }
        }
        progress.update(|| format!("counting {pattern}: {} keys", output::count(total)));
    }
    Ok(Keys {
        pattern,
        total,
        domains: counts
            .into_iter()
            .map(|((domain, version), keys)| DomainKeys {
                domain,
                version,
                keys,
            })
            .collect(),
        other,
    })
}

fn text(stats: &Stats) -> String {
    let mut out = String::new();
    match &stats.metrics {
        Some(metrics) => {
            out.push_str(&format!("Metrics from {}\n", metrics.url));
            if metrics.domains.is_empty() {
                out.push_str("no cached-redis series on that page yet (no domain has seen a call)\n");
            } else {
                let row = |m: &DomainMetrics| {
                    vec![
                        m.domain.clone(),
                        output::count(m.calls),
                        output::count(m.hits),
                        output::count(m.misses),
                        m.hit_ratio
                            .map_or_else(|| "-".to_owned(), |r| format!("{:.1} %", r * 100.0)),
                        output::count(m.redis_errors),
                        m.breaker.unwrap_or("-").to_owned(),
                    ]
                };
                let mut rows: Vec<Vec<String>> = metrics.domains.iter().map(row).collect();
                rows.push(row(&metrics.total));
                out.push_str(&output::table(
                    &["DOMAIN", "CALLS", "HITS", "MISSES", "HIT RATIO", "REDIS ERRORS", "BREAKER"],
                    &[
                        Align::Left,
                        Align::Right,
                        Align::Right,
                        Align::Right,
                        Align::Right,
                        Align::Right,
                        Align::Left,
                    ],
                    &rows,
                ));
                out.push_str(&format!(
                    "Redis errors by kind: {}\n",
                    nonzero(&metrics.redis_errors_by_kind)
                ));
                out.push_str(&format!(
                    "Entries refused by reason: {}\n",
                    nonzero(&metrics.refused_entries_by_reason)
                ));
            }
        }
        None => out.push_str(
            "(no --metrics-url: hit ratio, errors and breaker state come from a service's /metrics)\n",
        ),
    }
    let keys = &stats.keys;
    out.push_str(&format!("\nKeys in Redis matching {}\n", keys.pattern));
    let mut rows: Vec<Vec<String>> = keys
        .domains
        .iter()
        .map(|d| vec![d.domain.clone(), d.version.clone(), output::count(d.keys)])
        .collect();
    if keys.other > 0 {
        rows.push(vec![
            "(other)".to_owned(),
            String::new(),
            output::count(keys.other),
        ]);
    }
    rows.push(vec![
        "total".to_owned(),
        String::new(),
        output::count(keys.total),
    ]);
    out.push_str(&output::table(
        &["DOMAIN", "VERSION", "KEYS"],
        &[Align::Left, Align::Left, Align::Right],
        &rows,
    ));
    out
}

fn nonzero(counts: &BTreeMap<String, u64>) -> String {
    let shown: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name} {}", output::count(*n)))
        .collect();
    if shown.is_empty() {
        "none".to_owned()
    } else {
        shown.join(", ")
    }
}
