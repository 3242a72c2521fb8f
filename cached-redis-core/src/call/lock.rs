//! One compute across processes (`lock = true`, `CACHE_LOCK`).
//!
//! Single-flight already makes one caller per process the leader of a
//! missed key. With the lock on, that leader also takes a lock key in Redis
//! (`{key}:lock`, `SET NX PX`, a random token) before it computes: the
//! process that gets it computes and stores; the others poll the value key
//! until the value lands, the lock is free again (they try to take it), or
//! their wait (`CACHE_SINGLE_FLIGHT_WAIT`) runs out (they compute
//! themselves). The lock's lease is that same wait, so a holder that dies
//! delays the others by at most one wait. The lock is released — only
//! while it still holds our token — right after the value's write lands,
//! or, when there is nothing to write, as soon as the leader is done.
//!
//! Redis failing, or the breaker open, means no lock: the leader computes
//! locally, as without the option.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::lookup::Found;
use super::{Call, CallPath};
use crate::io::io;
use crate::policy::Copier;
use crate::redis::Redis;

/// The longest pause between two looks at a value another process computes.
const MAX_POLL: Duration = Duration::from_millis(20);

/// What a leader does after asking for the lock.
pub(super) enum Remote<T> {
    /// Another process computed it.
    Found(Found<T>),
    /// Compute here; with the lock, if one was taken.
    Compute(Option<Lock>),
}

/// A held lock key; released when the value's write lands, or when dropped.
pub(crate) struct Lock(Option<Held>);

struct Held {
    redis: Arc<Redis>,
    key: Vec<u8>,
    token: [u8; 32],
}

impl Held {
    /// Deletes the lock key, only while it still holds our token.
    async fn release(self) {
        if let Err(err) = self.redis.purge(&self.key, Some(&self.token)).await {
            tracing::debug!(error = %err, "releasing a compute lock failed; it expires");
        }
    }
}

impl Lock {
    /// Releases the lock now.
    pub(crate) async fn release(mut self) {
        if let Some(held) = self.0.take() {
            held.release().await;
        }
    }
}

impl Drop for Lock {
    /// Nothing was stored, the body panicked, or the caller was cancelled:
    /// the others need not wait for the lease to run out.
    fn drop(&mut self) {
        if let (Some(held), Some(io)) = (self.0.take(), io()) {
            io.spawn(held.release());
        }
    }
}

impl CallPath {
    /// For this process's leader of a missed key: the lock, or the value
    /// the process holding it computed.
    pub(super) async fn across_processes<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        copier: Option<Copier<T>>,
    ) -> Remote<T> {
        let (Some(redis), Some(io)) = (&self.redis, io()) else {
            return Remote::Compute(None);
        };
        let mut key = call.key.as_bytes().to_vec();
        key.extend_from_slice(b":lock");
        let token = token();
        let lease = self.single_flight_wait;
        let give_up = Instant::now().checked_add(lease);
        let mut pause = Duration::from_millis(1);
        loop {
            match redis.set_nx(&key, &token, lease).await {
                Ok(true) => {
                    let lock = Lock(Some(Held {
                        redis: Arc::clone(redis),
                        key,
                        token,
                    }));
                    // The holder before us may have stored the value and
                    // released the lock since our lookup missed.
                    if let Some(found) = self.peek(call, copier).await {
                        return Remote::Found(found);
                    }
                    return Remote::Compute(Some(lock));
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "no compute lock; computing here");
                    return Remote::Compute(None);
                }
            }
            io.sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
            if let Some(found) = self.peek(call, copier).await {
                return Remote::Found(found);
            }
            if give_up.is_none_or(|at| Instant::now() >= at) {
                return Remote::Compute(None);
            }
        }
    }
}

/// 32 random hex digits: the lock's owner, so only its holder releases it.
fn token() -> [u8; 32] {
    let (high, low) = (
        RandomState::new().hash_one(0_u8),
        RandomState::new().hash_one(1_u8),
    );
    let mut token = [0; 32];
    let hex = format!("{high:016x}{low:016x}");
    token.copy_from_slice(hex.as_bytes());
    token
}
