//! The surrogate against independent references: scikit-learn's weighted Ridge written in f64
//! as an augmented system (intercept column unpenalised), and Shapley values by their definition.

// Dense linear algebra by row and column index reads clearest here.
#![allow(clippy::needless_range_loop)]

use crate::common::{Rng, fresh_seed, gpu};
use emolime::gpu::ops::fit_gpu;
use emolime::sampling::{KernelKind, MaskConfig, SampleCount, kernel_weights, sample_masks};
use emolime::surrogate::{SurrogateConfig, SurrogateFit, fit_cpu};
use ndarray::{Array2, Array3};

/// Solves `A x = y` by Gaussian elimination with partial pivoting (f64).
fn solve(mut a: Vec<Vec<f64>>, mut y: Vec<f64>) -> Vec<f64> {
    let n = y.len();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, piv);
        y.swap(col, piv);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= f * a[col][k];
            }
            y[row] -= f * y[col];
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[i][k] * x[k]).sum();
        x[i] = (y[i] - s) / a[i][i];
    }
    x
}

/// `Ridge(alpha, fit_intercept=True).fit(X, y, sample_weight=w)`, its `score` and the
/// prediction at row 0, as `lime`'s LimeBase uses them. Returns (coefs, intercept, r2, local).
fn sklearn_ridge(x: &Array2<f32>, y: &[f32], w: &[f32], alpha: f64) -> (Vec<f64>, f64, f64, f64) {
    let (n, b) = x.dim();
    // Unknowns [beta_0..beta_{B-1}, intercept]; normal equations of sum w (y - X beta - c)^2 + alpha |beta|^2.
    let mut a = vec![vec![0.0f64; b + 1]; b + 1];
    let mut r = vec![0.0f64; b + 1];
    for i in 0..n {
        let row: Vec<f64> = (0..b).map(|j| x[[i, j]] as f64).chain([1.0]).collect();
        for p in 0..=b {
            for q in 0..=b {
                a[p][q] += w[i] as f64 * row[p] * row[q];
            }
            r[p] += w[i] as f64 * row[p] * y[i] as f64;
        }
    }
    for (j, row) in a.iter_mut().enumerate().take(b) {
        row[j] += alpha;
    }
    let sol = solve(a, r);
    let (coefs, icpt) = (sol[..b].to_vec(), sol[b]);
    let pred = |i: usize| icpt + (0..b).map(|j| coefs[j] * x[[i, j]] as f64).sum::<f64>();
    let wsum: f64 = w.iter().map(|&v| v as f64).sum();
    let ybar = (0..n).map(|i| w[i] as f64 * y[i] as f64).sum::<f64>() / wsum;
    let ss_res: f64 = (0..n).map(|i| w[i] as f64 * (y[i] as f64 - pred(i)).powi(2)).sum();
    let ss_tot: f64 = (0..n).map(|i| w[i] as f64 * (y[i] as f64 - ybar).powi(2)).sum();
    (coefs.clone(), icpt, 1.0 - ss_res / ss_tot, pred(0))
}

fn check_against_sklearn(
    fit: &SurrogateFit,
    masks: &Array2<f32>,
    preds: &Array2<f32>,
    w: &[f32],
    alpha: f64,
    what: &str,
) {
    for k in 0..preds.ncols() {
        let y: Vec<f32> = preds.column(k).to_vec();
        let (coefs, icpt, r2, local) = sklearn_ridge(masks, &y, w, alpha);
        for (j, want) in coefs.iter().enumerate() {
            let got = fit.coefs[[k, j]] as f64;
            assert!(
                (got - want).abs() < 1e-4,
                "{what}: class {k} band {j}: {got} vs sklearn {want}"
            );
        }
        assert!((fit.intercept[k] as f64 - icpt).abs() < 1e-4, "{what}: intercept");
        assert!((fit.r2[k] as f64 - r2).abs() < 1e-3, "{what}: r2 {} vs {r2}", fit.r2[k]);
        // The local prediction is the intercept plus every coefficient (row 0 keeps all bands),
        // so its f32 error is bounded by the sum of theirs.
        let b = masks.ncols() as f64;
        assert!(
            (fit.local_pred[k] as f64 - local).abs() < 1e-4 * (b + 1.0),
            "{what}: local prediction {} vs sklearn {local}",
            fit.local_pred[k]
        );
    }
}

/// Random model outputs that depend on the masks like a real model: a few bands matter.
fn plausible_preds(masks: &Array2<f32>, c: usize, rng: &mut Rng) -> Array2<f32> {
    let b = masks.ncols();
    let effects: Vec<f32> = (0..b * c).map(|_| rng.f32() - 0.5).collect();
    Array2::from_shape_fn((masks.nrows(), c), |(i, k)| {
        let lin: f32 = (0..b).map(|j| effects[k * b + j] * masks[[i, j]]).sum();
        1.0 / (1.0 + (-lin).exp()) + 0.05 * (rng.f32() - 0.5)
    })
}

#[test]
fn lime_surrogate_matches_sklearn_ridge_cpu_and_gpu() {
    let seed = fresh_seed("lime");
    let mut rng = Rng(seed);
    let ctx = gpu();
    for (b, n) in [(8, 64), (8, 1000), (2 + rng.below(20), 100 + rng.below(2000))] {
        let masks = sample_masks(
            &MaskConfig {
                samples: SampleCount::Random(n),
                keep_prob: 0.5,
                seed: rng.next_u64(),
            },
            b,
            false,
        )
        .unwrap();
        let w = kernel_weights(&masks, KernelKind::Lime { width: 0.25 }).unwrap();
        let preds = plausible_preds(&masks, 4, &mut rng);
        let cfg = SurrogateConfig::default();
        let fit = fit_cpu(masks.view(), &w, preds.view(), &cfg).unwrap();
        check_against_sklearn(&fit, &masks, &preds, &w, 1.0, &format!("cpu B={b} N={n}"));
        if let Some(ctx) = &ctx {
            let p3 = preds.clone().insert_axis(ndarray::Axis(0));
            let fit = fit_gpu(ctx, masks.view(), &w, p3.view(), &cfg).unwrap().remove(0);
            check_against_sklearn(&fit, &masks, &preds, &w, 1.0, &format!("gpu B={b} N={n}"));
        }
    }
}

#[test]
fn lime_kernel_is_lime_image_kernel_on_cosine_distance() {
    let masks = Array2::from_shape_vec((3, 4), vec![1., 1., 1., 1., 1., 0., 0., 0., 0., 0., 0., 0.]).unwrap();
    let w = kernel_weights(&masks, KernelKind::Lime { width: 0.25 }).unwrap();
    let d1 = 1.0 - (1.0f64 / 4.0).sqrt();
    let want = [1.0, (-(d1 * d1) / 0.0625).exp().sqrt(), (-1.0f64 / 0.0625).exp().sqrt()];
    for (g, w) in w.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
    }
}

/// Exact Shapley values of f over B players by the permutation-weighted definition.
fn shapley_by_definition(b: usize, f: &dyn Fn(u32) -> f64) -> Vec<f64> {
    let fact = |n: usize| (1..=n).map(|v| v as f64).product::<f64>();
    (0..b)
        .map(|i| {
            (0u32..1 << b)
                .filter(|s| s & (1 << i) == 0)
                .map(|s| {
                    let k = s.count_ones() as usize;
                    fact(k) * fact(b - k - 1) / fact(b) * (f(s | (1 << i)) - f(s))
                })
                .sum()
        })
        .collect()
}

#[test]
fn shapley_kernel_with_exhaustive_masks_gives_exact_shapley_values() {
    let seed = fresh_seed("shapley");
    let mut rng = Rng(seed);
    let ctx = gpu();
    let b = 3 + rng.below(6);
    let coef: Vec<f64> = (0..b).map(|_| rng.f32() as f64 - 0.5).collect();
    let pair = (rng.below(b), rng.below(b));
    // Additive part plus an interaction, so regression alone would not be exact by accident.
    let f = |s: u32| {
        let on = |j: usize| ((s >> j) & 1) as f64;
        0.3 + (0..b).map(|j| coef[j] * on(j)).sum::<f64>() + 0.4 * on(pair.0) * on(pair.1)
    };
    let masks = sample_masks(
        &MaskConfig {
            samples: SampleCount::Exhaustive,
            keep_prob: 0.5,
            seed,
        },
        b,
        true,
    )
    .unwrap();
    let preds = Array2::from_shape_fn((masks.nrows(), 1), |(i, _)| {
        let s = (0..b).fold(0u32, |acc, j| acc | ((masks[[i, j]] as u32) << j));
        f(s) as f32
    });
    let w = kernel_weights(&masks, KernelKind::Shapley).unwrap();
    let cfg = SurrogateConfig {
        kernel: KernelKind::Shapley,
        alpha: 0.0,
    };
    let want = shapley_by_definition(b, &f);
    let mut fits = vec![("cpu", fit_cpu(masks.view(), &w, preds.view(), &cfg).unwrap())];
    if let Some(ctx) = &ctx {
        let p3: Array3<f32> = preds.clone().insert_axis(ndarray::Axis(0));
        fits.push((
            "gpu",
            fit_gpu(ctx, masks.view(), &w, p3.view(), &cfg).unwrap().remove(0),
        ));
    }
    for (what, fit) in fits {
        for j in 0..b {
            assert!(
                (fit.coefs[[0, j]] as f64 - want[j]).abs() < 1e-4,
                "{what} B={b} player {j}: {} vs {}",
                fit.coefs[[0, j]],
                want[j]
            );
        }
        assert!(
            (fit.intercept[0] as f64 - f(0)).abs() < 1e-5,
            "{what}: intercept is f(empty)"
        );
    }
}
