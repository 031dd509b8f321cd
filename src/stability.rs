//! Stability of explanations: the same utterances explained under several seeds and sample
//! counts, the agreement of their band rankings (Spearman, top-k overlap) across seeds and
//! against the exhaustive-mask explanation, and the sample count an agreement target needs.
//!
//! Random masks are a prefix family: sample `i` of seed `s` is the same whatever the count, so
//! the explanation with `N` samples is the surrogate fitted on the first `N` samples of the
//! largest count. Each seed's utterance is therefore scored once, at the largest count, and
//! every smaller count is a fit on a prefix (identical to running `--samples N`).

use crate::corpus::Failure;
use crate::device::ComputeDevice;
use crate::error::{Error, Result};
use crate::explain::{ExplainConfig, Explainer, UtteranceExplanation};
use crate::input::InputItem;
use crate::model::{SerModel, argmax};
use crate::output::csv_quoted;
use crate::rank::stats::ranks_descending;
use crate::sampling::{MAX_EXHAUSTIVE_BANDS, SampleCount};
use crate::surrogate::fit_cpu;
use ndarray::s;
use serde::{Deserialize, Serialize};

/// Stability settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StabilityConfig {
    /// Seeds compared (at least 2; default 0, 1, 2).
    pub seeds: Vec<u64>,
    /// Sample counts compared, ascending (default 64 to 4000).
    pub sample_counts: Vec<usize>,
    /// Size of the top-k sets compared (default 3).
    pub top_k: usize,
    /// The agreement (Spearman) asked for (default 0.95).
    pub target: f64,
    /// Also explain with every one of the 2^B masks as the exact reference (when B <= 16 and
    /// the keep probability is 0.5, so random samples draw every mask alike).
    pub exhaustive_reference: bool,
}

impl Default for StabilityConfig {
    fn default() -> Self {
        StabilityConfig {
            seeds: vec![0, 1, 2],
            sample_counts: vec![64, 128, 256, 512, 1000, 2000, 4000],
            top_k: 3,
            target: 0.95,
            exhaustive_reference: true,
        }
    }
}

impl StabilityConfig {
    /// Checks the settings for `n_bands` bands.
    pub fn validate(&self, n_bands: usize) -> Result<()> {
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() < 2 || seeds.len() != self.seeds.len() {
            return Err(Error::config("seeds", "give at least two different seeds, each once"));
        }
        if self.sample_counts.is_empty() || self.sample_counts.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::config(
                "sample-counts",
                "give ascending sample counts, each once",
            ));
        }
        if let Some(n) = self.sample_counts.iter().find(|&&n| !(2..=1 << 20).contains(&n)) {
            return Err(Error::config("sample-counts", format!("{n} is not in 2..=1048576")));
        }
        if !(1..=n_bands).contains(&self.top_k) {
            return Err(Error::config(
                "top-k",
                format!("must be 1..={n_bands} (the band count), got {}", self.top_k),
            ));
        }
        if !(self.target > 0.0 && self.target <= 1.0) {
            return Err(Error::config(
                "target",
                format!("must be in (0, 1], got {}", self.target),
            ));
        }
        Ok(())
    }
}

/// Spearman correlation of the band rankings of two coefficient vectors; when a ranking is
/// constant (nothing to rank): 1 if both are, else 0.
///
/// # Shapes
/// `a` [B], `b` [B] -> scalar
pub fn ranking_agreement(a: &[f32], b: &[f32]) -> f64 {
    let ranks = |v: &[f32]| ranks_descending(&v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
    let (ra, rb) = (ranks(a), ranks(b));
    let constant = |r: &[f64]| r.iter().all(|&v| v == r[0]);
    match crate::rank::spearman(&ra, &rb) {
        Some(rho) => rho,
        None if constant(&ra) && constant(&rb) => 1.0,
        None => 0.0,
    }
}

/// Share of the `k` top-ranked bands (largest coefficients, ties by index) two vectors share
/// ([`crate::rank::top_k_overlap`] of their ranks).
///
/// # Shapes
/// `a` [B], `b` [B] -> scalar in [0, 1]
pub fn top_k_agreement(a: &[f32], b: &[f32], k: usize) -> f64 {
    let ranks = |v: &[f32]| ranks_descending(&v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
    crate::rank::top_k_overlap(&ranks(a), &ranks(b), k)
}

/// One utterance, one class, one sample count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StabilityRow {
    /// Position in the input.
    pub position: usize,
    /// Utterance id.
    pub id: String,
    /// The class.
    pub class: String,
    /// Whether it is the model's top class for the unperturbed input.
    pub predicted: bool,
    /// Samples per explanation.
    pub n_samples: usize,
    /// Mean over seed pairs of the Spearman agreement of the band rankings.
    pub spearman_seeds: f64,
    /// Mean over seed pairs of the top-k overlap.
    pub top_k_seeds: f64,
    /// Mean over seeds of the Spearman agreement with the exhaustive explanation (if made).
    pub spearman_exact: Option<f64>,
}

/// Agreement at one sample count over utterance-classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountSummary {
    /// Samples per explanation.
    pub n_samples: usize,
    /// `all` classes or only each utterance's `predicted` class.
    pub scope: String,
    /// Utterance-classes averaged.
    pub n: usize,
    /// Mean seed-to-seed Spearman.
    pub mean_spearman: f64,
    /// Share of utterance-classes whose seed-to-seed Spearman reaches the target.
    pub share_at_target: f64,
    /// Mean top-k overlap.
    pub mean_top_k: f64,
    /// Mean Spearman against the exhaustive explanation.
    pub mean_spearman_exact: Option<f64>,
}

/// The stability study's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StabilitySummary {
    /// Utterances measured.
    pub n_utterances: usize,
    /// Per sample count and scope.
    pub counts: Vec<CountSummary>,
    /// Smallest count whose mean seed-to-seed Spearman over all classes reaches the target.
    pub needed_all_mean: Option<usize>,
    /// Smallest count at which 95 % of utterance-classes reach the target.
    pub needed_all_95: Option<usize>,
    /// The same two for the predicted class only.
    pub needed_predicted_mean: Option<usize>,
    /// Smallest count at which 95 % of utterances' predicted classes reach the target.
    pub needed_predicted_95: Option<usize>,
}

/// Explainers for each seed at the largest count (keeping every sample's outputs), and the
/// exhaustive reference when asked for and exact.
pub struct StabilityRunner<'a> {
    seeds: Vec<Explainer<'a>>,
    exact: Option<Explainer<'a>>,
    cfg: StabilityConfig,
}

impl<'a> StabilityRunner<'a> {
    /// Builds the explainers from `base` (its sample count and seed are replaced).
    pub fn new(
        model: &'a dyn SerModel,
        device: &'a ComputeDevice,
        base: &ExplainConfig,
        cfg: StabilityConfig,
    ) -> Result<Self> {
        let n_bands = base.bands.band_count();
        cfg.validate(n_bands)?;
        let max = *cfg.sample_counts.last().expect("validated: not empty");
        let seeds = cfg
            .seeds
            .iter()
            .map(|&seed| {
                let mut c = base.clone();
                c.masks.samples = SampleCount::Random(max);
                c.masks.seed = seed;
                c.keep_samples = true;
                Explainer::new(model, device, c)
            })
            .collect::<Result<Vec<_>>>()?;
        let exact = (cfg.exhaustive_reference && n_bands <= MAX_EXHAUSTIVE_BANDS && base.masks.keep_prob == 0.5)
            .then(|| {
                let mut c = base.clone();
                c.masks.samples = SampleCount::Exhaustive;
                c.keep_samples = false;
                Explainer::new(model, device, c)
            })
            .transpose()?;
        Ok(StabilityRunner { seeds, exact, cfg })
    }

    /// Whether the exhaustive reference is computed.
    pub fn has_exact_reference(&self) -> bool {
        self.exact.is_some()
    }

    /// One utterance: rows for every class and sample count.
    pub fn measure(&mut self, position: usize, item: &InputItem) -> Result<Vec<StabilityRow>> {
        let prepared = self.seeds[0].preparer().load_and_prepare(item)?;
        let exact = match &mut self.exact {
            Some(e) => Some(e.explain(&prepared)?.fit.coefs),
            None => None,
        };
        let runs: Vec<(UtteranceExplanation, &Explainer<'_>)> = self
            .seeds
            .iter_mut()
            .map(|e| Ok((e.explain(&prepared)?, &*e)))
            .collect::<Result<Vec<_>>>()?;
        let first = &runs[0];
        let predicted = argmax(&first.0.probs);
        let classes = first.1.classes().to_vec();
        let mut rows = vec![];
        for &n in &self.cfg.sample_counts {
            // Each seed's fit on its first n samples: [S] of [C, B].
            let fits = runs
                .iter()
                .map(|(exp, e)| {
                    let probs = exp
                        .sample_probs
                        .as_ref()
                        .ok_or_else(|| Error::Device("sample outputs not kept".into()))?;
                    fit_cpu(
                        e.masks().slice(s![..n, ..]),
                        &e.weights()[..n],
                        probs.slice(s![..n, ..]),
                        &e.config().surrogate,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            for (k, class) in classes.iter().enumerate() {
                let coefs: Vec<Vec<f32>> = fits.iter().map(|f| f.coefs.row(k).to_vec()).collect();
                let (mut rho, mut top, mut pairs) = (0.0, 0.0, 0.0);
                for i in 0..coefs.len() {
                    for j in i + 1..coefs.len() {
                        rho += ranking_agreement(&coefs[i], &coefs[j]);
                        top += top_k_agreement(&coefs[i], &coefs[j], self.cfg.top_k);
                        pairs += 1.0;
                    }
                }
                let spearman_exact = exact.as_ref().map(|x| {
                    let reference = x.row(k).to_vec();
                    coefs.iter().map(|c| ranking_agreement(c, &reference)).sum::<f64>() / coefs.len() as f64
                });
                rows.push(StabilityRow {
                    position,
                    id: item.id.clone(),
                    class: class.clone(),
                    predicted: k == predicted,
                    n_samples: n,
                    spearman_seeds: rho / pairs,
                    top_k_seeds: top / pairs,
                    spearman_exact,
                });
            }
        }
        Ok(rows)
    }

    /// Every item; one that fails becomes a [`Failure`]. `progress(done, total)` after each.
    pub fn run(
        &mut self,
        items: &[InputItem],
        mut progress: impl FnMut(usize, usize),
    ) -> (Vec<StabilityRow>, Vec<Failure>) {
        let (mut rows, mut failures) = (vec![], vec![]);
        for (position, item) in items.iter().enumerate() {
            match self.measure(position, item) {
                Ok(r) => rows.extend(r),
                Err(e) => failures.push(Failure {
                    id: item.id.clone(),
                    position: Some(position),
                    error: format!("{}: {e}", item.path.display()),
                }),
            }
            progress(position + 1, items.len());
        }
        (rows, failures)
    }
}

/// Summarises rows over utterance-classes per sample count, for all classes and for the
/// predicted class only.
pub fn summarize(rows: &[StabilityRow], cfg: &StabilityConfig) -> StabilitySummary {
    let mut counts = vec![];
    for scope in ["all", "predicted"] {
        for &n in &cfg.sample_counts {
            let sel: Vec<&StabilityRow> = rows
                .iter()
                .filter(|r| r.n_samples == n && (scope == "all" || r.predicted))
                .collect();
            let len = sel.len().max(1) as f64;
            let exact: Vec<f64> = sel.iter().filter_map(|r| r.spearman_exact).collect();
            counts.push(CountSummary {
                n_samples: n,
                scope: scope.into(),
                n: sel.len(),
                mean_spearman: sel.iter().map(|r| r.spearman_seeds).sum::<f64>() / len,
                share_at_target: sel.iter().filter(|r| r.spearman_seeds >= cfg.target).count() as f64 / len,
                mean_top_k: sel.iter().map(|r| r.top_k_seeds).sum::<f64>() / len,
                mean_spearman_exact: (!exact.is_empty()).then(|| exact.iter().sum::<f64>() / exact.len() as f64),
            });
        }
    }
    let needed = |scope: &str, ok: &dyn Fn(&CountSummary) -> bool| {
        counts
            .iter()
            .find(|c| c.scope == scope && c.n > 0 && ok(c))
            .map(|c| c.n_samples)
    };
    let mut ids: Vec<usize> = rows.iter().map(|r| r.position).collect();
    ids.sort_unstable();
    ids.dedup();
    StabilitySummary {
        n_utterances: ids.len(),
        needed_all_mean: needed("all", &|c| c.mean_spearman >= cfg.target),
        needed_all_95: needed("all", &|c| c.share_at_target >= 0.95),
        needed_predicted_mean: needed("predicted", &|c| c.mean_spearman >= cfg.target),
        needed_predicted_95: needed("predicted", &|c| c.share_at_target >= 0.95),
        counts,
    }
}

/// Writes the rows: `position,id,class,predicted,n_samples,spearman_seeds,top_k_seeds,spearman_exact`.
pub fn write_rows_csv(out: &mut impl std::io::Write, rows: &[StabilityRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "position,id,class,predicted,n_samples,spearman_seeds,top_k_seeds,spearman_exact"
    )?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.position,
            csv_quoted(&r.id),
            csv_quoted(&r.class),
            r.predicted,
            r.n_samples,
            r.spearman_seeds,
            r.top_k_seeds,
            r.spearman_exact.map_or(String::new(), |v| v.to_string())
        )?;
    }
    Ok(())
}

/// Writes the summary: `scope,n_samples,n,mean_spearman,share_at_target,mean_top_k,mean_spearman_exact`.
pub fn write_summary_csv(out: &mut impl std::io::Write, s: &StabilitySummary) -> std::io::Result<()> {
    writeln!(
        out,
        "scope,n_samples,n,mean_spearman,share_at_target,mean_top_k,mean_spearman_exact"
    )?;
    for c in &s.counts {
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            c.scope,
            c.n_samples,
            c.n,
            c.mean_spearman,
            c.share_at_target,
            c.mean_top_k,
            c.mean_spearman_exact.map_or(String::new(), |v| v.to_string())
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_of_rankings() {
        assert!((ranking_agreement(&[3.0, 2.0, 1.0], &[30.0, 20.0, 10.0]) - 1.0).abs() < 1e-12);
        assert!((ranking_agreement(&[3.0, 2.0, 1.0], &[1.0, 2.0, 3.0]) + 1.0).abs() < 1e-12);
        assert_eq!(ranking_agreement(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(ranking_agreement(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(top_k_agreement(&[0.9, 0.8, 0.1, 0.0], &[0.8, 0.1, 0.9, 0.0], 2), 0.5);
    }

    #[test]
    fn settings_are_checked() {
        let ok = StabilityConfig::default();
        assert!(ok.validate(8).is_ok());
        for bad in [
            StabilityConfig {
                seeds: vec![1],
                ..ok.clone()
            },
            StabilityConfig {
                seeds: vec![1, 1],
                ..ok.clone()
            },
            StabilityConfig {
                sample_counts: vec![512, 256],
                ..ok.clone()
            },
            StabilityConfig { top_k: 9, ..ok.clone() },
            StabilityConfig {
                target: 1.5,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate(8).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn needed_counts_come_from_the_summary() {
        let row = |n, predicted, rho| StabilityRow {
            position: 0,
            id: "a".into(),
            class: if predicted { "x" } else { "y" }.into(),
            predicted,
            n_samples: n,
            spearman_seeds: rho,
            top_k_seeds: 1.0,
            spearman_exact: None,
        };
        let cfg = StabilityConfig {
            sample_counts: vec![64, 128, 256],
            ..StabilityConfig::default()
        };
        let rows = vec![
            row(64, true, 0.9),
            row(64, false, 0.2),
            row(128, true, 0.97),
            row(128, false, 0.5),
            row(256, true, 0.99),
            row(256, false, 0.96),
        ];
        let s = summarize(&rows, &cfg);
        assert_eq!(s.n_utterances, 1);
        assert_eq!(s.needed_predicted_95, Some(128));
        assert_eq!(s.needed_all_95, Some(256));
        assert_eq!(s.needed_all_mean, Some(256));
        assert_eq!(s.needed_predicted_mean, Some(128));
    }
}
