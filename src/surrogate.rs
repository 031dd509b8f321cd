//! The weighted least-squares surrogate: the CPU twin of `shaders/surrogate.wgsl`.
//!
//! LIME mode reproduces `lime`'s `LimeBase.explain_instance_with_data` with every feature kept:
//! scikit-learn `Ridge(alpha, fit_intercept=True)` with sample weights, i.e. minimise
//! `sum_n w_n (y_n - c - x_n.beta)^2 + alpha |beta|^2` with the intercept unpenalised (weighted
//! centring, then a Cholesky solve), weighted R^2 as `score`, and the prediction at sample 0.
//! Shapley mode is KernelSHAP's constrained fit: intercept = f(empty), coefficients summing to
//! f(full) - f(empty), so exhaustive masks give exact Shapley values.
//!
//! The masks and weights are shared by every utterance and class of a run, so everything that
//! depends on them alone (the normal equations, their Cholesky factor, the projection onto the
//! coefficients) is built once in f64 as a [`SurrogateDesign`]; a fit is then a product of the
//! projection with the model outputs and the weighted R^2 sums, which the GPU kernel spreads
//! over a workgroup per utterance.

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

/// Invocations per workgroup of `surrogate.wgsl`; the weighted R^2 sums of each class are split
/// over `SURROGATE_WG / C` of them ([`r2_parts`]), on the GPU and in the CPU twin alike.
pub const SURROGATE_WG: usize = 64;

/// Partial sums per class of the weighted R^2: sample `i` goes to part `i % r2_parts(C)`.
pub fn r2_parts(n_classes: usize) -> usize {
    (SURROGATE_WG / n_classes.max(1)).max(1)
}

/// The part of a surrogate fit that depends on the masks and kernel weights alone, shared by
/// every utterance and class explained with them: the weighted least-squares projection, built
/// once (in f64) so that each fit is one `[C, N] x [N, P]` product plus its R^2 sums.
///
/// LIME mode: with centred features `X_c` (weighted means `x_mean`) and `W = diag(w)`, the
/// ridge solution is `beta = (X_c^T W X_c + alpha I)^-1 X_c^T W y`; `X_c^T W 1 = 0`, so the
/// targets need no centring. Shapley mode solves for `P = B - 1` features `m_j - m_B` on the
/// targets `y - y(empty) - m_B (y(full) - y(empty))`, which is the projection of `y` minus
/// `y(empty)` times the projection of ones and `y(full) - y(empty)` times that of `m_B`.
#[derive(Clone, Debug)]
pub struct SurrogateDesign {
    cfg: SurrogateConfig,
    /// Masks. // [N, B]
    masks: Array2<f32>,
    /// Kernel weights. // [N]
    weights: Vec<f32>,
    /// Sum of the kernel weights.
    w_sum: f32,
    /// The all-removed sample (Shapley), 0 otherwise.
    empty: usize,
    /// The projection, transposed: coefficient `j` of targets `y` is `sum_i proj_t[i, j] y_i`.
    /// // [N, P]
    proj_t: Array2<f32>,
    /// Rows: weighted feature means (zero in Shapley mode), the projection of ones and the
    /// projection of the last band's mask (both zero in LIME mode). // [3, P]
    vecs: Array2<f32>,
}

impl SurrogateDesign {
    /// Builds the projection for `masks` and `weights`; fails when the weighted normal
    /// equations are singular.
    ///
    /// # Shapes
    /// `masks` [N, B], `weights` [N]
    pub fn new(masks: ArrayView2<f32>, weights: &[f32], cfg: &SurrogateConfig) -> Result<Self> {
        let (n, b, _, empty) = check_fit_inputs(masks, weights, masks.nrows(), 1, cfg)?;
        let shapley = matches!(cfg.kernel, KernelKind::Shapley);
        let p = if shapley { b - 1 } else { b };
        let feat = |i: usize, j: usize| {
            let m = masks[[i, j]] as f64;
            if shapley { m - masks[[i, b - 1]] as f64 } else { m }
        };
        let w_sum: f64 = weights.iter().map(|&w| w as f64).sum();
        let mut x_mean = vec![0.0f64; p];
        if !shapley {
            for (j, xm) in x_mean.iter_mut().enumerate() {
                *xm = (0..n).map(|i| weights[i] as f64 * feat(i, j)).sum::<f64>() / w_sum;
            }
        }
        // Centred features [N, P] and the normal matrix [P, P] with alpha on the diagonal.
        let xc = Array2::from_shape_fn((n, p), |(i, j)| feat(i, j) - x_mean[j]);
        let mut gram = vec![0.0f64; p * p];
        for r in 0..p {
            for q in 0..=r {
                let s: f64 = (0..n).map(|i| weights[i] as f64 * xc[[i, r]] * xc[[i, q]]).sum();
                gram[r * p + q] = s;
                gram[q * p + r] = s;
            }
            gram[r * p + r] += cfg.alpha as f64;
        }
        cholesky_in_place(&mut gram, p).map_err(|reason| Error::config("surrogate", reason))?;
        let mut proj_t = Array2::<f32>::zeros((n, p));
        let mut col = vec![0.0f64; p];
        for i in 0..n {
            for j in 0..p {
                col[j] = weights[i] as f64 * xc[[i, j]];
            }
            cholesky_solve(&gram, p, &mut col);
            for j in 0..p {
                proj_t[[i, j]] = col[j] as f32;
            }
        }
        let mut vecs = Array2::<f32>::zeros((3, p));
        for j in 0..p {
            vecs[[0, j]] = x_mean[j] as f32;
            if shapley {
                vecs[[1, j]] = (0..n).map(|i| proj_t[[i, j]] as f64).sum::<f64>() as f32;
                vecs[[2, j]] = (0..n)
                    .map(|i| proj_t[[i, j]] as f64 * masks[[i, b - 1]] as f64)
                    .sum::<f64>() as f32;
            }
        }
        Ok(SurrogateDesign {
            cfg: *cfg,
            masks: masks.to_owned(),
            weights: weights.to_vec(),
            w_sum: w_sum as f32,
            empty,
            proj_t,
            vecs,
        })
    }

    /// Samples `N`.
    pub fn n_samples(&self) -> usize {
        self.masks.nrows()
    }

    /// Bands `B`.
    pub fn n_bands(&self) -> usize {
        self.masks.ncols()
    }

    /// The settings the design was built for.
    pub fn config(&self) -> &SurrogateConfig {
        &self.cfg
    }

    /// The masks. // [N, B]
    pub fn masks(&self) -> &Array2<f32> {
        &self.masks
    }

    /// The kernel weights. // [N]
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Sum of the kernel weights.
    pub fn weight_sum(&self) -> f32 {
        self.w_sum
    }

    /// The all-removed sample the Shapley fit anchors on (0 in LIME mode).
    pub fn empty_sample(&self) -> usize {
        self.empty
    }

    /// The transposed projection. // [N, P]
    pub fn proj_t(&self) -> ArrayView2<'_, f32> {
        self.proj_t.view()
    }

    /// Feature means, projection of ones, projection of the last band's mask. // [3, P]
    pub fn vecs(&self) -> ArrayView2<'_, f32> {
        self.vecs.view()
    }

    /// Fits one utterance's surrogate for every class, in `surrogate.wgsl`'s order of
    /// summation.
    ///
    /// # Shapes
    /// `preds` [N, C] -> coefficients [C, B]
    pub fn fit(&self, preds: ArrayView2<f32>) -> Result<SurrogateFit> {
        let (n, b) = self.masks.dim();
        let c = preds.ncols();
        check_shape("preds", &[n, c], &[preds.nrows(), c])?;
        if c == 0 {
            return Err(Error::shape("preds", "[N, C>=1]", format!("[{n}, 0]")));
        }
        let shapley = matches!(self.cfg.kernel, KernelKind::Shapley);
        let p = self.proj_t.ncols();
        let (masks, weights, proj_t) = (&self.masks, &self.weights, &self.proj_t);
        let mut coefs = Array2::<f32>::zeros((c, b));
        let (mut intercept, mut r2, mut local_pred) = (vec![0.0f32; c], vec![0.0f32; c], vec![0.0f32; c]);
        for k in 0..c {
            // Step 1: the weighted mean of the outputs and the Shapley anchors.
            let mut y_avg = 0.0f32;
            for i in 0..n {
                y_avg += weights[i] * preds[[i, k]];
            }
            y_avg /= self.w_sum;
            let y0 = preds[[self.empty, k]];
            let delta = preds[[0, k]] - y0;
            // Step 2: the projection.
            for j in 0..p {
                let mut s = 0.0f32;
                for i in 0..n {
                    s += proj_t[[i, j]] * preds[[i, k]];
                }
                if shapley {
                    s -= y0 * self.vecs[[1, j]] + delta * self.vecs[[2, j]];
                }
                coefs[[k, j]] = s;
            }
            // Step 3: intercept (and the constrained last band), prediction at sample 0.
            if shapley {
                let mut rest = delta;
                for j in 0..p {
                    rest -= coefs[[k, j]];
                }
                coefs[[k, b - 1]] = rest;
                intercept[k] = y0;
            } else {
                let mut icpt = y_avg;
                for j in 0..p {
                    icpt -= self.vecs[[0, j]] * coefs[[k, j]];
                }
                intercept[k] = icpt;
            }
            let predict = |i: usize| {
                let mut s = intercept[k];
                for j in 0..b {
                    s += coefs[[k, j]] * masks[[i, j]];
                }
                s
            };
            local_pred[k] = predict(0);
            // Step 4: weighted R^2 from partial sums over samples i = t, t + T, ...
            let parts = r2_parts(c);
            let (mut ss_res, mut ss_tot) = (0.0f32, 0.0f32);
            for t in 0..parts {
                let (mut res, mut tot) = (0.0f32, 0.0f32);
                for i in (t..n).step_by(parts) {
                    let e = preds[[i, k]] - predict(i);
                    let d = preds[[i, k]] - y_avg;
                    res += weights[i] * e * e;
                    tot += weights[i] * d * d;
                }
                ss_res += res;
                ss_tot += tot;
            }
            r2[k] = r2_from_sums(ss_res, ss_tot);
        }
        Ok(SurrogateFit {
            coefs,
            intercept,
            r2,
            local_pred,
        })
    }
}

/// Fits the surrogate for one utterance on the CPU: [`SurrogateDesign::new`] then
/// [`SurrogateDesign::fit`] (build the design once to fit many utterances with the same masks).
///
/// # Shapes
/// `masks` [N, B], `weights` [N], `preds` [N, C] -> coefficients [C, B]
pub fn fit_cpu(
    masks: ArrayView2<f32>,
    weights: &[f32],
    preds: ArrayView2<f32>,
    cfg: &SurrogateConfig,
) -> Result<SurrogateFit> {
    check_fit_inputs(masks, weights, preds.nrows(), preds.ncols(), cfg)?;
    SurrogateDesign::new(masks, weights, cfg)?.fit(preds)
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
/// factor `L` (row-major).
fn cholesky_in_place(a: &mut [f64], p: usize) -> std::result::Result<(), String> {
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
fn cholesky_solve(l: &[f64], p: usize, x: &mut [f64]) {
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
