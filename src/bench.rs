//! `emolime bench`: per-stage and end-to-end timings of explanation on one device, on the same
//! work everywhere (the built-in corpus, a CNN trained on the CPU path from fixed seeds, one
//! sample count), so devices of different vendors can be compared from their JSON records; or
//! the same stages for a model of the user's (any model `emolime explain` takes).

use crate::corpus::{RunOptions, explain_corpus, load_training_set, pack_size};
use crate::device::ComputeDevice;
use crate::error::{Error, Result};
use crate::explain::{ExplainConfig, Explainer, ExplanationRecord, StageTimes};
use crate::gpu::AdapterSummary;
use crate::input::collect_inputs;
use crate::model::{AnyModel, Classifier, TrainConfig, train};
use crate::run::{RunContents, RunIdentity, RunManifest, Shard, write_outputs};
use crate::sampling::{MaskConfig, SampleCount};
use crate::synth::{SynthConfig, write_corpus};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// What `emolime bench` runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchConfig {
    /// Utterances of the built-in corpus explained (balanced over its four classes).
    pub utterances: usize,
    /// Length of each utterance in seconds.
    pub seconds_each: f32,
    /// Perturbed samples per utterance.
    pub samples: usize,
    /// Perturbed inputs per model call; `None` takes the device's default for the model's
    /// input ([`crate::explain::default_batch_size`]).
    pub batch_size: Option<usize>,
    /// Seed of the corpus, the model's training and the masks.
    pub seed: u64,
    /// Score through the CNN's row-cached forward ([`ExplainConfig::row_cache`]).
    pub row_cache: bool,
    /// The model explained: `None` for the built-in CNN (trained on the CPU path from `seed`),
    /// or a model file or checkpoint folder as `emolime explain --model` takes.
    pub model: Option<std::path::PathBuf>,
    /// Precision the model scores in ([`AnyModel::cast`]): `F16` for a wav2vec 2.0 / HuBERT
    /// checkpoint, `F32` for every model.
    pub precision: burn::tensor::FloatDType,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            utterances: 16,
            seconds_each: 2.0,
            samples: 1000,
            batch_size: None,
            seed: 0,
            row_cache: true,
            model: None,
            precision: burn::tensor::FloatDType::F32,
        }
    }
}

impl BenchConfig {
    /// Checks the counts, the length and the precision (below f32 only for a `--model`).
    pub fn validate(&self) -> Result<()> {
        if self.utterances == 0 {
            return Err(Error::config("utterances", "must be >= 1"));
        }
        if !(0.5..=30.0).contains(&self.seconds_each) {
            return Err(Error::config("seconds", "must be between 0.5 and 30"));
        }
        if self.model.is_none() && self.precision != burn::tensor::FloatDType::F32 {
            return Err(Error::config(
                "precision",
                "the built-in CNN scores in f32 only; below f32 is for a wav2vec 2.0 / HuBERT --model",
            ));
        }
        self.explain_config(self.batch_size.unwrap_or(crate::explain::DEFAULT_BATCH_SIZE))
            .validate()
    }

    fn explain_config(&self, batch_size: usize) -> ExplainConfig {
        ExplainConfig {
            masks: MaskConfig {
                samples: SampleCount::Random(self.samples),
                keep_prob: 0.5,
                seed: self.seed,
            },
            batch_size,
            row_cache: self.row_cache,
            ..ExplainConfig::default()
        }
    }
}

/// Milliseconds per utterance of each stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageMs {
    /// Decoding the file, resampling and the STFT (CPU).
    pub decode_stft: f64,
    /// Building the perturbed inputs on the device.
    pub masks: f64,
    /// The model on every perturbed input.
    pub scoring: f64,
    /// The surrogate fits of every class.
    pub surrogate: f64,
    /// Writing the JSON lines and Parquet outputs.
    pub writing: f64,
}

/// The whole pipeline as `emolime explain` runs it (decoding overlapped with the device).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EndToEnd {
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Utterances explained per second.
    pub utterances_per_s: f64,
    /// Perturbed samples explained per second (a mask drawn twice is scored once).
    pub samples_per_s: f64,
    /// Explanations (utterance x class) per second.
    pub explanations_per_s: f64,
}

/// What `emolime bench` measured; written as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// emolime's version.
    pub emolime_version: String,
    /// The device, as `emolime devices` describes it.
    pub device: String,
    /// The adapter (vendor id, backend, driver), absent on the CPU path.
    pub adapter: Option<AdapterSummary>,
    /// The work.
    pub config: BenchConfig,
    /// The model, as it describes itself.
    pub model: String,
    /// Perturbed inputs per model call (the configured batch or the device's default).
    pub batch_size: usize,
    /// Classes explained per utterance.
    pub classes: usize,
    /// Bands per explanation.
    pub bands: usize,
    /// Whether scoring went through the CNN's row-cached forward.
    pub row_cached: bool,
    /// Inputs the model scores per utterance: the distinct masks when masks repeat and the
    /// perturbed input depends on the mask alone, else the samples
    /// ([`crate::explain::Explainer::scored_per_utterance`]). Through the row-cached forward
    /// these are masked inputs whose outputs it computes without building them.
    pub scored_per_utterance: usize,
    /// Those inputs per second of the scoring stage: the measured rate the roofline takes
    /// (`scripts/roofline.py`) when every input is scored.
    pub scored_per_s: f64,
    /// Per-stage cost, each stage waited for before the next, utterances packed as the
    /// pipelined run packs them.
    pub ms_per_utterance: StageMs,
    /// The first pipelined run, seconds: the timed one plus every kernel's compilation and
    /// tuning (not in the other figures).
    pub warm_up_seconds: f64,
    /// The pipelined run.
    pub end_to_end: EndToEnd,
}

/// `emolime explain`'s pipelined run of `items` into the run folder `dir`.
fn pipelined_run(
    explainer: &mut Explainer<'_>,
    items: &[crate::input::InputItem],
    device: &ComputeDevice,
    dir: &Path,
) -> Result<()> {
    let report = explain_corpus(
        explainer,
        items,
        vec![],
        &device.description,
        dir,
        &RunOptions::default(),
        |_| {},
    )?;
    match report.failures.first() {
        Some(f) => Err(Error::Device(format!("the benchmark corpus failed: {}", f.error))),
        None => Ok(()),
    }
}

/// Runs the benchmark on `device`, using `work_dir` (an empty scratch folder) for the corpus,
/// the model and the outputs. `progress` gets a line per phase.
pub fn run_bench(
    cfg: &BenchConfig,
    device: &ComputeDevice,
    work_dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport> {
    cfg.validate()?;
    progress("synthesizing the corpus");
    let synth = SynthConfig {
        n_per_class: cfg.utterances.div_ceil(4),
        duration_s: cfg.seconds_each,
        seed: cfg.seed,
        ..SynthConfig::default()
    };
    let manifest = write_corpus(&synth, &work_dir.join("corpus"))?;
    let all = collect_inputs(&manifest)?.items;
    // Balanced over the classes: round robin over the labels.
    let labels = crate::input::class_names(&all);
    let by_label: Vec<Vec<&crate::input::InputItem>> = labels
        .iter()
        .map(|l| all.iter().filter(|it| it.label.as_ref() == Some(l)).collect())
        .collect();
    let items: Vec<crate::input::InputItem> = (0..cfg.utterances)
        .map(|i| by_label[i % labels.len()][i / labels.len()].clone())
        .collect();

    let model = match &cfg.model {
        Some(path) => {
            progress("loading the model");
            AnyModel::load(path, &device.burn)?
        }
        None => {
            progress("training the CNN on the CPU path");
            let cpu = ComputeDevice::cpu("cpu");
            let fe = crate::audio::FrontEndConfig::default();
            let (examples, classes, _) = load_training_set(&all, &fe, |_| {})?;
            let train_cfg = TrainConfig {
                epochs: 2,
                seed: cfg.seed,
                ..TrainConfig::default()
            };
            let (model, _) = train(&examples, classes, fe, &train_cfg, &cpu.burn, |_, _| {})?;
            let model_path = work_dir.join("model.emolime");
            model.save(&model_path)?;
            AnyModel::Cnn(Box::new(Classifier::load(&model_path, &device.burn)?))
        }
    };
    let model = model.cast(cfg.precision)?;
    let model = model.as_model();

    let batch_size = cfg
        .batch_size
        .unwrap_or_else(|| crate::explain::default_batch_size(device, &model.input()));
    let mut explainer = Explainer::new(model, device, cfg.explain_config(batch_size))?;
    let preparer = explainer.preparer();
    // The whole pipelined run once, untimed in the figures: every kernel compiled and tuned for
    // every shape the run meets (packed groups of each size), as criterion warms up.
    progress("warming up (the pipelined run once: kernel compilation, autotuning)");
    let t0 = Instant::now();
    pipelined_run(&mut explainer, &items, device, &work_dir.join("warm-up"))?;
    let warm_up_seconds = t0.elapsed().as_secs_f64();

    progress("timing each stage");
    let t0 = Instant::now();
    let prepared = items
        .iter()
        .map(|item| preparer.load_and_prepare(item))
        .collect::<Result<Vec<_>>>()?;
    let decode_s = t0.elapsed().as_secs_f64();
    explainer.set_profiling(true);
    let mut records = vec![];
    // Packed as the pipelined run packs them.
    let pack = pack_size(&explainer, RunOptions::default().pack_utterances);
    for (g, group) in prepared.chunks(pack).enumerate() {
        let group: Vec<_> = group.iter().collect();
        for (i, exp) in explainer.explain_many(&group)?.into_iter().enumerate() {
            let position = g * pack + i;
            records.extend(ExplanationRecord::for_each_class(
                position,
                &items[position],
                &exp,
                &explainer,
                &device.description,
            ));
        }
    }
    let stages = explainer.stage_times().unwrap_or_default();
    explainer.set_profiling(false);
    let identity = RunIdentity {
        model: model.describe(),
        model_fingerprint: String::new(),
        input: "built-in corpus".into(),
        config: explainer.config().clone(),
        classes: explainer.classes().to_vec(),
        band_edges_hz: explainer.layout().edges_hz.clone(),
        n_samples: explainer.masks().nrows(),
    };
    let contents = RunContents {
        manifest: RunManifest::new(identity, Shard::default(), &items, vec![]),
        records,
        failures: vec![],
    };
    let write_dir = work_dir.join("written");
    std::fs::create_dir_all(&write_dir).map_err(|e| Error::io(&write_dir, e))?;
    let t0 = Instant::now();
    write_outputs(&write_dir, &contents)?;
    let write_s = t0.elapsed().as_secs_f64();

    progress("timing the pipelined run");
    let t0 = Instant::now();
    pipelined_run(&mut explainer, &items, device, &work_dir.join("run"))?;
    let seconds = t0.elapsed().as_secs_f64();
    let n = items.len() as f64;
    let per = |s: f64| 1e3 * s / n;
    let StageTimes {
        masks_s,
        scoring_s,
        surrogate_s,
        ..
    } = stages;
    let n_classes = explainer.classes().len();
    let scored = explainer.scored_per_utterance();
    Ok(BenchReport {
        emolime_version: env!("CARGO_PKG_VERSION").to_string(),
        device: device.description.clone(),
        adapter: device.gpu.as_ref().map(|g| g.summary.clone()),
        config: cfg.clone(),
        model: model.describe(),
        batch_size,
        classes: n_classes,
        bands: explainer.layout().n_bands(),
        row_cached: explainer.row_cached(),
        scored_per_utterance: scored,
        scored_per_s: if scoring_s > 0.0 {
            scored as f64 / (scoring_s / n)
        } else {
            0.0
        },
        warm_up_seconds,
        ms_per_utterance: StageMs {
            decode_stft: per(decode_s),
            masks: per(masks_s),
            scoring: per(scoring_s),
            surrogate: per(surrogate_s),
            writing: per(write_s),
        },
        end_to_end: EndToEnd {
            seconds,
            utterances_per_s: n / seconds,
            samples_per_s: n * cfg.samples as f64 / seconds,
            explanations_per_s: n * n_classes as f64 / seconds,
        },
    })
}
