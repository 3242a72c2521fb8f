//! What a call site keeps between its calls.

use std::sync::OnceLock;
use std::time::Duration;

use crate::key::KeyShape;
use crate::schema::SchemaSlot;
use crate::telemetry::SiteDomain;

/// One annotated function, as a `static` of its own: what never changes
/// between its calls, and what the first calls learn for the next ones
/// (its stored type's fingerprint, its domain's counters, the hash state
/// of its key's constant fields).
pub struct Site {
    pub(crate) key: KeyShape,
    pub(crate) ttl: Option<Duration>,
    /// One compute across processes; `None`: the runtime's `CACHE_LOCK`.
    pub(crate) lock: Option<bool>,
    pub(crate) schema: SchemaSlot,
    pub(crate) stats: SiteDomain,
}

impl Site {
    /// `function` names the function (`type_name_of_val` of an item nested
    /// in it); `ttl: None` and `lock: None` mean the runtime's defaults.
    pub const fn new(
        domain: &'static str,
        version: &'static str,
        hash_len: usize,
        ttl: Option<Duration>,
        lock: Option<bool>,
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
            ttl,
            lock,
            schema: SchemaSlot::new(),
            stats: SiteDomain::new(),
        }
    }

    pub(crate) fn domain(&self) -> &'static str {
        self.key.domain
    }
}
