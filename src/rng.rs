//! The library's CPU-side random numbers: one splitmix64 generator for weight initialisation,
//! shuffles, fold splits, permutations and bootstraps, so every result is a pure function of its
//! data and seed. (GPU-side masks use the counter-based hash of `sampling`.)

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bit: a hash that stays the same across Rust versions and machines.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The splitmix64 generator: tiny, fast and statistically fine for initialisation and shuffles.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started at `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// An independent generator for sub-stream `stream` of `seed` (one per purpose or per pair).
    pub(crate) fn derive(seed: u64, stream: u64) -> Self {
        let a = SplitMix64::new(seed).next_u64();
        let b = SplitMix64::new(a ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64();
        SplitMix64::new(b)
    }

    /// An independent stream for `(seed, purpose, task...)`: the same key always gives the same
    /// stream, and different keys unrelated ones.
    pub(crate) fn stream(seed: u64, purpose: u64, task: &[u64]) -> Self {
        let mut h = mix(seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
        h = mix(h ^ purpose.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        for &t in task {
            h = mix(h.wrapping_add(0x9E37_79B9_7F4A_7C15) ^ t.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        }
        SplitMix64 { state: h }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `0..n` (`n >= 1`), by the multiply-shift method.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Shuffles `items` in place (forward Fisher-Yates, the order libsvm's fold split uses).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        let n = items.len();
        for i in 0..n {
            let j = i + self.below(n - i);
            items.swap(i, j);
        }
    }

    /// Standard normal (Box-Muller); used by the tests' synthetic data.
    #[cfg(test)]
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = SplitMix64::derive(7, 3);
        let mut b = SplitMix64::derive(7, 3);
        let mut c = SplitMix64::derive(7, 4);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        for _ in 0..1000 {
            assert!(a.below(5) < 5);
            let u = a.uniform();
            assert!((0.0..1.0).contains(&u));
        }
        let mut v: Vec<usize> = (0..50).collect();
        a.shuffle(&mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
    }
}
