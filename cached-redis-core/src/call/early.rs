//! Early refresh (`early_refresh`): a hot key is recomputed shortly before
//! it expires, by one caller picked at random, so it never expires under
//! load and its callers never queue behind a recomputation.
//!
//! XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache
//! Stampede Prevention", VLDB 2015): a caller that finds a fresh value
//! recomputes it when `now − Δ·β·ln(u) ≥ expiry`, where Δ is how long the
//! value took to compute (kept in its envelope), `u` is uniform in (0, 1]
//! and β (default 1) weighs how early. The chance is nil long before
//! expiry and rises steeply as it nears, faster for a value slow to
//! compute; with many callers the first to draw "refresh" does it, usually
//! about Δ·β before expiry.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// Whether a caller that drew `u` at `now_ms` recomputes a value expiring
/// at `expiry_ms` that took `compute` to compute.
pub(super) fn refresh_early(
    now_ms: u64,
    expiry_ms: u64,
    compute: Duration,
    beta: f64,
    u: f64,
) -> bool {
    let lead_ms = compute.as_secs_f64() * 1e3 * beta * -u.ln();
    // Finite, or an infinite lead (u = 0): refresh. NaN (β = NaN, refused
    // at compile time) never.
    now_ms as f64 + lead_ms >= expiry_ms as f64
}

/// A uniform draw in (0, 1]: a per-thread xorshift, seeded from the
/// process's random hasher keys. Not for secrets — only which caller
/// refreshes first.
pub(super) fn draw() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0_u64) | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        // 53 random bits, shifted off zero: (0, 1].
        ((x >> 11) + 1) as f64 / (1_u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRY: u64 = 1_000_000;
    const DELTA: Duration = Duration::from_millis(100);

    #[test]
    fn never_long_before_expiry_always_after_it() {
        // 10 s ahead of expiry with Δ = 100 ms: only a draw below
        // e^-100 would refresh.
        for u in [1.0, 0.5, 1e-6, 1e-40] {
            assert!(
                !refresh_early(EXPIRY - 10_000, EXPIRY, DELTA, 1.0, u),
                "{u}"
            );
            assert!(refresh_early(EXPIRY, EXPIRY, DELTA, 1.0, u), "{u}");
        }
    }

    #[test]
    fn the_lead_is_delta_beta_ln_u() {
        // u = e^-1: the lead is exactly Δ·β.
        let u = (-1.0_f64).exp();
        assert!(refresh_early(EXPIRY - 100, EXPIRY, DELTA, 1.0, u));
        assert!(!refresh_early(EXPIRY - 101, EXPIRY, DELTA, 1.0, u));
        assert!(refresh_early(EXPIRY - 200, EXPIRY, DELTA, 2.0, u));
        assert!(!refresh_early(EXPIRY - 201, EXPIRY, DELTA, 2.0, u));
        // A value computed instantly is never refreshed early.
        assert!(!refresh_early(
            EXPIRY - 1,
            EXPIRY,
            Duration::ZERO,
            1.0,
            1e-9
        ));
        // u = 1: no lead at all.
        assert!(!refresh_early(EXPIRY - 1, EXPIRY, DELTA, 1.0, 1.0));
    }

    #[test]
    fn the_chance_rises_as_expiry_nears() {
        // P(refresh) at `left` ms before expiry is e^(-left / (Δ·β)).
        let chance = |left: u64| {
            let trials = 20_000;
            let hits = (0..trials)
                .filter(|_| refresh_early(EXPIRY - left, EXPIRY, DELTA, 1.0, draw()))
                .count();
            hits as f64 / f64::from(trials)
        };
        for (left, expected) in [
            (0, 1.0),
            (50, (-0.5_f64).exp()),
            (100, (-1.0_f64).exp()),
            (300, (-3.0_f64).exp()),
        ] {
            let measured = chance(left);
            assert!(
                (measured - expected).abs() < 0.02,
                "{left} ms: {measured} vs {expected}"
            );
        }
    }

    #[test]
    fn draws_are_in_the_open_closed_unit_interval() {
        let draws: Vec<f64> = (0..10_000).map(|_| draw()).collect();
        assert!(draws.iter().all(|&u| u > 0.0 && u <= 1.0));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
