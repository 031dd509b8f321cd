//! Speaker-independent evaluation of a classifier (feature heads, the CNN): leave-speakers-out folds (never a
//! speaker in both the training and the test part), pooled predictions, and the metrics SER
//! papers report: weighted accuracy (WA), unweighted accuracy (UA, the mean per-class recall),
//! macro F1 and the confusion matrix.

use super::{FeatureClassifier, HeadConfig, confusion_matrix};
use crate::error::{Error, Result};
use crate::rank::folds::speaker_folds;
use ndarray::{Array2, ArrayView2, Axis};
use serde::Serialize;

/// Scores of one set of predictions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// Rows scored.
    pub n: usize,
    /// Weighted accuracy: the share of rows predicted right.
    pub wa: f64,
    /// Unweighted accuracy: the mean over classes (with rows) of each class's recall.
    pub ua: f64,
    /// Macro F1: the mean over classes (with rows) of each class's F1.
    pub macro_f1: f64,
    /// Per-class recall, model class order (NaN-free: 0 for a class without rows).
    pub recall: Vec<f64>,
}

impl Scores {
    /// Scores `confusion` (rows: true class, columns: predicted).
    ///
    /// # Shapes
    /// `confusion` [C, C]
    pub fn from_confusion(confusion: &Array2<usize>) -> Self {
        let c = confusion.nrows();
        let n: usize = confusion.sum();
        let right: usize = (0..c).map(|k| confusion[[k, k]]).sum();
        let truth = confusion.sum_axis(Axis(1));
        let predicted = confusion.sum_axis(Axis(0));
        let present: Vec<usize> = (0..c).filter(|&k| truth[k] > 0).collect();
        let recall: Vec<f64> = (0..c)
            .map(|k| {
                if truth[k] > 0 {
                    confusion[[k, k]] as f64 / truth[k] as f64
                } else {
                    0.0
                }
            })
            .collect();
        let f1 = |k: usize| {
            let tp = confusion[[k, k]] as f64;
            let denom = (truth[k] + predicted[k]) as f64;
            if denom > 0.0 { 2.0 * tp / denom } else { 0.0 }
        };
        let mean = |f: &dyn Fn(usize) -> f64| {
            if present.is_empty() {
                0.0
            } else {
                present.iter().map(|&k| f(k)).sum::<f64>() / present.len() as f64
            }
        };
        Scores {
            n,
            wa: if n > 0 { right as f64 / n as f64 } else { 0.0 },
            ua: mean(&|k| recall[k]),
            macro_f1: mean(&f1),
            recall,
        }
    }
}

/// One fold's test speakers and scores.
#[derive(Clone, Debug, Serialize)]
pub struct FoldScores {
    /// The fold's test speakers.
    pub speakers: Vec<String>,
    /// Scores on them, by the model trained on every other speaker.
    pub scores: Scores,
}

/// The speaker-independent evaluation of one head on one set of rows.
#[derive(Clone, Debug, Serialize)]
pub struct CvReport {
    /// Class names, model order.
    pub classes: Vec<String>,
    /// Folds.
    pub k: usize,
    /// Seed of the fold assignment (the head has its own).
    pub seed: u64,
    /// Scores of the predictions of all folds pooled.
    pub pooled: Scores,
    /// Summed confusion matrix (rows: true, columns: predicted). // [C, C]
    pub confusion: Vec<Vec<usize>>,
    /// Each fold's scores.
    pub folds: Vec<FoldScores>,
}

/// Evaluates `head` by `k`-fold leave-speakers-out cross-validation (see
/// [`speaker_folds`]): a fresh scaler and head per fold, fitted on the other folds' speakers.
///
/// Errors: fewer than two speakers, fewer speakers than folds ([`Error::Config`]); a training
/// part without some class fails as [`FeatureClassifier::fit`] does, naming the fold.
///
/// # Shapes
/// `x` [N, D], `labels` [N], `speakers` [N], `classes` [C], `feature_names` [D]
#[allow(clippy::too_many_arguments)]
pub fn speaker_cv(
    x: ArrayView2<f64>,
    labels: &[usize],
    speakers: &[String],
    classes: &[String],
    feature_set: &str,
    feature_names: &[String],
    head: &HeadConfig,
    k: usize,
    seed: u64,
) -> Result<CvReport> {
    if speakers.len() != x.nrows() || labels.len() != x.nrows() {
        return Err(Error::shape(
            "labels and speakers",
            format!("[{}] each", x.nrows()),
            format!("[{}] and [{}]", labels.len(), speakers.len()),
        ));
    }
    cross_validate(labels, speakers, classes, k, seed, |train, test| {
        let xtr = x.select(Axis(0), train);
        let ytr: Vec<usize> = train.iter().map(|&r| labels[r]).collect();
        let model = FeatureClassifier::fit(
            xtr.view(),
            &ytr,
            classes.to_vec(),
            feature_set,
            feature_names.to_vec(),
            head,
        )?;
        model.predict(x.select(Axis(0), test).view())
    })
}

/// `k`-fold leave-speakers-out cross-validation of any classifier (see [`speaker_folds`]):
/// `fit_predict(train_rows, test_rows)` trains a fresh model on the training rows and returns
/// its predicted class for each test row; the predictions of all folds are pooled and scored.
/// An error in a fold is returned naming the fold and its test speakers.
///
/// # Shapes
/// `labels` [N], `speakers` [N], `classes` [C]; `fit_predict` returns [test_rows.len()]
pub fn cross_validate(
    labels: &[usize],
    speakers: &[String],
    classes: &[String],
    k: usize,
    seed: u64,
    mut fit_predict: impl FnMut(&[usize], &[usize]) -> Result<Vec<usize>>,
) -> Result<CvReport> {
    if speakers.len() != labels.len() {
        return Err(Error::shape(
            "speakers",
            format!("[{}]", labels.len()),
            format!("[{}]", speakers.len()),
        ));
    }
    let folds = speaker_folds(speakers, k, seed)?;
    let c = classes.len();
    let mut total = Array2::<usize>::zeros((c, c));
    let mut per_fold = Vec::with_capacity(folds.len());
    for (i, fold) in folds.iter().enumerate() {
        let pred = fit_predict(&fold.train, &fold.test).map_err(|e| {
            Error::config(
                "folds",
                format!("fold {} (test speakers {}): {e}", i + 1, fold.speakers.join(",")),
            )
        })?;
        let yte: Vec<usize> = fold.test.iter().map(|&r| labels[r]).collect();
        let cm = confusion_matrix(&pred, &yte, c)?;
        total += &cm;
        per_fold.push(FoldScores {
            speakers: fold.speakers.clone(),
            scores: Scores::from_confusion(&cm),
        });
    }
    Ok(CvReport {
        classes: classes.to_vec(),
        k,
        seed,
        pooled: Scores::from_confusion(&total),
        confusion: total.outer_iter().map(|r| r.to_vec()).collect(),
        folds: per_fold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn scores_from_a_known_confusion() {
        // 3 classes; class 2 has no rows.
        let cm = array![[8usize, 2, 0], [1, 3, 0], [0, 0, 0]];
        let s = Scores::from_confusion(&cm);
        assert_eq!(s.n, 14);
        assert!((s.wa - 11.0 / 14.0).abs() < 1e-12);
        assert!((s.ua - (0.8 + 0.75) / 2.0).abs() < 1e-12);
        let f1_0 = 2.0 * 8.0 / (10.0 + 9.0);
        let f1_1 = 2.0 * 3.0 / (4.0 + 5.0);
        assert!((s.macro_f1 - (f1_0 + f1_1) / 2.0).abs() < 1e-12);
        assert_eq!(s.recall[2], 0.0);
    }

    #[test]
    fn folds_never_share_a_speaker_and_pool_every_row() {
        // Two separable classes, six speakers.
        let n = 60;
        let x = Array2::from_shape_fn((n, 2), |(i, j)| {
            if (i % 2 == 0) == (j == 0) {
                1.0 + (i % 7) as f64 * 0.01
            } else {
                -1.0
            }
        });
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let speakers: Vec<String> = (0..n).map(|i| format!("s{}", i % 6)).collect();
        let classes = vec!["a".to_string(), "b".to_string()];
        let names = vec!["f0".to_string(), "f1".to_string()];
        let head = HeadConfig {
            kind: "logreg".parse().unwrap(),
            ..HeadConfig::default()
        };
        let r = speaker_cv(x.view(), &labels, &speakers, &classes, "test", &names, &head, 3, 1).unwrap();
        assert_eq!(r.pooled.n, n);
        assert_eq!(r.folds.len(), 3);
        assert!((r.pooled.wa - 1.0).abs() < 1e-12, "{:?}", r.pooled);
        let mut all: Vec<&String> = r.folds.iter().flat_map(|f| &f.speakers).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 6, "each speaker is tested in exactly one fold");
        assert!(speaker_cv(x.view(), &labels, &speakers, &classes, "test", &names, &head, 7, 1).is_err());
    }
}
