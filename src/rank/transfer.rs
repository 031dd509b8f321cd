//! Cross-corpus transfer: train the head on one corpus and test it on another, with all features
//! and with the consensus top-k only, so one sees whether the key features generalise better than
//! the full set. The diagonal (train = test corpus) is the speaker-independent cross-validated
//! score on that corpus's folds.
//!
//! Feature sets: `all`; `top{k}`, the consensus of every corpus (its selection has seen the test
//! corpus's labels, so it is optimistic); and `top{k}_without_test`, the consensus of the other
//! corpora's rankings only (absent when no other corpus is left), the honest variant.
//!
//! Datasets of one corpus under different recording conditions (`CORPUS@CONDITION`) hold the
//! same speakers, so they are never paired (only the speaker-independent diagonal is kept), and
//! `top{k}_without_test` leaves out the test corpus under every condition.

use super::agreement::{Consensus, consensus};
use super::{Dataset, Plan, RankConfig, Ranking, corpus_of, fit_head, stats};
use crate::classify::{HeadConfig, accuracy};
use crate::error::Result;
use ndarray::Axis;
use serde::Serialize;

/// One cell of the transfer table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransferRow {
    /// The corpus trained on.
    pub train: String,
    /// The corpus tested on.
    pub test: String,
    /// `all`, `top{k}` or `top{k}_without_test`.
    pub features: String,
    /// Feature columns used.
    pub n_features: usize,
    /// Accuracy on the test corpus.
    pub accuracy: f64,
    /// Balanced accuracy on the test corpus.
    pub balanced_accuracy: f64,
    /// Rows tested.
    pub n_test: usize,
    /// Whether the cell is a speaker-independent cross-validation (train = test corpus).
    pub cross_validated: bool,
}

/// One cell to compute.
struct Cell {
    train: usize,
    test: usize,
    features: String,
    cols: Vec<usize>,
}

/// Computes the transfer table; `progress(done, total)` counts cells.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    datasets: &[Dataset],
    labels: &[Vec<usize>],
    classes: &[String],
    plan: &Plan,
    names: &[String],
    rankings: &[Ranking],
    all_consensus: &Consensus,
    cfg: &RankConfig,
    head: &HeadConfig,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<TransferRow>> {
    let k = cfg.top_k;
    let all: Vec<usize> = (0..names.len()).collect();
    let mut cells = vec![];
    for test in 0..datasets.len() {
        let without = consensus(rankings, names, k, Some(&datasets[test].meta.name));
        for train in 0..datasets.len() {
            if train != test && corpus_of(&datasets[train].meta.name) == corpus_of(&datasets[test].meta.name) {
                continue;
            }
            cells.push(Cell {
                train,
                test,
                features: "all".into(),
                cols: all.clone(),
            });
            cells.push(Cell {
                train,
                test,
                features: format!("top{k}"),
                cols: all_consensus.top(k),
            });
            if !without.rows.is_empty() {
                cells.push(Cell {
                    train,
                    test,
                    features: format!("top{k}_without_test"),
                    cols: without.top(k),
                });
            }
        }
    }
    cells.sort_by_key(|c| (c.train, c.test));
    let total = cells.len();
    let mut progress = progress;
    let rows = stats::par_map(
        total,
        cfg.workers,
        |t| -> Result<TransferRow> {
            let c = &cells[t];
            let (x_test, y_test) = (&datasets[c.test].x, &labels[c.test]);
            let pred: Vec<usize> = if c.train == c.test {
                let mut pred = vec![0; y_test.len()];
                for fold in &plan.folds[c.test] {
                    let clf = fit_head(x_test.view(), y_test, &fold.train, &c.cols, classes, names, head)?;
                    let xt = x_test.select(Axis(0), &fold.test).select(Axis(1), &c.cols);
                    for (&i, p) in fold.test.iter().zip(clf.predict(xt.view())?) {
                        pred[i] = p;
                    }
                }
                pred
            } else {
                let tr = &datasets[c.train];
                let rows: Vec<usize> = (0..tr.x.nrows()).collect();
                let clf = fit_head(tr.x.view(), &labels[c.train], &rows, &c.cols, classes, names, head)?;
                clf.predict(x_test.select(Axis(1), &c.cols).view())?
            };
            Ok(TransferRow {
                train: datasets[c.train].meta.name.clone(),
                test: datasets[c.test].meta.name.clone(),
                features: c.features.clone(),
                n_features: c.cols.len(),
                accuracy: accuracy(&pred, y_test)?,
                balanced_accuracy: stats::balanced_accuracy(&pred, y_test, classes.len()),
                n_test: y_test.len(),
                cross_validated: c.train == c.test,
            })
        },
        |done| progress(done, total),
    );
    rows.into_iter().collect()
}
