//! Which key each call asks for: uniform, or Zipf over the key space (a
//! few hot keys, a long tail — what real traffic looks like).

/// SplitMix64: small, fast, and good enough to draw keys.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How keys are drawn.
pub enum Keys {
    Uniform(u64),
    /// The cumulative weights of ranks 1..=n, `1/rank^s`, normalised:
    /// a draw is a binary search.
    Zipf(Vec<f64>),
}

impl Keys {
    /// `exponent` 0 is uniform; Zipf's law is about 1.
    pub fn new(count: u64, exponent: f64) -> Keys {
        let count = count.max(1);
        if exponent <= 0.0 {
            return Keys::Uniform(count);
        }
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=count)
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        for weight in &mut cdf {
            *weight /= total;
        }
        Keys::Zipf(cdf)
    }

    pub fn draw(&self, rng: &mut Rng) -> u64 {
        match self {
            Keys::Uniform(count) => rng.next_u64() % count,
            Keys::Zipf(cdf) => {
                let u = rng.unit();
                cdf.partition_point(|&weight| weight < u) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_the_first_keys() {
        let keys = Keys::new(1000, 1.0);
        let mut rng = Rng::new(7);
        let draws: Vec<u64> = (0..10_000).map(|_| keys.draw(&mut rng)).collect();
        let first = draws.iter().filter(|&&key| key == 0).count();
        assert!(first > 1000, "rank 1 holds ~13% of the mass, drew {first}");
        assert!(draws.iter().all(|&key| key < 1000));
    }
}
