//! eGeMAPS v02: agreement with openSMILE on committed fixtures, defined values on bad input,
//! corpus extraction with per-file failures.
//!
//! Fixtures (`tests/fixtures/egemaps/`): four utterances of `../shared/data/gen_emo_corpus.py`
//! (one per engine), two of them also cut short in the middle of a voiced stretch, and
//! openSMILE 3.0.1's output for them (PyPI `opensmile` 2.6.0), made with
//! `python3 scripts/egemaps_compare.py reference tests/fixtures/egemaps/manifest.csv
//! --out tests/fixtures/egemaps/opensmile_functionals.csv` (see the fixture README).

use crate::common::{Rng, fresh_seed};
use emolime::audio::decode_file;
use emolime::features::corpus::{FeatureConfig, Level, extract_corpus, write_csv};
use emolime::features::{EGEMAPS_NAMES, Egemaps, LLD_NAMES};
use emolime::input::collect_inputs;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/egemaps")
}

/// `(header, rows of (first column, values))` of a numeric CSV.
fn read_csv(path: &Path) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(str::to_string).collect();
    let rows = lines
        .map(|l| {
            let mut f = l.split(',');
            let id = f.next().unwrap().to_string();
            (id, f.map(|v| v.parse::<f64>().unwrap()).collect())
        })
        .collect();
    (header, rows)
}

/// Relative tolerance per functional. Formants (LPC of an 11 kHz frame computed in f32 by
/// openSMILE: a few frames find a formant more or less), jitter and H1-A3 agree less tightly;
/// everything else to 1e-4, the unvoiced sets and segment lengths included, also on the two
/// `cut_*` files that end in the middle of a voiced stretch (openSMILE's end-of-input rule).
fn tolerance(name: &str) -> f64 {
    if ["F1", "F2", "F3", "jitter", "H1-A3"].iter().any(|k| name.contains(k)) {
        0.08
    } else {
        1e-4
    }
}

#[test]
fn functionals_match_opensmile_on_fixtures() {
    let (header, rows) = read_csv(&fixtures().join("opensmile_functionals.csv"));
    assert_eq!(&header[1..], &EGEMAPS_NAMES[..], "openSMILE's names and order");
    let mut eg = Egemaps::new();
    for (file, want) in rows {
        let audio = decode_file(&fixtures().join(&file)).unwrap();
        let got = eg.functionals(&audio.samples, audio.sample_rate_hz).unwrap();
        for (k, name) in EGEMAPS_NAMES.iter().enumerate() {
            let rel = (got[k] - want[k]).abs() / want[k].abs().max(1e-3);
            assert!(
                rel <= tolerance(name),
                "{file}: {name}: ours {} opensmile {} (rel {rel:.2e})",
                got[k],
                want[k]
            );
        }
    }
}

#[test]
fn lld_matches_opensmile_frame_by_frame() {
    let (header, want) = read_csv(&fixtures().join("opensmile_lld_espeak_f3_angry_s02_t0.csv"));
    assert_eq!(&header[1..], &LLD_NAMES[..]);
    let audio = decode_file(&fixtures().join("espeak_f3_angry_s02_t0.wav")).unwrap();
    let got = Egemaps::new().lld(&audio.samples, audio.sample_rate_hz).unwrap();
    // openSMILE repeats its last row once (an end-of-input artefact of its smoother).
    assert_eq!(got.nrows() + 1, want.len());
    // Loudness, spectral, MFCC, F0, shimmer, HNR and H1-H2 columns frame by frame (the
    // fixture keeps 6 significant digits).
    for c in (0..11).chain([12, 13, 14]) {
        for (t, (_, row)) in want.iter().take(got.nrows()).enumerate() {
            let (g, w) = (got[[t, c]], row[c]);
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{} frame {t}: ours {g} opensmile {w}",
                LLD_NAMES[c]
            );
        }
    }
}

#[test]
fn bad_input_gives_finite_values() {
    let mut eg = Egemaps::new();
    let seed = fresh_seed("bad_input_gives_finite_values");
    let mut rng = Rng(seed);
    let sr = 16_000usize;
    let noise: Vec<f32> = (0..sr).map(|_| rng.f32() * 0.2 - 0.1).collect();
    let square: Vec<f32> = (0..sr).map(|i| if (i / 40) % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("silence", vec![0.0; sr]),
        ("5 ms click", vec![0.5; 80]),
        ("one sample", vec![0.1]),
        ("constant", vec![0.5; sr]),
        ("clipped square", square),
        ("noise", noise),
    ];
    for (what, x) in &cases {
        let v = eg.functionals(x, sr as u32).unwrap();
        assert!(v.iter().all(|v| v.is_finite()), "{what}: {v:?}");
        assert!(eg.lld(x, sr as u32).unwrap().iter().all(|v| v.is_finite()), "{what}");
    }
    let silent = eg.functionals(&cases[0].1, sr as u32).unwrap();
    let at = |name: &str| EGEMAPS_NAMES.iter().position(|n| *n == name).unwrap();
    assert_eq!(silent[at("equivalentSoundLevel_dBp")], -120.0);
    assert_eq!(silent[at("F0semitoneFrom27.5Hz_sma3nz_amean")], 0.0);
    assert!((silent[at("loudness_sma3_amean")] - 0.00103397).abs() < 1e-7);
    assert!(eg.functionals(&[0.0, f32::NAN], 16_000).is_err());
    assert!(eg.functionals(&[0.0; 100], 0).is_err());
}

#[test]
fn other_sample_rates_are_resampled_to_16k() {
    let tone = |sr: usize| -> Vec<f32> {
        (0..sr * 2)
            .map(|i| {
                let t = i as f32 / sr as f32;
                (1..6)
                    .map(|h| (std::f32::consts::TAU * 160.0 * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                    * 0.2
            })
            .collect()
    };
    let mut eg = Egemaps::new();
    let a = eg.functionals(&tone(16_000), 16_000).unwrap();
    let b = eg.functionals(&tone(44_100), 44_100).unwrap();
    // F0 mean (semitones) and loudness mean agree across rates.
    assert!((a[0] - b[0]).abs() < 0.1, "{} vs {}", a[0], b[0]);
    assert!((a[10] - b[10]).abs() / a[10] < 0.02, "{} vs {}", a[10], b[10]);
    // 160 Hz is 30.4 semitones above 27.5 Hz.
    assert!((a[0] - 30.42).abs() < 0.3, "{}", a[0]);
}

#[test]
fn corpus_rows_keep_order_and_name_failures() {
    let dir = std::env::temp_dir().join(format!("emolime-features-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["espeak_f3_angry_s02_t0.wav", "flite_slt_sad_s05_t0.wav"] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("broken.wav"), b"not audio").unwrap();
    let manifest = dir.join("m.csv");
    std::fs::write(
        &manifest,
        "path,dataset,speaker,emotion\nflite_slt_sad_s05_t0.wav,flite,slt,sad\nbroken.wav,x,y,sad\n\
         espeak_f3_angry_s02_t0.wav,espeak,f3,angry\n",
    )
    .unwrap();
    let inputs = collect_inputs(&manifest).unwrap();
    assert_eq!(inputs.items.len(), 3);
    assert_eq!(inputs.items[0].dataset.as_deref(), Some("flite"));
    for level in [Level::Functionals, Level::Lld] {
        let cfg = FeatureConfig { level, workers: 2 };
        let results = extract_corpus(&inputs.items, &cfg, |_, _| {});
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("broken.wav"), "{err}");
        let out = dir.join("f.csv");
        write_csv(&out, &inputs.items, &results, level).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let n_cols = lines[0].split(',').count();
        assert_eq!(n_cols, 4 + if level == Level::Lld { 26 } else { 88 });
        assert!(lines[1].starts_with("flite_slt_sad_s05_t0.wav,sad,slt,flite,"));
        let rows = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|a| a.nrows())
            .sum::<usize>();
        assert_eq!(lines.len(), 1 + rows);
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.split(',').count() == n_cols && !l.contains("NaN"))
        );
        // The same table as Parquet: same columns, same rows, the same f64 values.
        let pq = dir.join("f.parquet");
        let (names, hop): (&[&str], _) = match level {
            Level::Functionals => (&EGEMAPS_NAMES, None),
            Level::Lld => (&LLD_NAMES, Some(0.01)),
        };
        emolime::table::write_features_parquet(&pq, &inputs.items, &results, names, hop).unwrap();
        let file = std::fs::File::open(&pq).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let header: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(header.join(","), lines[0]);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows);
        let first = &batches[0];
        let ids = first
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(ids.value(0), "flite_slt_sad_s05_t0.wav");
        let col = |c: usize| {
            first
                .column(c)
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap()
                .clone()
        };
        let lead = 4 + usize::from(level == Level::Lld);
        let want = results[0].as_ref().unwrap();
        for f in 0..names.len() {
            assert_eq!(col(lead + f).value(0).to_bits(), want[[0, f]].to_bits(), "{}", names[f]);
        }
        if level == Level::Lld {
            assert!((col(4).value(1) - 0.01).abs() < 1e-12);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn feature_classifier_is_explained_through_waveforms() {
    use emolime::classify::{FeatureClassifier, HeadConfig, HeadKind};
    use emolime::device::ComputeDevice;
    use emolime::explain::{ExplainConfig, Explainer};
    use emolime::model::features::{EGEMAPS_SET, FeatureModel};
    use emolime::model::{AnyModel, ModelInput, SerModel};
    use emolime::sampling::{MaskConfig, SampleCount};

    let seed = fresh_seed("feature_classifier_is_explained_through_waveforms");
    // Functionals of the four whole fixtures (not the cut copies), one class each, as the
    // training set.
    let (_, rows) = read_csv(&fixtures().join("opensmile_functionals.csv"));
    let rows: Vec<_> = rows.into_iter().filter(|(file, _)| !file.starts_with("cut_")).collect();
    assert_eq!(rows.len(), 4);
    let mut eg = Egemaps::new();
    let mut x = ndarray::Array2::zeros((rows.len(), 88));
    let mut waves = Vec::new();
    for (i, (file, _)) in rows.iter().enumerate() {
        let audio = decode_file(&fixtures().join(file)).unwrap();
        x.row_mut(i)
            .assign(&ndarray::arr1(&eg.functionals(&audio.samples, 16_000).unwrap()));
        waves.push(audio.samples);
    }
    let classes: Vec<String> = ["angry", "sad", "neutral", "happy"].map(String::from).to_vec();
    let names = EGEMAPS_NAMES.iter().map(|s| s.to_string()).collect();
    let head = HeadConfig {
        kind: HeadKind::LogReg,
        seed,
        ..HeadConfig::default()
    };
    let clf = FeatureClassifier::fit(x.view(), &[0, 1, 2, 3], classes, EGEMAPS_SET, names, &head).unwrap();
    let dir = std::env::temp_dir().join(format!("emolime-fmodel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("svm.json");
    clf.save(&path).unwrap();

    let cpu = ComputeDevice::cpu("test");
    let AnyModel::Features(model) = AnyModel::load(&path, &cpu.burn).unwrap() else {
        panic!("a feature classifier file loads as a feature model");
    };
    assert_eq!(model.input(), ModelInput::Waveform { sample_rate_hz: 16_000 });
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(24),
            keep_prob: 0.5,
            seed,
        },
        batch_size: 10,
        ..ExplainConfig::default()
    };
    let mut explainer = Explainer::new(&*model, &cpu, cfg.clone()).unwrap();
    let e = explainer.explain_waveform(&waves[1]).unwrap();
    // Sample 0 is the utterance itself: the classifier's probabilities on its own features.
    let direct = model
        .classifier()
        .predict_proba(x.slice(ndarray::s![1..2, ..]))
        .unwrap();
    for (p, q) in e.probs.iter().zip(direct.iter()) {
        assert!((*p as f64 - q).abs() < 1e-3, "explainer {p} vs direct {q}");
    }
    assert!(e.fit.coefs.iter().all(|c| c.is_finite()));
    // On a GPU each batch is copied back as it is built and scored on the host while the next
    // one is built (three batches here); stage by stage (profiling) the same work is waited
    // for batch after batch. Both give the same explanation.
    if let Some(gpu) = crate::common::gpu_device() {
        let AnyModel::Features(model) = AnyModel::load(&path, &gpu.burn).unwrap() else {
            panic!("a feature classifier file loads as a feature model");
        };
        assert!(model.scores_on_host());
        let mut explainer = Explainer::new(&*model, &gpu, cfg.clone()).unwrap();
        // Only the kernels a waveform model's explanation dispatches, compiled up front.
        use emolime::gpu::kernels::KernelId;
        let kernels = &gpu.gpu.as_ref().unwrap().kernels;
        assert_eq!(kernels.compiled(), [KernelId::Surrogate, KernelId::Resynth].to_vec());
        let overlapped = explainer.explain_waveform(&waves[1]).unwrap();
        explainer.set_profiling(true);
        let staged = explainer.explain_waveform(&waves[1]).unwrap();
        assert_eq!(kernels.compiled(), [KernelId::Surrogate, KernelId::Resynth].to_vec());
        assert_eq!(overlapped.probs, staged.probs);
        assert_eq!(overlapped.fit.coefs, staged.fit.coefs);
        for (p, q) in overlapped.probs.iter().zip(direct.iter()) {
            assert!((*p as f64 - q).abs() < 1e-3, "explainer on the gpu {p} vs direct {q}");
        }
    }
    // A classifier on other features is refused, naming the file.
    let other = FeatureClassifier::fit(
        x.slice(ndarray::s![.., ..2]),
        &[0, 1, 2, 3],
        ["a", "b", "c", "d"].map(String::from).to_vec(),
        "custom",
        vec!["f1".into(), "f2".into()],
        &head,
    )
    .unwrap();
    other.save(&path).unwrap();
    let err = FeatureModel::load(&path, &cpu.burn).err().unwrap().to_string();
    assert!(err.contains("svm.json") && err.contains("eGeMAPS"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `train --features` writes the leave-speakers-out evaluation next to the model.
#[test]
fn feature_training_writes_a_speaker_independent_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = emolime::synth::SynthConfig {
        n_per_class: 4,
        duration_s: 0.5,
        ..emolime::synth::SynthConfig::default()
    };
    let manifest = emolime::synth::write_corpus(&synth, &tmp.path().join("corpus")).unwrap();
    let model = tmp.path().join("m.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emolime"))
        .args([
            "train",
            "--features",
            "egemaps",
            "--head",
            "logreg",
            "--folds",
            "2",
            "--input",
        ])
        .arg(&manifest)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("speaker-independent, 2 folds"), "{stdout}");
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("m.eval.json")).unwrap()).unwrap();
    assert_eq!(eval["pooled"]["n"], 16);
    assert_eq!(eval["folds"].as_array().unwrap().len(), 2);
    let cm: Vec<Vec<u64>> = serde_json::from_value(eval["confusion"].clone()).unwrap();
    assert_eq!(cm.iter().flatten().sum::<u64>(), 16);
    for k in ["ua", "wa", "macro_f1"] {
        let v = eval["pooled"][k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} {v}");
    }
}
