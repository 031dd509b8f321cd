//! Tests of the built-in synthetic corpus (`emolime::synth`): determinism, shapes, class
//! differences, the planted cue, corpus writing and config validation.

use emolime::Error;
use emolime::synth::{SynthConfig, SynthUtterance, synthesize, write_corpus};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

/// A small, fast configuration.
fn small() -> SynthConfig {
    SynthConfig {
        n_per_class: 3,
        duration_s: 0.5,
        ..SynthConfig::default()
    }
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Power spectrum `|X_k|^2` for `k in 0..=S/2`.
fn power_spectrum(x: &[f32], planner: &mut FftPlanner<f64>) -> Vec<f64> {
    let mut buf: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(v as f64, 0.0)).collect();
    planner.plan_fft_forward(buf.len()).process(&mut buf);
    buf[..=x.len() / 2].iter().map(|c| c.norm_sqr()).collect()
}

/// Sum of `power` over bins whose frequency satisfies `keep`.
fn band_energy(power: &[f64], n: usize, sr_hz: f64, keep: impl Fn(f64) -> bool) -> f64 {
    (0..power.len())
        .filter(|&k| keep(k as f64 * sr_hz / n as f64))
        .map(|k| power[k])
        .sum()
}

fn of_class<'a>(utts: &'a [SynthUtterance], label: &str) -> Vec<&'a SynthUtterance> {
    utts.iter().filter(|u| u.label == label).collect()
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn same_seed_gives_identical_audio_and_other_seed_differs() {
    let cfg = small();
    let a = synthesize(&cfg).unwrap();
    let b = synthesize(&cfg).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.id, y.id);
        let xb: Vec<u32> = x.samples.iter().map(|v| v.to_bits()).collect();
        let yb: Vec<u32> = y.samples.iter().map(|v| v.to_bits()).collect();
        assert_eq!(xb, yb, "{} differs between runs", x.id);
    }
    let c = synthesize(&SynthConfig { seed: 1, ..cfg }).unwrap();
    for (x, z) in a.iter().zip(&c) {
        assert_ne!(x.samples, z.samples, "{} did not change with the seed", x.id);
    }
}

#[test]
fn lengths_ids_and_order() {
    for (duration_s, sr_hz) in [(0.4f32, 22050u32), (1.5, 16000), (0.25, 8000), (0.37, 44100)] {
        let cfg = SynthConfig {
            n_per_class: 2,
            duration_s,
            sample_rate_hz: sr_hz,
            ..SynthConfig::default()
        };
        let utts = synthesize(&cfg).unwrap();
        let expected = (duration_s as f64 * sr_hz as f64).round() as usize;
        assert_eq!(cfg.n_samples(), expected);
        assert_eq!(utts.len(), 4 * 2);
        for (j, u) in utts.iter().enumerate() {
            assert_eq!(u.samples.len(), expected);
            assert_eq!(u.label, cfg.classes[j / 2], "class-major order");
        }
    }
    let utts = synthesize(&small()).unwrap();
    assert_eq!(utts[0].id, "neutral_s0_000");
    assert_eq!(utts[4].id, "happy_s1_001");
    assert_eq!(utts[4].speaker, "s1");
    let mut ids: Vec<&str> = utts.iter().map(|u| u.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), utts.len(), "ids are unique");
}

#[test]
fn peak_at_most_one_and_finite() {
    for seed in 0..3 {
        let cfg = SynthConfig {
            seed,
            n_per_class: 4,
            duration_s: 0.6,
            ..SynthConfig::default()
        };
        for u in synthesize(&cfg).unwrap() {
            assert!(u.samples.iter().all(|v| v.is_finite()), "{} has NaN/inf", u.id);
            let peak = u.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(peak <= 1.0 && peak > 0.05, "{} peak {peak}", u.id);
        }
    }
    let planted = SynthConfig {
        planted_band_hz: Some((200.0, 1200.0)),
        ..small()
    };
    for u in synthesize(&planted).unwrap() {
        assert!(u.samples.iter().all(|v| v.is_finite() && v.abs() <= 1.0), "{}", u.id);
    }
}

#[test]
fn classes_differ_in_level_and_tilt() {
    let cfg = SynthConfig {
        n_per_class: 12,
        duration_s: 1.0,
        ..SynthConfig::default()
    };
    let sr_hz = cfg.sample_rate_hz as f64;
    let utts = synthesize(&cfg).unwrap();
    let mut planner = FftPlanner::new();
    let mean_rms = |label: &str| mean(of_class(&utts, label).iter().map(|u| rms(&u.samples)));
    let mut hf_frac = |label: &str| {
        mean(of_class(&utts, label).iter().map(|u| {
            let p = power_spectrum(&u.samples, &mut planner);
            let n = u.samples.len();
            band_energy(&p, n, sr_hz, |f| f > 2000.0) / band_energy(&p, n, sr_hz, |_| true)
        }))
    };
    let (neutral, happy, angry, sad) = (
        mean_rms("neutral"),
        mean_rms("happy"),
        mean_rms("angry"),
        mean_rms("sad"),
    );
    let (hf_angry, hf_sad, hf_neutral) = (hf_frac("angry"), hf_frac("sad"), hf_frac("neutral"));
    eprintln!("mean rms: neutral {neutral:.4} happy {happy:.4} angry {angry:.4} sad {sad:.4}");
    eprintln!("energy >2 kHz: angry {hf_angry:.4} neutral {hf_neutral:.4} sad {hf_sad:.4}");
    assert!(
        sad < neutral && neutral < angry,
        "rms sad {sad} neutral {neutral} angry {angry}"
    );
    assert!(neutral < happy, "rms neutral {neutral} happy {happy}");
    assert!(hf_angry > 2.0 * hf_sad, "hf angry {hf_angry} sad {hf_sad}");
    assert!(hf_angry > hf_neutral && hf_neutral > hf_sad);
}

#[test]
fn planted_band_is_the_only_difference() {
    let (lo, hi) = (1500.0f32, 2500.0f32);
    let cfg = SynthConfig {
        n_per_class: 24,
        duration_s: 0.75,
        planted_band_hz: Some((lo, hi)),
        planted_class: 2,
        seed: 7,
        ..SynthConfig::default()
    };
    let sr_hz = cfg.sample_rate_hz as f64;
    let utts = synthesize(&cfg).unwrap();
    let mut planner = FftPlanner::new();
    let (lo, hi) = (lo as f64, hi as f64);
    let guard_hz = 100.0;
    let mut energies = |label: &str| {
        let (mut inside, mut outside) = (0.0, 0.0);
        for u in of_class(&utts, label) {
            let p = power_spectrum(&u.samples, &mut planner);
            let n = u.samples.len();
            inside += band_energy(&p, n, sr_hz, |f| f >= lo && f <= hi);
            outside += band_energy(&p, n, sr_hz, |f| f < lo - guard_hz || f > hi + guard_hz);
        }
        (inside, outside)
    };
    let (in_planted, out_planted) = energies("angry");
    for other in ["neutral", "happy", "sad"] {
        let (in_other, out_other) = energies(other);
        let in_ratio = in_planted / in_other;
        let out_db = 10.0 * (out_planted / out_other).log10();
        eprintln!(
            "planted angry vs {other}: in-band ratio {in_ratio:.2} ({:.1} dB), outside {out_db:+.2} dB",
            10.0 * in_ratio.log10()
        );
        assert!(in_ratio > 3.0, "in-band ratio vs {other}: {in_ratio}");
        assert!(out_db.abs() < 1.5, "outside-band difference vs {other}: {out_db} dB");
    }
}

#[test]
fn write_corpus_creates_files_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("corpus");
    let cfg = SynthConfig {
        classes: vec!["neutral".into(), "sad".into(), "custom-1".into()],
        n_per_class: 2,
        n_speakers: 2,
        duration_s: 0.3,
        sample_rate_hz: 8000,
        ..SynthConfig::default()
    };
    let manifest = write_corpus(&cfg, &dir).unwrap();
    assert_eq!(manifest, dir.join("manifest.csv"));
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("path,label,speaker"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 6);
    let utts = synthesize(&cfg).unwrap();
    for (row, u) in rows.iter().zip(&utts) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(
            cols,
            [format!("{}/{}.wav", u.label, u.id).as_str(), &u.label, &u.speaker]
        );
        let mut reader = hound::WavReader::open(dir.join(cols[0])).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, 8000, 16));
        let read: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(read.len(), cfg.n_samples());
        for (&r, &s) in read.iter().zip(&u.samples) {
            assert!((r as f32 / 32767.0 - s).abs() <= 1.0 / 32767.0);
        }
    }
    let leftovers = walk(&dir).into_iter().filter(|p| p.ends_with(".tmp")).count();
    assert_eq!(leftovers, 0, "no temporary files left behind");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn invalid_configs_are_config_errors() {
    let d = SynthConfig::default;
    let bad = [
        (
            "one class",
            SynthConfig {
                classes: vec!["a".into()],
                ..d()
            },
        ),
        (
            "17 classes",
            SynthConfig {
                classes: (0..17).map(|i| format!("c{i}")).collect(),
                ..d()
            },
        ),
        (
            "duplicate",
            SynthConfig {
                classes: vec!["a".into(), "a".into()],
                ..d()
            },
        ),
        (
            "slash",
            SynthConfig {
                classes: vec!["a/b".into(), "c".into()],
                ..d()
            },
        ),
        (
            "empty name",
            SynthConfig {
                classes: vec!["".into(), "c".into()],
                ..d()
            },
        ),
        ("n_per_class 0", SynthConfig { n_per_class: 0, ..d() }),
        ("n_speakers 0", SynthConfig { n_speakers: 0, ..d() }),
        ("short", SynthConfig { duration_s: 0.2, ..d() }),
        (
            "long",
            SynthConfig {
                duration_s: 31.0,
                ..d()
            },
        ),
        (
            "nan duration",
            SynthConfig {
                duration_s: f32::NAN,
                ..d()
            },
        ),
        (
            "low sr",
            SynthConfig {
                sample_rate_hz: 7999,
                ..d()
            },
        ),
        (
            "high sr",
            SynthConfig {
                sample_rate_hz: 48001,
                ..d()
            },
        ),
        (
            "band lo 0",
            SynthConfig {
                planted_band_hz: Some((0.0, 1000.0)),
                ..d()
            },
        ),
        (
            "band reversed",
            SynthConfig {
                planted_band_hz: Some((2000.0, 1000.0)),
                ..d()
            },
        ),
        (
            "band > nyquist",
            SynthConfig {
                planted_band_hz: Some((1000.0, 8001.0)),
                ..d()
            },
        ),
        (
            "band nan",
            SynthConfig {
                planted_band_hz: Some((f32::NAN, 1000.0)),
                ..d()
            },
        ),
        (
            "planted_class",
            SynthConfig {
                planted_class: 4,
                ..d()
            },
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (what, cfg) in bad {
        assert!(matches!(cfg.validate(), Err(Error::Config { .. })), "{what}: validate");
        assert!(
            matches!(synthesize(&cfg), Err(Error::Config { .. })),
            "{what}: synthesize"
        );
        let dir = tmp.path().join("never");
        assert!(
            matches!(write_corpus(&cfg, &dir), Err(Error::Config { .. })),
            "{what}: write"
        );
        assert!(!dir.exists(), "{what}: nothing written");
    }
    assert!(SynthConfig::default().validate().is_ok());
    let edge = SynthConfig {
        planted_band_hz: Some((7000.0, 8000.0)),
        ..d()
    };
    assert!(edge.validate().is_ok());
}

#[test]
fn config_round_trips_through_json() {
    let cfg = SynthConfig {
        planted_band_hz: Some((300.0, 900.0)),
        seed: 42,
        ..small()
    };
    let json = serde_json::to_string(&cfg).unwrap();
    let back: SynthConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    let partial: SynthConfig = serde_json::from_str(r#"{"seed": 3}"#).unwrap();
    assert_eq!(
        partial,
        SynthConfig {
            seed: 3,
            ..SynthConfig::default()
        }
    );
}
