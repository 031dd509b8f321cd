//! EmoLIME's resynthesis, seeded: a masked mel power spectrogram -> STFT magnitude (clipped
//! pseudo-inverse of the mel filterbank) -> Griffin-Lim with momentum -> waveform. The
//! compatibility path for waveform models (`--resynthesis griffin-lim`); the default is the
//! phase-preserving band resynthesis of [`crate::resynth`].
//!
//! Unlike EmoLIME, the random initial phase is drawn from `(seed, sample)`, so a seed gives the
//! same waveforms on every run and device. As in EmoLIME, even the sample that keeps every band is
//! a reconstruction, not the input audio. This runs on the host (plain Rust, `rustfft`) on every
//! device: a GPU path scores the waveforms it builds.

use crate::audio::{MelFilterbank, Stft};
use crate::error::{Error, Result, check_shape};
use crate::perturb::{FillMode, perturb_cpu};
use crate::sampling::{random_u32, unit_open};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut2};
use rustfft::num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Stream id of the initial phases ([`crate::sampling::random_u32`]; 3 is the waveform noise fill).
pub const STREAM_PHASE: u32 = 4;

/// Griffin-Lim settings (EmoLIME's: 32 iterations; librosa's fast Griffin-Lim momentum 0.99).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GriffinLimConfig {
    /// Phase-retrieval iterations.
    pub iters: usize,
    /// Momentum of the fast Griffin-Lim update, in [0, 1).
    pub momentum: f32,
}

impl Default for GriffinLimConfig {
    fn default() -> Self {
        GriffinLimConfig {
            iters: 32,
            momentum: 0.99,
        }
    }
}

impl GriffinLimConfig {
    /// Checks the iteration count and the momentum.
    pub fn validate(&self) -> Result<()> {
        if self.iters == 0 || self.iters > 1000 {
            return Err(Error::config(
                "griffin-lim-iters",
                format!("must be 1..=1000, got {}", self.iters),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::config(
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            ));
        }
        Ok(())
    }
}

/// The pseudo-inverse of a mel filterbank, `A^T (A A^T + eps I)^-1` (`eps` keeps filters that
/// cover no FFT bin harmless), built once per explainer.
#[derive(Clone, Debug)]
pub struct MelInverse {
    /// `[K, M]`.
    pinv: Array2<f32>,
}

impl MelInverse {
    /// Inverts `fb`'s `[M, K]` weights.
    pub fn new(fb: &MelFilterbank) -> Result<Self> {
        let a = fb.weights().mapv(f64::from); // [M, K]
        let m = a.nrows();
        let mut gram = a.dot(&a.t()); // [M, M]
        let trace: f64 = gram.diag().sum();
        let eps = 1e-9 * trace / m.max(1) as f64 + f64::MIN_POSITIVE;
        gram.diag_mut().mapv_inplace(|d| d + eps);
        // pinv^T = (A A^T)^-1 A, [M, K].
        let x = crate::linalg::spd_solve(gram.view(), a.view(), "mel filterbank")?;
        Ok(MelInverse {
            pinv: x.t().mapv(|v| v as f32),
        })
    }

    /// The pseudo-inverse.
    ///
    /// # Shapes
    /// returns `[K, M]`
    pub fn pinv(&self) -> ArrayView2<'_, f32> {
        self.pinv.view()
    }

    /// STFT magnitude of a mel power spectrogram: `sqrt(max(pinv . mel, 0))`.
    ///
    /// # Shapes
    /// `mel` [M, T] -> [K, T]
    pub fn magnitude(&self, mel: ArrayView2<f32>) -> Result<Array2<f32>> {
        check_shape("mel", &[self.pinv.ncols(), mel.ncols()], mel.shape())?;
        Ok(self.pinv.dot(&mel).mapv(|p| p.max(0.0).sqrt()))
    }
}

/// A waveform of `length` samples whose STFT magnitude approaches `magnitude`: fast Griffin-Lim
/// (librosa's `griffinlim` with `init="random"`), initial phases drawn from `(seed, sample)`.
///
/// # Shapes
/// `magnitude` [K, T] -> [length]
pub fn griffin_lim(
    stft: &Stft,
    magnitude: ArrayView2<f32>,
    length: usize,
    cfg: &GriffinLimConfig,
    seed: u64,
    sample: u32,
) -> Result<Vec<f32>> {
    cfg.validate()?;
    let (k, t) = magnitude.dim();
    check_shape("magnitude", &[stft.n_freq_bins(), t], &[k, t])?;
    let mut angles = Array2::from_shape_fn((k, t), |(f, j)| {
        let u = unit_open(random_u32(seed, STREAM_PHASE, sample, (f * t + j) as u32));
        let a = std::f32::consts::TAU * u;
        Complex32::new(a.cos(), a.sin())
    });
    let mut previous = Array2::<Complex32>::zeros((k, t));
    let keep = cfg.momentum / (1.0 + cfg.momentum);
    let with_magnitude = |angles: &Array2<Complex32>| {
        let mut spec = angles.clone();
        spec.zip_mut_with(&magnitude, |s, &m| *s *= m);
        spec
    };
    for _ in 0..cfg.iters {
        let wave = stft.inverse(with_magnitude(&angles).view(), length)?;
        let rebuilt = stft.forward(&wave)?;
        if rebuilt.dim() != (k, t) {
            return Err(Error::shape(
                "rebuilt stft",
                format!("[{k}, {t}]"),
                format!("{:?}", rebuilt.dim()),
            ));
        }
        for ((a, r), p) in angles.iter_mut().zip(&rebuilt).zip(previous.iter()) {
            let v = *r - *p * keep;
            *a = v / (v.norm() + 1e-16);
        }
        previous = rebuilt;
    }
    stft.inverse(with_magnitude(&angles).view(), length)
}

/// Everything the Griffin-Lim path needs besides the utterance: the STFT, the analysis mel
/// filterbank and its inverse, and the settings; built once per explainer and shared by the
/// utterances it prepares.
#[derive(Clone, Debug)]
pub struct GriffinLimSynth {
    /// The analysis STFT.
    pub stft: Stft,
    /// The analysis mel filterbank.
    pub filterbank: MelFilterbank,
    /// Its pseudo-inverse.
    pub inverse: MelInverse,
    /// Iterations and momentum.
    pub cfg: GriffinLimConfig,
}

impl GriffinLimSynth {
    /// Inverts `filterbank` once.
    pub fn new(stft: Stft, filterbank: MelFilterbank, cfg: GriffinLimConfig) -> Result<Self> {
        cfg.validate()?;
        let inverse = MelInverse::new(&filterbank)?;
        Ok(GriffinLimSynth {
            stft,
            filterbank,
            inverse,
            cfg,
        })
    }

    /// One utterance's mel power spectrogram and row means.
    ///
    /// # Shapes
    /// `samples` [S] -> mel [M, T]
    pub fn prepare(self: &std::sync::Arc<Self>, samples: &[f32]) -> Result<MelSignal> {
        let mel = self.filterbank.apply(self.stft.power(samples)?.view())?;
        Ok(MelSignal {
            row_mean: crate::perturb::row_means(mel.view()),
            mel,
            n_samples: samples.len(),
            synth: self.clone(),
        })
    }
}

/// What the Griffin-Lim path keeps per utterance: its mel power spectrogram and row means.
#[derive(Clone, Debug)]
pub struct MelSignal {
    /// `[M, T]`.
    pub mel: Array2<f32>,
    /// `[M]`.
    pub row_mean: Array1<f32>,
    /// Samples of the utterance `S`.
    pub n_samples: usize,
    /// The shared resynthesis state.
    pub synth: std::sync::Arc<GriffinLimSynth>,
}

impl MelSignal {
    /// Builds perturbed waveforms the way EmoLIME does: output row `i` is mask row
    /// `sample_offset + i` applied to the mel rows (filled as `fill` says), inverted to a
    /// magnitude and resynthesized by [`griffin_lim`]; rows are spread over `threads` threads.
    ///
    /// # Shapes
    /// `row_band` [M], `masks` [N, B], `out` [Nc, S] with `sample_offset + Nc <= N`
    #[allow(clippy::too_many_arguments)]
    pub fn perturbed(
        &self,
        row_band: &[u32],
        masks: ArrayView2<f32>,
        sample_offset: usize,
        fill: FillMode,
        seed: u64,
        threads: usize,
        mut out: ArrayViewMut2<f32>,
    ) -> Result<()> {
        let (m, t) = self.mel.dim();
        let nc = out.nrows();
        check_shape("out", &[nc, self.n_samples], out.shape())?;
        let per_thread = nc.div_ceil(threads.max(1)).max(1);
        let synth = &*self.synth;
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = out
                .axis_chunks_iter_mut(ndarray::Axis(0), per_thread)
                .enumerate()
                .map(|(chunk, mut rows)| {
                    s.spawn(move || -> Result<()> {
                        let mut masked = Array3::<f32>::zeros((1, m, t));
                        for (i, mut row) in rows.outer_iter_mut().enumerate() {
                            let sample = sample_offset + chunk * per_thread + i;
                            perturb_cpu(
                                self.mel.view(),
                                self.row_mean.view(),
                                row_band,
                                masks,
                                sample,
                                fill,
                                seed,
                                masked.view_mut(),
                            )?;
                            let magnitude = synth.inverse.magnitude(masked.index_axis(ndarray::Axis(0), 0))?;
                            let wave = griffin_lim(
                                &synth.stft,
                                magnitude.view(),
                                self.n_samples,
                                &synth.cfg,
                                seed,
                                sample as u32,
                            )?;
                            row.assign(&ArrayView1::from(&wave));
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| Error::Device("a griffin-lim worker panicked".into()))??;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{FrontEndConfig, MelScale};

    fn voice(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 16000.0;
                (1..10)
                    .map(|h| (std::f32::consts::TAU * 150.0 * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                    * 0.2
            })
            .collect()
    }

    #[test]
    fn mel_inverse_is_a_right_inverse() {
        let fb = MelFilterbank::new(16000, 2048, 128, 0.0, 8000.0, MelScale::Slaney).unwrap();
        let inv = MelInverse::new(&fb).unwrap();
        let mel = Array2::from_shape_fn((128, 5), |(m, t)| ((m * 31 + t * 7) % 17) as f32 + 1.0);
        // A A+ m = m: the pseudo-inverse's power spectrum maps back to the same mel rows.
        let power = inv.pinv.dot(&mel);
        let back = fb.apply(power.view()).unwrap();
        let err = (&back - &mel).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(err < 1e-3 * 17.0, "A A+ m differs from m by {err}");
        assert!(inv.magnitude(mel.view()).unwrap().iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn griffin_lim_converges_and_is_seeded() {
        let stft = FrontEndConfig::default().stft().unwrap();
        let x = voice(16000);
        let target = stft.power(&x).unwrap().mapv(f32::sqrt);
        let error = |y: &[f32]| {
            let got = stft.power(y).unwrap().mapv(f32::sqrt);
            let diff: f32 = (&got - &target).iter().map(|v| v * v).sum();
            (diff / target.iter().map(|v| v * v).sum::<f32>()).sqrt()
        };
        let run = |iters, seed| {
            let cfg = GriffinLimConfig {
                iters,
                ..Default::default()
            };
            griffin_lim(&stft, target.view(), x.len(), &cfg, seed, 0).unwrap()
        };
        let (few, many) = (error(&run(1, 5)), error(&run(32, 5)));
        assert!(
            many < few && many < 0.3,
            "spectral convergence: 1 iteration {few}, 32 iterations {many}"
        );
        assert_eq!(run(3, 5), run(3, 5));
        assert_ne!(run(3, 5), run(3, 6));
        assert!(
            GriffinLimConfig {
                iters: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            GriffinLimConfig {
                momentum: 1.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
