//! The 20 ms frame descriptors of eGeMAPS v02: loudness, alpha ratio, Hammarberg index,
//! spectral slopes, spectral flux, MFCC 1-4, frame energy, and the LPC formants, computed as
//! openSMILE's `cMelspec`, `cPlp`, `cSpectral`, `cMfcc`, `cEnergy`, `cSpecResample`, `cLpc` and
//! `cFormantLpc` compute them at 16 kHz.

use super::dot;
use realfft::{RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Samples per 20 ms frame at 16 kHz.
pub const FRAME_LEN: usize = 320;
/// FFT length: the frame zero-padded symmetrically to the next power of two.
pub const FFT_LEN: usize = 512;
/// Magnitude bins kept, `FFT_LEN / 2 + 1`; bin k is at `31.25 * k` Hz.
pub const N_BINS: usize = FFT_LEN / 2 + 1;
/// Mel bands of the loudness and MFCC filterbanks.
pub const N_MEL: usize = 26;
/// Bins the spectral flux compares (0-5000 Hz, exclusive upper edge).
const FLUX_BINS: usize = 160;
/// LPC order of the formant tracker.
pub const LPC_ORDER: usize = 11;
/// Samples of the 11 kHz frame the formant LPC sees.
const RESAMPLED_LEN: usize = 220;
/// Rate of the formant analysis, Hz.
const FORMANT_RATE_HZ: f64 = 11_000.0;

/// What one 20 ms frame gives.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpectralFrame {
    /// Loudness: mean over 26 bands of the equal-loudness-weighted, cube-root-compressed mel
    /// power (openSMILE's auditory spectrum).
    pub loudness: f64,
    /// Alpha ratio, dB: energy 1-5 kHz over energy below 1 kHz.
    pub alpha_ratio_db: f64,
    /// Hammarberg index, dB: strongest peak below 2 kHz over strongest peak 2-5 kHz.
    pub hammarberg_db: f64,
    /// Slope of the log power spectrum 0-500 Hz, dB/Hz.
    pub slope_0_500: f64,
    /// Slope of the log power spectrum 500-1500 Hz, dB/Hz.
    pub slope_500_1500: f64,
    /// Spectral flux against the previous frame (0 for the first).
    pub flux: f64,
    /// MFCC 1-4 (HTK-style, liftered).
    pub mfcc: [f64; 4],
    /// Mean square of the unwindowed frame.
    pub energy: f64,
    /// Formant frequencies F1-F5, Hz (0 where fewer were found).
    pub formant_hz: [f64; 5],
    /// Formant bandwidths, Hz (0 where fewer were found).
    pub bandwidth_hz: [f64; 5],
}

/// Plans, filterbanks and buffers for the 20 ms path, built once and reused for every frame.
pub struct SpectralAnalyzer {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// `[FFT_LEN]`: the windowed, zero-padded frame (the FFT overwrites it).
    frame_buf: Vec<f64>,
    /// `[N_BINS]`: the frame's spectrum.
    spec: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    mag: Vec<f64>,
    prev_mag: Vec<f64>,
    first: bool,
    /// Per mel band, its first bin and where its weights start in `mel_weights` (the filter
    /// covers consecutive bins; band `m`'s weights are `mel_weights[start[m]..start[m+1]]`).
    mel_first_bin: [usize; N_MEL],
    mel_start: [usize; N_MEL + 1],
    mel_weights: Vec<f64>,
    /// `[N_BINS]`: the frame's power spectrum.
    power: Vec<f64>,
    equal_loudness: [f64; N_MEL],
    mel: [f64; N_MEL],
    /// Inverse FFT of length `RESAMPLE_FFT_LEN` that evaluates the frame at 11 kHz.
    resample_ifft: Arc<dyn Fft<f64>>,
    resample_buf: Vec<Complex<f64>>,
    resample_scratch: Vec<Complex<f64>>,
    resampled: Vec<f64>,
    /// Roots of the last frame's LPC polynomial, the next frame's starting points.
    roots: [Complex<f64>; LPC_ORDER],
    /// Whether `roots` converged.
    roots_ok: bool,
    /// `[4, N_MEL]` DCT-II rows of MFCC 1-4, liftering and scale included.
    dct: [[f64; N_MEL]; 4],
}

/// Harmonics of the spectral resampler (`kMax / 2`).
const RESAMPLE_HALF: usize = RESAMPLED_LEN / 2;
/// `FFT_LEN * 11 kHz / 16 kHz`: the period, in output samples, of openSMILE's resampling sum.
const RESAMPLE_FFT_LEN: usize = 352;

fn hz_to_mel(f: f64) -> f64 {
    if f > 0.0 { 1127.0 * (1.0 + f / 700.0).ln() } else { 0.0 }
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * ((m / 1127.0).exp() - 1.0)
}

/// The equal-loudness curve of PLP (Hermansky 1990) at `f_hz`, as openSMILE writes it.
fn equal_loudness(f_hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f_hz;
    let w2 = w * w;
    let c = w2 + 6.3e6;
    1e32 * ((w2 + 56.8e6) * w2 * w2) / (c * c * (w2 + 0.38e9) * (w2 * w2 * w2 * w + 1.7e31))
}

impl Default for SpectralAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl SpectralAnalyzer {
    /// Builds the FFT plan, the Hamming window, the mel filterbank and the resampler tables.
    pub fn new() -> Self {
        let fft = RealFftPlanner::new().plan_fft_forward(FFT_LEN);
        let scratch = fft.make_scratch_vec();
        let n = FRAME_LEN as f64;
        let window = (0..FRAME_LEN)
            .map(|i| 0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1.0)).cos())
            .collect();
        // Triangular mel filters, peak 1, no area normalisation, bins 2..=255 (openSMILE's map).
        let bin_hz = 16_000.0 / FFT_LEN as f64;
        let (lo, hi) = (hz_to_mel(20.0), hz_to_mel(8000.0));
        let bw = (hi - lo) / (N_MEL + 1) as f64;
        let cf: Vec<f64> = (0..N_MEL + 2).map(|m| lo + m as f64 * bw).collect();
        let (n_lo, n_hi) = ((20.0 / bin_hz).round() as usize, (8000.0 / bin_hz).round() as usize);
        let mut taps = Vec::new();
        let mut m = 0usize;
        for bin in n_lo + 1..n_hi {
            let nm = hz_to_mel(bin as f64 * bin_hz);
            while m < cf.len() - 1 && cf[m] < nm {
                m += 1;
            }
            let w = (cf[m] - nm) / (cf[m] - cf[m - 1]);
            if m >= 2 {
                taps.push((bin, m - 2, w));
            }
            if m - 1 < N_MEL {
                taps.push((bin, m - 1, 1.0 - w));
            }
        }
        // Regrouped by band, each band's bins in ascending order (the order the sums add them in).
        let mut mel_first_bin = [0usize; N_MEL];
        let mut mel_start = [0usize; N_MEL + 1];
        let mut mel_weights = Vec::with_capacity(taps.len());
        for band in 0..N_MEL {
            let mine: Vec<(usize, f64)> = taps.iter().filter(|t| t.1 == band).map(|t| (t.0, t.2)).collect();
            mel_first_bin[band] = mine.first().map_or(0, |t| t.0);
            assert!(
                mine.windows(2).all(|w| w[1].0 == w[0].0 + 1),
                "mel band {band} covers consecutive bins"
            );
            mel_weights.extend(mine.iter().map(|t| t.1));
            mel_start[band + 1] = mel_weights.len();
        }
        let mut eql = [0.0; N_MEL];
        for (i, e) in eql.iter_mut().enumerate() {
            *e = equal_loudness(mel_to_hz(cf[i + 1]));
        }
        debug_assert_eq!(RESAMPLE_FFT_LEN as f64, FFT_LEN as f64 * FORMANT_RATE_HZ / 16_000.0);
        let resample_ifft = FftPlanner::new().plan_fft_inverse(RESAMPLE_FFT_LEN);
        let resample_scratch = vec![Complex::default(); resample_ifft.get_inplace_scratch_len()];
        let mut dct = [[0.0; N_MEL]; 4];
        for (i, row) in dct.iter_mut().enumerate() {
            let q = (i + 1) as f64;
            let lifter = 1.0 + 11.0 * (std::f64::consts::PI * q / 22.0).sin();
            for (m, v) in row.iter_mut().enumerate() {
                *v = (std::f64::consts::PI * q / N_MEL as f64 * (m as f64 + 0.5)).cos()
                    * (2.0 / N_MEL as f64).sqrt()
                    * lifter;
            }
        }
        SpectralAnalyzer {
            fft,
            window,
            frame_buf: vec![0.0; FFT_LEN],
            spec: vec![Complex::default(); N_BINS],
            scratch,
            mag: vec![0.0; N_BINS],
            prev_mag: vec![0.0; FLUX_BINS],
            first: true,
            mel_first_bin,
            mel_start,
            mel_weights,
            power: vec![0.0; N_BINS],
            equal_loudness: eql,
            mel: [0.0; N_MEL],
            resample_ifft,
            resample_buf: vec![Complex::default(); RESAMPLE_FFT_LEN],
            resample_scratch,
            resampled: vec![0.0; RESAMPLED_LEN],
            dct,
            roots: [Complex::default(); LPC_ORDER],
            roots_ok: false,
        }
    }

    /// Starts a new signal: the next frame's flux is 0.
    pub fn reset(&mut self) {
        self.first = true;
        self.roots_ok = false;
    }

    /// The magnitude spectrum of the last analysed frame, `[N_BINS]`.
    pub fn magnitudes(&self) -> &[f64] {
        &self.mag
    }

    /// Analyses one 20 ms frame; frames must come in order (the flux compares neighbours).
    /// `formants: false` skips the LPC formant tracker (the frame's formants and bandwidths
    /// stay 0), for frames whose formants nothing reads: the tracker is the costliest part.
    ///
    /// # Shapes
    /// `frame`: `[FRAME_LEN]` samples at 16 kHz, scaled as openSMILE scales 16-bit PCM.
    #[inline(always)]
    pub fn analyse(&mut self, frame: &[f64], formants: bool) -> SpectralFrame {
        assert_eq!(frame.len(), FRAME_LEN, "a 20 ms frame at 16 kHz");
        let mut out = SpectralFrame {
            energy: dot(frame, frame) / FRAME_LEN as f64,
            ..SpectralFrame::default()
        };
        let pad = (FFT_LEN - FRAME_LEN) / 2;
        // The FFT uses its input as scratch: re-zero the padding (the middle is overwritten).
        self.frame_buf[..pad].fill(0.0);
        self.frame_buf[pad + FRAME_LEN..].fill(0.0);
        for ((b, x), w) in self.frame_buf[pad..pad + FRAME_LEN]
            .iter_mut()
            .zip(frame)
            .zip(&self.window)
        {
            *b = x * w;
        }
        self.fft
            .process_with_scratch(&mut self.frame_buf, &mut self.spec, &mut self.scratch)
            .expect("buffers sized by the plan");
        for ((m, pw), c) in self.mag.iter_mut().zip(&mut self.power).zip(&self.spec) {
            *m = c.norm_sqr().sqrt();
            *pw = *m * *m;
        }

        // Mel power bands: loudness (auditory spectrum) and MFCC. Each band sums in a register,
        // its bins in ascending order.
        for band in 0..N_MEL {
            let w = &self.mel_weights[self.mel_start[band]..self.mel_start[band + 1]];
            let first = self.mel_first_bin[band];
            let mut acc = 0.0;
            for (p, w) in self.power[first..first + w.len()].iter().zip(w) {
                acc += p * w;
            }
            self.mel[band] = acc;
        }
        out.loudness = self
            .mel
            .iter()
            .zip(&self.equal_loudness)
            .map(|(p, e)| (p.max(9.3e-10) * e).powf(0.33))
            .sum::<f64>()
            / N_MEL as f64;
        // HTK scaling: power of 16-bit integers, floor 1 before the log.
        let htk = 32767.0f64 * 32767.0;
        let mut log_mel = [0.0; N_MEL];
        for (l, p) in log_mel.iter_mut().zip(&self.mel) {
            *l = (p * htk).max(1.0).ln();
        }
        for (c, row) in out.mfcc.iter_mut().zip(&self.dct) {
            *c = row.iter().zip(&log_mel).map(|(d, l)| d * l).sum();
        }

        // Flux over the magnitudes of bins 0..160.
        if self.first {
            self.first = false;
        } else {
            let ss: f64 = self.mag[..FLUX_BINS]
                .iter()
                .zip(&self.prev_mag)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            out.flux = (ss / FLUX_BINS as f64).sqrt();
        }
        self.prev_mag.copy_from_slice(&self.mag[..FLUX_BINS]);

        self.log_spectral(&mut out);
        if formants {
            self.formants(&mut out);
        }
        out
    }

    /// Alpha ratio, Hammarberg index and the two slopes (bins fall exactly on 500, 1000, 1500,
    /// 2000 and 5000 Hz).
    #[inline(always)]
    fn log_spectral(&self, out: &mut SpectralFrame) {
        let p = |k: usize| self.power[k];
        let ratio_db = |num: f64, den: f64| {
            if den > 0.0 {
                10.0 * (num.max(1e-14) / den).log10()
            } else {
                0.0
            }
        };
        let (low, high): (f64, f64) = ((0..32).map(p).sum(), (32..161).map(p).sum());
        out.alpha_ratio_db = ratio_db(high, low);
        let max_of = |r: std::ops::Range<usize>| r.map(p).fold(0.0f64, f64::max);
        out.hammarberg_db = ratio_db(max_of(0..64), max_of(64..161));
        let log_p = |k: usize| {
            let v = p(k);
            if v <= 1e-14 { -140.0 } else { 10.0 * v.log10() }
        };
        // Least-squares slope over bins lo..=hi, with openSMILE's point count (hi - lo).
        let slope = |lo: usize, hi: usize| {
            let (mut sf, mut s2f, mut sa, mut sb) = (0.0, 0.0, 0.0, 0.0);
            for k in lo..=hi {
                let f = 31.25 * k as f64;
                let l = log_p(k);
                sf += f;
                s2f += f * f;
                sa += f * l;
                sb += l;
            }
            let n = (hi - lo) as f64;
            let den = n * s2f - sf * sf;
            if den != 0.0 { (n * sa - sf * sb) / den } else { 0.0 }
        };
        out.slope_0_500 = slope(0, 16);
        out.slope_500_1500 = slope(16, 48);
    }

    /// F1-F5 from an order-11 LPC of the frame resampled to 11 kHz through its spectrum.
    #[inline(always)]
    fn formants(&mut self, out: &mut SpectralFrame) {
        // Band-limited evaluation of the padded frame at 11 kHz, openSMILE's sum
        // `a[0] + sum_k (a[2k] cos + a[2k+1] sin)(2 pi k i / 352)` with a[2k] = Re X_k,
        // a[2k+1] = -Im X_k, i.e. Re(sum_k X_k e^{+2 pi i k i / 352}): one inverse FFT.
        self.resample_buf.fill(Complex::default());
        self.resample_buf[..RESAMPLE_HALF].copy_from_slice(&self.spec[..RESAMPLE_HALF]);
        self.resample_ifft
            .process_with_scratch(&mut self.resample_buf, &mut self.resample_scratch);
        for (y, c) in self.resampled.iter_mut().zip(&self.resample_buf) {
            *y = c.re / (FFT_LEN / 2) as f64;
        }
        let Some(a) = lpc(&self.resampled) else {
            return;
        };
        // openSMILE roots x^11 - a1 x^10 - ... - a11 (note the signs), ascending coefficients.
        let mut poly = [Complex::new(0.0, 0.0); LPC_ORDER + 1];
        for i in 0..LPC_ORDER {
            poly[i] = Complex::new(-a[LPC_ORDER - 1 - i], 0.0);
        }
        poly[LPC_ORDER] = Complex::new(1.0, 0.0);
        // Neighbouring frames have nearby roots: start from the last frame's (spread apart a
        // little so no two coincide), and from a circle when that does not converge.
        let warm = self.roots_ok;
        if warm {
            for (k, z) in self.roots.iter_mut().enumerate() {
                *z *= Complex::from_polar(1.0 + 1e-6 * (k + 1) as f64, 1e-6 * k as f64);
            }
        }
        self.roots_ok = warm && aberth(&poly, &mut self.roots, 60);
        if !self.roots_ok {
            circle_start(&poly, &mut self.roots);
            self.roots_ok = aberth(&poly, &mut self.roots, 500);
        }
        let mut found = [(0.0f64, 0.0f64); 5];
        let mut n_found = 0;
        for &r in &self.roots {
            let mut r = r;
            if r.norm_sqr().sqrt() > 1.0 {
                r = Complex::new(1.0, 0.0) / r.conj();
            }
            if r.im < 0.0 {
                continue;
            }
            let f = r.im.atan2(r.re).abs() * FORMANT_RATE_HZ / (2.0 * std::f64::consts::PI);
            if (50.0..=5450.0).contains(&f) && n_found < 5 {
                found[n_found] = (f, -r.norm_sqr().sqrt().ln() * FORMANT_RATE_HZ / std::f64::consts::PI);
                n_found += 1;
            }
        }
        found[..n_found].sort_by(|a, b| a.0.total_cmp(&b.0));
        for (i, &(f, b)) in found[..n_found].iter().enumerate() {
            out.formant_hz[i] = f;
            out.bandwidth_hz[i] = b;
        }
    }
}

/// LPC coefficients `a[0..11]` of `y` by the autocorrelation method (Levinson-Durbin); the
/// error filter is `1 + sum a_j z^-j`. `None` for an all-zero frame.
#[inline(always)]
fn lpc(y: &[f64]) -> Option<[f64; LPC_ORDER]> {
    let mut r = [0.0; LPC_ORDER + 1];
    for (l, rl) in r.iter_mut().enumerate() {
        *rl = dot(&y[l..], &y[..y.len() - l]);
    }
    if r[0] == 0.0 {
        return None;
    }
    let mut a = [0.0; LPC_ORDER];
    let mut e = r[0];
    for m in 1..=LPC_ORDER {
        let s = r[m] + (1..m).map(|i| a[i - 1] * r[m - i]).sum::<f64>();
        let k = -s / e;
        let old = a;
        a[m - 1] = k;
        for i in 1..m {
            a[i - 1] = old[i - 1] + k * old[m - i - 1];
        }
        e *= 1.0 - k * k;
        if e == 0.0 {
            break;
        }
    }
    Some(a)
}

/// All complex roots of the monic polynomial `sum c[i] x^i` (`c` ascending, `c[n] = 1`), by the
/// Aberth-Ehrlich iteration from points on a circle.
#[inline(always)]
pub fn poly_roots(c: &[Complex<f64>]) -> Vec<Complex<f64>> {
    let mut z = vec![Complex::default(); c.len() - 1];
    circle_start(c, &mut z);
    aberth(c, &mut z, 500);
    z
}

/// Starting points on a circle rotated off the real axis (LPC roots lie near the unit circle).
#[inline(always)]
fn circle_start(c: &[Complex<f64>], z: &mut [Complex<f64>]) {
    let n = z.len();
    let radius = (1.0 + c[..n].iter().map(|v| v.norm_sqr().sqrt()).fold(0.0, f64::max)).clamp(0.5, 2.0);
    for (k, zk) in z.iter_mut().enumerate() {
        *zk = Complex::from_polar(radius, 2.0 * std::f64::consts::PI * (k as f64 + 0.25) / n as f64);
    }
}

/// Refines `z` towards the roots of `c` by Aberth-Ehrlich steps; true once every root's last
/// step was below 1e-10 (within `max_iter` sweeps; a formant moves by under 1e-5 Hz then). A
/// root whose step fell below that is left where it is in later sweeps (it still repels the
/// others), so a sweep costs in proportion to the roots still moving.
#[inline(always)]
fn aberth(c: &[Complex<f64>], z: &mut [Complex<f64>], max_iter: usize) -> bool {
    let n = z.len();
    let eval = |x: Complex<f64>| {
        let (mut p, mut d) = (c[n], Complex::new(0.0, 0.0));
        for k in (0..n).rev() {
            d = d * x + p;
            p = p * x + c[k];
        }
        (p, d)
    };
    // Roots past the 64th are never frozen (LPC polynomials have 11).
    let mut frozen = 0u64;
    let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    for _ in 0..max_iter {
        for i in 0..n {
            if i < 64 && frozen >> i & 1 == 1 {
                continue;
            }
            let (p, d) = eval(z[i]);
            if p.norm_sqr() == 0.0 {
                if i < 64 {
                    frozen |= 1 << i;
                }
                continue;
            }
            let ratio = p / d;
            // sum_j 1 / (z_i - z_j), each reciprocal as conj(w) / |w|^2.
            let mut sum = Complex::new(0.0, 0.0);
            for j in 0..n {
                if j != i {
                    let w = z[i] - z[j];
                    let s = 1.0 / w.norm_sqr();
                    sum += Complex::new(w.re * s, -w.im * s);
                }
            }
            let step = ratio / (Complex::new(1.0, 0.0) - ratio * sum);
            if step.is_finite() {
                z[i] -= step;
                if step.norm_sqr() < 1e-20 && i < 64 {
                    frozen |= 1 << i;
                }
            }
        }
        if frozen & all == all && n <= 64 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_of_a_known_polynomial() {
        // (x - 0.5)(x + 0.25)(x^2 + 0.81) = x^4 - 0.25x^3 + 0.685x^2 - 0.2025x - 0.10125
        let c = [-0.10125, -0.2025, 0.685, -0.25, 1.0].map(|v| Complex::new(v, 0.0));
        let mut r = poly_roots(&c);
        r.sort_by(|a, b| a.re.total_cmp(&b.re).then(a.im.total_cmp(&b.im)));
        let want = [(-0.25, 0.0), (0.0, -0.9), (0.0, 0.9), (0.5, 0.0)];
        for (got, (re, im)) in r.iter().zip(want) {
            assert!((got.re - re).abs() < 1e-9 && (got.im - im).abs() < 1e-9, "{r:?}");
        }
    }

    #[test]
    fn silent_frame_values_are_opensmiles() {
        let mut a = SpectralAnalyzer::new();
        let f = a.analyse(&[0.0; FRAME_LEN], true);
        assert!((f.loudness - 0.00103397).abs() < 1e-7, "{}", f.loudness);
        assert!((f.slope_0_500 - 0.112).abs() < 1e-9, "{}", f.slope_0_500);
        assert!((f.slope_500_1500 - 0.0763636).abs() < 1e-6, "{}", f.slope_500_1500);
        assert_eq!((f.alpha_ratio_db, f.hammarberg_db, f.mfcc), (0.0, 0.0, [0.0; 4]));
        assert_eq!(f.formant_hz, [0.0; 5]);
    }
}
