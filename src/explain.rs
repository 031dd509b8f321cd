//! The explanation engine: one utterance's audio in, one surrogate per class out, and the
//! corpus driver that streams many utterances through it.

use crate::audio::{self, FrontEndConfig, MelFilterbank, Stft};
use crate::bands::{BandConfig, BandLayout};
use crate::device::ComputeDevice;
use crate::error::{Error, Result, check_shape};
use crate::features::corpus::resolve_workers;
use crate::gpu::griffin_lim::GpuGriffinLim;
use crate::gpu::interop::{BoundTensor, submit_after_burn};
use crate::gpu::kernels::KernelId;
use crate::gpu::ops::{
    FitInputs, GpuMel, PerturbInputs, ResynthInputs, encode_fit, perturb_into, resynth_into, unpack_fits,
};
use crate::gpu::{GpuContext, GrowBuffer, PendingRead};
use crate::griffin_lim::{GriffinLimSynth, MelSignal};
use crate::input::InputItem;
use crate::model::cnn_rows::RowCachedCnn;
use crate::model::cnn_rows_device::{DeviceRowCnn, RowPlan};
use crate::model::{MIN_FRAMES, ModelInput, SerModel, read_f32};
use crate::perturb::{FillMode, perturb_cpu, row_means};
use crate::resynth::{BandSignals, Resynthesis, bin_bands, resynth_cpu};
use crate::sampling::{AUTO_STEP, DistinctMasks, KernelKind, MaskConfig, SampleCount, kernel_weights, sample_masks};
use crate::surrogate::{SurrogateConfig, SurrogateDesign, SurrogateFit, fit_cpu, packed_len};
use burn::tensor::{Tensor, TensorData};
use ndarray::Array2;
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
    /// Perturbed inputs per model call, further limited so that an input and the model's
    /// largest tensor fit one storage binding and the batch's activations fit the device's
    /// memory ([`memory_batch_limit`]); halved and retried when the device runs out of memory.
    pub batch_size: usize,
    /// Keep each utterance's masks, weights and model outputs in the result.
    pub keep_samples: bool,
    /// Explain at most the first this many seconds of each utterance (longer audio is
    /// cropped, and the output says so); `None` explains everything.
    pub max_seconds: Option<f32>,
    /// Score a mel model that offers it through its row-cached forward (each row of each layer
    /// computed once per state of the bands it sees: [`crate::model::cnn_rows`] on the host on
    /// the CPU path, [`crate::model::cnn_rows_device`] as device operations on a GPU) instead
    /// of building and scoring every masked input. Equal up to f32 rounding; not used with
    /// noise fill, whose rows differ per sample.
    #[serde(default = "row_cache_default")]
    pub row_cache: bool,
    /// How waveform models' perturbed inputs are made (ignored by mel models, which refuse
    /// Griffin-Lim).
    #[serde(default)]
    pub resynthesis: Resynthesis,
}

fn row_cache_default() -> bool {
    true
}

/// Perturbed inputs per model call when none is asked for: on the CPU path, for waveform models,
/// and [`ExplainConfig`]'s default.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// Perturbed inputs per model call for mel models on a GPU when none is asked for. On an H100,
/// 8000 one-second utterances at 1000 samples ran at 115, 172 and 220 utterances/s through the
/// CNN with batches of 256, 1024 and 4096, with identical explanations (`bash
/// scripts/gpu_check.sh batch`); 4096 of its inputs take about 100 MB, its largest activation
/// about 400 MB.
pub const GPU_MEL_BATCH_SIZE: usize = 4096;

/// Perturbed inputs per model call for waveform models on a GPU when none is asked for. On an
/// H100, a wav2vec 2.0 base-sized classifier scored one-second inputs at 675, 725 and 526 per
/// second in calls of 64, 128 and 256 (`bash scripts/gpu_check.sh w2v`); the batch is further
/// held to the device's memory and one storage binding.
pub const GPU_WAVEFORM_BATCH_SIZE: usize = 128;

/// Utterances whose scored inputs fill a batch of `batch_size`, with `scored_per_utterance` each:
/// the size of a packed group ([`crate::corpus::pack_size`]) and of a call of the row-cached
/// forward on the device, which must agree so that a packed group is one call (at least 1).
pub fn utterances_per_batch(batch_size: usize, scored_per_utterance: usize) -> usize {
    batch_size.div_ceil(scored_per_utterance.max(1)).max(1)
}

/// The batch size for `device` and a model consuming `input` when none is asked for:
/// [`GPU_MEL_BATCH_SIZE`] for mel models and [`GPU_WAVEFORM_BATCH_SIZE`] for waveform models on a
/// GPU, else [`DEFAULT_BATCH_SIZE`] (on the CPU path a larger batch costs memory and gains
/// nothing).
pub fn default_batch_size(device: &ComputeDevice, input: &ModelInput) -> usize {
    match (device.gpu.is_some(), input) {
        (true, ModelInput::MelPower(_)) => GPU_MEL_BATCH_SIZE,
        (true, ModelInput::Waveform { .. }) => GPU_WAVEFORM_BATCH_SIZE,
        _ => DEFAULT_BATCH_SIZE,
    }
}

impl Default for ExplainConfig {
    fn default() -> Self {
        ExplainConfig {
            bands: BandConfig::default(),
            masks: MaskConfig::default(),
            surrogate: SurrogateConfig::default(),
            fill: FillMode::Zero,
            batch_size: DEFAULT_BATCH_SIZE,
            keep_samples: false,
            max_seconds: None,
            row_cache: true,
            resynthesis: Resynthesis::Phase,
        }
    }
}

impl ExplainConfig {
    /// Checks every part.
    pub fn validate(&self) -> Result<()> {
        self.bands.validate()?;
        self.masks.validate(self.bands.band_count())?;
        self.surrogate.validate()?;
        if matches!(self.masks.samples, SampleCount::Auto { .. })
            && matches!(self.surrogate.kernel, KernelKind::Shapley)
        {
            return Err(Error::config(
                "samples",
                "auto needs the lime kernel (the Shapley fit constrains the empty and full samples, \
                 which a half of the samples lacks)",
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch-size", "must be >= 1"));
        }
        if let Resynthesis::GriffinLim(g) = &self.resynthesis {
            g.validate()?;
        }
        if let Some(s) = self.max_seconds
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::config(
                "max-seconds",
                format!("must be a positive number of seconds, got {s}"),
            ));
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
    /// Frames of the spectrogram (0 for waveform models).
    pub n_frames: usize,
    /// Duration explained, in seconds.
    pub seconds: f32,
    /// Duration of the decoded audio when it was cropped to `max_seconds`.
    pub cropped_from_seconds: Option<f32>,
    /// Model outputs of every sample used when `keep_samples` is set. // [N, C]
    pub sample_probs: Option<Array2<f32>>,
    /// Perturbed samples used (fewer than the masks with `--samples auto`).
    pub n_samples: usize,
    /// With `--samples auto`: the smallest over classes of the Spearman correlation between
    /// the band rankings of fits on the even and on the odd samples used.
    pub half_agreement: Option<f32>,
}

/// Explanations whose device work is submitted ([`Explainer::submit_many`]); hand them to
/// [`Explainer::collect`] for the results.
#[must_use = "the explanations are only returned by Explainer::collect"]
pub struct PendingExplanations {
    work: Work,
    utterances: Vec<UtteranceMeta>,
}

/// Where a [`PendingExplanations`] stands.
enum Work {
    /// Explained already (`--samples auto`, which decides per utterance).
    Explained(Vec<UtteranceExplanation>),
    /// Fits and model outputs `[N, C]` of each utterance, computed (the CPU path, or waited for).
    Done(Vec<(SurrogateFit, Array2<f32>)>),
    /// Submitted to the device, not waited for.
    OnDevice(DeviceFits),
}

/// What an explanation reports of its utterance besides the fit.
struct UtteranceMeta {
    n_frames: usize,
    seconds: f32,
    cropped_from_seconds: Option<f32>,
}

/// The host-side input of one utterance, made on a CPU thread by [`Preparer::prepare`]: all
/// the FFT work an explanation needs.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// What the explainer builds the model's inputs from.
    pub input: PreparedInput,
    /// Duration explained, in seconds.
    pub seconds: f32,
    /// Duration of the decoded audio when it was cropped to `--max-seconds`.
    pub cropped_from_seconds: Option<f32>,
}

/// The per-utterance arrays the explainer works from.
#[derive(Clone, Debug)]
pub enum PreparedInput {
    /// Power spectrogram, for models consuming mel power. // [K, T]
    Power(Array2<f32>),
    /// Band and fill signals, for waveform models. // rows [B + 1, S]
    Bands(BandSignals),
    /// Mel power spectrogram and length, for waveform models resynthesized by Griffin-Lim.
    /// // mel [M, T]
    Mel(MelSignal),
}

impl PreparedInput {
    /// The array's shape: `[K, T]` of a power spectrogram, `[B + 1, S]` of band rows, `(M, S)`
    /// of a mel signal.
    /// Utterances of one shape can be explained together ([`Explainer::explain_many`]).
    pub fn shape(&self) -> (usize, usize) {
        match self {
            PreparedInput::Power(p) => p.dim(),
            PreparedInput::Bands(b) => b.rows.dim(),
            PreparedInput::Mel(m) => (m.mel.nrows(), m.n_samples),
        }
    }
}

/// Decodes inputs and makes their [`Prepared`] form; cheap to clone and `Send`, so corpus runs
/// do this on worker threads while the device explains.
#[derive(Clone, Debug)]
pub struct Preparer {
    input: ModelInput,
    front_end: FrontEndConfig,
    stft: Stft,
    bins: Vec<Option<u32>>,
    n_bands: usize,
    fill: FillMode,
    seed: u64,
    min_samples: usize,
    max_samples: Option<usize>,
    /// Set for waveform models resynthesized by Griffin-Lim.
    griffin_lim: Option<std::sync::Arc<GriffinLimSynth>>,
}

impl Preparer {
    /// Decodes one input at the model's rate and checks it is long enough for the model.
    pub fn load(&self, item: &InputItem) -> Result<Vec<f32>> {
        audio::load_mono(&item.path, self.front_end.sample_rate_hz, self.min_samples)
    }

    /// The FFT work of one utterance: its power spectrogram (mel models) or its band signals
    /// (waveform models).
    ///
    /// # Shapes
    /// `samples` [S] -> [K, T] or rows [B + 1, S]
    pub fn prepare(&self, samples: &[f32]) -> Result<Prepared> {
        let rate = self.front_end.sample_rate_hz as f32;
        let full = samples.len();
        let samples = match self.max_samples {
            Some(max) if full > max => &samples[..max],
            _ => samples,
        };
        let cropped_from_seconds = (samples.len() < full).then_some(full as f32 / rate);
        if samples.len() < self.min_samples {
            return Err(Error::shape(
                "audio",
                format!("at least {} samples", self.min_samples),
                format!("{} samples", samples.len()),
            ));
        }
        let input = match self.input {
            ModelInput::MelPower(_) => self.stft.power(samples).map(PreparedInput::Power),
            ModelInput::Waveform { .. } => match &self.griffin_lim {
                Some(synth) => synth.prepare(samples).map(PreparedInput::Mel),
                None => BandSignals::new(&self.stft, &self.bins, self.n_bands, samples, self.fill, self.seed)
                    .map(PreparedInput::Bands),
            },
        }?;
        Ok(Prepared {
            input,
            seconds: samples.len() as f32 / rate,
            cropped_from_seconds,
        })
    }

    /// Decodes and prepares one input; a failure names the file.
    pub fn load_and_prepare(&self, item: &InputItem) -> Result<Prepared> {
        let samples = self.load(item)?;
        self.prepare(&samples).map_err(|e| e.into_bad_audio(&item.path))
    }
}

/// GPU state reused across utterances.
struct GpuState {
    mel: Option<GpuMel>,
    row_band: wgpu::Buffer,
    /// Every sample's mask. // [N, B]
    masks: wgpu::Buffer,
    /// The surrogate design with the masks scored (the distinct ones, when some repeat) and
    /// their weights.
    fit: FitInputs,
    band_rows: GrowBuffer,
    /// The model's row-cached forward as device operations, when it offers one (mel models with
    /// zero or mean fill, [`ExplainConfig::row_cache`]).
    rows: Option<GpuRows>,
    /// Griffin-Lim on the device, for waveform models resynthesized by it (power-of-two FFT
    /// lengths; other lengths run it on the host threads).
    griffin_lim: Option<GpuGriffinLim>,
}

/// [`DeviceRowCnn`] with its plan for the design's masks, and a two-row mask buffer (every
/// band kept, every band removed) that makes an utterance's kept and removed mel rows.
struct GpuRows {
    net: DeviceRowCnn,
    plan: RowPlan,
    ends: wgpu::Buffer,
}

/// Time spent in each device stage of [`Explainer::explain`], summed over utterances, when
/// profiling is on ([`Explainer::set_profiling`]). On a GPU each stage is waited for before the
/// next starts, so the stages do not overlap as they do in a normal run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Utterances explained while profiling.
    pub utterances: usize,
    /// Building the perturbed inputs (masked spectrograms or resynthesized waveforms), seconds.
    pub masks_s: f64,
    /// Running the model on them and reading its outputs, seconds.
    pub scoring_s: f64,
    /// Fitting the surrogates and reading them back, seconds.
    pub surrogate_s: f64,
}

/// Explains utterances with one model on one device; everything reusable is built once.
pub struct Explainer<'a> {
    profile: Option<StageTimes>,
    cfg: ExplainConfig,
    model: &'a dyn SerModel,
    device: &'a ComputeDevice,
    layout: BandLayout,
    preparer: Preparer,
    filterbank: Option<MelFilterbank>,
    masks: Array2<f32>,
    weights: Vec<f32>,
    /// The surrogate's projection for the scored masks (`distinct`'s, else `masks`) and their
    /// weights, built once.
    design: SurrogateDesign,
    gpu: Option<GpuState>,
    /// The model's row-cached host forward, on the CPU path when [`ExplainConfig::row_cache`].
    host: Option<RowCachedCnn>,
    /// The samples' distinct masks, when some repeat and the perturbed input is a function of
    /// the mask alone (not with noise fill on mel rows): each is scored once.
    distinct: Option<DistinctMasks>,
    /// Inputs per model call after the device ran out of memory ([`with_halving`]).
    reduced_batch: Option<usize>,
}

/// The front end that defines bands and the STFT for a model: its own for mel models; for
/// waveform models the default analysis (n_fft 2048, hop 512, 128 Slaney mel rows up to
/// 8 kHz or the Nyquist frequency) at its rate, so bands match a mel model's band for band.
pub fn analysis_front_end(input: &ModelInput) -> FrontEndConfig {
    match input {
        ModelInput::MelPower(fe) => fe.clone(),
        ModelInput::Waveform { sample_rate_hz } => FrontEndConfig {
            sample_rate_hz: *sample_rate_hz,
            fmax_hz: (*sample_rate_hz as f32 / 2.0).min(8000.0),
            ..FrontEndConfig::default()
        },
    }
}

impl<'a> Explainer<'a> {
    /// Prepares masks, weights, the band layout, FFT plans and GPU buffers.
    pub fn new(model: &'a dyn SerModel, device: &'a ComputeDevice, cfg: ExplainConfig) -> Result<Self> {
        cfg.validate()?;
        if model.device() != &device.burn {
            // Else every utterance would fail alone, with an error about tensors.
            return Err(Error::config(
                "device",
                format!(
                    "the model is loaded on {:?} and the explainer runs on {} ({:?}): load the model on the explainer's device",
                    model.device(),
                    device.description,
                    device.burn
                ),
            ));
        }
        let input = model.input();
        let fe = analysis_front_end(&input);
        let layout = BandLayout::new(&cfg.bands, fe.n_mels, fe.fmin_hz, fe.fmax_hz, fe.mel_scale)?;
        let shapley = matches!(cfg.surrogate.kernel, KernelKind::Shapley);
        let masks = sample_masks(&cfg.masks, layout.n_bands(), shapley)?;
        let weights = kernel_weights(&masks, cfg.surrogate.kernel)?;
        let stft = fe.stft()?;
        let (filterbank, bins) = match &input {
            ModelInput::MelPower(_) => (Some(fe.mel_filterbank()?), vec![]),
            ModelInput::Waveform { sample_rate_hz } => (None, bin_bands(&layout, fe.n_fft, *sample_rate_hz)?),
        };
        let mut min_samples = model.min_samples().max(1);
        if matches!(input, ModelInput::Waveform { .. }) {
            // The band split needs one STFT frame.
            min_samples = min_samples.max(stft.min_signal_len());
        }
        let fe_rate = fe.sample_rate_hz;
        if let Some(max) = cfg.max_seconds {
            let min_s = min_samples as f32 / fe_rate as f32;
            if max < min_s {
                return Err(Error::config(
                    "max-seconds",
                    format!("{max} s is shorter than the {min_samples} samples ({min_s} s) the model needs"),
                ));
            }
        }
        let griffin_lim = match (&input, cfg.resynthesis) {
            (_, Resynthesis::Phase) => None,
            (ModelInput::Waveform { .. }, Resynthesis::GriffinLim(g)) => Some(std::sync::Arc::new(
                GriffinLimSynth::new(stft.clone(), fe.mel_filterbank()?, g)?,
            )),
            (ModelInput::MelPower(_), Resynthesis::GriffinLim(_)) => {
                return Err(Error::config(
                    "resynthesis",
                    "griffin-lim makes waveforms, and this model consumes mel power spectrograms",
                ));
            }
        };
        // Griffin-Lim draws its initial phases per sample, and noise fill of mel rows its noise:
        // there a mask drawn twice makes two different inputs.
        let mask_only =
            !matches!((&input, cfg.fill), (ModelInput::MelPower(_), FillMode::Noise)) && griffin_lim.is_none();
        let distinct = mask_only
            .then(|| DistinctMasks::of(masks.view()))
            .filter(|d| d.masks.nrows() < masks.nrows());
        // The surrogate is fitted on what is scored: each distinct mask once, with the summed
        // weight of its samples (the same fit as on every sample).
        let design = match &distinct {
            Some(d) => SurrogateDesign::new(d.masks.view(), &d.summed_weights(&weights)?, &cfg.surrogate)?,
            None => SurrogateDesign::new(masks.view(), &weights, &cfg.surrogate)?,
        };
        let preparer = Preparer {
            input,
            front_end: fe,
            stft,
            bins,
            n_bands: layout.n_bands(),
            fill: cfg.fill,
            seed: cfg.masks.seed,
            min_samples,
            max_samples: cfg.max_seconds.map(|s| ((s * fe_rate as f32) as usize).max(1)),
            griffin_lim: griffin_lim.clone(),
        };
        let host_rows = match (cfg.row_cache, cfg.fill, &filterbank) {
            (true, FillMode::Zero | FillMode::Mean, Some(_)) => model.row_cached()?,
            _ => None,
        };
        let gpu_rows = match (&device.gpu, &host_rows, &filterbank) {
            (Some(ctx), Some(host), Some(fb)) => {
                let net = DeviceRowCnn::new(host, &device.burn)?;
                let plan = net.plan(fb.n_mels(), &layout.row_band, design.masks().view())?;
                let b = layout.n_bands();
                let ends: Vec<f32> = (0..2 * b).map(|i| if i < b { 1.0 } else { 0.0 }).collect();
                Some(GpuRows {
                    net,
                    plan,
                    ends: ctx.upload("kept and removed masks", &ends),
                })
            }
            _ => None,
        };
        let gpu_griffin_lim = match (&device.gpu, &griffin_lim) {
            (Some(ctx), Some(synth)) if GpuGriffinLim::supports(synth) => Some(GpuGriffinLim::new(ctx, synth)?),
            _ => None,
        };
        if let Some(ctx) = &device.gpu {
            // The kernels the explain loop dispatches are compiled now, not inside its first
            // group (the blocks', the head's and Griffin-Lim's by their owners above).
            let resynth = griffin_lim.is_none().then_some(KernelId::Resynth);
            let per_input: &[KernelId] = match &preparer.input {
                ModelInput::MelPower(_) => &[KernelId::Mel, KernelId::RowMean, KernelId::Perturb],
                ModelInput::Waveform { .. } => resynth.as_slice(),
            };
            for &id in per_input.iter().chain(&[KernelId::Surrogate]) {
                ctx.kernels.get(id)?;
            }
        }
        let gpu = device.gpu.as_ref().map(|ctx| GpuState {
            rows: gpu_rows,
            griffin_lim: gpu_griffin_lim,
            mel: filterbank.as_ref().map(|fb| GpuMel::new(ctx, fb)),
            row_band: ctx.upload("row band", &layout.row_band),
            masks: ctx.upload("masks", masks.as_standard_layout().as_slice().expect("standard layout")),
            fit: FitInputs::upload(ctx, &design),
            band_rows: GrowBuffer::new("band rows"),
        });
        let host = match device.gpu {
            None => host_rows,
            Some(_) => None,
        };
        Ok(Explainer {
            host,
            distinct,
            reduced_batch: None,
            profile: None,
            cfg,
            model,
            device,
            layout,
            preparer,
            filterbank,
            masks,
            weights,
            design,
            gpu,
        })
    }

    /// Whether the explanations are scored through the model's row-cached forward (on the host
    /// or on the device) rather than by building every masked input.
    pub fn row_cached(&self) -> bool {
        self.host.is_some() || self.gpu.as_ref().is_some_and(|g| g.rows.is_some())
    }

    /// Whether Griffin-Lim resynthesis (`--resynthesis griffin-lim`) runs on the device; it runs
    /// on the host threads on the CPU path and for FFT lengths that are not powers of two.
    pub fn griffin_lim_on_device(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.griffin_lim.is_some())
    }

    /// Inputs per model call since the device ran out of memory, if it did: every model call
    /// that fails so is retried with half the inputs, and later calls start there.
    pub fn reduced_batch(&self) -> Option<usize> {
        self.reduced_batch
    }

    /// Turns stage timing on (resetting it) or off. Profiling waits for the device between
    /// stages, which costs a little throughput on a GPU.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(StageTimes::default);
    }

    /// The stage times gathered since profiling was turned on.
    pub fn stage_times(&self) -> Option<StageTimes> {
        self.profile
    }

    /// Inputs the model scores per utterance in [`Explainer::explain_many`]: the number of
    /// distinct masks among the samples when the perturbed input depends on the mask alone
    /// (each is scored once and its outputs shared), else the sample count.
    pub fn scored_per_utterance(&self) -> usize {
        self.distinct.as_ref().map_or(&self.masks, |d| &d.masks).nrows()
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
        self.model.classes()
    }

    /// The model explained.
    pub fn model(&self) -> &dyn SerModel {
        self.model
    }

    /// The front end defining the bands and the STFT (see [`analysis_front_end`]).
    pub fn front_end(&self) -> &FrontEndConfig {
        &self.preparer.front_end
    }

    /// A preparer for worker threads.
    pub fn preparer(&self) -> Preparer {
        self.preparer.clone()
    }

    /// Power spectrogram of a waveform (CPU, rustfft).
    ///
    /// # Shapes
    /// `samples` [S] -> [K, T]
    pub fn power_spectrogram(&self, samples: &[f32]) -> Result<Array2<f32>> {
        self.preparer.stft.power(samples)
    }

    /// Explains one utterance of a mel model from its power spectrogram (at least
    /// [`MIN_FRAMES`] frames).
    ///
    /// # Shapes
    /// `power` [K, T] -> coefficients [C, B]
    pub fn explain_power(&mut self, power: &Array2<f32>) -> Result<UtteranceExplanation> {
        let fe = &self.preparer.front_end;
        let seconds = (power.ncols().saturating_sub(1) * fe.hop_len) as f32 / fe.sample_rate_hz as f32;
        self.explain(&Prepared {
            input: PreparedInput::Power(power.clone()),
            seconds,
            cropped_from_seconds: None,
        })
    }

    /// Explains one utterance from its waveform (any model kind).
    ///
    /// # Shapes
    /// `samples` [S] -> coefficients [C, B]
    pub fn explain_waveform(&mut self, samples: &[f32]) -> Result<UtteranceExplanation> {
        let prepared = self.preparer.prepare(samples)?;
        self.explain(&prepared)
    }

    /// Explains one prepared utterance: every perturbed input built on the device, scored in
    /// batches, and the surrogate fitted for every class.
    pub fn explain(&mut self, utterance: &Prepared) -> Result<UtteranceExplanation> {
        self.explain_many(&[utterance])?
            .pop()
            .ok_or_else(|| Error::Device("no explanation returned".into()))
    }

    /// Explains utterances whose model inputs have one size together: their perturbed inputs
    /// are packed into shared model calls (a call may hold the last samples of one utterance
    /// and the first of the next), and on a GPU their surrogates are fitted in one dispatch.
    /// Each result equals [`Explainer::explain`] of that utterance alone, up to the rounding of
    /// the model's batched arithmetic.
    ///
    /// # Shapes
    /// each input `[K, T]` (one `T`) or rows `[B + 1, S]` (one `S`) -> coefficients `[C, B]` each
    pub fn explain_many(&mut self, utterances: &[&Prepared]) -> Result<Vec<UtteranceExplanation>> {
        let pending = self.start(utterances, true)?;
        self.collect(pending)
    }

    /// Starts explaining utterances whose model inputs have one size, as
    /// [`Explainer::explain_many`] does, and returns once their work is submitted to the device;
    /// [`Explainer::collect`] waits for it and returns the explanations. Submitting the next
    /// group before collecting this one lets the host prepare and record that group while the
    /// device computes this one (the corpus driver keeps one group in flight). On the CPU path
    /// the work is done before this returns.
    ///
    /// The device running out of memory while the work is recorded halves the batch and
    /// retries, as in [`Explainer::explain_many`]; an error that only the wait reveals is
    /// returned by [`Explainer::collect`], and the caller retries with
    /// [`Explainer::explain_many`].
    ///
    /// # Shapes
    /// each input `[K, T]` (one `T`) or rows `[B + 1, S]` (one `S`)
    pub fn submit_many(&mut self, utterances: &[&Prepared]) -> Result<PendingExplanations> {
        self.start(utterances, false)
    }

    /// Waits for explanations started by [`Explainer::submit_many`] and returns them in the
    /// order given there.
    ///
    /// # Shapes
    /// -> coefficients `[C, B]` each
    pub fn collect(&mut self, pending: PendingExplanations) -> Result<Vec<UtteranceExplanation>> {
        let PendingExplanations { work, utterances } = pending;
        let fits = match work {
            Work::Explained(exps) => return Ok(exps),
            Work::Done(fits) => fits,
            Work::OnDevice(fits) => {
                let ctx = self
                    .device
                    .gpu
                    .as_ref()
                    .ok_or_else(|| Error::Device("device work pending on an explainer without a gpu".into()))?;
                fits.finish(ctx, self.distinct.as_ref(), self.profile.as_mut())?
            }
        };
        if let Some(t) = self.profile.as_mut() {
            t.utterances += utterances.len();
        }
        let keep = self.cfg.keep_samples;
        Ok(fits
            .into_iter()
            .zip(utterances)
            .map(|((fit, preds), u)| UtteranceExplanation {
                probs: preds.row(0).to_vec(),
                fit,
                n_frames: u.n_frames,
                seconds: u.seconds,
                cropped_from_seconds: u.cropped_from_seconds,
                sample_probs: keep.then_some(preds),
                n_samples: self.masks.nrows(),
                half_agreement: None,
            })
            .collect())
    }

    /// [`Explainer::submit_many`], or with `wait` the whole of [`Explainer::explain_many`] but
    /// the assembly of the explanations (so that a failure the wait reveals is retried with
    /// fewer inputs per call).
    fn start(&mut self, utterances: &[&Prepared], wait: bool) -> Result<PendingExplanations> {
        if utterances.is_empty() {
            return Ok(PendingExplanations {
                work: Work::Explained(vec![]),
                utterances: vec![],
            });
        }
        if let SampleCount::Auto { target, .. } = self.cfg.masks.samples {
            let exps = utterances
                .iter()
                .map(|u| self.explain_auto(u, target))
                .collect::<Result<Vec<_>>>()?;
            return Ok(PendingExplanations {
                work: Work::Explained(exps),
                utterances: vec![],
            });
        }
        let sizes = utterances
            .iter()
            .map(|u| self.input_size(&u.input))
            .collect::<Result<Vec<_>>>()?;
        let dim = sizes[0].0;
        if let Some((other, _)) = sizes.iter().find(|(d, _)| *d != dim) {
            return Err(Error::shape(
                "utterances explained together",
                format!("one input size ({dim} values, as the first)"),
                format!("{other} values"),
            ));
        }
        let scored = self.distinct.as_ref().map_or(&self.masks, |d| &d.masks).nrows();
        let total = utterances.len() * scored;
        let mut chunk = self.chunk_samples(dim, total)?;
        if self.gpu.as_ref().is_some_and(|g| g.rows.is_some()) {
            // The row-cached forward on the device builds no masked inputs, so the limits that
            // size batches of them do not apply: its calls take the batch's worth of
            // utterances (halved on out of memory), one call per packed group by default.
            chunk = self.reduced_batch.unwrap_or(self.cfg.batch_size).min(total).max(1);
        }
        let inputs: Vec<&PreparedInput> = utterances.iter().map(|u| &u.input).collect();
        let mut profile = self.profile.as_mut();
        let work = match (&mut self.gpu, &self.device.gpu) {
            (Some(state), Some(ctx)) => {
                let distinct = self.distinct.as_ref();
                let (work, used) = with_halving(
                    chunk,
                    |chunk| {
                        let fits = record_gpu(
                            ctx,
                            state,
                            self.model,
                            &self.design,
                            &self.layout.row_band,
                            &self.cfg,
                            &inputs,
                            dim,
                            chunk,
                            profile.as_deref_mut(),
                        )?;
                        Ok(match wait {
                            true => Work::Done(fits.finish(ctx, distinct, profile.as_deref_mut())?),
                            false => Work::OnDevice(fits),
                        })
                    },
                    || self.device.burn.memory_cleanup(),
                )?;
                if used < chunk {
                    self.reduced_batch = Some(used);
                }
                work
            }
            _ => Work::Done(explain_cpu(
                self.model,
                self.host.as_ref(),
                &self.layout,
                &self.design,
                self.distinct.as_ref(),
                self.filterbank.as_ref(),
                &self.cfg,
                &inputs,
                dim,
                chunk,
                profile,
            )?),
        };
        Ok(PendingExplanations {
            work,
            utterances: utterances
                .iter()
                .zip(&sizes)
                .map(|(u, &(_, n_frames))| UtteranceMeta {
                    n_frames,
                    seconds: u.seconds,
                    cropped_from_seconds: u.cropped_from_seconds,
                })
                .collect(),
        })
    }

    /// The model's outputs for chosen masks of one utterance: each mask's perturbed input is
    /// built the way an explanation builds its samples (same fill, same noise for the same
    /// row), on the device, and scored in batches of `batch_size`. Used by deletion curves
    /// ([`crate::faithfulness`]) and anything else that needs the model on given masks.
    ///
    /// # Shapes
    /// `masks` [M, B] (1 keeps a band, 0 removes it) -> probabilities [M, C]
    pub fn score_masks(&mut self, utterance: &Prepared, masks: &Array2<f32>) -> Result<Array2<f32>> {
        let b = self.layout.n_bands();
        check_shape("masks", &[masks.nrows(), b], &[masks.nrows(), masks.ncols()])?;
        if masks.nrows() == 0 {
            return Ok(Array2::zeros((0, self.classes().len())));
        }
        let (dim, _) = self.input_size(&utterance.input)?;
        self.score_on(utterance, MaskSource::Given(masks), 0..masks.nrows(), dim)
    }

    /// Model outputs for the explainer's own samples `rows` of one utterance (the same inputs,
    /// fill and noise as in a full explanation).
    ///
    /// # Shapes
    /// -> [rows.len(), C]
    fn score_rows(&mut self, utterance: &Prepared, rows: std::ops::Range<usize>, dim: usize) -> Result<Array2<f32>> {
        self.score_on(utterance, MaskSource::Own, rows, dim)
    }

    /// The perturbed inputs of mask rows `rows` of `source` for one utterance of `dim` values,
    /// built on the device and scored in batches.
    ///
    /// # Shapes
    /// -> [rows.len(), C]
    fn score_on(
        &mut self,
        utterance: &Prepared,
        source: MaskSource<'_>,
        rows: std::ops::Range<usize>,
        dim: usize,
    ) -> Result<Array2<f32>> {
        let n = rows.len();
        let chunk = self.chunk_samples(dim, n)?;
        let inputs = [&utterance.input];
        let profile = self.profile.as_mut();
        let mut preds = match (&mut self.gpu, &self.device.gpu) {
            (Some(state), Some(ctx)) => {
                let uploaded;
                let (masks, host_masks) = match source {
                    MaskSource::Own => (&state.masks, self.masks.view()),
                    MaskSource::Given(m) => {
                        let mc = m.as_standard_layout();
                        uploaded = ctx.upload("chosen masks", mc.as_slice().expect("standard layout"));
                        (&uploaded, m.view())
                    }
                };
                let mut profile = profile;
                let (p, used) = with_halving(
                    chunk,
                    |chunk| {
                        let scoring = GpuScoring {
                            mel: &mut state.mel,
                            griffin_lim: state.griffin_lim.as_mut(),
                            band_rows: &mut state.band_rows,
                            row_band: &state.row_band,
                            masks,
                            host_masks,
                            row_band_host: &self.layout.row_band,
                            first_sample: rows.start,
                            n_samples: n,
                            n_bands: self.layout.n_bands(),
                        };
                        let outputs = score_gpu(
                            ctx,
                            scoring,
                            self.model,
                            &self.cfg,
                            &inputs,
                            dim,
                            chunk,
                            profile.as_deref_mut(),
                        )?;
                        read_f32(Tensor::cat(outputs, 0))
                    },
                    || self.device.burn.memory_cleanup(),
                )?;
                if used < chunk {
                    self.reduced_batch = Some(used);
                }
                let c = self.model.classes().len();
                vec![Array2::from_shape_vec((n, c), p).map_err(|e| Error::Device(e.to_string()))?]
            }
            _ => {
                let masks = match source {
                    MaskSource::Own => &self.masks,
                    MaskSource::Given(m) => m,
                };
                score_cpu(
                    self.model,
                    self.host.as_ref(),
                    &self.layout,
                    masks,
                    rows,
                    self.filterbank.as_ref(),
                    &self.cfg,
                    &inputs,
                    dim,
                    chunk,
                    profile,
                )?
            }
        };
        preds
            .pop()
            .ok_or_else(|| Error::Device("no model outputs returned".into()))
    }

    /// `--samples auto`: scores [`AUTO_STEP`] more of the explainer's samples at a time until
    /// surrogates fitted on the even and on the odd samples used rank the bands alike for
    /// every class (Spearman >= `target`) or every sample is used, then fits on all samples
    /// used. Surrogates are fitted on the host here (the CPU twin of the GPU fit).
    fn explain_auto(&mut self, utterance: &Prepared, target: f32) -> Result<UtteranceExplanation> {
        let (dim, n_frames) = self.input_size(&utterance.input)?;
        let max = self.masks.nrows();
        let c = self.model.classes().len();
        let mut preds = Array2::<f32>::zeros((max, c));
        let (mut used, mut agreement) = (0, 0.0f32);
        while used < max {
            let next = (used + AUTO_STEP).min(max);
            let p = self.score_rows(utterance, used..next, dim)?;
            preds.slice_mut(ndarray::s![used..next, ..]).assign(&p);
            used = next;
            let t0 = std::time::Instant::now();
            agreement = half_agreement(
                self.masks.slice(ndarray::s![..used, ..]),
                &self.weights[..used],
                preds.slice(ndarray::s![..used, ..]),
                &self.cfg.surrogate,
            )?;
            if let Some(t) = self.profile.as_mut() {
                t.surrogate_s += t0.elapsed().as_secs_f64();
            }
            if agreement >= target {
                break;
            }
        }
        let t0 = std::time::Instant::now();
        let preds = preds.slice(ndarray::s![..used, ..]).to_owned();
        let fit = fit_cpu(
            self.masks.slice(ndarray::s![..used, ..]),
            &self.weights[..used],
            preds.view(),
            &self.cfg.surrogate,
        )?;
        if let Some(t) = self.profile.as_mut() {
            t.surrogate_s += t0.elapsed().as_secs_f64();
            t.utterances += 1;
        }
        Ok(UtteranceExplanation {
            probs: preds.row(0).to_vec(),
            fit,
            n_frames,
            seconds: utterance.seconds,
            cropped_from_seconds: utterance.cropped_from_seconds,
            sample_probs: self.cfg.keep_samples.then_some(preds),
            n_samples: used,
            half_agreement: Some(agreement),
        })
    }

    /// Values per model input and spectrogram frames (0 for waveforms) of `prepared`, checked
    /// against what the model consumes.
    fn input_size(&self, prepared: &PreparedInput) -> Result<(usize, usize)> {
        match (prepared, &self.filterbank) {
            (PreparedInput::Power(power), Some(fb)) => {
                let t = power.ncols();
                check_shape("power", &[fb.n_freq_bins(), t], &[power.nrows(), t])?;
                if t < MIN_FRAMES {
                    return Err(Error::shape(
                        "audio",
                        format!("at least {MIN_FRAMES} frames"),
                        format!("{t} frames"),
                    ));
                }
                Ok((fb.n_mels() * t, t))
            }
            (PreparedInput::Bands(bands), None) => {
                check_shape("band rows", &[self.layout.n_bands() + 1], &[bands.rows.nrows()])?;
                Ok((bands.n_samples(), 0))
            }
            (PreparedInput::Mel(signal), None) => {
                check_shape("mel rows", &[self.layout.row_band.len()], &[signal.mel.nrows()])?;
                Ok((signal.n_samples, 0))
            }
            _ => Err(Error::config(
                "model",
                "the prepared input does not match what the model consumes",
            )),
        }
    }

    /// Samples per model call: the configured batch, limited so that the input and the largest
    /// tensor the model makes fit one storage binding.
    fn chunk_samples(&self, dim: usize, total: usize) -> Result<usize> {
        let per_sample = (dim as u64 * 4).max(self.model.largest_tensor_bytes(dim));
        let limit = self.device.gpu.as_ref().map_or(u64::MAX, GpuContext::max_binding_bytes);
        let fit = (limit / per_sample.max(1)) as usize;
        if fit == 0 {
            return Err(Error::Device(format!(
                "one input of {dim} values needs a {per_sample} byte tensor, over the adapter's {limit} byte \
                 binding; explain a shorter part with --max-seconds"
            )));
        }
        let memory = self
            .device
            .gpu
            .as_ref()
            .and_then(|ctx| ctx.summary.device_memory_bytes)
            .map_or(usize::MAX, |bytes| memory_batch_limit(bytes, per_sample));
        let batch = self.reduced_batch.unwrap_or(self.cfg.batch_size);
        Ok(batch.min(fit).min(memory).min(total))
    }
}

/// Share of the device's memory a batch's activations may take ([`memory_batch_limit`]).
pub const BATCH_MEMORY_SHARE: f64 = 0.5;

/// Per-sample tensors of the largest size taken to be alive at once during a forward: the
/// input, the largest activation, the next layer's output and a temporary (a residual or
/// attention scores).
pub const LIVE_TENSORS_PER_SAMPLE: u64 = 4;

/// The most inputs per model call that fit the device's memory: [`BATCH_MEMORY_SHARE`] of
/// `device_memory_bytes` over [`LIVE_TENSORS_PER_SAMPLE`] tensors of `largest_tensor_bytes`
/// per input (at least 1). A heuristic that keeps a large model's batch inside a small
/// device; an allocation that still fails halves the batch ([`with_halving`]).
pub fn memory_batch_limit(device_memory_bytes: u64, largest_tensor_bytes: u64) -> usize {
    let per_input = LIVE_TENSORS_PER_SAMPLE * largest_tensor_bytes.max(1);
    ((device_memory_bytes as f64 * BATCH_MEMORY_SHARE) as u64 / per_input).max(1) as usize
}

/// Runs `attempt` with `batch` inputs per model call; when the device runs out of memory
/// ([`Error::DeviceOutOfMemory`], returned, or raised as a panic by the backend, or reported by
/// the device and raised at the read-back by [`crate::gpu::errors`]) it calls `release` (which
/// gives the backend's cached memory back, so that no failed allocation is reused) and retries
/// with half as many, down to one input. Returns the result and the batch that worked. Any
/// other error or panic passes through unchanged.
pub fn with_halving<T>(
    batch: usize,
    mut attempt: impl FnMut(usize) -> Result<T>,
    mut release: impl FnMut(),
) -> Result<(T, usize)> {
    let mut batch = batch.max(1);
    loop {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attempt(batch)));
        let err = match outcome {
            Ok(Ok(value)) => return Ok((value, batch)),
            Ok(Err(e)) => e,
            Err(payload) => {
                let text = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied());
                match text.map(Error::device_failure) {
                    Some(e) if e.is_out_of_memory() => e,
                    _ => std::panic::resume_unwind(payload),
                }
            }
        };
        if !err.is_out_of_memory() || batch == 1 {
            return Err(err);
        }
        release();
        batch /= 2;
    }
}

/// The parts of the packed sample rows `start..start + len` of utterances with `n` samples
/// each: `(utterance, its first sample, count, row in the batch)`.
fn segments(start: usize, len: usize, n: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut g = start;
    std::iter::from_fn(move || {
        (g < start + len).then(|| {
            let (u, s) = (g / n, g % n);
            let k = (n - s).min(start + len - g);
            let segment = (u, s, k, g - start);
            g += k;
            segment
        })
    })
}

/// The CPU path: perturbed inputs built by the CPU twins into host batches shared by the
/// utterances, scored by the model, surrogates fitted by [`SurrogateDesign::fit`] (each
/// distinct mask scored and fitted once, as on the GPU). Returns each utterance's fit and model
/// outputs `[N, C]`.
#[allow(clippy::too_many_arguments)]
fn explain_cpu(
    model: &dyn SerModel,
    host: Option<&RowCachedCnn>,
    layout: &BandLayout,
    design: &SurrogateDesign,
    distinct: Option<&DistinctMasks>,
    filterbank: Option<&MelFilterbank>,
    cfg: &ExplainConfig,
    inputs: &[&PreparedInput],
    dim: usize,
    chunk: usize,
    mut profile: Option<&mut StageTimes>,
) -> Result<Vec<(SurrogateFit, Array2<f32>)>> {
    let scored = design.masks();
    let preds = score_cpu(
        model,
        host,
        layout,
        scored,
        0..scored.nrows(),
        filterbank,
        cfg,
        inputs,
        dim,
        chunk,
        profile.as_deref_mut(),
    )?;
    let t0 = std::time::Instant::now();
    let fits = preds
        .into_iter()
        .map(|p| {
            let fit = design.fit(p.view())?;
            Ok((fit, per_sample_outputs(distinct, p)?))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(t) = profile {
        t.surrogate_s += t0.elapsed().as_secs_f64();
    }
    Ok(fits)
}

/// Every sample's model outputs from the scored inputs' outputs: expanded from the distinct
/// masks' outputs when the masks repeat, else as they are.
///
/// # Shapes
/// `scored` [N', C] -> [N, C]
fn per_sample_outputs(distinct: Option<&DistinctMasks>, scored: Array2<f32>) -> Result<Array2<f32>> {
    match distinct {
        Some(d) => d.expand(scored.view()),
        None => Ok(scored),
    }
}

/// The CPU twins build every utterance's perturbed inputs for the sample rows `rows` of
/// `masks` into host batches shared by the utterances, and the model scores them; or, given the
/// model's row-cached host forward, that forward scores each mel utterance's masks directly.
/// Returns each utterance's model outputs.
///
/// # Shapes
/// `masks` [N, B] -> `[rows.len(), C]` per utterance
#[allow(clippy::too_many_arguments)]
fn score_cpu(
    model: &dyn SerModel,
    host: Option<&RowCachedCnn>,
    layout: &BandLayout,
    masks: &Array2<f32>,
    rows: std::ops::Range<usize>,
    filterbank: Option<&MelFilterbank>,
    cfg: &ExplainConfig,
    inputs: &[&PreparedInput],
    dim: usize,
    chunk: usize,
    mut profile: Option<&mut StageTimes>,
) -> Result<Vec<Array2<f32>>> {
    let (n, c) = (rows.len(), model.classes().len());
    let first = rows.start;
    // The mel spectrogram and row means of each mel input, once per utterance.
    let mels = inputs
        .iter()
        .map(|p| match (p, filterbank) {
            (PreparedInput::Power(power), Some(fb)) => {
                let mel = fb.apply(power.view())?;
                let means = row_means(mel.view());
                Ok(Some((mel, means)))
            }
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(host) = host
        && mels.iter().all(Option::is_some)
    {
        let t0 = std::time::Instant::now();
        let threads = resolve_workers(0);
        let chosen = masks.slice(ndarray::s![rows.clone(), ..]);
        let preds = mels
            .iter()
            .flatten()
            .map(|(mel, means)| {
                let removed = match cfg.fill {
                    FillMode::Mean => means
                        .view()
                        .insert_axis(ndarray::Axis(1))
                        .broadcast(mel.dim())
                        .ok_or_else(|| Error::Device("broadcasting row means".into()))?
                        .to_owned(),
                    _ => Array2::zeros(mel.dim()),
                };
                host.probs_band_masked(mel.view(), removed.view(), &layout.row_band, chosen, threads)
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(t) = profile {
            t.scoring_s += t0.elapsed().as_secs_f64();
        }
        return Ok(preds);
    }
    let mut preds = vec![Array2::<f32>::zeros((n, c)); inputs.len()];
    let total = inputs.len() * n;
    let mut batch = Array2::<f32>::zeros((chunk, dim));
    for start in (0..total).step_by(chunk) {
        let t0 = std::time::Instant::now();
        let nc = chunk.min(total - start);
        for (u, s, k, row) in segments(start, nc, n) {
            let mut view = batch.slice_mut(ndarray::s![row..row + k, ..]);
            match (inputs[u], &mels[u]) {
                (PreparedInput::Power(_), Some((mel, means))) => {
                    let out = view
                        .view_mut()
                        .into_shape_with_order((k, mel.nrows(), mel.ncols()))
                        .map_err(|e| Error::Device(e.to_string()))?;
                    perturb_cpu(
                        mel.view(),
                        means.view(),
                        &layout.row_band,
                        masks.view(),
                        first + s,
                        cfg.fill,
                        cfg.masks.seed,
                        out,
                    )?;
                }
                (PreparedInput::Bands(bands), _) => {
                    resynth_cpu(bands.rows.view(), masks.view(), first + s, view.view_mut())?;
                }
                (PreparedInput::Mel(signal), _) => {
                    let threads = resolve_workers(0);
                    signal.perturbed(
                        &layout.row_band,
                        masks.view(),
                        first + s,
                        cfg.fill,
                        cfg.masks.seed,
                        threads,
                        view.view_mut(),
                    )?;
                }
                _ => return Err(Error::config("model", "a mel input without a filterbank")),
            }
        }
        let flat: Vec<f32> = batch.slice(ndarray::s![..nc, ..]).iter().copied().collect();
        let t1 = std::time::Instant::now();
        let x = Tensor::<2>::from_data(TensorData::new(flat, [nc, dim]), model.device());
        let p = read_f32(model.probs(x)?)?;
        for (u, s, k, row) in segments(start, nc, n) {
            for i in 0..k {
                let src = &p[(row + i) * c..(row + i + 1) * c];
                preds[u].row_mut(s + i).assign(&ndarray::ArrayView1::from(src));
            }
        }
        if let Some(t) = profile.as_deref_mut() {
            t.masks_s += (t1 - t0).as_secs_f64();
            t.scoring_s += t1.elapsed().as_secs_f64();
        }
    }
    Ok(preds)
}

/// The GPU path, up to the wait: records and submits every perturbed input, built straight into
/// the model's input tensor (masked mel spectrograms or resynthesized waveforms; one tensor may
/// hold several utterances' samples, at most `chunk`) or, for the row-cached forward, each
/// utterance's kept and removed rows; the model calls; every utterance's surrogates fitted in
/// one dispatch; and the copies of the fits and the model outputs back to the host, which
/// [`DeviceFits::finish`] waits for. Each distinct mask is scored and fitted once (the
/// design's masks). An error the device reported while this was recorded (an allocation out of
/// memory) is returned here, so that it is not taken for a later group's.
#[allow(clippy::too_many_arguments)]
fn record_gpu(
    ctx: &GpuContext,
    state: &mut GpuState,
    model: &dyn SerModel,
    design: &SurrogateDesign,
    row_band_host: &[u32],
    cfg: &ExplainConfig,
    inputs: &[&PreparedInput],
    dim: usize,
    chunk: usize,
    mut profile: Option<&mut StageTimes>,
) -> Result<DeviceFits> {
    let (n_scored, b) = design.masks().dim();
    let c = model.classes().len();
    let n_utts = inputs.len();
    let device = model.device();
    let GpuState {
        mel,
        row_band,
        fit,
        band_rows,
        rows,
        griffin_lim,
        ..
    } = state;
    let outputs = match (rows.as_ref(), mel.as_mut()) {
        // As many utterances per call as fill a batch of `chunk` masked inputs, as many as a
        // packed group holds: out of memory halves `chunk` and so the utterances per call.
        (Some(rows), Some(mel)) => inputs
            .chunks(utterances_per_batch(chunk, n_scored))
            .map(|call| {
                score_gpu_rows(
                    ctx,
                    rows,
                    mel,
                    row_band,
                    model,
                    cfg,
                    call,
                    dim,
                    b,
                    profile.as_deref_mut(),
                )
            })
            .collect::<Result<Vec<_>>>()?,
        _ => {
            let scoring = GpuScoring {
                mel,
                griffin_lim: griffin_lim.as_mut(),
                band_rows,
                row_band,
                masks: &fit.masks,
                host_masks: design.masks().view(),
                row_band_host,
                first_sample: 0,
                n_samples: n_scored,
                n_bands: b,
            };
            score_gpu(ctx, scoring, model, cfg, inputs, dim, chunk, profile)?
        }
    };
    let started = std::time::Instant::now();
    // One model call (the usual case) needs no copy into a joined tensor.
    let joined = match <[Tensor<2>; 1]>::try_from(outputs) {
        Ok([one]) => one,
        Err(outputs) => Tensor::cat(outputs, 0),
    };
    let bound = BoundTensor::<2>::new(joined)?; // [U * N', C]
    // The fit and both copies back in one submission, then one wait for it.
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let out = encode_fit(ctx, &mut enc, fit, bound.binding(), n_utts, c)?;
    let fits = ctx.encode_read(&mut enc, &out, 0, n_utts * c * packed_len(b));
    let preds = bound.encode_read(ctx, &mut enc);
    let index = submit_after_burn(device, &ctx.queue, enc)?;
    drop(bound.into_tensor());
    ctx.errors.take()?;
    Ok(DeviceFits {
        fits,
        preds,
        index,
        n_utts,
        n_scored,
        n_classes: c,
        n_bands: b,
        started,
    })
}

/// A group's surrogate fits and model outputs on their way back from the device
/// ([`record_gpu`]).
struct DeviceFits {
    fits: PendingRead,
    preds: PendingRead,
    /// The submission that holds both copies.
    index: wgpu::SubmissionIndex,
    n_utts: usize,
    /// Inputs scored per utterance (the distinct masks, when some repeat).
    n_scored: usize,
    n_classes: usize,
    n_bands: usize,
    /// When the surrogate stage was recorded (its time, when profiling, runs to the end of
    /// [`DeviceFits::finish`]).
    started: std::time::Instant,
}

impl DeviceFits {
    /// Waits for the copies and returns each utterance's fit and model outputs `[N, C]`
    /// (expanded from the distinct masks' outputs to every sample's).
    fn finish(
        self,
        ctx: &GpuContext,
        distinct: Option<&DistinctMasks>,
        profile: Option<&mut StageTimes>,
    ) -> Result<Vec<(SurrogateFit, Array2<f32>)>> {
        let DeviceFits {
            fits,
            preds,
            index,
            n_utts,
            n_scored,
            n_classes: c,
            n_bands: b,
            started,
        } = self;
        let fits = unpack_fits(&fits.finish(ctx, index.clone())?, c, b)?;
        let preds = preds.finish(ctx, index)?;
        if fits.len() != n_utts || preds.len() != n_utts * n_scored * c {
            return Err(Error::Device("the surrogate returned the wrong number of fits".into()));
        }
        let result = fits
            .into_iter()
            .zip(preds.chunks(n_scored * c))
            .map(|(fit, p)| {
                let p = Array2::from_shape_vec((n_scored, c), p.to_vec()).map_err(|e| Error::Device(e.to_string()))?;
                Ok((fit, per_sample_outputs(distinct, p)?))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(t) = profile {
            t.surrogate_s += started.elapsed().as_secs_f64();
        }
        Ok(result)
    }
}

/// Scores the design's masks of every mel utterance of `inputs` (one number of frames) through
/// the row-cached forward on the device: the perturb kernel writes each utterance's kept and
/// removed mel rows (the mask buffer `rows.ends`) into one tensor, then one
/// [`DeviceRowCnn::probs`] call computes every row version of all of them.
///
/// # Shapes
/// -> `[U * N', C]`
#[allow(clippy::too_many_arguments)]
fn score_gpu_rows(
    ctx: &GpuContext,
    rows: &GpuRows,
    gpu_mel: &mut GpuMel,
    row_band: &wgpu::Buffer,
    model: &dyn SerModel,
    cfg: &ExplainConfig,
    inputs: &[&PreparedInput],
    dim: usize,
    n_bands: usize,
    profile: Option<&mut StageTimes>,
) -> Result<Tensor<2>> {
    let device = model.device();
    let t0 = std::time::Instant::now();
    let u = inputs.len();
    let bound = BoundTensor::<2>::empty([2 * u, dim], device)?;
    let mut powers = Vec::with_capacity(u);
    for input in inputs {
        let PreparedInput::Power(power) = input else {
            return Err(Error::config("model", "the row-cached forward takes mel inputs"));
        };
        powers.push(power.view());
    }
    // Every utterance's mel spectrogram and its two extreme inputs in one submission per pass
    // (one pass unless the group's spectrograms exceed the stacking budget).
    let n_frames = powers.first().map_or(1, |p| p.ncols());
    let per_pass = gpu_mel.stack_len(ctx, n_frames);
    for (pass, stacked) in powers.chunks(per_pass).enumerate() {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let (mel, means) = gpu_mel.encode(ctx, &mut enc, stacked)?;
        let perturb = PerturbInputs {
            mel: &mel,
            row_mean: &means,
            utterances: 0..stacked.len(),
            row_band,
            masks: &rows.ends,
            n_mels: dim / n_frames,
            n_frames,
            n_bands,
            fill: cfg.fill,
            seed: cfg.masks.seed,
        };
        perturb_into(ctx, &mut enc, &perturb, 0, 2, 2 * pass * per_pass, bound.binding())?;
        // The next pass overwrites these buffers: submit what reads them first.
        submit_after_burn(device, &ctx.queue, enc)?;
    }
    let ends = bound.into_tensor().reshape([u, 2, dim]);
    score(ctx, t0, profile, || rows.net.probs(&rows.plan, ends))
}

/// The masks [`Explainer::score_on`] applies: the explainer's own samples, or given ones.
enum MaskSource<'m> {
    /// The explainer's masks (and their buffer on the device).
    Own,
    /// Masks chosen by the caller (uploaded for the call on a GPU). // [M, B]
    Given(&'m Array2<f32>),
}

/// What [`score_gpu`] reads and reuses: the explainer's buffers and the masks to apply.
struct GpuScoring<'s> {
    mel: &'s mut Option<GpuMel>,
    /// Griffin-Lim on the device (else on the host threads).
    griffin_lim: Option<&'s mut GpuGriffinLim>,
    band_rows: &'s mut GrowBuffer,
    row_band: &'s wgpu::Buffer,
    /// `[N, B]` masks on the device.
    masks: &'s wgpu::Buffer,
    /// The same masks on the host (Griffin-Lim on the host builds its waveforms from them).
    host_masks: ndarray::ArrayView2<'s, f32>,
    /// The band of each analysis mel row, on the host.
    row_band_host: &'s [u32],
    /// The first sample row scored.
    first_sample: usize,
    /// Rows scored from `first_sample` on.
    n_samples: usize,
    n_bands: usize,
}

/// Builds every perturbed input of `inputs` for the masks straight into model input tensors
/// (one tensor may hold several utterances' samples) and runs the model on each; returns the
/// model outputs, still on the device, in sample order.
///
/// # Shapes
/// -> one `[chunk, C]` tensor per model call, `[U * N, C]` when concatenated
#[allow(clippy::too_many_arguments)]
fn score_gpu(
    ctx: &GpuContext,
    mut state: GpuScoring<'_>,
    model: &dyn SerModel,
    cfg: &ExplainConfig,
    inputs: &[&PreparedInput],
    dim: usize,
    chunk: usize,
    mut profile: Option<&mut StageTimes>,
) -> Result<Vec<Tensor<2>>> {
    let (n, b, first) = (state.n_samples, state.n_bands, state.first_sample);
    let total = inputs.len() * n;
    let device = model.device();
    let mut outputs: Vec<Tensor<2>> = Vec::with_capacity(total.div_ceil(chunk));
    // A model that scores on the host gets each batch copied back in the submission that builds
    // it, and scores it while the device builds the next (not when profiling, which waits for
    // each stage on its own): the batch being copied, its submission and its row count.
    let on_host = model.scores_on_host() && profile.is_none();
    let mut copying: Option<(PendingRead, wgpu::SubmissionIndex, usize)> = None;
    // The utterances whose mel spectrograms (stacked) or band rows are on the device now, and
    // their buffers.
    let mut loaded: Option<(std::ops::Range<usize>, wgpu::Buffer, Option<wgpu::Buffer>)> = None;
    // The utterance whose mel spectrogram Griffin-Lim on the device holds now.
    let mut gl_loaded: Option<usize> = None;
    for start in (0..total).step_by(chunk) {
        let t0 = std::time::Instant::now();
        let nc = chunk.min(total - start);
        let bound = BoundTensor::<2>::empty([nc, dim], device)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for (u, s, k, row) in segments(start, nc, n) {
            if let PreparedInput::Mel(signal) = inputs[u] {
                match state.griffin_lim.as_deref_mut() {
                    Some(gl) => {
                        if gl_loaded != Some(u) {
                            // The next utterance overwrites the loaded one's buffers: submit
                            // what reads them first.
                            submit_recorded(ctx, device, &mut enc)?;
                            gl.load(ctx, signal)?;
                            gl_loaded = Some(u);
                        }
                        gl.encode(
                            ctx,
                            &mut enc,
                            state.row_band,
                            state.masks,
                            b,
                            cfg.fill,
                            cfg.masks.seed,
                            first + s,
                            k,
                            row,
                            bound.binding(),
                        )?;
                    }
                    None => {
                        // Griffin-Lim on the host; its waveforms are written into the batch.
                        let mut rows = Array2::<f32>::zeros((k, dim));
                        let threads = resolve_workers(0);
                        signal.perturbed(
                            state.row_band_host,
                            state.host_masks,
                            first + s,
                            cfg.fill,
                            cfg.masks.seed,
                            threads,
                            rows.view_mut(),
                        )?;
                        bound.write(&ctx.queue, row * dim, rows.as_slice().expect("standard layout"))?;
                    }
                }
                continue;
            }
            if loaded.as_ref().is_none_or(|(l, _, _)| !l.contains(&u)) {
                // The next utterances' inputs overwrite these buffers: submit what reads them
                // first (queue writes and submissions run in issue order).
                submit_recorded(ctx, device, &mut enc)?;
                loaded = Some(match inputs[u] {
                    PreparedInput::Power(power) => {
                        let gpu_mel = state
                            .mel
                            .as_mut()
                            .ok_or_else(|| Error::config("model", "no mel filterbank for a mel input"))?;
                        // This utterance and the next ones of its length, as many as one
                        // stacked pass takes.
                        let t = power.ncols();
                        let stacked: Vec<_> = inputs[u..]
                            .iter()
                            .take(gpu_mel.stack_len(ctx, t))
                            .map_while(|input| match input {
                                PreparedInput::Power(p) if p.ncols() == t => Some(p.view()),
                                _ => None,
                            })
                            .collect();
                        let (mel, means) = gpu_mel.encode(ctx, &mut enc, &stacked)?;
                        (u..u + stacked.len(), mel, Some(means))
                    }
                    PreparedInput::Bands(bands) => {
                        let rows_c = bands.rows.as_standard_layout();
                        let rows = state.band_rows.write(ctx, rows_c.as_slice().expect("standard layout"));
                        (u..u + 1, rows.clone(), None)
                    }
                    PreparedInput::Mel(_) => {
                        return Err(Error::Device("a griffin-lim input reached the device path".into()));
                    }
                });
            }
            let (range, buf, means) = loaded.as_ref().expect("loaded above");
            match (inputs[u], means) {
                (PreparedInput::Power(power), Some(means)) => {
                    let slot = u - range.start;
                    let inputs = PerturbInputs {
                        mel: buf,
                        row_mean: means,
                        utterances: slot..slot + 1,
                        row_band: state.row_band,
                        masks: state.masks,
                        n_mels: dim / power.ncols(),
                        n_frames: power.ncols(),
                        n_bands: b,
                        fill: cfg.fill,
                        seed: cfg.masks.seed,
                    };
                    perturb_into(ctx, &mut enc, &inputs, first + s, k, row, bound.binding())?;
                }
                (PreparedInput::Bands(bands), _) => {
                    let inputs = ResynthInputs {
                        rows: buf,
                        masks: state.masks,
                        n_samples: bands.n_samples(),
                        n_bands: b,
                    };
                    resynth_into(ctx, &mut enc, &inputs, first + s, k, row, bound.binding())?;
                }
                _ => return Err(Error::config("model", "a mel input without row means")),
            }
        }
        if on_host {
            let read = bound.encode_read(ctx, &mut enc);
            let index = submit_after_burn(device, &ctx.queue, enc)?;
            drop(bound.into_tensor());
            if let Some(previous) = copying.replace((read, index, nc)) {
                outputs.push(score_copied(ctx, model, previous, dim)?);
            }
            continue;
        }
        submit_after_burn(device, &ctx.queue, enc)?;
        outputs.push(score(ctx, t0, profile.as_deref_mut(), || {
            model.probs(bound.into_tensor())
        })?);
    }
    if let Some(last) = copying.take() {
        outputs.push(score_copied(ctx, model, last, dim)?);
    }
    Ok(outputs)
}

/// Scores on the host a batch of `rows` inputs of `dim` values being copied back.
///
/// # Shapes
/// -> [rows, C]
fn score_copied(
    ctx: &GpuContext,
    model: &dyn SerModel,
    (read, index, rows): (PendingRead, wgpu::SubmissionIndex, usize),
    dim: usize,
) -> Result<Tensor<2>> {
    let values = read.finish(ctx, index)?;
    let bad = |got: String| Error::shape("copied batch", format!("[{rows}, {dim}]"), got);
    let values = values
        .get(..rows * dim)
        .ok_or_else(|| bad(format!("{} values", values.len())))?;
    let batch = ndarray::ArrayView2::from_shape((rows, dim), values).map_err(|e| bad(e.to_string()))?;
    model.probs_host(batch)
}

/// Submits the commands recorded in `enc` (after Burn's pending work) and leaves a fresh
/// encoder in its place: before buffers those commands read are overwritten.
fn submit_recorded(ctx: &GpuContext, device: &burn::tensor::Device, enc: &mut wgpu::CommandEncoder) -> Result<()> {
    let done = std::mem::replace(enc, ctx.device.create_command_encoder(&Default::default()));
    submit_after_burn(device, &ctx.queue, done).map(|_| ())
}

/// Runs `forward` on inputs whose building was submitted since `t0`; when profiling, waits
/// for the inputs and then for the outputs, timing each (building as masks, the forward as
/// scoring).
fn score(
    ctx: &GpuContext,
    t0: std::time::Instant,
    profile: Option<&mut StageTimes>,
    forward: impl FnOnce() -> Result<Tensor<2>>,
) -> Result<Tensor<2>> {
    let Some(t) = profile else { return forward() };
    ctx.wait()?;
    let t1 = std::time::Instant::now();
    let out = forward()?;
    read_f32(out.clone())?;
    t.masks_s += (t1 - t0).as_secs_f64();
    t.scoring_s += t1.elapsed().as_secs_f64();
    Ok(out)
}

/// The smallest over classes of the Spearman correlation between the band rankings of
/// surrogates fitted on the even and on the odd samples (both with sample 0, which keeps every
/// band and anchors the fit); a class whose two fits are both
/// constant (nothing to rank) agrees fully, one constant fit against a varying one not at all.
///
/// # Shapes
/// `masks` [N, B], `weights` [N], `preds` [N, C] -> scalar
pub fn half_agreement(
    masks: ndarray::ArrayView2<f32>,
    weights: &[f32],
    preds: ndarray::ArrayView2<f32>,
    cfg: &SurrogateConfig,
) -> Result<f32> {
    let half = |start: usize| -> Result<SurrogateFit> {
        // Sample 0 (every band kept) anchors both fits, as the surrogate requires.
        let mut rows: Vec<usize> = (start..masks.nrows()).step_by(2).collect();
        if start != 0 {
            rows.insert(0, 0);
        }
        let m = masks.select(ndarray::Axis(0), &rows);
        let p = preds.select(ndarray::Axis(0), &rows);
        let w: Vec<f32> = rows.iter().map(|&r| weights[r]).collect();
        fit_cpu(m.view(), &w, p.view(), cfg)
    };
    let (even, odd) = (half(0)?, half(1)?);
    let mut least = 1.0f32;
    for (a, b) in even.coefs.rows().into_iter().zip(odd.coefs.rows()) {
        let rho = crate::stability::ranking_agreement(&a.to_vec(), &b.to_vec()) as f32;
        least = least.min(rho);
    }
    Ok(least)
}

/// One line of `explanations.jsonl`: one utterance and one class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExplanationRecord {
    /// The utterance's position in the input (0-based, before sharding): outputs are in this
    /// order, and resumed or sharded runs are merged by it.
    #[serde(default)]
    pub position: usize,
    /// Utterance id (path relative to the input root).
    pub id: String,
    /// The audio file.
    pub path: String,
    /// Reference label, if known.
    pub label: Option<String>,
    /// Speaker, if known.
    pub speaker: Option<String>,
    /// Dataset (the manifest's `dataset` column or the corpus loaded), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Speaker gender, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// The manifest's `split` column, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// The manifest's other columns, by header name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
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
    /// Perturbed samples used (per utterance with `--samples auto`).
    pub n_samples: usize,
    /// Frames of the spectrogram (0 for waveform models).
    pub n_frames: usize,
    /// Duration explained, in seconds.
    pub seconds: f32,
    /// Duration of the decoded audio when it was cropped to `--max-seconds` (else null).
    pub cropped_from_seconds: Option<f32>,
    /// Device that computed it.
    pub device: String,
}

impl ExplanationRecord {
    /// One record per class of `exp`, for the input at `position`.
    pub fn for_each_class(
        position: usize,
        item: &InputItem,
        exp: &UtteranceExplanation,
        explainer: &Explainer<'_>,
        device: &str,
    ) -> Vec<Self> {
        let classes = explainer.classes();
        let predicted = classes[crate::model::argmax(&exp.probs)].clone();
        let cfg = explainer.config();
        classes
            .iter()
            .enumerate()
            .map(|(k, class)| ExplanationRecord {
                position,
                id: item.id.clone(),
                path: item.path.display().to_string(),
                label: item.label.clone(),
                speaker: item.speaker.clone(),
                dataset: item.dataset.clone(),
                gender: item.gender.clone(),
                split: item.split.clone(),
                metadata: item.metadata.clone(),
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
                n_samples: exp.n_samples,
                n_frames: exp.n_frames,
                seconds: exp.seconds,
                cropped_from_seconds: exp.cropped_from_seconds,
                device: device.to_string(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_group_is_one_row_cached_call() {
        // The defaults on a GPU: 1000 masks of 8 bands hold about 251 distinct ones, so a
        // batch of 4096 is filled by 17 utterances, and a group of 17 is scored in one call
        // (not 16 and 1).
        assert_eq!(utterances_per_batch(GPU_MEL_BATCH_SIZE, 251), 17);
        assert_eq!(utterances_per_batch(4096, 4096), 1);
        assert_eq!(utterances_per_batch(4096, 4097), 1);
        assert_eq!(utterances_per_batch(64, 251), 1);
        assert_eq!(utterances_per_batch(0, 0), 1);
    }

    #[test]
    fn out_of_memory_halves_the_batch_until_it_fits() {
        // A device that holds at most 300 inputs per call, reporting as CubeCL does: by an
        // error at the read, or by a panic from the allocation.
        for panics in [false, true] {
            let mut tried = vec![];
            let released = std::cell::Cell::new(0);
            let (value, used) = with_halving(
                1024,
                |batch| {
                    tried.push((batch, released.get()));
                    if batch > 300 {
                        let msg = format!("out of device memory allocating {} bytes", batch * 4096);
                        if panics {
                            panic!("{msg}");
                        }
                        return Err(Error::device_failure(&msg));
                    }
                    Ok(batch * 2)
                },
                || released.set(released.get() + 1),
            )
            .unwrap();
            assert_eq!((value, used), (512, 256));
            // The cached memory is given back before every retry.
            assert_eq!(tried, [(1024, 0), (512, 1), (256, 2)]);
        }
    }

    #[test]
    fn other_failures_are_not_retried() {
        let mut calls = 0;
        let err = with_halving(
            64,
            |_| -> Result<()> {
                calls += 1;
                Err(Error::Device("the device was lost".into()))
            },
            || {},
        )
        .unwrap_err();
        assert!(matches!(err, Error::Device(_)) && calls == 1);
        let panicked =
            std::panic::catch_unwind(|| with_halving(64, |_| -> Result<()> { panic!("index out of bounds") }, || {}));
        assert!(panicked.is_err(), "an unrelated panic must propagate");
        // One input that does not fit is the user's problem to see.
        let err = with_halving(
            1,
            |_| -> Result<()> { Err(Error::device_failure("wgpu error: Out of Memory")) },
            || {},
        )
        .unwrap_err();
        assert!(err.is_out_of_memory());
    }

    #[test]
    fn memory_limit_scales_with_device_memory_and_input_size() {
        // A wav2vec 2.0 base input of 5 s at 16 kHz: the first convolution's output is
        // [512, 16000] floats, about 33 MB.
        let w2v = 512 * 16_000 * 4;
        assert_eq!(memory_batch_limit(80 << 30, w2v), 327);
        assert_eq!(memory_batch_limit(8 << 30, w2v), 32);
        assert_eq!(memory_batch_limit(1 << 20, w2v), 1);
        // The CNN's 4096 default batch is far inside an 8 GiB device.
        assert!(memory_batch_limit(8 << 30, 100_000) > GPU_MEL_BATCH_SIZE);
    }
}
