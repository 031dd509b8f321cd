//! The EmoLIME study as one configuration: datasets x models x explainer settings, planned as a
//! list of `emolime` commands (train, explain, faithfulness, stability, then robustness across
//! the runs), each with the output it makes, so a rerun skips every step whose output exists.
//!
//! A study file is TOML:
//!
//! ```toml
//! out = "study-out"          # output folder, relative to this file (or --out)
//! device = "cpu"             # as --device (default auto)
//! seed = 0
//!
//! [explain]                  # optional: as the explain flags
//! samples = "1000"           # N, exhaustive or auto[:TARGET[:MAX]]
//! bands = 8
//!
//! [[dataset]]
//! name = "espeak"
//! train = "corpus/split_espeak_trainspk.csv"   # --input of train (relative to this file)
//! test = "corpus/split_espeak_testspk.csv"     # --input of explain
//!
//! [[model]]
//! name = "cnn"
//! kind = "cnn"               # cnn, egemaps or backbone
//!
//! [[model]]
//! name = "egemaps-logreg"
//! kind = "egemaps"
//! head = "logreg"            # svm (default), logreg or mlp
//!
//! [faithfulness]             # optional: deletion curves for every run
//! repeats = 5
//!
//! [stability]                # optional: seeds x sample counts on the first `limit` test files
//! seeds = [0, 1, 2]
//! sample_counts = [64, 256, 1000]
//! limit = 16
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A study file, as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Output folder (relative to the study file); `--out` overrides it.
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Device for every step (`--device`), default `auto`.
    #[serde(default)]
    pub device: Option<String>,
    /// Seed of training, masks and permutations.
    #[serde(default)]
    pub seed: u64,
    /// Explanation settings shared by every run.
    #[serde(default)]
    pub explain: ExplainSettings,
    /// The datasets (at least one).
    #[serde(default)]
    pub dataset: Vec<DatasetEntry>,
    /// The model kinds trained on each dataset (at least one).
    #[serde(default)]
    pub model: Vec<ModelEntry>,
    /// Deletion curves for every run, when present.
    #[serde(default)]
    pub faithfulness: Option<FaithfulnessSettings>,
    /// Stability for every run, when present.
    #[serde(default)]
    pub stability: Option<StabilitySettings>,
    /// Permutations of the robustness test.
    #[serde(default = "default_permutations")]
    pub permutations: usize,
}

fn default_permutations() -> usize {
    10_000
}

/// Explanation settings of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainSettings {
    /// `--samples`: N, `exhaustive` or `auto[:TARGET[:MAX]]` (default 1000).
    #[serde(default = "default_samples")]
    pub samples: String,
    /// `--bands` (default 8).
    #[serde(default = "default_bands")]
    pub bands: usize,
    /// `--fill`: zero, mean or noise (default zero).
    #[serde(default = "default_fill")]
    pub fill: String,
    /// `--batch-size` (default: 4096 for mel models on a GPU, else 256).
    #[serde(default)]
    pub batch_size: Option<usize>,
}

fn default_samples() -> String {
    "1000".into()
}
fn default_bands() -> usize {
    8
}
fn default_fill() -> String {
    "zero".into()
}

impl Default for ExplainSettings {
    fn default() -> Self {
        ExplainSettings {
            samples: default_samples(),
            bands: default_bands(),
            fill: default_fill(),
            batch_size: None,
        }
    }
}

/// One dataset: what models are trained on and what they explain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// Its name in outputs (letters, digits, `-`, `_`).
    pub name: String,
    /// Training input: a folder or CSV manifest (relative to the study file).
    pub train: PathBuf,
    /// Input to explain (e.g. held-out speakers).
    pub test: PathBuf,
}

/// A model kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// emolime's log-mel CNN.
    Cnn,
    /// A classifier on eGeMAPS functionals.
    Egemaps,
    /// A classifier on a wav2vec 2.0 / HuBERT layer.
    Backbone,
}

/// One model kind, trained on each dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Its name in outputs (letters, digits, `-`, `_`).
    pub name: String,
    /// What is trained.
    pub kind: ModelKind,
    /// Head of `egemaps` and `backbone` models: svm, logreg or mlp (default svm).
    #[serde(default)]
    pub head: Option<String>,
    /// Checkpoint folder of a `backbone` model (relative to the study file).
    #[serde(default)]
    pub backbone: Option<PathBuf>,
    /// Layer of a `backbone` model (default `last`).
    #[serde(default)]
    pub layer: Option<String>,
    /// Training epochs (default: the trainer's).
    #[serde(default)]
    pub epochs: Option<usize>,
}

/// Deletion-curve settings of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaithfulnessSettings {
    /// Random orders per utterance (default 5).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Remove every band count instead of the paper's fractions.
    #[serde(default)]
    pub every_band: bool,
}

fn default_repeats() -> usize {
    5
}

/// Stability settings of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StabilitySettings {
    /// Seeds compared (default 0, 1, 2).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Sample counts compared (default 64 to 2000).
    #[serde(default = "default_counts")]
    pub sample_counts: Vec<usize>,
    /// Test files measured per run (the first ones; default 16).
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_seeds() -> Vec<u64> {
    vec![0, 1, 2]
}
fn default_counts() -> Vec<usize> {
    vec![64, 256, 1000, 2000]
}
fn default_limit() -> usize {
    16
}

/// What a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// `emolime train`.
    Train,
    /// `emolime explain`.
    Explain,
    /// `emolime faithfulness`.
    Faithfulness,
    /// `emolime stability`.
    Stability,
    /// `emolime robustness`.
    Robustness,
}

/// One command of a study and the output it makes (done when that exists).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What it is.
    pub kind: StepKind,
    /// Dataset, if the step is for one.
    pub dataset: Option<String>,
    /// Model, if the step is for one.
    pub model: Option<String>,
    /// The file or folder it writes.
    pub output: PathBuf,
    /// The `emolime` arguments (without the program name).
    pub args: Vec<String>,
}

impl Step {
    /// The command line, for logs and the report.
    pub fn command_line(&self) -> String {
        std::iter::once("emolime".to_string())
            .chain(self.args.iter().map(|a| {
                if a.contains([' ', '"', '\'']) {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            }))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl StudyConfig {
    /// Reads and checks a study file; every error names the file (and the line, for TOML
    /// errors such as an unknown key). Relative paths are resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut cfg: StudyConfig = toml::from_str(&text).map_err(|e| Error::run(path, format!("study file: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(out) = &mut cfg.out {
            resolve(out);
        }
        for d in &mut cfg.dataset {
            resolve(&mut d.train);
            resolve(&mut d.test);
        }
        for m in &mut cfg.model {
            if let Some(b) = &mut m.backbone {
                resolve(b);
            }
        }
        cfg.validate().map_err(|e| Error::run(path, e.to_string()))?;
        Ok(cfg)
    }

    /// Checks everything that can be checked without reading audio: names, inputs that exist,
    /// model settings, explanation and stability settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Error::config(field, reason);
        if self.dataset.is_empty() {
            return Err(bad("dataset", "give at least one [[dataset]]".into()));
        }
        if self.model.is_empty() {
            return Err(bad("model", "give at least one [[model]]".into()));
        }
        let valid_name =
            |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        for (i, d) in self.dataset.iter().enumerate() {
            if !valid_name(&d.name) {
                return Err(bad(
                    "dataset",
                    format!("name `{}`: use letters, digits, - and _", d.name),
                ));
            }
            if self.dataset[..i].iter().any(|o| o.name == d.name) {
                return Err(bad("dataset", format!("name `{}` is used twice", d.name)));
            }
            for (what, p) in [("train", &d.train), ("test", &d.test)] {
                if !p.exists() {
                    return Err(bad(
                        "dataset",
                        format!("`{}`: {what} input {} does not exist", d.name, p.display()),
                    ));
                }
            }
        }
        for (i, m) in self.model.iter().enumerate() {
            if !valid_name(&m.name) {
                return Err(bad("model", format!("name `{}`: use letters, digits, - and _", m.name)));
            }
            if self.model[..i].iter().any(|o| o.name == m.name) {
                return Err(bad("model", format!("name `{}` is used twice", m.name)));
            }
            if let Some(h) = &m.head {
                if m.kind == ModelKind::Cnn {
                    return Err(bad(
                        "model",
                        format!("`{}`: a cnn has no head (`head = \"{h}\"`)", m.name),
                    ));
                }
                if !["svm", "logreg", "mlp"].contains(&h.as_str()) {
                    return Err(bad(
                        "model",
                        format!("`{}`: head `{h}` is not svm, logreg or mlp", m.name),
                    ));
                }
            }
            match (m.kind, &m.backbone) {
                (ModelKind::Backbone, None) => {
                    return Err(bad(
                        "model",
                        format!("`{}`: a backbone model needs `backbone = \"FOLDER\"`", m.name),
                    ));
                }
                (ModelKind::Backbone, Some(b)) if !b.is_dir() => {
                    return Err(bad(
                        "model",
                        format!("`{}`: backbone {} is not a folder", m.name, b.display()),
                    ));
                }
                (ModelKind::Cnn | ModelKind::Egemaps, Some(_)) => {
                    return Err(bad(
                        "model",
                        format!("`{}`: only a backbone model takes `backbone`", m.name),
                    ));
                }
                _ => {}
            }
            if m.layer.is_some() && m.kind != ModelKind::Backbone {
                return Err(bad(
                    "model",
                    format!("`{}`: only a backbone model takes `layer`", m.name),
                ));
            }
        }
        if let Some(d) = &self.device {
            d.parse::<crate::device::DeviceSpec>()?;
        }
        if !(1..=10_000_000).contains(&self.permutations) {
            return Err(bad(
                "permutations",
                format!("must be 1..=10000000, got {}", self.permutations),
            ));
        }
        self.explain.samples.parse::<crate::sampling::SampleCount>()?;
        if !["zero", "mean", "noise"].contains(&self.explain.fill.as_str()) {
            return Err(bad(
                "explain",
                format!("fill `{}` is not zero, mean or noise", self.explain.fill),
            ));
        }
        if let Some(s) = &self.stability {
            let cfg = crate::stability::StabilityConfig {
                seeds: s.seeds.clone(),
                sample_counts: s.sample_counts.clone(),
                ..crate::stability::StabilityConfig::default()
            };
            cfg.validate(self.explain.bands)
                .map_err(|e| bad("stability", e.to_string()))?;
            if s.limit == 0 {
                return Err(bad("stability", "limit must be >= 1".into()));
            }
        }
        Ok(())
    }

    /// The model file of (dataset, model) under `out`.
    pub fn model_path(&self, out: &Path, d: &DatasetEntry, m: &ModelEntry) -> PathBuf {
        let ext = if m.kind == ModelKind::Cnn { "emolime" } else { "json" };
        out.join("models").join(format!("{}.{}.{ext}", d.name, m.name))
    }

    /// Every step, in order: per dataset and model train, explain, faithfulness, stability;
    /// then robustness over the explain runs when there are at least two datasets and two
    /// models.
    pub fn steps(&self, out: &Path) -> Vec<Step> {
        let s = |v: &dyn ToString| v.to_string();
        let p = |v: &Path| v.display().to_string();
        let device = self.device.clone().unwrap_or_else(|| "auto".into());
        let mut explain_flags: Vec<String> = vec![
            "--samples".into(),
            self.explain.samples.clone(),
            "--bands".into(),
            s(&self.explain.bands),
            "--fill".into(),
            self.explain.fill.clone(),
        ];
        let batch_flag: Vec<String> = self
            .explain
            .batch_size
            .map(|b| vec!["--batch-size".into(), b.to_string()])
            .unwrap_or_default();
        explain_flags.extend(batch_flag.iter().cloned());
        let mut steps = vec![];
        let mut runs = vec![];
        for d in &self.dataset {
            for m in &self.model {
                let model = self.model_path(out, d, m);
                let mut train: Vec<String> = vec!["train".into(), "--input".into(), p(&d.train)];
                train.extend(["--out".into(), p(&model), "--seed".into(), s(&self.seed)]);
                train.extend(["--device".into(), device.clone(), "--force".into()]);
                match m.kind {
                    ModelKind::Cnn => {}
                    ModelKind::Egemaps => train.extend(["--features".into(), "egemaps".into()]),
                    ModelKind::Backbone => {
                        let b = m.backbone.as_deref().expect("validated: backbone models have one");
                        train.extend(["--backbone".into(), p(b)]);
                        train.extend(["--layer".into(), m.layer.clone().unwrap_or_else(|| "last".into())]);
                    }
                }
                if m.kind != ModelKind::Cnn {
                    train.extend(["--head".into(), m.head.clone().unwrap_or_else(|| "svm".into())]);
                }
                if let Some(e) = m.epochs {
                    train.extend(["--epochs".into(), s(&e)]);
                }
                let names = (Some(d.name.clone()), Some(m.name.clone()));
                steps.push(Step {
                    kind: StepKind::Train,
                    dataset: names.0.clone(),
                    model: names.1.clone(),
                    output: model.clone(),
                    args: train,
                });
                let common = |cmd: &str, dir: &Path| -> Vec<String> {
                    let mut a: Vec<String> = vec![cmd.into(), "--quiet".into(), "--model".into(), p(&model)];
                    a.extend(["--input".into(), p(&d.test), "--out".into(), p(dir)]);
                    a.extend(["--device".into(), device.clone()]);
                    a
                };
                let run = out.join("explain").join(&d.name).join(&m.name);
                let mut explain = common("explain", &run);
                explain.extend(explain_flags.iter().cloned());
                explain.extend(["--seed".into(), s(&self.seed), "--resume".into()]);
                steps.push(Step {
                    kind: StepKind::Explain,
                    dataset: names.0.clone(),
                    model: names.1.clone(),
                    output: run.clone(),
                    args: explain,
                });
                runs.push(format!("{}:{}={}", d.name, m.name, p(&run)));
                if let Some(f) = &self.faithfulness {
                    let dir = out.join("faithfulness").join(&d.name).join(&m.name);
                    let mut a = common("faithfulness", &dir);
                    a.extend(explain_flags.iter().cloned());
                    a.extend(["--seed".into(), s(&self.seed), "--repeats".into(), s(&f.repeats)]);
                    if f.every_band {
                        a.push("--every-band".into());
                    }
                    steps.push(Step {
                        kind: StepKind::Faithfulness,
                        dataset: names.0.clone(),
                        model: names.1.clone(),
                        output: dir,
                        args: a,
                    });
                }
                if let Some(st) = &self.stability {
                    let dir = out.join("stability").join(&d.name).join(&m.name);
                    let mut a = common("stability", &dir);
                    let join = |v: &[String]| v.join(",");
                    a.extend([
                        "--seeds".into(),
                        join(&st.seeds.iter().map(|v| v.to_string()).collect::<Vec<_>>()),
                        "--sample-counts".into(),
                        join(&st.sample_counts.iter().map(|v| v.to_string()).collect::<Vec<_>>()),
                        "--limit".into(),
                        s(&st.limit),
                        "--bands".into(),
                        s(&self.explain.bands),
                        "--fill".into(),
                        self.explain.fill.clone(),
                    ]);
                    a.extend(batch_flag.iter().cloned());
                    steps.push(Step {
                        kind: StepKind::Stability,
                        dataset: names.0.clone(),
                        model: names.1.clone(),
                        output: dir,
                        args: a,
                    });
                }
            }
        }
        if self.dataset.len() >= 2 && self.model.len() >= 2 {
            let dir = out.join("robustness");
            let mut a: Vec<String> = vec!["robustness".into()];
            for r in runs {
                a.extend(["--run".into(), r]);
            }
            a.extend(["--out".into(), p(&dir), "--permutations".into(), s(&self.permutations)]);
            a.extend(["--seed".into(), s(&self.seed)]);
            steps.push(Step {
                kind: StepKind::Robustness,
                dataset: None,
                model: None,
                output: dir,
                args: a,
            });
        }
        steps
    }
}

impl StudyConfig {
    /// Writes `out/study_summary.csv`: one row per (dataset, model) with the headline numbers
    /// the study's steps wrote, read back from their outputs (empty where a step did not run):
    /// utterances explained, test accuracy, the speaker-independent UA of the model kind,
    /// dAUC with its interval, and the sample counts stability needs.
    pub fn write_summary(&self, out: &Path) -> Result<()> {
        let read = |p: PathBuf| -> Option<serde_json::Value> {
            std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok())
        };
        let num = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_f64()).map_or(String::new(), |v| v.to_string());
        let mut text = String::from(
            "dataset,model,n_explained,test_accuracy,speaker_cv_ua,dauc_prob,dauc_prob_low,dauc_prob_high,\
             dauc_unchanged,stability_needed_all_mean,stability_needed_predicted_mean\n",
        );
        for d in &self.dataset {
            for m in &self.model {
                let run = |step: &str, file: &str| read(out.join(step).join(&d.name).join(&m.name).join(file));
                let explain = run("explain", "summary.json");
                let report = explain.as_ref().map(|e| &e["report"]);
                let eval = read(self.model_path(out, d, m).with_extension("eval.json"));
                let faith = run("faithfulness", "faithfulness.json");
                let fs = faith.as_ref().map(|f| &f["summary"]);
                let stab = run("stability", "stability.json");
                let ss = stab.as_ref().map(|s| &s["summary"]);
                text.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{},{}\n",
                    d.name,
                    m.name,
                    num(report.and_then(|r| r.get("n_explained"))),
                    num(report.and_then(|r| r.get("accuracy"))),
                    num(eval.as_ref().and_then(|e| e.pointer("/pooled/ua"))),
                    num(fs.and_then(|f| f.pointer("/dauc_prob/mean"))),
                    num(fs.and_then(|f| f.pointer("/dauc_prob/low"))),
                    num(fs.and_then(|f| f.pointer("/dauc_prob/high"))),
                    num(fs.and_then(|f| f.pointer("/dauc_unchanged/mean"))),
                    num(ss.and_then(|s| s.get("needed_all_mean"))),
                    num(ss.and_then(|s| s.get("needed_predicted_mean"))),
                ));
            }
        }
        crate::output::write_atomic(&out.join("study_summary.csv"), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/a.csv"), "path,label\n").unwrap();
        let p = dir.join("study.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = r#"
out = "o"
device = "cpu"
[explain]
samples = "auto:0.9"
[[dataset]]
name = "d1"
train = "data/a.csv"
test = "data/a.csv"
[[dataset]]
name = "d2"
train = "data/a.csv"
test = "data/a.csv"
[[model]]
name = "cnn"
kind = "cnn"
[[model]]
name = "feat"
kind = "egemaps"
head = "logreg"
[faithfulness]
[stability]
limit = 4
"#;

    #[test]
    fn a_study_plans_every_step() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StudyConfig::load(&write(tmp.path(), GOOD)).unwrap();
        assert_eq!(cfg.out.as_deref(), Some(tmp.path().join("o").as_path()));
        let steps = cfg.steps(Path::new("/o"));
        // 2 datasets x 2 models x (train, explain, faithfulness, stability) + robustness.
        assert_eq!(steps.len(), 2 * 2 * 4 + 1);
        assert_eq!(steps[0].kind, StepKind::Train);
        assert!(
            steps[4].command_line().contains("--features egemaps --head logreg"),
            "{}",
            steps[4].command_line()
        );
        assert!(steps[1].command_line().contains("--samples auto:0.9"));
        let last = steps.last().unwrap();
        assert_eq!(last.kind, StepKind::Robustness);
        assert_eq!(last.args.iter().filter(|a| *a == "--run").count(), 4);
    }

    #[test]
    fn bad_studies_are_refused_naming_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        for (edit, want) in [
            (GOOD.replace("limit = 4", "limit = 4\nlimt = 3"), "unknown field `limt`"),
            (
                GOOD.replace(
                    "test = \"data/a.csv\"\n[[dataset]]",
                    "test = \"data/nope.csv\"\n[[dataset]]",
                ),
                "nope.csv",
            ),
            (GOOD.replace("kind = \"egemaps\"", "kind = \"forest\""), "forest"),
            (GOOD.replace("name = \"d2\"", "name = \"d1\""), "used twice"),
            (GOOD.replace("samples = \"auto:0.9\"", "samples = \"lots\""), "lots"),
            (GOOD.replace("head = \"logreg\"", "head = \"tree\""), "tree"),
            (GOOD.replace("device = \"cpu\"", "device = \"tpu\""), "tpu"),
            (
                GOOD.replace("device = \"cpu\"", "device = \"cpu\"\npermutations = 0"),
                "permutations",
            ),
        ] {
            let err = StudyConfig::load(&write(tmp.path(), &edit)).unwrap_err().to_string();
            assert!(err.contains("study.toml") && err.contains(want), "{want}: {err}");
        }
        // The unknown key's line is named.
        let err = StudyConfig::load(&write(tmp.path(), &GOOD.replace("limit = 4", "limit = 4\nlimt = 3")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 24"), "{err}");
    }
}
