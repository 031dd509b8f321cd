//! Key interpretable features across datasets (issue #7, first slice): rank the eGeMAPS features
//! of several labelled corpora with several methods, all on speaker-independent folds and with
//! bootstrap 95 % intervals, then measure how far the rankings agree and whether the consensus
//! top-k transfers between corpora.
//!
//! ```text
//! per corpus ─ grouped K-fold by speaker ([`folds`]) ─┬─ permutation importance (`permutation`)
//!                                                    ├─ KernelSHAP over feature groups ([`shap`])
//!                                                    └─ L1 logistic stability selection (`stability`)
//! all rankings ─ Kendall's W, Spearman, top-k overlap, consensus ([`agreement`])
//! corpus pairs ─ train on one, test on another: all features vs the consensus top-k ([`transfer`])
//! ```
//!
//! What each interval resamples:
//! - permutation importance and KernelSHAP: the pooled out-of-fold test rows (every row is tested
//!   exactly once, by the model of the fold that did not see its speaker), class-stratified
//!   bootstrap of those rows with the models fixed (test-set uncertainty, not refitting);
//! - stability selection: the subsamples (the per-subsample selection indicators and |coefficients|
//!   are resampled with replacement).
//!
//! Every interval, rank, W and consensus spread comes from the same `bootstrap` replicates, so an
//! agreement statistic's interval carries the uncertainty of the rankings it compares. These are
//! percentile intervals of the replicate statistic: a replicate ranking is noisier than the point
//! ranking, so the intervals of rank statistics (W, rho, mean rank of a top feature) sit towards
//! disagreement, with the point estimate near their favourable end. Everything is a pure
//! function of the data and [`RankConfig::seed`], whatever the number of workers.

pub mod agreement;
pub mod folds;
pub mod l1;
mod permutation;
pub mod probe;
pub mod report;
mod rng;
pub mod shap;
mod stability;
pub mod stats;
pub mod transfer;

pub use agreement::{
    Agreement, Consensus, ConsensusRow, KendallRow, PairRow, consensus_of, kendall_w, spearman, top_k_overlap,
};
pub use folds::{Fold, speaker_folds};
pub use l1::{L1Fit, L1Options, fit_l1_logistic, lambda_for_selection, lambda_max, n_selected};
pub use shap::{FeatureGroup, egemaps_groups, feature_groups};
pub use transfer::TransferRow;

use crate::classify::{FeatureClassifier, HeadConfig, HeadKind};
use crate::error::{Error, Result};
use crate::features::corpus::FileFeatures;
use crate::input::InputItem;
use ndarray::{Array2, ArrayView2, Axis};
use rng::{Purpose, Rng};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Folds per corpus when none are asked for (capped at the corpus's speaker count).
pub const DEFAULT_FOLDS: usize = 5;

/// Separates a corpus from its recording condition in a dataset name, `CORPUS@CONDITION`
/// (`espeak@white:10`, see [`crate::conditions`]); a name without it is the clean recording.
/// Datasets of one corpus under several conditions share their folds, their Kendall's W across
/// conditions is reported, and transfer never pairs them (they hold the same speakers).
pub const CONDITION_SEPARATOR: char = '@';

/// The corpus of a dataset name: `espeak@white:10` -> `espeak`, `espeak` -> `espeak`.
pub fn corpus_of(dataset: &str) -> &str {
    dataset.split_once(CONDITION_SEPARATOR).map_or(dataset, |(c, _)| c)
}

/// The recording condition of a dataset name: `espeak@white:10` -> `white:10`, `espeak` ->
/// `clean`.
pub fn condition_of(dataset: &str) -> &str {
    dataset.split_once(CONDITION_SEPARATOR).map_or("clean", |(_, c)| c)
}

/// A ranking method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Drop in the test score when one feature's column is permuted in the test fold.
    Permutation,
    /// Fraction of half-samples in which an L1 logistic model keeps the feature.
    L1Stability,
    /// Mean |Shapley value| of the classifier's probabilities over feature groups.
    #[serde(rename = "kernelshap")]
    KernelShap,
}

impl Method {
    /// The name used in file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Permutation => "permutation",
            Method::L1Stability => "l1_stability",
            Method::KernelShap => "kernelshap",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The score permutation importance measures the drop of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean per-class recall (default; insensitive to class imbalance).
    #[default]
    BalancedAccuracy,
    /// Fraction of rows classified correctly.
    Accuracy,
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "balanced_accuracy" | "balanced-accuracy" => Ok(Metric::BalancedAccuracy),
            "accuracy" => Ok(Metric::Accuracy),
            _ => Err(Error::config(
                "metric",
                format!("expected balanced_accuracy or accuracy, got `{s}`"),
            )),
        }
    }
}

/// Settings of a ranking run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RankConfig {
    /// Folds per corpus. `None`: [`DEFAULT_FOLDS`], capped at each corpus's speaker count
    /// (leave-one-speaker-out for small corpora); `Some(k)`: exactly `k`, and a corpus with fewer
    /// speakers is an error.
    pub folds: Option<usize>,
    /// Seed of folds, permutations, subsamples, coalitions, bootstraps and the classifier.
    pub seed: u64,
    /// The classifier behind permutation importance, KernelSHAP and transfer (default `logreg`;
    /// its `seed` is ignored: the fits use a stream derived from [`RankConfig::seed`]).
    pub head: HeadConfig,
    /// Size of the consensus top set (transfer, top-k overlap), default 10.
    pub top_k: usize,
    /// The score permutation importance measures.
    pub metric: Metric,
    /// Permutations per feature and test fold (default 5).
    pub permutation_repeats: usize,
    /// Bootstrap replicates behind every interval (default 1000).
    pub bootstrap: usize,
    /// Stability-selection half-samples per corpus, dealt round-robin to the folds' training
    /// parts (default 50).
    pub subsamples: usize,
    /// Features the L1 model should keep: each corpus's penalty is the one at which the fit on
    /// the whole (standardised) corpus keeps this many (default 10); the half-samples use it.
    pub l1_select: usize,
    /// The L1 solver's settings.
    pub l1: L1Options,
    /// KernelSHAP coalitions per test row including the full and empty ones (default 1024;
    /// 0 skips KernelSHAP).
    pub shap_coalitions: usize,
    /// Worker threads (0: one per core).
    pub workers: usize,
}

impl Default for RankConfig {
    fn default() -> Self {
        RankConfig {
            folds: None,
            seed: 0,
            head: HeadConfig {
                kind: HeadKind::LogReg,
                ..HeadConfig::default()
            },
            top_k: 10,
            metric: Metric::BalancedAccuracy,
            permutation_repeats: 5,
            bootstrap: 1000,
            subsamples: 50,
            l1_select: 10,
            l1: L1Options::default(),
            shap_coalitions: 1024,
            workers: 0,
        }
    }
}

impl RankConfig {
    /// Checks the settings (those that depend on the data are checked by [`plan`] and [`rank`]).
    pub fn validate(&self) -> Result<()> {
        self.head.validate()?;
        self.l1.validate()?;
        if let Some(k) = self.folds
            && k < 2
        {
            return Err(Error::config("folds", format!("need at least 2 folds, got {k}")));
        }
        let at_least = |field: &'static str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(field, format!("must be {lo}..={hi}, got {v}")))
            }
        };
        at_least("top-k", self.top_k, 1, 1 << 16)?;
        at_least("permutation-repeats", self.permutation_repeats, 1, 1000)?;
        at_least("bootstrap", self.bootstrap, 10, 1_000_000)?;
        at_least("subsamples", self.subsamples, 2, 100_000)?;
        if self.shap_coalitions != 0 {
            at_least("shap-coalitions", self.shap_coalitions, 8, 1 << 20)?;
        }
        at_least("l1-select", self.l1_select, 1, 1 << 16)?;
        Ok(())
    }

    /// The methods this configuration runs.
    pub fn methods(&self) -> Vec<Method> {
        let mut m = vec![Method::Permutation, Method::L1Stability];
        if self.shap_coalitions > 0 {
            m.push(Method::KernelShap);
        }
        m
    }

    /// The classifier settings with the run's seed.
    fn head_config(&self) -> HeadConfig {
        HeadConfig {
            seed: Rng::keyed(self.seed, Purpose::Head, &[]).next_u64(),
            ..self.head.clone()
        }
    }
}

/// The labels and speakers of one corpus, enough to plan its folds before any feature exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetMeta {
    /// The corpus name (`--corpus NAME=PATH`).
    pub name: String,
    /// Emotion label per row. // [N]
    pub labels: Vec<String>,
    /// Speaker per row. // [N]
    pub speakers: Vec<String>,
}

impl DatasetMeta {
    /// The labels and speakers of manifest items. Errors ([`Error::Config`] on `corpus`): an item
    /// without a label or a speaker (naming the corpus and the file).
    pub fn from_items(name: &str, items: &[InputItem]) -> Result<Self> {
        let mut labels = Vec::with_capacity(items.len());
        let mut speakers = Vec::with_capacity(items.len());
        for item in items {
            let missing = |what: &str| {
                Error::config(
                    "corpus",
                    format!(
                        "corpus `{name}`: {} has no {what} (the manifest needs `label` and `speaker` columns)",
                        item.path.display()
                    ),
                )
            };
            labels.push(item.label.clone().ok_or_else(|| missing("label"))?);
            speakers.push(item.speaker.clone().ok_or_else(|| missing("speaker"))?);
        }
        Ok(DatasetMeta {
            name: name.to_string(),
            labels,
            speakers,
        })
    }
}

/// One corpus's feature rows with their labels and speakers.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Name, labels and speakers. // [N]
    pub meta: DatasetMeta,
    /// Feature rows. // [N, D]
    pub x: Array2<f64>,
}

impl Dataset {
    /// The rows of the items whose extraction succeeded (as returned by
    /// [`crate::features::corpus::extract_corpus`]), with one message per failed item.
    ///
    /// Errors: an item without label or speaker (see [`DatasetMeta::from_items`]), results of
    /// another length or rows of differing widths ([`Error::Shape`]).
    ///
    /// # Shapes
    /// `items` [N], `results` [N] of `[1, D]` -> `x` [N_ok, D]
    pub fn from_extraction(
        name: &str,
        items: &[InputItem],
        results: Vec<Result<FileFeatures>>,
    ) -> Result<(Dataset, Vec<String>)> {
        if results.len() != items.len() {
            return Err(Error::shape(
                "results",
                format!("[{}]", items.len()),
                format!("[{}]", results.len()),
            ));
        }
        let meta = DatasetMeta::from_items(name, items)?;
        let (mut rows, mut labels, mut speakers, mut failed) = (vec![], vec![], vec![], vec![]);
        let mut width = None;
        for ((r, label), speaker) in results.into_iter().zip(meta.labels).zip(meta.speakers) {
            match r {
                Err(e) => failed.push(format!("corpus `{name}`: {e}")),
                Ok(f) => {
                    let d = *width.get_or_insert(f.ncols());
                    if f.dim() != (1, d) {
                        return Err(Error::shape(
                            "features",
                            format!("[1, {d}]"),
                            format!("{:?}", f.shape()),
                        ));
                    }
                    rows.extend(f.iter().copied());
                    labels.push(label);
                    speakers.push(speaker);
                }
            }
        }
        let d = width.unwrap_or(0);
        let x = Array2::from_shape_vec((labels.len(), d), rows).expect("rows of width d");
        Ok((
            Dataset {
                meta: DatasetMeta {
                    name: name.to_string(),
                    labels,
                    speakers,
                },
                x,
            },
            failed,
        ))
    }
}

/// The folds of every corpus and the classes they share, decided before any work.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The union of the corpora's labels, sorted; label `i` is `classes[i]`. // [C]
    pub classes: Vec<String>,
    /// Per corpus, its speaker-independent folds.
    pub folds: Vec<Vec<Fold>>,
}

/// Checks that every corpus can be ranked and plans its folds.
///
/// Errors ([`Error::Config`] on `corpus`, naming the corpus): no corpus, a duplicate or empty
/// name, an empty corpus, rows without matching labels and speakers, fewer than two classes in
/// all, a corpus without an example of a class the others have, a single speaker, fewer speakers
/// than `cfg.folds`, or a fold whose training speakers lack a class; and a bad `cfg`.
pub fn plan(datasets: &[&DatasetMeta], cfg: &RankConfig) -> Result<Plan> {
    cfg.validate()?;
    let bad = |msg: String| Error::config("corpus", msg);
    if datasets.is_empty() {
        return Err(bad("no corpus given".into()));
    }
    for (i, d) in datasets.iter().enumerate() {
        if d.name.is_empty() {
            return Err(bad("a corpus has an empty name".into()));
        }
        if datasets[..i].iter().any(|o| o.name == d.name) {
            return Err(bad(format!("corpus `{}` is given twice", d.name)));
        }
        if d.labels.is_empty() {
            return Err(bad(format!("corpus `{}` has no usable file", d.name)));
        }
        if d.labels.len() != d.speakers.len() {
            return Err(bad(format!(
                "corpus `{}` has {} labels for {} speakers",
                d.name,
                d.labels.len(),
                d.speakers.len()
            )));
        }
    }
    let mut classes: Vec<String> = datasets.iter().flat_map(|d| d.labels.iter().cloned()).collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(bad(format!(
            "need at least 2 classes across the corpora, found {}",
            classes.join(", ")
        )));
    }
    let mut all_folds = Vec::with_capacity(datasets.len());
    for (di, d) in datasets.iter().enumerate() {
        if let Some(c) = classes.iter().find(|c| !d.labels.contains(c)) {
            return Err(bad(format!(
                "corpus `{}` has no `{c}` example (classes across the corpora: {})",
                d.name,
                classes.join(", ")
            )));
        }
        let n_spk = folds::speaker_counts(&d.speakers).len();
        if n_spk < 2 {
            return Err(bad(format!(
                "corpus `{}` has a single speaker (`{}`): no speaker-independent split is possible",
                d.name, d.speakers[0]
            )));
        }
        let k = match cfg.folds {
            Some(k) if k > n_spk => {
                return Err(bad(format!(
                    "corpus `{}` has {n_spk} speakers, fewer than --folds {k}",
                    d.name
                )));
            }
            Some(k) => k,
            None => DEFAULT_FOLDS.min(n_spk),
        };
        // Keyed by the first dataset of the same corpus, so its conditions share their folds.
        let key = datasets
            .iter()
            .position(|o| corpus_of(&o.name) == corpus_of(&d.name))
            .unwrap_or(di);
        let fold_seed = Rng::keyed(cfg.seed, Purpose::Folds, &[key as u64]).next_u64();
        let f = speaker_folds(&d.speakers, k, fold_seed)?;
        for (fi, fold) in f.iter().enumerate() {
            if let Some(c) = classes.iter().find(|c| !fold.train.iter().any(|&i| &d.labels[i] == *c)) {
                return Err(bad(format!(
                    "corpus `{}`: fold {} trains on speakers without a `{c}` example (held out: {}); use fewer folds",
                    d.name,
                    fi + 1,
                    fold.speakers.join(", ")
                )));
            }
        }
        all_folds.push(f);
    }
    Ok(Plan {
        classes,
        folds: all_folds,
    })
}

/// One method's ranking of one corpus.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranking {
    /// The method.
    pub method: Method,
    /// The corpus.
    pub dataset: String,
    /// What is ranked: feature names, or feature-group names for KernelSHAP. // [D]
    pub items: Vec<String>,
    /// The method's importance (drop in score, selection frequency, mean |phi|). // [D]
    pub importance: Vec<f64>,
    /// Bootstrap 2.5 % percentile of the importance. // [D]
    pub ci_low: Vec<f64>,
    /// Bootstrap 97.5 % percentile of the importance. // [D]
    pub ci_high: Vec<f64>,
    /// Rank, 1 = most important; ties share their mean rank. // [D]
    pub rank: Vec<f64>,
    /// L1 stability only: mean |standardised coefficient| (summed over classes) over the
    /// subsamples, the tie-break between equal selection frequencies. // [D]
    pub mean_abs_coef: Option<Vec<f64>>,
    /// Bootstrap replicates of the ranking key (higher = more important). // [B, D]
    pub replicates: Array2<f64>,
}

impl Ranking {
    /// Builds a ranking from the importance, the ranking key and their bootstrap replicates.
    fn new(
        method: Method,
        dataset: &str,
        items: Vec<String>,
        importance: Vec<f64>,
        key: &[f64],
        importance_reps: ArrayView2<f64>,
        key_reps: Array2<f64>,
    ) -> Ranking {
        let (ci_low, ci_high) = stats::percentile_ci(importance_reps);
        Ranking {
            method,
            dataset: dataset.to_string(),
            items,
            importance,
            ci_low,
            ci_high,
            rank: stats::ranks_descending(key),
            mean_abs_coef: None,
            replicates: key_reps,
        }
    }

    /// Item indices, most important first (ties in item order).
    pub fn by_rank(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by(|&a, &b| self.rank[a].total_cmp(&self.rank[b]).then(a.cmp(&b)));
        order
    }

    /// `dataset/method`, the ranking's label in agreement tables.
    pub fn label(&self) -> String {
        format!("{}/{}", self.dataset, self.method)
    }
}

/// What is known about one corpus after the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetSummary {
    /// The corpus.
    pub name: String,
    /// Rows used.
    pub n_rows: usize,
    /// Rows per class, in class order. // [C]
    pub class_counts: Vec<usize>,
    /// Distinct speakers.
    pub n_speakers: usize,
    /// Folds used.
    pub folds: usize,
    /// Test speakers of each fold.
    pub fold_speakers: Vec<Vec<String>>,
    /// Speaker-independent cross-validated accuracy of the head on all features.
    pub cv_accuracy: f64,
    /// Same, balanced accuracy.
    pub cv_balanced_accuracy: f64,
    /// The L1 penalty used (calibrated to keep `l1_select` features on the whole corpus).
    pub l1_lambda: f64,
    /// Mean number of features the L1 model kept per subsample.
    pub l1_mean_selected: f64,
    /// Subsample fits that hit the iteration limit before the tolerance.
    pub l1_not_converged: usize,
}

/// KernelSHAP's mean |phi| of one corpus per explained class and group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShapByClass {
    /// The corpus.
    pub dataset: String,
    /// The class whose probability is explained.
    pub class: String,
    /// Mean |phi| per group over the corpus's out-of-fold rows. // [G]
    pub mean_abs_phi: Vec<f64>,
}

/// Everything a ranking run produces.
#[derive(Clone, Debug)]
pub struct RankReport {
    /// The settings.
    pub config: RankConfig,
    /// Feature names. // [D]
    pub feature_names: Vec<String>,
    /// KernelSHAP's groups (empty when it was skipped). // [G]
    pub groups: Vec<FeatureGroup>,
    /// Class names. // [C]
    pub classes: Vec<String>,
    /// Per corpus.
    pub datasets: Vec<DatasetSummary>,
    /// Per method, then per corpus.
    pub rankings: Vec<Ranking>,
    /// KernelSHAP per class (empty when skipped).
    pub shap_by_class: Vec<ShapByClass>,
    /// Agreement between rankings.
    pub agreement: Agreement,
    /// The consensus of the feature-level rankings.
    pub consensus: Consensus,
    /// Per recording condition (`clean` first when present, then in dataset order), the
    /// consensus of that condition's feature-level rankings (corpora x methods); empty when no
    /// dataset names a condition (`CORPUS@CONDITION`).
    pub consensus_by_condition: Vec<(String, Consensus)>,
    /// Cross-corpus accuracy.
    pub transfer: Vec<TransferRow>,
    /// Wall time of [`rank`] in seconds.
    pub seconds: f64,
}

/// The stage a progress report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Fitting the fold models, permutation importance and KernelSHAP (one task per fold).
    Folds,
    /// Stability-selection fits (one task per subsample).
    Stability,
    /// Transfer fits (one task per train/test/feature-set cell).
    Transfer,
}

impl Stage {
    /// A short name for progress bars.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Folds => "folds",
            Stage::Stability => "stability",
            Stage::Transfer => "transfer",
        }
    }
}

/// A progress report: `done` of `total` tasks of `stage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The stage.
    pub stage: Stage,
    /// Tasks finished.
    pub done: usize,
    /// Tasks in the stage.
    pub total: usize,
}

/// Label indices of `labels` into `classes`.
fn label_indices(labels: &[String], classes: &[String]) -> Vec<usize> {
    labels
        .iter()
        .map(|l| classes.iter().position(|c| c == l).expect("plan collected every label"))
        .collect()
}

/// Ranks the features of every corpus with every method of `cfg`, compares the rankings and
/// measures transfer. See the module documentation for what is resampled.
///
/// Errors: everything [`plan`] refuses, rows of another width than `feature_names`
/// ([`Error::Shape`]), a non-finite feature ([`Error::Config`] naming corpus, row and feature),
/// too few KernelSHAP coalitions for the groups, and any classifier error.
///
/// # Shapes
/// every `x` [N_d, D], `feature_names` [D] with `D >= 2`.
pub fn rank(
    datasets: &[Dataset],
    feature_names: &[String],
    cfg: &RankConfig,
    progress: impl FnMut(Progress),
) -> Result<RankReport> {
    rank_on(datasets, feature_names, cfg, None, progress)
}

/// [`rank`] with the fold models' scoring for permutation importance and KernelSHAP on
/// `device` (`None`: on the host, in f64): the test rows and all their permutations of a block
/// of features, or every coalition of a block of test rows, go through the model in one call
/// ([`crate::classify::device::DeviceHead`], f32). The fits, the KernelSHAP surrogate solves,
/// stability selection and transfer run on the host either way. Device and host scores can
/// differ in a prediction that is a near-tie between two classes, so drops can differ by a
/// row's share; seeds are the same.
///
/// # Shapes
/// as [`rank`].
pub fn rank_on(
    datasets: &[Dataset],
    feature_names: &[String],
    cfg: &RankConfig,
    device: Option<&burn::tensor::Device>,
    mut progress: impl FnMut(Progress),
) -> Result<RankReport> {
    let t0 = std::time::Instant::now();
    let d = feature_names.len();
    if d < 2 {
        return Err(Error::shape("feature_names", "[D>=2]", format!("[{d}]")));
    }
    let metas: Vec<&DatasetMeta> = datasets.iter().map(|ds| &ds.meta).collect();
    let plan = plan(&metas, cfg)?;
    for ds in datasets {
        let name = &ds.meta.name;
        if ds.x.dim() != (ds.meta.labels.len(), d) {
            return Err(Error::shape(
                "x",
                format!("[{}, {d}] for corpus `{name}`", ds.meta.labels.len()),
                format!("{:?}", ds.x.shape()),
            ));
        }
        if let Some(((r, c), v)) = ds.x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::config(
                "corpus",
                format!("corpus `{name}`: row {r}, feature `{}` is {v}", feature_names[c]),
            ));
        }
    }
    if cfg.top_k > d {
        return Err(Error::config(
            "top-k",
            format!("must be at most the {d} features, got {}", cfg.top_k),
        ));
    }
    if cfg.l1_select > d {
        return Err(Error::config(
            "l1-select",
            format!("must be at most the {d} features, got {}", cfg.l1_select),
        ));
    }
    let classes = plan.classes.clone();
    let k = classes.len();
    let labels: Vec<Vec<usize>> = datasets
        .iter()
        .map(|ds| label_indices(&ds.meta.labels, &classes))
        .collect();
    let groups = if cfg.shap_coalitions > 0 {
        let g = feature_groups(feature_names);
        if cfg.shap_coalitions < 2 * g.len() + 2 {
            return Err(Error::config(
                "shap-coalitions",
                format!(
                    "{} groups need at least {} coalitions, got {}",
                    g.len(),
                    2 * g.len() + 2,
                    cfg.shap_coalitions
                ),
            ));
        }
        g
    } else {
        vec![]
    };
    let head = cfg.head_config();
    let names = feature_names.to_vec();

    // Stage 1: one task per (corpus, fold): fit, permutation importance, KernelSHAP.
    let tasks: Vec<(usize, usize)> = plan
        .folds
        .iter()
        .enumerate()
        .flat_map(|(di, f)| (0..f.len()).map(move |fi| (di, fi)))
        .collect();
    let total = tasks.len();
    let fold_out = stats::par_map(
        total,
        cfg.workers,
        |t| {
            let (di, fi) = tasks[t];
            let fold = &plan.folds[di][fi];
            permutation::run_fold(&permutation::FoldJob {
                x: datasets[di].x.view(),
                labels: &labels[di],
                fold,
                classes: &classes,
                feature_names: &names,
                head: &head,
                cfg,
                groups: &groups,
                task: [di as u64, fi as u64],
                device,
                block_values: permutation::DEVICE_BLOCK_VALUES,
            })
        },
        |done| {
            progress(Progress {
                stage: Stage::Folds,
                done,
                total,
            })
        },
    );
    let mut fold_out = fold_out.into_iter().collect::<Result<Vec<_>>>()?.into_iter();

    let mut perm_rankings = vec![];
    let mut shap_rankings = vec![];
    let mut shap_by_class = vec![];
    let mut summaries = vec![];
    for (di, ds) in datasets.iter().enumerate() {
        let n = ds.x.nrows();
        let outs: Vec<permutation::FoldOutput> = fold_out.by_ref().take(plan.folds[di].len()).collect();
        let pooled = permutation::Pooled::assemble(n, d, k, groups.len(), &outs);
        let y = &labels[di];
        let mut boot_rng = Rng::keyed(cfg.seed, Purpose::Bootstrap, &[di as u64, 0]);
        let counts = stats::stratified_bootstrap(y, k, cfg.bootstrap, &mut boot_rng);
        let weights_of = |c: &[f64]| match cfg.metric {
            Metric::BalancedAccuracy => stats::balanced_weights(y, c, k),
            Metric::Accuracy => stats::plain_weights(c),
        };
        let base_w = ndarray::Array1::from(weights_of(&vec![1.0; n]));
        let mut rep_w = Array2::zeros((cfg.bootstrap, n));
        for (mut row, c) in rep_w.rows_mut().into_iter().zip(counts.rows()) {
            row.assign(&ndarray::Array1::from(weights_of(
                c.as_slice().expect("standard layout"),
            )));
        }
        let importance = base_w.dot(&pooled.drop).to_vec();
        let reps = rep_w.dot(&pooled.drop);
        perm_rankings.push(Ranking::new(
            Method::Permutation,
            &ds.meta.name,
            names.clone(),
            importance.clone(),
            &importance,
            reps.view(),
            reps.clone(),
        ));
        if !groups.is_empty() {
            // Mean |phi| over rows: plain row weights, bootstrap by the same class-stratified draws.
            let plain = ndarray::Array1::from(stats::plain_weights(&vec![1.0; n]));
            let mut rep_plain = Array2::zeros((cfg.bootstrap, n));
            for (mut row, c) in rep_plain.rows_mut().into_iter().zip(counts.rows()) {
                row.assign(&ndarray::Array1::from(stats::plain_weights(
                    c.as_slice().expect("standard layout"),
                )));
            }
            let row_imp = pooled.shap_abs.mean_axis(Axis(1)).expect("k >= 2");
            let importance = plain.dot(&row_imp).to_vec();
            let reps = rep_plain.dot(&row_imp);
            shap_rankings.push(Ranking::new(
                Method::KernelShap,
                &ds.meta.name,
                groups.iter().map(|g| g.name.clone()).collect(),
                importance.clone(),
                &importance,
                reps.view(),
                reps.clone(),
            ));
            for (c, class) in classes.iter().enumerate() {
                let per_row = pooled.shap_abs.index_axis(Axis(1), c);
                shap_by_class.push(ShapByClass {
                    dataset: ds.meta.name.clone(),
                    class: class.clone(),
                    mean_abs_phi: plain.dot(&per_row).to_vec(),
                });
            }
        }
        let mut class_counts = vec![0; k];
        y.iter().for_each(|&l| class_counts[l] += 1);
        summaries.push(DatasetSummary {
            name: ds.meta.name.clone(),
            n_rows: n,
            class_counts,
            n_speakers: folds::speaker_counts(&ds.meta.speakers).len(),
            folds: plan.folds[di].len(),
            fold_speakers: plan.folds[di].iter().map(|f| f.speakers.clone()).collect(),
            cv_accuracy: crate::classify::accuracy(&pooled.pred, y)?,
            cv_balanced_accuracy: stats::balanced_accuracy(&pooled.pred, y, k),
            l1_lambda: 0.0,
            l1_mean_selected: 0.0,
            l1_not_converged: 0,
        });
    }

    // Stage 2: stability selection, one task per (corpus, subsample).
    let stab = stability::run(datasets, &labels, k, &plan, cfg, &names, |done, total| {
        progress(Progress {
            stage: Stage::Stability,
            done,
            total,
        })
    })?;
    let mut l1_rankings = vec![];
    for (di, s) in stab.into_iter().enumerate() {
        summaries[di].l1_lambda = s.lambda;
        summaries[di].l1_mean_selected = s.mean_selected;
        summaries[di].l1_not_converged = s.not_converged;
        l1_rankings.push(s.ranking);
    }

    let mut rankings = perm_rankings;
    rankings.extend(l1_rankings);
    rankings.extend(shap_rankings);
    let agreement = agreement::agreement(&rankings, &names, cfg.top_k);
    let consensus = agreement::consensus(&rankings, &names, cfg.top_k, None);
    let mut conditions: Vec<&str> = vec![];
    for ds in datasets {
        let c = condition_of(&ds.meta.name);
        if !conditions.contains(&c) {
            conditions.push(c);
        }
    }
    conditions.sort_by_key(|c| *c != "clean");
    let consensus_by_condition = if datasets.iter().any(|ds| ds.meta.name.contains(CONDITION_SEPARATOR)) {
        conditions
            .iter()
            .map(|&c| {
                let of: Vec<&Ranking> = rankings.iter().filter(|r| condition_of(&r.dataset) == c).collect();
                (c.to_string(), agreement::consensus_of(&of, &names, cfg.top_k))
            })
            .collect()
    } else {
        vec![]
    };

    // Stage 3: transfer.
    let transfer = transfer::run(
        datasets,
        &labels,
        &classes,
        &plan,
        &names,
        &rankings,
        &consensus,
        cfg,
        &head,
        |done, total| {
            progress(Progress {
                stage: Stage::Transfer,
                done,
                total,
            })
        },
    )?;

    Ok(RankReport {
        config: cfg.clone(),
        feature_names: names,
        groups,
        classes,
        datasets: summaries,
        rankings,
        shap_by_class,
        agreement,
        consensus,
        consensus_by_condition,
        transfer,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Fits the head on `rows` of `x` restricted to `cols`.
pub(crate) fn fit_head(
    x: ArrayView2<f64>,
    labels: &[usize],
    rows: &[usize],
    cols: &[usize],
    classes: &[String],
    names: &[String],
    head: &HeadConfig,
) -> Result<FeatureClassifier> {
    let sub = x.select(Axis(0), rows).select(Axis(1), cols);
    let y: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
    let n: Vec<String> = cols.iter().map(|&j| names[j].clone()).collect();
    FeatureClassifier::fit(sub.view(), &y, classes.to_vec(), "rank", n, head)
}

#[cfg(test)]
mod tests;
