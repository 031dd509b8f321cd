//! Stability selection with an L1 multinomial logistic model: fit it on many class-stratified
//! half-samples and count how often each feature keeps a non-zero coefficient.
//!
//! The half-samples are dealt round-robin to the folds and drawn from that fold's training
//! speakers only, so every subsample leaves at least one speaker out entirely. Each fit
//! standardises its own half-sample and uses one penalty per corpus: the one at which the fit on
//! the whole standardised corpus keeps `l1_select` features (the "q features per subsample" of
//! Meinshausen and Buehlmann, calibrated once instead of per subsample). The ranking key is
//! the selection frequency, ties broken by the mean |standardised coefficient| (summed over
//! classes); the interval resamples the per-subsample indicators.

use super::l1::{fit_l1_logistic, lambda_for_selection};
use super::rng::{Purpose, Rng};
use super::{Dataset, Method, Plan, RankConfig, Ranking, stats};
use crate::classify::StandardScaler;
use crate::error::Result;
use ndarray::{Array2, Axis};

/// One corpus's stability selection.
pub(crate) struct StabilityResult {
    /// The ranking (importance = selection frequency).
    pub ranking: Ranking,
    /// The penalty used.
    pub lambda: f64,
    /// Mean number of selected features per subsample.
    pub mean_selected: f64,
    /// Fits that stopped at the iteration limit.
    pub not_converged: usize,
}

/// A class-stratified half of `rows`: within each class, a seeded half (at least one row).
pub(crate) fn half_sample(rows: &[usize], labels: &[usize], k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![vec![]; k];
    rows.iter().for_each(|&i| by_class[labels[i]].push(i));
    let mut out = vec![];
    for mut members in by_class.into_iter().filter(|m| !m.is_empty()) {
        rng.shuffle(&mut members);
        let take = (members.len() / 2).max(1);
        out.extend_from_slice(&members[..take]);
    }
    out.sort_unstable();
    out
}

/// The ranking key: frequency plus a tie-break below one subsample's weight `1 / s`.
fn key(freq: &[f64], coef: &[f64], s: usize) -> Vec<f64> {
    let max = coef.iter().fold(0.0f64, |m, &v| m.max(v));
    freq.iter()
        .zip(coef)
        .map(|(&f, &c)| f + if max > 0.0 { c / max / (2.0 * s as f64) } else { 0.0 })
        .collect()
}

/// Runs stability selection on every corpus; `progress(done, total)` counts subsample fits.
pub(crate) fn run(
    datasets: &[Dataset],
    labels: &[Vec<usize>],
    k: usize,
    plan: &Plan,
    cfg: &RankConfig,
    names: &[String],
    progress: impl FnMut(usize, usize),
) -> Result<Vec<StabilityResult>> {
    let s = cfg.subsamples;
    let mut lambdas = Vec::with_capacity(datasets.len());
    for (ds, y) in datasets.iter().zip(labels) {
        let xs = StandardScaler::fit(ds.x.view())?.transform(ds.x.view())?;
        lambdas.push(lambda_for_selection(xs.view(), y, k, cfg.l1_select, &cfg.l1)?);
    }
    let total = datasets.len() * s;
    let mut progress = progress;
    let fits = stats::par_map(
        total,
        cfg.workers,
        |t| -> Result<(Vec<bool>, Vec<f64>, bool)> {
            let (di, si) = (t / s, t % s);
            let folds = &plan.folds[di];
            let fold = &folds[si % folds.len()];
            let mut rng = Rng::keyed(cfg.seed, Purpose::Subsample, &[di as u64, si as u64]);
            let rows = half_sample(&fold.train, &labels[di], k, &mut rng);
            let sub = datasets[di].x.select(Axis(0), &rows);
            let xs = StandardScaler::fit(sub.view())?.transform(sub.view())?;
            let y: Vec<usize> = rows.iter().map(|&i| labels[di][i]).collect();
            let fit = fit_l1_logistic(xs.view(), &y, k, lambdas[di], &cfg.l1)?;
            let abs: Vec<f64> = fit
                .coef
                .columns()
                .into_iter()
                .map(|c| c.iter().map(|v| v.abs()).sum())
                .collect();
            Ok((abs.iter().map(|&a| a > 0.0).collect(), abs, fit.converged))
        },
        |done| progress(done, total),
    );
    let fits = fits.into_iter().collect::<Result<Vec<_>>>()?;
    let d = names.len();
    let mut out = vec![];
    for (di, chunk) in fits.chunks(s).enumerate() {
        let sel = Array2::from_shape_fn((s, d), |(i, j)| chunk[i].0[j] as u8 as f64);
        let abs = Array2::from_shape_fn((s, d), |(i, j)| chunk[i].1[j]);
        let freq = sel.mean_axis(Axis(0)).expect("s >= 2").to_vec();
        let coef = abs.mean_axis(Axis(0)).expect("s >= 2").to_vec();
        let mut rng = Rng::keyed(cfg.seed, Purpose::Bootstrap, &[di as u64, 1]);
        let mut freq_reps = Array2::zeros((cfg.bootstrap, d));
        let mut key_reps = Array2::zeros((cfg.bootstrap, d));
        for b in 0..cfg.bootstrap {
            let mut f = vec![0.0; d];
            let mut c = vec![0.0; d];
            for _ in 0..s {
                let i = rng.below(s);
                for j in 0..d {
                    f[j] += sel[[i, j]];
                    c[j] += abs[[i, j]];
                }
            }
            f.iter_mut().chain(c.iter_mut()).for_each(|v| *v /= s as f64);
            key_reps.row_mut(b).assign(&ndarray::Array1::from(key(&f, &c, s)));
            freq_reps.row_mut(b).assign(&ndarray::Array1::from(f));
        }
        let mut ranking = Ranking::new(
            Method::L1Stability,
            &datasets[di].meta.name,
            names.to_vec(),
            freq.clone(),
            &key(&freq, &coef, s),
            freq_reps.view(),
            key_reps,
        );
        ranking.mean_abs_coef = Some(coef);
        out.push(StabilityResult {
            ranking,
            lambda: lambdas[di],
            mean_selected: sel.sum() / s as f64,
            not_converged: chunk.iter().filter(|c| !c.2).count(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_samples_are_stratified_halves() {
        let labels = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2];
        let rows: Vec<usize> = (0..12).collect();
        let mut rng = Rng::keyed(0, Purpose::Subsample, &[]);
        let h = half_sample(&rows, &labels, 3, &mut rng);
        let count = |c| h.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((count(0), count(1), count(2)), (2, 1, 2));
        assert!(h.windows(2).all(|w| w[0] < w[1]));
        let only = half_sample(&[4, 5], &labels, 3, &mut rng);
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn key_breaks_ties_without_reordering_frequencies() {
        let k = key(&[0.5, 0.5, 0.52, 0.0], &[1.0, 2.0, 0.1, 0.0], 50);
        let r = stats::ranks_descending(&k);
        assert_eq!(r, vec![3.0, 2.0, 1.0, 4.0]);
    }
}
