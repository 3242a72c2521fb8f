use std::time::Duration;

/// Why a Redis operation failed. A cached call never sees it (the call
/// falls back); [`Runtime::clear`](crate::Runtime::clear) reports it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// No answer within the operation deadline (`CACHE_REDIS_TIMEOUT`).
    #[error("no answer from Redis within {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: Redis was not contacted.
    #[error("the circuit breaker is open; Redis was not contacted")]
    CircuitOpen,
    /// The key holds a Redis type other than a string.
    #[error("the key holds a non-string Redis value")]
    WrongType,
    /// The cache's background threads, which drive every connection and
    /// deadline, could not start.
    #[error("the cache's background threads are unavailable")]
    NoIoThread,
    /// Redis answered with a reply the cache cannot read.
    #[error("unexpected reply from Redis: {0}")]
    UnexpectedReply(&'static str),
    /// The Redis Cluster's slot map, as the node asked reports it, names
    /// fewer primaries than serve every key: `clear` would leave keys
    /// behind, so it removes none.
    #[error(transparent)]
    SlotMap(#[from] SlotMapError),
    /// Redis refused the command or the connection failed (refused, reset,
    /// authentication, `OOM`, `READONLY`, `NOPERM`, …).
    #[error("redis: {0}")]
    Client(#[from] ::redis::RedisError),
}

impl RedisError {
    /// The `kind` label of `cache_redis_errors_total`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RedisError::Timeout(_) => "timeout",
            RedisError::WrongType => "corrupt",
            RedisError::CircuitOpen => "circuit_open",
            RedisError::NoIoThread => "io_thread",
            RedisError::UnexpectedReply(_) => "protocol",
            RedisError::SlotMap(_) => "server",
            RedisError::Client(err) => {
                if err.kind() == ::redis::ErrorKind::AuthenticationFailed
                    || err.code() == Some("NOAUTH")
                {
                    "auth"
                } else if err.is_connection_refusal()
                    || err.is_connection_dropped()
                    || err.is_io_error()
                {
                    "connection"
                } else if err.code().is_some() {
                    "server"
                } else {
                    "protocol"
                }
            }
        }
    }
}

/// Why a Redis Cluster's slot map, as one node reports it, cannot be
/// walked by [`Runtime::clear`](crate::Runtime::clear) or the admin's
/// [`scan`](crate::admin::Admin::scan): a walk of fewer primaries than
/// serve every slot would leave keys out without a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotMapError {
    /// A primary reports no address of its own (a lone node that was
    /// never introduced to others, or one without `cluster-announce-ip`).
    #[error("a cluster primary reports no address of its own; set cluster-announce-ip on it")]
    UnknownNode,
    /// Slots that no primary serves, as far as the node asked knows: a
    /// cluster still forming (that node has not heard yet what another
    /// serves), or a primary lost while `cluster-require-full-coverage`
    /// is `no`.
    #[error(
        "{uncovered} of the cluster's 16384 slots have no known primary (a cluster still \
         forming, or a primary down); try again once every slot is served"
    )]
    Uncovered {
        /// How many slots.
        uncovered: usize,
    },
}
