//! L1-penalised multinomial logistic regression, fitted by FISTA (accelerated proximal gradient)
//! with backtracking on the step and function-value restarts: a deterministic solver with no
//! randomness at all, for stability selection (the `stability` module).
//!
//! Objective, on standardised features: `(1/N) sum_i -log softmax(W x_i + b)[y_i] + lambda |W|_1`
//! (the intercept `b` is not penalised). The proximal step of the L1 term is soft thresholding,
//! so unselected coefficients are exact zeros.

use crate::error::{Error, Result};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Solver settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct L1Options {
    /// Stop when the largest component of the gradient mapping `L (y - x+)` is below this.
    pub tol: f64,
    /// At most this many proximal steps.
    pub max_iter: usize,
}

impl Default for L1Options {
    fn default() -> Self {
        L1Options {
            tol: 1e-6,
            max_iter: 5000,
        }
    }
}

impl L1Options {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.tol > 0.0 && self.tol.is_finite()) {
            return Err(Error::config(
                "l1-tol",
                format!("must be finite and > 0, got {}", self.tol),
            ));
        }
        if self.max_iter == 0 {
            return Err(Error::config("l1-max-iter", "must be >= 1"));
        }
        Ok(())
    }
}

/// A fitted L1 multinomial logistic regression.
#[derive(Clone, Debug, PartialEq)]
pub struct L1Fit {
    /// Coefficients on the standardised features. // [C, D]
    pub coef: Array2<f64>,
    /// Intercepts. // [C]
    pub intercept: Array1<f64>,
    /// Proximal steps taken.
    pub iterations: usize,
    /// Whether the tolerance was reached before `max_iter`.
    pub converged: bool,
}

/// The smooth part: mean cross-entropy, and its gradient into `gw` [C, D], `gb` [C].
struct Smooth<'a> {
    x: ArrayView2<'a, f64>,
    y: &'a [usize],
    /// Logits, then `P - Y`. // [N, C]
    buf: Array2<f64>,
}

impl Smooth<'_> {
    fn loss(&mut self, w: &Array2<f64>, b: &Array1<f64>, grad: Option<(&mut Array2<f64>, &mut Array1<f64>)>) -> f64 {
        let n = self.x.nrows() as f64;
        general_mat_mul(1.0, &self.x, &w.t(), 0.0, &mut self.buf);
        let mut loss = 0.0;
        for (mut row, &yi) in self.buf.rows_mut().into_iter().zip(self.y) {
            row += b;
            let max = row.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
            let lse = max + row.iter().map(|&z| (z - max).exp()).sum::<f64>().ln();
            loss += lse - row[yi];
            row.mapv_inplace(|z| (z - lse).exp());
            row[yi] -= 1.0;
        }
        if let Some((gw, gb)) = grad {
            general_mat_mul(1.0 / n, &self.buf.t(), &self.x, 0.0, gw);
            gb.assign(&(self.buf.sum_axis(Axis(0)) / n));
        }
        loss / n
    }
}

/// The smallest `lambda` at which every coefficient is zero: the largest gradient component at
/// `W = 0` with the intercept at its optimum (the log class priors), i.e.
/// `max_{c,j} |(n_c / N) mean_{i in c}(x_ij) - (n_c / N) mean_i(x_ij)|`.
///
/// # Shapes
/// `x` [N, D], `y` [N] with labels `< k`.
pub fn lambda_max(x: ArrayView2<f64>, y: &[usize], k: usize) -> f64 {
    let (n, d) = x.dim();
    let mut class_sum = Array2::<f64>::zeros((k, d));
    let mut counts = vec![0.0; k];
    for (row, &l) in x.rows().into_iter().zip(y) {
        class_sum.row_mut(l).scaled_add(1.0, &row);
        counts[l] += 1.0;
    }
    let total = class_sum.sum_axis(Axis(0));
    let mut best: f64 = 0.0;
    for c in 0..k {
        let prior = counts[c] / n as f64;
        for j in 0..d {
            best = best.max(((class_sum[[c, j]] - prior * total[j]) / n as f64).abs());
        }
    }
    best
}

/// The number of features with a non-zero coefficient for some class.
pub fn n_selected(fit: &L1Fit) -> usize {
    fit.coef
        .columns()
        .into_iter()
        .filter(|c| c.iter().any(|&v| v != 0.0))
        .count()
}

/// The penalty at which the model keeps about `target` features: the largest `lambda` (to a
/// relative 1e-4, by bisection on `log lambda` over `[1e-4, 1] * lambda_max`) whose fit keeps at
/// least `target`; the lower end when even that keeps fewer.
///
/// # Shapes
/// `x` [N, D] standardised, `y` [N] with labels `< k`; `1 <= target <= D`.
pub fn lambda_for_selection(x: ArrayView2<f64>, y: &[usize], k: usize, target: usize, opts: &L1Options) -> Result<f64> {
    let d = x.ncols();
    if !(1..=d).contains(&target) {
        return Err(Error::config("l1-select", format!("must be 1..={d}, got {target}")));
    }
    let lmax = lambda_max(x, y, k);
    if lmax.is_nan() || lmax <= 0.0 {
        return Err(Error::config("features", "no feature differs between the classes"));
    }
    let (mut lo, mut hi) = ((lmax * 1e-4).ln(), lmax.ln());
    let count = |log_l: f64| -> Result<usize> { Ok(n_selected(&fit_l1_logistic(x, y, k, log_l.exp(), opts)?)) };
    if count(lo)? < target {
        return Ok(lo.exp());
    }
    // Invariant: count(lo) >= target, count(hi) < target (nothing is kept at lambda_max).
    while hi - lo > 1e-4 {
        let mid = 0.5 * (lo + hi);
        if count(mid)? >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo.exp())
}

/// The largest eigenvalue of `[X 1]^T [X 1] / N` by power iteration (a deterministic start).
fn gram_norm(x: ArrayView2<f64>) -> f64 {
    let (n, d) = x.dim();
    let mut v = Array1::<f64>::from_elem(d + 1, 1.0 / ((d + 1) as f64).sqrt());
    let mut est = 1.0;
    for _ in 0..100 {
        let xv = x.dot(&v.slice(ndarray::s![..d])) + v[d];
        let mut next = Array1::<f64>::zeros(d + 1);
        next.slice_mut(ndarray::s![..d]).assign(&(x.t().dot(&xv) / n as f64));
        next[d] = xv.sum() / n as f64;
        let norm = next.dot(&next).sqrt();
        if norm.is_nan() || norm <= 0.0 {
            return 1.0;
        }
        let prev = est;
        est = norm;
        v = next / norm;
        if (est - prev).abs() <= 1e-10 * est {
            break;
        }
    }
    est
}

/// Soft thresholding of `v` at `t`.
fn soft(v: f64, t: f64) -> f64 {
    if v > t {
        v - t
    } else if v < -t {
        v + t
    } else {
        0.0
    }
}

/// Fits the L1 multinomial model on standardised rows.
///
/// Errors: a label out of range or a non-finite `lambda` / feature is [`Error::Config`];
/// mismatched sizes are [`Error::Shape`].
///
/// # Shapes
/// `x` [N, D] with `N, D >= 1`, `y` [N] with labels `< k`, `k >= 2` -> `coef` [k, D]
pub fn fit_l1_logistic(x: ArrayView2<f64>, y: &[usize], k: usize, lambda: f64, opts: &L1Options) -> Result<L1Fit> {
    opts.validate()?;
    let (n, d) = x.dim();
    if n == 0 || d == 0 {
        return Err(Error::shape("x", "[N>=1, D>=1]", format!("{:?}", x.shape())));
    }
    if y.len() != n {
        return Err(Error::shape("y", format!("[{n}]"), format!("[{}]", y.len())));
    }
    if k < 2 {
        return Err(Error::config("classes", format!("need at least 2 classes, got {k}")));
    }
    if let Some(bad) = y.iter().find(|&&l| l >= k) {
        return Err(Error::config(
            "labels",
            format!("label {bad} is out of range for {k} classes"),
        ));
    }
    if !(lambda >= 0.0 && lambda.is_finite()) {
        return Err(Error::config(
            "l1-lambda",
            format!("must be finite and >= 0, got {lambda}"),
        ));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::config("features", "a feature value is not finite"));
    }
    let mut smooth = Smooth {
        x,
        y,
        buf: Array2::zeros((n, k)),
    };
    // Boehning's bound: the softmax Hessian is at most I/2, so L <= ||[X 1]||^2 / (2N).
    let mut lip = 0.5 * gram_norm(x) * 1.01;
    let penalty = |w: &Array2<f64>| lambda * w.iter().map(|v| v.abs()).sum::<f64>();

    // Start at W = 0 with the intercept at the log priors.
    let mut counts = vec![0.0f64; k];
    y.iter().for_each(|&l| counts[l] += 1.0);
    let mut b = Array1::from_iter(counts.iter().map(|&c| (c.max(0.5) / n as f64).ln()));
    let mean_b = b.mean().unwrap_or(0.0);
    b.mapv_inplace(|v| v - mean_b);
    let mut w = Array2::<f64>::zeros((k, d));
    let (mut yw, mut yb) = (w.clone(), b.clone());
    let (mut gw, mut gb) = (Array2::<f64>::zeros((k, d)), Array1::<f64>::zeros(k));
    let mut f_obj = smooth.loss(&w, &b, None) + penalty(&w);
    let mut t = 1.0f64;
    let mut iterations = 0;
    let mut converged = false;
    while iterations < opts.max_iter {
        iterations += 1;
        let fy = smooth.loss(&yw, &yb, Some((&mut gw, &mut gb)));
        // Backtracking: find L with the quadratic upper bound at the candidate.
        let (nw, nb, f_new) = loop {
            let step = 1.0 / lip;
            let nw = Array2::from_shape_fn((k, d), |(c, j)| soft(yw[[c, j]] - step * gw[[c, j]], step * lambda));
            let nb = &yb - &(&gb * step);
            let dw = &nw - &yw;
            let db = &nb - &yb;
            let lin = (&gw * &dw).sum() + (&gb * &db).sum();
            let sq = dw.iter().map(|v| v * v).sum::<f64>() + db.iter().map(|v| v * v).sum::<f64>();
            let f_smooth = smooth.loss(&nw, &nb, None);
            if f_smooth <= fy + lin + 0.5 * lip * sq + 1e-12 * fy.abs().max(1.0) || lip > 1e12 {
                let f_total = f_smooth + penalty(&nw);
                break (nw, nb, f_total);
            }
            lip *= 2.0;
        };
        let gmap = (&nw - &yw)
            .iter()
            .chain((&nb - &yb).iter())
            .fold(0.0f64, |m, v| m.max(v.abs()))
            * lip;
        if f_new > f_obj {
            // Function-value restart: drop the momentum and step again from the last iterate.
            t = 1.0;
            yw.assign(&w);
            yb.assign(&b);
            if gmap < opts.tol {
                converged = true;
                break;
            }
            continue;
        }
        let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let beta = (t - 1.0) / t_next;
        yw = &nw + &((&nw - &w) * beta);
        yb = &nb + &((&nb - &b) * beta);
        w = nw;
        b = nb;
        f_obj = f_new;
        t = t_next;
        if gmap < opts.tol {
            converged = true;
            break;
        }
    }
    Ok(L1Fit {
        coef: w,
        intercept: b,
        iterations,
        converged,
    })
}

#[cfg(test)]
mod tests {
    use super::super::rng::{Purpose, Rng};
    use super::*;

    /// Standard-normal features; the label is the argmax of `x3`, `x7` and their negated sum.
    fn data(n: usize, d: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = Rng::keyed(seed, Purpose::Bootstrap, &[99]);
        let x = Array2::from_shape_fn((n, d), |_| rng.normal());
        let y = x
            .rows()
            .into_iter()
            .map(|r| {
                let s = [2.0 * r[3], 2.0 * r[7], -(r[3] + r[7])];
                (0..3).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap()
            })
            .collect();
        (x, y)
    }

    #[test]
    fn selects_the_informative_features() {
        let (x, y) = data(300, 12, 1);
        let lmax = lambda_max(x.view(), &y, 3);
        assert!(lmax > 0.0);
        let fit = fit_l1_logistic(x.view(), &y, 3, 0.2 * lmax, &L1Options::default()).unwrap();
        assert!(fit.converged, "{} iterations", fit.iterations);
        let norms: Vec<f64> = (0..12)
            .map(|j| fit.coef.column(j).iter().map(|v| v.abs()).sum())
            .collect();
        for (j, &v) in norms.iter().enumerate() {
            if j == 3 || j == 7 {
                assert!(v > 0.5, "feature {j}: {v}");
            } else {
                assert!(v < 0.1, "feature {j}: {v}");
            }
        }
        // At lambda_max every coefficient is zero.
        let zero = fit_l1_logistic(x.view(), &y, 3, lmax * 1.0001, &L1Options::default()).unwrap();
        assert!(zero.coef.iter().all(|&v| v == 0.0));
        // Just below it something enters.
        let one = fit_l1_logistic(x.view(), &y, 3, lmax * 0.9, &L1Options::default()).unwrap();
        assert!(one.coef.iter().any(|&v| v != 0.0));
        // Calibrated to keep two features.
        let l2 = lambda_for_selection(x.view(), &y, 3, 2, &L1Options::default()).unwrap();
        let two = fit_l1_logistic(x.view(), &y, 3, l2, &L1Options::default()).unwrap();
        assert_eq!(n_selected(&two), 2);
        assert!(two.coef.column(3).iter().any(|&v| v != 0.0) && two.coef.column(7).iter().any(|&v| v != 0.0));
        assert!(matches!(
            lambda_for_selection(x.view(), &y, 3, 13, &L1Options::default()),
            Err(Error::Config { field: "l1-select", .. })
        ));
        // Deterministic.
        assert_eq!(
            fit,
            fit_l1_logistic(x.view(), &y, 3, 0.2 * lmax, &L1Options::default()).unwrap()
        );
    }

    #[test]
    fn optimality_conditions_hold() {
        let (x, y) = data(200, 8, 2);
        let lambda = 0.05;
        let fit = fit_l1_logistic(x.view(), &y, 3, lambda, &L1Options::default()).unwrap();
        let mut s = Smooth {
            x: x.view(),
            y: &y,
            buf: Array2::zeros((200, 3)),
        };
        let (mut gw, mut gb) = (Array2::zeros((3, 8)), Array1::zeros(3));
        s.loss(&fit.coef, &fit.intercept, Some((&mut gw, &mut gb)));
        assert!(gb.iter().all(|g: &f64| g.abs() < 1e-4), "{gb}");
        for ((c, j), &w) in fit.coef.indexed_iter() {
            let g: f64 = gw[[c, j]];
            if w != 0.0 {
                assert!((g + lambda * w.signum()).abs() < 1e-4, "{c},{j}: {g}");
            } else {
                assert!(g.abs() <= lambda + 1e-4, "{c},{j}: {g}");
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (x, y) = data(20, 8, 3);
        let o = L1Options::default();
        assert!(matches!(
            fit_l1_logistic(x.view(), &y[1..], 3, 0.1, &o),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            fit_l1_logistic(x.view(), &y, 1, 0.1, &o),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            fit_l1_logistic(x.view(), &y, 2, 0.1, &o),
            Err(Error::Config { field: "labels", .. })
        ));
        assert!(matches!(
            fit_l1_logistic(x.view(), &y, 3, -1.0, &o),
            Err(Error::Config { .. })
        ));
        let mut nan = x.clone();
        nan[[0, 0]] = f64::NAN;
        assert!(matches!(
            fit_l1_logistic(nan.view(), &y, 3, 0.1, &o),
            Err(Error::Config { .. })
        ));
        let bad = L1Options { tol: 0.0, ..o };
        assert!(matches!(
            fit_l1_logistic(x.view(), &y, 3, 0.1, &bad),
            Err(Error::Config { .. })
        ));
    }
}
