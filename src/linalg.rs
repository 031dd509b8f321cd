//! Dense symmetric positive definite solves in f64 (Cholesky), shared by the mel filterbank's
//! pseudo-inverse and the ridge probes.

use crate::error::{Error, Result, check_shape};
use ndarray::{Array2, ArrayView2};

/// Solves `A X = B` for symmetric positive definite `A` by Cholesky; `what` names the system in
/// the error a matrix that is not positive definite gives.
///
/// # Shapes
/// `a` [n, n], `b` [n, m] -> [n, m]
pub fn spd_solve(a: ArrayView2<f64>, b: ArrayView2<f64>, what: &'static str) -> Result<Array2<f64>> {
    let n = a.nrows();
    check_shape("spd matrix", &[n, n], a.shape())?;
    check_shape("right-hand sides", &[n, b.ncols()], b.shape())?;
    // Lower factor, row-major.
    let mut l = vec![0.0f64; n * n];
    for j in 0..n {
        let d = a[[j, j]] - (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum::<f64>();
        if d.is_nan() || d <= 0.0 {
            return Err(Error::config(what, "the system is not positive definite"));
        }
        let djj = d.sqrt();
        l[j * n + j] = djj;
        for i in j + 1..n {
            let s = a[[i, j]] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            l[i * n + j] = s / djj;
        }
    }
    let mut x = b.to_owned();
    for mut col in x.columns_mut() {
        for i in 0..n {
            let s = col[i] - (0..i).map(|k| l[i * n + k] * col[k]).sum::<f64>();
            col[i] = s / l[i * n + i];
        }
        for i in (0..n).rev() {
            let s = col[i] - (i + 1..n).map(|k| l[k * n + i] * col[k]).sum::<f64>();
            col[i] = s / l[i * n + i];
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_refuses_indefinite_systems() {
        let m = Array2::from_shape_fn((6, 6), |(i, j)| ((i * 7 + j * 3) % 5) as f64 - 2.0);
        let a = m.dot(&m.t()) + Array2::<f64>::eye(6);
        let b = Array2::from_shape_fn((6, 2), |(i, j)| (i + j) as f64);
        let x = spd_solve(a.view(), b.view(), "test").unwrap();
        let err = (&a.dot(&x) - &b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-9, "{err}");
        let bad = -Array2::<f64>::eye(3);
        assert!(spd_solve(bad.view(), Array2::zeros((3, 1)).view(), "test").is_err());
    }
}
