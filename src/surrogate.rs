//! The weighted least-squares surrogate: the CPU twin of `shaders/surrogate.wgsl`.
//!
//! LIME mode reproduces `lime`'s `LimeBase.explain_instance_with_data` with every feature kept:
//! scikit-learn `Ridge(alpha, fit_intercept=True)` with sample weights, i.e. minimise
//! `sum_n w_n (y_n - c - x_n.beta)^2 + alpha |beta|^2` with the intercept unpenalised (weighted
//! centring, then a Cholesky solve), weighted R^2 as `score`, and the prediction at sample 0.
//! Shapley mode is KernelSHAP's constrained fit: intercept = f(empty), coefficients summing to
//! f(full) - f(empty), so exhaustive masks give exact Shapley values.

// Index loops on purpose: they mirror the kernel's loops (and summation order) line by line.
#![allow(clippy::needless_range_loop)]

use crate::error::{Error, Result, check_shape};
use crate::sampling::KernelKind;
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// Surrogate settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SurrogateConfig {
    /// Sample weighting.
    pub kernel: KernelKind,
    /// Ridge penalty on the coefficients (1.0 as in `lime`; use 0 for plain least squares).
    pub alpha: f32,
}

impl Default for SurrogateConfig {
    fn default() -> Self {
        SurrogateConfig {
            kernel: KernelKind::default(),
            alpha: 1.0,
        }
    }
}

impl SurrogateConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return Err(Error::config(
                "alpha",
                format!("must be finite and >= 0, got {}", self.alpha),
            ));
        }
        if let KernelKind::Lime { width } = self.kernel
            && !(width > 0.0 && width.is_finite())
        {
            return Err(Error::config("kernel-width", format!("must be > 0, got {width}")));
        }
        Ok(())
    }

    /// The `mode` code `surrogate.wgsl` uses (0 LIME ridge, 1 constrained Shapley).
    pub fn mode_code(&self) -> u32 {
        match self.kernel {
            KernelKind::Lime { .. } => 0,
            KernelKind::Shapley => 1,
        }
    }
}

/// One utterance's fitted surrogate, every class at once.
#[derive(Clone, Debug, PartialEq)]
pub struct SurrogateFit {
    /// Coefficient per class and band. // [C, B]
    pub coefs: Array2<f32>,
    /// Intercept per class. // [C]
    pub intercept: Vec<f32>,
    /// Weighted R^2 of the surrogate per class (`lime`'s `score`). // [C]
    pub r2: Vec<f32>,
    /// Surrogate prediction at sample 0 (all bands kept) per class. // [C]
    pub local_pred: Vec<f32>,
}

/// Number of floats per class in the packed output (`B` coefficients, intercept, R^2, local).
pub fn packed_len(n_bands: usize) -> usize {
    n_bands + 3
}

impl SurrogateFit {
    /// Unpacks `surrogate.wgsl`'s output row for one utterance.
    ///
    /// # Shapes
    /// `packed` [C * (B + 3)]
    pub fn from_packed(packed: &[f32], n_classes: usize, n_bands: usize) -> Result<Self> {
        let stride = packed_len(n_bands);
        check_shape("packed", &[n_classes * stride], &[packed.len()])?;
        let mut coefs = Array2::zeros((n_classes, n_bands));
        let (mut intercept, mut r2, mut local_pred) = (vec![], vec![], vec![]);
        for c in 0..n_classes {
            let row = &packed[c * stride..(c + 1) * stride];
            coefs.row_mut(c).assign(&ArrayView1::from(&row[..n_bands]));
            intercept.push(row[n_bands]);
            r2.push(row[n_bands + 1]);
            local_pred.push(row[n_bands + 2]);
        }
        Ok(SurrogateFit {
            coefs,
            intercept,
            r2,
            local_pred,
        })
    }
}

/// Finds the sample the Shapley fit uses as f(empty): the first mask that keeps no band.
///
/// # Shapes
/// `masks` [N, B]
pub fn empty_sample(masks: ArrayView2<f32>) -> Option<usize> {
    masks.rows().into_iter().position(|r| r.iter().all(|&v| v < 0.5))
}

/// Checks the inputs of a fit; returns `(N, B, C, empty sample)`.
pub(crate) fn check_fit_inputs(
    masks: ArrayView2<f32>,
    weights: &[f32],
    n_pred_rows: usize,
    n_classes: usize,
    cfg: &SurrogateConfig,
) -> Result<(usize, usize, usize, usize)> {
    cfg.validate()?;
    let (n, b) = masks.dim();
    check_shape("weights", &[n], &[weights.len()])?;
    check_shape("preds", &[n, n_classes], &[n_pred_rows, n_classes])?;
    if b < 2 || n < 2 || n_classes == 0 {
        return Err(Error::shape(
            "masks",
            "[N>=2, B>=2] and C>=1",
            format!("[{n}, {b}], C={n_classes}"),
        ));
    }
    if masks.row(0).iter().any(|&v| v < 0.5) {
        return Err(Error::config("masks", "sample 0 must keep every band"));
    }
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.iter().sum::<f32>() <= 0.0 {
        return Err(Error::config(
            "weights",
            "weights must be finite, >= 0 and not all zero",
        ));
    }
    let empty = match cfg.kernel {
        KernelKind::Shapley => empty_sample(masks)
            .ok_or_else(|| Error::config("masks", "the shapley kernel needs a sample that keeps no band"))?,
        KernelKind::Lime { .. } => 0,
    };
    Ok((n, b, n_classes, empty))
}

/// Fits the surrogate for one utterance on the CPU.
///
/// # Shapes
/// `masks` [N, B], `weights` [N], `preds` [N, C] -> coefficients [C, B]
pub fn fit_cpu(
    masks: ArrayView2<f32>,
    weights: &[f32],
    preds: ArrayView2<f32>,
    cfg: &SurrogateConfig,
) -> Result<SurrogateFit> {
    let (n, b, c, empty) = check_fit_inputs(masks, weights, preds.nrows(), preds.ncols(), cfg)?;
    let shapley = matches!(cfg.kernel, KernelKind::Shapley);
    // P features in the solved system; Shapley eliminates the last band through the constraint.
    let p = if shapley { b - 1 } else { b };
    let y0: Vec<f32> = (0..c).map(|k| preds[[empty, k]]).collect();
    let delta: Vec<f32> = (0..c).map(|k| preds[[0, k]] - y0[k]).collect();
    let feat = |i: usize, j: usize| {
        if shapley {
            masks[[i, j]] - masks[[i, b - 1]]
        } else {
            masks[[i, j]]
        }
    };
    let targ = |i: usize, k: usize| {
        if shapley {
            preds[[i, k]] - y0[k] - masks[[i, b - 1]] * delta[k]
        } else {
            preds[[i, k]]
        }
    };

    let mut w_sum = 0.0f32;
    for &w in weights {
        w_sum += w;
    }
    let mut x_mean = vec![0.0f32; p];
    let mut y_mean = vec![0.0f32; c];
    if !shapley {
        for (j, xm) in x_mean.iter_mut().enumerate() {
            let mut s = 0.0f32;
            for i in 0..n {
                s += weights[i] * feat(i, j);
            }
            *xm = s / w_sum;
        }
        for (k, ym) in y_mean.iter_mut().enumerate() {
            let mut s = 0.0f32;
            for i in 0..n {
                s += weights[i] * targ(i, k);
            }
            *ym = s / w_sum;
        }
    }
    // Gram matrix [P, P] and right-hand sides [C, P], centred.
    let mut gram = vec![0.0f32; p * p];
    for r in 0..p {
        for q in 0..p {
            let mut s = 0.0f32;
            for i in 0..n {
                s += weights[i] * (feat(i, r) - x_mean[r]) * (feat(i, q) - x_mean[q]);
            }
            gram[r * p + q] = s + if r == q { cfg.alpha } else { 0.0 };
        }
    }
    let mut rhs = vec![0.0f32; c * p];
    for k in 0..c {
        for j in 0..p {
            let mut s = 0.0f32;
            for i in 0..n {
                s += weights[i] * (feat(i, j) - x_mean[j]) * (targ(i, k) - y_mean[k]);
            }
            rhs[k * p + j] = s;
        }
    }
    cholesky_in_place(&mut gram, p).map_err(|reason| Error::config("surrogate", reason))?;
    let mut coefs = Array2::<f32>::zeros((c, b));
    let mut intercept = vec![0.0f32; c];
    for k in 0..c {
        let sol = &mut rhs[k * p..(k + 1) * p];
        cholesky_solve(&gram, p, sol);
        if shapley {
            let mut rest = delta[k];
            for j in 0..p {
                coefs[[k, j]] = sol[j];
                rest -= sol[j];
            }
            coefs[[k, b - 1]] = rest;
            intercept[k] = y0[k];
        } else {
            let mut icpt = y_mean[k];
            for j in 0..p {
                coefs[[k, j]] = sol[j];
                icpt -= x_mean[j] * sol[j];
            }
            intercept[k] = icpt;
        }
    }
    // Weighted R^2 and the local prediction, in the original mask space.
    let mut r2 = vec![0.0f32; c];
    let mut local_pred = vec![0.0f32; c];
    for k in 0..c {
        let predict = |i: usize| {
            let mut s = intercept[k];
            for j in 0..b {
                s += coefs[[k, j]] * masks[[i, j]];
            }
            s
        };
        let mut y_avg = 0.0f32;
        for i in 0..n {
            y_avg += weights[i] * preds[[i, k]];
        }
        y_avg /= w_sum;
        let (mut ss_res, mut ss_tot) = (0.0f32, 0.0f32);
        for i in 0..n {
            let e = preds[[i, k]] - predict(i);
            let d = preds[[i, k]] - y_avg;
            ss_res += weights[i] * e * e;
            ss_tot += weights[i] * d * d;
        }
        r2[k] = r2_from_sums(ss_res, ss_tot);
        local_pred[k] = predict(0);
    }
    Ok(SurrogateFit {
        coefs,
        intercept,
        r2,
        local_pred,
    })
}

/// scikit-learn's `r2_score` convention: 1 - res/tot, and for a constant target 1 if the fit is
/// perfect, else 0.
pub fn r2_from_sums(ss_res: f32, ss_tot: f32) -> f32 {
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    }
}

/// Overwrites the lower triangle of the symmetric positive definite `a` [P, P] with its Cholesky
/// factor `L` (row-major). Same loop order as `surrogate.wgsl`.
fn cholesky_in_place(a: &mut [f32], p: usize) -> std::result::Result<(), String> {
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= a[j * p + k] * a[j * p + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err("the weighted normal equations are singular; use alpha > 0".to_string());
        }
        let d = d.sqrt();
        a[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = s / d;
        }
    }
    Ok(())
}

/// Solves `L L^T x = rhs` in place given the factor from [`cholesky_in_place`].
fn cholesky_solve(l: &[f32], p: usize, x: &mut [f32]) {
    for i in 0..p {
        let mut s = x[i];
        for k in 0..i {
            s -= l[i * p + k] * x[k];
        }
        x[i] = s / l[i * p + i];
    }
    for i in (0..p).rev() {
        let mut s = x[i];
        for k in i + 1..p {
            s -= l[k * p + i] * x[k];
        }
        x[i] = s / l[i * p + i];
    }
}
