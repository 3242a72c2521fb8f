//! Every way a command can fail, and the exit code each one gets.

use std::process::ExitCode;

use cached_redis_core::admin::AdminError;
use cached_redis_core::advanced::envelope::EnvelopeError;
use cached_redis_core::{ConfigError, KeyError};

use crate::http::HttpError;

/// Exit codes, as `--help` lists them.
pub const OK: u8 = 0;
/// A negative answer: not found, not valid, not healthy.
pub const FINDING: u8 = 1;
/// Bad flags or configuration (clap uses 2 for its own usage errors too).
pub const USAGE: u8 = 2;
/// Redis or the metrics endpoint cannot be reached.
pub const UNREACHABLE: u8 = 3;
/// A server refused or failed an operation part-way.
pub const FAILED: u8 = 4;

/// What `--help` says about exit codes.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a negative answer: no such key, not a cache entry, an entry the runtime
     would refuse, no keys match (ls), a red doctor line
  2  usage or configuration: bad flags, an invalid environment variable,
     flush without --domain, a metrics URL that is not http://
  3  cannot connect: Redis or the metrics endpoint is unreachable, or refuses
     the credentials or the TLS handshake
  4  an operation failed: Redis refused a command (NOPERM, a timeout...), the
     metrics endpoint answered with an error";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Redis(#[from] AdminError),
    #[error("no such key: {0}")]
    NoSuchKey(String),
    #[error("{key} holds a Redis {kind}, not a cached-redis entry")]
    WrongType { key: String, kind: String },
    #[error("{key} is not a cached-redis entry ({size} bytes: {reason})")]
    NotAnEntry {
        key: String,
        size: usize,
        reason: EnvelopeError,
    },
    #[error("no keys match {0}")]
    NoKeys(String),
    #[error("metrics: {0}")]
    Http(#[from] HttpError),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Config(_) | CliError::Key(_) | CliError::Refused(_) => USAGE,
            CliError::Redis(err) if err.is_connection() => UNREACHABLE,
            CliError::Redis(_) | CliError::Output(_) => FAILED,
            CliError::NoSuchKey(_)
            | CliError::WrongType { .. }
            | CliError::NotAnEntry { .. }
            | CliError::NoKeys(_) => FINDING,
            CliError::Http(HttpError::Url { .. }) => USAGE,
            CliError::Http(err) if err.is_connection() => UNREACHABLE,
            CliError::Http(_) => FAILED,
        })
    }

    /// The message on one line, whatever a server put in it.
    pub fn one_line(&self) -> String {
        self.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}
