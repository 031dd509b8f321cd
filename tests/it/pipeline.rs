//! End to end: training, model files, explanations on the GPU and the CPU, bad inputs, and the
//! planted-cue test (a model trained on a planted corpus must point at the planted band).

use crate::common::{fresh_seed, gpu, gpu_device, max_abs_diff, read_records};
use emolime::Error;
use emolime::audio::FrontEndConfig;
use emolime::bands::BandLayout;
use emolime::corpus::{RunOptions, explain_corpus, load_training_set};
use emolime::device::{ComputeDevice, DeviceSpec};
use emolime::explain::{ExplainConfig, Explainer, ExplanationRecord};
use emolime::input::collect_inputs;
use emolime::model::{Classifier, TrainConfig, train};
use emolime::output::OutputDir;
use emolime::perturb::FillMode;
use emolime::sampling::{MaskConfig, SampleCount};
use emolime::synth::{SynthConfig, write_corpus};
use std::path::Path;

fn train_on_corpus(dir: &Path, synth: &SynthConfig, epochs: usize, device: &ComputeDevice) -> Classifier {
    let manifest = write_corpus(synth, dir).unwrap();
    let inputs = collect_inputs(&manifest).unwrap();
    let fe = FrontEndConfig::default();
    let (examples, classes, failures) = load_training_set(&inputs.items, &fe, |_| {}).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let cfg = TrainConfig {
        epochs,
        ..TrainConfig::default()
    };
    let (model, report) = train(&examples, classes, fe, &cfg, &device.burn, |_, _| {}).unwrap();
    eprintln!("trained: {report:?}");
    model
}

fn small_corpus() -> SynthConfig {
    SynthConfig {
        n_per_class: 6,
        duration_s: 1.0,
        ..SynthConfig::default()
    }
}

#[test]
fn model_files_round_trip_and_bad_ones_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let model = train_on_corpus(&tmp.path().join("corpus"), &small_corpus(), 2, &cpu);
    let path = tmp.path().join("m.emolime");
    model.save(&path).unwrap();
    let loaded = Classifier::load(&path, &cpu.burn).unwrap();
    assert_eq!(loaded.meta, model.meta);
    let x: Vec<f32> = (0..2 * 128 * 20).map(|i| (i % 7) as f32 * 0.1).collect();
    let a = model.probs_host(x.clone(), [2, 128, 20]).unwrap();
    let b = loaded.probs_host(x, [2, 128, 20]).unwrap();
    assert_eq!(a, b);
    let bytes = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"hello world\n".to_vec()),
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        (
            "header only",
            bytes[..bytes.iter().position(|&c| c == b'\n').unwrap() + 5].to_vec(),
        ),
    ];
    for (what, content) in cases {
        let p = tmp.path().join(format!("{what}.emolime"));
        std::fs::write(&p, content).unwrap();
        match Classifier::load(&p, &cpu.burn) {
            Err(Error::Model { path, .. }) => assert_eq!(path, p),
            Err(e) => panic!("{what}: expected a model error, got {e}"),
            Ok(_) => panic!("{what}: loaded a bad model"),
        }
    }
    assert!(matches!(
        Classifier::load(&tmp.path().join("missing"), &cpu.burn),
        Err(Error::Io { .. })
    ));
}

#[test]
fn gpu_explanations_match_cpu_explanations() {
    let Some(ctx) = gpu() else { return };
    drop(ctx);
    let seed = fresh_seed("gpu-vs-cpu");
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let model = train_on_corpus(&tmp.path().join("corpus"), &small_corpus(), 2, &cpu);
    let path = tmp.path().join("m.emolime");
    model.save(&path).unwrap();
    let index = std::env::var("EMOLIME_TEST_ADAPTER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let gpu_dev = ComputeDevice::open(DeviceSpec::Gpu(index)).unwrap();
    // The device line names the compiler of Burn's kernels (SPIR-V only in a `spirv` build on
    // a Vulkan adapter).
    let info = gpu_dev.gpu.as_ref().unwrap().adapter.get_info();
    let compiler = match cfg!(feature = "spirv") && info.backend == wgpu::Backend::Vulkan {
        true => "spirv",
        false => "wgsl",
    };
    let runtime = format!("; burn on wgpu<{compiler}>)");
    assert!(gpu_dev.description.ends_with(&runtime), "{}", gpu_dev.description);
    let gpu_model = Classifier::load(&path, &gpu_dev.burn).unwrap();
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(96),
            keep_prob: 0.5,
            seed,
        },
        batch_size: 40,
        ..ExplainConfig::default()
    };
    let items = collect_inputs(&tmp.path().join("corpus/manifest.csv")).unwrap().items;
    let mut on_cpu = Explainer::new(&model, &cpu, cfg.clone()).unwrap();
    let mut on_gpu = Explainer::new(&gpu_model, &gpu_dev, cfg).unwrap();
    // The explainer compiled the kernels it dispatches, and only those: none in the loop.
    let kernels = &gpu_dev.gpu.as_ref().unwrap().kernels;
    let compiled = kernels.compiled();
    use emolime::gpu::kernels::KernelId::*;
    for id in [
        Mel,
        RowMean,
        Perturb,
        Surrogate,
        ConvBlock,
        ConvBlockPool,
        RowHeadShare,
        RowHeadSoftmax,
    ] {
        assert!(
            compiled.contains(&id),
            "{id:?} not compiled by the explainer: {compiled:?}"
        );
    }
    for id in [Resynth, GlInit, GlIterate, GlOverlapAdd] {
        assert!(!compiled.contains(&id), "{id:?} compiled for a mel model: {compiled:?}");
    }
    for item in items.iter().step_by(7).take(2) {
        let samples = on_cpu.preparer().load(item).unwrap();
        let power = on_cpu.power_spectrogram(&samples).unwrap();
        let a = on_cpu.explain_power(&power).unwrap();
        let b = on_gpu.explain_power(&power).unwrap();
        for (x, y) in a.probs.iter().zip(&b.probs) {
            assert!((x - y).abs() < 1e-3, "probabilities {x} vs {y}");
        }
        for (x, y) in a.fit.coefs.iter().zip(b.fit.coefs.iter()) {
            assert!((x - y).abs() < 2e-3, "coefficients {x} vs {y} ({})", item.id);
        }
    }
    assert_eq!(kernels.compiled(), compiled, "kernels compiled inside the explain loop");
}

/// An error the device reports outside any call (an allocation out of memory: on an H100 whose
/// memory another process held, Burn's handler dropped it and the run went on with wrong
/// numbers) is raised at the next read-back, emolime's and Burn's, and never read as values; an
/// out-of-memory one makes the explainer retry with half the inputs per call, with the same
/// explanation.
#[test]
fn device_errors_surface_at_the_read_back_and_out_of_memory_halves_the_batch() {
    let Some(dev) = crate::common::gpu_device() else { return };
    let ctx = dev.gpu.as_ref().unwrap();
    let values = ctx.upload("test values", &[1.0f32, 2.0]);
    // A real error from the device: a buffer over the adapter's largest.
    let _invalid = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("too large"),
        size: ctx.limits.max_buffer_size + 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let err = ctx.read_f32(&values, 2).unwrap_err();
    assert!(
        matches!(&err, Error::Device(m) if m.contains("the device reported")),
        "{err}"
    );
    // Taken once: the next read-back is clean.
    assert_eq!(ctx.read_f32(&values, 2).unwrap(), [1.0, 2.0]);
    // Burn's read-back on the same device finds the record.
    ctx.errors.record("Out of Memory");
    let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &dev.burn);
    let err = emolime::model::read_f32(t).unwrap_err();
    assert!(err.is_out_of_memory(), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let model = train_on_corpus(&tmp.path().join("corpus"), &small_corpus(), 1, &cpu);
    let path = tmp.path().join("m.emolime");
    model.save(&path).unwrap();
    let gpu_model = Classifier::load(&path, &dev.burn).unwrap();
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(96),
            keep_prob: 0.5,
            seed: fresh_seed("device-errors"),
        },
        batch_size: 40,
        ..ExplainConfig::default()
    };
    let items = collect_inputs(&tmp.path().join("corpus/manifest.csv")).unwrap().items;
    let mut plain = Explainer::new(&gpu_model, &dev, cfg.clone()).unwrap();
    let samples = plain.preparer().load(&items[0]).unwrap();
    let power = plain.power_spectrogram(&samples).unwrap();
    let expected = plain.explain_power(&power).unwrap();
    assert_eq!(plain.reduced_batch(), None);
    let mut halved = Explainer::new(&gpu_model, &dev, cfg).unwrap();
    ctx.errors.record("Out of Memory");
    let got = halved.explain_power(&power).unwrap();
    assert_eq!(halved.reduced_batch(), Some(20));
    assert!(!ctx.errors.is_pending());
    let coefs = |e: &emolime::explain::UtteranceExplanation| e.fit.coefs.iter().copied().collect::<Vec<_>>();
    assert!(max_abs_diff(&coefs(&expected), &coefs(&got)) < 1e-5);
    assert!(max_abs_diff(&expected.probs, &got.probs) < 1e-6);
}

/// The CPU path's row-cached scoring against building and scoring every masked input: the same
/// explanations (several utterances packed together, both fills it serves) and the same scores
/// of chosen masks (what deletion curves use).
#[test]
fn row_cached_explanations_match_scoring_every_input() {
    let seed = fresh_seed("row cache");
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let model = train_on_corpus(&tmp.path().join("corpus"), &small_corpus(), 1, &cpu);
    let items = collect_inputs(&tmp.path().join("corpus/manifest.csv")).unwrap().items;
    // The CPU path's host forward, and the same row versions as device operations on the GPU.
    let devices: Vec<ComputeDevice> = std::iter::once(ComputeDevice::cpu("test"))
        .chain(crate::common::gpu_device())
        .collect();
    for (dev, fill) in devices.iter().flat_map(|d| [(d, FillMode::Zero), (d, FillMode::Mean)]) {
        let on_gpu = dev.gpu.is_some();
        let path = tmp.path().join("m.emolime");
        model.save(&path).unwrap();
        let model = Classifier::load(&path, &dev.burn).unwrap();
        let cfg = ExplainConfig {
            masks: MaskConfig {
                samples: SampleCount::Random(150),
                keep_prob: 0.5,
                seed,
            },
            fill,
            batch_size: 64,
            ..ExplainConfig::default()
        };
        let every = ExplainConfig {
            row_cache: false,
            ..cfg.clone()
        };
        // A batch of 64 inputs holds under one utterance's distinct masks: one utterance per
        // call; a large batch takes the three in one call.
        let whole = ExplainConfig {
            batch_size: 4096,
            ..cfg.clone()
        };
        let mut cached = Explainer::new(&model, dev, cfg).unwrap();
        let mut packed = Explainer::new(&model, dev, whole).unwrap();
        let mut plain = Explainer::new(&model, dev, every).unwrap();
        assert!(cached.row_cached() && packed.row_cached() && !plain.row_cached());
        assert!(cached.scored_per_utterance() > 64);
        let prepared: Vec<_> = items
            .iter()
            .step_by(5)
            .take(3)
            .map(|item| cached.preparer().load_and_prepare(item).unwrap())
            .collect();
        let refs: Vec<_> = prepared.iter().collect();
        cached.set_profiling(true);
        plain.set_profiling(true);
        let a = cached.explain_many(&refs).unwrap();
        let b = plain.explain_many(&refs).unwrap();
        let c = packed.explain_many(&refs).unwrap();
        // The host forward builds no masked inputs (the device one builds two rows per
        // utterance); the other path builds every one.
        if !on_gpu {
            assert_eq!(cached.stage_times().unwrap().masks_s, 0.0);
        }
        assert!(plain.stage_times().unwrap().masks_s > 0.0);
        for (x, y) in a.iter().chain(&c).zip(b.iter().cycle()) {
            let d = max_abs_diff(x.fit.coefs.as_slice().unwrap(), y.fit.coefs.as_slice().unwrap());
            eprintln!("{} {fill:?}: coefficients within {d:.2e}", dev.description);
            assert!(d < 1e-5, "{} {fill:?}: coefficients differ by {d}", dev.description);
            assert!(max_abs_diff(&x.probs, &y.probs) < 1e-5, "{fill:?}: probabilities");
        }
        let chosen =
            ndarray::Array2::from_shape_fn((9, cached.layout().n_bands()), |(i, j)| ((i >> (j % 4)) & 1) as f32);
        let sa = cached.score_masks(&prepared[0], &chosen).unwrap();
        let sb = plain.score_masks(&prepared[0], &chosen).unwrap();
        assert!(
            max_abs_diff(sa.as_slice().unwrap(), sb.as_slice().unwrap()) < 1e-5,
            "{fill:?}: chosen masks"
        );
    }
}

/// Repeated masks are scored once and their outputs shared: on the CPU path (every input
/// scored by Burn, and the row cache) and on the GPU, an explanation equals scoring every sample
/// and fitting on the host; noise fill, whose inputs differ per sample, scores them all.
#[test]
fn repeated_masks_are_scored_once_with_the_same_result() {
    let seed = fresh_seed("distinct masks");
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let model = train_on_corpus(&tmp.path().join("corpus"), &small_corpus(), 1, &cpu);
    let items = collect_inputs(&tmp.path().join("corpus/manifest.csv")).unwrap().items;
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(300),
            keep_prob: 0.5,
            seed,
        },
        bands: emolime::bands::BandConfig {
            n_bands: 6,
            ..Default::default()
        },
        keep_samples: true,
        batch_size: 50,
        ..ExplainConfig::default()
    };
    let gpu_dev = gpu().map(|_| crate::common::gpu_device().unwrap());
    let gpu_model = gpu_dev.as_ref().map(|d| {
        let path = tmp.path().join("m.emolime");
        model.save(&path).unwrap();
        Classifier::load(&path, &d.burn).unwrap()
    });
    let mut runs: Vec<(&str, &dyn emolime::model::SerModel, &ComputeDevice, ExplainConfig)> = vec![
        ("cpu", &model, &cpu, cfg.clone()),
        (
            "cpu, no row cache",
            &model,
            &cpu,
            ExplainConfig {
                row_cache: false,
                ..cfg.clone()
            },
        ),
    ];
    if let (Some(d), Some(m)) = (gpu_dev.as_ref(), gpu_model.as_ref()) {
        runs.push(("gpu", m, d, cfg.clone()));
    }
    for (name, m, dev, cfg) in runs {
        let mut ex = Explainer::new(m, dev, cfg).unwrap();
        // 300 draws of 6 bands hold at most 64 distinct masks.
        assert!(ex.scored_per_utterance() <= 64, "{name}: {}", ex.scored_per_utterance());
        let prepared = ex.preparer().load_and_prepare(&items[3]).unwrap();
        let got = ex.explain(&prepared).unwrap();
        let masks = ex.masks().clone();
        let every = ex.score_masks(&prepared, &masks).unwrap();
        let probs = got.sample_probs.as_ref().unwrap();
        let d = max_abs_diff(probs.as_slice().unwrap(), every.as_slice().unwrap());
        assert!(
            d < 1e-5,
            "{name}: shared outputs differ from scoring every sample by {d}"
        );
        let fit =
            emolime::surrogate::fit_cpu(masks.view(), ex.weights(), every.view(), &ex.config().surrogate).unwrap();
        let d = max_abs_diff(got.fit.coefs.as_slice().unwrap(), fit.coefs.as_slice().unwrap());
        assert!(d < 1e-4, "{name}: coefficients differ by {d}");
    }
    let noisy = ExplainConfig {
        fill: FillMode::Noise,
        ..cfg
    };
    assert_eq!(Explainer::new(&model, &cpu, noisy).unwrap().scored_per_utterance(), 300);
}

fn write_wav_spec(path: &Path, spec: hound::WavSpec, frames: usize, sample: impl Fn(usize) -> f64) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames {
        let v = sample(i);
        for _ in 0..spec.channels {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                (_, 16) => w.write_sample((v * 32767.0) as i16).unwrap(),
                (_, b) => w.write_sample((v * ((1i64 << (b - 1)) - 1) as f64) as i32).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn corpus_run_reports_each_bad_input_and_keeps_going() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let model = train_on_corpus(&tmp.path().join("corpus"), &small_corpus(), 1, &cpu);
    let dir = tmp.path().join("inputs/angry");
    std::fs::create_dir_all(&dir).unwrap();
    let voice = |sr: f64| {
        move |i: usize| {
            0.3 * (2.0 * std::f64::consts::PI * 220.0 * i as f64 / sr).sin()
                + 0.1 * (2.0 * std::f64::consts::PI * 1300.0 * i as f64 / sr).sin()
        }
    };
    let spec = |ch, sr, bits, fmt| hound::WavSpec {
        channels: ch,
        sample_rate: sr,
        bits_per_sample: bits,
        sample_format: fmt,
    };
    use hound::SampleFormat::{Float, Int};
    // Good files in awkward formats.
    write_wav_spec(&dir.join("ok_16.wav"), spec(1, 16000, 16, Int), 16000, voice(16000.0));
    write_wav_spec(
        &dir.join("ok_stereo_48k_24bit.wav"),
        spec(2, 48000, 24, Int),
        48000,
        voice(48000.0),
    );
    write_wav_spec(&dir.join("ok_8bit.wav"), spec(1, 16000, 8, Int), 16000, voice(16000.0));
    write_wav_spec(
        &dir.join("ok_float.wav"),
        spec(1, 22050, 32, Float),
        22050,
        voice(22050.0),
    );
    // Bad ones.
    std::fs::write(dir.join("empty.wav"), b"").unwrap();
    std::fs::write(
        dir.join("text.wav"),
        b"this is not audio at all, just text\n".repeat(20),
    )
    .unwrap();
    write_wav_spec(&dir.join("silent.wav"), spec(1, 16000, 16, Int), 16000, |_| 0.0);
    write_wav_spec(&dir.join("short.wav"), spec(1, 16000, 16, Int), 100, voice(16000.0));
    write_wav_spec(&dir.join("nan.wav"), spec(1, 16000, 32, Float), 16000, |i| {
        if i == 500 { f64::NAN } else { 0.1 }
    });
    let ok = std::fs::read(dir.join("ok_16.wav")).unwrap();
    std::fs::write(dir.join("truncated.wav"), &ok[..30]).unwrap();
    let inputs = collect_inputs(&tmp.path().join("inputs")).unwrap();
    assert_eq!(inputs.items.len(), 10);
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(32),
            keep_prob: 0.5,
            seed: 1,
        },
        ..ExplainConfig::default()
    };
    // On the CPU and on the device, packed and one utterance per group: with one group in
    // flight while the next is submitted, the outcomes still come out one per input, in
    // order, whatever sits between the groups.
    let gpu = gpu_device().map(|device| {
        // A model on another device than the explainer's is refused up front.
        let refused = Explainer::new(&model, &device, cfg.clone()).err();
        assert!(
            matches!(&refused, Some(Error::Config { field: "device", .. })),
            "{:?}",
            refused.map(|e| e.to_string())
        );
        let path = tmp.path().join("m.emolime");
        model.save(&path).unwrap();
        let on_device = Classifier::load(&path, &device.burn).unwrap();
        (device, on_device)
    });
    let devices = std::iter::once((&cpu, &model, "cpu")).chain(gpu.as_ref().map(|(d, m)| (d, m, "gpu")));
    // The first run's records, which every other run matches (position, class, coefficients).
    let mut first: Option<Vec<ExplanationRecord>> = None;
    for (device, model, name) in devices {
        for pack in [64, 1] {
            let mut explainer = Explainer::new(model, device, cfg.clone()).unwrap();
            let out_path = tmp.path().join(format!("out-{name}-{pack}"));
            let out = OutputDir::create(&out_path, false).unwrap();
            let opts = RunOptions {
                pack_utterances: pack,
                ..RunOptions::default()
            };
            let report = explain_corpus(
                &mut explainer,
                &inputs.items,
                vec![],
                name,
                &out.path(""),
                &opts,
                |_| {},
            )
            .unwrap();
            out.commit().unwrap();
            let failed: Vec<(&str, &str)> = report
                .failures
                .iter()
                .map(|f| (f.id.as_str(), f.error.as_str()))
                .collect();
            for bad in [
                "empty.wav",
                "text.wav",
                "silent.wav",
                "short.wav",
                "nan.wav",
                "truncated.wav",
            ] {
                let f = report
                    .failures
                    .iter()
                    .find(|f| f.id.ends_with(bad))
                    .unwrap_or_else(|| panic!("{name}, pack {pack}: {bad} did not fail: {failed:?}"));
                assert!(f.error.contains(bad), "error names the file: {}", f.error);
            }
            assert_eq!(report.n_explained, 4, "{name}, pack {pack}: failures: {failed:?}");
            let records = read_records(&out_path);
            assert_eq!(records.len(), 4 * model.n_classes());
            let positions: Vec<usize> = records.iter().map(|r| r.position).collect();
            assert!(
                positions.windows(2).all(|w| w[0] <= w[1]),
                "{name}, pack {pack}: {positions:?}"
            );
            match &first {
                None => first = Some(records),
                Some(first) => {
                    for (a, b) in first.iter().zip(&records) {
                        assert_eq!((a.position, &a.class), (b.position, &b.class), "{name}, pack {pack}");
                        let diff = max_abs_diff(&a.coefficients, &b.coefficients);
                        assert!(
                            diff < 1e-4,
                            "{name}, pack {pack}: {diff} at {} {} ({:?} against {:?})",
                            a.id,
                            a.class,
                            a.coefficients,
                            b.coefficients
                        );
                    }
                }
            }
            let failures = std::fs::read_to_string(out_path.join("failures.jsonl")).unwrap();
            assert_eq!(failures.lines().count(), 6);
            // The folder exists now: a second run refuses to overwrite it.
            assert!(matches!(
                OutputDir::create(&out_path, false),
                Err(Error::OutputExists { .. })
            ));
        }
    }
}

#[test]
fn planted_band_is_the_top_band_of_the_planted_class() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let planted = (1200.0, 1600.0);
    let synth = SynthConfig {
        n_per_class: 16,
        duration_s: 1.0,
        planted_band_hz: Some(planted),
        planted_class: 0,
        ..SynthConfig::default()
    };
    let model = train_on_corpus(&tmp.path().join("corpus"), &synth, 12, &cpu);
    let planted_name = synth.classes[0].clone();
    let k = model.meta.classes.iter().position(|c| *c == planted_name).unwrap();
    let cfg = ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(256),
            keep_prob: 0.5,
            seed: 7,
        },
        ..ExplainConfig::default()
    };
    let mut explainer = Explainer::new(&model, &cpu, cfg).unwrap();
    let layout: BandLayout = explainer.layout().clone();
    let items = collect_inputs(&tmp.path().join("corpus/manifest.csv")).unwrap().items;
    let mut mean = vec![0f32; layout.n_bands()];
    let chosen: Vec<_> = items
        .iter()
        .filter(|i| i.label.as_deref() == Some(planted_name.as_str()))
        .take(6)
        .collect();
    for item in &chosen {
        let samples = explainer.preparer().load(item).unwrap();
        let power = explainer.power_spectrogram(&samples).unwrap();
        let exp = explainer.explain_power(&power).unwrap();
        for (m, c) in mean.iter_mut().zip(exp.fit.coefs.row(k)) {
            *m += c / chosen.len() as f32;
        }
    }
    let top = emolime::model::argmax(&mean);
    eprintln!(
        "planted {planted:?}: mean coefficients {mean:?}, edges {:?}",
        layout.edges_hz
    );
    let overlap = layout.band_overlap_hz(top, planted.0, planted.1);
    assert!(
        overlap >= 0.5 * (planted.1 - planted.0),
        "top band {top} ({}-{} Hz) misses the planted {planted:?}",
        layout.edges_hz[top],
        layout.edges_hz[top + 1]
    );
}

/// Packing several utterances into shared model calls (and one surrogate dispatch on a GPU)
/// gives each utterance the explanation it gets alone, for a mel model and a waveform model,
/// on the CPU path and on the test GPU, with batches that split utterances at every place.
#[test]
fn packed_utterances_equal_one_at_a_time() {
    let seed = fresh_seed("packed");
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let cnn = train_on_corpus(&tmp.path().join("corpus"), &small_corpus(), 1, &cpu);
    let cnn_path = tmp.path().join("m.emolime");
    cnn.save(&cnn_path).unwrap();
    let w2v = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/w2v/w2v_base_head");
    let items = collect_inputs(&tmp.path().join("corpus/manifest.csv")).unwrap().items;
    let mut devices = vec![cpu];
    if gpu().is_some() {
        let index = std::env::var("EMOLIME_TEST_ADAPTER")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        devices.push(ComputeDevice::open(DeviceSpec::Gpu(index)).unwrap());
    }
    for device in &devices {
        let models: Vec<(&str, Box<dyn emolime::model::SerModel>)> = vec![
            ("cnn", Box::new(Classifier::load(&cnn_path, &device.burn).unwrap())),
            (
                "wav2vec2",
                Box::new(emolime::model::hf::HfClassifier::load(&w2v, &device.burn).unwrap()),
            ),
        ];
        for (name, model) in &models {
            // 20 samples in batches of 13: calls hold the samples of one or two utterances,
            // split at a different place in each.
            let cfg = ExplainConfig {
                masks: MaskConfig {
                    samples: SampleCount::Random(20),
                    keep_prob: 0.5,
                    seed,
                },
                batch_size: 13,
                keep_samples: true,
                max_seconds: Some(0.3),
                ..ExplainConfig::default()
            };
            let mut explainer = Explainer::new(model.as_ref(), device, cfg).unwrap();
            let preparer = explainer.preparer();
            let prepared: Vec<_> = items
                .iter()
                .step_by(5)
                .take(3)
                .map(|it| preparer.load_and_prepare(it).unwrap())
                .collect();
            let refs: Vec<_> = prepared.iter().collect();
            let packed = explainer.explain_many(&refs).unwrap();
            assert_eq!(packed.len(), 3);
            for (p, one) in prepared.iter().zip(&packed) {
                let alone = explainer.explain(p).unwrap();
                let what = format!("{name} on {}", device.description);
                let probs_a = alone.sample_probs.as_ref().unwrap();
                let probs_b = one.sample_probs.as_ref().unwrap();
                let d = crate::common::max_abs_diff(probs_a.as_slice().unwrap(), probs_b.as_slice().unwrap());
                assert!(d <= 1e-5, "{what}: model outputs differ by {d}");
                let d =
                    crate::common::max_abs_diff(alone.fit.coefs.as_slice().unwrap(), one.fit.coefs.as_slice().unwrap());
                assert!(d <= 1e-5, "{what}: coefficients differ by {d}");
            }
        }
    }
}

/// Sanity checks (Adebayo et al.): explanations of a control model, one trained on shuffled
/// labels and one never trained, differ measurably from the trained model's, while the trained
/// model re-explained with another mask seed agrees with itself.
#[test]
fn control_models_get_different_explanations() {
    use emolime::model::Control;
    use emolime::stability::ranking_agreement;
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let synth = SynthConfig {
        n_per_class: 12,
        duration_s: 1.0,
        planted_band_hz: Some((1200.0, 1600.0)),
        ..SynthConfig::default()
    };
    let manifest = write_corpus(&synth, &tmp.path().join("corpus")).unwrap();
    let items = collect_inputs(&manifest).unwrap().items;
    let fe = FrontEndConfig::default();
    let (examples, classes, _) = load_training_set(&items, &fe, |_| {}).unwrap();
    let model = |control| {
        let cfg = TrainConfig {
            epochs: 12,
            control,
            ..TrainConfig::default()
        };
        train(&examples, classes.clone(), fe.clone(), &cfg, &cpu.burn, |_, _| {}).unwrap()
    };
    let (trained, report) = model(None);
    let (shuffled, shuffled_report) = model(Some(Control::ShuffledLabels));
    let (random, _) = model(Some(Control::RandomWeights));
    eprintln!("trained {report:?}; shuffled labels {shuffled_report:?}");
    let k = trained
        .meta
        .classes
        .iter()
        .position(|c| *c == synth.classes[0])
        .unwrap();
    let chosen: Vec<_> = items
        .iter()
        .filter(|i| i.label.as_deref() == Some(synth.classes[0].as_str()))
        .take(8)
        .collect();
    let coefs = |m: &emolime::model::Classifier, seed: u64| -> Vec<Vec<f32>> {
        let cfg = ExplainConfig {
            masks: MaskConfig {
                samples: SampleCount::Random(512),
                keep_prob: 0.5,
                seed,
            },
            ..ExplainConfig::default()
        };
        let mut e = Explainer::new(m, &cpu, cfg).unwrap();
        chosen
            .iter()
            .map(|item| {
                let p = e.preparer().load_and_prepare(item).unwrap();
                e.explain(&p).unwrap().fit.coefs.row(k).to_vec()
            })
            .collect()
    };
    let mean_agreement = |a: &[Vec<f32>], b: &[Vec<f32>]| {
        a.iter().zip(b).map(|(x, y)| ranking_agreement(x, y)).sum::<f64>() / a.len() as f64
    };
    let base = coefs(&trained, 7);
    let itself = mean_agreement(&base, &coefs(&trained, 8));
    let vs_shuffled = mean_agreement(&base, &coefs(&shuffled, 7));
    let vs_random = mean_agreement(&base, &coefs(&random, 7));
    eprintln!(
        "agreement: trained re-explained {itself:.3}, shuffled labels {vs_shuffled:.3}, random weights {vs_random:.3}"
    );
    assert!(itself > 0.9, "{itself}");
    assert!(vs_shuffled < itself - 0.3, "{vs_shuffled} vs {itself}");
    assert!(vs_random < itself - 0.3, "{vs_random} vs {itself}");
}

/// Training draws its initial weights on the CPU and its dropout masks on the host, so the
/// same seed trains the same network on the GPU as on the CPU path, up to the devices' float
/// rounding: the same predictions, probabilities within 1e-3.
#[test]
fn training_on_the_gpu_matches_training_on_the_cpu() {
    let Some(gpu_dev) = crate::common::gpu_device() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ComputeDevice::cpu("test");
    let on_cpu = train_on_corpus(&tmp.path().join("a"), &small_corpus(), 3, &cpu);
    let on_gpu = train_on_corpus(&tmp.path().join("b"), &small_corpus(), 3, &gpu_dev);
    // Both scored on the CPU path, on the training corpus's own spectrograms.
    let path = tmp.path().join("g.emolime");
    on_gpu.save(&path).unwrap();
    let on_gpu = Classifier::load(&path, &cpu.burn).unwrap();
    let inputs = collect_inputs(&tmp.path().join("a").join("manifest.csv")).unwrap();
    let (examples, _, _) = load_training_set(&inputs.items, &FrontEndConfig::default(), |_| {}).unwrap();
    let mut worst = 0f32;
    for e in &examples {
        let dims = [1, 128, e.n_frames];
        let a = on_cpu.probs_host(e.mel.clone(), dims).unwrap();
        let b = on_gpu.probs_host(e.mel.clone(), dims).unwrap();
        assert_eq!(emolime::model::argmax(&a), emolime::model::argmax(&b), "{a:?} vs {b:?}");
        worst = worst.max(crate::common::max_abs_diff(&a, &b));
    }
    eprintln!("largest probability difference, GPU- vs CPU-trained: {worst:.2e}");
    assert!(worst < 1e-3, "probabilities differ by {worst}");
}
