//! Agreement between rankings: Kendall's W across corpora (per method), across methods (per
//! corpus) and across recording conditions (per corpus and method), pairwise Spearman correlation and top-k overlap, and the consensus ranking (mean rank
//! over corpora x methods) with its spread. Intervals come from the rankings' bootstrap replicates:
//! replicate `b` of every ranking is re-ranked and the statistic recomputed.

use super::stats::{percentile_ci, ranks_descending};
use super::{Ranking, condition_of, corpus_of};
use ndarray::Array2;
use serde::Serialize;

/// Kendall's coefficient of concordance of `m` rankings of the same `n` items, with the tie
/// correction: `W = 12 S / (m^2 (n^3 - n) - m sum_i T_i)`, `S` the squared deviations of the
/// items' rank sums from their mean and `T_i = sum (t^3 - t)` over rater `i`'s tie groups.
/// 1 when all rankings agree, about `1/m` or less for independent ones. `None` for fewer than 2
/// rankings or items, rankings of different lengths, or when every rater ties everything.
///
/// # Shapes
/// `ranks` m x [n], each a ranking 1..=n (average ranks for ties).
pub fn kendall_w(ranks: &[&[f64]]) -> Option<f64> {
    let m = ranks.len();
    let n = ranks.first()?.len();
    if m < 2 || n < 2 || ranks.iter().any(|r| r.len() != n) {
        return None;
    }
    let mut sums = vec![0.0; n];
    let mut ties = 0.0;
    for r in ranks {
        r.iter().zip(sums.iter_mut()).for_each(|(v, s)| *s += v);
        let mut sorted = r.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut i = 0;
        while i < n {
            let mut j = i + 1;
            while j < n && sorted[j] == sorted[i] {
                j += 1;
            }
            let t = (j - i) as f64;
            ties += t * t * t - t;
            i = j;
        }
    }
    let (mf, nf) = (m as f64, n as f64);
    let mean = mf * (nf + 1.0) / 2.0;
    let s: f64 = sums.iter().map(|v| (v - mean) * (v - mean)).sum();
    let denom = mf * mf * (nf * nf * nf - nf) - mf * ties;
    (denom > 0.0).then(|| 12.0 * s / denom)
}

/// Spearman's rho of two rankings: the Pearson correlation of their (average) ranks. `None` for
/// fewer than 2 items, different lengths, or a constant ranking.
///
/// # Shapes
/// `a` [n], `b` [n]
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len();
    if n < 2 || b.len() != n {
        return None;
    }
    let ma = a.iter().sum::<f64>() / n as f64;
    let mb = b.iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// The `k` items with the smallest ranks (ties by index).
pub fn top_k(rank: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rank.len()).collect();
    order.sort_by(|&a, &b| rank[a].total_cmp(&rank[b]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// The fraction of the top `k` of ranking `a` that is also in the top `k` of `b` (`k` capped
/// at the number of items).
///
/// # Shapes
/// `a` [n], `b` [n]
pub fn top_k_overlap(a: &[f64], b: &[f64], k: usize) -> f64 {
    let k = k.min(a.len()).min(b.len());
    if k == 0 {
        return f64::NAN;
    }
    let tb = top_k(b, k);
    top_k(a, k).iter().filter(|i| tb.contains(i)).count() as f64 / k as f64
}

/// Kendall's W of a set of rankings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KendallRow {
    /// `datasets` (one method's rankings of every corpus under one recording condition),
    /// `methods` (one dataset's rankings by every feature-level method) or `conditions` (one
    /// method's rankings of one corpus under every recording condition).
    pub across: String,
    /// The method (across datasets; `method@condition` for a condition other than clean), the
    /// dataset (across methods) or `corpus/method` (across conditions).
    pub scope: String,
    /// Kendall's W (`None` when undefined).
    pub w: Option<f64>,
    /// Bootstrap 2.5 % percentile of W.
    pub ci_low: f64,
    /// Bootstrap 97.5 % percentile of W.
    pub ci_high: f64,
    /// The rankings compared (`dataset/method`).
    pub rankings: Vec<String>,
    /// Items ranked.
    pub n_items: usize,
}

/// Agreement of two rankings of the same items.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairRow {
    /// First ranking (`dataset/method`).
    pub a: String,
    /// Second ranking.
    pub b: String,
    /// Spearman's rho (`None` when undefined).
    pub spearman: Option<f64>,
    /// Bootstrap 2.5 % percentile of rho.
    pub ci_low: f64,
    /// Bootstrap 97.5 % percentile of rho.
    pub ci_high: f64,
    /// Fraction of shared items in the two top-k sets.
    pub top_k_overlap: f64,
}

/// All agreement statistics of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// Kendall's W per method and condition (across corpora), then per dataset (across
    /// methods), then per corpus and method (across conditions).
    pub kendall: Vec<KendallRow>,
    /// Every pair of rankings of the same items.
    pub pairs: Vec<PairRow>,
    /// The `k` of the top-k overlaps.
    pub top_k: usize,
}

/// A statistic of several rankings with its bootstrap interval.
fn with_ci(rankings: &[&Ranking], stat: impl Fn(&[&[f64]]) -> Option<f64>) -> (Option<f64>, f64, f64) {
    let ranks: Vec<&[f64]> = rankings.iter().map(|r| r.rank.as_slice()).collect();
    let point = stat(&ranks);
    let b = rankings.iter().map(|r| r.replicates.nrows()).min().unwrap_or(0);
    let reps: Vec<f64> = (0..b)
        .filter_map(|i| {
            let rr: Vec<Vec<f64>> = rankings
                .iter()
                .map(|r| ranks_descending(&r.replicates.row(i).to_vec()))
                .collect();
            let refs: Vec<&[f64]> = rr.iter().map(Vec::as_slice).collect();
            stat(&refs)
        })
        .collect();
    if reps.is_empty() {
        return (point, f64::NAN, f64::NAN);
    }
    let (lo, hi) = percentile_ci(Array2::from_shape_vec((reps.len(), 1), reps).expect("a column").view());
    (point, lo[0], hi[0])
}

/// Kendall's W per method and per corpus, and every pairwise Spearman / top-k overlap.
/// Across methods and in pairs, only rankings of the same items are compared (KernelSHAP over
/// groups is compared with KernelSHAP only).
pub(crate) fn agreement(rankings: &[Ranking], features: &[String], top_k: usize) -> Agreement {
    let mut kendall = vec![];
    let mut methods = vec![];
    for r in rankings {
        if !methods.contains(&r.method) {
            methods.push(r.method);
        }
    }
    let (mut datasets, mut corpora, mut conditions): (Vec<&str>, Vec<&str>, Vec<&str>) = (vec![], vec![], vec![]);
    for r in rankings {
        if !datasets.contains(&r.dataset.as_str()) {
            datasets.push(&r.dataset);
        }
        if !corpora.contains(&corpus_of(&r.dataset)) {
            corpora.push(corpus_of(&r.dataset));
        }
        if !conditions.contains(&condition_of(&r.dataset)) {
            conditions.push(condition_of(&r.dataset));
        }
    }
    for &m in &methods {
        for &c in &conditions {
            let rs: Vec<&Ranking> = rankings
                .iter()
                .filter(|r| r.method == m && condition_of(&r.dataset) == c)
                .collect();
            if rs.len() >= 2 {
                let (w, lo, hi) = with_ci(&rs, kendall_w);
                kendall.push(KendallRow {
                    across: "datasets".into(),
                    scope: if rs[0].dataset.contains(super::CONDITION_SEPARATOR) {
                        format!("{}@{c}", m.name())
                    } else {
                        m.name().into()
                    },
                    w,
                    ci_low: lo,
                    ci_high: hi,
                    rankings: rs.iter().map(|r| r.label()).collect(),
                    n_items: rs[0].items.len(),
                });
            }
        }
    }
    for d in datasets {
        let rs: Vec<&Ranking> = rankings
            .iter()
            .filter(|r| r.dataset == d && r.items == features)
            .collect();
        if rs.len() >= 2 {
            let (w, lo, hi) = with_ci(&rs, kendall_w);
            kendall.push(KendallRow {
                across: "methods".into(),
                scope: d.into(),
                w,
                ci_low: lo,
                ci_high: hi,
                rankings: rs.iter().map(|r| r.label()).collect(),
                n_items: features.len(),
            });
        }
    }
    for &m in &methods {
        for &c in &corpora {
            let rs: Vec<&Ranking> = rankings
                .iter()
                .filter(|r| r.method == m && corpus_of(&r.dataset) == c)
                .collect();
            if rs.len() >= 2 {
                let (w, lo, hi) = with_ci(&rs, kendall_w);
                kendall.push(KendallRow {
                    across: "conditions".into(),
                    scope: format!("{c}/{}", m.name()),
                    w,
                    ci_low: lo,
                    ci_high: hi,
                    rankings: rs.iter().map(|r| r.label()).collect(),
                    n_items: rs[0].items.len(),
                });
            }
        }
    }
    let mut pairs = vec![];
    for (i, a) in rankings.iter().enumerate() {
        for b in &rankings[i + 1..] {
            if a.items != b.items {
                continue;
            }
            let (rho, lo, hi) = with_ci(&[a, b], |r| spearman(r[0], r[1]));
            pairs.push(PairRow {
                a: a.label(),
                b: b.label(),
                spearman: rho,
                ci_low: lo,
                ci_high: hi,
                top_k_overlap: top_k_overlap(&a.rank, &b.rank, top_k),
            });
        }
    }
    Agreement { kendall, pairs, top_k }
}

/// One feature in the consensus.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsensusRow {
    /// Feature column index.
    pub index: usize,
    /// Feature name.
    pub feature: String,
    /// Position in the consensus, 1 = most important (mean rank, ties by column index).
    pub consensus_rank: usize,
    /// Mean rank over the rankings.
    pub mean_rank: f64,
    /// Standard deviation of the ranks over the rankings (0 for a single ranking).
    pub sd_rank: f64,
    /// Bootstrap 2.5 % percentile of the mean rank.
    pub ci_low: f64,
    /// Bootstrap 97.5 % percentile of the mean rank.
    pub ci_high: f64,
    /// Best rank in any ranking.
    pub min_rank: f64,
    /// Worst rank in any ranking.
    pub max_rank: f64,
    /// Fraction of the rankings that put the feature in their top k: 1 is stable everywhere,
    /// a value between 0 and 1 flips between corpora or methods.
    pub top_k_fraction: f64,
    /// Its rank in each ranking, in [`Consensus::rankings`] order.
    pub ranks: Vec<f64>,
}

/// The consensus of the feature-level rankings (corpora x methods).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Consensus {
    /// The rankings averaged (`dataset/method`).
    pub rankings: Vec<String>,
    /// The `k` of `top_k_fraction`.
    pub top_k: usize,
    /// One row per feature, in consensus order (empty when no ranking qualifies).
    pub rows: Vec<ConsensusRow>,
}

impl Consensus {
    /// Column indices of the first `k` features of the consensus.
    pub fn top(&self, k: usize) -> Vec<usize> {
        self.rows.iter().take(k).map(|r| r.index).collect()
    }
}

/// The consensus of the rankings of `features` (KernelSHAP over groups is left out unless its
/// groups are the features), leaving out the rankings of the corpus of `exclude` (under every
/// recording condition) when given.
pub(crate) fn consensus(rankings: &[Ranking], features: &[String], top_k: usize, exclude: Option<&str>) -> Consensus {
    let rs: Vec<&Ranking> = rankings
        .iter()
        .filter(|r| exclude.is_none_or(|e| corpus_of(&r.dataset) != corpus_of(e)))
        .collect();
    consensus_of(&rs, features, top_k)
}

/// The consensus (mean rank, bootstrap interval, spread) of those of `rankings` that rank
/// `features`; the others (KernelSHAP over groups) are left out.
pub fn consensus_of(rankings: &[&Ranking], features: &[String], top_k: usize) -> Consensus {
    let rs: Vec<&Ranking> = rankings.iter().copied().filter(|r| r.items == features).collect();
    let labels = rs.iter().map(|r| r.label()).collect();
    if rs.is_empty() {
        return Consensus {
            rankings: labels,
            top_k,
            rows: vec![],
        };
    }
    let d = features.len();
    let m = rs.len() as f64;
    let b = rs.iter().map(|r| r.replicates.nrows()).min().unwrap_or(0);
    let mut mean_reps = Array2::zeros((b, d));
    for i in 0..b {
        for r in &rs {
            let rr = ranks_descending(&r.replicates.row(i).to_vec());
            for (j, v) in rr.iter().enumerate() {
                mean_reps[[i, j]] += v / m;
            }
        }
    }
    let (lo, hi) = percentile_ci(mean_reps.view());
    let mut rows: Vec<ConsensusRow> = (0..d)
        .map(|j| {
            let ranks: Vec<f64> = rs.iter().map(|r| r.rank[j]).collect();
            let mean = ranks.iter().sum::<f64>() / m;
            let sd = if rs.len() > 1 {
                (ranks.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (m - 1.0)).sqrt()
            } else {
                0.0
            };
            ConsensusRow {
                index: j,
                feature: features[j].clone(),
                consensus_rank: 0,
                mean_rank: mean,
                sd_rank: sd,
                ci_low: lo[j],
                ci_high: hi[j],
                min_rank: ranks.iter().copied().fold(f64::INFINITY, f64::min),
                max_rank: ranks.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                top_k_fraction: ranks.iter().filter(|&&v| v <= top_k as f64).count() as f64 / m,
                ranks,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.mean_rank.total_cmp(&b.mean_rank).then(a.index.cmp(&b.index)));
    rows.iter_mut().enumerate().for_each(|(i, r)| r.consensus_rank = i + 1);
    Consensus {
        rankings: labels,
        top_k,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::super::rng::{Purpose, Rng};
    use super::*;

    fn perm(n: usize, rng: &mut Rng) -> Vec<f64> {
        let mut v: Vec<f64> = (1..=n).map(|i| i as f64).collect();
        rng.shuffle(&mut v);
        v
    }

    #[test]
    fn kendall_w_extremes() {
        let mut rng = Rng::keyed(3, Purpose::Bootstrap, &[]);
        let r = perm(30, &mut rng);
        assert!((kendall_w(&[&r, &r, &r]).unwrap() - 1.0).abs() < 1e-12);
        // Independent random rankings: E[W] = 1/m; with m = 40 raters W is near 0.
        let many: Vec<Vec<f64>> = (0..40).map(|_| perm(50, &mut rng)).collect();
        let refs: Vec<&[f64]> = many.iter().map(Vec::as_slice).collect();
        let w = kendall_w(&refs).unwrap();
        assert!(w < 0.06, "{w}");
        // Two exactly reversed rankings: W = 0.
        let rev: Vec<f64> = r.iter().map(|v| 31.0 - v).collect();
        assert!(kendall_w(&[&r, &rev]).unwrap().abs() < 1e-12);
        // Ties are corrected: identical tied rankings still give 1.
        let tied = [1.5, 1.5, 3.0, 4.5, 4.5];
        assert!((kendall_w(&[&tied, &tied]).unwrap() - 1.0).abs() < 1e-12);
        assert!(kendall_w(&[&r]).is_none());
        assert!(kendall_w(&[&r, &r[..5]]).is_none());
        let flat = [2.0, 2.0, 2.0];
        assert!(kendall_w(&[&flat, &flat]).is_none());
    }

    #[test]
    fn kendall_w_of_two_is_affine_in_spearman() {
        let mut rng = Rng::keyed(4, Purpose::Bootstrap, &[]);
        let (a, b) = (perm(20, &mut rng), perm(20, &mut rng));
        let w = kendall_w(&[&a, &b]).unwrap();
        let rho = spearman(&a, &b).unwrap();
        assert!((w - (rho + 1.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn spearman_and_overlap() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman(&a, &a), Some(1.0));
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &[1.0; 4]), None);
        assert_eq!(top_k_overlap(&a, &[2.0, 1.0, 4.0, 3.0], 2), 1.0);
        assert_eq!(top_k_overlap(&a, &[4.0, 3.0, 2.0, 1.0], 2), 0.0);
        assert_eq!(top_k_overlap(&a, &[1.0, 4.0, 2.0, 3.0], 2), 0.5);
        assert_eq!(top_k(&[3.0, 1.0, 2.0], 2), vec![1, 2]);
    }
}
