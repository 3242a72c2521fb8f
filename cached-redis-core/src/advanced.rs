//! Less common tools: the stored format, the building blocks of keys and
//! durations, and the defaults behind [`Config`](crate::Config).
//!
//! None of this is needed to cache a function. It is here for operators'
//! tools (reading an entry straight out of Redis), for code that builds
//! keys by hand next to cached functions, and for documentation.
//!
//! ```
//! use std::time::Duration;
//! use cached_redis_core::advanced::{envelope, parse_duration};
//!
//! let sealed = envelope::seal(&[7; 32], 1, Duration::from_secs(60), b"value");
//! assert_eq!(envelope::open(&sealed, &[7; 32], 1)?.body, b"value");
//! assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
//! # Ok::<(), cached_redis_core::advanced::envelope::EnvelopeError>(())
//! ```

pub use crate::config::{
    DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_OPEN, DEFAULT_COMPRESS_MIN_BYTES,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PENDING_WRITES, DEFAULT_MEMORY_CAPACITY,
    DEFAULT_REDIS_RETRIES, DEFAULT_REDIS_TIMEOUT, DEFAULT_REDIS_URL, DEFAULT_SINGLE_FLIGHT_WAIT,
    DEFAULT_TTL,
};
pub use crate::duration::{DurationError, parse_duration};

/// The bytes stored under a key: a 64-byte header, the compute time when
/// timed (`early_refresh`), an HMAC when signed (`CACHE_HMAC_KEY`), then
/// the encoded value (postcard or MessagePack, LZ4-compressed when
/// flagged). Every field is checked on read; anything that does not
/// validate is a miss, never a value. The layout is in `docs/design.md`
/// ("Envelope format"). `open` here accepts a signed entry without
/// checking its HMAC: it has no key.
pub mod envelope {
    pub use crate::envelope::{
        ENVELOPE_VERSION, Envelope, EnvelopeError, FLAG_COMPRESSED, FLAG_SIGNED, FLAG_TIMED,
        HEADER_LEN, MAGIC, open, seal,
    };
}
pub use crate::key::{
    DEFAULT_HASH_LEN, DEFAULT_NAMESPACE, DEFAULT_VERSION, MAX_HASH_LEN, MIN_HASH_LEN,
};
pub use crate::schema::schema_fingerprint;
