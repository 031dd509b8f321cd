//! Writing a [`RankReport`]: one table per method, the agreement, consensus and transfer tables
//! and a JSON summary, all into an [`OutputDir`] (visible only once committed). Each table is
//! written twice with the same columns and rows: `NAME.csv` and `NAME.parquet` (see
//! [`Table`](crate::table::Table)).
//!
//! | table | rows |
//! |---|---|
//! | `ranking_<method>` | `dataset,feature,importance,ci_low,ci_high,rank` (+ `mean_abs_coef` for `l1_stability`), per corpus by rank |
//! | `kernelshap_by_class` | `dataset,class,group,mean_abs_phi` |
//! | `agreement` | `statistic,across,scope,a,b,value,ci_low,ci_high,n_items`: `kendall_w` across datasets (scope: method) and across methods (scope: corpus; `a` lists the rankings), then `spearman` and `top{k}_overlap` per pair `a`, `b` |
//! | `consensus` | `consensus_rank,feature,mean_rank,sd_rank,ci_low,ci_high,min_rank,max_rank,top_k_fraction`, then `rank_<dataset>/<method>` per ranking |
//! | `consensus_by_condition` | `condition,consensus_rank,feature,mean_rank,sd_rank,ci_low,ci_high,top_k_fraction`, per recording condition (only when a dataset names one) |
//! | `transfer` | `train,test,features,n_features,accuracy,balanced_accuracy,n_test,cross_validated` |
//! | `summary.json` | the settings, corpora, W table, consensus top k (and per condition), mean transfer accuracy per feature set |
//! | `top_<method>.svg/.png` | each corpus's top k items of the method with their intervals |
//! | `agreement.svg/.png` | Spearman's rho between every two rankings of the same items |
//!
//! Numbers are written in Rust's shortest round-trip form; an undefined value is an empty field
//! (CSV) or null (Parquet, JSON).

use super::{Method, RankConfig, RankReport};
use crate::error::Result;
use crate::output::{OutputDir, write_json};
use crate::table::{Cell, Kind, Table};
use serde::Serialize;

/// Mean accuracy of one feature set over the off-diagonal transfer cells.
#[derive(Clone, Debug, Serialize)]
pub struct TransferSummary {
    /// `all`, `top{k}` or `top{k}_without_test`.
    pub features: String,
    /// Mean accuracy over train != test cells (`None` with a single corpus).
    pub mean_cross_corpus_accuracy: Option<f64>,
    /// Mean speaker-independent cross-validated accuracy (train = test).
    pub mean_within_corpus_accuracy: Option<f64>,
}

/// One consensus entry of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct TopFeature {
    /// 1-based consensus position.
    pub rank: usize,
    /// Feature name.
    pub feature: String,
    /// Mean rank over the rankings.
    pub mean_rank: f64,
    /// Bootstrap interval of the mean rank.
    pub ci: [f64; 2],
    /// Standard deviation of the ranks.
    pub sd_rank: f64,
    /// Fraction of rankings with the feature in their top k.
    pub top_k_fraction: f64,
}

/// The consensus top k of one recording condition.
#[derive(Clone, Debug, Serialize)]
pub struct ConditionTop {
    /// The condition (`clean`, `white:10`, ...).
    pub condition: String,
    /// Its consensus top k.
    pub top: Vec<TopFeature>,
}

/// The first `k` rows of a consensus.
fn top_features(c: &super::Consensus, k: usize) -> Vec<TopFeature> {
    c.rows
        .iter()
        .take(k)
        .map(|r| TopFeature {
            rank: r.consensus_rank,
            feature: r.feature.clone(),
            mean_rank: r.mean_rank,
            ci: [r.ci_low, r.ci_high],
            sd_rank: r.sd_rank,
            top_k_fraction: r.top_k_fraction,
        })
        .collect()
}

/// What `summary.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary<'a> {
    /// The settings.
    pub config: &'a RankConfig,
    /// The methods run.
    pub methods: Vec<Method>,
    /// Class names.
    pub classes: &'a [String],
    /// Per corpus.
    pub datasets: &'a [super::DatasetSummary],
    /// KernelSHAP's groups.
    pub groups: &'a [super::FeatureGroup],
    /// Kendall's W rows.
    pub kendall_w: &'a [super::KendallRow],
    /// The consensus top k.
    pub consensus_top: Vec<TopFeature>,
    /// The rankings in the consensus.
    pub consensus_of: &'a [String],
    /// The consensus top k per recording condition (absent when no dataset names one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consensus_top_by_condition: Vec<ConditionTop>,
    /// Mean transfer accuracy per feature set.
    pub transfer: Vec<TransferSummary>,
    /// Wall time of the ranking, seconds.
    pub seconds: f64,
}

impl RankReport {
    /// The content of `summary.json`.
    pub fn summary(&self) -> Summary<'_> {
        let mut sets: Vec<String> = vec![];
        for t in &self.transfer {
            if !sets.contains(&t.features) {
                sets.push(t.features.clone());
            }
        }
        let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let transfer = sets
            .into_iter()
            .map(|s| TransferSummary {
                mean_cross_corpus_accuracy: mean(
                    self.transfer
                        .iter()
                        .filter(|t| t.features == s && !t.cross_validated)
                        .map(|t| t.accuracy)
                        .collect(),
                ),
                mean_within_corpus_accuracy: mean(
                    self.transfer
                        .iter()
                        .filter(|t| t.features == s && t.cross_validated)
                        .map(|t| t.accuracy)
                        .collect(),
                ),
                features: s,
            })
            .collect();
        Summary {
            config: &self.config,
            methods: self.config.methods(),
            classes: &self.classes,
            datasets: &self.datasets,
            groups: &self.groups,
            kendall_w: &self.agreement.kendall,
            consensus_top: top_features(&self.consensus, self.config.top_k),
            consensus_of: &self.consensus.rankings,
            consensus_top_by_condition: self
                .consensus_by_condition
                .iter()
                .map(|(condition, c)| ConditionTop {
                    condition: condition.clone(),
                    top: top_features(c, self.config.top_k),
                })
                .collect(),
            transfer,
            seconds: self.seconds,
        }
    }

    /// The figures: each method's top k per corpus with intervals, and the agreement matrix.
    fn write_figures(&self, out: &OutputDir) -> Result<()> {
        use crate::figures::{TopPanel, agreement_figure, top_features_figure};
        let k = self.agreement.top_k;
        for method in self.config.methods() {
            let panels: Vec<TopPanel> = self
                .rankings
                .iter()
                .filter(|r| r.method == method)
                .map(|r| {
                    let top = r
                        .by_rank()
                        .into_iter()
                        .take(k)
                        .map(|j| (r.items[j].clone(), r.importance[j], r.ci_low[j], r.ci_high[j]))
                        .collect();
                    (r.dataset.clone(), top)
                })
                .collect();
            if panels.is_empty() {
                continue;
            }
            let measure = match method {
                Method::Permutation => "drop in the test score when permuted",
                Method::L1Stability => "selection frequency",
                Method::KernelShap => "mean |Shapley value| (feature group)",
            };
            let title = format!("top {k} by {} (95% bootstrap intervals)", method.name());
            top_features_figure(&panels, measure, &title)?.save(&out.path(&format!("top_{}", method.name())))?;
        }
        let labels: Vec<String> = self.rankings.iter().map(|r| r.label()).collect();
        let n = labels.len();
        let mut rho = ndarray::Array2::<f64>::from_elem((n, n), f64::NAN);
        for (i, r) in self.rankings.iter().enumerate() {
            if r.items.len() > 1 {
                rho[[i, i]] = 1.0;
            }
        }
        for p in &self.agreement.pairs {
            let (Some(i), Some(j)) = (
                labels.iter().position(|l| *l == p.a),
                labels.iter().position(|l| *l == p.b),
            ) else {
                continue;
            };
            let v = p.spearman.unwrap_or(f64::NAN);
            rho[[i, j]] = v;
            rho[[j, i]] = v;
        }
        if n > 0 {
            agreement_figure(rho.view(), &labels, "Spearman between rankings")?.save(&out.path("agreement"))?;
        }
        Ok(())
    }

    /// Writes every table (as CSV and as Parquet) and `summary.json` into `out` (see the module
    /// documentation).
    pub fn write(&self, out: &OutputDir) -> Result<()> {
        for method in self.config.methods() {
            let mut cols = vec![
                ("dataset", Kind::Str),
                ("feature", Kind::Str),
                ("importance", Kind::F64),
                ("ci_low", Kind::F64),
                ("ci_high", Kind::F64),
                ("rank", Kind::F64),
            ];
            if method == Method::L1Stability {
                cols.push(("mean_abs_coef", Kind::F64));
            }
            let mut t = Table::new(cols);
            for r in self.rankings.iter().filter(|r| r.method == method) {
                for j in r.by_rank() {
                    let mut cells: Vec<Cell> = vec![
                        (&r.dataset).into(),
                        (&r.items[j]).into(),
                        r.importance[j].into(),
                        r.ci_low[j].into(),
                        r.ci_high[j].into(),
                        r.rank[j].into(),
                    ];
                    if let Some(c) = &r.mean_abs_coef {
                        cells.push(c[j].into());
                    }
                    t.push(cells);
                }
            }
            t.write(out, &format!("ranking_{}", method.name()))?;
        }
        if !self.shap_by_class.is_empty() {
            let mut t = Table::new([
                ("dataset", Kind::Str),
                ("class", Kind::Str),
                ("group", Kind::Str),
                ("mean_abs_phi", Kind::F64),
            ]);
            for c in &self.shap_by_class {
                for (g, v) in self.groups.iter().zip(&c.mean_abs_phi) {
                    t.push(vec![
                        (&c.dataset).into(),
                        (&c.class).into(),
                        (&g.name).into(),
                        (*v).into(),
                    ]);
                }
            }
            t.write(out, "kernelshap_by_class")?;
        }

        let mut t = Table::new([
            ("statistic", Kind::Str),
            ("across", Kind::Str),
            ("scope", Kind::Str),
            ("a", Kind::Str),
            ("b", Kind::Str),
            ("value", Kind::F64),
            ("ci_low", Kind::F64),
            ("ci_high", Kind::F64),
            ("n_items", Kind::U64),
        ]);
        for w in &self.agreement.kendall {
            t.push(vec![
                "kendall_w".into(),
                (&w.across).into(),
                (&w.scope).into(),
                w.rankings.join(";").into(),
                Cell::Null,
                w.w.into(),
                w.ci_low.into(),
                w.ci_high.into(),
                w.n_items.into(),
            ]);
        }
        let overlap = format!("top{}_overlap", self.agreement.top_k);
        for p in &self.agreement.pairs {
            let n_items = self
                .rankings
                .iter()
                .find(|r| r.label() == p.a)
                .map_or(0, |r| r.items.len());
            t.push(vec![
                "spearman".into(),
                "pair".into(),
                Cell::Null,
                (&p.a).into(),
                (&p.b).into(),
                p.spearman.into(),
                p.ci_low.into(),
                p.ci_high.into(),
                n_items.into(),
            ]);
            t.push(vec![
                (&overlap).into(),
                "pair".into(),
                Cell::Null,
                (&p.a).into(),
                (&p.b).into(),
                p.top_k_overlap.into(),
                Cell::Null,
                Cell::Null,
                n_items.into(),
            ]);
        }
        t.write(out, "agreement")?;

        let mut cols = vec![
            ("consensus_rank".to_string(), Kind::U64),
            ("feature".into(), Kind::Str),
            ("mean_rank".into(), Kind::F64),
            ("sd_rank".into(), Kind::F64),
            ("ci_low".into(), Kind::F64),
            ("ci_high".into(), Kind::F64),
            ("min_rank".into(), Kind::F64),
            ("max_rank".into(), Kind::F64),
            ("top_k_fraction".into(), Kind::F64),
        ];
        cols.extend(self.consensus.rankings.iter().map(|l| (format!("rank_{l}"), Kind::F64)));
        let mut t = Table::new(cols);
        for r in &self.consensus.rows {
            let mut cells: Vec<Cell> = vec![
                r.consensus_rank.into(),
                (&r.feature).into(),
                r.mean_rank.into(),
                r.sd_rank.into(),
                r.ci_low.into(),
                r.ci_high.into(),
                r.min_rank.into(),
                r.max_rank.into(),
                r.top_k_fraction.into(),
            ];
            cells.extend(r.ranks.iter().map(|&v| Cell::from(v)));
            t.push(cells);
        }
        t.write(out, "consensus")?;
        if !self.consensus_by_condition.is_empty() {
            let mut t = Table::new([
                ("condition", Kind::Str),
                ("consensus_rank", Kind::U64),
                ("feature", Kind::Str),
                ("mean_rank", Kind::F64),
                ("sd_rank", Kind::F64),
                ("ci_low", Kind::F64),
                ("ci_high", Kind::F64),
                ("top_k_fraction", Kind::F64),
            ]);
            for (condition, c) in &self.consensus_by_condition {
                for r in &c.rows {
                    t.push(vec![
                        condition.into(),
                        r.consensus_rank.into(),
                        (&r.feature).into(),
                        r.mean_rank.into(),
                        r.sd_rank.into(),
                        r.ci_low.into(),
                        r.ci_high.into(),
                        r.top_k_fraction.into(),
                    ]);
                }
            }
            t.write(out, "consensus_by_condition")?;
        }

        let mut t = Table::new([
            ("train", Kind::Str),
            ("test", Kind::Str),
            ("features", Kind::Str),
            ("n_features", Kind::U64),
            ("accuracy", Kind::F64),
            ("balanced_accuracy", Kind::F64),
            ("n_test", Kind::U64),
            ("cross_validated", Kind::Bool),
        ]);
        for tr in &self.transfer {
            t.push(vec![
                (&tr.train).into(),
                (&tr.test).into(),
                (&tr.features).into(),
                tr.n_features.into(),
                tr.accuracy.into(),
                tr.balanced_accuracy.into(),
                tr.n_test.into(),
                tr.cross_validated.into(),
            ]);
        }
        t.write(out, "transfer")?;
        self.write_figures(out)?;
        write_json(&out.path("summary.json"), &self.summary())
    }
}
