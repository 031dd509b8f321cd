//! The explanation engine: one utterance's audio in, one surrogate per class out, and the
//! corpus driver that streams many utterances through it.

use crate::audio::{self, FrontEndConfig, MelFilterbank, Stft};
use crate::bands::{BandConfig, BandLayout};
use crate::device::ComputeDevice;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::gpu::interop::{BoundTensor, submit_after_burn};
use crate::gpu::ops::{FitInputs, GpuMel, PerturbInputs, encode_fit, perturb_into, read_fits};
use crate::input::InputItem;
use crate::model::{Classifier, MIN_FRAMES, read_f32};
use crate::perturb::{FillMode, perturb_cpu, row_means};
use crate::sampling::{KernelKind, MaskConfig, kernel_weights, sample_masks};
use crate::surrogate::{SurrogateConfig, SurrogateFit, empty_sample, fit_cpu};
use burn::tensor::Tensor;
use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

/// Explanation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainConfig {
    /// Band layout.
    pub bands: BandConfig,
    /// Mask sampling (count, keep probability, seed).
    pub masks: MaskConfig,
    /// Surrogate kernel and ridge penalty.
    pub surrogate: SurrogateConfig,
    /// What replaces a removed band.
    pub fill: FillMode,
    /// Perturbed spectrograms per model call (further limited by the adapter's binding size).
    pub batch_size: usize,
    /// Keep each utterance's masks, weights and model outputs in the result.
    pub keep_samples: bool,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        ExplainConfig {
            bands: BandConfig::default(),
            masks: MaskConfig::default(),
            surrogate: SurrogateConfig::default(),
            fill: FillMode::Zero,
            batch_size: 256,
            keep_samples: false,
        }
    }
}

impl ExplainConfig {
    /// Checks every part.
    pub fn validate(&self) -> Result<()> {
        self.bands.validate()?;
        self.masks.validate(self.bands.band_count())?;
        self.surrogate.validate()?;
        if self.batch_size == 0 {
            return Err(Error::config("batch-size", "must be >= 1"));
        }
        Ok(())
    }
}

/// The explanation of one utterance, every class at once.
#[derive(Clone, Debug)]
pub struct UtteranceExplanation {
    /// The fitted surrogate. // coefficients [C, B]
    pub fit: SurrogateFit,
    /// Class probabilities of the unperturbed input (sample 0). // [C]
    pub probs: Vec<f32>,
    /// Frames of the spectrogram.
    pub n_frames: usize,
    /// Model outputs of every sample when `keep_samples` is set. // [N, C]
    pub sample_probs: Option<Array2<f32>>,
}

/// GPU state reused across utterances.
struct GpuState {
    mel: GpuMel,
    row_band: wgpu::Buffer,
    masks: wgpu::Buffer,
    weights: wgpu::Buffer,
}

/// Explains utterances with one classifier on one device; everything reusable is built once.
pub struct Explainer<'a> {
    cfg: ExplainConfig,
    classifier: &'a Classifier,
    device: &'a ComputeDevice,
    layout: BandLayout,
    stft: Stft,
    filterbank: MelFilterbank,
    masks: Array2<f32>,
    weights: Vec<f32>,
    empty: usize,
    gpu: Option<GpuState>,
}

impl<'a> Explainer<'a> {
    /// Prepares masks, weights, the band layout, FFT plans and GPU buffers.
    pub fn new(classifier: &'a Classifier, device: &'a ComputeDevice, cfg: ExplainConfig) -> Result<Self> {
        cfg.validate()?;
        let fe = &classifier.meta.front_end;
        let layout = BandLayout::new(&cfg.bands, fe.n_mels, fe.fmin_hz, fe.fmax_hz, fe.mel_scale)?;
        let shapley = matches!(cfg.surrogate.kernel, KernelKind::Shapley);
        let masks = sample_masks(&cfg.masks, layout.n_bands(), shapley)?;
        let weights = kernel_weights(&masks, cfg.surrogate.kernel)?;
        let empty = if shapley {
            empty_sample(masks.view()).unwrap_or(0)
        } else {
            0
        };
        let stft = fe.stft()?;
        let filterbank = fe.mel_filterbank()?;
        let gpu = device.gpu.as_ref().map(|ctx| {
            let masks_c = masks.as_standard_layout();
            GpuState {
                mel: GpuMel::new(ctx, &filterbank),
                row_band: ctx.upload("row band", &layout.row_band),
                masks: ctx.upload("masks", masks_c.as_slice().expect("standard layout")),
                weights: ctx.upload("weights", &weights),
            }
        });
        Ok(Explainer {
            cfg,
            classifier,
            device,
            layout,
            stft,
            filterbank,
            masks,
            weights,
            empty,
            gpu,
        })
    }

    /// The band layout used.
    pub fn layout(&self) -> &BandLayout {
        &self.layout
    }

    /// The masks used. // [N, B]
    pub fn masks(&self) -> &Array2<f32> {
        &self.masks
    }

    /// The kernel weights used. // [N]
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The settings.
    pub fn config(&self) -> &ExplainConfig {
        &self.cfg
    }

    /// Class names, model order.
    pub fn classes(&self) -> &[String] {
        &self.classifier.meta.classes
    }

    /// The front end of the model.
    pub fn front_end(&self) -> &FrontEndConfig {
        &self.classifier.meta.front_end
    }

    /// Power spectrogram of a waveform (CPU, rustfft).
    ///
    /// # Shapes
    /// `samples` [S] -> [K, T]
    pub fn power_spectrogram(&self, samples: &[f32]) -> Result<Array2<f32>> {
        self.stft.power(samples)
    }

    /// Explains one utterance from its power spectrogram (at least [`MIN_FRAMES`] frames).
    ///
    /// # Shapes
    /// `power` [K, T] -> coefficients [C, B]
    pub fn explain_power(&mut self, power: &Array2<f32>) -> Result<UtteranceExplanation> {
        let t = power.ncols();
        if t < MIN_FRAMES {
            return Err(Error::shape(
                "audio",
                format!("at least {MIN_FRAMES} frames"),
                format!("{t} frames"),
            ));
        }
        let m = self.filterbank.n_mels();
        let c = self.classifier.n_classes();
        let n = self.masks.nrows();
        let chunk = self.chunk_samples(m, t)?;
        let (fit, preds_host) = match (&mut self.gpu, &self.device.gpu) {
            (Some(state), Some(ctx)) => explain_gpu(
                ctx,
                state,
                self.classifier,
                &self.layout,
                &self.masks,
                self.empty,
                &self.cfg,
                power,
                chunk,
            )?,
            _ => {
                let mel = self.filterbank.apply(power.view())?;
                let means = row_means(mel.view());
                let mut preds = Array2::<f32>::zeros((n, c));
                let mut batch = Array3::<f32>::zeros((chunk, m, t));
                for start in (0..n).step_by(chunk) {
                    let nc = chunk.min(n - start);
                    let mut view = batch.slice_mut(ndarray::s![..nc, .., ..]);
                    perturb_cpu(
                        mel.view(),
                        means.view(),
                        &self.layout.row_band,
                        self.masks.view(),
                        start,
                        self.cfg.fill,
                        self.cfg.masks.seed,
                        view.view_mut(),
                    )?;
                    let flat: Vec<f32> = view.iter().copied().collect();
                    let p = self.classifier.probs_host(flat, [nc, m, t])?;
                    for (i, row) in p.chunks(c).enumerate() {
                        preds.row_mut(start + i).assign(&ndarray::ArrayView1::from(row));
                    }
                }
                let fit = fit_cpu(self.masks.view(), &self.weights, preds.view(), &self.cfg.surrogate)?;
                (fit, preds)
            }
        };
        let probs = preds_host.row(0).to_vec();
        let sample_probs = self.cfg.keep_samples.then_some(preds_host);
        Ok(UtteranceExplanation {
            fit,
            probs,
            n_frames: t,
            sample_probs,
        })
    }

    /// Samples per model call: the configured batch, limited by the binding size.
    fn chunk_samples(&self, m: usize, t: usize) -> Result<usize> {
        let per_sample = (m * t * 4) as u64;
        let limit = self.device.gpu.as_ref().map_or(u64::MAX, GpuContext::max_binding_bytes);
        let fit = (limit / per_sample.max(1)) as usize;
        if fit == 0 {
            return Err(Error::Device(format!(
                "one spectrogram of {t} frames ({per_sample} bytes) exceeds the adapter's {limit} byte binding"
            )));
        }
        Ok(self.cfg.batch_size.min(fit).min(self.masks.nrows()))
    }
}

/// The GPU path: mel on the GPU, masked batches written straight into the model's input tensor,
/// model outputs concatenated on the device and fitted there.
#[allow(clippy::too_many_arguments)]
fn explain_gpu(
    ctx: &GpuContext,
    state: &mut GpuState,
    classifier: &Classifier,
    layout: &BandLayout,
    masks: &Array2<f32>,
    empty: usize,
    cfg: &ExplainConfig,
    power: &Array2<f32>,
    chunk: usize,
) -> Result<(SurrogateFit, Array2<f32>)> {
    let (n, b) = masks.dim();
    let m = layout.n_mels();
    let t = power.ncols();
    let c = classifier.n_classes();
    let device = &classifier.device;
    let (mel, means) = state.mel.run(ctx, power.view())?;
    let inputs = PerturbInputs {
        mel,
        row_mean: means,
        row_band: &state.row_band,
        masks: &state.masks,
        n_mels: m,
        n_frames: t,
        n_bands: b,
        fill: cfg.fill,
        seed: cfg.masks.seed,
    };
    let mut outputs: Vec<Tensor<2>> = Vec::with_capacity(n.div_ceil(chunk));
    for start in (0..n).step_by(chunk) {
        let nc = chunk.min(n - start);
        let bound = BoundTensor::<4>::empty([nc, 1, m, t], device)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        perturb_into(ctx, &mut enc, &inputs, start, nc, bound.binding())?;
        submit_after_burn(device, &ctx.queue, enc)?;
        outputs.push(classifier.probs(bound.into_tensor()));
    }
    let preds = Tensor::cat(outputs, 0); // [N, C]
    let bound = BoundTensor::<2>::new(preds)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let fit_inputs = FitInputs {
        masks: &state.masks,
        weights: &state.weights,
        n_samples: n,
        n_bands: b,
    };
    let out = encode_fit(ctx, &mut enc, &fit_inputs, bound.binding(), 1, c, empty, &cfg.surrogate)?;
    submit_after_burn(device, &ctx.queue, enc)?;
    let fit = read_fits(ctx, &out, 1, c, b)?
        .pop()
        .ok_or_else(|| Error::Device("surrogate returned nothing".into()))?;
    let preds = read_f32(bound.into_tensor())?;
    let preds = Array2::from_shape_vec((n, c), preds).map_err(|e| Error::Device(e.to_string()))?;
    Ok((fit, preds))
}

/// One line of `explanations.jsonl`: one utterance and one class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplanationRecord {
    /// Utterance id (path relative to the input root).
    pub id: String,
    /// The audio file.
    pub path: String,
    /// Reference label, if known.
    pub label: Option<String>,
    /// Speaker, if known.
    pub speaker: Option<String>,
    /// The explained class.
    pub class: String,
    /// Its index in the model's outputs.
    pub class_index: usize,
    /// The model's top class for the unperturbed input.
    pub predicted: String,
    /// Probabilities of the unperturbed input, all classes, model order.
    pub probs: Vec<f32>,
    /// One coefficient per band (importance of keeping the band for this class).
    pub coefficients: Vec<f32>,
    /// Surrogate intercept.
    pub intercept: f32,
    /// Weighted R^2 of the surrogate.
    pub r2: f32,
    /// Surrogate prediction with every band kept.
    pub local_pred: f32,
    /// Band layout: kind and edges in Hz.
    pub bands: BandConfig,
    /// Band edges in Hz (`B + 1`).
    pub band_edges_hz: Vec<f32>,
    /// Surrogate kernel.
    pub kernel: KernelKind,
    /// Ridge penalty.
    pub alpha: f32,
    /// Fill of removed bands.
    pub fill: FillMode,
    /// Seed of the masks and noise.
    pub seed: u64,
    /// Perturbed samples used.
    pub n_samples: usize,
    /// Frames of the spectrogram.
    pub n_frames: usize,
    /// Device that computed it.
    pub device: String,
}

impl ExplanationRecord {
    /// One record per class of `exp`.
    pub fn for_each_class(
        item: &InputItem,
        exp: &UtteranceExplanation,
        explainer: &Explainer<'_>,
        device: &str,
    ) -> Vec<Self> {
        let classes = &explainer.classifier.meta.classes;
        let predicted = classes[crate::model::argmax(&exp.probs)].clone();
        let cfg = explainer.config();
        classes
            .iter()
            .enumerate()
            .map(|(k, class)| ExplanationRecord {
                id: item.id.clone(),
                path: item.path.display().to_string(),
                label: item.label.clone(),
                speaker: item.speaker.clone(),
                class: class.clone(),
                class_index: k,
                predicted: predicted.clone(),
                probs: exp.probs.clone(),
                coefficients: exp.fit.coefs.row(k).to_vec(),
                intercept: exp.fit.intercept[k],
                r2: exp.fit.r2[k],
                local_pred: exp.fit.local_pred[k],
                bands: explainer.layout.config.clone(),
                band_edges_hz: explainer.layout.edges_hz.clone(),
                kernel: cfg.surrogate.kernel,
                alpha: cfg.surrogate.alpha,
                fill: cfg.fill,
                seed: cfg.masks.seed,
                n_samples: explainer.masks.nrows(),
                n_frames: exp.n_frames,
                device: device.to_string(),
            })
            .collect()
    }
}

/// Decodes and checks one input file at the model's sample rate.
pub fn load_item(item: &InputItem, fe: &FrontEndConfig) -> Result<Vec<f32>> {
    audio::load_mono(
        &item.path,
        fe.sample_rate_hz,
        fe.win_len.max((MIN_FRAMES - 1) * fe.hop_len),
    )
}
