//! The ranking's random streams: the crate's splitmix64 with one derived stream per purpose and
//! task, so every fold split, permutation, subsample and bootstrap is a pure function of the seed
//! and does not depend on the number of worker threads or the order work finishes in.

/// What a stream is drawn for; each purpose gets its own sub-streams of the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Shuffling the speakers before they are dealt to folds.
    Folds = 1,
    /// Permuting a test-fold column.
    Permute = 2,
    /// Drawing a stability-selection half-sample.
    Subsample = 3,
    /// Bootstrap resampling of rows or estimates.
    Bootstrap = 4,
    /// KernelSHAP coalitions.
    Coalitions = 5,
    /// The classifier's own seed (MLP initialisation, SVM Platt folds).
    Head = 6,
}

/// The crate's splitmix64 generator, keyed by purpose and task.
pub(crate) type Rng = crate::rng::SplitMix64;

impl Rng {
    /// The stream for `(seed, purpose, task...)`.
    pub(crate) fn keyed(seed: u64, purpose: Purpose, task: &[u64]) -> Self {
        crate::rng::SplitMix64::stream(seed, purpose as u64, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let draw = |seed, p, t: &[u64]| {
            let mut r = Rng::keyed(seed, p, t);
            (0..8).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, Purpose::Folds, &[2, 3]), draw(1, Purpose::Folds, &[2, 3]));
        assert_ne!(draw(1, Purpose::Folds, &[2, 3]), draw(1, Purpose::Folds, &[3, 2]));
        assert_ne!(draw(1, Purpose::Folds, &[2]), draw(1, Purpose::Permute, &[2]));
        assert_ne!(draw(1, Purpose::Folds, &[2]), draw(2, Purpose::Folds, &[2]));
        let mut r = Rng::keyed(0, Purpose::Bootstrap, &[]);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            assert!((0.0..1.0).contains(&r.uniform()));
        }
        let mut v: Vec<usize> = (0..40).collect();
        r.shuffle(&mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..40).collect::<Vec<_>>());
    }
}
