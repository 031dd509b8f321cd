//! Seeded, counter-based mask sampling and the LIME / Shapley sample weights.
//!
//! Every random number is a pure function of `(seed, stream, a, b)` through [`random_u32`], which
//! `shaders/perturb.wgsl` implements bit for bit, so a seed gives the same masks and the same noise
//! on every device and in every order of work.

use crate::error::{Error, Result, check_shape};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Stream id for mask bits.
pub const STREAM_MASK: u32 = 1;
/// Stream id for noise fill.
pub const STREAM_NOISE: u32 = 2;

/// Chris Wellons' `lowbias32` integer hash (also in `perturb.wgsl`).
#[inline]
pub fn hash_u32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The counter-based generator: a 32-bit random word for counter `(a, b)` in `stream` of `seed`.
#[inline]
pub fn random_u32(seed: u64, stream: u32, a: u32, b: u32) -> u32 {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    let mut h = hash_u32(lo ^ 0x9e37_79b9);
    h = hash_u32(h ^ hi);
    h = hash_u32(h ^ stream);
    h = hash_u32(h ^ a);
    hash_u32(h ^ b)
}

/// A uniform number in `(0, 1]` from a random word (24 bits of it, exact in `f32`).
#[inline]
pub fn unit_open(word: u32) -> f32 {
    ((word >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// How many perturbed samples to draw per utterance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleCount {
    /// Sample 0 keeps every band; the rest are Bernoulli draws.
    Random(usize),
    /// All `2^B` masks (B <= 16), sample 0 keeping every band, the last keeping none.
    Exhaustive,
    /// As many of the `max` random samples as each utterance needs: [`AUTO_STEP`] more at a
    /// time until surrogates fitted on the even and on the odd samples rank the bands alike
    /// (Spearman >= `target` for every class), or `max` are used.
    Auto {
        /// Agreement of the two halves' band rankings to reach, in (0, 1).
        target: f32,
        /// The cap: at most this many samples.
        max: usize,
    },
}

/// Samples added per round by [`SampleCount::Auto`]; fixed (not the batch size) so that the
/// count an utterance stops at never depends on batching.
pub const AUTO_STEP: usize = 256;

/// Default agreement target of `--samples auto`.
pub const AUTO_TARGET: f32 = 0.95;

/// Default cap of `--samples auto`.
pub const AUTO_MAX: usize = 8192;

impl std::str::FromStr for SampleCount {
    type Err = Error;

    /// `N`, `exhaustive`, or `auto[:TARGET[:MAX]]` (defaults [`AUTO_TARGET`], [`AUTO_MAX`]).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| Error::config("samples", why);
        match s.trim() {
            "exhaustive" => Ok(SampleCount::Exhaustive),
            t if t == "auto" || t.starts_with("auto:") => {
                let mut parts = t.split(':').skip(1);
                let target = match parts.next() {
                    None => AUTO_TARGET,
                    Some(v) => v
                        .parse()
                        .map_err(|_| bad(format!("auto: target `{v}` is not a number")))?,
                };
                let max = match parts.next() {
                    None => AUTO_MAX,
                    Some(v) => v
                        .parse()
                        .map_err(|_| bad(format!("auto: cap `{v}` is not a whole number")))?,
                };
                if let Some(extra) = parts.next() {
                    return Err(bad(format!("auto: unexpected `:{extra}` (auto[:TARGET[:MAX]])")));
                }
                Ok(SampleCount::Auto { target, max })
            }
            n => n.parse().map(SampleCount::Random).map_err(|_| {
                bad(format!(
                    "expected a number, `exhaustive` or `auto[:TARGET[:MAX]]`, got `{n}`"
                ))
            }),
        }
    }
}

/// Largest band count for which `--samples exhaustive` is allowed.
pub const MAX_EXHAUSTIVE_BANDS: usize = 16;

/// The surrogate's sample weighting.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum KernelKind {
    /// LIME: `sqrt(exp(-d^2 / w^2))` of the cosine distance `d` to the all-ones mask.
    Lime {
        /// Kernel width `w` (0.25 in EmoLIME and in `lime`'s image explainer).
        width: f32,
    },
    /// KernelSHAP's Shapley kernel; the empty and full masks become exact constraints, so with
    /// exhaustive masks the coefficients are the exact Shapley values.
    Shapley,
}

impl Default for KernelKind {
    fn default() -> Self {
        KernelKind::Lime { width: 0.25 }
    }
}

/// Mask sampling settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskConfig {
    /// Sample count (default 1000 random samples).
    pub samples: SampleCount,
    /// Probability that a band is kept in a random sample (default 0.5).
    pub keep_prob: f32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            samples: SampleCount::Random(1000),
            keep_prob: 0.5,
            seed: 0,
        }
    }
}

impl MaskConfig {
    /// Checks the settings for `n_bands` bands.
    pub fn validate(&self, n_bands: usize) -> Result<()> {
        if !(self.keep_prob > 0.0 && self.keep_prob < 1.0) {
            return Err(Error::config(
                "keep-prob",
                format!("must be in (0, 1), got {}", self.keep_prob),
            ));
        }
        match self.samples {
            SampleCount::Random(n) if !(2..=1 << 20).contains(&n) => {
                Err(Error::config("samples", format!("must be 2..=1048576, got {n}")))
            }
            SampleCount::Exhaustive if n_bands > MAX_EXHAUSTIVE_BANDS => Err(Error::config(
                "samples",
                format!("exhaustive needs at most {MAX_EXHAUSTIVE_BANDS} bands, have {n_bands}"),
            )),
            SampleCount::Auto { target, .. } if !(target > 0.0 && target < 1.0) => Err(Error::config(
                "samples",
                format!("auto: the target agreement must be in (0, 1), got {target}"),
            )),
            SampleCount::Auto { max, .. } if !(2 * AUTO_STEP..=1 << 20).contains(&max) => Err(Error::config(
                "samples",
                format!("auto: the cap must be {}..=1048576, got {max}", 2 * AUTO_STEP),
            )),
            _ => Ok(()),
        }
    }

    /// Number of samples for `n_bands` bands.
    pub fn n_samples(&self, n_bands: usize) -> usize {
        match self.samples {
            SampleCount::Random(n) | SampleCount::Auto { max: n, .. } => n,
            SampleCount::Exhaustive => 1 << n_bands,
        }
    }
}

/// Draws the masks: 1.0 keeps a band, 0.0 removes it.
///
/// Sample 0 keeps every band. With `include_empty` (needed by the Shapley kernel) sample 1 of a
/// random draw keeps none. The result depends only on the config and `n_bands`.
///
/// # Shapes
/// -> [N, B]
pub fn sample_masks(cfg: &MaskConfig, n_bands: usize, include_empty: bool) -> Result<Array2<f32>> {
    cfg.validate(n_bands)?;
    let n = cfg.n_samples(n_bands);
    let mut masks = Array2::<f32>::zeros((n, n_bands));
    match cfg.samples {
        SampleCount::Exhaustive => {
            let full = (1u64 << n_bands) - 1;
            for (i, mut row) in masks.rows_mut().into_iter().enumerate() {
                let bits = full - i as u64;
                for (b, v) in row.iter_mut().enumerate() {
                    *v = ((bits >> b) & 1) as f32;
                }
            }
        }
        SampleCount::Random(_) | SampleCount::Auto { .. } => {
            // Compare in 32-bit integers so the decision is exact on every device.
            let threshold = (cfg.keep_prob as f64 * 4_294_967_296.0) as u64;
            for (i, mut row) in masks.rows_mut().into_iter().enumerate() {
                for (b, v) in row.iter_mut().enumerate() {
                    let keep = match i {
                        0 => true,
                        1 if include_empty => false,
                        _ => (random_u32(cfg.seed, STREAM_MASK, i as u32, b as u32) as u64) < threshold,
                    };
                    *v = keep as u8 as f32;
                }
            }
        }
    }
    Ok(masks)
}

/// Sample weights for the surrogate fit.
///
/// LIME: cosine distance to the all-ones mask is `1 - sqrt(k/B)` for `k` kept bands (1 for the
/// empty mask, as scikit-learn's `cosine_distances` gives), weight `sqrt(exp(-d^2/w^2))`.
/// Shapley: `(B-1) / (C(B,k) k (B-k))`, and 0 for the empty and full masks, which the Shapley fit
/// treats as exact constraints instead.
///
/// # Shapes
/// `masks` [N, B] -> [N]
pub fn kernel_weights(masks: &Array2<f32>, kernel: KernelKind) -> Result<Vec<f32>> {
    let b = masks.ncols();
    if b < MIN_KERNEL_BANDS {
        return Err(Error::shape("masks", "[N, B>=2]", format!("{:?}", masks.shape())));
    }
    let weights = masks
        .rows()
        .into_iter()
        .map(|row| {
            let k = row.iter().filter(|&&v| v > 0.5).count();
            match kernel {
                KernelKind::Lime { width } => {
                    let d = if k == 0 {
                        1.0
                    } else {
                        1.0 - (k as f64 / b as f64).sqrt()
                    };
                    let w = width as f64;
                    (-(d * d) / (w * w)).exp().sqrt() as f32
                }
                KernelKind::Shapley => {
                    if k == 0 || k == b {
                        0.0
                    } else {
                        ((b - 1) as f64 / (binomial(b, k) * (k * (b - k)) as f64)) as f32
                    }
                }
            }
        })
        .collect();
    Ok(weights)
}

const MIN_KERNEL_BANDS: usize = 2;

/// The distinct rows of a mask matrix, in order of first appearance, and for each sample the
/// index of its row among them. Random draws repeat masks once `N` nears `2^B` (1000 draws of 8
/// bands hold about 251 distinct masks): where the perturbed input depends on the mask alone,
/// each distinct one needs scoring once.
#[derive(Clone, Debug, PartialEq)]
pub struct DistinctMasks {
    /// The distinct masks. // [U, B]
    pub masks: Array2<f32>,
    /// For each sample, its row of `masks`. // [N]
    pub of_sample: Vec<u32>,
}

impl DistinctMasks {
    /// Groups equal rows (compared bit for bit).
    ///
    /// # Shapes
    /// `masks` [N, B] -> `masks` [U, B], `of_sample` [N]
    pub fn of(masks: ndarray::ArrayView2<f32>) -> Self {
        let mut seen: std::collections::HashMap<Vec<u32>, u32> = std::collections::HashMap::new();
        let mut rows: Vec<usize> = Vec::new();
        let of_sample = masks
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let key: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
                *seen.entry(key).or_insert_with(|| {
                    rows.push(i);
                    (rows.len() - 1) as u32
                })
            })
            .collect();
        DistinctMasks {
            masks: masks.select(ndarray::Axis(0), &rows),
            of_sample,
        }
    }

    /// The kernel weight of each distinct mask: the sum of its samples' weights. A weighted
    /// least-squares fit on the distinct masks with these weights equals the fit on every
    /// sample, since equal masks have equal outputs (and, for every kernel here, equal weights).
    ///
    /// # Shapes
    /// `weights` [N] -> [U]
    pub fn summed_weights(&self, weights: &[f32]) -> Result<Vec<f32>> {
        check_shape("weights", &[self.of_sample.len()], &[weights.len()])?;
        let mut summed = vec![0.0f32; self.masks.nrows()];
        for (&row, &w) in self.of_sample.iter().zip(weights) {
            summed[row as usize] += w;
        }
        Ok(summed)
    }

    /// Per-sample outputs from per-distinct-mask outputs.
    ///
    /// # Shapes
    /// `outputs` [U, C] -> [N, C]
    pub fn expand(&self, outputs: ndarray::ArrayView2<f32>) -> Result<Array2<f32>> {
        if outputs.nrows() != self.masks.nrows() {
            return Err(Error::shape(
                "outputs",
                format!("[{}, C]", self.masks.nrows()),
                format!("{:?}", outputs.shape()),
            ));
        }
        let idx: Vec<usize> = self.of_sample.iter().map(|&u| u as usize).collect();
        Ok(outputs.select(ndarray::Axis(0), &idx))
    }
}

/// `C(n, k)` as a float (exact for the sizes used here).
fn binomial(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_masks_group_equal_rows_and_expand_back() {
        let cfg = MaskConfig {
            samples: SampleCount::Random(1000),
            keep_prob: 0.5,
            seed: 3,
        };
        let masks = sample_masks(&cfg, 8, false).unwrap();
        let d = DistinctMasks::of(masks.view());
        // 1000 draws from 256 masks: about 251 distinct, each row once.
        assert!((230..=256).contains(&d.masks.nrows()), "{}", d.masks.nrows());
        assert_eq!(DistinctMasks::of(d.masks.view()).masks, d.masks);
        assert_eq!(d.expand(d.masks.view()).unwrap(), masks);
        assert!(d.expand(masks.view()).is_err());
        // Sample 0 (every band kept) is the first distinct mask.
        assert_eq!(d.of_sample[0], 0);
    }

    #[test]
    fn sample_counts_parse_with_auto_defaults() {
        assert_eq!("1000".parse::<SampleCount>().unwrap(), SampleCount::Random(1000));
        assert_eq!("exhaustive".parse::<SampleCount>().unwrap(), SampleCount::Exhaustive);
        assert_eq!(
            "auto".parse::<SampleCount>().unwrap(),
            SampleCount::Auto {
                target: AUTO_TARGET,
                max: AUTO_MAX
            }
        );
        assert_eq!(
            "auto:0.9:2048".parse::<SampleCount>().unwrap(),
            SampleCount::Auto { target: 0.9, max: 2048 }
        );
        for bad in ["many", "auto:high", "auto:0.9:lots", "auto:0.9:512:1"] {
            let e = bad.parse::<SampleCount>().unwrap_err().to_string();
            assert!(e.contains("samples"), "{bad}: {e}");
        }
        let cfg = |samples| MaskConfig {
            samples,
            ..MaskConfig::default()
        };
        assert!(cfg(SampleCount::Auto { target: 1.0, max: 1024 }).validate(8).is_err());
        assert!(cfg(SampleCount::Auto { target: 0.9, max: 100 }).validate(8).is_err());
        assert_eq!(cfg(SampleCount::Auto { target: 0.9, max: 1024 }).n_samples(8), 1024);
    }

    #[test]
    fn auto_masks_extend_random_masks() {
        let auto = MaskConfig {
            samples: SampleCount::Auto { target: 0.9, max: 1024 },
            ..MaskConfig::default()
        };
        let random = MaskConfig {
            samples: SampleCount::Random(300),
            ..MaskConfig::default()
        };
        let a = sample_masks(&auto, 8, false).unwrap();
        let r = sample_masks(&random, 8, false).unwrap();
        assert_eq!(a.slice(ndarray::s![..300, ..]), r);
    }
}
