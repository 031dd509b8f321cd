//! The SVM head: libsvm's C-SVC with an RBF kernel and probability outputs, i.e. scikit-learn's
//! `SVC(C, kernel="rbf", gamma="scale", probability=True)`, the EmoLIME paper's classifier.
//!
//! One binary SVM per pair of classes, each solved by SMO with libsvm's second-order working-set
//! selection (WSS2, Fan, Chen and Lin 2005) to the same stopping tolerance; Platt sigmoids fitted
//! by libsvm's `sigmoid_train` (Newton with backtracking, smoothed targets) on decision values of
//! an internal 5-fold cross-validation; pairwise probabilities coupled by libsvm's
//! `multiclass_probability` (Wu, Lin and Weng 2004, method 2).
//!
//! Deviations from libsvm, none of which changes the optimum beyond the solver tolerance:
//! the kernel matrix of the whole training set is precomputed in `f64` (libsvm caches rows in
//! `f32`), there is no shrinking, the fold split is a seeded splitmix64 shuffle (libsvm uses C's
//! `rand()`, scikit-learn seeds it from `random_state`, so folds and hence the Platt parameters
//! differ slightly), and the coupled probabilities are renormalised to sum to exactly 1.

use super::HeadConfig;
use crate::rng::SplitMix64;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// The most training rows the SVM accepts: its kernel matrix holds `N^2` doubles (3.2 GB here).
pub(crate) const MAX_SVM_ROWS: usize = 20_000;
/// libsvm's `TAU`: the floor of a non-positive curvature.
const TAU: f64 = 1e-12;
/// Folds of the internal cross-validation for the Platt fit (libsvm's `nr_fold`).
const PLATT_FOLDS: usize = 5;
/// libsvm's clamp of pairwise probabilities (`min_prob`).
const MIN_PROB: f64 = 1e-7;

/// A fitted one-vs-one RBF SVM on standardised features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Svm {
    n_features: usize,
    n_classes: usize,
    /// The RBF width: `K(a, b) = exp(-gamma |a - b|^2)`.
    gamma: f64,
    /// Support vectors (standardised) of all pairs, row-major. // [S, D]
    support: Vec<f64>,
    /// One model per class pair, in the order (0,1), (0,2), ..., (1,2), ... as libsvm.
    pairs: Vec<PairModel>,
}

/// The binary SVM and Platt sigmoid of one class pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PairModel {
    /// The classes: a positive decision value votes for the first.
    classes: [usize; 2],
    /// Rows of [`Svm::support`] used by this pair.
    sv: Vec<usize>,
    /// `y_i alpha_i` per support vector.
    coef: Vec<f64>,
    /// The offset: `f(x) = sum coef K(sv, x) - rho`.
    rho: f64,
    /// Platt slope: `P(first | x) = 1 / (1 + exp(prob_a f(x) + prob_b))`.
    prob_a: f64,
    /// Platt offset.
    prob_b: f64,
}

/// One pair's model as [`Svm::parts`] lends it to the device twin.
pub(crate) struct SvmPair<'a> {
    /// Rows of the support-vector matrix. // [s]
    pub sv: &'a [usize],
    /// `y_i alpha_i`. // [s]
    pub coef: &'a [f64],
    /// Offset of the decision value.
    pub rho: f64,
    /// Platt slope.
    pub prob_a: f64,
    /// Platt offset.
    pub prob_b: f64,
}

/// scikit-learn's `gamma="scale"`: `1 / (D Var(X))` over all entries, 1 if the variance is 0.
fn gamma_scale(x: ArrayView2<f64>) -> f64 {
    let count = x.len() as f64;
    let mean = x.sum() / count;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count;
    if var > 0.0 { 1.0 / (x.ncols() as f64 * var) } else { 1.0 }
}

/// The RBF kernel matrix of the rows of `x`, via libsvm's `|a|^2 + |b|^2 - 2 a.b`.
///
/// # Shapes
/// `x` [N, D] -> [N, N]
fn rbf_gram(x: ArrayView2<f64>, gamma: f64) -> Array2<f64> {
    let sq: Vec<f64> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut k = x.dot(&x.t());
    for ((i, j), v) in k.indexed_iter_mut() {
        *v = if i == j {
            1.0
        } else {
            (-gamma * (sq[i] + sq[j] - 2.0 * *v)).exp()
        };
    }
    k
}

/// A solved binary problem: the dual variables and the offset.
struct Solution {
    alpha: Vec<f64>,
    rho: f64,
}

/// libsvm's `Solver::Solve` for C-SVC (no shrinking): minimises `a'Qa/2 - e'a` subject to
/// `y'a = 0`, `0 <= a <= c`, with `Q_ij = y_i y_j K(idx_i, idx_j)`, until the maximal violating
/// pair violates by less than `tol`.
///
/// # Shapes
/// `kmat` [N, N], `idx` [L] rows of `kmat`, `y` [L] of +1 / -1.
fn solve(kmat: &Array2<f64>, idx: &[usize], y: &[f64], c: f64, tol: f64) -> Solution {
    let l = idx.len();
    let mut alpha = vec![0.0; l];
    let mut g = vec![-1.0; l];
    let max_iter = (100 * l).max(10_000_000);
    for _ in 0..max_iter {
        // Working set selection 2: i maximises the violation, j the second-order gain.
        let mut gmax = f64::NEG_INFINITY;
        let mut sel_i = None;
        for t in 0..l {
            let v = if y[t] > 0.0 {
                if alpha[t] < c { -g[t] } else { continue }
            } else if alpha[t] > 0.0 {
                g[t]
            } else {
                continue;
            };
            if v >= gmax {
                gmax = v;
                sel_i = Some(t);
            }
        }
        let Some(i) = sel_i else { break };
        let ki = kmat.row(idx[i]);
        let kii = ki[idx[i]];
        let mut gmax2 = f64::NEG_INFINITY;
        let mut sel_j = None;
        let mut obj_min = f64::INFINITY;
        for j in 0..l {
            let (violation, movable) = if y[j] > 0.0 {
                (g[j], alpha[j] > 0.0)
            } else {
                (-g[j], alpha[j] < c)
            };
            if !movable {
                continue;
            }
            gmax2 = gmax2.max(violation);
            let grad_diff = gmax + violation;
            if grad_diff > 0.0 {
                let kj = idx[j];
                let quad = kii + kmat[[kj, kj]] - 2.0 * ki[kj];
                let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                if obj <= obj_min {
                    obj_min = obj;
                    sel_j = Some(j);
                }
            }
        }
        let Some(j) = sel_j else { break };
        if gmax + gmax2 < tol {
            break;
        }
        // Analytic update of the pair, clipped to the box.
        let kj = kmat.row(idx[j]);
        let quad = {
            let q = kii + kj[idx[j]] - 2.0 * ki[idx[j]];
            if q > 0.0 { q } else { TAU }
        };
        let (old_i, old_j) = (alpha[i], alpha[j]);
        if y[i] != y[j] {
            let delta = (-g[i] - g[j]) / quad;
            let diff = alpha[i] - alpha[j];
            alpha[i] += delta;
            alpha[j] += delta;
            if diff > 0.0 {
                if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = diff;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = -diff;
            }
            if diff > 0.0 {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = c - diff;
                }
            } else if alpha[j] > c {
                alpha[j] = c;
                alpha[i] = c + diff;
            }
        } else {
            let delta = (g[i] - g[j]) / quad;
            let sum = alpha[i] + alpha[j];
            alpha[i] -= delta;
            alpha[j] += delta;
            if sum > c {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = sum - c;
                }
            } else if alpha[j] < 0.0 {
                alpha[j] = 0.0;
                alpha[i] = sum;
            }
            if sum > c {
                if alpha[j] > c {
                    alpha[j] = c;
                    alpha[i] = sum - c;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = sum;
            }
        }
        let di = y[i] * (alpha[i] - old_i);
        let dj = y[j] * (alpha[j] - old_j);
        for ((gt, &yt), &rt) in g.iter_mut().zip(y).zip(idx) {
            *gt += yt * (ki[rt] * di + kj[rt] * dj);
        }
    }
    // libsvm's calculate_rho: the mean of y_i G_i over free variables, else the middle of the
    // feasible interval.
    let (mut ub, mut lb, mut sum_free, mut n_free) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for t in 0..l {
        let yg = y[t] * g[t];
        let at_upper = alpha[t] >= c;
        let at_lower = alpha[t] <= 0.0;
        if at_upper {
            if y[t] < 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else if at_lower {
            if y[t] > 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else {
            n_free += 1;
            sum_free += yg;
        }
    }
    let rho = if n_free > 0 {
        sum_free / n_free as f64
    } else {
        (ub + lb) / 2.0
    };
    Solution { alpha, rho }
}

/// Decision values of the pair subproblem (`idx`, `y`) by `PLATT_FOLDS`-fold cross-validation, as
/// libsvm's `svm_binary_svc_probability` (a fold whose training part has one class only gets
/// decision +1 or -1).
fn cv_decisions(kmat: &Array2<f64>, idx: &[usize], y: &[f64], c: f64, tol: f64, rng: &mut SplitMix64) -> Vec<f64> {
    let l = idx.len();
    let mut perm: Vec<usize> = (0..l).collect();
    rng.shuffle(&mut perm);
    let mut dec = vec![0.0; l];
    let mut sub_idx = Vec::with_capacity(l);
    let mut sub_y = Vec::with_capacity(l);
    for fold in 0..PLATT_FOLDS {
        let (begin, end) = (fold * l / PLATT_FOLDS, (fold + 1) * l / PLATT_FOLDS);
        sub_idx.clear();
        sub_y.clear();
        for &t in perm[..begin].iter().chain(&perm[end..]) {
            sub_idx.push(idx[t]);
            sub_y.push(y[t]);
        }
        let n_pos = sub_y.iter().filter(|&&v| v > 0.0).count();
        let n_neg = sub_y.len() - n_pos;
        let constant = match (n_pos, n_neg) {
            (0, 0) => Some(0.0),
            (_, 0) => Some(1.0),
            (0, _) => Some(-1.0),
            _ => None,
        };
        if let Some(v) = constant {
            perm[begin..end].iter().for_each(|&t| dec[t] = v);
            continue;
        }
        let sol = solve(kmat, &sub_idx, &sub_y, c, tol);
        for &t in &perm[begin..end] {
            let kt = kmat.row(idx[t]);
            let mut f = -sol.rho;
            for ((&a, &ys), &r) in sol.alpha.iter().zip(&sub_y).zip(&sub_idx) {
                if a > 0.0 {
                    f += ys * a * kt[r];
                }
            }
            dec[t] = f;
        }
    }
    dec
}

/// libsvm's `sigmoid_train`: Platt's `P(y=+1 | f) = 1 / (1 + exp(A f + B))` fitted by Newton's
/// method with backtracking on targets smoothed to `(N+ + 1) / (N+ + 2)` and `1 / (N- + 2)`.
/// Returns `(A, B)`.
fn sigmoid_train(dec: &[f64], y: &[f64]) -> (f64, f64) {
    let prior1 = y.iter().filter(|&&v| v > 0.0).count() as f64;
    let prior0 = y.len() as f64 - prior1;
    const MAX_ITER: usize = 100;
    const MIN_STEP: f64 = 1e-10;
    const SIGMA: f64 = 1e-12;
    const EPS: f64 = 1e-5;
    let hi = (prior1 + 1.0) / (prior1 + 2.0);
    let lo = 1.0 / (prior0 + 2.0);
    let target = |yv: f64| if yv > 0.0 { hi } else { lo };
    let objective = |a: f64, b: f64| -> f64 {
        dec.iter()
            .zip(y)
            .map(|(&f, &yv)| {
                let t = target(yv);
                let z = f * a + b;
                if z >= 0.0 {
                    t * z + (-z).exp().ln_1p()
                } else {
                    (t - 1.0) * z + z.exp().ln_1p()
                }
            })
            .sum()
    };
    let (mut a, mut b) = (0.0, ((prior0 + 1.0) / (prior1 + 1.0)).ln());
    let mut fval = objective(a, b);
    for _ in 0..MAX_ITER {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
        for (&f, &yv) in dec.iter().zip(y) {
            let z = f * a + b;
            let (p, q) = if z >= 0.0 {
                let e = (-z).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = z.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += f * f * d2;
            h22 += d2;
            h21 += f * d2;
            let d1 = target(yv) - p;
            g1 += f * d1;
            g2 += d1;
        }
        if g1.abs() < EPS && g2.abs() < EPS {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= MIN_STEP {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = objective(na, nb);
            if nf < fval + 1e-4 * step * gd {
                (a, b, fval) = (na, nb, nf);
                break;
            }
            step /= 2.0;
        }
        if step < MIN_STEP {
            break; // line search failed: keep the last point, as libsvm
        }
    }
    (a, b)
}

/// libsvm's `sigmoid_predict`, computed without overflow.
fn sigmoid_predict(f: f64, a: f64, b: f64) -> f64 {
    let z = f * a + b;
    if z >= 0.0 {
        let e = (-z).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + z.exp())
    }
}

/// Buffers of [`multiclass_probability`], allocated once per batch of rows.
struct Coupling {
    k: usize,
    q: Vec<f64>,
    qp: Vec<f64>,
}

impl Coupling {
    fn new(k: usize) -> Self {
        Coupling {
            k,
            q: vec![0.0; k * k],
            qp: vec![0.0; k],
        }
    }

    /// libsvm's `multiclass_probability`: class probabilities `p` [K] from the pairwise
    /// `r[i*K + j] = P(i | i or j)` [K*K] (Wu, Lin and Weng 2004, method 2), renormalised.
    fn solve(&mut self, r: &[f64], p: &mut [f64]) {
        let k = self.k;
        let q = &mut self.q;
        let qp = &mut self.qp;
        for t in 0..k {
            p[t] = 1.0 / k as f64;
            q[t * k + t] = 0.0;
            for j in 0..t {
                q[t * k + t] += r[j * k + t] * r[j * k + t];
                q[t * k + j] = q[j * k + t];
            }
            for j in t + 1..k {
                q[t * k + t] += r[j * k + t] * r[j * k + t];
                q[t * k + j] = -r[j * k + t] * r[t * k + j];
            }
        }
        let max_iter = k.max(100);
        let eps = 0.005 / k as f64;
        for _ in 0..max_iter {
            let mut pqp = 0.0;
            for t in 0..k {
                qp[t] = (0..k).map(|j| q[t * k + j] * p[j]).sum();
                pqp += p[t] * qp[t];
            }
            let max_error = (0..k).map(|t| (qp[t] - pqp).abs()).fold(0.0, f64::max);
            if max_error < eps {
                break;
            }
            for t in 0..k {
                let qtt = q[t * k + t];
                let diff = (-qp[t] + pqp) / qtt;
                p[t] += diff;
                pqp = (pqp + diff * (diff * qtt + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
                for j in 0..k {
                    qp[j] = (qp[j] + diff * q[t * k + j]) / (1.0 + diff);
                    p[j] /= 1.0 + diff;
                }
            }
        }
        let sum: f64 = p.iter().sum();
        p.iter_mut().for_each(|v| *v /= sum);
    }
}

impl Svm {
    /// Fits on standardised `x` [N, D] with labels `y` [N] in `0..k`, every class present;
    /// inputs already checked (including `N <= MAX_SVM_ROWS`).
    pub(crate) fn fit(x: ArrayView2<f64>, y: &[usize], k: usize, cfg: &HeadConfig) -> Self {
        let (n, d) = x.dim();
        let gamma = gamma_scale(x);
        let kmat = rbf_gram(x, gamma);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &c) in y.iter().enumerate() {
            members[c].push(i);
        }
        let mut support_of_row = vec![usize::MAX; n];
        let mut support_rows: Vec<usize> = Vec::new();
        let mut pairs = Vec::with_capacity(k * (k - 1) / 2);
        for a in 0..k {
            for b in a + 1..k {
                let idx: Vec<usize> = members[a].iter().chain(&members[b]).copied().collect();
                let sign: Vec<f64> = members[a]
                    .iter()
                    .map(|_| 1.0)
                    .chain(members[b].iter().map(|_| -1.0))
                    .collect();
                let mut rng = SplitMix64::derive(cfg.seed, pairs.len() as u64);
                let dec = cv_decisions(&kmat, &idx, &sign, cfg.c, cfg.tol, &mut rng);
                let (prob_a, prob_b) = sigmoid_train(&dec, &sign);
                let sol = solve(&kmat, &idx, &sign, cfg.c, cfg.tol);
                let mut sv = Vec::new();
                let mut coef = Vec::new();
                for ((&al, &s), &row) in sol.alpha.iter().zip(&sign).zip(&idx) {
                    if al > 0.0 {
                        if support_of_row[row] == usize::MAX {
                            support_of_row[row] = support_rows.len();
                            support_rows.push(row);
                        }
                        sv.push(support_of_row[row]);
                        coef.push(s * al);
                    }
                }
                pairs.push(PairModel {
                    classes: [a, b],
                    sv,
                    coef,
                    rho: sol.rho,
                    prob_a,
                    prob_b,
                });
            }
        }
        let mut support = Vec::with_capacity(support_rows.len() * d);
        for &r in &support_rows {
            support.extend(x.row(r).iter());
        }
        Svm {
            n_features: d,
            n_classes: k,
            gamma,
            support,
            pairs,
        }
    }

    /// Calls `each(row, decision values [P])` for every row of `x`, with the kernel values to
    /// the support vectors computed once per row.
    fn for_each_decision(&self, x: ArrayView2<f64>, mut each: impl FnMut(usize, &[f64])) {
        let d = self.n_features;
        let s = self.support.len() / d.max(1);
        let mut kv = vec![0.0; s];
        let mut dec = vec![0.0; self.pairs.len()];
        for (r, row) in x.rows().into_iter().enumerate() {
            for (kvt, sv) in kv.iter_mut().zip(self.support.chunks_exact(d)) {
                let dist: f64 = row.iter().zip(sv).map(|(a, b)| (a - b) * (a - b)).sum();
                *kvt = (-self.gamma * dist).exp();
            }
            for (dv, pair) in dec.iter_mut().zip(&self.pairs) {
                *dv = pair.coef.iter().zip(&pair.sv).map(|(&c, &t)| c * kv[t]).sum::<f64>() - pair.rho;
            }
            each(r, &dec);
        }
    }

    /// Pairwise decision values (positive: the pair's first class), libsvm's `decision_function`
    /// in one-vs-one form.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, K(K-1)/2]
    pub(crate) fn decision_values(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut out = Array2::zeros((x.nrows(), self.pairs.len()));
        self.for_each_decision(x, |r, dec| {
            out.row_mut(r).iter_mut().zip(dec).for_each(|(o, &v)| *o = v);
        });
        out
    }

    /// Class probabilities of standardised rows (libsvm's `svm_predict_probability`).
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C]
    pub(crate) fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut pairwise = Array2::zeros((x.nrows(), self.pairs.len()));
        self.for_each_decision(x, |row, dec| {
            for ((o, &f), pair) in pairwise.row_mut(row).iter_mut().zip(dec).zip(&self.pairs) {
                *o = sigmoid_predict(f, pair.prob_a, pair.prob_b);
            }
        });
        self.couple(pairwise.view())
    }

    /// Class probabilities from each pair's Platt probability of its first class (clamped to
    /// libsvm's `[1e-7, 1 - 1e-7]` here), coupled as libsvm's `multiclass_probability`.
    ///
    /// # Shapes
    /// `pairwise` [N, K(K-1)/2] -> [N, K]
    pub(crate) fn couple(&self, pairwise: ArrayView2<f64>) -> Array2<f64> {
        let k = self.n_classes;
        let mut out = Array2::zeros((pairwise.nrows(), k));
        let mut r = vec![0.0; k * k];
        let mut p = vec![0.0; k];
        let mut coupling = Coupling::new(k);
        for (prs, mut dst) in pairwise.rows().into_iter().zip(out.rows_mut()) {
            for (&pr, pair) in prs.iter().zip(&self.pairs) {
                let [a, b] = pair.classes;
                let pr = pr.clamp(MIN_PROB, 1.0 - MIN_PROB);
                r[a * k + b] = pr;
                r[b * k + a] = 1.0 - pr;
            }
            if k == 2 {
                p[0] = r[1];
                p[1] = r[2];
            } else {
                coupling.solve(&r, &mut p);
            }
            dst.iter_mut().zip(&p).for_each(|(o, &v)| *o = v);
        }
        out
    }

    /// What the device twin needs: `gamma`, the support vectors [S, D] (row-major), and per
    /// pair its classes, `(support row, y alpha)` terms, `rho`, and Platt's `A` and `B`.
    pub(crate) fn parts(&self) -> (f64, &[f64], Vec<SvmPair<'_>>) {
        let pairs = self
            .pairs
            .iter()
            .map(|p| SvmPair {
                sv: &p.sv,
                coef: &p.coef,
                rho: p.rho,
                prob_a: p.prob_a,
                prob_b: p.prob_b,
            })
            .collect();
        (self.gamma, &self.support, pairs)
    }

    /// The number of features `D`.
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// The number of support vectors (distinct training rows).
    pub(crate) fn n_support(&self) -> usize {
        self.support.len() / self.n_features.max(1)
    }

    /// Checks a loaded head for `d` features and `k` classes.
    pub(crate) fn check(&self, d: usize, k: usize) -> std::result::Result<(), String> {
        if self.n_features != d || self.n_classes != k {
            return Err(format!(
                "svm head is for {} features and {} classes, the file names {d} and {k}",
                self.n_features, self.n_classes
            ));
        }
        if !(self.gamma > 0.0 && self.gamma.is_finite()) {
            return Err(format!("svm gamma must be > 0, got {}", self.gamma));
        }
        if d == 0 || !self.support.len().is_multiple_of(d) {
            return Err(format!(
                "svm support holds {} values, not a multiple of {d}",
                self.support.len()
            ));
        }
        let s = self.support.len() / d;
        if self.pairs.len() != k * (k - 1) / 2 {
            return Err(format!(
                "svm has {} pair models, expected {}",
                self.pairs.len(),
                k * (k - 1) / 2
            ));
        }
        let expected = (0..k).flat_map(|a| (a + 1..k).map(move |b| [a, b]));
        for (pair, want) in self.pairs.iter().zip(expected) {
            if pair.classes != want {
                return Err(format!("svm pair {:?} out of order, expected {want:?}", pair.classes));
            }
            if pair.sv.len() != pair.coef.len() || pair.sv.iter().any(|&t| t >= s) {
                return Err(format!("svm pair {want:?} has bad support indices"));
            }
            let values = [pair.rho, pair.prob_a, pair.prob_b];
            if pair.coef.iter().chain(&values).any(|v| !v.is_finite()) {
                return Err(format!("svm pair {want:?} has a non-finite value"));
            }
        }
        if self.support.iter().any(|v| !v.is_finite()) {
            return Err("svm has a non-finite support vector".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The dual objective `a'Qa/2 - sum a` and the KKT violation of a solution.
    fn kkt(kmat: &Array2<f64>, idx: &[usize], y: &[f64], c: f64, sol: &Solution) -> f64 {
        let l = idx.len();
        let mut worst: f64 = 0.0;
        for t in 0..l {
            let f: f64 = (0..l)
                .map(|s| y[s] * sol.alpha[s] * kmat[[idx[s], idx[t]]])
                .sum::<f64>()
                - sol.rho;
            let margin = y[t] * f;
            let a = sol.alpha[t];
            let v = if a <= 0.0 {
                (1.0 - margin).max(0.0)
            } else if a >= c {
                (margin - 1.0).max(0.0)
            } else {
                (margin - 1.0).abs()
            };
            worst = worst.max(v);
        }
        let sum: f64 = sol.alpha.iter().zip(y).map(|(a, y)| a * y).sum();
        assert!(sum.abs() < 1e-9, "y'a = {sum}");
        assert!(sol.alpha.iter().all(|&a| (0.0..=c).contains(&a)));
        worst
    }

    #[test]
    fn smo_meets_kkt_conditions() {
        let mut rng = SplitMix64::new(4);
        let n = 80;
        let x = Array2::from_shape_fn((n, 3), |(i, _)| rng.normal() + if i < 40 { 0.8 } else { -0.8 });
        let y: Vec<f64> = (0..n).map(|i| if i < 40 { 1.0 } else { -1.0 }).collect();
        let kmat = rbf_gram(x.view(), gamma_scale(x.view()));
        let idx: Vec<usize> = (0..n).collect();
        for c in [0.1, 1.0, 10.0] {
            let sol = solve(&kmat, &idx, &y, c, 1e-3);
            assert!(kkt(&kmat, &idx, &y, c, &sol) < 2e-3, "c = {c}");
        }
    }

    #[test]
    fn symmetric_two_point_problem() {
        let x = array![[1.0], [-1.0]];
        let kmat = rbf_gram(x.view(), 0.5);
        let sol = solve(&kmat, &[0, 1], &[1.0, -1.0], 1.0, 1e-3);
        assert!(sol.rho.abs() < 1e-12);
        assert!((sol.alpha[0] - sol.alpha[1]).abs() < 1e-12);
        // Hard margin: f(x0) = a (1 - e^{-2}) = 1.
        let e = (-2.0f64).exp();
        assert!((sol.alpha[0] - 1.0 / (1.0 - e)).abs() < 1e-9 || sol.alpha[0] == 1.0);
    }

    #[test]
    fn coupling_recovers_consistent_probabilities() {
        let truth = [0.5, 0.3, 0.15, 0.05];
        let k = 4;
        let mut r = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                if i != j {
                    r[i * k + j] = truth[i] / (truth[i] + truth[j]);
                }
            }
        }
        let mut p = vec![0.0; k];
        Coupling::new(k).solve(&r, &mut p);
        for (a, b) in p.iter().zip(truth) {
            assert!((a - b).abs() < 1e-3, "{p:?}");
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn platt_on_separable_values_has_negative_slope() {
        let dec = [-2.0, -1.5, -1.0, -0.2, 0.3, 1.0, 1.4, 2.2];
        let y = [-1.0, -1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0];
        let (a, b) = sigmoid_train(&dec, &y);
        assert!(a < 0.0 && b.is_finite());
        assert!(sigmoid_predict(2.0, a, b) > 0.8 && sigmoid_predict(-2.0, a, b) < 0.2);
    }

    #[test]
    fn two_class_probability_is_monotone_in_the_decision_value() {
        let mut rng = SplitMix64::new(8);
        let n = 120;
        let x = Array2::from_shape_fn((n, 2), |(i, _)| rng.normal() + if i % 2 == 0 { 1.0 } else { -1.0 });
        let y: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let svm = Svm::fit(x.view(), &y, 2, &HeadConfig::default());
        let grid = Array2::from_shape_fn((101, 2), |(i, _)| -3.0 + 0.06 * i as f64);
        let dec = svm.decision_values(grid.view());
        let prob = svm.predict_proba(grid.view());
        let mut order: Vec<usize> = (0..101).collect();
        order.sort_by(|&a, &b| dec[[a, 0]].total_cmp(&dec[[b, 0]]));
        for w in order.windows(2) {
            assert!(prob[[w[1], 0]] >= prob[[w[0], 0]]);
        }
        for row in prob.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-12);
        }
        assert!(svm.n_support() > 0 && svm.check(2, 2).is_ok());
        // RBF decision values decay away from the data, so test the extremes along the grid.
        assert!(prob[[order[100], 0]] > 0.9 && prob[[order[0], 0]] < 0.1);
    }
}
