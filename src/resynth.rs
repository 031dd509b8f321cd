//! Phase-preserving band resynthesis: an utterance split into band signals once, and every
//! perturbed waveform built from them by one small matrix product (CPU twin of
//! `shaders/resynth.wgsl`).
//!
//! The inverse STFT is linear. With `X` the utterance's complex STFT (original phase kept),
//! `x_b = iSTFT(X restricted to the bins of band b)` and `r = iSTFT(X restricted to the bins
//! outside every band)`, the input is `x = r + sum_b x_b` up to rounding. A fill signal `f_b`
//! replaces a removed band, so a perturbed waveform with mask `m` is
//!
//! `y = r + sum_b (m_b x_b + (1 - m_b) f_b) = base + sum_b m_b delta_b`
//!
//! with `delta_b = x_b - f_b` and `base = r + sum_b f_b`. [`BandSignals`] holds the `B + 1`
//! rows `[delta_0 .. delta_{B-1}, base]`, so a batch of `N` waveforms is the product
//! `[N, B + 1] x [B + 1, S]` of the masks (with a constant 1 column) and those rows. By
//! linearity each row is one inverse STFT (`delta_b` of the spectrum `X - F` on the bins of band
//! `b`, `base` of `X` on the residual bins plus `F` on every band's bins, `F` the fill
//! spectrum): one forward and `B + 1` inverse STFTs per utterance are the only FFT work.
//!
//! Fills ([`FillMode`]) in the waveform domain: `zero` removes the band's bins; `mean` puts
//! each bin's mean magnitude over time under the original phase of every frame; `noise` puts
//! seeded complex Gaussian noise at each bin's mean power (drawn once per utterance, so every
//! sample that removes a band hears the same noise).

use crate::audio::Stft;
use crate::bands::BandLayout;
use crate::error::{Error, Result, check_shape};
use crate::perturb::FillMode;
use crate::sampling::{random_u32, unit_open};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rustfft::num_complex::Complex32;

/// How the perturbed inputs of waveform models are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Resynthesis {
    /// Phase-preserving band resynthesis (this module): the sample keeping every band is the
    /// input itself, and a mask's waveform is a function of the mask alone.
    #[default]
    Phase,
    /// EmoLIME's path, seeded: masked mel power -> pseudo-inverse -> Griffin-Lim
    /// ([`crate::griffin_lim`]).
    GriffinLim(crate::griffin_lim::GriffinLimConfig),
}

/// Stream id of the seeded noise of [`FillMode::Noise`] in the waveform domain.
pub const STREAM_RESYNTH_NOISE: u32 = 3;

/// Band of every STFT bin: `Some(b)` for a bin whose centre frequency lies in band `b`
/// (`edges[b] <= f < edges[b + 1]`, the top edge belonging to the last band), `None` for a bin
/// outside every band, which is always kept.
///
/// Errors: [`Error::Config`] when a band holds no bin (a band narrower than one bin, or one
/// above the Nyquist frequency).
///
/// # Shapes
/// -> [K] with `K = n_fft / 2 + 1`
pub fn bin_bands(layout: &BandLayout, n_fft: usize, sample_rate_hz: u32) -> Result<Vec<Option<u32>>> {
    let edges = &layout.edges_hz;
    let b = layout.n_bands();
    let k = n_fft / 2 + 1;
    let bins: Vec<Option<u32>> = (0..k)
        .map(|i| {
            let f = i as f32 * sample_rate_hz as f32 / n_fft as f32;
            if f < edges[0] || f > edges[b] {
                None
            } else {
                Some(edges[1..].iter().position(|&e| f < e).unwrap_or(b - 1) as u32)
            }
        })
        .collect();
    for band in 0..b as u32 {
        if !bins.contains(&Some(band)) {
            return Err(Error::config(
                "bands",
                format!(
                    "band {band} ({:.0}-{:.0} Hz) holds no stft bin at {sample_rate_hz} Hz with n_fft {n_fft}",
                    edges[band as usize],
                    edges[band as usize + 1]
                ),
            ));
        }
    }
    Ok(bins)
}

/// The `B + 1` signals of one utterance from which every perturbed waveform is a mix.
#[derive(Clone, Debug)]
pub struct BandSignals {
    /// Rows `delta_b = x_b - f_b` for each band, then `base = r + sum_b f_b`. // [B + 1, S]
    pub rows: Array2<f32>,
}

impl BandSignals {
    /// Splits `signal` into band signals and fill signals.
    ///
    /// `bins` comes from [`bin_bands`] for `stft`'s `n_fft`; `seed` drives [`FillMode::Noise`].
    ///
    /// # Shapes
    /// `signal` [S], `bins` [K] -> rows [B + 1, S]
    pub fn new(
        stft: &Stft,
        bins: &[Option<u32>],
        n_bands: usize,
        signal: &[f32],
        fill: FillMode,
        seed: u64,
    ) -> Result<Self> {
        check_shape("bins", &[stft.n_freq_bins()], &[bins.len()])?;
        if let Some(bad) = bins.iter().flatten().find(|&&b| b as usize >= n_bands) {
            return Err(Error::shape(
                "bins",
                format!("values < {n_bands}"),
                format!("value {bad}"),
            ));
        }
        let spec = stft.forward(signal)?; // [K, T]
        let (k, t) = spec.dim();
        let s = signal.len();
        let mut rows = Array2::<f32>::zeros((n_bands + 1, s));
        let fill_level: Vec<f32> = (0..k)
            .map(|i| {
                let col = spec.row(i);
                match fill {
                    FillMode::Zero => 0.0,
                    FillMode::Mean => col.iter().map(|c| c.norm()).sum::<f32>() / t as f32,
                    FillMode::Noise => (col.iter().map(|c| c.norm_sqr()).sum::<f32>() / t as f32).sqrt(),
                }
            })
            .collect();
        // The fill spectrum F and the spectrum of `base` (residual bins of X, fill bins of F).
        let mut fills = Array2::<Complex32>::zeros((k, t)); // [K, T]
        let mut base = Array2::<Complex32>::zeros((k, t)); // [K, T]
        for (i, &owner) in bins.iter().enumerate() {
            for j in 0..t {
                let x = spec[[i, j]];
                base[[i, j]] = match owner {
                    None => x,
                    Some(_) => {
                        let f = fill_bin(fill, x, fill_level[i], seed, i, j);
                        fills[[i, j]] = f;
                        f
                    }
                };
            }
        }
        rows.row_mut(n_bands)
            .assign(&ArrayView1::from(&stft.inverse(base.view(), s)?));
        // delta_b = iSTFT((X - F) on the bins of band b): B + 1 inverse STFTs in all.
        let mut part = base; // reused: [K, T]
        for band in 0..n_bands as u32 {
            for (i, &owner) in bins.iter().enumerate() {
                for j in 0..t {
                    part[[i, j]] = if owner == Some(band) {
                        spec[[i, j]] - fills[[i, j]]
                    } else {
                        Complex32::default()
                    };
                }
            }
            rows.row_mut(band as usize)
                .assign(&ArrayView1::from(&stft.inverse(part.view(), s)?));
        }
        Ok(BandSignals { rows })
    }

    /// Bands `B`.
    pub fn n_bands(&self) -> usize {
        self.rows.nrows() - 1
    }

    /// Samples `S`.
    pub fn n_samples(&self) -> usize {
        self.rows.ncols()
    }
}

/// The fill value of one STFT cell.
fn fill_bin(fill: FillMode, x: Complex32, level: f32, seed: u64, bin: usize, frame: usize) -> Complex32 {
    match fill {
        FillMode::Zero => Complex32::default(),
        FillMode::Mean => {
            let mag = x.norm();
            if mag > 0.0 {
                x * (level / mag)
            } else {
                Complex32::new(level, 0.0)
            }
        }
        FillMode::Noise => {
            // Box-Muller from two counter-based uniforms: unit-power complex Gaussian.
            let u1 = unit_open(random_u32(seed, STREAM_RESYNTH_NOISE, bin as u32, 2 * frame as u32));
            let u2 = unit_open(random_u32(seed, STREAM_RESYNTH_NOISE, bin as u32, 2 * frame as u32 + 1));
            let radius = (-u1.ln()).sqrt();
            let angle = std::f32::consts::TAU * u2;
            Complex32::new(radius * angle.cos(), radius * angle.sin()) * level
        }
    }
}

/// Mixes perturbed waveforms: the CPU twin of `resynth.wgsl`.
///
/// Output row `i` uses mask row `sample_offset + i`:
/// `out[i, s] = rows[B, s] + sum_b masks[sample_offset + i, b] * rows[b, s]`, summed in band
/// order as the kernel does.
///
/// # Shapes
/// `rows` [B + 1, S], `masks` [N, B], `out` [Nc, S] with `sample_offset + Nc <= N`
pub fn resynth_cpu(
    rows: ArrayView2<f32>,
    masks: ArrayView2<f32>,
    sample_offset: usize,
    mut out: ArrayViewMut2<f32>,
) -> Result<()> {
    let (b1, s) = rows.dim();
    let (n, b) = masks.dim();
    let nc = out.nrows();
    check_shape("rows", &[b + 1, s], &[b1, s])?;
    check_shape("out", &[nc, s], out.shape())?;
    if sample_offset + nc > n {
        return Err(Error::shape(
            "masks",
            format!("[>={}, B]", sample_offset + nc),
            format!("[{n}, {b}]"),
        ));
    }
    let base = rows.row(b);
    for (i, mut y) in out.outer_iter_mut().enumerate() {
        let mask = masks.row(sample_offset + i);
        y.assign(&base);
        for band in 0..b {
            let m = mask[band];
            if m != 0.0 {
                y.zip_mut_with(&rows.row(band), |acc, &d| *acc += m * d);
            }
        }
    }
    Ok(())
}
