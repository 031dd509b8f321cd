//! Faithfulness of explanations: deletion curves that remove bands most-relevant-first (MoRF),
//! least-relevant-first (LeRF) and at random, the share of unchanged predictions and the drop
//! of the explained class's probability along them, and the area between the MoRF and random
//! curves (dAUC) with a bootstrap interval over utterances.
//!
//! An explanation is faithful when removing the bands it calls most relevant hurts the
//! prediction more than removing random bands: the MoRF curve of the explained class's
//! probability falls below the random curve, and dAUC = AUC(random) - AUC(MoRF) is positive.
//! Every deletion is a mask scored through the engine ([`Explainer::score_masks`]), so removed
//! bands are filled as in the explanation (`--fill`), on the same device, in batches.

use crate::corpus::Failure;
use crate::error::{Error, Result};
use crate::explain::{Explainer, Prepared, UtteranceExplanation};
use crate::input::InputItem;
use crate::model::argmax;
use crate::output::csv_quoted;
use crate::rng::{SplitMix64, fnv1a};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// The fractions of bands removed in EmoLIME's evaluation.
pub const PAPER_FRACTIONS: [f32; 6] = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9];

/// Where the deletion curves are evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionPoints {
    /// Remove `round(f * B)` bands for each fraction `f` in `[0, 1]`.
    Fractions(Vec<f32>),
    /// Remove 0, 1, ..., B bands.
    EveryBand,
}

/// Deletion-curve settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionConfig {
    /// Where the curves are evaluated (default: the paper's fractions).
    pub points: DeletionPoints,
    /// Random orders per utterance; the random curve is their mean (default 5, as the paper).
    pub random_repeats: usize,
    /// Seed of the random orders and of the bootstrap.
    pub seed: u64,
    /// Bootstrap replicates over utterances for the dAUC intervals (default 2000).
    pub bootstrap: usize,
}

impl Default for DeletionConfig {
    fn default() -> Self {
        DeletionConfig {
            points: DeletionPoints::Fractions(PAPER_FRACTIONS.to_vec()),
            random_repeats: 5,
            seed: 0,
            bootstrap: 2000,
        }
    }
}

impl DeletionConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if let DeletionPoints::Fractions(f) = &self.points {
            if f.is_empty() {
                return Err(Error::config("fractions", "give at least one fraction"));
            }
            if let Some(bad) = f.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                return Err(Error::config("fractions", format!("{bad} is not in [0, 1]")));
            }
        }
        if !(1..=1000).contains(&self.random_repeats) {
            return Err(Error::config(
                "repeats",
                format!("must be 1..=1000, got {}", self.random_repeats),
            ));
        }
        if self.bootstrap != 0 && self.bootstrap < 100 {
            return Err(Error::config(
                "bootstrap",
                format!("0 (no intervals) or at least 100 replicates, got {}", self.bootstrap),
            ));
        }
        Ok(())
    }

    /// Bands removed at each point for `n_bands` bands: ascending, without repeats (two
    /// fractions that round to one count are one point).
    pub fn removal_counts(&self, n_bands: usize) -> Vec<usize> {
        let mut counts: Vec<usize> = match &self.points {
            DeletionPoints::EveryBand => (0..=n_bands).collect(),
            DeletionPoints::Fractions(f) => f
                .iter()
                .map(|&v| ((v * n_bands as f32).round() as usize).min(n_bands))
                .collect(),
        };
        counts.sort_unstable();
        counts.dedup();
        counts
    }
}

/// An order in which bands are removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionOrder {
    /// Most relevant (largest coefficient) first.
    Morf,
    /// Least relevant (smallest coefficient) first.
    Lerf,
    /// Uniformly random orders (the mean over `random_repeats` of them).
    Random,
}

impl DeletionOrder {
    /// All three, in output order.
    pub const ALL: [DeletionOrder; 3] = [DeletionOrder::Morf, DeletionOrder::Lerf, DeletionOrder::Random];

    /// Its name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            DeletionOrder::Morf => "morf",
            DeletionOrder::Lerf => "lerf",
            DeletionOrder::Random => "random",
        }
    }
}

/// Bands by relevance: indices sorted by coefficient, largest first; ties (and NaN, last) by
/// band index, so the order is a pure function of the coefficients.
///
/// # Shapes
/// `coefficients` [B] -> [B]
pub fn relevance_order(coefficients: &[f32]) -> Vec<usize> {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let mut order: Vec<usize> = (0..coefficients.len()).collect();
    order.sort_by(|&a, &b| key(coefficients[b]).total_cmp(&key(coefficients[a])).then(a.cmp(&b)));
    order
}

/// The deletion masks of one explanation: for MoRF, LeRF and each random order (in that
/// order), one mask per removal count that removes the first `k` bands of the order. Random
/// order `r` is drawn from `(seed, key, r)`, so one utterance gets the same orders on every
/// device and in every shard.
///
/// # Shapes
/// `coefficients` [B], `counts` [P] -> [(2 + R) * P, B]
pub fn deletion_masks(coefficients: &[f32], counts: &[usize], repeats: usize, seed: u64, key: u64) -> Array2<f32> {
    let b = coefficients.len();
    let p = counts.len();
    let morf = relevance_order(coefficients);
    let lerf: Vec<usize> = morf.iter().rev().copied().collect();
    let mut orders = vec![morf, lerf];
    for r in 0..repeats {
        let mut order: Vec<usize> = (0..b).collect();
        SplitMix64::stream(seed, DELETION_STREAM, &[key, r as u64]).shuffle(&mut order);
        orders.push(order);
    }
    let mut masks = Array2::<f32>::ones((orders.len() * p, b));
    for (o, order) in orders.iter().enumerate() {
        for (i, &k) in counts.iter().enumerate() {
            for &band in &order[..k.min(b)] {
                masks[[o * p + i, band]] = 0.0;
            }
        }
    }
    masks
}

/// The purpose word of the random deletion orders' stream.
const DELETION_STREAM: u64 = 0xDE1E_7E00;

/// The purpose word of the bootstrap's stream.
const BOOTSTRAP_STREAM: u64 = 0xB007_5742;

/// One curve: the explained class's probability and whether the top class is unchanged, at
/// each removal count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Probability of the explained class. // [P]
    pub prob: Vec<f32>,
    /// 1 when the top class is still the unperturbed input's (for random orders: the share of
    /// orders where it is). // [P]
    pub unchanged: Vec<f32>,
}

/// One utterance's deletion curves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionCurves {
    /// Position in the input.
    pub position: usize,
    /// Utterance id.
    pub id: String,
    /// Reference label, if known.
    pub label: Option<String>,
    /// The explained class: the model's top class for the unperturbed input.
    pub class: String,
    /// Probability of that class for the unperturbed input.
    pub prob_unperturbed: f32,
    /// Bands removed at each point. // [P]
    pub removed: Vec<usize>,
    /// Bands in the layout.
    pub n_bands: usize,
    /// Most relevant first.
    pub morf: Curve,
    /// Least relevant first.
    pub lerf: Curve,
    /// Mean over the random orders.
    pub random: Curve,
}

impl DeletionCurves {
    /// The curve for `order`.
    pub fn curve(&self, order: DeletionOrder) -> &Curve {
        match order {
            DeletionOrder::Morf => &self.morf,
            DeletionOrder::Lerf => &self.lerf,
            DeletionOrder::Random => &self.random,
        }
    }

    /// Fraction of bands removed at each point. // [P]
    pub fn fractions(&self) -> Vec<f32> {
        self.removed
            .iter()
            .map(|&k| k as f32 / self.n_bands.max(1) as f32)
            .collect()
    }

    /// dAUC of the explained class's probability: area under the random curve minus area under
    /// the MoRF curve, over the fraction of bands removed (trapezoids). Positive when removing
    /// the bands the explanation ranks first hurts more than removing random ones.
    pub fn dauc_prob(&self) -> f64 {
        let x = self.fractions();
        area(&x, &self.random.prob) - area(&x, &self.morf.prob)
    }

    /// dAUC of the share of unchanged predictions (random minus MoRF).
    pub fn dauc_unchanged(&self) -> f64 {
        let x = self.fractions();
        area(&x, &self.random.unchanged) - area(&x, &self.morf.unchanged)
    }
}

/// The trapezoid area under `y` over `x` (ascending). // `x`, `y` [P]
pub fn area(x: &[f32], y: &[f32]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| f64::from(x[1] - x[0]) * f64::from(y[0] + y[1]) / 2.0)
        .sum()
}

/// Turns the model's outputs on the masks of [`deletion_masks`] into curves for class
/// `class_index`; `predicted` is the unperturbed input's top class.
///
/// # Shapes
/// `probs` [(2 + R) * P, C] -> three curves of [P]
pub fn curves_from_probs(
    probs: ArrayView2<f32>,
    n_points: usize,
    class_index: usize,
    predicted: usize,
) -> Result<(Curve, Curve, Curve)> {
    let n_orders = probs.nrows() / n_points.max(1);
    if n_points == 0 || n_orders < 3 || probs.nrows() != n_orders * n_points || class_index >= probs.ncols() {
        return Err(Error::shape(
            "deletion outputs",
            format!("[(2 + R) * {n_points}, > {class_index}] with R >= 1"),
            format!("{:?}", probs.dim()),
        ));
    }
    let curve_of = |o: usize| -> Curve {
        let rows = (o * n_points..(o + 1) * n_points).map(|r| probs.row(r));
        let (mut prob, mut unchanged) = (vec![], vec![]);
        for row in rows {
            let row = row.to_vec();
            prob.push(row[class_index]);
            unchanged.push(if argmax(&row) == predicted { 1.0 } else { 0.0 });
        }
        Curve { prob, unchanged }
    };
    let morf = curve_of(0);
    let lerf = curve_of(1);
    let randoms: Vec<Curve> = (2..n_orders).map(curve_of).collect();
    let mean = |f: &dyn Fn(&Curve) -> &Vec<f32>| -> Vec<f32> {
        (0..n_points)
            .map(|i| randoms.iter().map(|c| f(c)[i]).sum::<f32>() / randoms.len() as f32)
            .collect()
    };
    let random = Curve {
        prob: mean(&|c| &c.prob),
        unchanged: mean(&|c| &c.unchanged),
    };
    Ok((morf, lerf, random))
}

/// Deletion curves of one explained utterance for its top class: the masks of
/// [`deletion_masks`] scored through `explainer` (one batch of `(2 + R) * P` masks).
pub fn deletion_curves(
    explainer: &mut Explainer<'_>,
    prepared: &Prepared,
    exp: &UtteranceExplanation,
    position: usize,
    item: &InputItem,
    cfg: &DeletionConfig,
) -> Result<DeletionCurves> {
    let n_bands = explainer.layout().n_bands();
    let counts = cfg.removal_counts(n_bands);
    let class_index = argmax(&exp.probs);
    let coefs = exp.fit.coefs.row(class_index).to_vec();
    let masks = deletion_masks(&coefs, &counts, cfg.random_repeats, cfg.seed, fnv1a(item.id.as_bytes()));
    let probs = explainer.score_masks(prepared, &masks)?;
    let (morf, lerf, random) = curves_from_probs(probs.view(), counts.len(), class_index, class_index)?;
    Ok(DeletionCurves {
        position,
        id: item.id.clone(),
        label: item.label.clone(),
        class: explainer.classes()[class_index].clone(),
        prob_unperturbed: exp.probs[class_index],
        removed: counts,
        n_bands,
        morf,
        lerf,
        random,
    })
}

/// Explains every item and measures its deletion curves; an item that cannot be loaded or
/// explained becomes a [`Failure`] and the rest go on. `progress(done, total)` after each.
pub fn run_deletion(
    explainer: &mut Explainer<'_>,
    items: &[InputItem],
    cfg: &DeletionConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Vec<DeletionCurves>, Vec<Failure>)> {
    cfg.validate()?;
    let preparer = explainer.preparer();
    let (mut curves, mut failures) = (vec![], vec![]);
    for (position, item) in items.iter().enumerate() {
        let one = preparer.load_and_prepare(item).and_then(|prepared| {
            let exp = explainer.explain(&prepared)?;
            deletion_curves(explainer, &prepared, &exp, position, item, cfg)
        });
        match one {
            Ok(c) => curves.push(c),
            Err(e) => failures.push(Failure {
                id: item.id.clone(),
                position: Some(position),
                error: format!("{}: {e}", item.path.display()),
            }),
        }
        progress(position + 1, items.len());
    }
    Ok((curves, failures))
}

/// A mean over utterances with its bootstrap percentile interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Mean over utterances.
    pub mean: f64,
    /// Lower end of the 95 % percentile interval (NaN without a bootstrap).
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The mean of `values` with a 95 % percentile bootstrap interval from `replicates` resamples
/// of the values (with replacement), drawn from `seed`.
pub fn bootstrap_mean(values: &[f64], replicates: usize, seed: u64, purpose: u64) -> Interval {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    if n == 0 || replicates == 0 {
        return Interval {
            mean: if n == 0 { f64::NAN } else { mean },
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let mut rng = SplitMix64::stream(seed, BOOTSTRAP_STREAM, &[purpose]);
    let mut means: Vec<f64> = (0..replicates)
        .map(|_| (0..n).map(|_| values[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Interval {
        mean,
        low: crate::rank::stats::quantile_sorted(&means, 0.025),
        high: crate::rank::stats::quantile_sorted(&means, 0.975),
    }
}

/// The mean curves of one order over utterances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// The order.
    pub order: DeletionOrder,
    /// Mean probability of the explained class. // [P]
    pub mean_prob: Vec<f64>,
    /// Mean drop of that probability from the unperturbed input's. // [P]
    pub mean_drop: Vec<f64>,
    /// Share of utterances (and random orders) whose top class is unchanged. // [P]
    pub unchanged: Vec<f64>,
}

/// Deletion results over a set of utterances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessSummary {
    /// Utterances measured.
    pub n_utterances: usize,
    /// Bands in the layout.
    pub n_bands: usize,
    /// Bands removed at each point. // [P]
    pub removed: Vec<usize>,
    /// Fraction of bands removed at each point. // [P]
    pub fractions: Vec<f32>,
    /// MoRF, LeRF and random, in that order.
    pub orders: Vec<OrderSummary>,
    /// dAUC of the explained class's probability (random minus MoRF), 95 % interval.
    pub dauc_prob: Interval,
    /// dAUC of the share of unchanged predictions (random minus MoRF), 95 % interval.
    pub dauc_unchanged: Interval,
    /// LeRF minus random of the probability's area: positive when the bands ranked last
    /// matter less than random ones, 95 % interval.
    pub lerf_gain_prob: Interval,
    /// Share of utterances with a positive probability dAUC.
    pub share_dauc_positive: f64,
    /// Bootstrap replicates behind the intervals.
    pub bootstrap: usize,
}

/// Summarises per-utterance curves measured at one set of points (as [`run_deletion`] makes).
pub fn summarize(curves: &[DeletionCurves], cfg: &DeletionConfig) -> Result<FaithfulnessSummary> {
    let first = curves
        .first()
        .ok_or_else(|| Error::config("deletion", "no utterance was measured"))?;
    if let Some(other) = curves
        .iter()
        .find(|c| c.removed != first.removed || c.n_bands != first.n_bands)
    {
        return Err(Error::shape(
            "deletion curves",
            format!("removal counts {:?} of {} bands", first.removed, first.n_bands),
            format!("{:?} of {} bands ({})", other.removed, other.n_bands, other.id),
        ));
    }
    let n = curves.len() as f64;
    let p = first.removed.len();
    let orders = DeletionOrder::ALL
        .iter()
        .map(|&order| {
            let mean = |f: &dyn Fn(&DeletionCurves, usize) -> f64| -> Vec<f64> {
                (0..p)
                    .map(|i| curves.iter().map(|c| f(c, i)).sum::<f64>() / n)
                    .collect()
            };
            OrderSummary {
                order,
                mean_prob: mean(&|c, i| f64::from(c.curve(order).prob[i])),
                mean_drop: mean(&|c, i| f64::from(c.prob_unperturbed - c.curve(order).prob[i])),
                unchanged: mean(&|c, i| f64::from(c.curve(order).unchanged[i])),
            }
        })
        .collect();
    let dauc: Vec<f64> = curves.iter().map(DeletionCurves::dauc_prob).collect();
    let dauc_unchanged: Vec<f64> = curves.iter().map(DeletionCurves::dauc_unchanged).collect();
    let lerf_gain: Vec<f64> = curves
        .iter()
        .map(|c| {
            let x = c.fractions();
            area(&x, &c.lerf.prob) - area(&x, &c.random.prob)
        })
        .collect();
    Ok(FaithfulnessSummary {
        n_utterances: curves.len(),
        n_bands: first.n_bands,
        removed: first.removed.clone(),
        fractions: first.fractions(),
        orders,
        dauc_prob: bootstrap_mean(&dauc, cfg.bootstrap, cfg.seed, 1),
        dauc_unchanged: bootstrap_mean(&dauc_unchanged, cfg.bootstrap, cfg.seed, 2),
        lerf_gain_prob: bootstrap_mean(&lerf_gain, cfg.bootstrap, cfg.seed, 3),
        share_dauc_positive: dauc.iter().filter(|&&d| d > 0.0).count() as f64 / n,
        bootstrap: cfg.bootstrap,
    })
}

/// Writes one row per utterance, order and point: `position,id,label,class,order,removed,
/// fraction,prob,unchanged`.
pub fn write_curves_csv(out: &mut impl std::io::Write, curves: &[DeletionCurves]) -> std::io::Result<()> {
    writeln!(out, "position,id,label,class,order,removed,fraction,prob,unchanged")?;
    for c in curves {
        let fractions = c.fractions();
        for order in DeletionOrder::ALL {
            let curve = c.curve(order);
            let points = c.removed.iter().zip(&fractions).zip(&curve.prob).zip(&curve.unchanged);
            for (((removed, fraction), prob), unchanged) in points {
                writeln!(
                    out,
                    "{},{},{},{},{},{removed},{fraction},{prob},{unchanged}",
                    c.position,
                    csv_quoted(&c.id),
                    csv_quoted(c.label.as_deref().unwrap_or("")),
                    csv_quoted(&c.class),
                    order.name(),
                )?;
            }
        }
    }
    Ok(())
}

/// Writes the mean curves: `order,removed,fraction,mean_prob,mean_drop,unchanged,n`.
pub fn write_summary_csv(out: &mut impl std::io::Write, s: &FaithfulnessSummary) -> std::io::Result<()> {
    writeln!(out, "order,removed,fraction,mean_prob,mean_drop,unchanged,n")?;
    for o in &s.orders {
        for i in 0..s.removed.len() {
            writeln!(
                out,
                "{},{},{},{},{},{},{}",
                o.order.name(),
                s.removed[i],
                s.fractions[i],
                o.mean_prob[i],
                o.mean_drop[i],
                o.unchanged[i],
                s.n_utterances
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_fractions_and_every_band() {
        let cfg = DeletionConfig::default();
        assert_eq!(cfg.removal_counts(8), vec![0, 1, 2, 4, 6, 7]);
        let every = DeletionConfig {
            points: DeletionPoints::EveryBand,
            ..cfg.clone()
        };
        assert_eq!(every.removal_counts(3), vec![0, 1, 2, 3]);
        let dup = DeletionConfig {
            points: DeletionPoints::Fractions(vec![0.5, 0.0, 0.49]),
            ..cfg
        };
        assert_eq!(dup.removal_counts(4), vec![0, 2]);
        assert!(
            DeletionConfig {
                points: DeletionPoints::Fractions(vec![1.5]),
                ..DeletionConfig::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn masks_remove_bands_in_each_order() {
        let coefs = [0.1, 0.5, -0.2, 0.3];
        let masks = deletion_masks(&coefs, &[0, 1, 3], 2, 9, 42);
        assert_eq!(masks.dim(), (4 * 3, 4));
        // MoRF: band 1, then 3, then 0.
        assert_eq!(masks.row(0).to_vec(), vec![1.0; 4]);
        assert_eq!(masks.row(1).to_vec(), vec![1.0, 0.0, 1.0, 1.0]);
        assert_eq!(masks.row(2).to_vec(), vec![0.0, 0.0, 1.0, 0.0]);
        // LeRF: band 2 first.
        assert_eq!(masks.row(4).to_vec(), vec![1.0, 1.0, 0.0, 1.0]);
        // Random orders remove k bands, nested, and are reproducible.
        for r in 0..2 {
            let base = (2 + r) * 3;
            assert_eq!(masks.row(base + 1).iter().filter(|&&v| v == 0.0).count(), 1);
            assert_eq!(masks.row(base + 2).iter().filter(|&&v| v == 0.0).count(), 3);
            for band in 0..4 {
                assert!(masks[[base + 1, band]] >= masks[[base + 2, band]]);
            }
        }
        assert_eq!(masks, deletion_masks(&coefs, &[0, 1, 3], 2, 9, 42));
    }

    #[test]
    fn ties_and_nan_order_by_index() {
        assert_eq!(relevance_order(&[0.2, f32::NAN, 0.2, 0.9]), vec![3, 0, 2, 1]);
    }

    #[test]
    fn curves_average_random_orders_and_dauc_is_the_area_between() {
        // 2 points, R = 2: rows morf(2), lerf(2), random0(2), random1(2); 2 classes.
        let probs = ndarray::arr2(&[
            [0.9, 0.1],
            [0.2, 0.8],
            [0.9, 0.1],
            [0.8, 0.2],
            [0.9, 0.1],
            [0.6, 0.4],
            [0.9, 0.1],
            [0.4, 0.6],
        ]);
        let (morf, lerf, random) = curves_from_probs(probs.view(), 2, 0, 0).unwrap();
        assert_eq!(morf.unchanged, vec![1.0, 0.0]);
        assert_eq!(lerf.prob, vec![0.9, 0.8]);
        assert!((random.prob[1] - 0.5).abs() < 1e-6);
        assert_eq!(random.unchanged, vec![1.0, 0.5]);
        let c = DeletionCurves {
            position: 0,
            id: "a".into(),
            label: None,
            class: "x".into(),
            prob_unperturbed: 0.9,
            removed: vec![0, 2],
            n_bands: 2,
            morf,
            lerf,
            random,
        };
        // x = 0, 1: areas are the means of the end points.
        assert!((c.dauc_prob() - ((0.9 + 0.5) / 2.0 - (0.9 + 0.2) / 2.0)).abs() < 1e-6);
        assert!((c.dauc_unchanged() - (0.75 - 0.5)).abs() < 1e-6);
        assert!(curves_from_probs(probs.view(), 3, 0, 0).is_err());
    }

    #[test]
    fn bootstrap_interval_brackets_the_mean() {
        let v: Vec<f64> = (0..50).map(|i| f64::from(i) / 50.0).collect();
        let iv = bootstrap_mean(&v, 1000, 3, 1);
        assert!(iv.low < iv.mean && iv.mean < iv.high, "{iv:?}");
        assert!(iv.high - iv.low < 0.25);
        assert_eq!(iv, bootstrap_mean(&v, 1000, 3, 1));
        assert!(bootstrap_mean(&v, 0, 3, 1).low.is_nan());
    }
}
