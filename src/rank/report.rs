//! Writing a [`RankReport`]: one CSV per method, the agreement, consensus and transfer tables and
//! a JSON summary, all into an [`OutputDir`] (visible only once committed).
//!
//! | file | rows |
//! |---|---|
//! | `ranking_<method>.csv` | `dataset,feature,importance,ci_low,ci_high,rank` (+ `mean_abs_coef` for `l1_stability`), per corpus by rank |
//! | `kernelshap_by_class.csv` | `dataset,class,group,mean_abs_phi` |
//! | `agreement.csv` | `statistic,across,scope,a,b,value,ci_low,ci_high,n_items`: `kendall_w` across datasets (scope: method) and across methods (scope: corpus; `a` lists the rankings), then `spearman` and `top{k}_overlap` per pair `a`, `b` |
//! | `consensus.csv` | `consensus_rank,feature,mean_rank,sd_rank,ci_low,ci_high,min_rank,max_rank,top_k_fraction`, then `rank_<dataset>/<method>` per ranking |
//! | `consensus_by_condition.csv` | `condition,consensus_rank,feature,mean_rank,sd_rank,ci_low,ci_high,top_k_fraction`, per recording condition (only when a dataset names one) |
//! | `transfer.csv` | `train,test,features,n_features,accuracy,balanced_accuracy,n_test,cross_validated` |
//! | `summary.json` | the settings, corpora, W table, consensus top k (and per condition), mean transfer accuracy per feature set |
//! | `top_<method>.svg/.png` | each corpus's top k items of the method with their intervals |
//! | `agreement.svg/.png` | Spearman's rho between every two rankings of the same items |
//!
//! Numbers are written in Rust's shortest round-trip form; an undefined value is an empty field
//! (CSV) or `null` (JSON).

use super::{Method, RankConfig, RankReport};
use crate::error::Result;
use crate::output::{OutputDir, csv_field, write_atomic, write_json};
use serde::Serialize;

/// A number as a CSV field: empty when not finite.
fn num(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { String::new() }
}

/// Appends one CSV line.
fn line(out: &mut String, cells: &[String]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, c);
    }
    out.push('\n');
}

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

    /// Writes every table and `summary.json` into `out` (see the module documentation).
    pub fn write(&self, out: &OutputDir) -> Result<()> {
        for method in self.config.methods() {
            let mut s = String::from("dataset,feature,importance,ci_low,ci_high,rank");
            if method == Method::L1Stability {
                s.push_str(",mean_abs_coef");
            }
            s.push('\n');
            for r in self.rankings.iter().filter(|r| r.method == method) {
                for j in r.by_rank() {
                    let mut cells = vec![
                        r.dataset.clone(),
                        r.items[j].clone(),
                        num(r.importance[j]),
                        num(r.ci_low[j]),
                        num(r.ci_high[j]),
                        num(r.rank[j]),
                    ];
                    if let Some(c) = &r.mean_abs_coef {
                        cells.push(num(c[j]));
                    }
                    line(&mut s, &cells);
                }
            }
            write_atomic(&out.path(&format!("ranking_{}.csv", method.name())), s.as_bytes())?;
        }
        if !self.shap_by_class.is_empty() {
            let mut s = String::from("dataset,class,group,mean_abs_phi\n");
            for c in &self.shap_by_class {
                for (g, v) in self.groups.iter().zip(&c.mean_abs_phi) {
                    line(&mut s, &[c.dataset.clone(), c.class.clone(), g.name.clone(), num(*v)]);
                }
            }
            write_atomic(&out.path("kernelshap_by_class.csv"), s.as_bytes())?;
        }

        let mut s = String::from("statistic,across,scope,a,b,value,ci_low,ci_high,n_items\n");
        for w in &self.agreement.kendall {
            line(
                &mut s,
                &[
                    "kendall_w".into(),
                    w.across.clone(),
                    w.scope.clone(),
                    w.rankings.join(";"),
                    String::new(),
                    num(w.w.unwrap_or(f64::NAN)),
                    num(w.ci_low),
                    num(w.ci_high),
                    w.n_items.to_string(),
                ],
            );
        }
        let overlap = format!("top{}_overlap", self.agreement.top_k);
        for p in &self.agreement.pairs {
            let n_items = self
                .rankings
                .iter()
                .find(|r| r.label() == p.a)
                .map_or(0, |r| r.items.len())
                .to_string();
            line(
                &mut s,
                &[
                    "spearman".into(),
                    "pair".into(),
                    String::new(),
                    p.a.clone(),
                    p.b.clone(),
                    num(p.spearman.unwrap_or(f64::NAN)),
                    num(p.ci_low),
                    num(p.ci_high),
                    n_items.clone(),
                ],
            );
            line(
                &mut s,
                &[
                    overlap.clone(),
                    "pair".into(),
                    String::new(),
                    p.a.clone(),
                    p.b.clone(),
                    num(p.top_k_overlap),
                    String::new(),
                    String::new(),
                    n_items,
                ],
            );
        }
        write_atomic(&out.path("agreement.csv"), s.as_bytes())?;

        let mut s =
            String::from("consensus_rank,feature,mean_rank,sd_rank,ci_low,ci_high,min_rank,max_rank,top_k_fraction");
        for label in &self.consensus.rankings {
            s.push(',');
            csv_field(&mut s, &format!("rank_{label}"));
        }
        s.push('\n');
        for r in &self.consensus.rows {
            let mut cells = vec![
                r.consensus_rank.to_string(),
                r.feature.clone(),
                num(r.mean_rank),
                num(r.sd_rank),
                num(r.ci_low),
                num(r.ci_high),
                num(r.min_rank),
                num(r.max_rank),
                num(r.top_k_fraction),
            ];
            cells.extend(r.ranks.iter().map(|&v| num(v)));
            line(&mut s, &cells);
        }
        write_atomic(&out.path("consensus.csv"), s.as_bytes())?;
        if !self.consensus_by_condition.is_empty() {
            let mut s =
                String::from("condition,consensus_rank,feature,mean_rank,sd_rank,ci_low,ci_high,top_k_fraction\n");
            for (condition, c) in &self.consensus_by_condition {
                for r in &c.rows {
                    line(
                        &mut s,
                        &[
                            condition.clone(),
                            r.consensus_rank.to_string(),
                            r.feature.clone(),
                            num(r.mean_rank),
                            num(r.sd_rank),
                            num(r.ci_low),
                            num(r.ci_high),
                            num(r.top_k_fraction),
                        ],
                    );
                }
            }
            write_atomic(&out.path("consensus_by_condition.csv"), s.as_bytes())?;
        }

        let mut s = String::from("train,test,features,n_features,accuracy,balanced_accuracy,n_test,cross_validated\n");
        for t in &self.transfer {
            line(
                &mut s,
                &[
                    t.train.clone(),
                    t.test.clone(),
                    t.features.clone(),
                    t.n_features.to_string(),
                    num(t.accuracy),
                    num(t.balanced_accuracy),
                    t.n_test.to_string(),
                    t.cross_validated.to_string(),
                ],
            );
        }
        write_atomic(&out.path("transfer.csv"), s.as_bytes())?;
        self.write_figures(out)?;
        write_json(&out.path("summary.json"), &self.summary())
    }
}
