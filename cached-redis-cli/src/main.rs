//! `cached-redis-cli`: the operator's tool for cached-redis. It connects
//! exactly as the service's runtime does (the same environment variables,
//! through `cached_redis_core::admin`) to inspect entries, list and flush
//! domains, read a service's stats and check a Redis. See `docs/cli.md`.
#![forbid(unsafe_code)]

mod context;
mod doctor;
mod error;
mod flush;
mod http;
mod inspect;
mod ls;
mod output;
mod progress;
mod prometheus;
mod stats;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::context::{Context, Overrides};
use crate::error::{CliError, EXIT_CODES};
use crate::output::{Report, Style};

const CONFIGURATION: &str = "\
Connects as the service's runtime does, from the same environment variables:
REDIS_URL, REDIS_CLUSTER_URLS, REDIS_SENTINEL_URLS + REDIS_SENTINEL_MASTER,
REDIS_USERNAME, REDIS_PASSWORD, REDIS_CA_CERT, REDIS_CLIENT_CERT,
REDIS_CLIENT_KEY, CACHE_NAMESPACE, CACHE_HMAC_KEY, CACHE_HMAC_KEY_PREVIOUS,
CACHE_NEAR (docs/configuration.md). ENABLE_REDIS_CACHE is not consulted.";

#[derive(Debug, Parser)]
#[command(
    name = "cached-redis-cli",
    version,
    about = "Inspect, list, flush and check the Redis behind cached-redis",
    after_help = format!("{CONFIGURATION}\n\n{EXIT_CODES}")
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Connect to this one node instead of REDIS_URL (and instead of
    /// REDIS_CLUSTER_URLS or REDIS_SENTINEL_URLS); REDIS_USERNAME and
    /// REDIS_PASSWORD still win over its user and password
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// Key namespace instead of CACHE_NAMESPACE
    #[arg(long, global = true, value_name = "NAME")]
    namespace: Option<String>,
    /// Deadline of each Redis round trip and of connecting, e.g. 500ms,
    /// 5s (at most 60s); not CACHE_REDIS_TIMEOUT, which is for calls
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = timeout)]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode one entry's envelope: codec, flags, digest, age, TTL, size,
    /// checksum and HMAC, and whether the runtime would use it
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// The Redis key, e.g. meridian:v1:natal:af230c6a7a4e21e1
        key: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List a domain's keys with their size and TTL left, the count, the
    /// total size and a TTL histogram (SCAN, never KEYS)
    #[command(after_help = EXIT_CODES)]
    Ls {
        /// The domain, as in #[redis_cached(domain = "...")]
        #[arg(long)]
        domain: String,
        /// The key version
        #[arg(long, default_value = "v1")]
        version: String,
        /// Keys listed, first in key order (0: all); the totals count every key
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a domain's keys: SCAN + UNLINK in batches, never FLUSHDB
    #[command(after_help = EXIT_CODES)]
    Flush {
        /// The domain to remove
        #[arg(long)]
        domain: Option<String>,
        /// The key version
        #[arg(long, default_value = "v1")]
        version: String,
        /// Count what would go, remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Remove every key of the namespace, every domain and version
        /// (needs --yes)
        #[arg(long, conflicts_with = "domain")]
        all_namespace: bool,
        /// Confirm --all-namespace
        #[arg(long)]
        yes: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Hit ratio, errors and breaker state from a service's /metrics, and
    /// key counts per domain from Redis
    #[command(after_help = EXIT_CODES)]
    Stats {
        /// A service's Prometheus page, e.g. http://10.0.0.5:3000/metrics
        /// (http:// only)
        #[arg(long, value_name = "URL")]
        metrics_url: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Check Redis for the cache: connectivity and latency, TLS, the user
    /// and its permission for every command the cache sends, memory limit
    /// and eviction policy, persistence, cluster state
    #[command(after_help = EXIT_CODES)]
    Doctor {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn timeout(text: &str) -> Result<Duration, String> {
    let timeout = cached_redis_core::advanced::parse_duration(text).map_err(|e| e.to_string())?;
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err("expected a duration above zero and at most 60s".to_owned());
    }
    Ok(timeout)
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("cached-redis-cli: internal error: {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage(&err),
    };
    match run(&cli).and_then(print) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cached-redis-cli: {}", err.one_line());
            err.exit_code()
        }
    }
}

/// Help and version as clap prints them; a usage error on one line, like
/// every other error.
fn usage(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(error::USAGE));
    }
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("cached-redis-cli: {message} (see --help)");
    ExitCode::from(error::USAGE)
}

fn run(cli: &Cli) -> Result<Report, CliError> {
    let overrides = Overrides {
        url: cli.global.url.clone(),
        namespace: cli.global.namespace.clone(),
        timeout: cli.global.timeout,
    };
    let context = Context::from_env(&overrides)?;
    match &cli.command {
        Command::Inspect { key, json } => {
            inspect::run(&context.connect()?, &context.config, key, *json)
        }
        Command::Ls {
            domain,
            version,
            limit,
            json,
        } => ls::run(
            &context.connect()?,
            &ls::Options {
                domain,
                version,
                limit: *limit,
                json: *json,
            },
        ),
        Command::Flush {
            domain,
            version,
            dry_run,
            all_namespace,
            yes,
            json,
        } => {
            let options = flush::Options {
                domain: domain.as_deref(),
                version,
                dry_run: *dry_run,
                all_namespace: *all_namespace,
                yes: *yes,
                json: *json,
            };
            // Refused before connecting: a wrong command should not wait on Redis.
            flush::check(&options)?;
            flush::run(&context.connect()?, &options)
        }
        Command::Stats { metrics_url, json } => stats::run(
            &context.connect()?,
            &stats::Options {
                metrics_url: metrics_url.as_deref(),
                timeout: cli.global.timeout,
                json: *json,
            },
        ),
        Command::Doctor { json } => doctor::run(&context, Style::detect(), *json),
    }
}

/// Writes the report; a finding goes to stderr and makes the exit code 1.
/// A reader that went away (`| head`) is not an error.
fn print(report: Report) -> Result<ExitCode, CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(report.text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(CliError::Output(err));
        }
        _ => {}
    }
    Ok(match report.finding {
        Some(finding) => {
            eprintln!("cached-redis-cli: {finding}");
            ExitCode::from(error::FINDING)
        }
        None => ExitCode::from(error::OK),
    })
}
