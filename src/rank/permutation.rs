//! Permutation importance on speaker-independent folds, and the per-fold work it shares with
//! KernelSHAP: fit the head on the fold's training speakers, then score its test speakers with
//! each feature's column permuted (several seeded repeats) and explain them with KernelSHAP.
//! The fold model scores on the host (f64), or on a device in blocks of rows (`FoldJob::device`).
//!
//! Importance of feature `j` = score(out-of-fold predictions) - mean over repeats of
//! score(predictions with column `j` permuted within its test fold), the score being balanced
//! accuracy (or accuracy) over all rows pooled out of fold. Both scores are linear in per-row
//! correctness for fixed row weights, so the drop is `sum_i a_i drop_ij` with `drop_ij` = row
//! `i`'s correctness minus its mean correctness under permutation; the bootstrap redraws the
//! weights `a` (class-stratified multiplicities of the rows).

use super::rng::{Purpose, Rng};
use super::{FeatureGroup, RankConfig, fit_head, shap};
use crate::classify::device::DeviceHead;
use crate::classify::{FeatureClassifier, HeadConfig};
use crate::error::Result;
use crate::rank::folds::Fold;
use burn::tensor::Device;
use ndarray::{Array2, Array3, ArrayView2, Axis, s};

/// Everything one fold's task reads.
pub(crate) struct FoldJob<'a> {
    /// The corpus's rows. // [N, D]
    pub x: ArrayView2<'a, f64>,
    /// Label indices. // [N]
    pub labels: &'a [usize],
    /// The fold.
    pub fold: &'a Fold,
    /// Class names. // [C]
    pub classes: &'a [String],
    /// Feature names. // [D]
    pub feature_names: &'a [String],
    /// The classifier settings.
    pub head: &'a HeadConfig,
    /// The run's settings.
    pub cfg: &'a RankConfig,
    /// KernelSHAP's groups (empty: skip it).
    pub groups: &'a [FeatureGroup],
    /// (corpus, fold) indices, the random streams' coordinates.
    pub task: [u64; 2],
    /// Where the fold's model scores the test rows and their permutations: `None` on the host
    /// (f64), or a Burn device (f32, every permutation of a feature block in one call).
    pub device: Option<&'a Device>,
    /// On a device, at most this many permuted values (rows x features) per call
    /// ([`DEVICE_BLOCK_VALUES`]).
    pub block_values: usize,
}

impl FoldJob<'_> {
    /// Items (features, or test rows) scored per call when each takes `values_each` values: as
    /// many as fit [`FoldJob::block_values`] on a device (at least 1, at most `most`), one on
    /// the host.
    fn items_per_call(&self, values_each: usize, most: usize) -> usize {
        match self.device {
            Some(_) => (self.block_values / values_each.max(1)).clamp(1, most.max(1)),
            None => 1,
        }
    }
}

/// Rows x features of permuted test rows sent to the device per call, at most (16 MiB of f32).
pub(crate) const DEVICE_BLOCK_VALUES: usize = 1 << 22;

/// The fold model's predicted class per row, on the host or on the device.
enum Scorer<'a> {
    Host(&'a FeatureClassifier),
    Device(Box<DeviceHead>),
}

impl Scorer<'_> {
    /// Class probabilities of every row.
    ///
    /// # Shapes
    /// `x` [R, D] -> [R, C]
    fn proba(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        match self {
            Scorer::Host(clf) => clf.predict_proba(x),
            Scorer::Device(head) => head.probs_host(x),
        }
    }

    /// The argmax class of every row.
    ///
    /// # Shapes
    /// `x` [R, D] -> [R]
    fn predict(&self, x: ArrayView2<f64>) -> Result<Vec<usize>> {
        Ok(argmax_rows(self.proba(x)?.view()))
    }
}

/// One fold's results, for its test rows.
pub(crate) struct FoldOutput {
    /// The corpus rows tested. // [n]
    pub test: Vec<usize>,
    /// Predicted class per test row. // [n]
    pub pred: Vec<usize>,
    /// Correctness minus mean correctness with the column permuted. // [n, D]
    pub drop: Array2<f64>,
    /// |phi| per test row, explained class and group. // [n, C, G]
    pub shap_abs: Array3<f64>,
}

/// The argmax of every row.
fn argmax_rows(p: ArrayView2<f64>) -> Vec<usize> {
    p.rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0
        })
        .collect()
}

/// Fits the fold's model and computes its permutation drops and KernelSHAP values.
pub(crate) fn run_fold(job: &FoldJob) -> Result<FoldOutput> {
    let d = job.x.ncols();
    let all: Vec<usize> = (0..d).collect();
    let clf = fit_head(
        job.x,
        job.labels,
        &job.fold.train,
        &all,
        job.classes,
        job.feature_names,
        job.head,
    )?;
    let x_test = job.x.select(Axis(0), &job.fold.test);
    let y_test: Vec<usize> = job.fold.test.iter().map(|&i| job.labels[i]).collect();
    let n = x_test.nrows();
    let scorer = match job.device {
        Some(device) => Scorer::Device(Box::new(DeviceHead::new(&clf, device))),
        None => Scorer::Host(&clf),
    };
    let pred = scorer.predict(x_test.view())?;
    let base: Vec<f64> = pred.iter().zip(&y_test).map(|(p, t)| (p == t) as u8 as f64).collect();

    // Features are scored in blocks: every repeat of every feature of a block is one stacked
    // matrix, `reps * n` rows per feature (the host path takes one feature per block).
    let reps = job.cfg.permutation_repeats;
    let per_feature = reps * n;
    let block = job.items_per_call(per_feature * d, d);
    let mut drop = Array2::zeros((n, d));
    let mut stacked = Array2::zeros((block * per_feature, d));
    for mut rows in stacked.axis_chunks_iter_mut(Axis(0), n) {
        rows.assign(&x_test);
    }
    let mut perm: Vec<usize> = (0..n).collect();
    for first in (0..d).step_by(block) {
        let features = first..(first + block).min(d);
        let used = features.len() * per_feature;
        for (b, j) in features.clone().enumerate() {
            for r in 0..reps {
                perm.iter_mut().enumerate().for_each(|(i, p)| *p = i);
                Rng::keyed(
                    job.cfg.seed,
                    Purpose::Permute,
                    &[job.task[0], job.task[1], j as u64, r as u64],
                )
                .shuffle(&mut perm);
                let at = b * per_feature + r * n;
                for (i, &src) in perm.iter().enumerate() {
                    stacked[[at + i, j]] = x_test[[src, j]];
                }
            }
        }
        let p = scorer.predict(stacked.slice(s![..used, ..]))?;
        for (b, j) in features.enumerate() {
            let at = b * per_feature;
            for i in 0..n {
                let hits = (0..reps).filter(|&r| p[at + r * n + i] == y_test[i]).count();
                drop[[i, j]] = base[i] - hits as f64 / reps as f64;
            }
            // Restore the column for the next block.
            for r in 0..reps {
                stacked
                    .slice_mut(s![at + r * n..at + (r + 1) * n, j])
                    .assign(&x_test.column(j));
            }
        }
    }

    let k = job.classes.len();
    let g = job.groups.len();
    let mut shap_abs = Array3::zeros((n, k, g));
    if g > 0 {
        let train = job.x.select(Axis(0), &job.fold.train);
        let background = train.mean_axis(Axis(0)).expect("a fold trains on rows").to_vec();
        let mut rng = Rng::keyed(job.cfg.seed, Purpose::Coalitions, &job.task);
        let masks = shap::coalitions(g, job.cfg.shap_coalitions, &mut rng);
        let design = shap::shap_design(masks.view())?;
        // Rows are scored in blocks, every coalition of every row of a block in one call (one row
        // per call on the host).
        let m = masks.nrows();
        let rows_per_call = job.items_per_call(m * d, n);
        let mut inputs = Array2::zeros((rows_per_call * m, d));
        for first in (0..n).step_by(rows_per_call) {
            let block = first..(first + rows_per_call).min(n);
            let used = block.len() * m;
            for (b, i) in block.clone().enumerate() {
                shap::coalition_inputs(
                    x_test.row(i),
                    &background,
                    job.groups,
                    masks.view(),
                    inputs.slice_mut(s![b * m..(b + 1) * m, ..]),
                );
            }
            let proba = scorer.proba(inputs.slice(s![..used, ..]))?;
            for (b, i) in block.enumerate() {
                let phi = shap::fit_row(proba.slice(s![b * m..(b + 1) * m, ..]), &design)?;
                shap_abs.index_axis_mut(Axis(0), i).assign(&phi.mapv(f64::abs));
            }
        }
    }
    Ok(FoldOutput {
        test: job.fold.test.clone(),
        pred,
        drop,
        shap_abs,
    })
}

/// The folds' outputs put back in corpus row order.
pub(crate) struct Pooled {
    /// Out-of-fold prediction per row. // [N]
    pub pred: Vec<usize>,
    /// Permutation drops. // [N, D]
    pub drop: Array2<f64>,
    /// KernelSHAP |phi|. // [N, C, G]
    pub shap_abs: Array3<f64>,
}

impl Pooled {
    /// Scatters the folds' rows (every row is in exactly one fold's test part).
    pub(crate) fn assemble(n: usize, d: usize, k: usize, g: usize, outs: &[FoldOutput]) -> Pooled {
        let mut pooled = Pooled {
            pred: vec![0; n],
            drop: Array2::zeros((n, d)),
            shap_abs: Array3::zeros((n, k, g)),
        };
        for o in outs {
            for (t, &i) in o.test.iter().enumerate() {
                pooled.pred[i] = o.pred[t];
                pooled.drop.row_mut(i).assign(&o.drop.row(t));
                pooled
                    .shap_abs
                    .index_axis_mut(Axis(0), i)
                    .assign(&o.shap_abs.index_axis(Axis(0), t));
            }
        }
        pooled
    }
}
