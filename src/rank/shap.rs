//! KernelSHAP of the feature classifier over feature groups: for eGeMAPS the 25 frame-level
//! descriptors (LLDs) the 88 functionals are computed from, otherwise one group per feature.
//!
//! A coalition keeps the features of its groups at the explained row's values and replaces the
//! others by the background, the mean of the fold's training rows. Coalitions are drawn from the
//! Shapley kernel itself (a size `s` with probability proportional to `1 / (s (G - s))`, a uniform
//! subset of that size, and its complement), so every sampled coalition has the same weight in
//! the constrained least-squares fit of [`crate::surrogate::SurrogateDesign`] (the same fit the band
//! explanations use): `phi` sums exactly to `f(row) - f(background)` per class.

use super::rng::Rng;
use crate::error::Result;
use crate::features::{EGEMAPS_NAMES, LLD_NAMES};
use crate::sampling::KernelKind;
use crate::surrogate::{SurrogateConfig, SurrogateDesign};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use serde::Serialize;

/// A set of feature columns explained as one player.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeatureGroup {
    /// The group's name (for eGeMAPS, the LLD's openSMILE name).
    pub name: String,
    /// Feature column indices, ascending.
    pub members: Vec<usize>,
}

/// Which LLD each functional is computed from, by name prefix. The voicing-segment functionals
/// come from the F0 track's voiced / unvoiced decision and go with F0; the equivalent sound
/// level (frame energy, not itself an LLD) goes with loudness.
const LLD_OF_PREFIX: &[(&str, &str)] = &[
    ("F0semitoneFrom27.5Hz", "F0semitoneFrom27.5Hz_sma3nz"),
    ("VoicedSegmentsPerSec", "F0semitoneFrom27.5Hz_sma3nz"),
    ("MeanVoicedSegmentLengthSec", "F0semitoneFrom27.5Hz_sma3nz"),
    ("StddevVoicedSegmentLengthSec", "F0semitoneFrom27.5Hz_sma3nz"),
    ("MeanUnvoicedSegmentLength", "F0semitoneFrom27.5Hz_sma3nz"),
    ("StddevUnvoicedSegmentLength", "F0semitoneFrom27.5Hz_sma3nz"),
    ("loudness", "Loudness_sma3"),
    ("equivalentSoundLevel", "Loudness_sma3"),
    ("spectralFlux", "spectralFlux_sma3"),
    ("mfcc1", "mfcc1_sma3"),
    ("mfcc2", "mfcc2_sma3"),
    ("mfcc3", "mfcc3_sma3"),
    ("mfcc4", "mfcc4_sma3"),
    ("jitterLocal", "jitterLocal_sma3nz"),
    ("shimmerLocaldB", "shimmerLocaldB_sma3nz"),
    ("HNRdBACF", "HNRdBACF_sma3nz"),
    ("logRelF0-H1-H2", "logRelF0-H1-H2_sma3nz"),
    ("logRelF0-H1-A3", "logRelF0-H1-A3_sma3nz"),
    ("F1frequency", "F1frequency_sma3nz"),
    ("F1bandwidth", "F1bandwidth_sma3nz"),
    ("F1amplitudeLogRelF0", "F1amplitudeLogRelF0_sma3nz"),
    ("F2frequency", "F2frequency_sma3nz"),
    ("F2bandwidth", "F2bandwidth_sma3nz"),
    ("F2amplitudeLogRelF0", "F2amplitudeLogRelF0_sma3nz"),
    ("F3frequency", "F3frequency_sma3nz"),
    ("F3bandwidth", "F3bandwidth_sma3nz"),
    ("F3amplitudeLogRelF0", "F3amplitudeLogRelF0_sma3nz"),
    ("alphaRatio", "alphaRatio_sma3"),
    ("hammarbergIndex", "hammarbergIndex_sma3"),
    ("slopeV0-500", "slope0-500_sma3"),
    ("slopeUV0-500", "slope0-500_sma3"),
    ("slopeV500-1500", "slope500-1500_sma3"),
    ("slopeUV500-1500", "slope500-1500_sma3"),
];

/// The 25 LLD groups of the 88 eGeMAPS v02 functionals, in [`LLD_NAMES`] order.
pub fn egemaps_groups() -> Vec<FeatureGroup> {
    let mut groups: Vec<FeatureGroup> = LLD_NAMES
        .iter()
        .map(|n| FeatureGroup {
            name: n.to_string(),
            members: vec![],
        })
        .collect();
    for (j, name) in EGEMAPS_NAMES.iter().enumerate() {
        let (_, lld) = LLD_OF_PREFIX
            .iter()
            .find(|(p, _)| name.starts_with(p))
            .expect("every eGeMAPS functional has a rule (tested)");
        let g = LLD_NAMES
            .iter()
            .position(|n| n == lld)
            .expect("rules name LLDs (tested)");
        groups[g].members.push(j);
    }
    groups
}

/// The LLD groups when `names` are the eGeMAPS functionals in openSMILE's order, otherwise one
/// group per feature.
pub fn feature_groups(names: &[String]) -> Vec<FeatureGroup> {
    if names.len() == EGEMAPS_NAMES.len() && names.iter().zip(EGEMAPS_NAMES).all(|(a, b)| a == b) {
        egemaps_groups()
    } else {
        names
            .iter()
            .enumerate()
            .map(|(j, n)| FeatureGroup {
                name: n.clone(),
                members: vec![j],
            })
            .collect()
    }
}

/// `m` coalitions of `g` players: row 0 keeps every group, row 1 none, then pairs of a
/// kernel-drawn coalition and its complement (one unpaired draw last when `m` is odd).
///
/// # Shapes
/// -> [m, g], `g >= 2`, `m >= 3`
pub(crate) fn coalitions(g: usize, m: usize, rng: &mut Rng) -> Array2<f32> {
    let mut masks = Array2::zeros((m, g));
    masks.row_mut(0).fill(1.0);
    // Cumulative probability of each size s = 1..g-1, proportional to 1 / (s (g - s)).
    let w: Vec<f64> = (1..g).map(|s| 1.0 / (s * (g - s)) as f64).collect();
    let total: f64 = w.iter().sum();
    let mut players: Vec<usize> = (0..g).collect();
    let mut i = 2;
    while i < m {
        let mut u = rng.uniform() * total;
        let mut size = g - 1;
        for (s, &ws) in w.iter().enumerate() {
            if u < ws {
                size = s + 1;
                break;
            }
            u -= ws;
        }
        // Partial Fisher-Yates: the first `size` players form the coalition.
        for a in 0..size {
            let b = a + rng.below(g - a);
            players.swap(a, b);
        }
        for &p in &players[..size] {
            masks[[i, p]] = 1.0;
        }
        if i + 1 < m {
            for p in 0..g {
                masks[[i + 1, p]] = 1.0 - masks[[i, p]];
            }
        }
        i += 2;
    }
    masks
}

/// The constrained KernelSHAP fit on `masks` from [`coalitions`], built once for every row
/// explained with them: the full and empty coalitions (rows 0 and 1) enter through the
/// constraint, every other coalition with weight 1 (the kernel is in the sampling).
///
/// # Shapes
/// `masks` [M, G]
pub(crate) fn shap_design(masks: ArrayView2<f32>) -> Result<SurrogateDesign> {
    let mut weights = vec![1.0f32; masks.nrows()];
    weights[0] = 0.0;
    weights[1] = 0.0;
    let cfg = SurrogateConfig {
        kernel: KernelKind::Shapley,
        alpha: 0.0,
    };
    SurrogateDesign::new(masks, &weights, &cfg)
}

/// The classifier inputs KernelSHAP scores for one row: coalition `i`'s input takes each
/// group's features from `row` where mask `i` keeps the group, else from `background`.
///
/// # Shapes
/// `row` [D], `background` [D], `masks` [M, G], `out` [M, D]
pub(crate) fn coalition_inputs(
    row: ArrayView1<f64>,
    background: &[f64],
    groups: &[FeatureGroup],
    masks: ArrayView2<f32>,
    mut out: ArrayViewMut2<f64>,
) {
    for (mut input, mask) in out.rows_mut().into_iter().zip(masks.rows()) {
        for (group, &keep) in groups.iter().zip(mask) {
            for &j in &group.members {
                input[j] = if keep > 0.5 { row[j] } else { background[j] };
            }
        }
    }
}

/// KernelSHAP values of one row from the classifier's probabilities on its
/// [`coalition_inputs`]: `phi[c, g]` for the probability of class `c`.
///
/// # Shapes
/// `proba` [M, C], `design` over masks [M, G] from [`shap_design`] -> [C, G]
pub(crate) fn fit_row(proba: ArrayView2<f64>, design: &SurrogateDesign) -> Result<Array2<f64>> {
    let fit = design.fit(proba.mapv(|v| v as f32).view())?;
    Ok(fit.coefs.mapv(f64::from))
}

#[cfg(test)]
mod tests {
    use super::super::rng::Purpose;
    use super::*;
    use crate::classify::{FeatureClassifier, HeadConfig, HeadKind};

    /// KernelSHAP values of one row: `phi[c, g]` for the probability of class `c`.
    ///
    /// # Shapes
    /// `row` [D], `background` [D], `design` over masks [M, G] from [`shap_design`] -> [C, G]
    fn explain_row(
        clf: &FeatureClassifier,
        row: ArrayView1<f64>,
        background: &[f64],
        groups: &[FeatureGroup],
        design: &SurrogateDesign,
    ) -> Result<Array2<f64>> {
        let masks = design.masks();
        let mut inputs = Array2::zeros((masks.nrows(), row.len()));
        coalition_inputs(row, background, groups, masks.view(), inputs.view_mut());
        fit_row(clf.predict_proba(inputs.view())?.view(), design)
    }

    #[test]
    fn every_functional_has_one_lld_group() {
        let groups = egemaps_groups();
        assert_eq!(groups.len(), 25);
        let mut seen = [0; 88];
        for g in &groups {
            assert!(!g.members.is_empty(), "{} has no functional", g.name);
            g.members.iter().for_each(|&j| seen[j] += 1);
        }
        assert!(seen.iter().all(|&s| s == 1));
        let names: Vec<String> = EGEMAPS_NAMES.iter().map(|s| s.to_string()).collect();
        assert_eq!(feature_groups(&names), groups);
        let f0 = &groups[LLD_NAMES.iter().position(|n| n.starts_with("F0")).unwrap()];
        assert_eq!(f0.members.len(), 15);
        let mfcc1 = &groups[6];
        assert_eq!(
            mfcc1.members.iter().map(|&j| EGEMAPS_NAMES[j]).collect::<Vec<_>>(),
            [
                "mfcc1_sma3_amean",
                "mfcc1_sma3_stddevNorm",
                "mfcc1V_sma3nz_amean",
                "mfcc1V_sma3nz_stddevNorm"
            ]
        );
        let other = feature_groups(&["a".to_string(), "b".to_string()]);
        assert_eq!(other[1].members, vec![1]);
    }

    #[test]
    fn coalitions_are_paired_and_kernel_shaped() {
        let mut rng = Rng::keyed(0, Purpose::Coalitions, &[]);
        let m = coalitions(10, 4002, &mut rng);
        assert!(m.row(0).iter().all(|&v| v == 1.0));
        assert!(m.row(1).iter().all(|&v| v == 0.0));
        let mut sizes = [0usize; 11];
        for i in (2..4002).step_by(2) {
            let a: f32 = m.row(i).sum();
            let b: f32 = m.row(i + 1).sum();
            assert_eq!(a + b, 10.0);
            assert!((1.0..=9.0).contains(&a));
            sizes[a as usize] += 1;
        }
        // The kernel makes sizes 1 and 9 the most likely (1/9 each), 5 the least (1/25).
        assert!(sizes[1] > 2 * sizes[5] && sizes[9] > 2 * sizes[5], "{sizes:?}");
    }

    #[test]
    fn shapley_values_of_a_linear_model_are_exact_and_efficient() {
        // Logistic regression on two informative features: phi sums to f(x) - f(background).
        let mut rng = Rng::keyed(1, Purpose::Bootstrap, &[]);
        let n = 200;
        let x = Array2::from_shape_fn((n, 4), |_| rng.normal());
        let y: Vec<usize> = x
            .rows()
            .into_iter()
            .map(|r| (r[0] + 0.5 * r[2] > 0.0) as usize)
            .collect();
        let names: Vec<String> = (0..4).map(|j| format!("f{j}")).collect();
        let cfg = HeadConfig {
            kind: HeadKind::LogReg,
            ..HeadConfig::default()
        };
        let clf = FeatureClassifier::fit(x.view(), &y, vec!["a".into(), "b".into()], "t", names.clone(), &cfg).unwrap();
        let groups = feature_groups(&names);
        let bg = x.mean_axis(ndarray::Axis(0)).unwrap().to_vec();
        let masks = coalitions(4, 256, &mut Rng::keyed(2, Purpose::Coalitions, &[]));
        let row = x.row(3);
        let phi = explain_row(&clf, row, &bg, &groups, &shap_design(masks.view()).unwrap()).unwrap();
        let f_row = clf.predict_proba(row.insert_axis(ndarray::Axis(0))).unwrap();
        let bg_arr = ndarray::Array1::from(bg.clone());
        let f_bg = clf.predict_proba(bg_arr.view().insert_axis(ndarray::Axis(0))).unwrap();
        for c in 0..2 {
            let sum: f64 = phi.row(c).sum();
            assert!((sum - (f_row[[0, c]] - f_bg[[0, c]])).abs() < 1e-5);
        }
        // The noise features matter far less than feature 0.
        assert!(
            phi[[1, 0]].abs() > 5.0 * phi[[1, 1]].abs().max(phi[[1, 3]].abs()),
            "{phi}"
        );
    }
}
