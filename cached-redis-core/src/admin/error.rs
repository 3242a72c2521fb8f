use std::time::Duration;

use crate::key::KeyError;
use crate::redis::SlotMapError;

/// Why an [`Admin`](super::Admin) operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No connection could be made: refused, unreachable, a certificate
    /// that does not verify, a rejected password, no master from Sentinel…
    /// The target is shown with passwords replaced by `***`.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// Where the connection was to go, redacted.
        target: String,
        /// The client's reason.
        #[source]
        source: ::redis::RedisError,
    },
    /// No answer within the operation's deadline.
    #[error("no answer from Redis within {0:?}")]
    Timeout(Duration),
    /// Redis answered a command with an error (`NOPERM`, `WRONGTYPE`,
    /// `OOM`…), or the connection broke during it.
    #[error("{command}: {source}")]
    Command {
        /// The command's name (never its arguments, which may be keys).
        command: String,
        /// What Redis or the client said.
        #[source]
        source: ::redis::RedisError,
    },
    /// A reply of a shape the command never gives.
    #[error("unexpected reply to {0}")]
    UnexpectedReply(&'static str),
    /// The cluster's slot map names fewer primaries than serve every
    /// key, so no walk of it starts.
    #[error(transparent)]
    SlotMap(#[from] SlotMapError),
    /// The cache's background threads, which drive every connection and
    /// deadline, could not start.
    #[error("the cache's background threads are unavailable")]
    NoIoThread,
    /// A domain, version or namespace that is not valid in a key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl AdminError {
    /// Whether Redis could not be reached at all (as opposed to refusing a
    /// command): no connection, or one that broke.
    pub fn is_connection(&self) -> bool {
        match self {
            AdminError::Connect { .. } => true,
            AdminError::Command { source, .. } => {
                source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_io_error()
            }
            _ => false,
        }
    }

    /// The error code of Redis's reply (`NOPERM`, `WRONGTYPE`, `NOSCRIPT`…),
    /// if Redis replied with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AdminError::Command { source, .. } => source.code(),
            _ => None,
        }
    }

    /// Whether the ACL user lacks the permission (`NOPERM`).
    pub fn is_denied(&self) -> bool {
        self.code() == Some("NOPERM")
    }
}
