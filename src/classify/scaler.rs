//! Per-feature standardisation (scikit-learn's `StandardScaler`): the step in front of every head.

use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// Subtracts each feature's training mean and divides by its population standard deviation
/// (`ddof = 0`); a constant feature (variance zero up to rounding, scikit-learn's test) gets
/// scale 1, so it becomes all zeros rather than NaN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    /// Training mean per feature. // [D]
    mean: Vec<f64>,
    /// Divisor per feature (> 0). // [D]
    scale: Vec<f64>,
}

impl StandardScaler {
    /// Learns the mean and scale of every column of `x`.
    ///
    /// # Shapes
    /// `x` [N, D] with `N >= 1`, `D >= 1`; the values must be finite (not checked here).
    pub fn fit(x: ArrayView2<f64>) -> Result<Self> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(Error::shape("x", "[N>=1, D>=1]", format!("{:?}", x.shape())));
        }
        let nf = n as f64;
        let mut mean = vec![0.0; d];
        for row in x.rows() {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= nf);
        let mut var = vec![0.0; d];
        for row in x.rows() {
            for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let eps = f64::EPSILON;
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(&s, &m)| {
                let v = s / nf;
                // scikit-learn's `_is_constant_feature`: zero variance up to the rounding of the
                // mean and variance computations.
                let bound = nf * eps * v + (nf * m * eps).powi(2);
                if v <= bound { 1.0 } else { v.sqrt() }
            })
            .collect();
        Ok(StandardScaler { mean, scale })
    }

    /// Standardises `x` with the learnt statistics.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, D]
    pub fn transform(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let d = self.mean.len();
        if x.ncols() != d {
            return Err(Error::shape("x", format!("[N, {d}]"), format!("{:?}", x.shape())));
        }
        let mut out = x.to_owned();
        for mut row in out.rows_mut() {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        Ok(out)
    }

    /// The number of features `D`.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// The training mean per feature. // [D]
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The divisor per feature. // [D]
    pub fn scale(&self) -> &[f64] {
        &self.scale
    }

    /// Checks a loaded scaler for `d` features.
    pub(crate) fn check(&self, d: usize) -> std::result::Result<(), String> {
        if self.mean.len() != d || self.scale.len() != d {
            return Err(format!(
                "scaler has {} means and {} scales for {d} features",
                self.mean.len(),
                self.scale.len()
            ));
        }
        if self.mean.iter().any(|v| !v.is_finite()) || self.scale.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
            return Err("scaler has a non-finite mean or a non-positive scale".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn standardises_and_handles_constant_columns() {
        let x = array![[1.0, 5.0, 0.1], [3.0, 5.0, 0.2], [5.0, 5.0, 0.3]];
        let s = StandardScaler::fit(x.view()).unwrap();
        assert_eq!(s.mean()[1], 5.0);
        assert_eq!(s.scale()[1], 1.0);
        let z = s.transform(x.view()).unwrap();
        for j in [0, 2] {
            let col = z.column(j);
            let m = col.sum() / 3.0;
            let v = col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / 3.0;
            assert!(m.abs() < 1e-12 && (v - 1.0).abs() < 1e-12);
        }
        assert!(z.column(1).iter().all(|&v| v == 0.0));
        assert!(matches!(
            s.transform(array![[1.0, 2.0]].view()),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            StandardScaler::fit(Array2::<f64>::zeros((0, 3)).view()),
            Err(Error::Shape { .. })
        ));
    }
}
