//! Classifiers on fixed-length feature vectors (one row per utterance, e.g. the 88 eGeMAPS
//! functionals of [`crate::features`]): a [`StandardScaler`] in front of one of three heads,
//! fitted on the CPU, deterministic given the seed, and saved as one JSON file.
//!
//! | head     | model                                   | fit                                  |
//! |----------|-----------------------------------------|--------------------------------------|
//! | `logreg` | multinomial logistic regression, L2     | full-batch L-BFGS to convergence     |
//! | `mlp`    | one hidden ReLU layer, softmax output   | Adam on seeded mini-batches          |
//! | `svm`    | libsvm C-SVC, RBF, `gamma = "scale"`    | one-vs-one SMO (WSS2), Platt + coupling |
//!
//! The SVM is scikit-learn's `SVC(C=1, gamma="scale", probability=True)`, the classifier of the
//! EmoLIME paper; see the `svm` module for where it departs from libsvm.

pub mod device;
pub mod eval;
mod logreg;
mod mlp;
mod scaler;
mod svm;

pub use scaler::StandardScaler;

use crate::error::{Error, Result};
use logreg::LogReg;
use mlp::Mlp;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use svm::Svm;

/// The `"format"` tag of a saved [`FeatureClassifier`].
pub const FORMAT: &str = "emolime-feature-classifier";
/// The version of the saved format this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// Which classifier sits behind the scaler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Multinomial logistic regression with an L2 penalty (`logreg`).
    LogReg,
    /// One-hidden-layer perceptron trained with Adam (`mlp`).
    Mlp,
    /// RBF support vector machine with Platt probabilities (`svm`, the default: EmoLIME's).
    #[default]
    Svm,
}

impl FromStr for HeadKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "logreg" => Ok(HeadKind::LogReg),
            "mlp" => Ok(HeadKind::Mlp),
            "svm" => Ok(HeadKind::Svm),
            _ => Err(Error::config("head", format!("expected logreg, mlp or svm, got `{s}`"))),
        }
    }
}

impl fmt::Display for HeadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadKind::LogReg => "logreg",
            HeadKind::Mlp => "mlp",
            HeadKind::Svm => "svm",
        })
    }
}

/// Classifier settings; each head reads the fields it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadConfig {
    /// The head (default `svm`).
    pub kind: HeadKind,
    /// Seed of every random choice: MLP initialisation and batches, SVM Platt folds.
    pub seed: u64,
    /// Inverse regularisation strength of `logreg` (penalty `|W|^2 / (2C)`) and `svm` (box
    /// bound); default 1 as scikit-learn.
    pub c: f64,
    /// `svm`: SMO stopping tolerance on the maximal KKT violation (libsvm's `eps`, 1e-3).
    pub tol: f64,
    /// `mlp`: hidden units (default 64).
    pub hidden: usize,
    /// `mlp`: passes over the training set (default 200).
    pub epochs: usize,
    /// `mlp`: rows per Adam step (default 32; the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// `mlp`: Adam step size (default 1e-3).
    pub learning_rate: f64,
    /// `mlp`: L2 penalty on the weights (default 1e-4, scikit-learn's `alpha`).
    pub alpha: f64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            kind: HeadKind::default(),
            seed: 0,
            c: 1.0,
            tol: 1e-3,
            hidden: 64,
            epochs: 200,
            batch_size: 32,
            learning_rate: 1e-3,
            alpha: 1e-4,
        }
    }
}

impl HeadConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &'static str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::config(field, format!("must be finite and > 0, got {v}")))
            }
        };
        positive("c", self.c)?;
        positive("tol", self.tol)?;
        positive("learning-rate", self.learning_rate)?;
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return Err(Error::config(
                "alpha",
                format!("must be finite and >= 0, got {}", self.alpha),
            ));
        }
        let in_range = |field: &'static str, v: usize, hi: usize| {
            if (1..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(field, format!("must be 1..={hi}, got {v}")))
            }
        };
        in_range("hidden", self.hidden, 1 << 16)?;
        // 0 epochs leaves the mlp at its seeded initial weights: the random-weights control.
        if !(self.epochs == 0 && self.kind == HeadKind::Mlp) {
            in_range("epochs", self.epochs, 1_000_000)?;
        }
        in_range("batch-size", self.batch_size, 1 << 20)?;
        Ok(())
    }
}

/// The fitted head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Head {
    LogReg(LogReg),
    Mlp(Mlp),
    Svm(Svm),
}

/// A scaler and a fitted head, with the names of its features and classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureClassifier {
    /// The feature set the rows come from (e.g. `egemaps-v02`).
    feature_set: String,
    /// One name per feature column. // [D]
    feature_names: Vec<String>,
    /// One name per class; label `i` is `classes[i]`. // [C]
    classes: Vec<String>,
    /// The settings it was fitted with.
    config: HeadConfig,
    /// Standardisation learnt on the training rows.
    scaler: StandardScaler,
    /// The head, on standardised rows.
    head: Head,
}

/// What [`FeatureClassifier::save`] writes: the tag and version, then the model's fields.
#[derive(Serialize)]
struct Saved<'a> {
    format: &'static str,
    version: u64,
    #[serde(flatten)]
    model: &'a FeatureClassifier,
}

/// Returns an [`Error::Config`] naming the first non-finite value of `x`.
fn check_finite(x: ArrayView2<f64>, names: &[String]) -> Result<()> {
    for ((r, c), &v) in x.indexed_iter() {
        if !v.is_finite() {
            let name = names.get(c).map(|n| format!(" (`{n}`)")).unwrap_or_default();
            return Err(Error::config("features", format!("row {r}, column {c}{name} is {v}")));
        }
    }
    Ok(())
}

/// Softmax of every row, in place.
pub(crate) fn softmax_rows(a: &mut Array2<f64>) {
    for mut row in a.rows_mut() {
        let max = row.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
        row.mapv_inplace(|z| (z - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|z| z / sum);
    }
}

impl FeatureClassifier {
    /// Fits the scaler and the head of `cfg.kind` on labelled rows.
    ///
    /// Errors: a bad `cfg`, fewer than 2 or duplicate class names, a label out of range, a class
    /// without examples, a non-finite feature (naming row and column), or the SVM asked for more
    /// than 20 000 rows are [`Error::Config`]; mismatched sizes are [`Error::Shape`].
    ///
    /// # Shapes
    /// `x` [N, D] with `D >= 1`, `labels` [N] with values `< C`, `classes` [C] with `C >= 2`,
    /// `feature_names` [D].
    pub fn fit(
        x: ArrayView2<f64>,
        labels: &[usize],
        classes: Vec<String>,
        feature_set: &str,
        feature_names: Vec<String>,
        cfg: &HeadConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let (n, d) = x.dim();
        let k = classes.len();
        if d == 0 {
            return Err(Error::shape("x", "[N, D>=1]", format!("{:?}", x.shape())));
        }
        if labels.len() != n {
            return Err(Error::shape("labels", format!("[{n}]"), format!("[{}]", labels.len())));
        }
        if feature_names.len() != d {
            return Err(Error::shape(
                "feature_names",
                format!("[{d}]"),
                format!("[{}]", feature_names.len()),
            ));
        }
        if k < 2 {
            return Err(Error::config("classes", format!("need at least 2 classes, got {k}")));
        }
        for (i, c) in classes.iter().enumerate() {
            if classes[..i].contains(c) {
                return Err(Error::config("classes", format!("class `{c}` is listed twice")));
            }
        }
        let mut counts = vec![0usize; k];
        for (row, &l) in labels.iter().enumerate() {
            match counts.get_mut(l) {
                Some(count) => *count += 1,
                None => {
                    return Err(Error::config(
                        "labels",
                        format!("row {row}: label {l} is out of range for {k} classes"),
                    ));
                }
            }
        }
        if let Some(c) = counts.iter().position(|&count| count == 0) {
            return Err(Error::config(
                "labels",
                format!("class `{}` has no examples", classes[c]),
            ));
        }
        check_finite(x, &feature_names)?;
        if cfg.kind == HeadKind::Svm && n > svm::MAX_SVM_ROWS {
            return Err(Error::config(
                "head",
                format!(
                    "svm takes at most {} training rows (its kernel matrix is N^2 doubles), got {n}; \
                     use logreg or mlp",
                    svm::MAX_SVM_ROWS
                ),
            ));
        }
        let scaler = StandardScaler::fit(x)?;
        let xs = scaler.transform(x)?;
        let head = match cfg.kind {
            HeadKind::LogReg => Head::LogReg(LogReg::fit(xs.view(), labels, k, cfg)),
            HeadKind::Mlp => Head::Mlp(Mlp::fit(xs.view(), labels, k, cfg)),
            HeadKind::Svm => Head::Svm(Svm::fit(xs.view(), labels, k, cfg)),
        };
        Ok(FeatureClassifier {
            feature_set: feature_set.to_string(),
            feature_names,
            classes,
            config: cfg.clone(),
            scaler,
            head,
        })
    }

    /// Class probabilities per row; every row sums to 1.
    ///
    /// Errors: a non-finite feature is an [`Error::Config`] naming row and column.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C]
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let d = self.feature_names.len();
        if x.ncols() != d {
            return Err(Error::shape("x", format!("[N, {d}]"), format!("{:?}", x.shape())));
        }
        check_finite(x, &self.feature_names)?;
        let xs = self.scaler.transform(x)?;
        Ok(match &self.head {
            Head::LogReg(h) => h.predict_proba(xs.view()),
            Head::Mlp(h) => h.predict_proba(xs.view()),
            Head::Svm(h) => h.predict_proba(xs.view()),
        })
    }

    /// The most probable class per row (the argmax of [`FeatureClassifier::predict_proba`]; for
    /// the SVM this can differ from scikit-learn's `SVC.predict`, which takes one-vs-one votes,
    /// on rows near a boundary).
    ///
    /// # Shapes
    /// `x` [N, D] -> [N]
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Vec<usize>> {
        let p = self.predict_proba(x)?;
        Ok(p.rows()
            .into_iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                    )
                    .0
            })
            .collect())
    }

    /// The SVM's one-vs-one decision values, pairs in the order (0,1), (0,2), ..., (1,2), ...
    /// (positive: the pair's first class); `None` for the other heads.
    ///
    /// # Shapes
    /// `x` [N, D] -> [N, C(C-1)/2]
    pub fn decision_values(&self, x: ArrayView2<f64>) -> Result<Option<Array2<f64>>> {
        let Head::Svm(svm) = &self.head else {
            return Ok(None);
        };
        let d = self.feature_names.len();
        if x.ncols() != d {
            return Err(Error::shape("x", format!("[N, {d}]"), format!("{:?}", x.shape())));
        }
        check_finite(x, &self.feature_names)?;
        let xs = self.scaler.transform(x)?;
        Ok(Some(svm.decision_values(xs.view())))
    }

    /// The SVM's number of support vectors (distinct training rows); `None` for the other heads.
    pub fn n_support(&self) -> Option<usize> {
        match &self.head {
            Head::Svm(svm) => Some(svm.n_support()),
            _ => None,
        }
    }

    /// The class names; label `i` is `classes()[i]`. // [C]
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The feature set the classifier was trained on.
    pub fn feature_set(&self) -> &str {
        &self.feature_set
    }

    /// The feature names, one per input column. // [D]
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The head's kind.
    pub fn kind(&self) -> HeadKind {
        match self.head {
            Head::LogReg(_) => HeadKind::LogReg,
            Head::Mlp(_) => HeadKind::Mlp,
            Head::Svm(_) => HeadKind::Svm,
        }
    }

    /// The settings it was fitted with.
    pub fn config(&self) -> &HeadConfig {
        &self.config
    }

    /// The standardisation in front of the head.
    pub fn scaler(&self) -> &StandardScaler {
        &self.scaler
    }

    /// Writes the classifier as pretty JSON, atomically, with `"format":
    /// "emolime-feature-classifier"` and `"version": 1`. Floats are written in shortest
    /// round-trip form; `serde_json`'s reader may parse a few of them one ulp off, so a reloaded
    /// model agrees to about 1e-15, not always bit for bit.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::output::write_json(
            path,
            &Saved {
                format: FORMAT,
                version: FORMAT_VERSION,
                model: self,
            },
        )
    }

    /// Reads a classifier written by [`FeatureClassifier::save`]. A missing file is an
    /// [`Error::Io`]; a file that is not JSON, has another format tag or version, or whose
    /// contents are inconsistent (sizes, non-finite weights) is an [`Error::Model`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |reason: String| Error::Model {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not json: {e}")))?;
        match value.get("format").and_then(|v| v.as_str()) {
            Some(FORMAT) => {}
            Some(other) => return Err(bad(format!("format is `{other}`, expected `{FORMAT}`"))),
            None => return Err(bad(format!("no \"format\" field: not an {FORMAT} file"))),
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(bad(format!(
                    "format version {v} is not supported (this build reads {FORMAT_VERSION})"
                )));
            }
            None => return Err(bad("no numeric \"version\" field".into())),
        }
        let model: FeatureClassifier = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        model.check().map_err(bad)?;
        Ok(model)
    }

    /// Checks the consistency of a loaded classifier.
    fn check(&self) -> std::result::Result<(), String> {
        let d = self.feature_names.len();
        let k = self.classes.len();
        if d == 0 {
            return Err("no feature names".into());
        }
        if k < 2 {
            return Err(format!("needs at least 2 classes, has {k}"));
        }
        self.config.validate().map_err(|e| e.to_string())?;
        self.scaler.check(d)?;
        match &self.head {
            Head::LogReg(h) => h.check(d, k),
            Head::Mlp(h) => h.check(d, k),
            Head::Svm(h) => h.check(d, k),
        }
    }
}

/// The fraction of `pred` equal to `truth`.
///
/// # Shapes
/// `pred` [N], `truth` [N] with `N >= 1`.
pub fn accuracy(pred: &[usize], truth: &[usize]) -> Result<f64> {
    if pred.len() != truth.len() || pred.is_empty() {
        return Err(Error::shape(
            "pred",
            format!("[{}] (N >= 1)", truth.len()),
            format!("[{}]", pred.len()),
        ));
    }
    let hits = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    Ok(hits as f64 / pred.len() as f64)
}

/// Confusion counts: entry `[t, p]` counts rows of true class `t` predicted as `p`.
///
/// # Shapes
/// `pred` [N], `truth` [N], labels `< n_classes` -> [C, C]
pub fn confusion_matrix(pred: &[usize], truth: &[usize], n_classes: usize) -> Result<Array2<usize>> {
    if pred.len() != truth.len() {
        return Err(Error::shape(
            "pred",
            format!("[{}]", truth.len()),
            format!("[{}]", pred.len()),
        ));
    }
    let mut m = Array2::zeros((n_classes, n_classes));
    for (row, (&p, &t)) in pred.iter().zip(truth).enumerate() {
        if p >= n_classes || t >= n_classes {
            return Err(Error::config(
                "labels",
                format!("row {row}: label {t} or prediction {p} is out of range for {n_classes} classes"),
            ));
        }
        m[[t, p]] += 1;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Three Gaussian blobs in `d` dimensions, `per` rows each, with offsets and scales that
    /// differ per feature (as raw eGeMAPS values do).
    fn blobs(per: usize, d: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = SplitMix64::new(seed);
        let centres = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]];
        let n = 3 * per;
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            let c = centres[labels[i]].get(j).copied().unwrap_or(0.0);
            (c + rng.normal()) * (1.0 + j as f64) * 10.0 + 100.0 * j as f64
        });
        (x, labels)
    }

    fn names(d: usize) -> Vec<String> {
        (0..d).map(|j| format!("f{j}")).collect()
    }

    fn classes() -> Vec<String> {
        ["neutral", "happy", "sad"].map(String::from).to_vec()
    }

    fn fit(kind: HeadKind, x: &Array2<f64>, y: &[usize]) -> Result<FeatureClassifier> {
        let cfg = HeadConfig {
            kind,
            seed: 1,
            ..HeadConfig::default()
        };
        FeatureClassifier::fit(x.view(), y, classes(), "toy", names(x.ncols()), &cfg)
    }

    #[test]
    fn every_head_separates_blobs() {
        let (x, y) = blobs(60, 5, 1);
        let (xt, yt) = blobs(100, 5, 2);
        for kind in [HeadKind::LogReg, HeadKind::Mlp, HeadKind::Svm] {
            let m = fit(kind, &x, &y).unwrap();
            assert_eq!(m.kind(), kind);
            let p = m.predict_proba(xt.view()).unwrap();
            assert_eq!(p.dim(), (300, 3));
            for row in p.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-9);
                assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
            }
            let acc = accuracy(&m.predict(xt.view()).unwrap(), &yt).unwrap();
            assert!(acc > 0.95, "{kind}: accuracy {acc}");
            // Deterministic.
            let again = fit(kind, &x, &y).unwrap();
            assert_eq!(again, m);
        }
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = blobs(30, 4, 3);
        for kind in [HeadKind::LogReg, HeadKind::Mlp, HeadKind::Svm] {
            let m = fit(kind, &x, &y).unwrap();
            let path = dir.path().join(format!("{kind}.json"));
            m.save(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["format"], FORMAT);
            assert_eq!(v["version"], 1);
            assert_eq!(v["head"]["kind"], kind.to_string());
            let back = FeatureClassifier::load(&path).unwrap();
            assert_eq!(back.classes(), m.classes());
            assert_eq!(back.feature_names(), m.feature_names());
            assert_eq!(back.feature_set(), "toy");
            assert_eq!(back.config(), m.config());
            let (a, b) = (
                m.predict_proba(x.view()).unwrap(),
                back.predict_proba(x.view()).unwrap(),
            );
            let diff = (&a - &b).iter().fold(0.0f64, |acc, v| acc.max(v.abs()));
            assert!(diff < 1e-12, "{kind}: {diff}");
            assert_eq!(m.predict(x.view()).unwrap(), back.predict(x.view()).unwrap());
        }
    }

    #[test]
    fn load_rejects_wrong_files() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("garbage.json", "not json at all".to_string()),
            (
                "other.json",
                r#"{"format": "something-else", "version": 1}"#.to_string(),
            ),
            ("noformat.json", r#"{"version": 1}"#.to_string()),
            ("version.json", format!(r#"{{"format": "{FORMAT}", "version": 2}}"#)),
            ("fields.json", format!(r#"{{"format": "{FORMAT}", "version": 1}}"#)),
        ];
        for (name, text) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            match FeatureClassifier::load(&path) {
                Err(Error::Model { path: p, reason }) => {
                    assert_eq!(p, path);
                    assert!(!reason.is_empty());
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // A saved model with a tampered size.
        let (x, y) = blobs(20, 3, 4);
        let m = fit(HeadKind::LogReg, &x, &y).unwrap();
        let path = dir.path().join("m.json");
        m.save(&path).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["head"]["coef"].as_array_mut().unwrap().pop();
        std::fs::write(&path, v.to_string()).unwrap();
        assert!(matches!(FeatureClassifier::load(&path), Err(Error::Model { .. })));
        assert!(matches!(
            FeatureClassifier::load(&dir.path().join("missing.json")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (x, y) = blobs(10, 3, 5);
        let cfg = HeadConfig::default();
        let fit_with = |x: ArrayView2<f64>, y: &[usize], classes: Vec<String>, names: Vec<String>| {
            FeatureClassifier::fit(x, y, classes, "toy", names, &cfg)
        };
        assert!(matches!(
            fit_with(x.view(), &y[1..], classes(), names(3)),
            Err(Error::Shape { what: "labels", .. })
        ));
        assert!(matches!(
            fit_with(x.view(), &y, classes(), names(2)),
            Err(Error::Shape {
                what: "feature_names",
                ..
            })
        ));
        assert!(matches!(
            fit_with(x.view(), &y, classes()[..1].to_vec(), names(3)),
            Err(Error::Config { field: "classes", .. })
        ));
        let dup = ["a", "b", "a"].map(String::from).to_vec();
        assert!(matches!(
            fit_with(x.view(), &y, dup, names(3)),
            Err(Error::Config { field: "classes", .. })
        ));
        let mut four = classes();
        four.push("angry".into());
        match fit_with(x.view(), &y, four, names(3)) {
            Err(Error::Config {
                field: "labels",
                reason,
            }) => assert!(reason.contains("angry"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let mut big = y.clone();
        big[4] = 7;
        assert!(matches!(
            fit_with(x.view(), &big, classes(), names(3)),
            Err(Error::Config { field: "labels", .. })
        ));
        let mut nan = x.clone();
        nan[[7, 2]] = f64::NAN;
        match fit_with(nan.view(), &y, classes(), names(3)) {
            Err(Error::Config {
                field: "features",
                reason,
            }) => {
                assert!(reason.contains("row 7") && reason.contains("column 2"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let empty = Array2::<f64>::zeros((30, 0));
        assert!(matches!(
            fit_with(empty.view(), &y, classes(), vec![]),
            Err(Error::Shape { .. })
        ));
        let bad_cfg = HeadConfig {
            c: 0.0,
            ..HeadConfig::default()
        };
        assert!(matches!(
            FeatureClassifier::fit(x.view(), &y, classes(), "toy", names(3), &bad_cfg),
            Err(Error::Config { field: "c", .. })
        ));

        let m = fit(HeadKind::LogReg, &x, &y).unwrap();
        let wide = Array2::<f64>::zeros((2, 4));
        assert!(matches!(
            m.predict_proba(wide.view()),
            Err(Error::Shape { what: "x", .. })
        ));
        assert!(matches!(m.predict(wide.view()), Err(Error::Shape { .. })));
        assert!(matches!(
            m.predict_proba(nan.view()),
            Err(Error::Config { field: "features", .. })
        ));
        assert_eq!(
            m.predict_proba(Array2::<f64>::zeros((0, 3)).view()).unwrap().dim(),
            (0, 3)
        );
        assert!(m.decision_values(x.view()).unwrap().is_none());
    }

    #[test]
    fn config_and_kind_parsing() {
        for kind in [HeadKind::LogReg, HeadKind::Mlp, HeadKind::Svm] {
            assert_eq!(kind.to_string().parse::<HeadKind>().unwrap(), kind);
        }
        assert!(matches!(
            "rf".parse::<HeadKind>(),
            Err(Error::Config { field: "head", .. })
        ));
        assert!(HeadConfig::default().validate().is_ok());
        let bad = [
            HeadConfig {
                hidden: 0,
                ..HeadConfig::default()
            },
            HeadConfig {
                epochs: 0,
                ..HeadConfig::default()
            },
            HeadConfig {
                batch_size: 0,
                ..HeadConfig::default()
            },
            HeadConfig {
                learning_rate: f64::NAN,
                ..HeadConfig::default()
            },
            HeadConfig {
                alpha: -1.0,
                ..HeadConfig::default()
            },
            HeadConfig {
                tol: 0.0,
                ..HeadConfig::default()
            },
        ];
        for cfg in bad {
            assert!(matches!(cfg.validate(), Err(Error::Config { .. })), "{cfg:?}");
        }
    }

    #[test]
    fn metrics() {
        assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 1, 1, 2]).unwrap(), 0.75);
        assert!(matches!(accuracy(&[0], &[0, 1]), Err(Error::Shape { .. })));
        assert!(matches!(accuracy(&[], &[]), Err(Error::Shape { .. })));
        let m = confusion_matrix(&[0, 1, 2, 2], &[0, 1, 1, 2], 3).unwrap();
        assert_eq!(m[[1, 2]], 1);
        assert_eq!(m.sum(), 4);
        assert!(matches!(confusion_matrix(&[3], &[0], 3), Err(Error::Config { .. })));
    }

    #[test]
    fn svm_with_a_single_example_class_and_constant_feature() {
        let (mut x, mut y) = blobs(15, 3, 6);
        x.column_mut(1).fill(3.0);
        y[0] = 2;
        y[3] = 2;
        y[6] = 2;
        let mut lone = y.clone();
        for v in lone.iter_mut() {
            if *v == 2 {
                *v = 1;
            }
        }
        lone[0] = 2;
        let m = fit(HeadKind::Svm, &x, &lone).unwrap();
        let p = m.predict_proba(x.view()).unwrap();
        assert!(p.iter().all(|v| v.is_finite()));
        assert_eq!(m.decision_values(x.view()).unwrap().unwrap().ncols(), 3);
    }
}
