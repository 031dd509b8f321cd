//! Speaker-independent folds: grouped K-fold by speaker, so no speaker is ever in both the
//! training and the test part of a fold.

use super::rng::{Purpose, Rng};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// One fold: row indices (ascending) to train on and to test on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fold {
    /// Rows of the speakers not in this fold.
    pub train: Vec<usize>,
    /// Rows of this fold's speakers.
    pub test: Vec<usize>,
    /// This fold's (test) speakers, sorted.
    pub speakers: Vec<String>,
}

/// The distinct speakers of `speakers` with their row counts, sorted by name.
pub fn speaker_counts(speakers: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for s in speakers {
        *counts.entry(s.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Splits rows into `k` folds by speaker.
///
/// The distinct speakers are shuffled by `seed`, then dealt largest first (a stable sort on row
/// count, so equal counts keep the shuffled order) to the fold with the fewest rows so far
/// (scikit-learn's `GroupKFold` balancing, randomised). Every row is in exactly one test part,
/// and every fold has at least one test speaker.
///
/// Errors ([`Error::Config`] on `folds`): `k < 2`, fewer than two distinct speakers, or fewer
/// speakers than folds.
///
/// # Shapes
/// `speakers` [N] -> `k` folds
pub fn speaker_folds(speakers: &[String], k: usize, seed: u64) -> Result<Vec<Fold>> {
    if k < 2 {
        return Err(Error::config("folds", format!("need at least 2 folds, got {k}")));
    }
    let counts = speaker_counts(speakers);
    if counts.len() < 2 {
        return Err(Error::config(
            "folds",
            format!("{} distinct speaker(s): no speaker-independent split", counts.len()),
        ));
    }
    if counts.len() < k {
        return Err(Error::config(
            "folds",
            format!("{} speakers is fewer than {k} folds", counts.len()),
        ));
    }
    let mut order: Vec<(&str, usize)> = counts.into_iter().collect();
    Rng::keyed(seed, Purpose::Folds, &[]).shuffle(&mut order);
    order.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let mut fold_rows = vec![0usize; k];
    let mut fold_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (spk, n) in order {
        let f = (0..k).min_by_key(|&f| (fold_rows[f], f)).expect("k >= 2");
        fold_rows[f] += n;
        fold_of.insert(spk, f);
    }
    let mut folds: Vec<Fold> = (0..k)
        .map(|_| Fold {
            train: vec![],
            test: vec![],
            speakers: vec![],
        })
        .collect();
    for (spk, &f) in &fold_of {
        folds[f].speakers.push(spk.to_string());
    }
    for (i, s) in speakers.iter().enumerate() {
        let f = fold_of[s.as_str()];
        for (g, fold) in folds.iter_mut().enumerate() {
            if g == f {
                fold.test.push(i);
            } else {
                fold.train.push(i);
            }
        }
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn speakers(n_spk: usize, per: impl Fn(usize) -> usize) -> Vec<String> {
        (0..n_spk)
            .flat_map(|s| std::iter::repeat_n(format!("spk{s}"), per(s)))
            .collect()
    }

    #[test]
    fn folds_never_share_a_speaker() {
        for (n_spk, k) in [(2, 2), (3, 3), (6, 5), (10, 3), (17, 5)] {
            let spk = speakers(n_spk, |s| 3 + (s * 7) % 5);
            for seed in 0..5 {
                let folds = speaker_folds(&spk, k, seed).unwrap();
                assert_eq!(folds.len(), k);
                let mut tested = vec![0; spk.len()];
                for f in &folds {
                    assert!(!f.test.is_empty());
                    let train: BTreeSet<&str> = f.train.iter().map(|&i| spk[i].as_str()).collect();
                    let test: BTreeSet<&str> = f.test.iter().map(|&i| spk[i].as_str()).collect();
                    assert!(train.is_disjoint(&test), "{n_spk} speakers, {k} folds, seed {seed}");
                    assert_eq!(f.train.len() + f.test.len(), spk.len());
                    assert_eq!(test.into_iter().map(String::from).collect::<Vec<_>>(), f.speakers);
                    f.test.iter().for_each(|&i| tested[i] += 1);
                }
                assert!(tested.iter().all(|&t| t == 1));
                assert_eq!(folds, speaker_folds(&spk, k, seed).unwrap());
            }
        }
    }

    #[test]
    fn folds_are_balanced_and_seeded() {
        let spk = speakers(20, |_| 10);
        let folds = speaker_folds(&spk, 5, 0).unwrap();
        assert!(folds.iter().all(|f| f.test.len() == 40));
        let other = speaker_folds(&spk, 5, 1).unwrap();
        assert_ne!(folds, other);
    }

    #[test]
    fn bad_splits_are_errors() {
        let one = speakers(1, |_| 10);
        let three = speakers(3, |_| 4);
        for (spk, k, needle) in [
            (&one, 2, "1 distinct"),
            (&three, 4, "fewer than 4"),
            (&three, 1, "at least 2"),
        ] {
            match speaker_folds(spk, k, 0) {
                Err(Error::Config { field: "folds", reason }) => assert!(reason.contains(needle), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
