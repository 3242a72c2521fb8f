//! Where envelopes live: Redis, and a bounded in-memory cache.

mod connection;
mod memory;
mod redis;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisStore, Timeouts};

/// Bytes as stored: cheap to share between the memory cache and a pending write.
pub type Bytes = Arc<[u8]>;

/// Why a store operation failed. Never reaches a cached function's caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operation did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The key holds a Redis type other than a string.
    #[error("the key holds a non-string Redis value")]
    WrongType,
    /// Redis, or the connection to it, failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The operation waited too long in this process's own queue to reach
    /// Redis in time; says nothing about Redis's health.
    #[error("the cache I/O thread was too busy to reach Redis in time")]
    Overloaded,
    /// The circuit breaker is open: Redis was not contacted.
    #[error("the circuit breaker is open; Redis was not contacted")]
    CircuitOpen,
    /// The background I/O thread could not be started or has stopped.
    #[error("the cache I/O thread is unavailable")]
    IoUnavailable,
}

/// Counters a store keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Entries held, where the store can tell cheaply (memory only).
    pub entries: Option<u64>,
    /// Operations that failed.
    pub errors: u64,
}

/// The operations every store offers.
///
/// Keys are full Redis keys; values are sealed envelopes. Futures are `Send`
/// so the runtime can run them on its I/O thread.
pub trait Store: Send + Sync {
    /// The bytes under `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;
    /// Stores `value` under `key` for `ttl`.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes `key`.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes every key starting with `prefix` (a `namespace:version:domain:`); returns how many.
    fn clear(&self, prefix: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// The store's counters.
    fn stats(&self) -> StoreStats;
}
