//! The logistic-regression head: multinomial (softmax) regression with an L2 penalty on the
//! weights, fitted by full-batch L-BFGS to convergence (scikit-learn's
//! `LogisticRegression(C, solver="lbfgs")` objective).

use super::{HeadConfig, softmax_rows};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

/// L-BFGS memory (pairs kept).
const MEMORY: usize = 10;
/// Stop when every gradient component of the mean loss is below this.
const GTOL: f64 = 1e-8;
/// Stop when an iteration lowers the mean loss by less than this, relatively.
const FTOL: f64 = 1e-15;
/// At most this many L-BFGS iterations.
const MAX_ITER: usize = 5000;
/// Armijo constant of the backtracking line search.
const ARMIJO: f64 = 1e-4;

/// A fitted multinomial logistic regression on standardised features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogReg {
    n_features: usize,
    n_classes: usize,
    /// Weights, row-major. // [C, D]
    coef: Vec<f64>,
    /// Intercepts (centred to sum 0, which does not change the probabilities). // [C]
    intercept: Vec<f64>,
    /// L-BFGS iterations the fit took.
    iterations: usize,
}

/// The penalised mean cross-entropy and its gradient, with buffers allocated once.
struct Objective<'a> {
    x: ArrayView2<'a, f64>,
    y: &'a [usize],
    k: usize,
    /// `1 / (C N)`: the penalty is `||W||^2 / (2 C N)` on the mean loss.
    penalty: f64,
    /// Logits, then probabilities minus one-hot targets. // [N, C]
    buf: Array2<f64>,
}

impl Objective<'_> {
    /// The objective at `theta` = [W (C*D, row-major), b (C)]; writes the gradient to `grad`.
    fn eval(&mut self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (n, d) = self.x.dim();
        let k = self.k;
        let (w, b) = theta.split_at(k * d);
        let w = ArrayView2::from_shape((k, d), w).expect("theta holds C*D weights");
        general_mat_mul(1.0, &self.x, &w.t(), 0.0, &mut self.buf);
        let mut loss = 0.0;
        for (mut row, &yi) in self.buf.rows_mut().into_iter().zip(self.y) {
            row.iter_mut().zip(b).for_each(|(z, &bi)| *z += bi);
            let max = row.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
            let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
            let lse = max + sum.ln();
            loss += lse - row[yi];
            row.mapv_inplace(|z| (z - lse).exp());
            row[yi] -= 1.0;
        }
        let inv_n = 1.0 / n as f64;
        let (gw, gb) = grad.split_at_mut(k * d);
        let mut gw = ArrayViewMut2::from_shape((k, d), gw).expect("grad holds C*D weights");
        general_mat_mul(inv_n, &self.buf.t(), &self.x, 0.0, &mut gw);
        gw.scaled_add(self.penalty, &w);
        gb.fill(0.0);
        for row in self.buf.rows() {
            gb.iter_mut().zip(row).for_each(|(g, &r)| *g += r * inv_n);
        }
        let w2: f64 = w.iter().map(|v| v * v).sum();
        loss * inv_n + 0.5 * self.penalty * w2
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl LogReg {
    /// Fits on standardised `x` [N, D] with labels `y` [N] in `0..k`; inputs already checked.
    pub(crate) fn fit(x: ArrayView2<f64>, y: &[usize], k: usize, cfg: &HeadConfig) -> Self {
        let (n, d) = x.dim();
        let mut obj = Objective {
            x,
            y,
            k,
            penalty: 1.0 / (cfg.c * n as f64),
            buf: Array2::zeros((n, k)),
        };
        let p = k * d + k;
        let mut theta = vec![0.0; p];
        let mut grad = vec![0.0; p];
        let mut f = obj.eval(&theta, &mut grad);
        let mut trial = vec![0.0; p];
        let mut trial_grad = vec![0.0; p];
        let mut dir = vec![0.0; p];
        let mut s_hist: Vec<Vec<f64>> = Vec::with_capacity(MEMORY);
        let mut y_hist: Vec<Vec<f64>> = Vec::with_capacity(MEMORY);
        let mut rho: Vec<f64> = Vec::with_capacity(MEMORY);
        let mut alpha = [0.0; MEMORY];
        let mut iterations = 0;
        while iterations < MAX_ITER {
            if grad.iter().all(|g| g.abs() < GTOL) {
                break;
            }
            iterations += 1;
            // Two-loop recursion: dir = -H grad.
            dir.copy_from_slice(&grad);
            let m = s_hist.len();
            for i in (0..m).rev() {
                alpha[i] = rho[i] * dot(&s_hist[i], &dir);
                dir.iter_mut().zip(&y_hist[i]).for_each(|(q, &yv)| *q -= alpha[i] * yv);
            }
            let gamma = if m > 0 {
                dot(&s_hist[m - 1], &y_hist[m - 1]) / dot(&y_hist[m - 1], &y_hist[m - 1])
            } else {
                1.0 / dot(&grad, &grad).sqrt().max(1.0)
            };
            dir.iter_mut().for_each(|q| *q *= gamma);
            for i in 0..m {
                let beta = rho[i] * dot(&y_hist[i], &dir);
                dir.iter_mut()
                    .zip(&s_hist[i])
                    .for_each(|(r, &sv)| *r += sv * (alpha[i] - beta));
            }
            dir.iter_mut().for_each(|v| *v = -*v);
            let mut gd = dot(&grad, &dir);
            if gd >= 0.0 {
                // Not a descent direction (rounding): restart from steepest descent.
                s_hist.clear();
                y_hist.clear();
                rho.clear();
                dir.iter_mut().zip(&grad).for_each(|(dv, &g)| *dv = -g);
                gd = dot(&grad, &dir);
            }
            // Backtracking line search (Armijo).
            let mut step = 1.0;
            let mut f_new;
            loop {
                trial
                    .iter_mut()
                    .zip(&theta)
                    .zip(&dir)
                    .for_each(|((t, &th), &dv)| *t = th + step * dv);
                f_new = obj.eval(&trial, &mut trial_grad);
                if f_new <= f + ARMIJO * step * gd || step < 1e-20 {
                    break;
                }
                step *= 0.5;
            }
            if f_new.is_nan() || f_new > f {
                break; // no decrease possible at this precision: converged
            }
            // Curvature pair (recycle the oldest buffers).
            let (mut s, mut yv) = if s_hist.len() == MEMORY {
                rho.remove(0);
                (s_hist.remove(0), y_hist.remove(0))
            } else {
                (vec![0.0; p], vec![0.0; p])
            };
            s.iter_mut()
                .zip(&trial)
                .zip(&theta)
                .for_each(|((sv, &a), &b)| *sv = a - b);
            yv.iter_mut()
                .zip(&trial_grad)
                .zip(&grad)
                .for_each(|((v, &a), &b)| *v = a - b);
            let sy = dot(&s, &yv);
            if sy > 1e-12 * dot(&yv, &yv).max(f64::MIN_POSITIVE) {
                s_hist.push(s);
                y_hist.push(yv);
                rho.push(1.0 / sy);
            }
            std::mem::swap(&mut theta, &mut trial);
            std::mem::swap(&mut grad, &mut trial_grad);
            let decrease = f - f_new;
            f = f_new;
            if decrease <= FTOL * f.abs().max(1.0) {
                break;
            }
        }
        let mut intercept = theta.split_off(k * d);
        let mean = intercept.iter().sum::<f64>() / k as f64;
        intercept.iter_mut().for_each(|b| *b -= mean);
        LogReg {
            n_features: d,
            n_classes: k,
            coef: theta,
            intercept,
            iterations,
        }
    }

    /// Class probabilities of standardised rows.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C]
    pub(crate) fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let w = ArrayView2::from_shape((self.n_classes, self.n_features), &self.coef).expect("checked at fit/load");
        let mut out = x.dot(&w.t());
        for mut row in out.rows_mut() {
            row.iter_mut().zip(&self.intercept).for_each(|(z, &b)| *z += b);
        }
        softmax_rows(&mut out);
        out
    }

    /// The weights `[C, D]` (row-major) and intercepts `[C]`, for the device twin.
    pub(crate) fn weights(&self) -> (&[f64], &[f64]) {
        (&self.coef, &self.intercept)
    }

    /// Checks a loaded head for `d` features and `k` classes.
    pub(crate) fn check(&self, d: usize, k: usize) -> std::result::Result<(), String> {
        if self.n_features != d || self.n_classes != k {
            return Err(format!(
                "logreg head is for {} features and {} classes, the file names {d} and {k}",
                self.n_features, self.n_classes
            ));
        }
        if self.coef.len() != k * d || self.intercept.len() != k {
            return Err(format!(
                "logreg head has {} weights and {} intercepts, expected {} and {k}",
                self.coef.len(),
                self.intercept.len(),
                k * d
            ));
        }
        if self.coef.iter().chain(&self.intercept).any(|v| !v.is_finite()) {
            return Err("logreg head has a non-finite weight".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn problem(n: usize, d: usize, k: usize) -> (Array2<f64>, Vec<usize>) {
        let mut rng = SplitMix64::new(11);
        let x = Array2::from_shape_fn((n, d), |_| rng.normal());
        let y = (0..n).map(|i| i % k).collect();
        (x, y)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = problem(30, 4, 3);
        let mut obj = Objective {
            x: x.view(),
            y: &y,
            k: 3,
            penalty: 0.1,
            buf: Array2::zeros((30, 3)),
        };
        let mut rng = SplitMix64::new(5);
        let theta: Vec<f64> = (0..15).map(|_| rng.normal()).collect();
        let mut g = vec![0.0; 15];
        obj.eval(&theta, &mut g);
        let mut scratch = vec![0.0; 15];
        for i in 0..15 {
            let h = 1e-6;
            let mut tp = theta.clone();
            tp[i] += h;
            let fp = obj.eval(&tp, &mut scratch);
            tp[i] -= 2.0 * h;
            let fm = obj.eval(&tp, &mut scratch);
            assert!(((fp - fm) / (2.0 * h) - g[i]).abs() < 1e-7, "component {i}");
        }
    }

    #[test]
    fn converges_to_a_stationary_point() {
        let (x, y) = problem(60, 5, 3);
        let cfg = HeadConfig::default();
        let m = LogReg::fit(x.view(), &y, 3, &cfg);
        let mut obj = Objective {
            x: x.view(),
            y: &y,
            k: 3,
            penalty: 1.0 / 60.0,
            buf: Array2::zeros((60, 3)),
        };
        let mut theta = m.coef.clone();
        theta.extend_from_slice(&m.intercept);
        let mut g = vec![0.0; theta.len()];
        obj.eval(&theta, &mut g);
        assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
        assert!(m.iterations < MAX_ITER);
    }
}
