//! Voice quality of eGeMAPS v02: jitter and shimmer from pitch periods in the waveform
//! (`cPitchJitter`), and from the 60 ms spectrum the ACF harmonics-to-noise ratio, the
//! harmonic differences H1-H2 and H1-A3 and the formant amplitudes (`cHarmonics`).
//!
//! openSMILE's conventions are kept where they change values: "H1" and "H2" are the
//! harmonics at 2 F0 and 3 F0 relative to the F0 peak, a voiced frame with no accepted period
//! repeats the previous frame's jitter and shimmer, and unvoiced frames give -201 dB formant
//! amplitudes.

use super::dot;
use super::pitch::{N_BINS, bin_hz, quad3};
use realfft::{ComplexToReal, RealFftPlanner};
use rustfft::num_complex::Complex;
use std::sync::Arc;

/// Samples a period search may read per 60 ms frame at 16 kHz.
const FRAME_LEN: usize = 960;
/// Hop at 16 kHz.
const HOP: usize = 160;
/// Seconds per sample at 16 kHz.
const SAMPLE_S: f64 = 1.0 / 16_000.0;

/// Running sums of a frame's samples and squares, for Pearson correlations of neighbouring
/// stretches in O(L) (the cross term) instead of three passes.
#[derive(Default)]
struct PrefixSums {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl PrefixSums {
    #[inline(always)]
    fn fill(&mut self, m: &[f64]) {
        self.sum.clear();
        self.sum_sq.clear();
        let (mut s, mut q) = (0.0, 0.0);
        self.sum.push(0.0);
        self.sum_sq.push(0.0);
        for v in m {
            s += v;
            q += v * v;
            self.sum.push(s);
            self.sum_sq.push(q);
        }
    }

    /// Pearson correlation of `m[a..a+l]` and `m[a+l..a+2l]`; NaN when either is constant, as
    /// openSMILE's 0 / 0.
    #[inline(always)]
    fn pearson(&self, m: &[f64], a: usize, l: usize) -> f64 {
        let n = l as f64;
        let (sx, sy) = (self.sum[a + l] - self.sum[a], self.sum[a + 2 * l] - self.sum[a + l]);
        let (qx, qy) = (
            self.sum_sq[a + l] - self.sum_sq[a],
            self.sum_sq[a + 2 * l] - self.sum_sq[a + l],
        );
        let sxy = dot(&m[a..a + l], &m[a + l..a + 2 * l]);
        let vx = qx - sx * sx / n;
        let vy = qy - sy * sy / n;
        if vx <= 1e-12 * qx || vy <= 1e-12 * qy {
            return f64::NAN;
        }
        (sxy - sx * sy / n) / (vx.sqrt() * vy.sqrt())
    }
}

/// Peak-to-peak amplitude of a period, its first and last samples left out.
#[inline(always)]
fn peak_to_peak(x: &[f64]) -> f64 {
    let inner = &x[1..x.len().saturating_sub(1).max(1)];
    let (lo, hi) = inner
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    if inner.is_empty() { 0.0 } else { hi - lo }
}

/// Period-by-period jitter and shimmer over consecutive 60 ms frames (state carries over).
#[derive(Default)]
pub struct JitterTracker {
    last_idx: usize,
    last_mis: usize,
    last_t0: f64,
    last_jitter: f64,
    last_shimmer: f64,
    cc: Vec<f64>,
    sums: PrefixSums,
}

impl JitterTracker {
    /// A tracker at the start of a signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// `(jitterLocal, shimmerLocaldB)` of frame `k`, whose smoothed F0 is `f0_hz` (0 when
    /// unvoiced); frames must come in order.
    ///
    /// # Shapes
    /// `signal`: `[S]` samples at 16 kHz, the whole utterance.
    #[inline(always)]
    pub fn frame(&mut self, k: usize, f0_hz: f64, signal: &[f64]) -> (f64, f64) {
        let start_v = k * HOP;
        let to_read0 = HOP + self.last_mis;
        let mut to_read = to_read0;
        let (mut t0f, mut t0min, mut t0max) = (0usize, 0usize, 0usize);
        if f0_hz > 0.0 {
            let tf = (1.0 / f0_hz) / SAMPLE_S;
            t0f = (tf + 0.5).floor() as usize;
            t0min = (0.9 * tf).floor() as usize;
            t0max = (1.1 * tf).ceil() as usize;
            to_read = to_read.max(2 * t0max + 2);
        }
        to_read = to_read.min(self.last_mis + FRAME_LEN);
        if start_v.checked_sub(self.last_mis) != Some(self.last_idx) {
            self.last_idx = start_v;
            to_read = to_read.min(FRAME_LEN);
        }
        let end = (self.last_idx + to_read).min(signal.len());
        let m = &signal[self.last_idx.min(end)..end];
        let n_t = m.len();
        let (mut n_periods, mut n_local) = (0usize, 0usize);
        let (mut avg_period, mut jl, mut avg_amp, mut avg_amp_diff) = (0.0, 0.0, 0.0, 0.0);
        let mut last_period = 0usize;
        if f0_hz > 0.0 && t0min >= 1 {
            let width = t0max - t0min + 1;
            self.cc.resize(width, 0.0);
            self.sums.fill(m);
            let mut start = 0usize;
            while start + 2 * t0max + 1 < n_t {
                for lag in t0min..=t0max {
                    self.cc[lag - t0min] = self.sums.pearson(m, start, lag);
                }
                let cc = &self.cc;
                let mut max_i: Option<usize> = None;
                for i in 1..width.saturating_sub(2) {
                    if cc[i - 1] < cc[i] && cc[i] > cc[i + 1] && max_i.is_none_or(|m| cc[i] > cc[m]) {
                        max_i = Some(i);
                    }
                }
                match max_i {
                    None => start += t0f.max(1),
                    Some(mi) => {
                        let pp = t0min + mi;
                        let os = start;
                        start += pp;
                        let a0 = peak_to_peak(&m[os..os + pp]);
                        let a1 = peak_to_peak(&m[start..(start + pp).min(n_t)]);
                        let (xv, cci) = quad3(
                            mi as f64 - 1.0,
                            cc[mi - 1],
                            mi as f64,
                            cc[mi],
                            mi as f64 + 1.0,
                            cc[mi + 1],
                        );
                        let period = (t0min as f64 + xv).abs() * SAMPLE_S;
                        if cci > 0.5 {
                            avg_period += period;
                            n_periods += 1;
                            if self.last_t0 > 0.0 {
                                jl += (self.last_t0 - period).abs();
                                n_local += 1;
                            }
                            self.last_t0 = period;
                            avg_amp += (a0 + a1) / 2.0;
                            avg_amp_diff += (a0 - a1).abs();
                        }
                    }
                }
                if start + 1 < to_read0 {
                    last_period = start;
                }
            }
            self.last_mis = to_read0 - last_period;
        } else {
            last_period = to_read0;
            self.last_mis = 0;
            self.last_t0 = 0.0;
            self.last_jitter = 0.0;
            self.last_shimmer = 0.0;
        }
        self.last_idx += last_period;
        if f0_hz <= 0.0 {
            return (0.0, 0.0);
        }
        if n_periods > 0 && n_local > 0 {
            self.last_jitter = ((jl / n_local as f64) / (avg_period / n_periods as f64)).min(1.0);
        }
        let jitter = if n_periods > 0 && n_local == 0 {
            0.0
        } else {
            self.last_jitter
        };
        if n_periods > 0 {
            self.last_shimmer = if avg_amp > 0.0 { avg_amp_diff / avg_amp } else { 0.0 };
        }
        self.last_shimmer = self.last_shimmer.min(1.0);
        (jitter, 20.0 * (self.last_shimmer + 1.0).log10())
    }
}

/// What `cHarmonics` gives eGeMAPS for one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HarmonicFrame {
    /// Harmonics-to-noise ratio from the autocorrelation, dB (0 when unvoiced).
    pub hnr_db: f64,
    /// Level of the 2 F0 harmonic minus the 3 F0 harmonic, dB (0 when unvoiced).
    pub h1_h2_db: f64,
    /// Level of the 2 F0 harmonic minus the harmonic nearest F3's peak, dB (0 when unvoiced).
    pub h1_a3_db: f64,
    /// Level of the strongest harmonic near F1, F2, F3 relative to the F0 peak, dB (-201 when
    /// unvoiced, 0 when no harmonic is near the formant).
    pub formant_amp_db: [f64; 3],
}

/// Harmonic analysis of the 60 ms magnitude spectrum, built once.
pub struct HarmonicAnalyzer {
    ifft: Arc<dyn ComplexToReal<f64>>,
    /// `[N_BINS]`: the power spectrum (the inverse FFT overwrites it).
    power: Vec<Complex<f64>>,
    /// `[2 (N_BINS - 1)]`: the circular autocorrelation, unscaled.
    acf_full: Vec<f64>,
    scratch: Vec<Complex<f64>>,
    acf: Vec<f64>,
    frq: Vec<f64>,
}

const N_HARM: usize = 100;

#[derive(Clone, Copy, Default)]
struct Harmonic {
    bin: usize,
    freq: f64,
    mag: f64,
    mag_interp: f64,
    log_rel: f64,
}

#[inline(always)]
fn is_peak(x: &[f64], n: isize) -> bool {
    let len = x.len() as isize;
    if n < 0 || n >= len {
        return false;
    }
    let i = n as usize;
    if n + 1 < len {
        if n > 0 {
            x[i] > x[i - 1] && x[i] > x[i + 1]
        } else {
            x[0] > x[1]
        }
    } else {
        n > 0 && x[i] > x[i - 1]
    }
}

/// The nearest peak of `x` to `idx`, left first, as openSMILE's `getClosestPeak`.
#[inline(always)]
fn closest_peak(x: &[f64], idx: usize) -> usize {
    let n = x.len();
    let i = idx as isize;
    if is_peak(x, i) {
        return idx;
    }
    let mut o = 1isize;
    while i - o > 0 || i + o < n as isize - 1 {
        if i - o > 0 && is_peak(x, i - o) {
            return (i - o) as usize;
        }
        if i + o < n as isize - 1 && is_peak(x, i + o) {
            return (i + o) as usize;
        }
        o += 1;
    }
    let (first, last, here) = (x[0], x[n - 1], x[idx.min(n - 1)]);
    if first > here && last <= here {
        0
    } else if first <= here && last > here {
        n - 1
    } else if first > here && last > here {
        if idx < n / 2 { 0 } else { n - 1 }
    } else {
        idx
    }
}

impl Default for HarmonicAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl HarmonicAnalyzer {
    /// Plans the inverse FFT of the autocorrelation.
    pub fn new() -> Self {
        let n = 2 * (N_BINS - 1);
        let ifft = RealFftPlanner::new().plan_fft_inverse(n);
        let scratch = ifft.make_scratch_vec();
        HarmonicAnalyzer {
            ifft,
            power: vec![Complex::default(); N_BINS],
            acf_full: vec![0.0; n],
            scratch,
            acf: vec![0.0; N_BINS],
            frq: (0..N_BINS).map(bin_hz).collect(),
        }
    }

    /// First bin at or after `start` above `f`, or the one before it when nearer; 0 when none.
    #[inline(always)]
    fn freq_to_bin(&self, f: f64, start: usize) -> usize {
        let n = self.frq.len();
        // First bin above f: the axis is linear, so jump there, then settle on exact comparisons.
        let mut b = ((f / self.frq[1]).floor().max(0.0) as usize + 1).min(n);
        while b > 0 && self.frq[b - 1] > f {
            b -= 1;
        }
        while b < n && self.frq[b] <= f {
            b += 1;
        }
        let b = b.max(start.max(1));
        if b >= n {
            return 0;
        }
        if self.frq[b] - f > f - self.frq[b - 1] {
            b - 1
        } else {
            b
        }
    }

    /// Harmonic descriptors of one frame.
    ///
    /// # Shapes
    /// `mag`: `[N_BINS]` magnitudes of the 60 ms frame; `formants_hz`: F1-F3 of the frame.
    #[inline(always)]
    pub fn analyse(&mut self, f0_hz: f64, mag: &[f64], formants_hz: [f64; 3]) -> HarmonicFrame {
        let n = N_BINS;
        let hnr_db = self.hnr(f0_hz, mag);
        if f0_hz <= 0.0 {
            return HarmonicFrame {
                hnr_db,
                h1_h2_db: 0.0,
                h1_a3_db: 0.0,
                formant_amp_db: [-201.0; 3],
            };
        }
        let f0 = f0_hz as f32;
        let mut h = [Harmonic::default(); N_HARM];
        let mut last_bin = self.freq_to_bin((0.5f32 * f0) as f64, 1);
        let first_bin = self.freq_to_bin((0.5f32 * f0) as f64, last_bin);
        // Past H3, a harmonic only matters if it can fall within 1.2 times a formant (see
        // `near` below). Harmonic i's peak lies at or above bin `(i + 0.5) f0` less two bins,
        // so the search stops once that is beyond the highest formant's window: the values
        // read are those of searching all 100.
        let window_top_hz = 1.2 * formants_hz.iter().fold(0.0f64, |m, f| m.max(*f)) + 1.0;
        let mut n_harm = N_HARM;
        for (i, hi) in h.iter_mut().enumerate() {
            if i > 2 && (i as f64 + 0.5) * f0_hz - 3.0 * self.frq[1] > window_top_hz {
                n_harm = i;
                break;
            }
            let cand = self.freq_to_bin(((i + 1) as f32 * f0) as f64, last_bin);
            let mut peak: isize = -1;
            if is_peak(mag, cand as isize) {
                peak = cand as isize;
            } else {
                let (mut l, mut r) = (cand as isize - 1, cand as isize + 1);
                let lo = self.freq_to_bin(((i as f32 + 0.5) * f0) as f64, last_bin) as isize;
                let hi_b = self.freq_to_bin(((i as f32 + 1.5) * f0) as f64, cand) as isize;
                while (l >= lo || r <= hi_b) && peak == -1 {
                    if r <= hi_b {
                        if is_peak(mag, r) {
                            peak = r;
                            break;
                        }
                        r += 1;
                    }
                    if l >= lo {
                        if is_peak(mag, l) {
                            peak = l;
                            break;
                        }
                        l -= 1;
                    }
                }
            }
            if peak >= first_bin as isize && peak < n as isize - 1 && peak >= 1 {
                let p = peak as usize;
                let (fi, mi) = quad3(
                    self.frq[p - 1],
                    mag[p - 1],
                    self.frq[p],
                    mag[p],
                    self.frq[p + 1],
                    mag[p + 1],
                );
                *hi = Harmonic {
                    bin: p,
                    freq: fi as f32 as f64,
                    mag: mag[p],
                    mag_interp: mi as f32 as f64,
                    log_rel: 0.0,
                };
            } else {
                *hi = Harmonic {
                    bin: cand,
                    ..Harmonic::default()
                };
            }
            last_bin = cand;
        }
        let m0 = h[0].mag;
        let lm0 = if m0 != 0.0 { m0.log10() } else { 0.0 };
        for i in 1..n_harm {
            h[i].log_rel = if m0 == 0.0 {
                -201.0
            } else if h[i].mag_interp > 0.0 {
                (20.0 * (h[i].mag_interp.log10() - lm0)).max(-200.0)
            } else {
                -200.0
            };
            if h[i].bin == h[i - 1].bin {
                h[i] = Harmonic {
                    log_rel: -201.0,
                    ..Harmonic::default()
                };
            }
        }
        let near = |fc: f64| -> Option<usize> {
            let (lo, hi) = ((0.8f32 * fc as f32) as f64, (1.2f32 * fc as f32) as f64);
            let mut best: Option<usize> = None;
            let mut best_mag = 0.0;
            for (k, hk) in h.iter().enumerate() {
                if hk.freq >= lo && hk.freq <= hi && hk.mag > best_mag {
                    best = Some(k);
                    best_mag = hk.mag;
                }
            }
            best
        };
        let clamp = |v: f64| v.clamp(-201.0, 201.0);
        let h1_h2_db = clamp(h[1].log_rel - h[2].log_rel);
        let h1_a3_db = match near(formants_hz[2]) {
            Some(a3) => clamp(h[1].log_rel - h[a3].log_rel),
            None => clamp(h[1].log_rel - 201.0),
        };
        let mut formant_amp_db = [0.0; 3];
        for (k, amp) in formant_amp_db.iter_mut().enumerate() {
            *amp = near(formants_hz[k]).map_or(0.0, |i| h[i].log_rel);
        }
        HarmonicFrame {
            hnr_db,
            h1_h2_db,
            h1_a3_db,
            formant_amp_db,
        }
    }

    /// HNR from the circular autocorrelation (inverse FFT of the power spectrum) at the lag of
    /// the peak nearest one period, clamped to [-90, 110] dB.
    #[inline(always)]
    fn hnr(&mut self, f0_hz: f64, mag: &[f64]) -> f64 {
        let lag = if f0_hz > 0.0 {
            (self.frq[N_BINS - 1] * 2.0 / f0_hz).floor() as usize
        } else {
            0
        };
        if lag == 0 {
            return 0.0;
        }
        // The power spectrum is real and even: its inverse transform is the real ACF.
        for (p, m) in self.power.iter_mut().zip(mag) {
            *p = Complex::new(m * m, 0.0);
        }
        self.ifft
            .process_with_scratch(&mut self.power, &mut self.acf_full, &mut self.scratch)
            .expect("buffers sized by the plan");
        for (a, c) in self.acf.iter_mut().zip(&self.acf_full) {
            *a = (c / 2.0).abs() / N_BINS as f64;
        }
        let b = closest_peak(&self.acf, lag.min(N_BINS - 1));
        if b == 0 {
            return 0.0;
        }
        let r = self.acf[0] - self.acf[b];
        let ratio = if r == 0.0 { 1e11 } else { self.acf[b] / r };
        if ratio > 1e11 {
            110.0
        } else if ratio < 1e-9 {
            -90.0
        } else {
            10.0 * ratio.log10()
        }
    }
}
