//! Cheap random draws: biased coins, uniform and skewed integers, Zipf-skewed ranks.
//!
//! Each draw costs one or two `u64`s from the shard's generator and a multiplication (a
//! binary search for a rank); none allocates.

use rand::RngCore;

use super::Bounds;

/// 2^64 as a float, to turn probabilities into `u64` thresholds.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// A probability as a threshold on a uniform `u64` (saturating: 1 is `u64::MAX`).
pub(super) fn threshold(p: f64) -> u64 {
    (p * TWO_POW_64) as u64
}

/// A biased coin, true with a fixed probability.
#[derive(Clone, Copy, Debug)]
pub(super) struct Coin(u64);

impl Coin {
    /// A coin that comes up true with probability `p`.
    pub(super) fn new(p: f64) -> Coin {
        Coin(threshold(p))
    }

    /// Flips the coin.
    pub(super) fn flip(self, rng: &mut impl RngCore) -> bool {
        rng.next_u64() < self.0
    }
}

/// `x * (span + 1) / 2^64`: maps a uniform `u64` onto `0..=span`.
fn scale(x: u64, span: u64) -> u64 {
    ((u128::from(x) * (u128::from(span) + 1)) >> 64) as u64
}

/// A uniform integer in `bounds`.
pub(super) fn uniform(rng: &mut impl RngCore, bounds: Bounds) -> u64 {
    bounds.min + scale(rng.next_u64(), bounds.max - bounds.min)
}

/// An integer in `bounds` with density falling from `min` to `max` (the square of a
/// uniform draw): most delays are short, a few are long.
pub(super) fn skewed(rng: &mut impl RngCore, bounds: Bounds) -> u64 {
    let x = rng.next_u64();
    let square = ((u128::from(x) * u128::from(x)) >> 64) as u64;
    bounds.min + scale(square, bounds.max - bounds.min)
}

/// Zipf-skewed ranks `0..n`: rank `k` has weight `1 / (k + 1)^exponent`.
///
/// Keeps the cumulative distribution as `u64` thresholds and samples by binary search:
/// `O(n)` memory once, `O(log n)` per draw.
#[derive(Clone, Debug)]
pub(super) struct Zipf {
    cdf: Vec<u64>,
}

impl Zipf {
    /// The distribution over `n ≥ 1` ranks.
    pub(super) fn new(n: u64, exponent: f64) -> Zipf {
        let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-exponent)).collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let mut cdf: Vec<u64> = weights
            .iter()
            .map(|w| {
                sum += w;
                threshold(sum / total)
            })
            .collect();
        if let Some(last) = cdf.last_mut() {
            *last = u64::MAX;
        }
        Zipf { cdf }
    }

    /// A rank, 0 the most likely.
    pub(super) fn sample(&self, rng: &mut impl RngCore) -> usize {
        let x = rng.next_u64();
        self.cdf
            .partition_point(|&c| c <= x)
            .min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn draws_stay_in_bounds_and_zipf_is_skewed() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let bounds = Bounds::new(10, 20);
        let mut seen = [false; 11];
        for _ in 0..10_000 {
            let u = uniform(&mut rng, bounds);
            let s = skewed(&mut rng, bounds);
            assert!((10..=20).contains(&u) && (10..=20).contains(&s));
            seen[(u - 10) as usize] = true;
        }
        assert!(
            seen.iter().all(|&s| s),
            "every value of a small range is drawn"
        );

        let zipf = Zipf::new(10, 1.0);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        // Weight of rank 0 is 1 / H(10) ≈ 0.341, of rank 9 is 0.1 / H(10) ≈ 0.034.
        assert!((32_000..36_000).contains(&counts[0]), "{counts:?}");
        assert!((2_900..3_900).contains(&counts[9]), "{counts:?}");
        assert_eq!(Zipf::new(1, 1.0).sample(&mut rng), 0);
    }
}
