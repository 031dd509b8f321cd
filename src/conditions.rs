//! Recording conditions (issue #7): seeded transforms of a mono waveform that put an utterance
//! through additive noise (white or babble) at a chosen SNR, a telephone channel, a hearing-aid
//! multiband compressor or a synthetic room, so a feature ranking can be repeated under each.
//!
//! Every transform takes `[S]` samples at `sample_rate_hz`, returns `[S]` samples at the same
//! rate, is a pure function of its inputs and seed, and refuses bad parameters with
//! [`Error::Config`] (never a panic). [`Condition`] names one transform with its parameters as
//! `--condition NAME[:PARAMS]` spells it; [`extract_corpus_under`] extracts eGeMAPS features of
//! a corpus after a condition, on all cores.

use crate::audio::{decode_file, resample};
use crate::error::{Error, Result};
use crate::features::corpus::{FeatureConfig, FileFeatures, extract_corpus_with};
use crate::input::InputItem;
use crate::rng::SplitMix64;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use std::fmt;
use std::str::FromStr;

/// Lower edge of the telephone band, Hz.
pub const TELEPHONE_LOW_HZ: f64 = 300.0;
/// Upper edge of the telephone band, Hz.
pub const TELEPHONE_HIGH_HZ: f64 = 3400.0;
/// Sample rate of the telephone codec, Hz.
pub const TELEPHONE_RATE_HZ: u32 = 8000;
/// Other utterances summed into the babble of one file by [`extract_corpus_under`].
pub const BABBLE_TALKERS: usize = 8;
/// Allowed SNRs, dB.
const SNR_RANGE_DB: (f32, f32) = (-30.0, 80.0);
/// Allowed reverberation times, s.
const RT60_RANGE_S: (f32, f32) = (0.05, 5.0);
/// Onset of the diffuse tail of the room response after the direct path, s.
const REVERB_TAIL_ONSET_S: f64 = 0.005;
/// The room response's tail runs until its envelope is this far (dB) below its onset.
const REVERB_TAIL_DEPTH_DB: f64 = 80.0;
/// Largest output peak of [`reverb`].
const REVERB_PEAK: f64 = 0.99;

/// Random-stream purposes of this module (disjoint from the other users of the crate's
/// splitmix64 streams).
const PURPOSE_WHITE: u64 = 0xC0_0001;
const PURPOSE_BABBLE: u64 = 0xC0_0002;
const PURPOSE_REVERB: u64 = 0xC0_0003;
const PURPOSE_DERIVE: u64 = 0xC0_0004;
const PURPOSE_POOL: u64 = 0xC0_0005;

/// An independent seed for `key` (for example corpus and file index) under `seed`: the same
/// pair always gives the same seed, different keys unrelated ones.
pub fn derive_seed(seed: u64, key: &[u64]) -> u64 {
    SplitMix64::stream(seed, PURPOSE_DERIVE, key).next_u64()
}

/// Standard normal draws (Box-Muller).
fn gaussian(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.uniform();
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Checks a sample rate: 1..=384000 Hz.
fn check_rate(sample_rate_hz: u32) -> Result<()> {
    if (1..=384_000).contains(&sample_rate_hz) {
        Ok(())
    } else {
        Err(Error::config(
            "sample_rate_hz",
            format!("{sample_rate_hz} is outside 1..=384000"),
        ))
    }
}

/// Checks a waveform and its rate: non-empty, finite, a rate in 1..=384000 Hz.
fn check_signal(x: &[f32], sample_rate_hz: u32) -> Result<()> {
    check_rate(sample_rate_hz)?;
    if x.is_empty() {
        return Err(Error::config("samples", "the waveform has no samples"));
    }
    if let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::config("samples", format!("sample {i} is {v}")));
    }
    Ok(())
}

/// Checks an SNR in dB.
fn check_snr(snr_db: f32) -> Result<()> {
    let (lo, hi) = SNR_RANGE_DB;
    if snr_db.is_finite() && (lo..=hi).contains(&snr_db) {
        Ok(())
    } else {
        Err(Error::config(
            "snr_db",
            format!("must be in {lo}..={hi} db, got {snr_db}"),
        ))
    }
}

/// Checks a reverberation time in s.
fn check_rt60(rt60_s: f32) -> Result<()> {
    let (lo, hi) = RT60_RANGE_S;
    if rt60_s.is_finite() && (lo..=hi).contains(&rt60_s) {
        Ok(())
    } else {
        Err(Error::config(
            "rt60_s",
            format!("must be in {lo}..={hi} s, got {rt60_s}"),
        ))
    }
}

/// Mean power of a signal.
fn power(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64
}

/// `x + g * noise` with `g` chosen so that `power(x) / power(g * noise)` is exactly `snr_db`.
fn mix_at_snr(x: &[f32], noise: &[f64], snr_db: f32) -> Result<Vec<f32>> {
    let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let p_signal = power(&xs);
    if p_signal <= 0.0 {
        return Err(Error::config("samples", "the waveform is silent: no snr is defined"));
    }
    let p_noise = power(noise);
    if p_noise <= 0.0 {
        return Err(Error::config("noise", "the noise is silent"));
    }
    let g = (p_signal / p_noise / 10f64.powf(f64::from(snr_db) / 10.0)).sqrt();
    Ok(xs.iter().zip(noise).map(|(s, n)| (s + g * n) as f32).collect())
}

/// Adds white Gaussian noise at `snr_db`: the noise is scaled so the power ratio of the
/// waveform to the noise, over the whole signal (silences included), is exactly `snr_db`.
///
/// # Shapes
/// `x` [S] -> [S]
///
/// Errors ([`Error::Config`]): an empty or non-finite or silent `x`, a zero rate, an SNR
/// outside -30..=80 dB.
pub fn white_noise(x: &[f32], sample_rate_hz: u32, snr_db: f32, seed: u64) -> Result<Vec<f32>> {
    check_signal(x, sample_rate_hz)?;
    check_snr(snr_db)?;
    let mut rng = SplitMix64::stream(seed, PURPOSE_WHITE, &[]);
    let noise: Vec<f64> = (0..x.len()).map(|_| gaussian(&mut rng)).collect();
    mix_at_snr(x, &noise, snr_db)
}

/// Adds babble at `snr_db`: every non-silent utterance of `others` (at `sample_rate_hz`) is
/// brought to unit RMS, started at a random offset and looped or truncated to the length of
/// `x`; their sum is scaled so the power ratio of `x` to the babble over the whole signal is
/// exactly `snr_db`.
///
/// # Shapes
/// `x` [S], `others` m x [S_i] -> [S]
///
/// Errors ([`Error::Config`]): everything [`white_noise`] refuses, no `others`, a non-finite
/// sample in one of them, or only silent ones.
pub fn babble(x: &[f32], sample_rate_hz: u32, snr_db: f32, others: &[&[f32]], seed: u64) -> Result<Vec<f32>> {
    check_signal(x, sample_rate_hz)?;
    check_snr(snr_db)?;
    if others.is_empty() {
        return Err(Error::config("babble", "no other utterance to make babble from"));
    }
    let mut rng = SplitMix64::stream(seed, PURPOSE_BABBLE, &[]);
    let mut sum = vec![0.0f64; x.len()];
    let mut talkers = 0;
    for (k, o) in others.iter().enumerate() {
        if let Some((i, v)) = o.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::config("babble", format!("utterance {k}: sample {i} is {v}")));
        }
        let offset = rng.below(o.len().max(1));
        let p: f64 = o.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / o.len().max(1) as f64;
        if p <= 0.0 {
            continue;
        }
        let g = 1.0 / p.sqrt();
        for (i, s) in sum.iter_mut().enumerate() {
            *s += g * f64::from(o[(offset + i) % o.len()]);
        }
        talkers += 1;
    }
    if talkers == 0 {
        return Err(Error::config("babble", "every other utterance is silent"));
    }
    mix_at_snr(x, &sum, snr_db)
}

/// Applies a zero-phase real gain `gain(frequency_hz)` to `x` in the DFT domain of its own
/// length (a circular filter: every bin the gain sets to 0 is exactly 0 in the output).
fn fft_filter(x: &[f64], sample_rate_hz: u32, gain: impl Fn(f64) -> f64) -> Vec<f64> {
    let n = x.len();
    let mut planner = FftPlanner::<f64>::new();
    let mut buf: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(v, 0.0)).collect();
    planner.plan_fft_forward(n).process(&mut buf);
    for (k, c) in buf.iter_mut().enumerate() {
        *c *= gain(bin_hz(k, n, sample_rate_hz));
    }
    planner.plan_fft_inverse(n).process(&mut buf);
    buf.iter().map(|c| c.re / n as f64).collect()
}

/// The (non-negative) frequency of DFT bin `k` of `n` at `sample_rate_hz`.
fn bin_hz(k: usize, n: usize, sample_rate_hz: u32) -> f64 {
    k.min(n - k) as f64 * f64::from(sample_rate_hz) / n as f64
}

/// The ideal telephone band-pass: 1 on 300..=3400 Hz, 0 elsewhere.
fn telephone_band(x: &[f32], sample_rate_hz: u32) -> Vec<f32> {
    let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    fft_filter(&xs, sample_rate_hz, |f| {
        f64::from(u8::from((TELEPHONE_LOW_HZ..=TELEPHONE_HIGH_HZ).contains(&f)))
    })
    .into_iter()
    .map(|v| v as f32)
    .collect()
}

/// G.711 mu-law encoding of one sample in `[-1, 1]` (clipped beyond), bit-exact with the ITU
/// reference: the sample is read as 16-bit PCM (`round(x * 32768)`), then companded to 8 bits
/// (sign, 3-bit segment, 4-bit step; bits inverted). 0 encodes as `0xFF`.
pub fn mu_law_encode(x: f32) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let pcm = (f64::from(x) * 32768.0).round().clamp(-32768.0, 32767.0) as i32;
    let (mag, mask) = if pcm < 0 { (-pcm, 0x7F) } else { (pcm, 0xFF) };
    let v = mag.min(CLIP) + BIAS;
    let seg = (0..8).find(|&s| v < 0x100 << s).unwrap_or(7);
    let code = (seg << 4) | ((v >> (seg + 3)) & 0x0F);
    (code ^ mask) as u8
}

/// G.711 mu-law decoding of one 8-bit code to a sample in `[-1, 1]` (the ITU reference's
/// 16-bit value / 32768): the middle of the code's quantisation interval.
pub fn mu_law_decode(code: u8) -> f32 {
    const BIAS: i32 = 0x84;
    let u = i32::from(!code);
    let t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 { BIAS - t } else { t - BIAS };
    v as f32 / 32768.0
}

/// A telephone channel: the 300-3400 Hz band-pass (an ideal, zero-phase filter in the DFT
/// domain of the whole signal, the transmit filter), resampling to 8 kHz, an 8-bit G.711 mu-law
/// encode / decode ([`mu_law_encode`], [`mu_law_decode`]), resampling back to
/// `sample_rate_hz` and the band-pass again (the receive filter, which also removes the
/// codec's noise outside the band). The level is kept: samples beyond `[-1, 1]` clip in the
/// codec.
///
/// # Shapes
/// `x` [S] -> [S]
///
/// Errors ([`Error::Config`]): an empty or non-finite `x`, a rate below 8000 Hz.
pub fn telephone(x: &[f32], sample_rate_hz: u32) -> Result<Vec<f32>> {
    check_signal(x, sample_rate_hz)?;
    if sample_rate_hz < TELEPHONE_RATE_HZ {
        return Err(Error::config(
            "sample_rate_hz",
            format!("the telephone channel needs at least {TELEPHONE_RATE_HZ} hz, got {sample_rate_hz}"),
        ));
    }
    let band = telephone_band(x, sample_rate_hz);
    let narrow = resample(&band, sample_rate_hz, TELEPHONE_RATE_HZ)?;
    let coded: Vec<f32> = narrow.iter().map(|&v| mu_law_decode(mu_law_encode(v))).collect();
    let mut wide = resample(&coded, TELEPHONE_RATE_HZ, sample_rate_hz)?;
    wide.resize(x.len(), 0.0);
    Ok(telephone_band(&wide, sample_rate_hz))
}

/// One band of the hearing-aid compressor.
#[derive(Clone, Debug, PartialEq)]
pub struct BandCompressor {
    /// Level above which the band is compressed, dB re full scale of the band's peak envelope
    /// (a full-scale sine is 0 dB).
    pub threshold_db: f32,
    /// Compression ratio above the threshold (>= 1; 1 leaves the band unchanged): a level
    /// `L > threshold_db` comes out at `threshold_db + (L - threshold_db) / ratio`.
    pub ratio: f32,
    /// Attack time constant of the envelope follower, ms.
    pub attack_ms: f32,
    /// Release time constant of the envelope follower, ms.
    pub release_ms: f32,
    /// Gain applied to the whole band after compression, dB.
    pub makeup_db: f32,
}

/// A multiband dynamic-range compressor loosely after a wide-dynamic-range-compression hearing
/// aid. Defaults ([`Default`]): 4 bands split at 500, 1500 and 4000 Hz; every band with a
/// threshold of -40 dB, attack 5 ms, release 50 ms and no makeup gain; ratios 2, 2.5, 3 and 3
/// from the lowest band up (stronger compression where speech is softer).
#[derive(Clone, Debug, PartialEq)]
pub struct HearingAidParams {
    /// Crossover frequencies, Hz, strictly ascending (bands: `crossovers_hz.len() + 1`). A
    /// crossover at or above the Nyquist frequency leaves the bands above it empty.
    pub crossovers_hz: Vec<f32>,
    /// Per band, lowest first. // [crossovers_hz.len() + 1]
    pub bands: Vec<BandCompressor>,
}

impl Default for HearingAidParams {
    fn default() -> Self {
        let band = |ratio| BandCompressor {
            threshold_db: -40.0,
            ratio,
            attack_ms: 5.0,
            release_ms: 50.0,
            makeup_db: 0.0,
        };
        HearingAidParams {
            crossovers_hz: vec![500.0, 1500.0, 4000.0],
            bands: vec![band(2.0), band(2.5), band(3.0), band(3.0)],
        }
    }
}

impl HearingAidParams {
    /// Checks the settings: crossovers finite, positive and strictly ascending; one band more
    /// than crossovers; thresholds in -120..=0 dB, ratios in 1..=100, attack and release in
    /// (0, 5000] ms, makeup in -40..=40 dB. Errors: [`Error::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, msg: String| Err(Error::config(field, msg));
        for (i, &c) in self.crossovers_hz.iter().enumerate() {
            if !(c.is_finite() && c > 0.0) {
                return bad(
                    "crossovers_hz",
                    format!("crossover {i} is {c}, not a positive frequency"),
                );
            }
            if i > 0 && c <= self.crossovers_hz[i - 1] {
                return bad(
                    "crossovers_hz",
                    format!("must be strictly ascending, got {:?}", self.crossovers_hz),
                );
            }
        }
        if self.bands.len() != self.crossovers_hz.len() + 1 {
            return bad(
                "bands",
                format!(
                    "{} crossovers need {} bands, got {}",
                    self.crossovers_hz.len(),
                    self.crossovers_hz.len() + 1,
                    self.bands.len()
                ),
            );
        }
        let within = |v: f32, lo: f32, hi: f32| v.is_finite() && (lo..=hi).contains(&v);
        for (i, b) in self.bands.iter().enumerate() {
            if !within(b.threshold_db, -120.0, 0.0) {
                return bad(
                    "threshold_db",
                    format!("band {i}: must be in -120..=0 db, got {}", b.threshold_db),
                );
            }
            if !within(b.ratio, 1.0, 100.0) {
                return bad("ratio", format!("band {i}: must be in 1..=100, got {}", b.ratio));
            }
            if !(within(b.attack_ms, 0.0, 5000.0) && b.attack_ms > 0.0) {
                return bad(
                    "attack_ms",
                    format!("band {i}: must be in (0, 5000] ms, got {}", b.attack_ms),
                );
            }
            if !(within(b.release_ms, 0.0, 5000.0) && b.release_ms > 0.0) {
                return bad(
                    "release_ms",
                    format!("band {i}: must be in (0, 5000] ms, got {}", b.release_ms),
                );
            }
            if !within(b.makeup_db, -40.0, 40.0) {
                return bad(
                    "makeup_db",
                    format!("band {i}: must be in -40..=40 db, got {}", b.makeup_db),
                );
            }
        }
        Ok(())
    }

    /// Weight of band `b` at `f_hz`: differences of raised-cosine low-passes, one per
    /// crossover `c` (1 below `0.85 c`, 0 above `1.15 c`), so the weights are non-negative and
    /// sum to 1 at every frequency.
    fn band_weight(&self, b: usize, f_hz: f64) -> f64 {
        let low_pass = |i: usize| -> f64 {
            let c = f64::from(self.crossovers_hz[i]);
            let (lo, hi) = (0.85 * c, 1.15 * c);
            if f_hz <= lo {
                1.0
            } else if f_hz >= hi {
                0.0
            } else {
                let t = (f_hz - lo) / (hi - lo);
                0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        let below = if b < self.crossovers_hz.len() { low_pass(b) } else { 1.0 };
        let under = if b > 0 { low_pass(b - 1) } else { 0.0 };
        below - under
    }
}

/// A hearing-aid-like multiband compressor: `x` is split into bands by complementary
/// zero-phase masks in the DFT domain of the whole signal (they sum to 1, so with every ratio 1
/// and no makeup the output is the input); each band's peak envelope follows `|band|` with
/// one-pole attack / release smoothing; above the band's threshold its level is compressed by
/// the ratio (hard knee), then the makeup gain is applied; the bands are summed. For a
/// steady signal above threshold in one band, level differences in dB come out divided by the
/// ratio (a loud-soft alternation of 28 dB becomes 28 / ratio dB once the envelope has
/// settled). Transients are a compressor's own: an onset passes at full level for about the
/// attack time, and a soft passage after a loud one is turned down for a few release times.
///
/// # Shapes
/// `x` [S] -> [S]
///
/// Errors ([`Error::Config`]): an empty or non-finite `x`, a zero rate, bad `params` (see
/// [`HearingAidParams::validate`]).
pub fn hearing_aid(x: &[f32], sample_rate_hz: u32, params: &HearingAidParams) -> Result<Vec<f32>> {
    check_signal(x, sample_rate_hz)?;
    params.validate()?;
    let n = x.len();
    let sr = f64::from(sample_rate_hz);
    let mut planner = FftPlanner::<f64>::new();
    let mut spec: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(f64::from(v), 0.0)).collect();
    planner.plan_fft_forward(n).process(&mut spec);
    let inverse = planner.plan_fft_inverse(n);
    let mut out = vec![0.0f64; n];
    for (b, band) in params.bands.iter().enumerate() {
        let mut buf: Vec<Complex<f64>> = spec
            .iter()
            .enumerate()
            .map(|(k, c)| c * params.band_weight(b, bin_hz(k, n, sample_rate_hz)))
            .collect();
        if buf.iter().all(|c| c.norm_sqr() == 0.0) {
            continue;
        }
        inverse.process(&mut buf);
        let attack = (-1.0 / (f64::from(band.attack_ms) * 1e-3 * sr)).exp();
        let release = (-1.0 / (f64::from(band.release_ms) * 1e-3 * sr)).exp();
        let (threshold, ratio) = (f64::from(band.threshold_db), f64::from(band.ratio));
        let makeup = f64::from(band.makeup_db);
        let mut env = 0.0f64;
        for (o, c) in out.iter_mut().zip(&buf) {
            let s = c.re / n as f64;
            let a = s.abs();
            let coef = if a > env { attack } else { release };
            env = coef * env + (1.0 - coef) * a;
            let level_db = 20.0 * env.max(1e-12).log10();
            let reduction_db = if level_db > threshold {
                (threshold - level_db) * (1.0 - 1.0 / ratio)
            } else {
                0.0
            };
            *o += s * 10f64.powf((reduction_db + makeup) / 20.0);
        }
    }
    Ok(out.into_iter().map(|v| v as f32).collect())
}

/// The synthetic room impulse response behind [`reverb`]: a direct path (a unit impulse at
/// t = 0) and, from 5 ms on, a diffuse tail of Gaussian noise under the envelope
/// `10^(-3 t / rt60_s)` (energy falling 60 dB per `rt60_s`) until it is 80 dB down, scaled so
/// the tail carries the same energy as the direct path (direct-to-reverberant ratio 0 dB).
///
/// # Shapes
/// returns [L], `L = round((0.005 + 80 / 60 * rt60_s) * sample_rate_hz)`
///
/// Errors ([`Error::Config`]): a rate outside 1..=384000 Hz, `rt60_s` outside 0.05..=5 s.
pub fn room_impulse_response(sample_rate_hz: u32, rt60_s: f32, seed: u64) -> Result<Vec<f32>> {
    check_rate(sample_rate_hz)?;
    check_rt60(rt60_s)?;
    let sr = f64::from(sample_rate_hz);
    let rt60 = f64::from(rt60_s);
    let onset = (REVERB_TAIL_ONSET_S * sr).round().max(1.0) as usize;
    let len = ((REVERB_TAIL_ONSET_S + REVERB_TAIL_DEPTH_DB / 60.0 * rt60) * sr).round() as usize;
    let mut rng = SplitMix64::stream(seed, PURPOSE_REVERB, &[]);
    let mut tail: Vec<f64> = (onset..len.max(onset + 1))
        .map(|i| {
            let t = (i - onset) as f64 / sr;
            gaussian(&mut rng) * 10f64.powf(-3.0 * t / rt60)
        })
        .collect();
    let energy: f64 = tail.iter().map(|v| v * v).sum();
    let g = if energy > 0.0 { 1.0 / energy.sqrt() } else { 0.0 };
    tail.iter_mut().for_each(|v| *v *= g);
    let mut h = vec![0.0f32; onset];
    h[0] = 1.0;
    h.extend(tail.iter().map(|&v| v as f32));
    Ok(h)
}

/// Reverberation: `x` convolved (FFT convolution) with [`room_impulse_response`] of `rt60_s`,
/// cut to the length of `x` (the direct path keeps it aligned), then scaled to the RMS of `x`,
/// or lower where that would put the peak above 0.99 (so the output never clips).
///
/// # Shapes
/// `x` [S] -> [S]
///
/// Errors ([`Error::Config`]): an empty or non-finite `x`, a zero rate, `rt60_s` outside
/// 0.05..=5 s.
pub fn reverb(x: &[f32], sample_rate_hz: u32, rt60_s: f32, seed: u64) -> Result<Vec<f32>> {
    check_signal(x, sample_rate_hz)?;
    let h = room_impulse_response(sample_rate_hz, rt60_s, seed)?;
    let n = (x.len() + h.len() - 1).next_power_of_two();
    let mut planner = FftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n);
    let to_spec = |v: &[f32]| {
        let mut buf = vec![Complex::new(0.0, 0.0); n];
        buf.iter_mut().zip(v).for_each(|(b, &s)| b.re = f64::from(s));
        forward.process(&mut buf);
        buf
    };
    let (sx, sh) = (to_spec(x), to_spec(&h));
    let mut y: Vec<Complex<f64>> = sx.iter().zip(&sh).map(|(a, b)| a * b).collect();
    planner.plan_fft_inverse(n).process(&mut y);
    let y: Vec<f64> = y[..x.len()].iter().map(|c| c.re / n as f64).collect();
    let xs: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let (p_x, p_y) = (power(&xs), power(&y));
    let peak = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut g = if p_y > 0.0 { (p_x / p_y).sqrt() } else { 1.0 };
    if peak * g > REVERB_PEAK {
        g = REVERB_PEAK / peak;
    }
    Ok(y.iter().map(|v| (v * g) as f32).collect())
}

/// A recording condition, as `--condition NAME[:PARAMS]` names it.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// `clean`: the recording as it is.
    Clean,
    /// `white:SNR_DB`: additive white Gaussian noise ([`white_noise`]).
    White {
        /// Signal-to-noise ratio, dB.
        snr_db: f32,
    },
    /// `babble:SNR_DB`: additive babble of other utterances ([`babble`]).
    Babble {
        /// Signal-to-babble ratio, dB.
        snr_db: f32,
    },
    /// `telephone`: the 300-3400 Hz, 8 kHz, mu-law channel ([`telephone`]).
    Telephone,
    /// `hearing-aid`: the multiband compressor with its default settings ([`hearing_aid`]).
    HearingAid(HearingAidParams),
    /// `reverb:RT60_S`: a synthetic room of the given reverberation time ([`reverb`]).
    Reverb {
        /// Reverberation time (60 dB decay), s.
        rt60_s: f32,
    },
}

/// The spellings [`Condition::from_str`] accepts, for error messages and help.
pub const CONDITION_NAMES: &str = "clean, white:SNR_DB, babble:SNR_DB, telephone, hearing-aid, reverb:RT60_S";

impl FromStr for Condition {
    type Err = Error;

    /// Parses `NAME[:PARAMS]`: `clean`, `white:SNR_DB`, `babble:SNR_DB`, `telephone`,
    /// `hearing-aid`, `reverb:RT60_S`. Errors ([`Error::Config`] on `condition`, naming the
    /// value): an unknown name (listing the valid ones), a missing, extra or out-of-range
    /// parameter.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| Error::config("condition", format!("`{s}`: {why}"));
        let (name, param) = match s.trim().split_once(':') {
            Some((n, p)) => (n.trim(), Some(p.trim())),
            None => (s.trim(), None),
        };
        let number = |what: &str, unit: &str| -> Result<f32> {
            let p = param.ok_or_else(|| bad(format!("needs {what} in {unit}, e.g. `{name}:10`")))?;
            p.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(format!("{what} `{p}` is not a number")))
        };
        let none = |c: Condition| match param {
            Some(p) => Err(bad(format!("`{name}` takes no parameter, got `{p}`"))),
            None => Ok(c),
        };
        let c = match name {
            "clean" => none(Condition::Clean)?,
            "white" => Condition::White {
                snr_db: number("an snr", "db")?,
            },
            "babble" => Condition::Babble {
                snr_db: number("an snr", "db")?,
            },
            "telephone" => none(Condition::Telephone)?,
            "hearing-aid" => none(Condition::HearingAid(HearingAidParams::default()))?,
            "reverb" => Condition::Reverb {
                rt60_s: number("a reverberation time", "s")?,
            },
            _ => return Err(bad(format!("unknown condition `{name}` (valid: {CONDITION_NAMES})"))),
        };
        c.validate().map_err(|e| match e {
            Error::Config { field, reason } => bad(format!("{field}: {reason}")),
            other => other,
        })?;
        Ok(c)
    }
}

impl fmt::Display for Condition {
    /// The canonical `NAME[:PARAMS]` (what [`Condition::from_str`] reads back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Clean => f.write_str("clean"),
            Condition::White { snr_db } => write!(f, "white:{snr_db}"),
            Condition::Babble { snr_db } => write!(f, "babble:{snr_db}"),
            Condition::Telephone => f.write_str("telephone"),
            Condition::HearingAid(_) => f.write_str("hearing-aid"),
            Condition::Reverb { rt60_s } => write!(f, "reverb:{rt60_s}"),
        }
    }
}

impl Condition {
    /// Checks the parameters (SNR in -30..=80 dB, RT60 in 0.05..=5 s, the compressor's
    /// settings). Errors: [`Error::Config`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        match self {
            Condition::White { snr_db } | Condition::Babble { snr_db } => check_snr(*snr_db),
            Condition::Reverb { rt60_s } => check_rt60(*rt60_s),
            Condition::HearingAid(p) => p.validate(),
            Condition::Clean | Condition::Telephone => Ok(()),
        }
    }

    /// Whether this is the recording as it is.
    pub fn is_clean(&self) -> bool {
        matches!(self, Condition::Clean)
    }

    /// Whether [`Condition::apply`] needs other utterances.
    pub fn needs_babble_pool(&self) -> bool {
        matches!(self, Condition::Babble { .. })
    }

    /// Applies the condition to `x` at `sample_rate_hz` with `seed`; `babble_pool` (other
    /// utterances at the same rate) is used by [`Condition::Babble`] only. `Clean` returns a
    /// copy.
    ///
    /// # Shapes
    /// `x` [S] -> [S]
    ///
    /// Errors: those of the transform ([`Error::Config`]).
    pub fn apply(&self, x: &[f32], sample_rate_hz: u32, seed: u64, babble_pool: &[&[f32]]) -> Result<Vec<f32>> {
        match self {
            Condition::Clean => {
                check_signal(x, sample_rate_hz)?;
                Ok(x.to_vec())
            }
            Condition::White { snr_db } => white_noise(x, sample_rate_hz, *snr_db, seed),
            Condition::Babble { snr_db } => babble(x, sample_rate_hz, *snr_db, babble_pool, seed),
            Condition::Telephone => telephone(x, sample_rate_hz),
            Condition::HearingAid(p) => hearing_aid(x, sample_rate_hz, p),
            Condition::Reverb { rt60_s } => reverb(x, sample_rate_hz, *rt60_s, seed),
        }
    }
}

/// Extracts the features of every item of one corpus after `condition`, on
/// `config.workers` threads (see [`extract_corpus_with`]): file `i` is transformed with
/// `derive_seed(seed, &[i])`. For babble, a pool of [`BABBLE_TALKERS`] + 1 files of the corpus
/// is drawn by `seed` and decoded once; each file's babble sums the first [`BABBLE_TALKERS`]
/// pool files other than itself (resampled to its rate where needed).
///
/// Returns one result per item, in input order; a file the condition refuses (silent, too
/// short) is an [`Error::BadAudio`] naming it. Errors of the whole corpus: a bad condition,
/// or, for babble, fewer than two items or no pool file that decodes.
pub fn extract_corpus_under(
    items: &[InputItem],
    config: &FeatureConfig,
    condition: &Condition,
    seed: u64,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<Result<FileFeatures>>> {
    condition.validate()?;
    let mut pool: Vec<(usize, Vec<f32>, u32)> = vec![];
    if condition.needs_babble_pool() {
        if items.len() < 2 {
            return Err(Error::config(
                "condition",
                format!("`{condition}` needs at least 2 files in the corpus"),
            ));
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        SplitMix64::stream(seed, PURPOSE_POOL, &[]).shuffle(&mut order);
        for &i in order.iter().take(BABBLE_TALKERS + 1) {
            if let Ok(a) = decode_file(&items[i].path)
                && !a.samples.is_empty()
            {
                pool.push((i, a.samples, a.sample_rate_hz));
            }
        }
        if pool.is_empty() {
            return Err(Error::config(
                "condition",
                format!("`{condition}`: no file of the babble pool could be decoded"),
            ));
        }
    }
    let transform = |i: usize, samples: Vec<f32>, rate: u32| -> Result<Vec<f32>> {
        let mut resampled: Vec<Vec<f32>> = vec![];
        let mut talkers: Vec<&[f32]> = vec![];
        for (_, s, r) in pool.iter().filter(|p| p.0 != i).take(BABBLE_TALKERS) {
            if *r == rate {
                talkers.push(s);
            } else {
                resampled.push(resample(s, *r, rate)?);
            }
        }
        talkers.extend(resampled.iter().map(Vec::as_slice));
        condition.apply(&samples, rate, derive_seed(seed, &[i as u64]), &talkers)
    };
    Ok(extract_corpus_with(items, config, transform, progress))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh Gaussian noise, `n` samples of RMS `rms`.
    fn noise(n: usize, rms: f64, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| (rms * gaussian(&mut rng)) as f32).collect()
    }

    /// A speech-like test signal: a 150 Hz harmonic tone with a syllabic envelope.
    fn voice(n: usize, sr: u32, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let phases: Vec<f64> = (0..20).map(|_| rng.range(0.0, std::f64::consts::TAU)).collect();
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(sr);
                let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                let s: f64 = (1..=20)
                    .map(|h| (2.0 * std::f64::consts::PI * 150.0 * h as f64 * t + phases[h - 1]).sin() / h as f64)
                    .sum();
                (0.2 * env * s) as f32
            })
            .collect()
    }

    fn snr_db(clean: &[f32], noisy: &[f32]) -> f64 {
        let ps: f64 = clean.iter().map(|&v| f64::from(v).powi(2)).sum();
        let pn: f64 = clean
            .iter()
            .zip(noisy)
            .map(|(&a, &b)| (f64::from(b) - f64::from(a)).powi(2))
            .sum();
        10.0 * (ps / pn).log10()
    }

    /// Energy of `x` per frequency (one-sided power spectrum with its bin frequencies).
    fn power_spectrum(x: &[f32], sr: u32) -> Vec<(f64, f64)> {
        let n = x.len();
        let mut buf: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(f64::from(v), 0.0)).collect();
        FftPlanner::<f64>::new().plan_fft_forward(n).process(&mut buf);
        (0..n).map(|k| (bin_hz(k, n, sr), buf[k].norm_sqr())).collect()
    }

    #[test]
    fn white_noise_snr_is_measured_back() {
        let sr = 16_000;
        for (k, &snr) in [-5.0f32, 0.0, 10.0, 20.0, 35.0].iter().enumerate() {
            let x = voice(sr as usize * 2, sr, k as u64);
            let y = white_noise(&x, sr, snr, 40 + k as u64).unwrap();
            assert_eq!(y.len(), x.len());
            let got = snr_db(&x, &y);
            assert!((got - f64::from(snr)).abs() < 0.2, "asked {snr} db, measured {got}");
            // The noise is white: roughly equal energy in the lower and upper half of the band.
            let spec = power_spectrum(&y.iter().zip(&x).map(|(a, b)| a - b).collect::<Vec<_>>(), sr);
            let low: f64 = spec.iter().filter(|(f, _)| *f < 4000.0).map(|p| p.1).sum();
            let high: f64 = spec.iter().filter(|(f, _)| *f >= 4000.0).map(|p| p.1).sum();
            assert!((low / high - 1.0).abs() < 0.1, "{low} vs {high}");
        }
    }

    #[test]
    fn babble_snr_is_measured_back() {
        let sr = 16_000;
        let x = voice(30_000, sr, 1);
        let others: Vec<Vec<f32>> = (0..8).map(|k| voice(9_000 + 3_000 * k, sr, 100 + k as u64)).collect();
        let refs: Vec<&[f32]> = others.iter().map(Vec::as_slice).collect();
        for snr in [0.0f32, 5.0, 15.0] {
            let y = babble(&x, sr, snr, &refs, 7).unwrap();
            assert_eq!(y.len(), x.len());
            let got = snr_db(&x, &y);
            assert!((got - f64::from(snr)).abs() < 0.2, "asked {snr} db, measured {got}");
        }
        // Silent talkers are skipped; only silent ones, or none, are refused.
        let silent = vec![0.0f32; 100];
        let with_silent: Vec<&[f32]> = vec![&silent, refs[0]];
        let got = snr_db(&x, &babble(&x, sr, 3.0, &with_silent, 1).unwrap());
        assert!((got - 3.0).abs() < 0.2);
        assert!(matches!(babble(&x, sr, 3.0, &[&silent], 1), Err(Error::Config { .. })));
        assert!(matches!(babble(&x, sr, 3.0, &[], 1), Err(Error::Config { .. })));
    }

    #[test]
    fn mu_law_matches_g711_and_round_trip_error_is_bounded() {
        // Reference values of the ITU / Sun g711.c tables.
        assert_eq!(mu_law_encode(0.0), 0xFF);
        assert_eq!(mu_law_decode(0xFF), 0.0);
        assert_eq!(mu_law_decode(0x80), 32124.0 / 32768.0);
        assert_eq!(mu_law_decode(0x00), -32124.0 / 32768.0);
        assert_eq!(mu_law_encode(1.0), 0x80);
        assert_eq!(mu_law_encode(-1.0), 0x00);
        // Every code decodes and re-encodes to itself (except the duplicate zero, 0x7F).
        for c in 0..=255u8 {
            if c != 0x7F {
                assert_eq!(mu_law_encode(mu_law_decode(c)), c, "code {c:#x}");
            }
        }
        // Quantisation error: at most half a step, |x| / 32 + 3e-4 (about 3 % of the level),
        // hence over 30 db of SNR on a full-range signal.
        for i in -9900..=9900 {
            let x = i as f32 / 10_000.0;
            let err = (mu_law_decode(mu_law_encode(x)) - x).abs();
            assert!(err <= x.abs() / 32.0 + 3e-4, "x {x}: error {err}");
        }
        let x = voice(16_000, 8000, 3);
        let y: Vec<f32> = x.iter().map(|&v| mu_law_decode(mu_law_encode(v))).collect();
        let snr = snr_db(&x, &y);
        assert!(snr > 30.0, "{snr}");
    }

    #[test]
    fn telephone_limits_the_band() {
        let sr = 16_000;
        // Broadband input: white noise plus a voice.
        let x: Vec<f32> = noise(32_000, 0.1, 5)
            .iter()
            .zip(voice(32_000, sr, 6))
            .map(|(a, b)| a + b)
            .collect();
        let y = telephone(&x, sr).unwrap();
        assert_eq!(y.len(), x.len());
        let spec = power_spectrum(&y, sr);
        let total: f64 = spec.iter().map(|p| p.1).sum();
        let outside: f64 = spec
            .iter()
            .filter(|(f, _)| *f < 250.0 || *f > 3600.0)
            .map(|p| p.1)
            .sum();
        assert!(
            outside / total < 0.01,
            "{:.4} of the energy outside 250-3600 hz",
            outside / total
        );
        let in_spec = power_spectrum(&x, sr);
        let in_band = |s: &[(f64, f64)]| -> f64 {
            s.iter()
                .filter(|(f, _)| (300.0..=3400.0).contains(f))
                .map(|p| p.1)
                .sum()
        };
        // The band itself passes: in-band energy kept within 1 db.
        let ratio_db = 10.0 * (in_band(&spec) / in_band(&in_spec)).log10();
        assert!(ratio_db.abs() < 1.0, "{ratio_db}");
        // A 1 kHz tone passes at its level, 100 Hz and 5 kHz tones are removed.
        let tone = |f: f64| -> Vec<f32> {
            (0..16_000)
                .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(sr)).sin()) as f32)
                .collect()
        };
        let rms = |v: &[f32]| (v.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        let mid = telephone(&tone(1000.0), sr).unwrap();
        assert!((20.0 * (rms(&mid) / rms(&tone(1000.0))).log10()).abs() < 0.5);
        for f in [100.0, 5000.0] {
            let out = telephone(&tone(f), sr).unwrap();
            assert!(rms(&out) < 0.01 * rms(&tone(f)), "{f} hz: {}", rms(&out));
        }
        // Also at 44.1 kHz and at 8 kHz itself; below 8 kHz is refused.
        assert_eq!(telephone(&x[..8000], 44_100).unwrap().len(), 8000);
        assert_eq!(telephone(&x[..8000], 8000).unwrap().len(), 8000);
        assert!(matches!(telephone(&x, 6000), Err(Error::Config { .. })));
    }

    #[test]
    fn hearing_aid_compresses_a_loud_soft_tone() {
        let sr = 16_000u32;
        let seg = sr as usize / 2;
        // 1 kHz tone alternating 0.5 (-6 dB) and 0.02 (-34 dB) every 500 ms: 28 dB apart.
        let amps = [0.5, 0.02, 0.5, 0.02];
        let x: Vec<f32> = (0..4 * seg)
            .map(|i| (amps[i / seg] * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(sr)).sin()) as f32)
            .collect();
        let rms = |v: &[f32], s: usize| {
            // The last 150 ms of segment s (after the release has settled).
            let w = &v[s * seg + seg * 7 / 10..(s + 1) * seg];
            (w.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>() / w.len() as f64).sqrt()
        };
        let range_db = |v: &[f32]| 20.0 * (rms(v, 2) / rms(v, 3)).log10();
        let params = HearingAidParams::default();
        let y = hearing_aid(&x, sr, &params).unwrap();
        assert_eq!(y.len(), x.len());
        let ratio = f64::from(params.bands[1].ratio); // 1 kHz lies in the 500-1500 Hz band
        let (din, dout) = (range_db(&x), range_db(&y));
        assert!((din - 27.96).abs() < 0.05, "{din}");
        assert!(
            (dout - din / ratio).abs() < 0.5,
            "{din} db in, {dout} db out, ratio {ratio}"
        );
        // Another ratio, another range: the settled level difference is divided by the ratio.
        let mut four = params.clone();
        four.bands[1].ratio = 4.0;
        let dout = range_db(&hearing_aid(&x, sr, &four).unwrap());
        assert!((dout - din / 4.0).abs() < 0.5, "{din} db in, {dout} db out, ratio 4");

        // Ratio 1 everywhere: the band split is transparent.
        let mut flat = params.clone();
        flat.bands.iter_mut().for_each(|b| b.ratio = 1.0);
        let v = voice(16_000, sr, 9);
        let same = hearing_aid(&v, sr, &flat).unwrap();
        assert!(v.iter().zip(&same).all(|(a, b)| (a - b).abs() < 1e-5));
        // Below threshold nothing changes.
        let quiet: Vec<f32> = v.iter().map(|s| s * 1e-3).collect();
        let out = hearing_aid(&quiet, sr, &params).unwrap();
        assert!(quiet.iter().zip(&out).all(|(a, b)| (a - b).abs() < 1e-7));
        // Bad settings are refused.
        let mut bad = params.clone();
        bad.bands[0].ratio = 0.5;
        assert!(matches!(
            hearing_aid(&v, sr, &bad),
            Err(Error::Config { field: "ratio", .. })
        ));
        bad = params.clone();
        bad.crossovers_hz = vec![1500.0, 500.0, 4000.0];
        assert!(matches!(hearing_aid(&v, sr, &bad), Err(Error::Config { .. })));
        bad = params;
        bad.bands.pop();
        assert!(matches!(hearing_aid(&v, sr, &bad), Err(Error::Config { .. })));
    }

    /// RT60 of an impulse response from its Schroeder decay: the backward-integrated energy in
    /// dB, a least-squares line between -5 and -35 dB (T30), extrapolated to -60 dB.
    fn schroeder_rt60(h: &[f32], sr: u32) -> f64 {
        let mut edc = vec![0.0f64; h.len()];
        let mut acc = 0.0;
        for i in (0..h.len()).rev() {
            acc += f64::from(h[i]).powi(2);
            edc[i] = acc;
        }
        let pts: Vec<(f64, f64)> = edc
            .iter()
            .enumerate()
            .map(|(i, e)| (i as f64 / f64::from(sr), 10.0 * (e / edc[0]).log10()))
            .filter(|(_, db)| (-35.0..=-5.0).contains(db))
            .collect();
        let n = pts.len() as f64;
        let (mt, md) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let slope = pts.iter().map(|p| (p.0 - mt) * (p.1 - md)).sum::<f64>()
            / pts.iter().map(|p| (p.0 - mt).powi(2)).sum::<f64>();
        -60.0 / slope
    }

    #[test]
    fn reverb_decay_gives_the_rt60() {
        for (k, &rt60) in [0.2f32, 0.5, 1.0, 2.0].iter().enumerate() {
            for sr in [16_000u32, 44_100] {
                let h = room_impulse_response(sr, rt60, k as u64).unwrap();
                assert_eq!(h[0], 1.0);
                let got = schroeder_rt60(&h, sr);
                assert!(
                    (got / f64::from(rt60) - 1.0).abs() < 0.1,
                    "rt60 {rt60} s at {sr} hz: measured {got}"
                );
                // Direct-to-reverberant ratio 0 dB.
                let tail: f64 = h[1..].iter().map(|&v| f64::from(v).powi(2)).sum();
                assert!((tail - 1.0).abs() < 1e-4);
            }
        }
        let x = voice(24_000, 16_000, 2);
        let y = reverb(&x, 16_000, 0.6, 3).unwrap();
        assert_eq!(y.len(), x.len());
        assert!(y.iter().all(|v| v.abs() <= 0.99));
        assert!(snr_db(&x, &y) < 10.0, "the room changes the signal");
        // A loud input is brought under the clipping level.
        let loud: Vec<f32> = x.iter().map(|v| v * 4.0).collect();
        assert!(reverb(&loud, 16_000, 0.6, 3).unwrap().iter().all(|v| v.abs() <= 0.99));
        assert!(matches!(
            reverb(&x, 16_000, 0.0, 3),
            Err(Error::Config { field: "rt60_s", .. })
        ));
        assert!(matches!(reverb(&x, 16_000, f32::NAN, 3), Err(Error::Config { .. })));
    }

    #[test]
    fn transforms_are_deterministic_given_the_seed() {
        let sr = 16_000;
        let x = voice(12_000, sr, 4);
        let others = [voice(5_000, sr, 5), voice(7_000, sr, 6)];
        let pool: Vec<&[f32]> = others.iter().map(Vec::as_slice).collect();
        let conditions = [
            "clean",
            "white:10",
            "babble:5",
            "telephone",
            "hearing-aid",
            "reverb:0.4",
        ];
        for name in conditions {
            let c: Condition = name.parse().unwrap();
            let a = c.apply(&x, sr, 11, &pool).unwrap();
            let b = c.apply(&x, sr, 11, &pool).unwrap();
            assert_eq!(a, b, "{name}");
            assert_eq!(a.len(), x.len(), "{name}");
            if matches!(
                c,
                Condition::White { .. } | Condition::Babble { .. } | Condition::Reverb { .. }
            ) {
                assert_ne!(a, c.apply(&x, sr, 12, &pool).unwrap(), "{name}: the seed matters");
            }
        }
        assert_ne!(derive_seed(1, &[2, 3]), derive_seed(1, &[3, 2]));
        assert_eq!(derive_seed(1, &[2, 3]), derive_seed(1, &[2, 3]));
    }

    #[test]
    fn conditions_parse_and_print() {
        let cases = [
            ("clean", Condition::Clean),
            ("white:10", Condition::White { snr_db: 10.0 }),
            ("babble:-2.5", Condition::Babble { snr_db: -2.5 }),
            ("telephone", Condition::Telephone),
            ("hearing-aid", Condition::HearingAid(HearingAidParams::default())),
            ("reverb:0.8", Condition::Reverb { rt60_s: 0.8 }),
        ];
        for (s, c) in cases {
            assert_eq!(s.parse::<Condition>().unwrap(), c);
            assert_eq!(c.to_string(), s);
        }
        assert_eq!("white:10.0".parse::<Condition>().unwrap().to_string(), "white:10");
        let msg = |s: &str| s.parse::<Condition>().unwrap_err().to_string();
        let unknown = msg("pink:10");
        assert!(
            unknown.contains("`pink:10`") && unknown.contains("unknown condition `pink`"),
            "{unknown}"
        );
        assert!(
            unknown.contains("white:SNR_DB") && unknown.contains("hearing-aid"),
            "{unknown}"
        );
        assert!(msg("white").contains("needs an snr"));
        assert!(msg("white:loud").contains("not a number"));
        assert!(msg("white:500").contains("snr"));
        assert!(msg("telephone:8").contains("takes no parameter"));
        assert!(msg("reverb:0").contains("rt60"));
        for s in ["pink:10", "white", "reverb:-1", "clean:1"] {
            assert!(matches!(
                s.parse::<Condition>(),
                Err(Error::Config { field: "condition", .. })
            ));
        }
        // Bad waveforms are errors, not panics.
        let c = Condition::White { snr_db: 10.0 };
        assert!(c.apply(&[], 16_000, 0, &[]).is_err());
        assert!(c.apply(&[0.0; 100], 16_000, 0, &[]).is_err());
        assert!(c.apply(&[f32::NAN; 100], 16_000, 0, &[]).is_err());
        assert!(c.apply(&[0.1; 100], 0, 0, &[]).is_err());
    }
}
