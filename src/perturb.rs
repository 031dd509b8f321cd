//! Building perturbed spectrograms: the CPU twin of `shaders/perturb.wgsl` and `row_mean.wgsl`.

use crate::error::{Error, Result, check_shape};
use crate::sampling::{STREAM_NOISE, random_u32, unit_open};
use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewMut3};
use serde::{Deserialize, Serialize};

/// What replaces a removed band. For mel models the fill is applied to mel power rows (below);
/// for waveform models to STFT bins before resynthesis (see [`crate::resynth`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillMode {
    /// Zero power (EmoLIME's choice).
    #[default]
    Zero,
    /// Each removed mel row is replaced by its mean power over time.
    Mean,
    /// Seeded exponential noise (the power of complex Gaussian noise) at each row's mean power.
    Noise,
}

impl FillMode {
    /// The integer code `perturb.wgsl` uses.
    pub fn code(self) -> u32 {
        match self {
            FillMode::Zero => 0,
            FillMode::Mean => 1,
            FillMode::Noise => 2,
        }
    }
}

/// Mean of each row over time: the CPU twin of `row_mean.wgsl`.
///
/// # Shapes
/// `mel` [M, T] -> [M]
pub fn row_means(mel: ArrayView2<f32>) -> Array1<f32> {
    let t = mel.ncols().max(1) as f32;
    mel.rows().into_iter().map(|r| r.iter().sum::<f32>() / t).collect()
}

/// Checks that every mel row names one of `n_bands` bands.
pub(crate) fn check_row_band(row_band: &[u32], n_bands: usize) -> Result<()> {
    match row_band.iter().find(|&&r| r as usize >= n_bands) {
        Some(&bad) => Err(Error::shape(
            "row_band",
            format!("values < {n_bands}"),
            format!("value {bad}"),
        )),
        None => Ok(()),
    }
}

/// Writes the masked copies of one utterance's mel spectrogram: the CPU twin of `perturb.wgsl`.
///
/// Output sample `i` uses mask row `sample_offset + i`; the noise of a cell depends only on
/// `(seed, global sample, row, frame)`.
///
/// # Shapes
/// `mel` [M, T], `row_mean` [M], `row_band` [M], `masks` [N, B], `out` [Nc, M, T] with
/// `sample_offset + Nc <= N`.
#[allow(clippy::too_many_arguments)]
pub fn perturb_cpu(
    mel: ArrayView2<f32>,
    row_mean: ArrayView1<f32>,
    row_band: &[u32],
    masks: ArrayView2<f32>,
    sample_offset: usize,
    fill: FillMode,
    seed: u64,
    mut out: ArrayViewMut3<f32>,
) -> Result<()> {
    let (m, t) = mel.dim();
    let (n, b) = masks.dim();
    let nc = out.dim().0;
    check_shape("row_mean", &[m], row_mean.shape())?;
    check_shape("row_band", &[m], &[row_band.len()])?;
    check_shape("out", &[nc, m, t], out.shape())?;
    if sample_offset + nc > n {
        return Err(Error::shape(
            "masks",
            format!("[>={}, B]", sample_offset + nc),
            format!("[{n}, {b}]"),
        ));
    }
    check_row_band(row_band, b)?;
    for (i, mut plane) in out.outer_iter_mut().enumerate() {
        let s = sample_offset + i;
        let mask = masks.row(s);
        for (r, mut row) in plane.rows_mut().into_iter().enumerate() {
            if mask[row_band[r] as usize] > 0.5 {
                row.assign(&mel.row(r));
                continue;
            }
            match fill {
                FillMode::Zero => row.fill(0.0),
                FillMode::Mean => row.fill(row_mean[r]),
                FillMode::Noise => {
                    for (f, v) in row.iter_mut().enumerate() {
                        let u = unit_open(random_u32(seed, STREAM_NOISE, s as u32, (r * t + f) as u32));
                        *v = -u.ln() * row_mean[r];
                    }
                }
            }
        }
    }
    Ok(())
}
