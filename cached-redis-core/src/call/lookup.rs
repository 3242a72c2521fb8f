//! Finding a call's value: this process's writes still in flight to Redis
//! (so a value just computed is served at once), then Redis; the memory
//! cache when Redis fails or is off.
//!
//! Every entry is validated before it is used — envelope, checksum, the
//! full key digest, a decode with no byte left over — and opened once. An
//! entry that fails is never returned: a damaged one, or one not written by
//! cached-redis, is purged from Redis in the background (only while it still
//! holds the bytes judged bad); a valid entry of another key input, whose
//! short hash collides with ours, is left for that input and replaced by our
//! next write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::{Call, CallPath};
use crate::codec::Format;
use crate::compress;
use crate::envelope::{self, EnvelopeError};
use crate::io::io;
use crate::memory::{Bytes, DecodedCopy, Held};
use crate::policy::Copier;
use crate::redis::RedisError;
use crate::signing::Signer;
use crate::telemetry::{Corrupt, Outcome, Read};

/// A value found for a call, how, and the sealed bytes it came from.
pub(super) struct Found<T> {
    pub(super) value: T,
    pub(super) outcome: Outcome,
    pub(super) sealed: Sealed,
    /// When its TTL ends, Unix milliseconds: later, it is stale — kept
    /// only to stand in for a failed computation (`stale_if_error`).
    pub(super) fresh_until_ms: u64,
    /// How long it took to compute, if its entry says (`early_refresh`).
    pub(super) compute: Option<Duration>,
}

impl<T> Found<T> {
    pub(super) fn is_fresh(&self) -> bool {
        envelope::now_ms() < self.fresh_until_ms
    }
}

/// Sealed bytes as read: straight from Redis, or shared with the memory cache.
pub(super) enum Sealed {
    Read(Vec<u8>),
    Shared(Bytes),
}

impl Sealed {
    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            Sealed::Read(bytes) => bytes.into(),
            Sealed::Shared(bytes) => bytes,
        }
    }
}

/// A validated entry's value and what its header says about its age.
pub(super) struct Opened<T> {
    pub(super) value: T,
    created_at_ms: u64,
    ttl: Duration,
    compute: Option<Duration>,
    /// The value's encoded size, uncompressed.
    encoded_len: usize,
}

impl<T> Opened<T> {
    fn new(value: T, envelope: &envelope::Envelope<'_>, encoded_len: usize) -> Self {
        Opened {
            value,
            created_at_ms: envelope.created_at_ms,
            ttl: envelope.ttl,
            compute: envelope.compute,
            encoded_len,
        }
    }

    /// When the entry's TTL ends, Unix milliseconds.
    fn fresh_until_ms(&self) -> u64 {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        self.created_at_ms.saturating_add(ttl_ms)
    }

    fn found(self, outcome: Outcome, sealed: Sealed) -> Found<T> {
        Found {
            fresh_until_ms: self.fresh_until_ms(),
            compute: self.compute,
            value: self.value,
            outcome,
            sealed,
        }
    }
}

/// Validates `bytes` read from Redis as an entry of `call`'s key and
/// decodes its value.
fn open<T: DeserializeOwned>(
    bytes: &[u8],
    call: &Call<'_>,
    signer: Option<&Signer>,
) -> Result<Opened<T>, Invalid> {
    let format = call.terms.format;
    let envelope = envelope::open_stored(bytes, call.key.digest(), format.id(), signer)?;
    decoded(envelope, format)
}

/// [`open`] for bytes this process sealed or validated itself (see
/// `envelope::open_own`).
pub(super) fn open_own<T: DeserializeOwned>(
    bytes: &[u8],
    call: &Call<'_>,
) -> Result<Opened<T>, Invalid> {
    let format = call.terms.format;
    decoded(
        envelope::open_own(bytes, call.key.digest(), format.id())?,
        format,
    )
}

fn decoded<T: DeserializeOwned>(
    envelope: envelope::Envelope<'_>,
    format: Format,
) -> Result<Opened<T>, Invalid> {
    let (value, encoded_len) = match envelope.compressed {
        true => {
            let body = compress::decompress(envelope.body)?;
            (format.decode(&body)?, body.len())
        }
        false => (format.decode(envelope.body)?, envelope.body.len()),
    };
    Ok(Opened::new(value, &envelope, encoded_len))
}

/// Why an entry was not used.
#[derive(Debug, thiserror::Error)]
pub(super) enum Invalid {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    #[error(transparent)]
    Compression(#[from] compress::DecompressError),
}

impl Invalid {
    /// The `reason` label it is counted under.
    fn corrupt(&self) -> Corrupt {
        match self {
            Invalid::Envelope(err) if err.is_signature() => Corrupt::Hmac,
            Invalid::Envelope(EnvelopeError::DigestMismatch) => Corrupt::Foreign,
            _ => Corrupt::Damaged,
        }
    }
}

/// An entry this process holds (memory, or a near-cache copy) under the
/// call's exact input, validated when it was taken: no digest to compare.
/// Its value is a clone of the decoded copy kept with it, if any.
fn held<T: DeserializeOwned>(
    held: Held,
    (outcome, format): (Outcome, Format),
    copier: Option<Copier<T>>,
) -> Option<Found<T>> {
    let envelope = envelope::open_held(&held.bytes, format.id()).ok()?;
    let copy = copier
        .zip(held.decoded.as_ref())
        .and_then(|(copier, decoded)| (copier.take)(&decoded.value));
    let opened = match copy {
        Some(value) => Opened::new(value, &envelope, 0),
        None => decoded(envelope, format).ok()?,
    };
    Some(opened.found(outcome, Sealed::Shared(held.bytes)))
}

/// A decoded copy of a value read, made the first time memory or the
/// near-cache keeps its entry (and shared by both): a read whose entry is
/// held already costs no clone.
struct Kept<'a, T> {
    copier: Option<Copier<T>>,
    opened: &'a Opened<T>,
    made: Option<DecodedCopy>,
}

impl<'a, T> Kept<'a, T> {
    fn new(copier: Option<Copier<T>>, opened: &'a Opened<T>) -> Self {
        Kept {
            copier,
            opened,
            made: None,
        }
    }

    /// What memory keeps of `bytes`.
    fn held(&mut self, bytes: Bytes) -> Held {
        if self.made.is_none() {
            self.made = self.copier.map(|copier| DecodedCopy {
                value: (copier.keep)(&self.opened.value),
                weight: self.opened.encoded_len,
            });
        }
        Held {
            bytes,
            decoded: self.made.clone(),
        }
    }
}

impl CallPath {
    pub(super) async fn lookup<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        copier: Option<Copier<T>>,
    ) -> Option<Found<T>> {
        let Some(redis) = &self.redis else {
            return self.in_memory(call, Outcome::MemoryHit, copier);
        };
        if let Some(found) = self.in_flight(call) {
            return Some(found);
        }
        // The near-cache: a copy Redis has not said changed; else a read
        // through the tracking connection, whose copy is kept if no change
        // came in meanwhile (`epoch`).
        let near = call.terms.near.zip(redis.near());
        if let Some((_, copies)) = near
            && let Some(found) = copies
                .lookup(call.key.exact())
                .and_then(|copy| held(copy, (Outcome::RedisHit, call.terms.format), copier))
        {
            return Some(found);
        }
        let epoch = near.map(|(_, copies)| copies.epoch());
        let started = Instant::now();
        let read = match near {
            Some(_) => redis.get_tracked(call.key.as_bytes()).await,
            None => redis.get(call.key.as_bytes()).await,
        };
        let took = started.elapsed();
        let stats = call.stats;
        match read {
            Ok(Some(bytes)) => match open(&bytes, call, self.signer.as_ref()) {
                Ok(opened) => {
                    stats.read(Read::Hit, took);
                    let mut copy = Kept::new(copier, &opened);
                    let mut sealed = self.remember(call, bytes, &opened, &mut copy);
                    if let (Some((bound, copies)), Some(epoch)) = (near, epoch) {
                        let left = opened.fresh_until_ms().saturating_sub(envelope::now_ms());
                        if left > 0 {
                            let shared = sealed.into_bytes();
                            let ttl = Duration::from_millis(left).min(bound);
                            copies.keep(
                                epoch,
                                call.key.exact(),
                                call.key.as_bytes(),
                                copy.held(Arc::clone(&shared)),
                                ttl,
                            );
                            sealed = Sealed::Shared(shared);
                        }
                    }
                    return Some(opened.found(Outcome::RedisHit, sealed));
                }
                Err(Invalid::Envelope(EnvelopeError::DigestMismatch)) => {
                    stats.read(Read::Corrupt(Corrupt::Foreign), took);
                    tracing::debug!(
                        key = call.key.hash(),
                        "the entry belongs to another key input"
                    );
                }
                Err(reason) => {
                    stats.read(Read::Corrupt(reason.corrupt()), took);
                    self.telemetry.warn("corrupt", |suppressed| {
                        tracing::warn!(domain = stats.name(), key = call.key.hash(), %reason, suppressed, "purging an invalid cache entry");
                    });
                    self.purge(call, Some(bytes));
                }
            },
            Ok(None) => stats.read(Read::Miss, took),
            Err(RedisError::WrongType) => {
                stats.read(Read::Corrupt(Corrupt::WrongType), took);
                self.telemetry.warn("corrupt", |suppressed| {
                    tracing::warn!(
                        domain = stats.name(),
                        key = call.key.hash(),
                        suppressed,
                        "purging a non-string value at a cache key"
                    );
                });
                self.purge(call, None);
            }
            Err(RedisError::CircuitOpen) => {
                stats.read(Read::Skipped, took);
                return self.in_memory(call, Outcome::Fallback, copier);
            }
            Err(err) => {
                tracing::debug!(key = call.key.hash(), error = %err, "redis read failed; falling back");
                stats.read(Read::Failed(err.kind()), took);
                return self.in_memory(call, Outcome::Fallback, copier);
            }
        }
        None
    }

    /// Whether another process has stored the value (see `lock`): a valid
    /// entry in Redis, kept in memory like any read. Not counted as a read:
    /// it is a wait, polled.
    pub(super) async fn peek<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        copier: Option<Copier<T>>,
    ) -> Option<Found<T>> {
        let bytes = self.redis.as_ref()?.get(call.key.as_bytes()).await.ok()??;
        let opened = open(&bytes, call, self.signer.as_ref()).ok()?;
        // Past its TTL (kept for `stale_if_error`) it is not the new value.
        if envelope::now_ms() >= opened.fresh_until_ms() {
            return None;
        }
        let sealed = self.remember(call, bytes, &opened, &mut Kept::new(copier, &opened));
        Some(opened.found(Outcome::Coalesced, sealed))
    }

    /// For a leader whose key was stored by this process since its lookup
    /// began: the value is among the writes in flight, or, written already,
    /// in memory. Local only — a sick Redis costs no second deadline.
    pub(super) fn landed<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        copier: Option<Copier<T>>,
    ) -> Option<Found<T>> {
        self.in_flight(call)
            .or_else(|| self.in_memory(call, Outcome::MemoryHit, copier))
    }

    fn in_flight<T: DeserializeOwned>(&self, call: &Call<'_>) -> Option<Found<T>> {
        let bytes = self.in_flight.get(|| call.key.as_bytes())?;
        let opened = open_own(&bytes, call).ok()?;
        Some(opened.found(Outcome::MemoryHit, Sealed::Shared(bytes)))
    }

    fn in_memory<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        outcome: Outcome,
        copier: Option<Copier<T>>,
    ) -> Option<Found<T>> {
        let entry = self.memory.as_ref()?.lookup(call.key.exact())?;
        held(entry, (outcome, call.terms.format), copier)
    }

    /// Keeps a value read from Redis in memory for as long as it has left,
    /// so memory can serve while Redis is unavailable. A hit on an entry
    /// memory took already costs no copy; a different one (newer, or
    /// written after a `clear`) replaces what memory holds — Redis is the
    /// source of truth.
    fn remember<T>(
        &self,
        call: &Call<'_>,
        bytes: Vec<u8>,
        opened: &Opened<T>,
        copy: &mut Kept<'_, T>,
    ) -> Sealed {
        let Some(memory) = &self.memory else {
            return Sealed::Read(bytes);
        };
        let (key, digest) = (call.key.exact(), call.key.digest());
        if memory.holds(key, digest, &bytes) {
            return Sealed::Read(bytes);
        }
        let age = Duration::from_millis(envelope::now_ms().saturating_sub(opened.created_at_ms));
        // Kept as long as Redis keeps it: past its TTL too, with a stale window.
        let kept_for = call.terms.kept_for(opened.ttl);
        match kept_for.checked_sub(age).filter(|left| !left.is_zero()) {
            Some(left) => {
                let bytes: Bytes = bytes.into();
                memory.take(key, digest, copy.held(Arc::clone(&bytes)), left);
                Sealed::Shared(bytes)
            }
            None => Sealed::Read(bytes),
        }
    }

    /// Deletes an invalid entry in the background, only while it still
    /// holds `bad` (or, with `None`, a non-string value).
    fn purge(&self, call: &Call<'_>, bad: Option<Vec<u8>>) {
        let (Some(redis), Some(io)) = (&self.redis, io()) else {
            return;
        };
        let (redis, key) = (Arc::clone(redis), call.key.as_bytes().to_vec());
        io.spawn(async move {
            if let Err(err) = redis.purge(&key, bad.as_deref()).await {
                tracing::debug!(error = %err, "purging an invalid entry failed");
            }
        });
    }
}
