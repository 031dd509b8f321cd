//! Deletion curves through the engine: a model that looks at one band only is found faithful
//! (its explanation's MoRF curve falls below random, dAUC > 0 with an interval above 0), and
//! chosen masks score the same on the test GPU as on the CPU path.

use crate::common::{Rng, fresh_seed, gpu_device, max_abs_diff};
use burn::tensor::{Device, Tensor, TensorData};
use emolime::audio::FrontEndConfig;
use emolime::device::ComputeDevice;
use emolime::explain::{ExplainConfig, Explainer};
use emolime::faithfulness::{DeletionConfig, deletion_curves, deletion_masks, summarize};
use emolime::input::InputItem;
use emolime::model::{ModelInput, SerModel, read_f32};
use emolime::sampling::{MaskConfig, SampleCount};

/// Two classes; the first's probability is the share of mel power in rows `rows` (one band of
/// the default 8-band layout) against the mean power of an equally wide slice of the others.
pub(crate) struct OneBandModel {
    classes: Vec<String>,
    fe: FrontEndConfig,
    rows: std::ops::Range<usize>,
    device: Device,
}

impl SerModel for OneBandModel {
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn input(&self) -> ModelInput {
        ModelInput::MelPower(self.fe.clone())
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn min_samples(&self) -> usize {
        self.fe.n_fft
    }
    fn largest_tensor_bytes(&self, dim: usize) -> u64 {
        dim as u64 * 4
    }
    fn describe(&self) -> String {
        "one-band oracle".into()
    }
    fn probs(&self, batch: Tensor<2>) -> emolime::Result<Tensor<2>> {
        let [n, d] = batch.dims();
        let m = self.fe.n_mels;
        let t = d / m;
        let x = read_f32(batch)?;
        let mut out = Vec::with_capacity(n * 2);
        for s in 0..n {
            let row = |r: usize| x[s * d + r * t..s * d + (r + 1) * t].iter().sum::<f32>();
            let band: f32 = self.rows.clone().map(row).sum();
            let rest: f32 = (0..m).filter(|r| !self.rows.contains(r)).map(row).sum::<f32>() * self.rows.len() as f32
                / (m - self.rows.len()) as f32;
            let p = (band + 1e-9) / (band + rest + 2e-9);
            out.extend([p, 1.0 - p]);
        }
        Ok(Tensor::from_data(TensorData::new(out, [n, 2]), &self.device))
    }
}

impl OneBandModel {
    /// The oracle on `device`, looking at mel rows 32..48 (band 2 of 8).
    pub(crate) fn new(device: &ComputeDevice) -> Self {
        OneBandModel {
            classes: vec!["band".into(), "rest".into()],
            fe: FrontEndConfig::default(),
            rows: 32..48,
            device: device.burn.clone(),
        }
    }
}

fn oracle(device: &ComputeDevice) -> OneBandModel {
    OneBandModel::new(device)
}

/// Noise with a random tilt, so the band's share (and the top class) varies by utterance.
pub(crate) fn utterance(rng: &mut Rng) -> Vec<f32> {
    let tilt = rng.f32();
    let mut prev = 0.0f32;
    (0..16_000)
        .map(|_| {
            let w = rng.f32() - 0.5;
            prev = tilt * prev + w;
            0.1 * prev
        })
        .collect()
}

fn config(seed: u64) -> ExplainConfig {
    ExplainConfig {
        masks: MaskConfig {
            samples: SampleCount::Random(256),
            keep_prob: 0.5,
            seed,
        },
        ..ExplainConfig::default()
    }
}

#[test]
fn explanations_of_a_one_band_model_are_faithful() {
    let seed = fresh_seed("faithful");
    let mut rng = Rng(seed);
    let cpu = ComputeDevice::cpu("test");
    let model = oracle(&cpu);
    let mut explainer = Explainer::new(&model, &cpu, config(seed)).unwrap();
    let cfg = DeletionConfig {
        seed,
        ..DeletionConfig::default()
    };
    let prepared = explainer.preparer().prepare(&utterance(&mut rng)).unwrap();
    let wrong = explainer.score_masks(&prepared, &ndarray::Array2::ones((2, 5)));
    assert!(wrong.is_err(), "masks of 5 bands for an 8-band layout were accepted");
    let mut curves = vec![];
    for position in 0..12 {
        let prepared = explainer.preparer().prepare(&utterance(&mut rng)).unwrap();
        let exp = explainer.explain(&prepared).unwrap();
        let item = InputItem::new(format!("u{position}.wav"), format!("u{position}"));
        let c = deletion_curves(&mut explainer, &prepared, &exp, position, &item, &cfg).unwrap();
        // Nothing removed is the unperturbed input.
        assert!((c.morf.prob[0] - c.prob_unperturbed).abs() < 1e-5, "{c:?}");
        curves.push(c);
    }
    let s = summarize(&curves, &cfg).unwrap();
    eprintln!("{s:?}");
    assert_eq!(s.removed, vec![0, 1, 2, 4, 6, 7]);
    assert!(s.dauc_prob.low > 0.0, "dAUC interval not above 0: {:?}", s.dauc_prob);
    assert!(s.share_dauc_positive >= 0.9, "{}", s.share_dauc_positive);
    // Removing the most relevant band first changes more predictions than a random one.
    let (morf, random) = (&s.orders[0], &s.orders[2]);
    assert!(morf.mean_drop[1] > random.mean_drop[1], "{morf:?} vs {random:?}");
    assert!(s.lerf_gain_prob.mean > 0.0, "{:?}", s.lerf_gain_prob);
}

#[test]
fn chosen_masks_score_alike_on_gpu_and_cpu() {
    let Some(gpu) = gpu_device() else {
        eprintln!("no test GPU: skipped");
        return;
    };
    let seed = fresh_seed("score masks");
    let mut rng = Rng(seed);
    let cpu = ComputeDevice::cpu("test");
    let (cpu_model, gpu_model) = (oracle(&cpu), oracle(&gpu));
    let mut on_cpu = Explainer::new(&cpu_model, &cpu, config(seed)).unwrap();
    let mut on_gpu = Explainer::new(&gpu_model, &gpu, config(seed)).unwrap();
    let samples = utterance(&mut rng);
    let coefs: Vec<f32> = (0..8).map(|_| rng.f32()).collect();
    let masks = deletion_masks(&coefs, &[0, 1, 3, 5, 8], 3, seed, 1);
    let a = on_cpu
        .score_masks(&on_cpu.preparer().prepare(&samples).unwrap(), &masks)
        .unwrap();
    let b = on_gpu
        .score_masks(&on_gpu.preparer().prepare(&samples).unwrap(), &masks)
        .unwrap();
    assert_eq!(a.dim(), (25, 2));
    let diff = max_abs_diff(a.as_slice().unwrap(), b.as_slice().unwrap());
    assert!(diff < 1e-4, "gpu and cpu differ by {diff}");
}
