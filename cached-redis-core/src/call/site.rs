//! What a call site keeps between its calls.

use std::sync::OnceLock;
use std::time::Duration;

use crate::key::KeyShape;
use crate::schema::SchemaSlot;
use crate::telemetry::SiteDomain;

/// What the attribute says about a function beyond its key; `None`: the
/// runtime's default (or, for the fail-safe options, off).
#[derive(Debug, Clone, Copy)]
pub struct SiteOptions {
    /// `ttl`
    pub ttl: Option<Duration>,
    /// `lock`: one compute across processes (default `CACHE_LOCK`).
    pub lock: Option<bool>,
    /// `stale_if_error`: how long past its TTL a value may stand in for a
    /// failed computation.
    pub stale_if_error: Option<Duration>,
    /// `timeout`: the body's soft limit, when a stale value can stand in.
    pub timeout: Option<Duration>,
    /// `near`: serve hot keys from this process's copy, kept coherent by
    /// Redis (default `CACHE_NEAR`).
    pub near: Near,
    /// `early_refresh`: β of XFetch, how early before it expires a value
    /// may be recomputed by one of its callers.
    pub early_refresh: Option<f64>,
    /// `jitter`: the most of each stored TTL cut off at random (a fraction).
    pub jitter: Option<f64>,
}

/// The `near` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Near {
    /// Not said: the runtime's `CACHE_NEAR`.
    Default,
    /// `near = false`
    Off,
    /// `near = true`: for as long as the entry lives in Redis.
    On,
    /// `near = "30s"`: and never longer than this without asking Redis.
    Within(Duration),
}

impl Near {
    /// How long a copy may serve, if at all, given the runtime's default.
    pub(crate) fn bound(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            Near::Default => default,
            Near::Off => None,
            Near::On => Some(Duration::MAX),
            Near::Within(bound) => Some(bound),
        }
    }
}

/// One annotated function, as a `static` of its own: what never changes
/// between its calls, and what the first calls learn for the next ones
/// (its stored type's fingerprint, its domain's counters, the hash state
/// of its key's constant fields).
pub struct Site {
    pub(crate) key: KeyShape,
    pub(crate) options: SiteOptions,
    pub(crate) schema: SchemaSlot,
    pub(crate) stats: SiteDomain,
}

impl Site {
    /// `function` names the function (`type_name_of_val` of an item nested
    /// in it).
    pub const fn new(
        domain: &'static str,
        version: &'static str,
        hash_len: usize,
        options: SiteOptions,
        function: fn() -> &'static str,
    ) -> Site {
        Site {
            key: KeyShape {
                domain,
                version,
                hash_len,
                function,
                head: OnceLock::new(),
            },
            options,
            schema: SchemaSlot::new(),
            stats: SiteDomain::new(),
        }
    }

    pub(crate) fn domain(&self) -> &'static str {
        self.key.domain
    }
}
