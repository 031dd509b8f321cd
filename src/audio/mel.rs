//! Mel scale conversions and the triangular mel filterbank (`librosa.filters.mel` twin).

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result, check_shape};

/// Which Hz-to-mel formula to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MelScale {
    /// Slaney's Auditory Toolbox scale (librosa default): linear below 1 kHz, log above.
    Slaney,
    /// HTK scale: `2595 * log10(1 + f / 700)`.
    Htk,
}

/// Slaney scale: Hz per mel in the linear region.
const SLANEY_F_SP: f64 = 200.0 / 3.0;
/// Slaney scale: start of the log region in Hz.
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
/// Slaney scale: start of the log region in mels.
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;

/// Slaney scale: log step per mel, `ln(6.4) / 27`.
fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// [`hz_to_mel`] in f64 (what librosa computes).
fn hz_to_mel_f64(hz: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
        MelScale::Slaney => {
            if hz >= SLANEY_MIN_LOG_HZ {
                SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
            } else {
                hz / SLANEY_F_SP
            }
        }
    }
}

/// [`mel_to_hz`] in f64 (what librosa computes).
fn mel_to_hz_f64(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney => {
            if mel >= SLANEY_MIN_LOG_MEL {
                SLANEY_MIN_LOG_HZ * (slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL)).exp()
            } else {
                SLANEY_F_SP * mel
            }
        }
    }
}

/// Converts a frequency in Hz to mels (`librosa.hz_to_mel`; `htk=True` for [`MelScale::Htk`]).
///
/// Slaney: `f / (200/3)` below 1 kHz, `15 + ln(f / 1000) / (ln(6.4) / 27)` above.
/// HTK: `2595 * log10(1 + f / 700)` (NaN below -700 Hz).
pub fn hz_to_mel(hz: f32, scale: MelScale) -> f32 {
    hz_to_mel_f64(f64::from(hz), scale) as f32
}

/// Converts mels to a frequency in Hz (`librosa.mel_to_hz`), the inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f32, scale: MelScale) -> f32 {
    mel_to_hz_f64(f64::from(mel), scale) as f32
}

/// `n` frequencies in Hz evenly spaced on the mel scale from `fmin_hz` to `fmax_hz`
/// inclusive (`librosa.mel_frequencies`; computed in f64).
///
/// # Shapes
/// returns `[n]`
pub fn mel_frequencies_hz(n: usize, fmin_hz: f32, fmax_hz: f32, scale: MelScale) -> Vec<f32> {
    mel_frequencies_f64(n, f64::from(fmin_hz), f64::from(fmax_hz), scale)
        .into_iter()
        .map(|hz| hz as f32)
        .collect()
}

/// [`mel_frequencies_hz`] in f64, following `numpy.linspace` exactly (last point is `fmax`).
///
/// # Shapes
/// returns `[n]`
fn mel_frequencies_f64(n: usize, fmin_hz: f64, fmax_hz: f64, scale: MelScale) -> Vec<f64> {
    let min_mel = hz_to_mel_f64(fmin_hz, scale);
    let max_mel = hz_to_mel_f64(fmax_hz, scale);
    match n {
        0 => Vec::new(),
        1 => vec![mel_to_hz_f64(min_mel, scale)],
        _ => {
            let step = (max_mel - min_mel) / (n - 1) as f64;
            (0..n)
                .map(|i| {
                    let mel = if i == n - 1 { max_mel } else { min_mel + i as f64 * step };
                    mel_to_hz_f64(mel, scale)
                })
                .collect()
        }
    }
}

/// Triangular mel filterbank (`librosa.filters.mel` with `norm='slaney'` area
/// normalisation for both scales), weights `[M, K]`.
///
/// Built once (in f64, stored as f32 like librosa's default dtype) and applied to many
/// power spectrograms.
#[derive(Clone, Debug)]
pub struct MelFilterbank {
    sample_rate_hz: u32,
    n_fft: usize,
    scale: MelScale,
    /// Filter weights. // [M, K]
    weights: Array2<f32>,
    /// Band edges in Hz. // [M + 2]
    edges_hz: Vec<f32>,
    /// Per filter, the half-open bin range `[lo, hi)` holding its non-zero weights. // [M]
    support: Vec<(usize, usize)>,
}

impl MelFilterbank {
    /// Builds the filterbank for `n_fft`-point spectra at `sample_rate_hz`.
    ///
    /// Filter `m` rises linearly from `edges_hz[m]` to a peak at `edges_hz[m + 1]` and falls
    /// to zero at `edges_hz[m + 2]`; it is scaled by `2 / (edges_hz[m + 2] - edges_hz[m])`.
    /// Filters narrower than one FFT bin may be all zero (librosa warns; see
    /// [`MelFilterbank::n_empty_filters`]).
    ///
    /// Errors ([`Error::Config`]): `sample_rate_hz == 0`, `n_fft < 2`, `n_mels == 0`,
    /// non-finite or negative `fmin_hz`, `fmax_hz <= fmin_hz` or `fmax_hz` above Nyquist.
    pub fn new(
        sample_rate_hz: u32,
        n_fft: usize,
        n_mels: usize,
        fmin_hz: f32,
        fmax_hz: f32,
        scale: MelScale,
    ) -> Result<Self> {
        if sample_rate_hz == 0 {
            return Err(Error::config("sample_rate_hz", "must be positive"));
        }
        if n_fft < 2 {
            return Err(Error::config("n_fft", format!("{n_fft} is below 2")));
        }
        if n_mels == 0 {
            return Err(Error::config("n_mels", "must be positive"));
        }
        let nyquist_hz = f64::from(sample_rate_hz) / 2.0;
        if !fmin_hz.is_finite() || fmin_hz < 0.0 {
            return Err(Error::config("fmin_hz", format!("{fmin_hz} must be finite and >= 0")));
        }
        if !fmax_hz.is_finite() || f64::from(fmax_hz) > nyquist_hz {
            return Err(Error::config(
                "fmax_hz",
                format!("{fmax_hz} must be finite and <= sample_rate_hz / 2 ({nyquist_hz})"),
            ));
        }
        if fmin_hz >= fmax_hz {
            return Err(Error::config(
                "fmin_hz",
                format!("{fmin_hz} must be below fmax_hz ({fmax_hz})"),
            ));
        }

        let n_bins = n_fft / 2 + 1;
        // fft_frequencies: linspace(0, sr / 2, n_bins).
        let bin_hz: Vec<f64> = (0..n_bins)
            .map(|k| {
                if k + 1 == n_bins {
                    nyquist_hz
                } else {
                    k as f64 * nyquist_hz / (n_bins - 1) as f64
                }
            })
            .collect(); // [K]
        let edges = mel_frequencies_f64(n_mels + 2, f64::from(fmin_hz), f64::from(fmax_hz), scale); // [M + 2]

        let mut weights = Array2::<f32>::zeros((n_mels, n_bins)); // [M, K]
        let mut support = Vec::with_capacity(n_mels);
        for m in 0..n_mels {
            let (left, center, right) = (edges[m], edges[m + 1], edges[m + 2]);
            let lower_width = center - left;
            let upper_width = right - center;
            let enorm = 2.0 / (right - left);
            let mut lo = n_bins;
            let mut hi = 0;
            for (k, &f) in bin_hz.iter().enumerate() {
                // Same expressions as librosa: -ramps[m] / fdiff[m], ramps[m+2] / fdiff[m+1].
                let lower = (f - left) / lower_width;
                let upper = (right - f) / upper_width;
                let w = lower.min(upper).max(0.0) * enorm;
                let w = w as f32;
                if w > 0.0 {
                    weights[[m, k]] = w;
                    lo = lo.min(k);
                    hi = k + 1;
                }
            }
            support.push(if hi > lo { (lo, hi) } else { (0, 0) });
        }
        Ok(Self {
            sample_rate_hz,
            n_fft,
            scale,
            weights,
            edges_hz: edges.into_iter().map(|hz| hz as f32).collect(),
            support,
        })
    }

    /// Number of mel bands `M`.
    pub fn n_mels(&self) -> usize {
        self.weights.nrows()
    }

    /// Number of frequency bins `K = n_fft / 2 + 1` the filters expect.
    pub fn n_freq_bins(&self) -> usize {
        self.weights.ncols()
    }

    /// Sample rate the filterbank was built for, in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// FFT length the filterbank was built for.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Mel scale formula used.
    pub fn scale(&self) -> MelScale {
        self.scale
    }

    /// Number of filters with no non-zero weight (too narrow for the FFT resolution).
    pub fn n_empty_filters(&self) -> usize {
        self.support.iter().filter(|(lo, hi)| hi <= lo).count()
    }

    /// The filter weights.
    ///
    /// # Shapes
    /// `[M, K]`
    pub fn weights(&self) -> ArrayView2<'_, f32> {
        self.weights.view()
    }

    /// Mel band edge frequencies: `n_mels + 2` points in Hz (filter `m` spans
    /// `edges[m]..edges[m + 2]`, peaks at `edges[m + 1]`).
    ///
    /// # Shapes
    /// returns `[M + 2]`
    pub fn edges_hz(&self) -> &[f32] {
        &self.edges_hz
    }

    /// Power mel spectrogram `weights · power`.
    ///
    /// This is the CPU twin of a GPU kernel: each output is accumulated in f32 with `k`
    /// ascending (bins where the filter weight is zero are skipped; for finite input that
    /// does not change the sum).
    ///
    /// # Shapes
    /// `power` `[K, T]` -> `[M, T]`
    ///
    /// Errors: [`Error::Shape`] when `power` does not have `K` rows.
    pub fn apply(&self, power: ArrayView2<f32>) -> Result<Array2<f32>> {
        let (n_bins, n_frames) = power.dim(); // [K, T]
        check_shape("power", &[self.n_freq_bins(), n_frames], &[n_bins, n_frames])?;
        let power = power.as_standard_layout(); // [K, T], row-major
        let mut mel = Array2::<f32>::zeros((self.n_mels(), n_frames)); // [M, T]
        for (m, &(lo, hi)) in self.support.iter().enumerate() {
            let weights = self.weights.row(m); // [K]
            let mut out_row = mel.row_mut(m); // [T]
            for k in lo..hi {
                let w = weights[k];
                if w == 0.0 {
                    continue;
                }
                for (acc, p) in out_row.iter_mut().zip(power.row(k)) {
                    *acc += w * p;
                }
            }
        }
        Ok(mel)
    }
}
