//! wav2vec 2.0 / HuBERT in Burn against `transformers` (fixtures made by
//! scripts/make_w2v_fixtures.py), checkpoint errors, and explaining a waveform model.

use crate::common::{fresh_seed, gpu_device};
use burn::tensor::{Device, Tensor, TensorData};
use emolime::Error;
use emolime::device::ComputeDevice;
use emolime::explain::{ExplainConfig, Explainer};
use emolime::model::hf::{HfClassifier, HfEncoder, Weights};
use emolime::model::{AnyModel, ModelInput, SerModel, read_f32};
use emolime::sampling::{MaskConfig, SampleCount};
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 5] = [
    "w2v_base_head",
    "w2v_large_head_weighted",
    "hubert_base_head_bin",
    "hubert_large_bare",
    "w2v_base_bare",
];

/// A fixture folder; the repository root is `CARGO_MANIFEST_DIR` at run time when set (a test
/// binary run by hand in another checkout), else where the binary was built.
fn fixture(name: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    root.join("tests/fixtures/w2v").join(name)
}

/// A reference tensor as (shape, values).
fn reference(name: &str, key: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let mut w = Weights::open(&fixture(name).join("reference.safetensors")).unwrap();
    w.raw(key)
        .unwrap()
        .map(|d| (d.shape().to_vec(), d.try_to_vec::<f32>().unwrap()))
}

fn input(name: &str, device: &Device) -> Tensor<2> {
    let (shape, values) = reference(name, "input").unwrap();
    Tensor::from_data(TensorData::new(values, [shape[0], shape[1]]), device)
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale
}

fn check_against_transformers(device: &Device, what: &str) {
    for name in FIXTURES {
        let (enc, cfg, _) = HfEncoder::load(&fixture(name), device).unwrap();
        let states = enc.hidden_states(input(name, device), cfg.num_hidden_layers);
        assert_eq!(states.len(), cfg.num_hidden_layers + 1);
        for (j, h) in states.into_iter().enumerate() {
            let (shape, want) = reference(name, &format!("hidden_states.{j}")).unwrap();
            assert_eq!(h.dims().to_vec(), shape, "{name} hidden state {j} shape");
            let err = rel_err(&read_f32(h).unwrap(), &want);
            assert!(err <= 1e-4, "{what}: {name} hidden state {j}: relative error {err}");
        }
        if let Some((_, want)) = reference(name, "logits") {
            let model = HfClassifier::load(&fixture(name), device).unwrap();
            let err = rel_err(&read_f32(model.logits(input(name, device))).unwrap(), &want);
            assert!(err <= 1e-4, "{what}: {name} logits: relative error {err}");
        }
    }
}

#[test]
fn encoders_match_transformers_on_cpu() {
    check_against_transformers(&ComputeDevice::cpu("test").burn, "cpu");
}

#[test]
fn encoders_match_transformers_on_gpu() {
    let Some(dev) = gpu_device() else { return };
    check_against_transformers(&dev.burn, &dev.description);
}

/// Scoring in f16 (`HfClassifier::cast`) stays close to f32 on every fixture layout, on the CPU
/// backend and on the test adapter, and returns f32 probabilities.
#[test]
fn half_precision_scoring_agrees_with_f32() {
    let devices: Vec<ComputeDevice> = std::iter::once(ComputeDevice::cpu("test"))
        .chain(gpu_device())
        .collect();
    for dev in &devices {
        for name in ["w2v_base_head", "w2v_large_head_weighted", "hubert_base_head_bin"] {
            let full = HfClassifier::load(&fixture(name), &dev.burn).unwrap();
            let half = HfClassifier::load(&fixture(name), &dev.burn)
                .unwrap()
                .cast(burn::tensor::FloatDType::F16);
            assert_eq!(half.backbone.encoder.dtype(), burn::tensor::FloatDType::F16);
            let p = full.probs(input(name, &dev.burn)).unwrap();
            let q = half.probs(input(name, &dev.burn)).unwrap();
            assert_eq!(q.dtype(), burn::tensor::DType::F32, "{name}");
            let (p, q) = (read_f32(p).unwrap(), read_f32(q).unwrap());
            let worst = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(
                worst < 1e-2,
                "{}: {name}: f16 probabilities differ by {worst}",
                dev.description
            );
            assert!(
                worst > 0.0,
                "{}: {name}: f16 scoring gave f32's exact values",
                dev.description
            );
        }
    }
}

/// A copy of a fixture folder with `config.json` edited by `edit`.
fn edited(tmp: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    let cpu = ComputeDevice::cpu("test");
    match AnyModel::load(dir, &cpu.burn) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => {
            assert!(matches!(e, Error::Model { .. } | Error::Io { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn bad_checkpoints_give_one_clear_error_each() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Not a checkpoint folder.
    std::fs::create_dir_all(t.join("empty")).unwrap();
    assert!(load_err(&t.join("empty")).contains("no config.json"));
    // A config that does not parse.
    let dir = edited(t, "w2v_base_head", |_| {});
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let e = load_err(&dir);
    assert!(e.contains("config.json") && e.contains("does not parse"), "{e}");
    // Another architecture.
    let e = load_err(&edited(&t.join("a"), "w2v_base_head", |c| {
        c["model_type"] = "bert".into()
    }));
    assert!(e.contains("model_type") && e.contains("bert"), "{e}");
    // A mis-shaped tensor.
    let e = load_err(&edited(&t.join("b"), "w2v_base_head", |c| {
        c["intermediate_size"] = 48.into()
    }));
    assert!(e.contains("intermediate_dense.weight") && e.contains("[64, 32]"), "{e}");
    // A missing tensor.
    let e = load_err(&edited(&t.join("c"), "w2v_base_head", |c| {
        c["num_hidden_layers"] = 3.into()
    }));
    assert!(e.contains("missing tensor `wav2vec2.encoder.layers.2."), "{e}");
    // A head whose classes do not match id2label.
    let e = load_err(&edited(&t.join("d"), "w2v_base_head", |c| {
        c["id2label"]["4"] = "bored".into();
    }));
    assert!(e.contains("classifier.weight") && e.contains("5 classes"), "{e}");
    // No head at all.
    let e = load_err(&fixture("hubert_large_bare"));
    assert!(e.contains("no sequence-classification head"), "{e}");
    // A file inside a checkpoint folder instead of the folder.
    let e = load_err(&fixture("w2v_base_head").join("model.safetensors"));
    assert!(e.contains("pass the folder"), "{e}");
    // No weights.
    let dir = edited(&t.join("e"), "w2v_base_head", |_| {});
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(load_err(&dir).contains("no weights"));
}

#[test]
fn waveform_model_is_explained_on_cpu_and_gpu_alike() {
    let seed = fresh_seed("explain wav2vec2");
    let cpu = ComputeDevice::cpu("test");
    let model = HfClassifier::load(&fixture("w2v_base_head"), &cpu.burn).unwrap();
    assert_eq!(model.input(), ModelInput::Waveform { sample_rate_hz: 16000 });
    assert_eq!(model.classes(), ["angry", "happy", "neutral", "sad"]);
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(48),
            keep_prob: 0.5,
            seed,
        },
        batch_size: 20,
        ..ExplainConfig::default()
    };
    // A 0.5 s voice-like signal.
    let x: Vec<f32> = (0..8000)
        .map(|i| {
            let t = i as f32 / 16000.0;
            (1..8)
                .map(|h| (std::f32::consts::TAU * 140.0 * h as f32 * t).sin() / h as f32)
                .sum::<f32>()
                * 0.2
        })
        .collect();
    let mut on_cpu = Explainer::new(&model, &cpu, cfg.clone()).unwrap();
    let a = on_cpu.explain_waveform(&x).unwrap();
    // Sample 0 is the input itself: its probabilities are the model's on the raw audio.
    let direct = read_f32(
        model
            .probs(Tensor::from_data(TensorData::new(x.clone(), [1, x.len()]), &cpu.burn))
            .unwrap(),
    )
    .unwrap();
    for (p, q) in a.probs.iter().zip(&direct) {
        assert!((p - q).abs() < 1e-5, "sample 0 probability {p} vs the input's {q}");
    }
    assert!(a.fit.coefs.iter().all(|c| c.is_finite()));
    let Some(dev) = gpu_device() else { return };
    let gpu_model = HfClassifier::load(&fixture("w2v_base_head"), &dev.burn).unwrap();
    let mut on_gpu = Explainer::new(&gpu_model, &dev, cfg).unwrap();
    let b = on_gpu.explain_waveform(&x).unwrap();
    for (p, q) in a.probs.iter().zip(&b.probs) {
        assert!((p - q).abs() < 1e-4, "probabilities {p} vs {q}");
    }
    for (p, q) in a.fit.coefs.iter().zip(b.fit.coefs.iter()) {
        assert!((p - q).abs() < 1e-3, "coefficients {p} vs {q}");
    }
    // --max-seconds crops the audio and says so; the full-length explanation says nothing.
    assert_eq!(a.seconds, 0.5);
    assert_eq!(a.cropped_from_seconds, None);
    let cropped_cfg = ExplainConfig {
        max_seconds: Some(0.25),
        ..on_gpu.config().clone()
    };
    let mut cropped = Explainer::new(&model, &cpu, cropped_cfg).unwrap();
    let c = cropped.explain_waveform(&x).unwrap();
    assert_eq!((c.seconds, c.cropped_from_seconds), (0.25, Some(0.5)));
    let bad = ExplainConfig {
        max_seconds: Some(0.0),
        ..ExplainConfig::default()
    };
    assert!(matches!(Explainer::new(&model, &cpu, bad), Err(Error::Config { .. })));
    let too_short = ExplainConfig {
        max_seconds: Some(0.001), // 16 samples, under the 40 the model needs
        ..ExplainConfig::default()
    };
    match Explainer::new(&model, &cpu, too_short) {
        Err(e) => assert!(e.to_string().contains("shorter than the 40 samples"), "{e}"),
        Ok(_) => panic!("a crop shorter than the receptive field was accepted"),
    }
    // Shorter than the model's receptive field (40 samples here) is an error, not a panic.
    assert_eq!(model.min_samples(), 40);
    assert!(on_gpu.explain_waveform(&x[..39]).is_err());
    assert!(on_cpu.explain_waveform(&x[..39]).is_err());
}

/// `--resynthesis griffin-lim`: seeded (the same seed gives the same explanation, another seed
/// another one), the CPU path and the GPU agree, the sample keeping every band is a
/// reconstruction (not the input, unlike the phase-preserving default), and a mel model refuses it.
#[test]
fn griffin_lim_resynthesis_is_seeded_and_device_independent() {
    use emolime::griffin_lim::GriffinLimConfig;
    use emolime::resynth::Resynthesis;
    let seed = fresh_seed("griffin-lim");
    let cpu = ComputeDevice::cpu("test");
    let model = HfClassifier::load(&fixture("w2v_base_head"), &cpu.burn).unwrap();
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(24),
            keep_prob: 0.5,
            seed,
        },
        batch_size: 10,
        keep_samples: true,
        resynthesis: Resynthesis::GriffinLim(GriffinLimConfig {
            iters: 4,
            ..Default::default()
        }),
        ..ExplainConfig::default()
    };
    let x: Vec<f32> = (0..6000)
        .map(|i| {
            let t = i as f32 / 16000.0;
            (1..6)
                .map(|h| (std::f32::consts::TAU * 180.0 * h as f32 * t).sin() / h as f32)
                .sum::<f32>()
                * 0.3
        })
        .collect();
    let mut ex = Explainer::new(&model, &cpu, cfg.clone()).unwrap();
    // Each sample is its own Griffin-Lim run: every sample is scored.
    assert_eq!(ex.scored_per_utterance(), 24);
    let a = ex.explain_waveform(&x).unwrap();
    let again = Explainer::new(&model, &cpu, cfg.clone())
        .unwrap()
        .explain_waveform(&x)
        .unwrap();
    assert_eq!(
        a.fit.coefs, again.fit.coefs,
        "the same seed must give the same explanation"
    );
    let other_seed = ExplainConfig {
        masks: MaskConfig {
            seed: seed.wrapping_add(1),
            ..cfg.masks.clone()
        },
        ..cfg.clone()
    };
    let b = Explainer::new(&model, &cpu, other_seed)
        .unwrap()
        .explain_waveform(&x)
        .unwrap();
    assert_ne!(a.sample_probs, b.sample_probs, "another seed, other phases");
    let direct = read_f32(
        model
            .probs(Tensor::from_data(TensorData::new(x.clone(), [1, x.len()]), &cpu.burn))
            .unwrap(),
    )
    .unwrap();
    let off: f32 = a
        .probs
        .iter()
        .zip(&direct)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(off > 1e-6, "sample 0 is a reconstruction, not the input ({off})");
    // A mel model consumes spectrograms, not waveforms: it refuses Griffin-Lim.
    let examples: Vec<emolime::model::Example> = (0..4)
        .map(|k| emolime::model::Example {
            mel: (0..128 * 20).map(|i| ((i * 7 + k) % 13) as f32).collect(),
            n_frames: 20,
            label: k % 2,
        })
        .collect();
    let train_cfg = emolime::model::TrainConfig {
        epochs: 1,
        val_fraction: 0.0,
        ..Default::default()
    };
    let classes = vec!["a".to_string(), "b".to_string()];
    let fe = emolime::audio::FrontEndConfig::default();
    let (cnn, _) = emolime::model::train(&examples, classes, fe, &train_cfg, &cpu.burn, |_, _| {}).unwrap();
    match Explainer::new(&cnn, &cpu, cfg.clone()) {
        Err(e) => assert!(e.to_string().contains("griffin-lim"), "{e}"),
        Ok(_) => panic!("a mel model accepted griffin-lim resynthesis"),
    }
    let Some(dev) = gpu_device() else { return };
    let gpu_model = HfClassifier::load(&fixture("w2v_base_head"), &dev.burn).unwrap();
    let mut on_gpu = Explainer::new(&gpu_model, &dev, cfg).unwrap();
    assert!(
        on_gpu.griffin_lim_on_device(),
        "a 2048-point fft runs griffin-lim on the device"
    );
    assert!(!ex.griffin_lim_on_device());
    let g = on_gpu.explain_waveform(&x).unwrap();
    let d = g.sample_probs.as_ref().unwrap() - a.sample_probs.as_ref().unwrap();
    let d = d.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        d < 1e-4,
        "griffin-lim on the GPU gives model outputs that differ from the CPU path's by {d}"
    );
}

#[test]
fn own_head_on_a_backbone_layer_is_explained() {
    use emolime::classify::{FeatureClassifier, HeadConfig, HeadKind};
    use emolime::model::embedding::{Embedder, Layer};
    let seed = fresh_seed("own head on a backbone layer");
    let cpu = ComputeDevice::cpu("test");
    let name = "w2v_base_bare";
    // The embedding is the time mean of transformers' hidden state.
    let e = Embedder::load(&fixture(name), Layer::Index(1), &cpu.burn).unwrap();
    let got = e.embed(input(name, &cpu.burn)).unwrap();
    let (shape, want) = reference(name, "hidden_states.1").unwrap();
    let (n, t, h) = (shape[0], shape[1], shape[2]);
    assert_eq!(got.dim(), (n, h));
    for i in 0..n {
        for k in 0..h {
            let mean = (0..t).map(|j| want[(i * t + j) * h + k] as f64).sum::<f64>() / t as f64;
            assert!((got[[i, k]] - mean).abs() < 1e-4, "dim {k}: {} vs {mean}", got[[i, k]]);
        }
    }
    assert!(Embedder::load(&fixture(name), Layer::Index(99), &cpu.burn).is_err());
    assert_eq!("last".parse::<Layer>().unwrap(), Layer::Last);

    // A head on the last hidden state, trained on two kinds of tone, then explained.
    let e = Embedder::load(&fixture(name), Layer::Last, &cpu.burn).unwrap();
    let tone = |f0: f32, k: usize| -> Vec<f32> {
        (0..4000)
            .map(|i| {
                let t = i as f32 / 16000.0;
                (1..6)
                    .map(|h| (std::f32::consts::TAU * (f0 + k as f32) * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                    * 0.2
            })
            .collect()
    };
    let waves: Vec<Vec<f32>> = (0..6)
        .map(|k| tone(if k % 2 == 0 { 120.0 } else { 400.0 }, k))
        .collect();
    let flat: Vec<f32> = waves.concat();
    let x = e
        .embed(Tensor::from_data(TensorData::new(flat, [6, 4000]), &cpu.burn))
        .unwrap();
    let labels: Vec<usize> = (0..6).map(|k| k % 2).collect();
    let head = HeadConfig {
        kind: HeadKind::LogReg,
        seed,
        ..HeadConfig::default()
    };
    let clf = FeatureClassifier::fit(
        x.view(),
        &labels,
        vec!["low".into(), "high".into()],
        &e.feature_set(),
        e.feature_names(),
        &head,
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("emolime-emb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("head.json");
    clf.save(&path).unwrap();
    let AnyModel::Embedding(model) = AnyModel::load(&path, &cpu.burn).unwrap() else {
        panic!("a head on a backbone layer loads as an embedding model");
    };
    assert_eq!(model.input(), ModelInput::Waveform { sample_rate_hz: 16000 });
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(16),
            keep_prob: 0.5,
            seed,
        },
        batch_size: 8,
        ..ExplainConfig::default()
    };
    let mut explainer = Explainer::new(&*model, &cpu, cfg).unwrap();
    let out = explainer.explain_waveform(&waves[1]).unwrap();
    let direct = model
        .classifier()
        .predict_proba(x.slice(ndarray::s![1..2, ..]))
        .unwrap();
    for (p, q) in out.probs.iter().zip(direct.iter()) {
        assert!((*p as f64 - q).abs() < 1e-3, "explainer {p} vs direct {q}");
    }
    // A width that does not match the backbone is refused, naming the file.
    let narrow = FeatureClassifier::fit(
        x.slice(ndarray::s![.., ..3]),
        &labels,
        vec!["low".into(), "high".into()],
        &e.feature_set(),
        vec!["a".into(), "b".into(), "c".into()],
        &head,
    )
    .unwrap();
    narrow.save(&path).unwrap();
    let err = AnyModel::load(&path, &cpu.burn).err().unwrap().to_string();
    assert!(err.contains("head.json") && err.contains("features"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Utterances of equal length share a forward pass; each vector still equals its utterance
/// embedded alone, in input order, and a file that cannot be read fails alone.
#[test]
fn batched_embeddings_equal_one_utterance_at_a_time() {
    use emolime::input::InputItem;
    use emolime::model::embedding::{Embedder, Layer, embed_items};
    let cpu = ComputeDevice::cpu("test");
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = crate::common::Rng(fresh_seed("embed batches"));
    let lengths = [4000usize, 4000, 5200, 4000, 5200, 0, 4000];
    let items: Vec<InputItem> = lengths
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let path = tmp.path().join(format!("{k}.wav"));
            if n > 0 {
                let x: Vec<f32> = (0..n).map(|_| rng.f32() * 0.6 - 0.3).collect();
                emolime::audio::write_wav_i16(&path, &x, 16000).unwrap();
            }
            InputItem {
                path,
                id: format!("{k}.wav"),
                ..Default::default()
            }
        })
        .collect();
    let e = Embedder::load(&fixture("w2v_base_bare"), Layer::Index(1), &cpu.burn).unwrap();
    let mut seen = vec![];
    let alone = embed_items(&e, &items, None, None, 1, |_, _| {}).unwrap();
    let together = embed_items(&e, &items, None, None, 3, |done, total| seen.push((done, total))).unwrap();
    assert_eq!(
        seen.last(),
        Some(&(items.len(), items.len())),
        "progress reaches the end"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "progress only grows: {seen:?}"
    );
    for (k, (a, b)) in alone.iter().zip(&together).enumerate() {
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let d = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
                assert!(d <= 1e-5 * scale.max(1.0), "item {k}: {d}");
            }
            (Err(a), Err(b)) => {
                assert_eq!(lengths[k], 0);
                assert!(b.to_string().contains(&format!("{k}.wav")), "{b}");
                assert_eq!(a.to_string(), b.to_string());
            }
            _ => panic!("item {k}: one way failed and the other did not"),
        }
    }
    // Different utterances give different vectors, so agreement is not by accident.
    let (a, b) = (alone[0].as_ref().unwrap(), alone[1].as_ref().unwrap());
    assert!(a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-4));
}

#[test]
fn pooled_embeddings_are_cached_by_file_and_layer() {
    use emolime::input::InputItem;
    use emolime::model::embedding::{Embedder, Layer, embed_items};
    let cpu = ComputeDevice::cpu("test");
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("a.wav");
    let x: Vec<f32> = (0..4000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    emolime::audio::write_wav_i16(&wav, &x, 16000).unwrap();
    let items = vec![InputItem {
        path: wav.clone(),
        id: "a.wav".into(),
        label: None,
        speaker: None,
        dataset: None,
        gender: None,
        ..Default::default()
    }];
    let cache = tmp.path().join("cache");
    let e = Embedder::load(&fixture("w2v_base_bare"), Layer::Index(1), &cpu.burn).unwrap();
    let fresh = embed_items(&e, &items, None, Some(&cache), 8, |_, _| {}).unwrap();
    let fresh = fresh[0].as_ref().unwrap().clone();
    assert_eq!(fresh.len(), e.dim());
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|f| f.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    // A second run reads the file: plant other values and they come back.
    let planted: Vec<f64> = (0..fresh.len()).map(|i| i as f64).collect();
    std::fs::write(
        &files[0],
        planted.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    let again = embed_items(&e, &items, None, Some(&cache), 8, |_, _| {}).unwrap();
    assert_eq!(again[0].as_ref().unwrap(), &planted);
    // Another layer, or an edited file, is a different key: computed afresh.
    let other = Embedder::load(&fixture("w2v_base_bare"), Layer::Last, &cpu.burn).unwrap();
    let o = embed_items(&other, &items, None, Some(&cache), 8, |_, _| {}).unwrap();
    assert_ne!(o[0].as_ref().unwrap(), &planted);
    // An edited file (one sample longer: its size changes even where mtimes are coarse).
    let longer: Vec<f32> = x.iter().copied().chain([0.0]).collect();
    emolime::audio::write_wav_i16(&wav, &longer, 16000).unwrap();
    let edited = embed_items(&e, &items, None, Some(&cache), 8, |_, _| {}).unwrap();
    let edited = edited[0].as_ref().unwrap();
    assert_ne!(edited, &planted, "an edited file is embedded afresh");
}
