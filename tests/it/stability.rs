//! `--samples auto`: each utterance stops at the first multiple of 256 samples whose even and
//! odd halves rank the bands alike, and its explanation is exactly the fixed-count explanation
//! with that many samples.

use crate::common::{Rng, fresh_seed, max_abs_diff};
use crate::faithfulness::{OneBandModel, utterance};
use emolime::device::ComputeDevice;
use emolime::explain::{ExplainConfig, Explainer, half_agreement};
use emolime::model::SerModel;
use emolime::sampling::{AUTO_STEP, MaskConfig, SampleCount};
use ndarray::s;

fn config(samples: SampleCount, seed: u64) -> ExplainConfig {
    ExplainConfig {
        masks: MaskConfig {
            samples,
            keep_prob: 0.5,
            seed,
        },
        ..ExplainConfig::default()
    }
}

#[test]
fn auto_samples_stop_at_agreement_and_equal_a_fixed_count() {
    let seed = fresh_seed("auto samples");
    let mut rng = Rng(seed);
    let cpu = ComputeDevice::cpu("test");
    let model = OneBandModel::new(&cpu);
    for (target, max) in [(0.9f32, 2048usize), (0.999, 768)] {
        let mut auto = Explainer::new(&model, &cpu, config(SampleCount::Auto { target, max }, seed)).unwrap();
        for _ in 0..3 {
            let prepared = auto.preparer().prepare(&utterance(&mut rng)).unwrap();
            let exp = auto.explain(&prepared).unwrap();
            let used = exp.n_samples;
            let agreement = exp.half_agreement.unwrap();
            eprintln!("target {target}, cap {max}: {used} samples, halves agree at {agreement}");
            assert!(used == max || used.is_multiple_of(AUTO_STEP), "{used}");
            assert!(agreement >= target || used == max, "stopped early at {agreement}");
            let fixed_cfg = ExplainConfig {
                keep_samples: true,
                ..config(SampleCount::Random(used), seed)
            };
            let mut fixed = Explainer::new(&model, &cpu, fixed_cfg).unwrap();
            let same = fixed.explain(&prepared).unwrap();
            // The stopping rule: every earlier step fell short of the target.
            let preds = same.sample_probs.as_ref().unwrap();
            for k in (AUTO_STEP..used).step_by(AUTO_STEP) {
                let a = half_agreement(
                    fixed.masks().slice(s![..k, ..]),
                    &fixed.weights()[..k],
                    preds.slice(s![..k, ..]),
                    &fixed.config().surrogate,
                )
                .unwrap();
                assert!(a < target, "{k} samples already agree at {a}");
            }
            let diff = max_abs_diff(exp.fit.coefs.as_slice().unwrap(), same.fit.coefs.as_slice().unwrap());
            assert!(diff < 1e-5, "auto and --samples {used} differ by {diff}");
            assert_eq!(exp.probs, same.probs);
        }
    }
}

/// The stability rows equal independent explanations: seed-to-seed Spearman at N samples is
/// the agreement of two `--samples N` explanations with those seeds, and the reference is the
/// exhaustive explanation.
#[test]
fn stability_rows_equal_independent_explanations() {
    use emolime::stability::{StabilityConfig, StabilityRunner, ranking_agreement, summarize};
    let seed = fresh_seed("stability");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("u.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for v in utterance(&mut rng) {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    let item = emolime::input::InputItem {
        path: path.clone(),
        id: "u".into(),
        label: None,
        speaker: None,
        dataset: None,
        gender: None,
        ..Default::default()
    };
    let cpu = ComputeDevice::cpu("test");
    let model = OneBandModel::new(&cpu);
    let seeds = [seed % 1000, seed % 1000 + 1];
    let cfg = StabilityConfig {
        seeds: seeds.to_vec(),
        sample_counts: vec![64, 300],
        ..StabilityConfig::default()
    };
    let base = config(SampleCount::Random(10), 0);
    let mut runner = StabilityRunner::new(&model, &cpu, &base, cfg.clone()).unwrap();
    assert!(runner.has_exact_reference());
    let rows = runner.measure(0, &item).unwrap();
    assert_eq!(rows.len(), 2 * 2);
    let explain = |samples, seed| {
        let mut e = Explainer::new(&model, &cpu, config(samples, seed)).unwrap();
        let p = e.preparer().load_and_prepare(&item).unwrap();
        e.explain(&p).unwrap().fit.coefs
    };
    let exact = explain(SampleCount::Exhaustive, 0);
    for row in &rows {
        let k = model.classes().iter().position(|c| *c == row.class).unwrap();
        let a = explain(SampleCount::Random(row.n_samples), seeds[0]);
        let b = explain(SampleCount::Random(row.n_samples), seeds[1]);
        let (a, b) = (a.row(k).to_vec(), b.row(k).to_vec());
        let want = ranking_agreement(&a, &b);
        assert!((row.spearman_seeds - want).abs() < 1e-9, "{row:?} vs {want}");
        let want_exact =
            (ranking_agreement(&a, &exact.row(k).to_vec()) + ranking_agreement(&b, &exact.row(k).to_vec())) / 2.0;
        assert!((row.spearman_exact.unwrap() - want_exact).abs() < 1e-9, "{row:?}");
    }
    let s = summarize(&rows, &cfg);
    assert_eq!(s.n_utterances, 1);
    assert_eq!(s.counts.len(), 4);
}
