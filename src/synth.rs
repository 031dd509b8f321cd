//! The built-in synthetic emotional-speech corpus: deterministic source-filter speech-like
//! signals whose classes differ in prosody and voice quality, plus a "planted cue" mode.
//!
//! Every utterance is made from a glottal source (a Rosenberg pulse train whose F0 follows a few
//! syllable-like arcs, with jitter and shimmer), switched on and off by a syllable envelope, mixed
//! with aspiration noise, passed through four slowly moving formant resonators and a spectral
//! tilt filter, and scaled to a class-dependent level (active-speech RMS a nominal 16 dB below
//! the class's nominal peak level, with the true peak capped just below full scale). All randomness comes from a
//! splitmix64 generator seeded from [`SynthConfig::seed`], so the same configuration gives
//! bit-identical audio.
//!
//! In planted mode ([`SynthConfig::planted_band_hz`] set) every class uses the neutral recipe
//! at one common level ([`PLANTED_LEVEL_DB`]), and only the class [`SynthConfig::planted_class`] gets extra band-limited noise
//! inside the band, so that band is the only cue separating it from the others.

use std::f64::consts::PI;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use crate::error::{Error, Result};

/// Nominal peak level in dBFS of every voice in planted mode (before the cue is added; the
/// active-speech RMS sits 16 dB below it), low enough that a +10 dB cue in a band holding most
/// of the voice's energy rarely needs limiting.
pub const PLANTED_LEVEL_DB: f64 = -12.0;

/// Settings for the built-in synthetic corpus.
///
/// Class names select a recipe: `neutral`, `calm`, `happy`, `angry`, `sad`, `fear`/`fearful`,
/// `disgust`, `surprise`/`surprised` have recipes following the emotion literature; any other
/// name gets a neutral-like recipe perturbed deterministically from the name.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    /// Class labels, 2 to 16 distinct names of letters, digits, `_` or `-`.
    pub classes: Vec<String>,
    /// Utterances per class (at least 1).
    pub n_per_class: usize,
    /// Number of speakers (1 to 64); even speakers are male-like, odd ones female-like.
    pub n_speakers: usize,
    /// Length of every utterance in seconds (0.25 to 30).
    pub duration_s: f32,
    /// Sample rate in Hz (8000 to 48000).
    pub sample_rate_hz: u32,
    /// Seed from which every random choice derives.
    pub seed: u64,
    /// When set, the `(lo, hi)` band in Hz that carries the planted cue (see the module docs).
    pub planted_band_hz: Option<(f32, f32)>,
    /// Index into `classes` of the class that carries the planted cue.
    pub planted_class: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            classes: ["neutral", "happy", "angry", "sad"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            n_per_class: 24,
            n_speakers: 4,
            duration_s: 1.5,
            sample_rate_hz: 16000,
            seed: 0,
            planted_band_hz: None,
            planted_class: 0,
        }
    }
}

impl SynthConfig {
    /// Checks every field; returns [`Error::Config`] naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let n = self.classes.len();
        if !(2..=16).contains(&n) {
            return Err(Error::config("classes", format!("need 2 to 16 classes, got {n}")));
        }
        for (i, c) in self.classes.iter().enumerate() {
            if c.is_empty() || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
                return Err(Error::config(
                    "classes",
                    format!("class name {c:?} must be non-empty ASCII letters, digits, '_' or '-'"),
                ));
            }
            if self.classes[..i].contains(c) {
                return Err(Error::config("classes", format!("class name {c:?} appears twice")));
            }
        }
        if self.n_per_class == 0 {
            return Err(Error::config("n_per_class", "must be at least 1"));
        }
        if !(1..=64).contains(&self.n_speakers) {
            return Err(Error::config(
                "n_speakers",
                format!("must be 1 to 64, got {}", self.n_speakers),
            ));
        }
        if !(self.duration_s.is_finite() && (0.25..=30.0).contains(&self.duration_s)) {
            return Err(Error::config(
                "duration_s",
                format!("must be 0.25 to 30 s, got {}", self.duration_s),
            ));
        }
        if !(8000..=48000).contains(&self.sample_rate_hz) {
            return Err(Error::config(
                "sample_rate_hz",
                format!("must be 8000 to 48000 Hz, got {}", self.sample_rate_hz),
            ));
        }
        if let Some((lo, hi)) = self.planted_band_hz {
            let nyquist_hz = self.sample_rate_hz as f32 / 2.0;
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo < hi && hi <= nyquist_hz) {
                return Err(Error::config(
                    "planted_band_hz",
                    format!("need 0 < lo < hi <= {nyquist_hz} Hz, got ({lo}, {hi})"),
                ));
            }
            if hi - lo < 10.0 {
                return Err(Error::config(
                    "planted_band_hz",
                    format!("band must be at least 10 Hz wide, got {} Hz", hi - lo),
                ));
            }
        }
        if self.planted_class >= n {
            return Err(Error::config(
                "planted_class",
                format!("index {} out of range for {n} classes", self.planted_class),
            ));
        }
        Ok(())
    }

    /// Samples per utterance: `round(duration_s * sample_rate_hz)`.
    pub fn n_samples(&self) -> usize {
        (self.duration_s as f64 * self.sample_rate_hz as f64).round() as usize
    }
}

/// One synthetic utterance.
#[derive(Clone, Debug)]
pub struct SynthUtterance {
    /// Unique id `<label>_s<speaker>_<index>`, e.g. `angry_s2_007`.
    pub id: String,
    /// The class label.
    pub label: String,
    /// The speaker, e.g. `s2`.
    pub speaker: String,
    /// Mono samples `[S]`, `S = round(duration_s * sample_rate_hz)`, peak <= 1.
    pub samples: Vec<f32>,
}

/// Generates the corpus in memory, class-major order, deterministic in `cfg.seed`.
pub fn synthesize(cfg: &SynthConfig) -> Result<Vec<SynthUtterance>> {
    cfg.validate()?;
    let fs_hz = cfg.sample_rate_hz as f64;
    let n_samples = cfg.n_samples();
    let speakers: Vec<Speaker> = (0..cfg.n_speakers).map(|k| Speaker::new(cfg.seed, k)).collect();
    // Planted mode: one recipe for all classes, at a level that leaves headroom for the cue.
    let planted_recipe = Recipe {
        level_db: PLANTED_LEVEL_DB,
        ..Recipe::NEUTRAL
    };
    let mut planner = FftPlanner::<f64>::new();
    let mut out = Vec::with_capacity(cfg.classes.len() * cfg.n_per_class);
    for (ci, label) in cfg.classes.iter().enumerate() {
        let recipe = if cfg.planted_band_hz.is_some() {
            planted_recipe
        } else {
            Recipe::for_class(label)
        };
        for i in 0..cfg.n_per_class {
            let k = i % cfg.n_speakers;
            let utt_seed = mix3(cfg.seed, 0x5EED_0001 + ci as u64, i as u64);
            let voice = synth_voice(&recipe, &speakers[k], fs_hz, n_samples, utt_seed);
            let mut x = voice.samples;
            if let (Some((lo, hi)), true) = (cfg.planted_band_hz, ci == cfg.planted_class) {
                let band = (lo as f64, hi as f64);
                plant_band(&mut x, &voice.envelope, band, fs_hz, utt_seed, &mut planner);
            }
            // A faint dither floor (about -74 dBFS), identical in distribution for all classes.
            let mut rng = SplitMix64::new(mix3(utt_seed, 0xD17E, 0));
            let samples = x
                .iter()
                .map(|&v| ((v + 2e-4 * rng.normal()) as f32).clamp(-1.0, 1.0))
                .collect();
            out.push(SynthUtterance {
                id: format!("{label}_s{k}_{i:03}"),
                label: label.clone(),
                speaker: format!("s{k}"),
                samples,
            });
        }
    }
    Ok(out)
}

/// Writes every utterance as 16-bit WAV into `dir/<label>/<id>.wav` and a manifest
/// `dir/manifest.csv` with header `path,label,speaker` (paths relative to the manifest's
/// folder), returns the manifest path. Creates `dir` if missing.
///
/// Every file is written to `<name>.tmp` in the same folder and then renamed, so a reader
/// never sees a half-written file.
pub fn write_corpus(cfg: &SynthConfig, dir: &Path) -> Result<PathBuf> {
    let utts = synthesize(cfg)?;
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut manifest = String::from("path,label,speaker\n");
    for u in &utts {
        let class_dir = dir.join(&u.label);
        fs::create_dir_all(&class_dir).map_err(|e| Error::io(&class_dir, e))?;
        let name = format!("{}.wav", u.id);
        write_wav_atomic(&class_dir.join(&name), &u.samples, cfg.sample_rate_hz)?;
        manifest.push_str(&format!("{}/{},{},{}\n", u.label, name, u.label, u.speaker));
    }
    let manifest_path = dir.join("manifest.csv");
    let tmp = dir.join("manifest.csv.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(manifest.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    Ok(manifest_path)
}

/// Writes `samples` as a 16-bit mono WAV to `path` via `path.tmp` and a rename.
fn write_wav_atomic(path: &Path, samples: &[f32], sample_rate_hz: u32) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: sample_rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let to_io = |e: hound::Error| match e {
        hound::Error::IoError(io) => io,
        other => std::io::Error::other(other.to_string()),
    };
    let write = || -> std::result::Result<(), hound::Error> {
        let mut w = hound::WavWriter::create(&tmp, spec)?;
        for &s in samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
        }
        w.finalize()
    };
    write().map_err(|e| Error::io(&tmp, to_io(e)))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

// ---------------------------------------------------------------------------------------------
// Random numbers.

/// The splitmix64 generator: tiny, fast and good enough for signal synthesis.
#[derive(Clone, Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
}

/// Hashes three words into one seed.
fn mix3(a: u64, b: u64, c: u64) -> u64 {
    let x = SplitMix64::new(a).next_u64() ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let y = SplitMix64::new(x).next_u64() ^ c.wrapping_mul(0xA076_1D64_78BD_642F);
    SplitMix64::new(y).next_u64()
}

// ---------------------------------------------------------------------------------------------
// Speakers and class recipes.

/// A speaker: base F0 and a formant scaling (vocal-tract length).
#[derive(Clone, Copy, Debug)]
struct Speaker {
    f0_hz: f64,
    formant_scale: f64,
}

impl Speaker {
    fn new(seed: u64, k: usize) -> Self {
        let mut rng = SplitMix64::new(mix3(seed, 0x5EA4_E400, k as u64));
        if k.is_multiple_of(2) {
            Speaker {
                f0_hz: rng.range(100.0, 128.0),
                formant_scale: rng.range(0.96, 1.04),
            }
        } else {
            Speaker {
                f0_hz: rng.range(185.0, 230.0),
                formant_scale: rng.range(1.10, 1.18),
            }
        }
    }
}

/// Prosody and voice-quality settings of one class.
#[derive(Clone, Copy, Debug)]
struct Recipe {
    /// Multiplier on the speaker's base F0.
    f0_scale: f64,
    /// Peak pitch excursion of a syllable arc, in semitones.
    range_st: f64,
    /// Syllables per second.
    rate_hz: f64,
    /// Nominal peak level in dBFS: the active-speech RMS is set `NOMINAL_CREST_DB` below it.
    level_db: f64,
    /// Rosenberg opening phase, fraction of the period.
    open_frac: f64,
    /// Rosenberg closing phase, fraction of the period (short = pressed, bright).
    close_frac: f64,
    /// Relative std of the period (jitter).
    jitter: f64,
    /// Relative std of the pulse amplitude (shimmer).
    shimmer: f64,
    /// Aspiration noise relative to the voiced source RMS.
    breath: f64,
    /// Pre-emphasis coefficient (flatter tilt).
    emphasis: f64,
    /// One-pole low-pass coefficient (steeper tilt).
    lowpass: f64,
    /// Formant bandwidth multiplier.
    bandwidth_scale: f64,
}

impl Recipe {
    const NEUTRAL: Recipe = Recipe {
        f0_scale: 1.0,
        range_st: 2.5,
        rate_hz: 4.0,
        level_db: -6.0,
        open_frac: 0.40,
        close_frac: 0.10,
        jitter: 0.006,
        shimmer: 0.03,
        breath: 0.05,
        emphasis: 0.0,
        lowpass: 0.05,
        bandwidth_scale: 1.0,
    };

    fn for_class(name: &str) -> Recipe {
        let n = Recipe::NEUTRAL;
        match name.to_ascii_lowercase().as_str() {
            "neutral" => n,
            "calm" => Recipe {
                range_st: 1.8,
                rate_hz: 3.4,
                level_db: -9.0,
                lowpass: 0.45,
                ..n
            },
            "happy" => Recipe {
                f0_scale: 1.25,
                range_st: 5.0,
                rate_hz: 4.8,
                level_db: -4.0,
                close_frac: 0.08,
                jitter: 0.007,
                shimmer: 0.035,
                emphasis: 0.2,
                lowpass: 0.0,
                ..n
            },
            "angry" => Recipe {
                f0_scale: 1.12,
                range_st: 4.0,
                rate_hz: 5.2,
                level_db: -1.0,
                open_frac: 0.35,
                close_frac: 0.04,
                jitter: 0.018,
                shimmer: 0.06,
                breath: 0.03,
                emphasis: 0.5,
                lowpass: 0.0,
                bandwidth_scale: 0.85,
            },
            "sad" => Recipe {
                f0_scale: 0.85,
                range_st: 1.2,
                rate_hz: 3.0,
                level_db: -13.0,
                open_frac: 0.50,
                close_frac: 0.28,
                jitter: 0.008,
                shimmer: 0.04,
                breath: 0.20,
                emphasis: 0.0,
                lowpass: 0.75,
                bandwidth_scale: 1.4,
            },
            "fear" | "fearful" => Recipe {
                f0_scale: 1.30,
                range_st: 3.0,
                rate_hz: 5.0,
                level_db: -7.0,
                jitter: 0.02,
                shimmer: 0.05,
                breath: 0.15,
                emphasis: 0.1,
                lowpass: 0.25,
                ..n
            },
            "disgust" => Recipe {
                f0_scale: 0.95,
                range_st: 3.0,
                rate_hz: 3.3,
                level_db: -6.0,
                close_frac: 0.07,
                emphasis: 0.25,
                lowpass: 0.2,
                ..n
            },
            "surprise" | "surprised" => Recipe {
                f0_scale: 1.30,
                range_st: 7.0,
                rate_hz: 4.5,
                level_db: -3.0,
                close_frac: 0.08,
                emphasis: 0.2,
                lowpass: 0.1,
                ..n
            },
            other => {
                // A deterministic perturbation of neutral derived from the name (FNV-1a).
                let h = other.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
                });
                let mut rng = SplitMix64::new(h);
                Recipe {
                    f0_scale: 2f64.powf(rng.range(-3.0, 4.0) / 12.0),
                    range_st: rng.range(1.5, 6.0),
                    rate_hz: rng.range(3.0, 5.5),
                    level_db: rng.range(-12.0, -2.0),
                    close_frac: rng.range(0.07, 0.25),
                    breath: rng.range(0.03, 0.15),
                    emphasis: rng.range(0.0, 0.4),
                    lowpass: rng.range(0.0, 0.6),
                    ..n
                }
            }
        }
    }

    /// The recipe with seeded per-utterance variation, so that classes overlap a little.
    fn vary(&self, rng: &mut SplitMix64) -> Recipe {
        Recipe {
            f0_scale: self.f0_scale * 2f64.powf(rng.normal() * 0.8 / 12.0),
            range_st: self.range_st * rng.range(0.75, 1.25),
            rate_hz: self.rate_hz * rng.range(0.85, 1.15),
            level_db: (self.level_db + rng.normal()).min(-0.5),
            open_frac: self.open_frac * rng.range(0.9, 1.1),
            close_frac: self.close_frac * rng.range(0.85, 1.15),
            jitter: self.jitter * rng.range(0.7, 1.3),
            shimmer: self.shimmer * rng.range(0.7, 1.3),
            breath: self.breath * rng.range(0.7, 1.4),
            emphasis: (self.emphasis + rng.range(-0.1, 0.1)).clamp(0.0, 0.9),
            lowpass: (self.lowpass + rng.range(-0.08, 0.08)).clamp(0.0, 0.95),
            bandwidth_scale: self.bandwidth_scale * rng.range(0.9, 1.1),
        }
    }
}

/// Formant frequencies F1..F4 (Hz, adult male) of a few vowels.
const VOWELS_HZ: [[f64; 4]; 5] = [
    [730.0, 1090.0, 2440.0, 3400.0], // a
    [270.0, 2290.0, 3010.0, 3700.0], // i
    [300.0, 870.0, 2240.0, 3400.0],  // u
    [530.0, 1840.0, 2480.0, 3500.0], // e
    [570.0, 840.0, 2410.0, 3400.0],  // o
];

/// Crest factor (peak over active-speech RMS, dB) assumed when setting a voice's level.
const NOMINAL_CREST_DB: f64 = 16.0;

/// Largest peak of a synthesised voice (about -0.1 dBFS).
const MAX_PEAK: f64 = 0.99;

/// Gain of the source path that bypasses the formant cascade.
const BYPASS_GAIN: f64 = 0.3;

/// Formant bandwidths B1..B4 in Hz before the recipe's scaling.
const BANDWIDTHS_HZ: [f64; 4] = [70.0, 95.0, 130.0, 190.0];

// ---------------------------------------------------------------------------------------------
// The source-filter voice.

/// One syllable: time span, vowel glide and F0 arc.
struct Syllable {
    start_s: f64,
    end_s: f64,
    vowels: (usize, usize),
    /// 0 rise-fall, 1 rise, 2 fall.
    arc: u8,
    accent_st: f64,
}

/// A synthesised voice and its amplitude envelope (0..1), both `[S]`.
struct Voice {
    samples: Vec<f64>,
    envelope: Vec<f64>,
}

/// Lays out syllables with short pauses over `duration_s`.
fn layout(r: &Recipe, duration_s: f64, rng: &mut SplitMix64) -> Vec<Syllable> {
    let margin_s = (0.05 * duration_s).min(0.08);
    let end_s = duration_s - margin_s;
    let mut t = rng.range(0.3, 1.0) * margin_s;
    let mut out = Vec::new();
    let mut vowel = (rng.uniform() * VOWELS_HZ.len() as f64) as usize % VOWELS_HZ.len();
    loop {
        let syl_s = rng.range(0.6, 0.95) / r.rate_hz;
        let end = (t + syl_s).min(end_s);
        let next = (vowel + 1 + (rng.uniform() * 4.0) as usize) % VOWELS_HZ.len();
        let arc = (rng.uniform() * 3.0) as u8;
        let accent_st = r.range_st * rng.range(0.5, 1.0);
        out.push(Syllable {
            start_s: t,
            end_s: end,
            vowels: (vowel, next),
            arc,
            accent_st,
        });
        vowel = next;
        t = end + rng.range(0.08, 0.35) / r.rate_hz;
        if end_s - t < 0.08 {
            break;
        }
    }
    out
}

/// Smooth 0..1 step.
fn smoothstep(u: f64) -> f64 {
    let u = u.clamp(0.0, 1.0);
    u * u * (3.0 - 2.0 * u)
}

/// Synthesises one utterance's voice, normalised to the (varied) recipe level.
fn synth_voice(base: &Recipe, spk: &Speaker, fs_hz: f64, n: usize, seed: u64) -> Voice {
    let mut rng = SplitMix64::new(seed);
    let r = base.vary(&mut rng);
    let duration_s = n as f64 / fs_hz;
    let syllables = layout(&r, duration_s, &mut rng);
    let formant_jitter: [f64; 4] = std::array::from_fn(|_| rng.range(0.95, 1.05));
    let f0_base_hz = spk.f0_hz * r.f0_scale;
    let declination_st = 0.4 * r.range_st + 0.5;

    // Per-sample envelope, F0 and formant tracks.
    let mut envelope = vec![0.0; n];
    let mut f0_hz = vec![f0_base_hz; n];
    let mut formants_hz = vec![[0.0; 4]; n];
    let mut seg = 0;
    for i in 0..n {
        let t = i as f64 / fs_hz;
        while seg + 1 < syllables.len() && t >= syllables[seg + 1].start_s {
            seg += 1;
        }
        let s = &syllables[seg];
        let len_s = (s.end_s - s.start_s).max(1e-3);
        let u = ((t - s.start_s) / len_s).clamp(0.0, 1.0);
        let ramp_s = (0.025f64).min(0.25 * len_s);
        envelope[i] = if t < s.start_s || t > s.end_s {
            0.0
        } else {
            let a = ((t - s.start_s) / ramp_s).min(1.0);
            let b = ((s.end_s - t) / ramp_s).min(1.0);
            0.5 - 0.5 * (PI * a.min(b)).cos()
        };
        let shape = match s.arc {
            0 => (PI * u).sin(),
            1 => u,
            _ => 1.0 - u,
        };
        let st = s.accent_st * shape - declination_st * t / duration_s;
        f0_hz[i] = f0_base_hz * 2f64.powf(st / 12.0);
        let w = smoothstep(u);
        let (va, vb) = (VOWELS_HZ[s.vowels.0], VOWELS_HZ[s.vowels.1]);
        for k in 0..4 {
            let f = (va[k] * (1.0 - w) + vb[k] * w) * spk.formant_scale * formant_jitter[k];
            formants_hz[i][k] = f.min(0.45 * fs_hz);
        }
    }

    // Glottal source: Rosenberg flow, differentiated (lip radiation), with jitter and shimmer.
    let tp = r.open_frac.clamp(0.2, 0.6);
    let tn = r.close_frac.clamp(0.03, 0.9 - tp);
    let flow = |ph: f64| {
        if ph < tp {
            0.5 - 0.5 * (PI * ph / tp).cos()
        } else if ph < tp + tn {
            (0.5 * PI * (ph - tp) / tn).cos()
        } else {
            0.0
        }
    };
    let mut source = vec![0.0; n];
    let mut flows = vec![0.0; n];
    let mut phase = 0.0;
    let mut period = fs_hz / f0_hz[0];
    let mut amp = 1.0;
    let mut prev = 0.0;
    for i in 0..n {
        let g = flow(phase);
        source[i] = amp * (g - prev) * envelope[i];
        flows[i] = g;
        prev = g;
        phase += 1.0 / period;
        if phase >= 1.0 {
            phase -= 1.0;
            period = (fs_hz / f0_hz[i] * (1.0 + r.jitter * rng.normal())).max(2.0);
            amp = (1.0 + r.shimmer * rng.normal()).max(0.2);
        }
    }
    let (sum_sq, count) = source
        .iter()
        .zip(&envelope)
        .filter(|(_, e)| **e > 0.5)
        .fold((0.0, 0usize), |(s, c), (x, _)| (s + x * x, c + 1));
    let voiced_rms = (sum_sq / count.max(1) as f64).sqrt().max(1e-12);
    // Aspiration noise, pitch-synchronously modulated by the glottal flow.
    let mut noise_rng = SplitMix64::new(mix3(seed, 0xB4EA_7400, 0));
    for i in 0..n {
        let noise = r.breath * voiced_rms * noise_rng.normal() * (0.4 + 0.6 * flows[i]);
        source[i] += noise * envelope[i];
    }

    // Cascade of 2-pole formant resonators with unity DC gain, then spectral tilt.
    let bandwidths_hz = BANDWIDTHS_HZ.map(|b| b * r.bandwidth_scale);
    let mut state = [[0.0f64; 2]; 4];
    let mut x = source;
    let (mut x_prev, mut lp) = (0.0, 0.0);
    for i in 0..n {
        let direct = x[i];
        let mut v = direct;
        for k in 0..4 {
            let rad = (-PI * bandwidths_hz[k] / fs_hz).exp();
            let c = 2.0 * rad * (2.0 * PI * formants_hz[i][k] / fs_hz).cos();
            let gain = 1.0 - c + rad * rad;
            let y = gain * v + c * state[k][0] - rad * rad * state[k][1];
            state[k][1] = state[k][0];
            state[k][0] = y;
            v = y;
        }
        // A small bypass of the source (as in Klatt's synthesiser) keeps energy above F4.
        v += BYPASS_GAIN * direct;
        let emph = v - r.emphasis * x_prev;
        x_prev = v;
        lp = (1.0 - r.lowpass) * emph + r.lowpass * lp;
        x[i] = lp;
    }
    // Level: the active-speech RMS goes to `level_db - NOMINAL_CREST_DB`, so that a voice with
    // a typical crest factor peaks at `level_db`; the peak is capped at `MAX_PEAK`.
    let (sum_sq, count) = x
        .iter()
        .zip(&envelope)
        .filter(|(_, e)| **e > 0.5)
        .fold((0.0, 0usize), |(s, c), (v, _)| (s + v * v, c + 1));
    let active_rms = (sum_sq / count.max(1) as f64).sqrt();
    let peak = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = if active_rms > 0.0 && peak > 0.0 {
        (10f64.powf((r.level_db - NOMINAL_CREST_DB) / 20.0) / active_rms).min(MAX_PEAK / peak)
    } else {
        0.0
    };
    x.iter_mut().for_each(|v| *v *= scale);
    Voice { samples: x, envelope }
}

// ---------------------------------------------------------------------------------------------
// The planted cue.

/// Adds envelope-modulated noise strictly inside `band_hz` to `x`: its energy is 9 times the
/// voice's energy in that band (+10 dB in-band), at least 1% of the voice's total energy, and
/// its gain is reduced if needed so that the peak stays <= 0.999.
fn plant_band(
    x: &mut [f64],
    envelope: &[f64],
    band_hz: (f64, f64),
    fs_hz: f64,
    seed: u64,
    planner: &mut FftPlanner<f64>,
) {
    let n = x.len();
    let fft = planner.plan_fft_forward(n);
    let ifft = planner.plan_fft_inverse(n);
    let in_band = |k: usize| {
        let f = k.min(n - k) as f64 * fs_hz / n as f64;
        f >= band_hz.0 && f <= band_hz.1
    };
    let mut spec: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(v, 0.0)).collect();
    fft.process(&mut spec);
    let voice_band: f64 = (0..n).filter(|&k| in_band(k)).map(|k| spec[k].norm_sqr()).sum();
    let voice_total: f64 = spec.iter().map(|c| c.norm_sqr()).sum();

    let mut rng = SplitMix64::new(mix3(seed, 0x91A4_7ED0, 0));
    let mut noise: Vec<Complex<f64>> = envelope.iter().map(|&e| Complex::new(e * rng.normal(), 0.0)).collect();
    fft.process(&mut noise);
    for (k, c) in noise.iter_mut().enumerate() {
        if !in_band(k) {
            *c = Complex::new(0.0, 0.0);
        }
    }
    let noise_band: f64 = noise.iter().map(|c| c.norm_sqr()).sum();
    if noise_band <= 0.0 {
        return;
    }
    ifft.process(&mut noise);
    let target = (9.0 * voice_band).max(0.01 * voice_total);
    // Parseval: both sums carry the same factor n, so the ratio is the time-domain one.
    let mut gain = (target / noise_band).sqrt() / n as f64;
    let limit = 0.999;
    for (v, c) in x.iter().zip(&noise) {
        let w = c.re;
        if w > 0.0 {
            gain = gain.min(((limit - v) / w).max(0.0));
        } else if w < 0.0 {
            gain = gain.min(((-limit - v) / w).max(0.0));
        }
    }
    for (v, c) in x.iter_mut().zip(&noise) {
        *v += gain * c.re;
    }
}
