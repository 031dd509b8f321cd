//! Small statistics the ranking methods share: average ranks, percentile intervals, balanced
//! accuracy, class-stratified bootstrap weights and a scoped-thread parallel map.

use super::rng::Rng;
use ndarray::{Array2, ArrayView2};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Ranks of `values`, 1 for the largest; tied values share the mean of their ranks. NaN counts as
/// the smallest value.
///
/// # Shapes
/// `values` [D] -> [D]
pub fn ranks_descending(values: &[f64]) -> Vec<f64> {
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| key(values[b]).total_cmp(&key(values[a])).then(a.cmp(&b)));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && key(values[order[j]]) == key(values[order[i]]) {
            j += 1;
        }
        // Positions i..j (0-based) share rank mean(i+1..=j).
        let shared = (i + j + 1) as f64 / 2.0;
        for &k in &order[i..j] {
            ranks[k] = shared;
        }
        i = j;
    }
    ranks
}

/// The `q` quantile of `sorted` (ascending) with linear interpolation (NumPy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// The 2.5 % and 97.5 % percentiles of every column of the bootstrap replicates.
///
/// # Shapes
/// `replicates` [B, D] -> ([D], [D])
pub fn percentile_ci(replicates: ArrayView2<f64>) -> (Vec<f64>, Vec<f64>) {
    let mut low = Vec::with_capacity(replicates.ncols());
    let mut high = Vec::with_capacity(replicates.ncols());
    for col in replicates.columns() {
        let mut v: Vec<f64> = col.iter().copied().filter(|v| v.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        low.push(quantile_sorted(&v, 0.025));
        high.push(quantile_sorted(&v, 0.975));
    }
    (low, high)
}

/// Mean of the per-class recalls over the classes present in `truth` (scikit-learn's
/// `balanced_accuracy_score`).
///
/// # Shapes
/// `pred` [N], `truth` [N] with labels `< n_classes`.
pub fn balanced_accuracy(pred: &[usize], truth: &[usize], n_classes: usize) -> f64 {
    let mut hits = vec![0usize; n_classes];
    let mut counts = vec![0usize; n_classes];
    for (&p, &t) in pred.iter().zip(truth) {
        counts[t] += 1;
        hits[t] += (p == t) as usize;
    }
    let present: Vec<f64> = hits
        .iter()
        .zip(&counts)
        .filter(|(_, c)| **c > 0)
        .map(|(h, c)| *h as f64 / *c as f64)
        .collect();
    if present.is_empty() {
        return f64::NAN;
    }
    present.iter().sum::<f64>() / present.len() as f64
}

/// Row weights that turn a per-row score `s_i` (1 = correct) into the balanced accuracy
/// `sum_i a_i s_i`: `a_i = count_i / (C' * sum of counts of row i's class)` over the `C'` classes
/// with a non-zero count. `counts` are bootstrap multiplicities (all ones for the sample itself).
///
/// # Shapes
/// `labels` [N], `counts` [N] -> [N]
pub fn balanced_weights(labels: &[usize], counts: &[f64], n_classes: usize) -> Vec<f64> {
    let mut per_class = vec![0.0; n_classes];
    for (&l, &c) in labels.iter().zip(counts) {
        per_class[l] += c;
    }
    let present = per_class.iter().filter(|&&c| c > 0.0).count().max(1) as f64;
    labels
        .iter()
        .zip(counts)
        .map(|(&l, &c)| if c > 0.0 { c / (present * per_class[l]) } else { 0.0 })
        .collect()
}

/// Row weights for plain accuracy: `count_i / sum of counts`.
///
/// # Shapes
/// `counts` [N] -> [N]
pub fn plain_weights(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    counts.iter().map(|&c| c / total.max(f64::MIN_POSITIVE)).collect()
}

/// Bootstrap multiplicities of `b` class-stratified resamples: within every class, as many rows
/// drawn with replacement as the class has, so every class keeps its size.
///
/// # Shapes
/// `labels` [N] -> [B, N]
pub(crate) fn stratified_bootstrap(labels: &[usize], n_classes: usize, b: usize, rng: &mut Rng) -> Array2<f64> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let mut out = Array2::zeros((b, labels.len()));
    for mut row in out.rows_mut() {
        for members in by_class.iter().filter(|m| !m.is_empty()) {
            for _ in 0..members.len() {
                row[members[rng.below(members.len())]] += 1.0;
            }
        }
    }
    out
}

/// Runs `f(0..n)` on up to `workers` scoped threads and returns the results in index order;
/// `progress(done)` is called on the calling thread as tasks finish. The results do not depend on
/// the number of workers.
pub(crate) fn par_map<T: Send>(
    n: usize,
    workers: usize,
    f: impl Fn(usize) -> T + Sync,
    mut progress: impl FnMut(usize),
) -> Vec<T> {
    let workers = crate::features::corpus::resolve_workers(workers).min(n).max(1);
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, T)>();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (tx, next, f) = (tx.clone(), &next, &f);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || tx.send((i, f(i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (done, (i, v)) in rx.iter().enumerate() {
            out[i] = Some(v);
            progress(done + 1);
        }
    });
    out.into_iter()
        .map(|v| v.expect("every task ran: a panicking task re-panics when the scope ends"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::rng::Purpose;
    use super::*;

    #[test]
    fn ranks_with_ties() {
        assert_eq!(ranks_descending(&[0.1, 0.5, 0.5, 0.9]), vec![4.0, 2.5, 2.5, 1.0]);
        assert_eq!(ranks_descending(&[f64::NAN, 1.0]), vec![2.0, 1.0]);
        assert!(ranks_descending(&[]).is_empty());
    }

    #[test]
    fn quantiles_and_intervals() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile_sorted(&v, 0.025), 2.5);
        assert_eq!(quantile_sorted(&v, 0.5), 50.0);
        let reps = Array2::from_shape_fn((101, 2), |(i, j)| i as f64 * (j + 1) as f64);
        let (lo, hi) = percentile_ci(reps.view());
        assert_eq!(lo, vec![2.5, 5.0]);
        assert_eq!(hi, vec![97.5, 195.0]);
    }

    #[test]
    fn balanced_accuracy_matches_weights() {
        let truth = [0, 0, 0, 1, 2, 2];
        let pred = [0, 1, 0, 1, 0, 2];
        let ba = balanced_accuracy(&pred, &truth, 3);
        assert!((ba - (2.0 / 3.0 + 1.0 + 0.5) / 3.0).abs() < 1e-12);
        let w = balanced_weights(&truth, &[1.0; 6], 3);
        let via: f64 = w
            .iter()
            .zip(pred.iter().zip(&truth))
            .map(|(a, (p, t))| a * (p == t) as u8 as f64)
            .sum();
        assert!((via - ba).abs() < 1e-12);
        let boot = stratified_bootstrap(&truth, 3, 50, &mut Rng::keyed(0, Purpose::Bootstrap, &[]));
        for row in boot.rows() {
            assert_eq!(row.iter().take(3).sum::<f64>(), 3.0);
            assert_eq!(row[3], 1.0);
            assert_eq!(row[4] + row[5], 2.0);
        }
    }

    #[test]
    fn par_map_keeps_order() {
        let mut seen = 0;
        let out = par_map(37, 4, |i| i * i, |d| seen = d);
        assert_eq!(out, (0..37).map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(seen, 37);
        assert!(par_map(0, 3, |i| i, |_| {}).is_empty());
    }
}
