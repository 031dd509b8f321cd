//! The MLP head: one hidden ReLU layer and a softmax output, trained with Adam on shuffled
//! mini-batches for a fixed number of epochs (scikit-learn's `MLPClassifier` recipe: Glorot-uniform
//! initialisation, L2 penalty `alpha`, Adam with beta1 0.9, beta2 0.999, eps 1e-8).

use super::{HeadConfig, softmax_rows};
use crate::rng::SplitMix64;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Dimension, Zip, s};
use serde::{Deserialize, Serialize};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;
/// Seed sub-stream of the weight initialisation.
const STREAM_INIT: u64 = 1;
/// Seed sub-stream of the epoch shuffles.
const STREAM_SHUFFLE: u64 = 2;

/// A fitted one-hidden-layer perceptron on standardised features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Mlp {
    n_features: usize,
    hidden: usize,
    n_classes: usize,
    /// Input weights, row-major. // [D, H]
    w1: Vec<f64>,
    /// Hidden biases. // [H]
    b1: Vec<f64>,
    /// Output weights, row-major. // [H, C]
    w2: Vec<f64>,
    /// Output biases. // [C]
    b2: Vec<f64>,
    /// Mean training loss (cross-entropy plus penalty) over the last epoch's batches; 0 when
    /// not trained (0 epochs: the random-weights control).
    final_loss: f64,
}

/// Adam's moment estimates for one parameter array.
struct Moments<D: Dimension> {
    m: ndarray::Array<f64, D>,
    v: ndarray::Array<f64, D>,
}

impl<D: Dimension> Moments<D> {
    fn new(like: &ndarray::Array<f64, D>) -> Self {
        Moments {
            m: ndarray::Array::zeros(like.raw_dim()),
            v: ndarray::Array::zeros(like.raw_dim()),
        }
    }

    /// One Adam step of `p` along gradient `g` with bias-corrected step size `lr_t`.
    fn step(&mut self, p: &mut ndarray::Array<f64, D>, g: &ndarray::Array<f64, D>, lr_t: f64) {
        Zip::from(p)
            .and(g)
            .and(&mut self.m)
            .and(&mut self.v)
            .for_each(|p, &g, m, v| {
                *m = BETA1 * *m + (1.0 - BETA1) * g;
                *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                *p -= lr_t * *m / (v.sqrt() + ADAM_EPS);
            });
    }
}

/// Adds `b` to every row of `a`.
fn add_row(a: &mut ndarray::ArrayViewMut2<f64>, b: ArrayView1<f64>) {
    for mut row in a.rows_mut() {
        row += &b;
    }
}

/// Sums the rows of `a` into `out`.
fn sum_rows(a: ArrayView2<f64>, out: &mut Array1<f64>) {
    out.fill(0.0);
    for row in a.rows() {
        *out += &row;
    }
}

impl Mlp {
    /// Fits on standardised `x` [N, D] with labels `y` [N] in `0..k`; inputs already checked.
    pub(crate) fn fit(x: ArrayView2<f64>, y: &[usize], k: usize, cfg: &HeadConfig) -> Self {
        let (n, d) = x.dim();
        let h = cfg.hidden;
        let mut rng = SplitMix64::derive(cfg.seed, STREAM_INIT);
        let bound1 = (6.0 / (d + h) as f64).sqrt();
        let mut w1 = Array2::from_shape_fn((d, h), |_| rng.range(-bound1, bound1));
        let mut b1 = Array1::from_shape_fn(h, |_| rng.range(-bound1, bound1));
        let bound2 = (6.0 / (h + k) as f64).sqrt();
        let mut w2 = Array2::from_shape_fn((h, k), |_| rng.range(-bound2, bound2));
        let mut b2 = Array1::from_shape_fn(k, |_| rng.range(-bound2, bound2));
        let (mut mw1, mut mb1, mut mw2, mut mb2) = (
            Moments::new(&w1),
            Moments::new(&b1),
            Moments::new(&w2),
            Moments::new(&b2),
        );

        let bs = cfg.batch_size.min(n);
        let mut xb = Array2::<f64>::zeros((bs, d));
        let mut hid = Array2::<f64>::zeros((bs, h));
        let mut out = Array2::<f64>::zeros((bs, k));
        let mut dh = Array2::<f64>::zeros((bs, h));
        let (mut gw1, mut gb1) = (Array2::<f64>::zeros((d, h)), Array1::<f64>::zeros(h));
        let (mut gw2, mut gb2) = (Array2::<f64>::zeros((h, k)), Array1::<f64>::zeros(k));

        let mut order: Vec<usize> = (0..n).collect();
        let mut shuffle = SplitMix64::derive(cfg.seed, STREAM_SHUFFLE);
        let mut t = 0i32;
        let mut final_loss = 0.0;
        for _ in 0..cfg.epochs {
            shuffle.shuffle(&mut order);
            let mut epoch_loss = 0.0;
            for batch in order.chunks(bs) {
                let m = batch.len();
                let mf = m as f64;
                for (r, &i) in batch.iter().enumerate() {
                    xb.row_mut(r).assign(&x.row(i));
                }
                let xv = xb.slice(s![..m, ..]);
                // Forward.
                let mut hv = hid.slice_mut(s![..m, ..]);
                general_mat_mul(1.0, &xv, &w1, 0.0, &mut hv);
                add_row(&mut hv, b1.view());
                hv.mapv_inplace(|v| v.max(0.0));
                let hv = hid.slice(s![..m, ..]);
                let mut ov = out.slice_mut(s![..m, ..]);
                general_mat_mul(1.0, &hv, &w2, 0.0, &mut ov);
                add_row(&mut ov, b2.view());
                // Softmax, loss, and the output delta (P - Y) / m.
                let mut loss = 0.0;
                for (mut row, &i) in ov.rows_mut().into_iter().zip(batch) {
                    let max = row.fold(f64::NEG_INFINITY, |a, &z| a.max(z));
                    let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
                    let lse = max + sum.ln();
                    loss += lse - row[y[i]];
                    row.mapv_inplace(|z| (z - lse).exp() / mf);
                    row[y[i]] -= 1.0 / mf;
                }
                let w_sq: f64 = w1.iter().chain(w2.iter()).map(|v| v * v).sum();
                epoch_loss += loss + 0.5 * cfg.alpha * w_sq;
                let ov = out.slice(s![..m, ..]);
                // Backward.
                general_mat_mul(1.0, &hv.t(), &ov, 0.0, &mut gw2);
                gw2.scaled_add(cfg.alpha / mf, &w2);
                sum_rows(ov, &mut gb2);
                let mut dhv = dh.slice_mut(s![..m, ..]);
                general_mat_mul(1.0, &ov, &w2.t(), 0.0, &mut dhv);
                Zip::from(&mut dhv).and(&hv).for_each(|g, &a| {
                    if a <= 0.0 {
                        *g = 0.0;
                    }
                });
                let dhv = dh.slice(s![..m, ..]);
                general_mat_mul(1.0, &xv.t(), &dhv, 0.0, &mut gw1);
                gw1.scaled_add(cfg.alpha / mf, &w1);
                sum_rows(dhv, &mut gb1);
                // Adam.
                t += 1;
                let lr_t = cfg.learning_rate * (1.0 - BETA2.powi(t)).sqrt() / (1.0 - BETA1.powi(t));
                mw1.step(&mut w1, &gw1, lr_t);
                mb1.step(&mut b1, &gb1, lr_t);
                mw2.step(&mut w2, &gw2, lr_t);
                mb2.step(&mut b2, &gb2, lr_t);
            }
            final_loss = epoch_loss / n as f64;
        }
        Mlp {
            n_features: d,
            hidden: h,
            n_classes: k,
            w1: w1.into_iter().collect(),
            b1: b1.to_vec(),
            w2: w2.into_iter().collect(),
            b2: b2.to_vec(),
            final_loss,
        }
    }

    /// Class probabilities of standardised rows.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C]
    pub(crate) fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let w1 = ArrayView2::from_shape((self.n_features, self.hidden), &self.w1).expect("checked at fit/load");
        let w2 = ArrayView2::from_shape((self.hidden, self.n_classes), &self.w2).expect("checked at fit/load");
        let mut hid = x.dot(&w1);
        add_row(&mut hid.view_mut(), ArrayView1::from(&self.b1));
        hid.mapv_inplace(|v| v.max(0.0));
        let mut out = hid.dot(&w2);
        add_row(&mut out.view_mut(), ArrayView1::from(&self.b2));
        softmax_rows(&mut out);
        out
    }

    /// `(w1 [D, H], b1 [H], w2 [H, C], b2 [C])` (row-major) and the hidden width `H`, for the
    /// device twin.
    pub(crate) fn weights(&self) -> ([&[f64]; 4], usize) {
        ([&self.w1, &self.b1, &self.w2, &self.b2], self.hidden)
    }

    /// Checks a loaded head for `d` features and `k` classes.
    pub(crate) fn check(&self, d: usize, k: usize) -> std::result::Result<(), String> {
        if self.n_features != d || self.n_classes != k {
            return Err(format!(
                "mlp head is for {} features and {} classes, the file names {d} and {k}",
                self.n_features, self.n_classes
            ));
        }
        let h = self.hidden;
        if h == 0 || self.w1.len() != d * h || self.b1.len() != h || self.w2.len() != h * k || self.b2.len() != k {
            return Err(format!("mlp head's weight sizes do not match D={d}, H={h}, C={k}"));
        }
        if self
            .w1
            .iter()
            .chain(&self.b1)
            .chain(&self.w2)
            .chain(&self.b2)
            .any(|v| !v.is_finite())
        {
            return Err("mlp head has a non-finite weight".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xor_like() -> (Array2<f64>, Vec<usize>) {
        let mut rng = SplitMix64::new(3);
        let n = 200;
        let x = Array2::from_shape_fn((n, 2), |_| rng.range(-1.0, 1.0));
        let y = x.rows().into_iter().map(|r| usize::from(r[0] * r[1] > 0.0)).collect();
        (x, y)
    }

    #[test]
    fn learns_a_nonlinear_boundary_deterministically() {
        let (x, y) = xor_like();
        let cfg = HeadConfig {
            epochs: 300,
            learning_rate: 1e-2,
            ..HeadConfig::default()
        };
        let a = Mlp::fit(x.view(), &y, 2, &cfg);
        let b = Mlp::fit(x.view(), &y, 2, &cfg);
        assert_eq!(a, b);
        let c = Mlp::fit(x.view(), &y, 2, &HeadConfig { seed: 9, ..cfg.clone() });
        assert_ne!(a.w1, c.w1);
        let p = a.predict_proba(x.view());
        let correct = p
            .rows()
            .into_iter()
            .zip(&y)
            .filter(|(r, t)| usize::from(r[1] > r[0]) == **t)
            .count();
        assert!(correct as f64 / 200.0 > 0.9, "train accuracy {correct}/200");
        assert!(a.final_loss.is_finite());
        // Partial last batch (200 rows in batches of 64).
        let d = Mlp::fit(
            x.view(),
            &y,
            2,
            &HeadConfig {
                batch_size: 64,
                epochs: 5,
                ..cfg
            },
        );
        assert!(d.check(2, 2).is_ok());
    }
}
