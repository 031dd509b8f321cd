//! Interpretable acoustic features: eGeMAPS v02 (88 functionals, 25 frame-level descriptors)
//! computed in Rust the way openSMILE computes them, for one waveform or a whole corpus.
//!
//! ```text
//! waveform (16 kHz) ─┬─ 20 ms Hamming frames ── loudness, alpha ratio, Hammarberg, slopes,
//!                    │                           flux, MFCC 1-4, energy, LPC formants
//!                    └─ 60 ms Gaussian frames ── SHS F0 ─ Viterbi ─ jitter, shimmer, HNR,
//!                                                                    H1-H2, H1-A3, formant levels
//!     └─ 3-frame smoothing ─ voiced / unvoiced selection ─ functionals (means, CoV,
//!        percentiles, slopes, peaks, segments) ─ 88 values in openSMILE's order
//! ```
//!
//! The agreement with openSMILE 3.0 (the PyPI `opensmile` package) is measured by
//! `scripts/egemaps_compare.py` and tabled in the README. Conventions where openSMILE has none:
//! audio at another rate is resampled to 16 kHz first, and a clip shorter than one 60 ms frame
//! is zero-padded to one frame, so every input gives 88 finite values.

pub mod corpus;
pub mod functionals;
mod names;
pub mod pitch;
pub mod spectral;
pub mod voice;

pub use names::{EGEMAPS_NAMES, LLD_NAMES};

use crate::error::{Error, Result};
use functionals::{mean, mean_stddev_norm, non_zero, peaks2, percentiles_20_50_80, segments, smooth3};
use ndarray::Array2;
use pitch::{F0Track, PitchAnalyzer, PitchFrame, semitones_from_27_5, smooth_f0};
use spectral::{SpectralAnalyzer, SpectralFrame};
use voice::{HarmonicAnalyzer, HarmonicFrame, JitterTracker};

/// Dot product of two equal-length stretches, summed in four interleaved lanes so the
/// compiler can keep several additions in flight (a single running sum waits on each add).
///
/// # Shapes
/// `a`, `b`: `[L]` (the shorter length is used).
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]) + tail
}

/// Sample rate every descriptor is computed at, Hz.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
/// Hop between frames, samples at 16 kHz (10 ms).
pub const HOP_LEN: usize = 160;
/// openSMILE reads 16-bit PCM as `int / 32767`; decoders give `int / 32768`.
const PCM_SCALE: f64 = 32768.0 / 32767.0;

/// The eGeMAPS v02 extractor: FFT plans, filterbanks and tables built once, reused for every
/// waveform. Not shared between threads: give each worker its own.
pub struct Egemaps {
    spectral: SpectralAnalyzer,
    pitch: PitchAnalyzer,
    harmonics: HarmonicAnalyzer,
    /// `[N60, pitch::N_BINS]`: the 60 ms magnitude spectra of the current waveform, reused.
    magnitudes: Vec<f64>,
}

/// Every frame-level value of one waveform, before smoothing.
struct Frames {
    /// One per 20 ms frame, `[N20]`.
    short: Vec<SpectralFrame>,
    /// F0 in Hz per 60 ms frame, `[N60]`, 0 when unvoiced.
    f0_hz: Vec<f64>,
    /// `[N60]`.
    harmonic: Vec<HarmonicFrame>,
    /// `(jitter, shimmer dB)` per 60 ms frame, `[N60]`.
    jitter: Vec<(f64, f64)>,
    /// 60 ms frames openSMILE's Viterbi had fixed before the end of input ([`F0Track::fixed`]).
    fixed: usize,
}

impl Default for Egemaps {
    fn default() -> Self {
        Self::new()
    }
}

/// The 25 descriptors of one 60 ms frame index, in [`LLD_NAMES`] order, unsmoothed; `gate`
/// zeroes the formant frequencies and bandwidths of unvoiced frames (as the functionals see
/// them; the LLD output keeps them).
fn lld_row(fr: &Frames, k: usize, gate: bool) -> [f64; 25] {
    let s = &fr.short[k];
    let h = &fr.harmonic[k];
    let f0 = fr.f0_hz[k];
    let voiced = f0 > 0.0;
    let mut row = [0.0; 25];
    for (c, v) in row[..10].iter_mut().enumerate() {
        *v = spectral_column(s, c);
    }
    row[10] = semitones_from_27_5(f0);
    row[11] = fr.jitter[k].0;
    row[12] = fr.jitter[k].1;
    row[13] = h.hnr_db;
    row[14] = h.h1_h2_db;
    row[15] = h.h1_a3_db;
    for f in 0..3 {
        let keep = !gate || voiced;
        row[16 + 3 * f] = if keep { s.formant_hz[f] } else { 0.0 };
        row[17 + 3 * f] = if keep { s.bandwidth_hz[f] } else { 0.0 };
        row[18 + 3 * f] = h.formant_amp_db[f];
    }
    row
}

impl Egemaps {
    /// Builds the analysers.
    pub fn new() -> Self {
        Egemaps {
            spectral: SpectralAnalyzer::new(),
            pitch: PitchAnalyzer::new(),
            harmonics: HarmonicAnalyzer::new(),
            magnitudes: Vec::new(),
        }
    }

    /// Checks and converts `samples` to openSMILE's scale at 16 kHz, padded to one 60 ms frame.
    fn signal(samples: &[f32], sample_rate_hz: u32) -> Result<Vec<f64>> {
        if let Some((i, x)) = samples.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::config("samples", format!("sample {i} is not finite ({x})")));
        }
        let resampled;
        let at_16k = if sample_rate_hz == SAMPLE_RATE_HZ {
            samples
        } else {
            resampled = crate::audio::resample(samples, sample_rate_hz, SAMPLE_RATE_HZ)?;
            &resampled[..]
        };
        let mut x: Vec<f64> = at_16k.iter().map(|v| *v as f64 * PCM_SCALE).collect();
        if x.len() < pitch::FRAME_LEN {
            x.resize(pitch::FRAME_LEN, 0.0);
        }
        Ok(x)
    }

    /// Every descriptor of every frame. The pitch path runs first, so that with
    /// `all_formants: false` the formant tracker runs only where something reads its output:
    /// the voiced frames among the first N60 (the functionals zero the formants of unvoiced
    /// frames, and the formant levels of unvoiced frames are -201 dB whatever the formants).
    fn frames(&mut self, x: &[f64], all_formants: bool) -> Frames {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.frames_avx2(x, all_formants) };
        }
        self.frames_body(x, all_formants)
    }

    /// [`Self::frames`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn frames_avx2(&mut self, x: &[f64], all_formants: bool) -> Frames {
        self.frames_body(x, all_formants)
    }

    #[inline(always)]
    fn frames_body(&mut self, x: &[f64], all_formants: bool) -> Frames {
        let n20 = (x.len() - spectral::FRAME_LEN) / HOP_LEN + 1;
        let n60 = (x.len() - pitch::FRAME_LEN) / HOP_LEN + 1;
        self.magnitudes.resize(n60 * pitch::N_BINS, 0.0);
        // Plain loops, not iterator closures: a closure is compiled without the caller's
        // target features, which would leave the AVX2 build of this body unused.
        let mut long: Vec<PitchFrame> = Vec::with_capacity(n60);
        for (k, mag) in self.magnitudes.chunks_exact_mut(pitch::N_BINS).enumerate() {
            long.push(self.pitch.analyse(&x[k * HOP_LEN..k * HOP_LEN + pitch::FRAME_LEN], mag));
        }
        let F0Track { f0_hz, fixed } = smooth_f0(&long);
        self.spectral.reset();
        let mut short: Vec<SpectralFrame> = Vec::with_capacity(n20);
        for k in 0..n20 {
            let formants = all_formants || f0_hz.get(k).is_some_and(|f| *f > 0.0);
            short.push(
                self.spectral
                    .analyse(&x[k * HOP_LEN..k * HOP_LEN + spectral::FRAME_LEN], formants),
            );
        }
        let mut tracker = JitterTracker::new();
        let mut jitter = Vec::with_capacity(n60);
        for (k, f0) in f0_hz.iter().enumerate() {
            jitter.push(tracker.frame(k, *f0, x));
        }
        let mut harmonic = Vec::with_capacity(n60);
        for (k, (f0, mag)) in f0_hz
            .iter()
            .zip(self.magnitudes.chunks_exact(pitch::N_BINS))
            .enumerate()
        {
            let f = &short[k].formant_hz;
            harmonic.push(self.harmonics.analyse(*f0, mag, [f[0], f[1], f[2]]));
        }
        Frames {
            short,
            f0_hz,
            harmonic,
            jitter,
            fixed,
        }
    }

    /// The 25 frame-level descriptors, smoothed as openSMILE writes them: one row per 60 ms
    /// frame (10 ms hop, frame k starts at `k * 10 ms`), columns in [`LLD_NAMES`] order.
    /// Every row is the centred 3-frame value: openSMILE's own output adds one last row (the
    /// last frame again) and, on input that ends voiced, writes the last pitch frame fixed
    /// before the end ([`pitch::F0Track::fixed`]) and the one after it as if the input ended
    /// there: artefacts of its end-of-input scheduling that these rows do not copy.
    ///
    /// # Shapes
    /// `samples`: `[S]` mono at `sample_rate_hz`, nominally in `[-1, 1]`; returns `[T, 25]`
    /// with `T = (S16 - 960) / 160 + 1` for `S16` samples at 16 kHz (at least 1).
    ///
    /// Errors: [`Error::Config`] for a non-finite sample or a zero rate.
    pub fn lld(&mut self, samples: &[f32], sample_rate_hz: u32) -> Result<Array2<f64>> {
        let x = Self::signal(samples, sample_rate_hz)?;
        let fr = self.frames(&x, true);
        let n60 = fr.f0_hz.len();
        // Spectral columns are smoothed over all 20 ms frames, the others over the 60 ms ones.
        let rows: Vec<[f64; 25]> = (0..n60).map(|k| lld_row(&fr, k, false)).collect();
        let mut out = Array2::zeros((n60, 25));
        for c in 0..25 {
            let raw: Vec<f64> = if c < 10 {
                fr.short.iter().map(|s| spectral_column(s, c)).collect()
            } else {
                rows.iter().map(|r| r[c]).collect()
            };
            let smooth = smooth3(&raw, c >= 10);
            for k in 0..n60 {
                out[[k, c]] = smooth[k];
            }
        }
        Ok(out)
    }

    /// The 88 eGeMAPS v02 functionals of one waveform, in [`EGEMAPS_NAMES`] order.
    ///
    /// # Shapes
    /// `samples`: `[S]` mono at `sample_rate_hz`, nominally in `[-1, 1]`; returns `[88]`.
    ///
    /// Errors: [`Error::Config`] for a non-finite sample or a zero rate. Silent, unvoiced,
    /// constant or very short input gives finite values (0 for the functionals of an empty
    /// voiced set, -120 dB sound level for digital silence).
    pub fn functionals(&mut self, samples: &[f32], sample_rate_hz: u32) -> Result<[f64; 88]> {
        let x = Self::signal(samples, sample_rate_hz)?;
        let fr = self.frames(&x, false);
        Ok(functionals_of(&fr))
    }
}

/// Column `c` (0..10) of the spectral descriptors.
fn spectral_column(s: &SpectralFrame, c: usize) -> f64 {
    match c {
        0 => s.loudness,
        1 => s.alpha_ratio_db,
        2 => s.hammarberg_db,
        3 => s.slope_0_500,
        4 => s.slope_500_1500,
        5 => s.flux,
        _ => s.mfcc[c - 6],
    }
}

fn functionals_of(fr: &Frames) -> [f64; 88] {
    let n20 = fr.short.len();
    let n60 = fr.f0_hz.len();
    // openSMILE's functionals of the 60 ms sets run once, in the first end-of-input pass, and
    // see only the frames its online Viterbi had fixed before the end of input (the rest are
    // flushed in that same pass, too late for them). What they see of those frames differs:
    // - F0 (and the voicing-split spectral sets): the first `keep` smoothed frames, the last
    //   smoothed with its real right neighbour, which reached the smoother in that pass;
    // - voice quality and formants: their smoother is fed through the jitter component, which
    //   does nothing at end of input, so it smooths the first `keep` frames as if the
    //   utterance ended there (the last frame's right neighbour is itself).
    // The 20 ms sets (loudness, flux, MFCC) see every frame.
    let keep = fr.fixed.min(n60);
    let mut out = [0.0; 88];
    let mut put = |i: &mut usize, v: f64| {
        out[*i] = v;
        *i += 1;
    };
    let mut i = 0usize;

    // F0 semitones: smoothed over voiced frames, functionals over voiced frames.
    let semitones: Vec<f64> = fr.f0_hz.iter().map(|f| semitones_from_27_5(*f)).collect();
    let f0_s = smooth3(&semitones, true);
    let f0_s = &f0_s[..keep];
    let f0_nz = non_zero(f0_s);
    let (m, sd) = mean_stddev_norm(&f0_nz);
    let p = percentiles_20_50_80(&f0_nz);
    let pk = peaks2(&f0_nz);
    for v in [m, sd, p[0], p[1], p[2], p[3]] {
        put(&mut i, v);
    }
    for v in [
        pk.mean_rising_slope,
        pk.stddev_rising_slope,
        pk.mean_falling_slope,
        pk.stddev_falling_slope,
    ] {
        put(&mut i, v);
    }

    // Loudness over all 20 ms frames.
    let col = |c: usize| -> Vec<f64> { fr.short.iter().map(|s| spectral_column(s, c)).collect() };
    let loud = smooth3(&col(0), false);
    let (m, sd) = mean_stddev_norm(&loud);
    let p = percentiles_20_50_80(&loud);
    let lpk = peaks2(&loud);
    for v in [m, sd, p[0], p[1], p[2], p[3]] {
        put(&mut i, v);
    }
    for v in [
        lpk.mean_rising_slope,
        lpk.stddev_rising_slope,
        lpk.mean_falling_slope,
        lpk.stddev_falling_slope,
    ] {
        put(&mut i, v);
    }

    // Flux and MFCC 1-4 over all 20 ms frames.
    for c in 5..10 {
        let (m, sd) = mean_stddev_norm(&smooth3(&col(c), false));
        put(&mut i, m);
        put(&mut i, sd);
    }

    // Voice quality and formants over voiced frames (formant levels keep their -201 floor).
    let rows: Vec<[f64; 25]> = (0..keep).map(|k| lld_row(fr, k, true)).collect();
    for c in 11..25 {
        let raw: Vec<f64> = rows.iter().map(|r| r[c]).collect();
        let s = smooth3(&raw, true);
        let (m, sd) = mean_stddev_norm(&non_zero(&s));
        put(&mut i, m);
        put(&mut i, sd);
    }

    // Spectral descriptors of the first N60 20 ms frames, split by the (unsmoothed) voicing.
    let gated = |c: usize, voiced: bool| -> Vec<f64> {
        let raw: Vec<f64> = (0..n60)
            .map(|k| {
                let v = semitones[k] > 1e-6;
                if v == voiced {
                    spectral_column(&fr.short[k], c)
                } else {
                    0.0
                }
            })
            .collect();
        let s = smooth3(&raw, true);
        non_zero(&s[..keep])
    };
    for c in [1, 2, 3, 4, 5, 6, 7, 8, 9] {
        let (m, sd) = mean_stddev_norm(&gated(c, true));
        put(&mut i, m);
        put(&mut i, sd);
    }
    for c in [1, 2, 3, 4, 5] {
        put(&mut i, mean(&gated(c, false)));
    }

    // Rates and segment lengths.
    put(&mut i, lpk.peaks_per_s);
    let voiced = segments(f0_s, false);
    let unvoiced = segments(f0_s, true);
    for v in [
        voiced.per_s,
        voiced.mean_len_s,
        voiced.stddev_len_s,
        unvoiced.mean_len_s,
        unvoiced.stddev_len_s,
    ] {
        put(&mut i, v);
    }
    let energy = mean(&fr.short.iter().map(|s| s.energy).collect::<Vec<_>>());
    put(&mut i, if energy > 1e-12 { 10.0 * energy.log10() } else { -120.0 });
    debug_assert_eq!(i, 88);
    debug_assert!(n20 >= n60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voiced stretch with vibrato and noise between two quiet ones, 16 kHz.
    fn speech_like(n: usize) -> Vec<f64> {
        let mut rng = crate::rng::SplitMix64::new(0x2545_f491_4f6c_dd1d);
        (0..n)
            .map(|i| {
                let noise = rng.range(-0.5, 0.5);
                let t = i as f64 / 16_000.0;
                let f0 = 140.0 + 20.0 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
                let voiced = (n / 4..3 * n / 4).contains(&i) as u8 as f64;
                let tone: f64 = (1..=10)
                    .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                    .sum();
                0.3 * voiced * tone + 0.01 * noise
            })
            .collect()
    }

    #[test]
    fn the_avx2_build_gives_the_baseline_builds_values() {
        let x = speech_like(24_000);
        let mut e = Egemaps::new();
        for all_formants in [false, true] {
            let dispatched = functionals_of(&e.frames(&x, all_formants));
            let baseline = functionals_of(&e.frames_body(&x, all_formants));
            assert!(dispatched[0] > 10.0, "voiced: F0 mean {} semitones", dispatched[0]);
            for (c, (a, b)) in dispatched.iter().zip(&baseline).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{}: {a} vs {b}", EGEMAPS_NAMES[c]);
            }
        }
    }
}
