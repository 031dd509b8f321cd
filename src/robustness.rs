//! Robustness of explanations across models and across datasets: each emotion's
//! band-importance profile per (dataset, model), the similarity (Spearman, cosine) of profile
//! pairs that differ only in the model or only in the dataset, and a test of whether
//! explanations agree more across models than across datasets (EmoLIME's finding).
//!
//! A profile is the mean surrogate coefficient per band of the emotion's class over the
//! utterances labelled with that emotion (utterances without a label count by their predicted
//! class), with its standard error.

use crate::error::{Error, Result};
use crate::explain::ExplanationRecord;
use crate::output::csv_quoted;
use crate::rank::stats::ranks_descending;
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One emotion's band-importance profile for one (dataset, model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Dataset name.
    pub dataset: String,
    /// Model name.
    pub model: String,
    /// The emotion (class).
    pub emotion: String,
    /// Utterances averaged.
    pub n: usize,
    /// Mean coefficient per band. // [B]
    pub mean: Vec<f64>,
    /// Standard error of the mean per band (0 with one utterance). // [B]
    pub std_err: Vec<f64>,
}

/// Every emotion's profile in one run's records (one row per utterance and class).
pub fn profiles(records: &[ExplanationRecord], dataset: &str, model: &str) -> Vec<Profile> {
    let mut by_class: BTreeMap<&str, Vec<&[f32]>> = BTreeMap::new();
    for r in records {
        let truth = r.label.as_deref().unwrap_or(&r.predicted);
        if r.class == truth {
            by_class.entry(&r.class).or_default().push(&r.coefficients);
        }
    }
    by_class
        .into_iter()
        .map(|(emotion, rows)| {
            let n = rows.len();
            let b = rows[0].len();
            let mean: Vec<f64> = (0..b)
                .map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n as f64)
                .collect();
            let std_err = (0..b)
                .map(|j| {
                    if n < 2 {
                        return 0.0;
                    }
                    let var = rows.iter().map(|r| (f64::from(r[j]) - mean[j]).powi(2)).sum::<f64>() / (n - 1) as f64;
                    (var / n as f64).sqrt()
                })
                .collect();
            Profile {
                dataset: dataset.to_string(),
                model: model.to_string(),
                emotion: emotion.to_string(),
                n,
                mean,
                std_err,
            }
        })
        .collect()
}

/// Cosine similarity; 0 when either vector is all zeros.
///
/// # Shapes
/// `a` [B], `b` [B] -> scalar
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na > 0.0 && nb > 0.0 { dot / (na * nb) } else { 0.0 }
}

/// Spearman correlation of two profiles' band rankings (0 when one is constant).
///
/// # Shapes
/// `a` [B], `b` [B] -> scalar
pub fn spearman_profiles(a: &[f64], b: &[f64]) -> f64 {
    crate::rank::spearman(&ranks_descending(a), &ranks_descending(b)).unwrap_or(0.0)
}

/// What a pair of profiles shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PairKind {
    /// Two models explained on one dataset.
    CrossModel {
        /// The shared dataset.
        dataset: String,
    },
    /// One model explained on two datasets.
    CrossDataset {
        /// The shared model.
        model: String,
    },
}

impl PairKind {
    /// `cross_model` or `cross_dataset`.
    pub fn name(&self) -> &'static str {
        match self {
            PairKind::CrossModel { .. } => "cross_model",
            PairKind::CrossDataset { .. } => "cross_dataset",
        }
    }
}

/// The similarity of two profiles of one emotion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairSimilarity {
    /// The emotion.
    pub emotion: String,
    /// What the two share.
    #[serde(flatten)]
    pub kind: PairKind,
    /// The first profile's `dataset/model`.
    pub a: String,
    /// The second's.
    pub b: String,
    /// Spearman correlation of the band rankings.
    pub spearman: f64,
    /// Cosine similarity of the mean coefficients.
    pub cosine: f64,
}

/// Every cross-model pair (same dataset and emotion, two models) and cross-dataset pair (same
/// model and emotion, two datasets) among `profiles`.
pub fn pair_similarities(profiles: &[Profile]) -> Vec<PairSimilarity> {
    let mut out = vec![];
    for (i, p) in profiles.iter().enumerate() {
        for q in &profiles[i + 1..] {
            if p.emotion != q.emotion {
                continue;
            }
            let kind = if p.dataset == q.dataset && p.model != q.model {
                PairKind::CrossModel {
                    dataset: p.dataset.clone(),
                }
            } else if p.model == q.model && p.dataset != q.dataset {
                PairKind::CrossDataset { model: p.model.clone() }
            } else {
                continue;
            };
            out.push(PairSimilarity {
                emotion: p.emotion.clone(),
                kind,
                a: format!("{}/{}", p.dataset, p.model),
                b: format!("{}/{}", q.dataset, q.model),
                spearman: spearman_profiles(&p.mean, &q.mean),
                cosine: cosine(&p.mean, &q.mean),
            });
        }
    }
    out
}

/// Which similarity a test uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// Spearman correlation of band rankings.
    Spearman,
    /// Cosine similarity of mean coefficients.
    Cosine,
}

impl Similarity {
    fn of(self, p: &PairSimilarity) -> f64 {
        match self {
            Similarity::Spearman => p.spearman,
            Similarity::Cosine => p.cosine,
        }
    }
}

/// Whether cross-model agreement exceeds cross-dataset agreement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgreementTest {
    /// The similarity compared.
    pub similarity: Similarity,
    /// Cross-model pairs.
    pub n_cross_model: usize,
    /// Cross-dataset pairs.
    pub n_cross_dataset: usize,
    /// Mean similarity of cross-model pairs.
    pub mean_cross_model: f64,
    /// Mean similarity of cross-dataset pairs.
    pub mean_cross_dataset: f64,
    /// Their difference (cross-model minus cross-dataset).
    pub difference: f64,
    /// Cliff's delta of cross-model against cross-dataset similarities, in [-1, 1]: the share
    /// of (cross-model, cross-dataset) pairs where the first is larger minus the share where it
    /// is smaller.
    pub cliffs_delta: f64,
    /// One-sided permutation p-value of the difference (kind labels shuffled over all pairs).
    pub p_permutation: f64,
    /// Permutations drawn.
    pub permutations: usize,
    /// Emotions with both kinds of pairs (the Wilcoxon test's sample).
    pub n_emotions: usize,
    /// Wilcoxon signed-rank statistic W+ over emotions of (mean cross-model minus mean
    /// cross-dataset similarity); zero differences dropped.
    pub wilcoxon_w_plus: f64,
    /// Its exact one-sided p-value (all sign flips enumerated; up to 20 emotions, else NaN).
    pub p_wilcoxon: f64,
}

/// Tests whether `similarity` is larger across models than across datasets: a permutation
/// test over all pairs (`permutations` shuffles from `seed`) and an exact Wilcoxon
/// signed-rank test over emotions (each emotion's mean difference).
pub fn test_agreement(
    pairs: &[PairSimilarity],
    similarity: Similarity,
    permutations: usize,
    seed: u64,
) -> Result<AgreementTest> {
    let (cm, cd): (Vec<&PairSimilarity>, Vec<&PairSimilarity>) = pairs
        .iter()
        .partition(|p| matches!(p.kind, PairKind::CrossModel { .. }));
    if cm.is_empty() || cd.is_empty() {
        return Err(Error::config(
            "run",
            format!(
                "the test needs both cross-model and cross-dataset pairs (have {} and {}): give runs of at least \
                 two models on one dataset and of one model on at least two datasets",
                cm.len(),
                cd.len()
            ),
        ));
    }
    let x: Vec<f64> = cm.iter().map(|p| similarity.of(p)).collect();
    let y: Vec<f64> = cd.iter().map(|p| similarity.of(p)).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let observed = mean(&x) - mean(&y);
    let mut pooled: Vec<f64> = x.iter().chain(&y).copied().collect();
    let mut rng = SplitMix64::stream(seed, 0x0A6E_E3E7, &[]);
    let mut at_least = 0usize;
    for _ in 0..permutations {
        rng.shuffle(&mut pooled);
        let d = mean(&pooled[..x.len()]) - mean(&pooled[x.len()..]);
        if d >= observed - 1e-12 {
            at_least += 1;
        }
    }
    let cliffs = x
        .iter()
        .map(|a| y.iter().map(|b| (a > b) as i32 - (a < b) as i32).sum::<i32>())
        .sum::<i32>() as f64
        / (x.len() * y.len()) as f64;
    // Per emotion: mean cross-model minus mean cross-dataset.
    let mut per: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for p in pairs {
        let e = per.entry(&p.emotion).or_default();
        match p.kind {
            PairKind::CrossModel { .. } => e.0.push(similarity.of(p)),
            PairKind::CrossDataset { .. } => e.1.push(similarity.of(p)),
        }
    }
    let diffs: Vec<f64> = per
        .values()
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .map(|(a, b)| mean(a) - mean(b))
        .collect();
    let (w_plus, p_w) = wilcoxon_signed_rank(&diffs);
    Ok(AgreementTest {
        similarity,
        n_cross_model: x.len(),
        n_cross_dataset: y.len(),
        mean_cross_model: mean(&x),
        mean_cross_dataset: mean(&y),
        difference: observed,
        cliffs_delta: cliffs,
        p_permutation: (1 + at_least) as f64 / (1 + permutations) as f64,
        permutations,
        n_emotions: diffs.len(),
        wilcoxon_w_plus: w_plus,
        p_wilcoxon: p_w,
    })
}

/// The Wilcoxon signed-rank statistic W+ of `d` (zeros dropped, tied magnitudes share their
/// mean rank) and its exact one-sided p-value P(W+ >= observed) under random signs, by
/// enumerating all sign flips (NaN for more than 20 values or none).
pub fn wilcoxon_signed_rank(d: &[f64]) -> (f64, f64) {
    let nz: Vec<f64> = d.iter().copied().filter(|v| *v != 0.0 && v.is_finite()).collect();
    let n = nz.len();
    if n == 0 || n > 20 {
        return (f64::NAN, f64::NAN);
    }
    // Ranks of |d|, 1 for the smallest.
    let neg_abs: Vec<f64> = nz.iter().map(|v| -v.abs()).collect();
    let ranks = ranks_descending(&neg_abs);
    // `+ 0.0`: an empty f64 sum is -0.0.
    let w_plus: f64 = nz
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum::<f64>()
        + 0.0;
    let mut at_least = 0u64;
    for signs in 0u64..(1 << n) {
        let w: f64 = (0..n).filter(|i| signs >> i & 1 == 1).map(|i| ranks[i]).sum();
        if w >= w_plus - 1e-9 {
            at_least += 1;
        }
    }
    (w_plus, at_least as f64 / (1u64 << n) as f64)
}

/// Writes the profiles: `dataset,model,emotion,n,band,lo_hz,hi_hz,mean,std_err`, one row per
/// profile and band (`band_edges_hz` [B + 1] gives the band limits).
pub fn write_profiles_csv(
    out: &mut impl std::io::Write,
    profiles: &[Profile],
    band_edges_hz: &[f32],
) -> std::io::Result<()> {
    writeln!(out, "dataset,model,emotion,n,band,lo_hz,hi_hz,mean,std_err")?;
    for p in profiles {
        for (j, (m, se)) in p.mean.iter().zip(&p.std_err).enumerate() {
            let edge = |k: usize| band_edges_hz.get(k).copied().unwrap_or(f32::NAN);
            writeln!(
                out,
                "{},{},{},{},{j},{},{},{m},{se}",
                csv_quoted(&p.dataset),
                csv_quoted(&p.model),
                csv_quoted(&p.emotion),
                p.n,
                edge(j),
                edge(j + 1)
            )?;
        }
    }
    Ok(())
}

/// Writes the pairs: `emotion,kind,shared,a,b,spearman,cosine` (`shared`: the dataset of a
/// cross-model pair, the model of a cross-dataset pair).
pub fn write_pairs_csv(out: &mut impl std::io::Write, pairs: &[PairSimilarity]) -> std::io::Result<()> {
    writeln!(out, "emotion,kind,shared,a,b,spearman,cosine")?;
    for p in pairs {
        let shared = match &p.kind {
            PairKind::CrossModel { dataset } => dataset,
            PairKind::CrossDataset { model } => model,
        };
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            csv_quoted(&p.emotion),
            p.kind.name(),
            csv_quoted(shared),
            csv_quoted(&p.a),
            csv_quoted(&p.b),
            p.spearman,
            p.cosine
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(dataset: &str, model: &str, emotion: &str, mean: Vec<f64>) -> Profile {
        let b = mean.len();
        Profile {
            dataset: dataset.into(),
            model: model.into(),
            emotion: emotion.into(),
            n: 1,
            mean,
            std_err: vec![0.0; b],
        }
    }

    #[test]
    fn wilcoxon_matches_known_values() {
        // All 4 positive: W+ = 10, p = 1/16.
        let (w, p) = wilcoxon_signed_rank(&[0.1, 0.2, 0.3, 0.4]);
        assert_eq!(w, 10.0);
        assert!((p - 1.0 / 16.0).abs() < 1e-12);
        // scipy.stats.wilcoxon([1, 2, -3, 4, 5], alternative="greater"): W+ = 12, p = 0.15625.
        let (w, p) = wilcoxon_signed_rank(&[1.0, 2.0, -3.0, 4.0, 5.0]);
        assert_eq!(w, 12.0);
        assert!((p - 0.15625).abs() < 1e-12, "{p}");
        assert!(wilcoxon_signed_rank(&[0.0]).1.is_nan());
        // All negative: W+ = 0 (not -0), p = 1.
        let (w, p) = wilcoxon_signed_rank(&[-0.1, -0.2]);
        assert!(w == 0.0 && w.is_sign_positive() && p == 1.0);
    }

    #[test]
    fn pairs_and_test_find_model_agreement() {
        // Models agree on each dataset; datasets disagree.
        let mut ps = vec![];
        for (e, emotion) in ["angry", "happy", "sad", "neutral", "fear"].iter().enumerate() {
            for (d, dataset) in ["d1", "d2", "d3"].iter().enumerate() {
                let base: Vec<f64> = (0..6).map(|j| (((j + 2 * d + e) % 6) as f64).powi(2)).collect();
                ps.push(profile(dataset, "cnn", emotion, base.clone()));
                let mut other = base.clone();
                other[0] += 0.5;
                ps.push(profile(dataset, "svm", emotion, other));
            }
        }
        let pairs = pair_similarities(&ps);
        let cm = pairs.iter().filter(|p| p.kind.name() == "cross_model").count();
        let cd = pairs.iter().filter(|p| p.kind.name() == "cross_dataset").count();
        assert_eq!((cm, cd), (5 * 3, 5 * 2 * 3));
        let t = test_agreement(&pairs, Similarity::Spearman, 2000, 1).unwrap();
        assert!(t.difference > 0.5, "{t:?}");
        assert!(t.p_permutation < 0.01, "{t:?}");
        assert_eq!(t.n_emotions, 5);
        assert!((t.p_wilcoxon - 1.0 / 32.0).abs() < 1e-12, "{t:?}");
        assert!(t.cliffs_delta > 0.9);
        assert_eq!(t, test_agreement(&pairs, Similarity::Spearman, 2000, 1).unwrap());
        // Only one model: no cross-model pairs, a clear error.
        let one: Vec<Profile> = ps.into_iter().filter(|p| p.model == "cnn").collect();
        assert!(test_agreement(&pair_similarities(&one), Similarity::Cosine, 10, 1).is_err());
    }

    #[test]
    fn similarities() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((spearman_profiles(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }
}
