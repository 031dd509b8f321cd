//! What self-supervised models encode: for every hidden state of a wav2vec 2.0 / HuBERT encoder,
//! how well each interpretable feature (the 88 eGeMAPS functionals) is predicted from the
//! utterance's mean-pooled states: ridge regression on speaker-independent folds, R^2 of the
//! out-of-fold predictions. The result is the layer x feature map.
//!
//! Ridge is fitted in its dual (kernel) form, `A = (K + alpha I)^-1 Y` with `K = X X^T` over the
//! training rows, since utterances are usually fewer than hidden units; states are standardised
//! with the training rows' statistics. `alpha` is chosen per outer fold and layer from a grid by
//! inner speaker-independent folds of the training speakers, so the test speakers never choose it.

use super::folds::{Fold, speaker_folds};
use crate::error::{Error, Result, check_shape};
use crate::linalg::spd_solve;
use crate::model::hf::HfEncoder;
use crate::model::read_f32;
use crate::table::{Cell, Kind, Table};
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// The ridge penalties tried (on standardised states, relative to the number of hidden units).
pub const ALPHA_GRID: [f64; 6] = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];

/// Probe settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    /// Outer speaker-independent folds (capped at the speaker count when `None`).
    pub folds: Option<usize>,
    /// Inner folds choosing alpha (capped at the training speakers of a fold).
    pub inner_folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            folds: None,
            inner_folds: 3,
            seed: 0,
        }
    }
}

/// The layer x feature map.
#[derive(Clone, Debug)]
pub struct LayerFeatureMap {
    /// Feature names. // [F]
    pub features: Vec<String>,
    /// Out-of-fold R^2 of each feature from each hidden state (row `l`: hidden state `l`,
    /// 0 = the transformer's input). // [L + 1, F]
    pub r2: Array2<f64>,
    /// The alpha each outer fold chose, per layer. // [L + 1, K]
    pub alphas: Array2<f64>,
    /// Utterances and speakers used.
    pub n_utterances: usize,
    /// Distinct speakers.
    pub n_speakers: usize,
    /// Outer folds.
    pub n_folds: usize,
}

impl LayerFeatureMap {
    /// Per feature, the hidden state predicting it best and its R^2.
    pub fn best_layers(&self) -> Vec<(usize, f64)> {
        self.r2
            .columns()
            .into_iter()
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |b, (l, &v)| if v > b.1 { (l, v) } else { b })
            })
            .collect()
    }

    /// Mean R^2 over the features with a defined R^2, per hidden state. // [L + 1]
    pub fn layer_means(&self) -> Array1<f64> {
        self.r2
            .rows()
            .into_iter()
            .map(|r| {
                let ok: Vec<f64> = r.iter().copied().filter(|v| v.is_finite()).collect();
                ok.iter().sum::<f64>() / ok.len().max(1) as f64
            })
            .collect()
    }

    /// A summary as JSON: counts, mean R^2 per hidden state, each feature's best hidden state
    /// and R^2, and the alphas chosen.
    pub fn summary_json(&self) -> serde_json::Value {
        let best: Vec<serde_json::Value> = self
            .best_layers()
            .iter()
            .zip(&self.features)
            .map(|((l, r2), name)| serde_json::json!({"feature": name, "layer": l, "r2": finite(*r2)}))
            .collect();
        serde_json::json!({
            "utterances": self.n_utterances,
            "speakers": self.n_speakers,
            "folds": self.n_folds,
            "hidden_states": self.r2.nrows(),
            "mean_r2_per_layer": self.layer_means().iter().map(|v| finite(*v)).collect::<Vec<_>>(),
            "best_layer_per_feature": best,
            "alphas": self.alphas.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        })
    }

    /// The map as a table: one row per hidden state (`layer`, then one R^2 column per feature,
    /// undefined for a constant feature); written as `layer_feature_r2.csv` and `.parquet`.
    pub fn to_table(&self) -> Table {
        let mut t = Table::new(
            std::iter::once(("layer".to_string(), Kind::U64))
                .chain(self.features.iter().map(|f| (f.clone(), Kind::F64))),
        );
        for (l, row) in self.r2.rows().into_iter().enumerate() {
            t.push(
                std::iter::once(Cell::from(l))
                    .chain(row.iter().map(|&v| Cell::F64(v)))
                    .collect(),
            );
        }
        t
    }
}

/// `v`, or null when not finite (a constant feature's R^2).
fn finite(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        serde_json::Value::Null
    }
}

/// Mean-pooled hidden states `0..=L` of one waveform (preprocessed as the checkpoint says), the
/// encoder living on `device`.
///
/// # Shapes
/// `wave` [S] -> [L + 1, H]
pub fn pooled_states(encoder: &HfEncoder, wave: &[f32], device: &Device) -> Result<Array2<f64>> {
    let min = encoder.encoder.config().receptive_field();
    if wave.len() < min {
        return Err(Error::shape(
            "wave",
            format!("[S >= {min}]"),
            format!("[{}]", wave.len()),
        ));
    }
    let n_layers = encoder.encoder.n_layers();
    let x = Tensor::<2>::from_data(TensorData::new(wave.to_vec(), [1, wave.len()]), device);
    let h = encoder.encoder.config().hidden_size;
    let mut out = Array2::<f64>::zeros((n_layers + 1, h));
    for (l, state) in encoder.hidden_states(x, n_layers).into_iter().enumerate() {
        let pooled = read_f32(state.mean_dim(1).reshape([h]))?;
        out.row_mut(l).iter_mut().zip(pooled).for_each(|(o, v)| *o = v as f64);
    }
    Ok(out)
}

/// The layer x feature map from per-utterance pooled states and features.
///
/// Errors: shapes that disagree ([`Error::Shape`]), too few speakers for the folds
/// ([`Error::Config`] on `folds`), a feature constant over the corpus (its R^2 is undefined:
/// reported as NaN, not an error).
///
/// # Shapes
/// `states` [N] of [L + 1, H], `features` [N, F], `speakers` [N]
pub fn layer_feature_map(
    states: &[Array2<f64>],
    features: ArrayView2<f64>,
    feature_names: &[String],
    speakers: &[String],
    cfg: &ProbeConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<LayerFeatureMap> {
    let n = states.len();
    let (layers, h) = states.first().map(|s| s.dim()).unwrap_or((0, 0));
    for s in states {
        check_shape("pooled states", &[layers, h], s.shape())?;
    }
    check_shape("features", &[n, feature_names.len()], features.shape())?;
    check_shape("speakers", &[n], &[speakers.len()])?;
    let n_speakers = super::folds::speaker_counts(speakers).len();
    let k = cfg.folds.unwrap_or(n_speakers.min(5));
    let folds = speaker_folds(speakers, k, cfg.seed)?;
    // The inner folds of each outer fold's training speakers (row indices into its training
    // rows), the same for every layer; none when those speakers are too few to split.
    let inner: Vec<Option<Vec<Fold>>> = folds
        .iter()
        .map(|fold| {
            let train_speakers: Vec<String> = fold.train.iter().map(|&i| speakers[i].clone()).collect();
            let k = cfg.inner_folds.min(super::folds::speaker_counts(&train_speakers).len());
            (k >= 2)
                .then(|| speaker_folds(&train_speakers, k, cfg.seed ^ 0x5eed))
                .transpose()
        })
        .collect::<Result<_>>()?;
    let f = feature_names.len();
    let mut r2 = Array2::<f64>::zeros((layers, f));
    let mut alphas = Array2::<f64>::zeros((layers, folds.len()));
    for l in 0..layers {
        let x = Array2::from_shape_fn((n, h), |(i, j)| states[i][[l, j]]);
        let mut pred = Array2::<f64>::zeros((n, f));
        for (fi, (fold, inner)) in folds.iter().zip(&inner).enumerate() {
            let (alpha, p) = fit_fold(&x, &features, fold, inner.as_deref())?;
            alphas[[l, fi]] = alpha;
            for (row, &i) in fold.test.iter().enumerate() {
                pred.row_mut(i).assign(&p.row(row));
            }
        }
        for j in 0..f {
            let y = features.column(j);
            let mean = y.mean().unwrap_or(0.0);
            let ss_tot: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
            let ss_res: f64 = y.iter().zip(pred.column(j)).map(|(a, b)| (a - b).powi(2)).sum();
            r2[[l, j]] = if ss_tot > 0.0 { 1.0 - ss_res / ss_tot } else { f64::NAN };
        }
        progress(l + 1, layers);
    }
    Ok(LayerFeatureMap {
        features: feature_names.to_vec(),
        r2,
        alphas,
        n_utterances: n,
        n_speakers,
        n_folds: folds.len(),
    })
}

/// One outer fold: alpha chosen on `inner` folds of its training rows (the hidden width `H`
/// without them), then the fit on every training row. Returns the alpha and the predictions for
/// the test rows.
///
/// # Shapes
/// `x` [N, H], `y` [N, F] -> [test, F]
fn fit_fold(x: &Array2<f64>, y: &ArrayView2<f64>, fold: &Fold, inner: Option<&[Fold]>) -> Result<(f64, Array2<f64>)> {
    let (xs, xt) = standardise(x, &fold.train, &fold.test);
    let ys = y.select(Axis(0), &fold.train);
    let k_train = xs.dot(&xs.t()); // [T, T]
    let h = x.ncols() as f64;
    // The inner folds choose alpha by summed squared error.
    let alpha = match inner {
        Some(inner) => {
            let mut best = (f64::INFINITY, ALPHA_GRID[0] * h);
            for a in ALPHA_GRID.map(|a| a * h) {
                let mut sse = 0.0;
                for fold in inner {
                    let k_fit = k_train.select(Axis(0), &fold.train).select(Axis(1), &fold.train);
                    let k_at = k_train.select(Axis(0), &fold.test).select(Axis(1), &fold.train);
                    let p = dual_ridge(k_fit, k_at.view(), ys.select(Axis(0), &fold.train).view(), a)?;
                    let yt = ys.select(Axis(0), &fold.test);
                    sse += (&p - &yt).iter().map(|v| v * v).sum::<f64>();
                }
                if sse < best.0 {
                    best = (sse, a);
                }
            }
            best.1
        }
        None => h,
    };
    // The fit on every training row; test kernel rows K(test, train).
    let k_test = xt.dot(&xs.t()); // [test, T]
    Ok((alpha, dual_ridge(k_train, k_test.view(), ys.view(), alpha)?))
}

/// Dual ridge with an unpenalised intercept: `(K + alpha I)^-1 (y - mean)` fitted on the rows
/// of `k_fit`, predictions `k_at . coef + mean`.
///
/// # Shapes
/// `k_fit` [T, T], `k_at` [A, T], `y` [T, F] -> [A, F]
fn dual_ridge(mut k_fit: Array2<f64>, k_at: ArrayView2<f64>, y: ArrayView2<f64>, alpha: f64) -> Result<Array2<f64>> {
    k_fit.diag_mut().mapv_inplace(|d| d + alpha);
    let mean = y.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(y.ncols()));
    let coef = spd_solve(k_fit.view(), (&y - &mean).view(), "ridge")?;
    Ok(k_at.dot(&coef) + &mean)
}

/// Rows `train` and `test` of `x`, standardised with the training rows' means and standard
/// deviations (a constant column becomes zero).
fn standardise(x: &Array2<f64>, train: &[usize], test: &[usize]) -> (Array2<f64>, Array2<f64>) {
    let xt = x.select(Axis(0), train);
    let mean = xt.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(x.ncols()));
    let sd = xt
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-12 { s } else { f64::INFINITY });
    let scale = |m: Array2<f64>| (m - &mean) / &sd;
    (scale(xt), scale(x.select(Axis(0), test)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feature that is a linear function of one layer's states (plus speaker-independent
    /// noise) is predicted there (R^2 near 1) and not from a layer of pure noise.
    #[test]
    fn the_map_finds_the_layer_that_encodes_a_feature() {
        let (n, h) = (60, 12);
        let noise = |i: usize, j: usize, s: u64| {
            ((crate::sampling::random_u32(s, 9, i as u32, j as u32) >> 8) as f64 / 16_777_216.0) - 0.5
        };
        let states: Vec<Array2<f64>> = (0..n)
            .map(|i| Array2::from_shape_fn((2, h), |(l, j)| noise(i, j, 1 + l as u64)))
            .collect();
        // Feature 0 reads layer 1; feature 1 is noise.
        let features = Array2::from_shape_fn((n, 2), |(i, f)| match f {
            0 => 3.0 * states[i][[1, 2]] - 2.0 * states[i][[1, 5]] + 0.01 * noise(i, 0, 7),
            _ => noise(i, 1, 8),
        });
        let speakers: Vec<String> = (0..n).map(|i| format!("s{}", i % 6)).collect();
        let names = vec!["encoded".to_string(), "noise".to_string()];
        let map = layer_feature_map(
            &states,
            features.view(),
            &names,
            &speakers,
            &ProbeConfig::default(),
            |_, _| {},
        )
        .unwrap();
        assert!(map.r2[[1, 0]] > 0.95, "layer 1 encodes feature 0: {}", map.r2);
        assert!(map.r2[[0, 0]] < 0.3, "layer 0 does not: {}", map.r2);
        assert!(
            map.r2[[1, 1]] < 0.3 && map.r2[[0, 1]] < 0.3,
            "noise is not predicted: {}",
            map.r2
        );
        assert_eq!(map.best_layers()[0].0, 1);
        assert_eq!(map.n_folds, 5);
        assert!(map.to_table().to_csv().starts_with("layer,encoded,noise\n0,"));
        // One speaker: no speaker-independent split.
        let one = vec!["s".to_string(); n];
        assert!(
            layer_feature_map(
                &states,
                features.view(),
                &names,
                &one,
                &ProbeConfig::default(),
                |_, _| {}
            )
            .is_err()
        );
    }
}
