//! F0 of eGeMAPS v02: 60 ms Gaussian frames, openSMILE's octave-scaled spectrum
//! (`cSpecScale`), subharmonic summation (`cPitchShs`), Viterbi smoothing
//! (`cPitchSmootherViterbi`) and the energy gate, giving F0 in Hz and in semitones from 27.5 Hz.
//!
//! openSMILE's quirks that decide which frames are voiced are kept on purpose (each is named
//! where it happens): matching its voicing decisions is what makes the F0, jitter, shimmer,
//! HNR and voiced/unvoiced features agree.

use super::dot;
use realfft::{RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;
use std::sync::Arc;

/// Samples per 60 ms frame at 16 kHz.
pub const FRAME_LEN: usize = 960;
/// FFT length of the 60 ms frames (zero-padded symmetrically).
pub const FFT_LEN: usize = 1024;
/// Magnitude bins of the 60 ms frames; bin k is at `k / 0.064` Hz.
pub const N_BINS: usize = FFT_LEN / 2 + 1;
/// F0 candidates per frame.
const N_CAND: usize = 6;
/// Harmonics summed by SHS.
const N_HARMONICS: usize = 15;
/// Voicing probability a candidate needs to count as voiced.
const VOICING_CUTOFF: f32 = 0.7;
/// RMS energy of the windowed frame below which F0 is zeroed.
const ENERGY_GATE: f32 = 0.001;

/// Frequency of magnitude bin `k` of a 60 ms frame, Hz (openSMILE's axis, `k / 0.064`).
pub fn bin_hz(k: usize) -> f64 {
    k as f64 / (0.06 * FFT_LEN as f64 / FRAME_LEN as f64)
}

/// What the pitch tracker keeps of one 60 ms frame.
pub struct PitchFrame {
    /// RMS of the windowed frame.
    pub rms: f32,
    candidates: [(f32, f32); N_CAND],
}

/// The spectral front end and SHS of the pitch tracker, built once.
pub struct PitchAnalyzer {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// `[FFT_LEN]`: the windowed, zero-padded frame (the FFT overwrites it).
    frame_buf: Vec<f64>,
    /// `[N_BINS]`: the frame's spectrum.
    spec: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    scale: OctaveScale,
    shifts: Vec<usize>,
    f_min_t: f32,
    f_step_t: f32,
    work: Vec<f64>,
    ss: Vec<f32>,
    /// Bins of the SHS spectrum's local maxima, `[N_BINS]` of room.
    maxima: Vec<u16>,
    octave: Vec<f32>,
}

/// Log-frequency resampling of a 513-bin magnitude spectrum: `cSpecScale` with `scale =
/// octave`, spline interpolation, SHS smoothing and enhancement, auditory weighting.
struct OctaveScale {
    /// For each target point: lower source index and the spline weights `(a, c, d)`.
    taps: Vec<(usize, f64, f64, f64)>,
    weights: Vec<f64>,
    ppo: f64,
    f_min_t: f64,
    f_max_t: f64,
    y2: Vec<f64>,
    u: Vec<f64>,
    /// Per source point, the grid-only parts of the spline's tridiagonal solve: `-sig / p`,
    /// the back-substitution coefficient `(sig - 1) / p`, `1 / (x[i+1] - x[i])` and
    /// `6 / ((x[i+1] - x[i-1]) p)`, so that each step of the two serial recurrences is one
    /// multiply and one add.
    neg_sig_over_p: Vec<f64>,
    fwd: Vec<f64>,
    inv_h: Vec<f64>,
    six_over_span_p: Vec<f64>,
    peaks: Vec<usize>,
}

impl OctaveScale {
    fn new() -> Self {
        let n = N_BINS;
        // openSMILE stores the frame length through a float: keep the cast, it moves the grid.
        let fs_sec = (0.06f64 * FFT_LEN as f64 / FRAME_LEN as f64) as f32 as f64;
        let df = 1.0 / fs_sec;
        let max_f = df * (n - 1) as f64;
        let min_f = 25.0f64;
        let f_min_t = min_f.ln() / 2f64.ln();
        let f_max_t = max_f.ln() / 2f64.ln();
        let step = (f_max_t - f_min_t) / (n - 1) as f64;
        let mut src_t = vec![0.0; n];
        for (i, v) in src_t.iter_mut().enumerate().skip(1) {
            *v = (i as f64 * df).ln() / 2f64.ln();
        }
        src_t[0] = 2.0 * src_t[1] - src_t[2];
        let n_oct = (max_f / min_f).ln() / 2f64.ln();
        let ppo = n as f64 / n_oct;
        let s = ppo * (65.0f64 / 50.0).ln() / 2f64.ln() - 1.0;
        let weights = (0..n)
            .map(|i| 0.5 + (3.0 * (i as f64 + 1.0 - s) / ppo).atan() / std::f64::consts::PI)
            .collect();
        let taps = (0..n)
            .map(|j| {
                let x = f_min_t + j as f64 * step;
                let k = src_t.partition_point(|v| *v < x).clamp(1, n - 1);
                let h = src_t[k] - src_t[k - 1];
                let a = (src_t[k] - x) / h;
                let b = 1.0 - a;
                let r2 = h * h / 6.0;
                (k - 1, a, (a * a * a - a) * r2, (b * b * b - b) * r2)
            })
            .collect();
        let (mut neg_sig_over_p, mut fwd) = (vec![0.0; n], vec![0.0; n]);
        let mut inv_h = vec![0.0; n];
        let mut six_over_span_p = vec![0.0; n];
        for i in 0..n - 1 {
            inv_h[i] = 1.0 / (src_t[i + 1] - src_t[i]);
        }
        for i in 1..n - 1 {
            let sig = (src_t[i] - src_t[i - 1]) / (src_t[i + 1] - src_t[i - 1]);
            let p = sig * fwd[i - 1] + 2.0;
            neg_sig_over_p[i] = -(sig / p);
            fwd[i] = (sig - 1.0) / p;
            six_over_span_p[i] = 6.0 / ((src_t[i + 1] - src_t[i - 1]) * p);
        }
        OctaveScale {
            neg_sig_over_p,
            fwd,
            inv_h,
            six_over_span_p,
            peaks: vec![0; n],
            taps,
            weights,
            ppo,
            f_min_t,
            f_max_t,
            y2: vec![0.0; n],
            u: vec![0.0; n],
        }
    }

    /// `y`: `[N_BINS]` magnitudes, changed in place by enhancement and smoothing; `out`:
    /// `[N_BINS]` octave-scaled spectrum.
    #[inline(always)]
    fn apply(&mut self, y: &mut [f64], out: &mut [f32]) {
        let n = y.len();
        // Enhancement: keep +-2 bins around each peak. With exactly one peak openSMILE reads
        // an unset second peak position (0) and zeroes everything from bin 3 (kept).
        // Peaks collected without a branch per bin (a noisy spectrum mispredicts them).
        let peaks = &mut self.peaks;
        peaks[0] = 0;
        let mut n_peaks = usize::from(y[0] > y[1]);
        for i in 1..n - 1 {
            peaks[n_peaks] = i;
            n_peaks += usize::from((y[i] > y[i - 1]) & (y[i] >= y[i + 1]));
        }
        peaks[n_peaks] = n - 1;
        n_peaks += usize::from(y[n - 1] > y[n - 2]);
        let peaks = &peaks[..n_peaks];
        if peaks.len() == 1 {
            y[3..].fill(0.0);
        } else {
            for w in peaks.windows(2) {
                let (lo, hi) = (w[0] + 3, w[1].saturating_sub(3));
                if w[1] >= 3 && hi >= lo {
                    y[lo..=hi].fill(0.0);
                }
            }
        }
        // Smoothing [1 2 1]/4 with the original left neighbour; the last bin is left as is.
        let mut prev = 0.0;
        for i in 0..n - 1 {
            let c = y[i];
            y[i] = (prev + 2.0 * c + y[i + 1]) / 4.0;
            prev = c;
        }
        // Natural cubic spline (Numerical Recipes) through (src_t, y); the grid-only factors
        // of the tridiagonal solve are precomputed, and the data terms are formed before the
        // serial recurrence so that each of its steps is one multiply and one subtraction.
        self.u[0] = 0.0;
        for i in 1..n - 1 {
            let d = (y[i + 1] - y[i]) * self.inv_h[i] - (y[i] - y[i - 1]) * self.inv_h[i - 1];
            self.u[i] = d * self.six_over_span_p[i];
        }
        // Forward: u[i] -= (sig / p)[i] * u[i-1]; backward: y2[i] = fwd[i] * y2[i+1] + u[i].
        first_order_recurrence::<false>(&mut self.u[1..n - 1], &self.neg_sig_over_p[1..n - 1]);
        self.y2[..n - 1].copy_from_slice(&self.u[..n - 1]);
        self.y2[n - 1] = 0.0;
        first_order_recurrence::<true>(&mut self.y2[..n - 1], &self.fwd[..n - 1]);
        for (j, &(k, a, c, d)) in self.taps.iter().enumerate() {
            let v = (a * y[k] + (1.0 - a) * y[k + 1] + c * self.y2[k] + d * self.y2[k + 1]) as f32;
            out[j] = if v > 0.0 {
                (v as f64 * self.weights[j]) as f32
            } else {
                0.0
            };
        }
    }
}

/// Steps a chain of [`first_order_recurrence`] runs before its first written index, from 0.
const RECURRENCE_WARM_UP: usize = 48;

/// `v[j] = v[j] + c[j] * v[j-1]` in order of `j` (reverse order when `REV`, with `v[j+1]`),
/// starting from 0, as four interleaved chains instead of one: a serial chain waits on a
/// multiply and an add per step, four run in the time of one. Each chain after the first starts
/// `RECURRENCE_WARM_UP` steps before its stretch from 0 instead of the true value. The spline's
/// factors are at most 0.35 in magnitude and any 48 consecutive ones multiply to at most 2e-27,
/// so that start's error is far below one rounding step of the values it meets (the unit tests
/// check both, and compare with the serial recurrence). Short inputs take the serial loop.
///
/// # Shapes
/// `v`, `c`: `[M]`; `v` holds the added terms and receives the result.
#[inline(always)]
fn first_order_recurrence<const REV: bool>(v: &mut [f64], c: &[f64]) {
    let m = v.len();
    assert_eq!(c.len(), m, "one factor per term");
    let at = |j: usize| if REV { m - 1 - j } else { j };
    let w = RECURRENCE_WARM_UP;
    if m < 8 * w {
        let mut prev = 0.0;
        for j in 0..m {
            let i = at(j);
            prev = v[i] + c[i] * prev;
            v[i] = prev;
        }
        return;
    }
    // Chain 0 writes [0, w + len); chain k >= 1 writes [w + k len, w + (k+1) len) after
    // warming up over the `w` steps before it; the last chain also takes the remainder.
    let len = (m - w) / 4;
    let start = [0, w + len, w + 2 * len, w + 3 * len];
    let mut acc = [0.0f64; 4];
    // Phase 1: chain 0's first w steps (written), the others' warm-up (not written).
    for t in 0..w {
        let i = at(t);
        acc[0] = v[i] + c[i] * acc[0];
        v[i] = acc[0];
        for k in 1..4 {
            let i = at(start[k] - w + t);
            acc[k] = v[i] + c[i] * acc[k];
        }
    }
    // Phase 2: all four chains written.
    for t in 0..len {
        for k in 0..4 {
            let i = at(start[k] + if k == 0 { w } else { 0 } + t);
            acc[k] = v[i] + c[i] * acc[k];
            v[i] = acc[k];
        }
    }
    let mut prev = acc[3];
    for j in w + 4 * len..m {
        let i = at(j);
        prev = v[i] + c[i] * prev;
        v[i] = prev;
    }
}

impl Default for PitchAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl PitchAnalyzer {
    /// Builds the FFT plan, the Gaussian window (sigma 0.4) and the octave grid.
    pub fn new() -> Self {
        let fft = RealFftPlanner::new().plan_fft_forward(FFT_LEN);
        let scratch = fft.make_scratch_vec();
        let n = FRAME_LEN as f64;
        let window = (0..FRAME_LEN)
            .map(|i| {
                let t = (i as f64 - (n - 1.0) / 2.0) / (0.4 * (n - 1.0) / 2.0);
                (-0.5 * t * t).exp()
            })
            .collect();
        let scale = OctaveScale::new();
        let ppo = scale.ppo as f32;
        let shifts = (2..=N_HARMONICS)
            .map(|h| (ppo as f64 * (h as f64).ln() / 2f64.ln()).floor() as usize)
            .collect();
        let f_min_t = scale.f_min_t as f32;
        let f_step_t = (scale.f_max_t as f32 - scale.f_min_t as f32) / (N_BINS - 1) as f32;
        PitchAnalyzer {
            fft,
            window,
            frame_buf: vec![0.0; FFT_LEN],
            spec: vec![Complex::default(); N_BINS],
            scratch,
            scale,
            shifts,
            f_min_t,
            f_step_t,
            work: vec![0.0; N_BINS],
            ss: vec![0.0; N_BINS],
            maxima: vec![0; N_BINS],
            octave: vec![0.0; N_BINS],
        }
    }

    /// Energy and F0 candidates of one 60 ms frame; its magnitude spectrum (which the
    /// voice-quality descriptors read) goes to `magnitudes`, a caller-owned buffer so that a
    /// whole utterance's spectra live in one reused allocation.
    ///
    /// # Shapes
    /// `frame`: `[FRAME_LEN]` samples at 16 kHz; `magnitudes`: `[N_BINS]`, written.
    #[inline(always)]
    pub fn analyse(&mut self, frame: &[f64], magnitudes: &mut [f64]) -> PitchFrame {
        assert_eq!(frame.len(), FRAME_LEN, "a 60 ms frame at 16 kHz");
        let pad = (FFT_LEN - FRAME_LEN) / 2;
        // The FFT uses its input as scratch: re-zero the padding (the middle is overwritten).
        self.frame_buf[..pad].fill(0.0);
        self.frame_buf[pad + FRAME_LEN..].fill(0.0);
        let windowed = &mut self.frame_buf[pad..pad + FRAME_LEN];
        for ((b, x), w) in windowed.iter_mut().zip(frame).zip(&self.window) {
            *b = x * w;
        }
        let energy = dot(windowed, windowed);
        self.fft
            .process_with_scratch(&mut self.frame_buf, &mut self.spec, &mut self.scratch)
            .expect("buffers sized by the plan");
        assert_eq!(magnitudes.len(), N_BINS, "one 60 ms frame's magnitudes");
        for (m, c) in magnitudes.iter_mut().zip(&self.spec) {
            *m = c.norm_sqr().sqrt();
        }
        self.work.copy_from_slice(magnitudes);
        self.scale.apply(&mut self.work, &mut self.octave);
        let candidates = self.shs();
        PitchFrame {
            rms: (energy / FRAME_LEN as f64).sqrt() as f32,
            candidates,
        }
    }

    /// Subharmonic summation on the octave spectrum: up to 6 `(F0 Hz, voicing)` candidates,
    /// the best-scoring first, as `cPitchShs` and `cPitchBase` leave them.
    #[inline(always)]
    fn shs(&mut self) -> [(f32, f32); N_CAND] {
        let n = N_BINS;
        let inp = &self.octave;
        let ss = &mut self.ss;
        ss.copy_from_slice(inp);
        let mut scale = 0.85f32;
        for &s in &self.shifts {
            for j in s..n {
                ss[j - s] += inp[j] * scale;
            }
            scale *= 0.85;
        }
        for v in ss.iter_mut() {
            *v /= N_HARMONICS as f32;
            if *v < 0.0 {
                *v = 0.0;
            }
        }
        // Local maxima first, without a branch per bin; then the best six of them.
        let maxima = &mut self.maxima;
        let mut n_maxima = 0usize;
        for i in 1..n - 1 {
            maxima[n_maxima] = i as u16;
            n_maxima += usize::from((ss[i - 1] < ss[i]) & (ss[i] > ss[i + 1]));
        }
        let mut idx = [0usize; N_CAND];
        let mut score = [0f32; N_CAND];
        let mut n_cand = 0usize;
        for &i in &maxima[..n_maxima] {
            let i = i as usize;
            for j in 0..N_CAND {
                if score[j] == 0.0 || score[j] < ss[i] {
                    for jj in (j + 1..N_CAND).rev() {
                        score[jj] = score[jj - 1];
                        idx[jj] = idx[jj - 1];
                    }
                    idx[j] = i;
                    score[j] = ss[i];
                    n_cand = (n_cand + 1).min(N_CAND);
                    break;
                }
            }
        }
        // The mean in four interleaved lanes (a single running sum waits on every add).
        let mut lanes = [0.0f64; 4];
        let chunks = ss.chunks_exact(4);
        let tail: f64 = chunks.remainder().iter().map(|v| *v as f64).sum();
        for c in chunks {
            for l in 0..4 {
                lanes[l] += c[l] as f64;
            }
        }
        let mean = ((lanes[0] + lanes[2]) + (lanes[1] + lanes[3]) + tail) / n as f64;
        let mut f0 = [0f64; N_CAND];
        let mut voicing = [0f32; N_CAND];
        for i in 0..n_cand {
            let j = idx[i];
            let fc = j as f32;
            let x0 = (fc - 1.0) * self.f_step_t + self.f_min_t;
            let x1 = fc * self.f_step_t + self.f_min_t;
            let x2 = (fc + 1.0) * self.f_step_t + self.f_min_t;
            let (xv, yv) = quad3(
                x0 as f64,
                ss[j - 1] as f64,
                x1 as f64,
                ss[j] as f64,
                x2 as f64,
                ss[j + 1] as f64,
            );
            f0[i] = (xv * 2f64.ln()).exp() as f32 as f64;
            score[i] = yv as f32;
            voicing[i] = if yv > 0.0 && yv > mean {
                (1.0 - mean / yv) as f32
            } else {
                0.0
            };
        }
        // cPitchBase: drop candidates outside 55-1000 Hz, then move the best score to the front.
        let mut i = 0isize;
        while (i as usize) < N_CAND && n_cand > 0 {
            let k = i as usize;
            if f0[k] > 1000.0 || f0[k] < 55.0 {
                let orig = f0[k];
                for j in k + 1..N_CAND {
                    f0[j - 1] = f0[j];
                    voicing[j - 1] = voicing[j];
                    score[j - 1] = score[j];
                }
                f0[N_CAND - 1] = 0.0;
                voicing[N_CAND - 1] = 0.0;
                score[N_CAND - 1] = 0.0;
                if orig > 0.0 {
                    n_cand -= 1;
                    i -= 1;
                }
            }
            i += 1;
        }
        let mut best = 0;
        for k in 1..N_CAND {
            if score[k] > score[best] {
                best = k;
            }
        }
        f0.swap(0, best);
        voicing.swap(0, best);
        let mut out = [(0f32, 0f32); N_CAND];
        for k in 0..N_CAND {
            out[k] = (f0[k] as f32, voicing[k]);
        }
        out
    }
}

/// The vertex of the parabola through three points, or the highest point when they are
/// collinear (openSMILE's `smileMath_quadFrom3pts`).
#[inline(always)]
pub fn quad3(x1: f64, y1: f64, x2: f64, y2: f64, x3: f64, y3: f64) -> (f64, f64) {
    let den = x1 * x1 * x2 + x2 * x2 * x3 + x3 * x3 * x1 - x3 * x3 * x2 - x2 * x2 * x1 - x1 * x1 * x3;
    if den != 0.0 {
        let a = (y1 * x2 + y2 * x3 + y3 * x1 - y3 * x2 - y2 * x1 - y1 * x3) / den;
        let b = (x1 * x1 * y2 + x2 * x2 * y3 + x3 * x3 * y1 - x3 * x3 * y2 - x2 * x2 * y1 - x1 * x1 * y3) / den;
        let c = (x1 * x1 * x2 * y3 + x2 * x2 * x3 * y1 + x3 * x3 * x1 * y2
            - x3 * x3 * x2 * y1
            - x2 * x2 * x1 * y3
            - x1 * x1 * x3 * y2)
            / den;
        if a != 0.0 {
            let x = -b / (2.0 * a);
            return (x, c - a * x * x);
        }
    }
    if y1 > y2 && y1 > y3 {
        (x1, y1)
    } else if y2 > y1 && y2 > y3 {
        (x2, y2)
    } else if y3 > y1 && y3 > y2 {
        (x3, y3)
    } else {
        (x1, y1)
    }
}

/// Penalty of an F0 outside the usual speaking range.
fn range_weight(f: f64) -> f64 {
    if f > 0.0 && f < 100.0 {
        1.0 - f / 100.0
    } else if (100.0..350.0).contains(&f) {
        0.0
    } else if (350.0..600.0).contains(&f) {
        (f - 350.0) / 250.0
    } else if f >= 600.0 {
        1.2
    } else {
        2.0
    }
}

/// The Viterbi-smoothed F0 track of an utterance (see [`smooth_f0`]).
#[derive(Clone, Debug, PartialEq)]
pub struct F0Track {
    /// F0 in Hz per frame, 0 where unvoiced. // [T]
    pub f0_hz: Vec<f64>,
    /// How many leading frames openSMILE's online Viterbi (`cPitchSmootherViterbi`) had fixed
    /// when the last frame arrived: those on which the best paths into every state agree. At
    /// most `T - 1` (the last frame is never fixed before the end of input). openSMILE flushes
    /// the rest at end of input, after the F0 functionals have already read the first `fixed`
    /// frames, so this count, not `T`, sets what several functionals see.
    pub fixed: usize,
}

/// Viterbi smoothing over the candidates of all frames, then the energy gate: F0 in Hz per
/// frame, 0 where unvoiced, and the frames fixed before the end of input.
///
/// Weights as eGeMAPS sets them, with openSMILE's effective values: the voiced-voiced delta
/// weight equals the voiced-voiced weight (10, not the configured 5), and an unvoiced to
/// unvoiced step costs 1. The final path is backtracked from the cheapest final state, as
/// openSMILE's end-of-input flush does. (openSMILE also forces a decision on the oldest frame
/// when 40 frames in a row stay unfixed; that is not reproduced: it takes paths that disagree
/// for 0.4 s.)
///
/// # Shapes
/// `frames`: `[T]`, returns `f0_hz` `[T]`.
#[inline(always)]
pub fn smooth_f0(frames: &[PitchFrame]) -> F0Track {
    const UV: usize = N_CAND;
    const N_STATES: usize = N_CAND + 1;
    let (w_local, w_tvv, w_tvvd, w_tvuv, w_thr, w_range) = (2.0, 10.0, 10.0, 10.0, 4.0, 1.0);
    let t_len = frames.len();
    if t_len == 0 {
        return F0Track {
            f0_hz: vec![],
            fixed: 0,
        };
    }
    let local = |i: usize, fr: &[(f32, f32); N_CAND]| -> f64 {
        if i < UV {
            let pv = (fr[i].1 as f64).clamp(0.01, 1.0);
            let thr = if pv < VOICING_CUTOFF as f64 { w_thr } else { 0.0 };
            (-pv.ln() + thr) * w_local + range_weight(fr[i].0 as f64) * w_range
        } else {
            let any = fr.iter().any(|c| c.1 >= VOICING_CUTOFF);
            w_local * if any { w_thr } else { 0.0 }
        }
    };
    // Back-pointers; the order of evaluation matters for `last_change`, as in openSMILE.
    let mut back = vec![[0u8; N_STATES]; t_len];
    let mut cost = [0f64; N_STATES];
    for (i, c) in cost.iter_mut().enumerate() {
        *c = local(i, &frames[0].candidates);
    }
    let mut last_change = 1.0f64;
    for t in 1..t_len {
        let (a, b) = (&frames[t - 1].candidates, &frames[t].candidates);
        let mut next = [0f64; N_STATES];
        for i in 0..N_STATES {
            let mut best = (f64::INFINITY, 0usize);
            for j in 0..N_STATES {
                let trans = if i < UV && j < UV {
                    let (f0, f1) = (a[j].0, b[i].0);
                    if f0 == 0.0 || f1 == 0.0 {
                        999.0
                    } else {
                        let r = ((f1 / f0) as f64).ln();
                        let c = w_tvv * r.abs() + w_tvvd * (r - last_change).abs();
                        last_change = r;
                        c
                    }
                } else if i == UV && j == UV {
                    1.0
                } else {
                    last_change = 0.0;
                    w_tvuv
                };
                let v = trans + cost[j];
                if j == 0 || v < best.0 {
                    best = (v, j);
                }
            }
            next[i] = best.0 + local(i, b);
            back[t][i] = best.1 as u8;
        }
        cost = next;
    }
    let mut state = (0..N_STATES).fold(0, |m, i| if cost[i] < cost[m] { i } else { m });
    let mut f0 = vec![0.0; t_len];
    for t in (0..t_len).rev() {
        let fr = &frames[t];
        if state < UV && fr.rms > ENERGY_GATE {
            f0[t] = fr.candidates[state].0 as f64;
        }
        state = back[t][state] as usize;
    }
    // The frames fixed when the last one arrived: walk the best paths into every final state
    // back until they all pass through one state; that frame and all before it are fixed.
    let mut paths: [usize; N_STATES] = std::array::from_fn(|i| i);
    let mut fixed = 0;
    for t in (1..t_len).rev() {
        for p in paths.iter_mut() {
            *p = back[t][*p] as usize;
        }
        if paths.iter().all(|&p| p == paths[0]) {
            fixed = t;
            break;
        }
    }
    F0Track { f0_hz: f0, fixed }
}

/// F0 in semitones from 27.5 Hz as openSMILE writes `F0finalLog`: 0 when unvoiced, 1 for a
/// (rare) F0 below 29.136 Hz.
pub fn semitones_from_27_5(f0_hz: f64) -> f64 {
    if f0_hz > 29.136 {
        12.0 * (f0_hz / 27.5f32 as f64).ln() / 2f32.ln() as f64
    } else if f0_hz > 0.0 {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f0: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                (1..=8)
                    .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                    .sum::<f64>()
                    * 0.2
            })
            .collect()
    }

    /// The largest factor magnitude and the largest product of `RECURRENCE_WARM_UP`
    /// consecutive factor magnitudes of a chain.
    fn decay(c: &[f64]) -> (f64, f64) {
        let biggest = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = c
            .windows(RECURRENCE_WARM_UP)
            .map(|w| w.iter().map(|v| v.abs()).product::<f64>())
            .fold(0.0f64, f64::max);
        (biggest, worst)
    }

    #[test]
    fn spline_recurrences_forget_their_start_within_the_warm_up() {
        let s = OctaveScale::new();
        let n = N_BINS;
        for c in [&s.neg_sig_over_p[1..n - 1], &s.fwd[..n - 1]] {
            let (biggest, worst) = decay(c);
            eprintln!("largest factor {biggest}, largest warm-up product {worst:e}");
            assert!(biggest < 0.5 && worst < 1e-25, "{biggest} {worst:e}");
        }
    }

    #[test]
    fn split_recurrence_equals_the_serial_one() {
        let s = OctaveScale::new();
        let n = N_BINS;
        let mut rng = crate::rng::SplitMix64::new(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.range(-1.0, 1.0);
        for trial in 0..50 {
            // Terms spanning many magnitudes, as a spectrum's second differences do.
            let v: Vec<f64> = (0..n - 1).map(|_| next() * 10f64.powf(6.0 * next())).collect();
            for (rev, c) in [(false, &s.neg_sig_over_p[..n - 1]), (true, &s.fwd[..n - 1])] {
                let mut want = v.clone();
                let mut prev = 0.0;
                for j in 0..n - 1 {
                    let i = if rev { n - 2 - j } else { j };
                    prev = want[i] + c[i] * prev;
                    want[i] = prev;
                }
                let mut got = v.clone();
                if rev {
                    first_order_recurrence::<true>(&mut got, c);
                } else {
                    first_order_recurrence::<false>(&mut got, c);
                }
                let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-15 * scale, "trial {trial} rev {rev}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn finds_the_f0_of_a_harmonic_tone() {
        let x = tone(180.0, 16_000);
        let mut p = PitchAnalyzer::new();
        let frames: Vec<PitchFrame> = (0..(x.len() - FRAME_LEN) / 160 + 1)
            .map(|k| p.analyse(&x[k * 160..k * 160 + FRAME_LEN], &mut [0.0; N_BINS]))
            .collect();
        let f0 = smooth_f0(&frames).f0_hz;
        let voiced: Vec<f64> = f0.iter().copied().filter(|v| *v > 0.0).collect();
        assert!(voiced.len() > f0.len() * 9 / 10, "{f0:?}");
        for v in voiced {
            assert!((v - 180.0).abs() < 4.0, "{v}");
        }
    }

    /// Frames fixed before the end are final: no later frame changes them. Checked on every
    /// prefix of a gliding, noisy voice that is cut while voiced.
    #[test]
    fn fixed_frames_do_not_change_when_more_arrive() {
        let mut rng = crate::rng::SplitMix64::new(0x51_7cc1_b727_220a);
        let n = 12_000;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                // A pitch glide from 120 to 260 Hz with a voiceless gap, plus noise.
                let phase = 2.0 * std::f64::consts::PI * (120.0 * t + 70.0 * t * t / 0.75);
                let voiced = !(4_000..5_500).contains(&i) as u8 as f64;
                let tone: f64 = (1..=6).map(|h| (h as f64 * phase).sin() / h as f64).sum();
                0.2 * voiced * tone + 0.02 * rng.range(-1.0, 1.0)
            })
            .collect();
        let mut p = PitchAnalyzer::new();
        let frames: Vec<PitchFrame> = (0..(n - FRAME_LEN) / 160 + 1)
            .map(|k| p.analyse(&x[k * 160..k * 160 + FRAME_LEN], &mut [0.0; N_BINS]))
            .collect();
        let full = smooth_f0(&frames);
        assert!(full.f0_hz.last().is_some_and(|f| *f > 0.0), "ends voiced");
        let mut lagging = 0;
        for len in 1..=frames.len() {
            let prefix = smooth_f0(&frames[..len]);
            assert!(prefix.fixed < len, "the last frame is never fixed");
            assert_eq!(
                prefix.f0_hz[..prefix.fixed],
                full.f0_hz[..prefix.fixed],
                "a fixed frame changed (prefix {len})"
            );
            lagging += (prefix.fixed + 1 < len) as usize;
        }
        assert!(lagging > 0, "some prefix leaves more than its last frame open");
    }

    #[test]
    fn silence_is_unvoiced() {
        let mut p = PitchAnalyzer::new();
        let frames: Vec<PitchFrame> = (0..5)
            .map(|_| p.analyse(&[0.0; FRAME_LEN], &mut [0.0; N_BINS]))
            .collect();
        assert_eq!(smooth_f0(&frames).f0_hz, vec![0.0; 5]);
    }
}
