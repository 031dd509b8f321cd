//! The `emolime` command line: a thin layer over the library.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use emolime::audio::FrontEndConfig;
use emolime::bands::{BandConfig, BandKind};
use emolime::classify::{FeatureClassifier, HeadConfig, accuracy, confusion_matrix};
use emolime::conditions::{Condition, derive_seed, extract_corpus_under};
use emolime::corpus::{CorpusReport, Failure, Progress, RunOptions, explain_corpus, load_training_set};
use emolime::device::{ComputeDevice, DeviceSpec};
use emolime::explain::{ExplainConfig, Explainer, ExplanationRecord};
use emolime::faithfulness::{
    DeletionConfig, DeletionPoints, run_deletion, summarize, write_curves_csv, write_summary_csv,
};
use emolime::features::EGEMAPS_NAMES;
use emolime::features::corpus::{FeatureConfig, Level, extract_corpus, write_csv};
use emolime::input::{InputItem, class_names, collect_inputs};
use emolime::model::embedding::{EMBED_BATCH, Embedder, Layer, embed_items};
use emolime::model::features::EGEMAPS_SET;
use emolime::model::{AnyModel, Classifier, SerModel, TrainConfig, train};
use emolime::output::{OutputDir, Resumed};
use emolime::perturb::FillMode;
use emolime::rank::{Dataset, DatasetMeta, RankConfig, RankReport};
use emolime::run::{Shard, merge_runs, model_fingerprint, read_run, write_outputs};
use emolime::sampling::{KernelKind, MaskConfig, SampleCount};
use emolime::stability::{StabilityConfig, StabilityRunner};
use emolime::surrogate::SurrogateConfig;
use emolime::synth::{SynthConfig, write_corpus};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "emolime",
    version,
    about = "LIME explanations of speech emotion models over frequency subbands, on the GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Synthesize a corpus, train a small CNN on it, explain a few dozen utterances.
    Demo(DemoArgs),
    /// Explain a model's predictions for one file, a folder or a CSV manifest.
    Explain(ExplainArgs),
    /// Train the log-mel CNN, or with --features a classifier on eGeMAPS functionals, on a
    /// folder (class sub-folders) or a CSV manifest.
    Train(TrainArgs),
    /// Write the built-in synthetic corpus as WAV files and a manifest.
    Synth(SynthArgs),
    /// Export a CNN for other tools: weights.safetensors in PyTorch's names and layouts, and
    /// with --input the model's inputs (mel power), band rows and emolime's probabilities, so a
    /// network rebuilt elsewhere can be checked against emolime (benches/peers/).
    Export(ExportArgs),
    /// List the adapters wgpu sees and the one `--device auto` picks.
    Devices(DevicesArgs),
    /// Time each stage of explanation (decode + STFT, masks, scoring, surrogate, writing) and
    /// the pipelined run on one device, on the built-in corpus: the same work on every device.
    Bench(BenchArgs),
    /// Join the folders of a sharded (or interrupted) explain run into one dataset, checking
    /// that every utterance is there exactly once.
    Merge(MergeArgs),
    /// Compare two explain runs utterance by utterance: the largest coefficient and probability
    /// differences, and the utterances only one of them has.
    Compare(CompareArgs),
    /// Check that explanations are faithful: explain each utterance, then remove its bands
    /// most-relevant-first, least-relevant-first and at random, and report how the prediction
    /// changes (deletion curves) and the area between the MoRF and random curves (dAUC) with a
    /// bootstrap interval over utterances.
    Faithfulness(FaithfulnessArgs),
    /// Check that explanations are stable: explain each utterance under several seeds at
    /// several sample counts, and report how well the band rankings agree (Spearman, top-k)
    /// across seeds and with the exhaustive-mask explanation, and the count a target needs.
    Stability(StabilityArgs),
    /// Compare explanations across models and datasets: each emotion's band-importance profile
    /// per (dataset, model), the similarity of profiles across models on one dataset and across
    /// datasets for one model, and whether models agree more than datasets (permutation and
    /// Wilcoxon tests).
    Robustness(RobustnessArgs),
    /// Run a whole study from a TOML file: every dataset x model trained, explained, checked
    /// for faithfulness and stability, then compared across models and datasets; a rerun skips
    /// every finished step. See `emolime::study` for the file's keys.
    Study(StudyArgs),
    /// Extract eGeMAPS v02 features (openSMILE's 88 functionals, or the 25 frame-level
    /// descriptors with --lld) for one file, a folder or a CSV manifest, into a CSV or Parquet
    /// file; `features rank` ranks them across corpora, `features probe` relates them to a
    /// wav2vec 2.0 / HuBERT encoder's layers.
    Features(FeaturesCmd),
}

/// `emolime features --input .. --out ..` (extraction) or `emolime features rank ..`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct FeaturesCmd {
    #[command(subcommand)]
    action: Option<FeaturesAction>,
    #[command(flatten)]
    extract: FeaturesArgs,
}

#[derive(Subcommand)]
enum FeaturesAction {
    /// Rank the eGeMAPS features of one or more labelled corpora (permutation importance, L1
    /// stability selection, KernelSHAP over LLD groups; speaker-independent folds, bootstrap
    /// intervals), with their agreement, a consensus and cross-corpus transfer; every table as
    /// CSV and as Parquet.
    Rank(RankArgs),
    /// What a wav2vec 2.0 / HuBERT encoder encodes: for every hidden state, how well each eGeMAPS
    /// feature is predicted from the mean-pooled states (ridge, speaker-independent folds): the
    /// layer x feature map, as CSV and Parquet, JSON and a figure.
    Probe(ProbeArgs),
}

/// `emolime features probe`.
#[derive(Args)]
struct ProbeArgs {
    /// A Hugging Face wav2vec 2.0 / HuBERT folder (bare or with a classification head).
    #[arg(long)]
    model: PathBuf,
    /// Audio folder or CSV manifest with a `speaker` column.
    #[arg(long)]
    input: PathBuf,
    /// Output folder (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Speaker-independent folds [default: 5, capped at the speaker count].
    #[arg(long)]
    folds: Option<usize>,
    /// Seed of the folds.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first this many seconds of each utterance.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Worker threads for feature extraction (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    device: DeviceArg,
}

/// Parses `NAME=PATH`.
fn parse_corpus(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.trim().is_empty() && !path.trim().is_empty() => {
            Ok((name.trim().to_string(), PathBuf::from(path.trim())))
        }
        _ => Err(format!("expected NAME=PATH, got `{s}`")),
    }
}

/// Parses `NAME[:PARAMS]` as a recording condition.
fn parse_condition(s: &str) -> std::result::Result<Condition, String> {
    s.parse().map_err(|e: emolime::Error| e.to_string())
}

#[derive(Args)]
struct RankArgs {
    /// A corpus as NAME=PATH (a CSV manifest with `path`, `label`/`emotion` and `speaker`
    /// columns, or `path,label,speaker` rows; or, when NAME is emodb, ravdess, cremad, tess,
    /// savee or iemocap and PATH a folder, that corpus as unpacked, with the four default
    /// labels); repeat for each corpus.
    #[arg(long = "corpus", value_name = "NAME=PATH", required = true, value_parser = parse_corpus)]
    corpora: Vec<(String, PathBuf)>,
    /// Output folder (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Speaker-independent folds per corpus [default: 5, capped at a corpus's speaker count;
    /// given explicitly, a corpus with fewer speakers is an error].
    #[arg(long)]
    folds: Option<usize>,
    /// Seed of folds, permutations, subsamples, coalitions and bootstraps.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classifier for permutation importance, KernelSHAP and transfer: logreg, mlp or svm.
    #[arg(long, default_value = "logreg")]
    head: String,
    /// Size of the consensus top set (transfer, top-k overlap).
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Bootstrap replicates behind every interval.
    #[arg(long, default_value_t = RankConfig::default().bootstrap)]
    bootstrap: usize,
    /// KernelSHAP coalitions per utterance (0 skips KernelSHAP).
    #[arg(long, default_value_t = RankConfig::default().shap_coalitions)]
    shap_coalitions: usize,
    /// Worker threads for extraction and ranking (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// A recording condition to rank under: clean, white:SNR_DB, babble:SNR_DB (other
    /// utterances of the same corpus), telephone, hearing-aid or reverb:RT60_S; repeat for
    /// several. Every condition but clean adds the datasets CORPUS@CONDITION, transformed before
    /// extraction, seeded by --seed, the corpus and the file.
    #[arg(
        long = "condition",
        value_name = "NAME[:PARAMS]",
        default_value = "clean",
        value_parser = parse_condition
    )]
    conditions: Vec<Condition>,
    /// Rank what explains a model's own decisions: every utterance's target becomes this
    /// model's predicted class on the clean audio (any model `explain` takes) instead of its
    /// label; `targets.json` records how often the two agree.
    #[arg(long, value_name = "MODEL")]
    targets_from: Option<PathBuf>,
    /// Device for --targets-from, and where permutation importance scores its permuted rows
    /// when it is a GPU (on the CPU the fold models score on the host, in f64).
    #[command(flatten)]
    device: DeviceArg,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum FeatureSetArg {
    /// eGeMAPS v02, openSMILE's column names and order.
    Egemaps,
}

#[derive(Args)]
struct FeaturesArgs {
    #[command(flatten)]
    source: InputArgs,
    /// Feature set.
    #[arg(long, value_enum, default_value = "egemaps")]
    set: FeatureSetArg,
    /// Output file, written atomically: CSV, or a Parquet table when it ends in `.parquet` (the
    /// same columns); one row per file, or per frame with --lld.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Write the frame-level descriptors (10 ms hop) instead of the functionals.
    #[arg(long)]
    lld: bool,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

impl From<&FeaturesArgs> for FeatureConfig {
    fn from(a: &FeaturesArgs) -> Self {
        FeatureConfig {
            level: if a.lld { Level::Lld } else { Level::Functionals },
            workers: a.workers,
        }
    }
}

#[derive(Args)]
struct DeviceArg {
    /// auto (a hardware GPU, else the CPU), gpu:N (see `emolime devices`), cpu (Burn's flex
    /// backend) or cpu:ndarray (Burn's older ndarray backend, for comparison).
    #[arg(long, default_value = "auto")]
    device: String,
}

impl DeviceArg {
    fn open(&self) -> Result<ComputeDevice> {
        let spec: DeviceSpec = self.device.parse()?;
        Ok(ComputeDevice::open(spec)?)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    EqualMel,
    Linear,
    Erb,
}

#[derive(Clone, Copy, ValueEnum)]
enum FillArg {
    Zero,
    Mean,
    Noise,
}

#[derive(Clone, Copy, ValueEnum)]
enum ResynthesisArg {
    Phase,
    GriffinLim,
}

#[derive(Clone, Copy, ValueEnum)]
enum KernelArg {
    Lime,
    Shapley,
}

/// Flags shared by `explain` and `demo`; converted into [`ExplainConfig`].
#[derive(Args)]
struct ExplainFlags {
    /// Perturbed samples per utterance; `exhaustive` for all 2^B masks (B <= 16); or
    /// `auto[:TARGET[:MAX]]`: 256 more at a time until fits on the even and odd samples rank
    /// the bands alike (Spearman >= TARGET, default 0.95, every class), at most MAX (8192)
    /// [default: 1000 for explain, 512 for demo].
    #[arg(long)]
    samples: Option<String>,
    /// Number of bands (2..=64).
    #[arg(long, default_value_t = 8)]
    bands: usize,
    /// Band placement.
    #[arg(long, value_enum, default_value = "equal-mel")]
    band_layout: LayoutArg,
    /// Explicit band edges in Hz, comma-separated (overrides --bands and --band-layout).
    #[arg(long, value_delimiter = ',')]
    band_edges_hz: Option<Vec<f32>>,
    /// Probability of keeping a band in a random sample.
    #[arg(long, default_value_t = 0.5)]
    keep_prob: f32,
    /// What replaces a removed band.
    #[arg(long, value_enum, default_value = "zero")]
    fill: FillArg,
    /// Surrogate sample weighting.
    #[arg(long, value_enum, default_value = "lime")]
    kernel: KernelArg,
    /// LIME kernel width.
    #[arg(long, default_value_t = 0.25)]
    kernel_width: f32,
    /// Ridge penalty (default 1 for lime, 0 for shapley).
    #[arg(long)]
    alpha: Option<f32>,
    /// Seed of masks and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Perturbed inputs per model call [default on a GPU: 4096 for mel models, 128 for waveform models; else 256].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Also write each utterance's masks, weights and model outputs (samples/NNNNNN.json).
    #[arg(long)]
    save_samples: bool,
    /// Explain only the first this many seconds of each utterance (the output notes the crop).
    #[arg(long)]
    max_seconds: Option<f32>,
    /// Build and score every masked spectrogram instead of the CNN's row-cached forward
    /// (which computes each row of each layer once per state of the bands it sees, on the host
    /// on the CPU path and as device operations on a GPU; equal up to rounding).
    #[arg(long)]
    no_row_cache: bool,
    /// How waveform models' perturbed inputs are made: `phase` (band resynthesis keeping the
    /// original phase; the sample keeping every band is the input itself) or `griffin-lim`
    /// (EmoLIME's path, seeded: masked mel power -> pseudo-inverse -> Griffin-Lim; on a GPU on the
    /// device for power-of-two FFT lengths up to 2048, else on the CPU threads).
    #[arg(long, value_enum, default_value_t = ResynthesisArg::Phase)]
    resynthesis: ResynthesisArg,
    /// Griffin-Lim iterations with `--resynthesis griffin-lim`.
    #[arg(long, default_value_t = 32)]
    griffin_lim_iters: usize,
}

/// Samples per utterance when `--samples` is not given.
const EXPLAIN_SAMPLES: usize = 1000;
/// The demo's smaller default, so it stays quick on a CPU.
const DEMO_SAMPLES: usize = 512;

impl ExplainFlags {
    /// The explain settings these flags ask for, with `default_samples` when `--samples` is absent.
    fn to_config(&self, default_samples: usize) -> Result<ExplainConfig> {
        let f = self;
        let samples = match f.samples.as_deref() {
            None => SampleCount::Random(default_samples),
            Some(s) => s.parse()?,
        };
        let kind = match (&f.band_edges_hz, f.band_layout) {
            (Some(edges), _) => BandKind::Custom(edges.clone()),
            (None, LayoutArg::EqualMel) => BandKind::EqualMel,
            (None, LayoutArg::Linear) => BandKind::LinearHz,
            (None, LayoutArg::Erb) => BandKind::Erb,
        };
        let kernel = match f.kernel {
            KernelArg::Lime => KernelKind::Lime { width: f.kernel_width },
            KernelArg::Shapley => KernelKind::Shapley,
        };
        let alpha = f.alpha.unwrap_or(if matches!(f.kernel, KernelArg::Shapley) {
            0.0
        } else {
            1.0
        });
        let cfg = ExplainConfig {
            bands: BandConfig { kind, n_bands: f.bands },
            masks: MaskConfig {
                samples,
                keep_prob: f.keep_prob,
                seed: f.seed,
            },
            surrogate: SurrogateConfig { kernel, alpha },
            fill: match f.fill {
                FillArg::Zero => FillMode::Zero,
                FillArg::Mean => FillMode::Mean,
                FillArg::Noise => FillMode::Noise,
            },
            batch_size: f.batch_size.unwrap_or(emolime::explain::DEFAULT_BATCH_SIZE),
            keep_samples: f.save_samples,
            max_seconds: f.max_seconds,
            row_cache: !f.no_row_cache,
            resynthesis: match f.resynthesis {
                ResynthesisArg::Phase => emolime::resynth::Resynthesis::Phase,
                ResynthesisArg::GriffinLim => {
                    emolime::resynth::Resynthesis::GriffinLim(emolime::griffin_lim::GriffinLimConfig {
                        iters: f.griffin_lim_iters,
                        ..Default::default()
                    })
                }
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// `cfg` with the default batch size for `device` and a model consuming `input` where
    /// --batch-size was not given.
    fn on_device(
        &self,
        cfg: ExplainConfig,
        device: &ComputeDevice,
        input: &emolime::model::ModelInput,
    ) -> ExplainConfig {
        ExplainConfig {
            batch_size: self
                .batch_size
                .unwrap_or_else(|| emolime::explain::default_batch_size(device, input)),
            ..cfg
        }
    }
}

#[derive(Args)]
struct ExplainArgs {
    /// A model written by `emolime train`, or a Hugging Face checkpoint folder
    /// (`Wav2Vec2ForSequenceClassification` / `HubertForSequenceClassification`).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    source: InputArgs,
    /// Output folder (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder (or an unfinished run of it).
    #[arg(long)]
    force: bool,
    /// Continue an interrupted run of the same --out with the same model, input and settings
    /// (its finished parts are kept); without an unfinished run, start one; with a finished
    /// one, do nothing.
    #[arg(long)]
    resume: bool,
    /// Explain only shard I of N (0-based), chosen by a stable hash of each utterance id, so N
    /// jobs cover the input exactly once; join their folders with `emolime merge`.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Utterances per part file: an interrupted run loses at most about three times this many
    /// (the part being filled and two waiting to be written).
    #[arg(long, default_value_t = 64)]
    part_size: usize,
    /// No progress bar or progress lines.
    #[arg(long)]
    quiet: bool,
    /// At most this many consecutive utterances of one length share model calls (as many as
    /// fill one --batch-size with the inputs the model scores: each utterance's distinct masks
    /// when masks repeat; 1: one utterance at a time).
    #[arg(long, default_value_t = 64)]
    pack: usize,
    /// Precision the model scores in: f16 halves a wav2vec 2.0 / HuBERT checkpoint's weights
    /// and activations (faster on a GPU; compare an f16 run with an f32 one before trusting
    /// it); other models score in f32 only.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    flags: ExplainFlags,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    F32,
    F16,
}

impl From<PrecisionArg> for burn::tensor::FloatDType {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => burn::tensor::FloatDType::F32,
            PrecisionArg::F16 => burn::tensor::FloatDType::F16,
        }
    }
}

/// Where the utterances come from: `--input` or a standard corpus with `--corpus`.
#[derive(Args)]
struct InputArgs {
    /// An audio file, a folder (searched recursively; label = parent folder) or a CSV manifest
    /// (`path,label[,speaker]`, or a header naming `path`, `label`/`emotion`, `speaker`,
    /// `dataset`, `gender` columns).
    #[arg(long, required_unless_present = "corpus", conflicts_with = "corpus")]
    input: Option<PathBuf>,
    /// A standard corpus in the folder it was unpacked to, as KIND=PATH: emodb, ravdess, cremad,
    /// tess, savee or iemocap (labels, speakers and gender from the corpus's file naming).
    #[arg(long)]
    corpus: Option<String>,
    /// Labels kept from a --corpus: `all`, or common labels such as angry,happy,sad,neutral
    /// [default: angry,happy,sad,neutral, with IEMOCAP's excited merged into happy].
    #[arg(long, requires = "corpus")]
    labels: Option<String>,
}

impl InputArgs {
    /// The utterances, with bad manifest rows as errors; files a corpus loader leaves out are
    /// summarised on stderr.
    fn collect(&self) -> Result<emolime::input::Inputs> {
        match (&self.input, &self.corpus) {
            (Some(path), _) => Ok(collect_inputs(path)?),
            (None, Some(spec)) => {
                let (kind, root) = emolime::corpora::parse_corpus_arg(spec)?;
                let labels = match &self.labels {
                    Some(l) => emolime::corpora::LabelSet::parse(l)?,
                    None => emolime::corpora::LabelSet::default(),
                };
                let inputs = emolime::corpora::load_corpus(kind, &root, &labels)?;
                report_skipped(kind.name(), &inputs.skipped);
                Ok(inputs)
            }
            (None, None) => bail!("give --input or --corpus"),
        }
    }

    /// The input as given, for run records.
    fn describe(&self) -> String {
        match (&self.input, &self.corpus) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(c)) => format!("{c} (labels {})", self.labels.as_deref().unwrap_or("default")),
            (None, None) => String::new(),
        }
    }
}

/// One stderr line per reason a corpus loader left files out, with a count and an example.
fn report_skipped(corpus: &str, skipped: &[emolime::input::Skipped]) {
    let mut by_reason: std::collections::BTreeMap<&str, (usize, &Path)> = Default::default();
    for s in skipped {
        by_reason.entry(&s.reason).or_insert((0, &s.path)).0 += 1;
    }
    for (reason, (n, example)) in by_reason {
        eprintln!("{corpus}: left out {n} files: {reason} (e.g. {})", example.display());
    }
}

fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    Shard::parse(s).map_err(|e| e.to_string())
}

#[derive(Args)]
struct FaithfulnessArgs {
    /// A model written by `emolime train`, or a Hugging Face checkpoint folder.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    source: InputArgs,
    /// Output folder (must not exist unless --force): deletion.csv (every curve),
    /// deletion_summary.csv (mean curves) and faithfulness.json (settings, dAUC, failures).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Fractions of bands removed, comma-separated (each rounded to a band count).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.1,0.25,0.5,0.75,0.9",
        conflicts_with = "every_band"
    )]
    fractions: Vec<f32>,
    /// Remove 0, 1, ..., B bands instead of --fractions.
    #[arg(long)]
    every_band: bool,
    /// Random orders per utterance (the random curve is their mean).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Bootstrap replicates over utterances for the dAUC intervals (0: none).
    #[arg(long, default_value_t = 2000)]
    bootstrap: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    flags: ExplainFlags,
}

impl FaithfulnessArgs {
    fn deletion_config(&self) -> DeletionConfig {
        DeletionConfig {
            points: if self.every_band {
                DeletionPoints::EveryBand
            } else {
                DeletionPoints::Fractions(self.fractions.clone())
            },
            random_repeats: self.repeats,
            seed: self.flags.seed,
            bootstrap: self.bootstrap,
        }
    }
}

#[derive(Args)]
struct StabilityArgs {
    /// A model written by `emolime train`, or a Hugging Face checkpoint folder.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    source: InputArgs,
    /// Output folder (must not exist unless --force): stability.csv (every utterance, class
    /// and count), stability_summary.csv and stability.json.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Seeds compared, comma-separated (at least two).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Sample counts compared, ascending, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,128,256,512,1000,2000,4000")]
    sample_counts: Vec<usize>,
    /// Size of the top-k band sets compared.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// The Spearman agreement asked for.
    #[arg(long, default_value_t = 0.95)]
    target: f64,
    /// Skip the exhaustive-mask reference.
    #[arg(long)]
    no_exact: bool,
    /// Explain only the first N utterances of the input.
    #[arg(long)]
    limit: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    flags: ExplainFlags,
}

/// One explain run of `emolime robustness`: which dataset and model it is.
#[derive(Clone)]
struct RunRef {
    dataset: String,
    model: String,
    dir: PathBuf,
}

/// Parses `DATASET:MODEL=DIR`.
fn parse_run_ref(s: &str) -> std::result::Result<RunRef, String> {
    let bad = || format!("expected DATASET:MODEL=DIR, got `{s}`");
    let (names, dir) = s.split_once('=').ok_or_else(bad)?;
    let (dataset, model) = names.split_once(':').ok_or_else(bad)?;
    let (dataset, model, dir) = (dataset.trim(), model.trim(), dir.trim());
    if dataset.is_empty() || model.is_empty() || dir.is_empty() || dataset.contains('/') || model.contains('/') {
        return Err(bad());
    }
    Ok(RunRef {
        dataset: dataset.into(),
        model: model.into(),
        dir: dir.into(),
    })
}

#[derive(Args)]
struct RobustnessArgs {
    /// An explain run folder as DATASET:MODEL=DIR; give one per (dataset, model), at least two
    /// models on one dataset and one model on two datasets.
    #[arg(long = "run", value_parser = parse_run_ref, required = true)]
    runs: Vec<RunRef>,
    /// Output folder (must not exist unless --force): profiles.csv, pairs.csv, robustness.json.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Permutations of the permutation test.
    #[arg(long, default_value_t = 10000)]
    permutations: usize,
    /// Seed of the permutations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct StudyArgs {
    /// The study file (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Output folder [default: the file's `out`].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Check the study and print its commands without running them.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Utterances of the built-in corpus to explain.
    #[arg(long, default_value_t = 16)]
    utterances: usize,
    /// Seconds per utterance.
    #[arg(long, default_value_t = 2.0)]
    seconds: f32,
    /// Perturbed samples per utterance.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Perturbed inputs per model call [default: the device's for the model, as `explain`].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of the corpus, the model and the masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the record as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Build and score every masked spectrogram instead of the CNN's row-cached forward.
    #[arg(long)]
    no_row_cache: bool,
    /// Time this model (a model file or checkpoint folder, as `explain --model` takes) instead
    /// of the built-in CNN, on the same corpus.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Precision the model scores in: f16 for a wav2vec 2.0 / HuBERT checkpoint (as `explain
    /// --precision`); the built-in CNN scores in f32 only.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    #[command(flatten)]
    device: DeviceArg,
}

impl BenchArgs {
    fn to_config(&self) -> emolime::bench::BenchConfig {
        emolime::bench::BenchConfig {
            utterances: self.utterances,
            seconds_each: self.seconds,
            samples: self.samples,
            batch_size: self.batch_size,
            seed: self.seed,
            row_cache: !self.no_row_cache,
            model: self.model.clone(),
            precision: self.precision.into(),
        }
    }
}

#[derive(Args)]
struct MergeArgs {
    /// Run folders written by `emolime explain` (every shard of one input, or one run).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output folder for the merged dataset.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// A CNN model written by `emolime train`.
    #[arg(long)]
    model: PathBuf,
    /// Audio to export inputs for: a file, a folder or a CSV manifest.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Export at most this many utterances (an even spread over the input).
    #[arg(long, requires = "input")]
    limit: Option<usize>,
    /// Number of equal-mel bands whose mel rows inputs.json lists (as `emolime explain --bands`).
    #[arg(long, default_value_t = 8)]
    bands: usize,
    /// Output folder (must not exist unless --force): weights.safetensors, model.json and, with
    /// --input, inputs.safetensors, inputs.json and manifest.csv (the exported utterances, when
    /// all are labelled).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Args)]
struct CompareArgs {
    /// A run folder (or its explanations.jsonl).
    a: PathBuf,
    /// Another run folder (or its explanations.jsonl).
    b: PathBuf,
    /// Exit with an error when the largest coefficient difference is above this.
    #[arg(long)]
    tolerance: Option<f32>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("feature_input").args(["features", "backbone"])))]
struct TrainArgs {
    #[command(flatten)]
    source: InputArgs,
    /// Where to write the model file.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing model file.
    #[arg(long)]
    force: bool,
    /// Passes over the data [default: the CNN's 30-odd, 200 for the mlp head].
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of initialisation, shuffling and the SVM's probability folds.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train a classifier on this feature set instead of the CNN.
    #[arg(long, value_enum, conflicts_with = "backbone")]
    features: Option<FeatureSetArg>,
    /// Train a classifier on a layer of this wav2vec 2.0 / HuBERT checkpoint folder, mean-pooled
    /// over time (EmoLIME's second black box), instead of the CNN.
    #[arg(long)]
    backbone: Option<PathBuf>,
    /// The backbone's hidden state: an index (0 = the transformer's input) or `last`
    /// (transformers' last_hidden_state).
    #[arg(long, default_value = "last", requires = "backbone")]
    layer: String,
    /// Folder of cached pooled embeddings [default: .emolime-embeddings beside --out].
    #[arg(long, requires = "backbone")]
    embedding_cache: Option<PathBuf>,
    /// Do not read or write cached embeddings.
    #[arg(long, requires = "backbone", conflicts_with = "embedding_cache")]
    no_embedding_cache: bool,
    /// Classifier on the features: svm (RBF, Platt probabilities, as EmoLIME), logreg or mlp.
    #[arg(long, default_value = "svm", requires = "feature_input")]
    head: String,
    /// Labelled files to report the trained classifier's accuracy on (e.g. another dataset).
    #[arg(long, requires = "feature_input")]
    test_input: Option<PathBuf>,
    /// Leave-speakers-out folds of the speaker-independent evaluation written next to the
    /// model (MODEL.eval.json) [default: 5, or the speaker count if fewer; skipped, with a
    /// note, when utterances lack speakers]; 0 turns it off. For the CNN each fold trains a
    /// fresh network with the same settings.
    #[arg(long)]
    folds: Option<usize>,
    /// Feature extraction threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Train a control model for sanity-checking explanations: `shuffled-labels` (labels
    /// permuted among the training examples) or `random-weights` (not trained: the CNN, or a
    /// feature classifier with `--head mlp`, keeps its seeded initial weights).
    #[arg(long, value_enum)]
    control: Option<ControlArg>,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum ControlArg {
    ShuffledLabels,
    RandomWeights,
}

impl From<&TrainArgs> for TrainConfig {
    fn from(a: &TrainArgs) -> Self {
        TrainConfig {
            epochs: a.epochs.unwrap_or(TrainConfig::default().epochs),
            seed: a.seed,
            control: a.control.map(|c| match c {
                ControlArg::ShuffledLabels => emolime::model::Control::ShuffledLabels,
                ControlArg::RandomWeights => emolime::model::Control::RandomWeights,
            }),
            ..TrainConfig::default()
        }
    }
}

#[derive(Args)]
struct SynthArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Utterances per class.
    #[arg(long, default_value_t = SynthConfig::default().n_per_class)]
    per_class: usize,
    /// Plant a cue: the first class differs from the others only by energy in LO-HI Hz.
    #[arg(long)]
    planted_band_hz: Option<String>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct DemoArgs {
    /// Output folder (default: a new `emolime-demo[-N]` in the current folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Utterances to explain.
    #[arg(long, default_value_t = 24)]
    explain: usize,
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    flags: ExplainFlags,
}

#[derive(Args)]
struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // Mesa's implicit Vulkan layer VK_LAYER_MESA_device_select only reorders adapters (emolime
        // picks its own), and on a headless machine it prints `error: XDG_RUNTIME_DIR is invalid`
        // twice while probing Wayland. Its documented switch turns it off.
        // SAFETY: nothing else runs yet, so no other thread reads the environment.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    #[cfg(unix)]
    // SAFETY: restores the default action before any thread starts. Rust ignores SIGPIPE, which
    // turns `emolime ... | head` into a "failed printing to stdout" panic; the default ends the
    // process quietly, as other command-line tools do.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(e) = dispatch(&cli.command) {
        eprintln!("error: {}", render_error(&e));
        std::process::exit(1);
    }
}

/// Runs one command (also each step of `emolime study`).
fn dispatch(command: &Command) -> Result<()> {
    match command {
        Command::Demo(a) => demo(a),
        Command::Export(a) => export(a),
        Command::Explain(a) => explain(a),
        Command::Train(a) => train_cmd(a),
        Command::Synth(a) => synth(a),
        Command::Devices(a) => devices(a),
        Command::Bench(a) => bench(a),
        Command::Merge(a) => merge(a),
        Command::Compare(a) => compare(a),
        Command::Faithfulness(a) => faithfulness(a),
        Command::Stability(a) => stability(a),
        Command::Robustness(a) => robustness(a),
        Command::Features(a) => match &a.action {
            Some(FeaturesAction::Rank(r)) => features_rank(r),
            Some(FeaturesAction::Probe(p)) => features_probe(p),
            None => features(&a.extract),
        },
        Command::Study(a) => study(a),
    }
}

/// The error and its causes on one line, each cause once: the library's messages already
/// carry their cause, so a cause whose text is already there is not repeated.
fn render_error(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

fn features(a: &FeaturesArgs) -> Result<()> {
    let out = a.out.as_ref().context("features: --out is required")?;
    let FeatureSetArg::Egemaps = a.set;
    if out.exists() && !a.force {
        bail!(
            "{}: output file already exists (pass --force to replace it)",
            out.display()
        );
    }
    let inputs = a.source.collect()?;
    for e in &inputs.errors {
        eprintln!("skipped: {e}");
    }
    if inputs.items.is_empty() {
        bail!("{}: no audio files to analyse", a.source.describe());
    }
    let cfg = FeatureConfig::from(a);
    let pb = bar(inputs.items.len(), "egemaps");
    let t0 = std::time::Instant::now();
    let results = extract_corpus(&inputs.items, &cfg, |done, _| pb.set_position(done as u64));
    let seconds = t0.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let mut failed = 0;
    for r in &results {
        if let Err(e) = r {
            eprintln!("failed: {e}");
            failed += 1;
        }
    }
    let n_ok = results.len() - failed;
    if n_ok == 0 {
        bail!("no file could be analysed ({failed} failures)");
    }
    let parquet = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    match (parquet, cfg.level) {
        (false, level) => write_csv(out, &inputs.items, &results, level)?,
        (true, Level::Functionals) => {
            emolime::table::write_features_parquet(out, &inputs.items, &results, &EGEMAPS_NAMES, None)?
        }
        (true, Level::Lld) => emolime::table::write_features_parquet(
            out,
            &inputs.items,
            &results,
            &emolime::features::LLD_NAMES,
            Some(emolime::features::HOP_LEN as f64 / f64::from(emolime::features::SAMPLE_RATE_HZ)),
        )?,
    }
    let threads = cfg.resolved_workers().min(inputs.items.len());
    println!(
        "{n_ok} files in {seconds:.2} s ({:.1} files/s on {threads} thread{}), {failed} failed -> {}",
        n_ok as f64 / seconds,
        if threads == 1 { "" } else { "s" },
        out.display()
    );
    Ok(())
}

fn features_rank(a: &RankArgs) -> Result<()> {
    let cfg = RankConfig {
        folds: a.folds,
        seed: a.seed,
        head: HeadConfig {
            kind: a.head.parse()?,
            ..RankConfig::default().head
        },
        top_k: a.top_k,
        bootstrap: a.bootstrap,
        shap_coalitions: a.shap_coalitions,
        workers: a.workers,
        ..RankConfig::default()
    };
    cfg.validate()?;
    let sep = emolime::rank::CONDITION_SEPARATOR;
    if let Some((name, _)) = a.corpora.iter().find(|(name, _)| name.contains(sep)) {
        bail!("--corpus `{name}`: a corpus name cannot contain `{sep}` (it separates CORPUS{sep}CONDITION)");
    }
    for (i, c) in a.conditions.iter().enumerate() {
        if a.conditions[..i].iter().any(|o| o.to_string() == c.to_string()) {
            bail!("--condition `{c}` is given twice");
        }
    }
    let out = OutputDir::create(&a.out, a.force)?;
    // Manifests, labels and speakers first: a corpus that cannot be ranked fails before any
    // feature is extracted.
    let mut corpora = Vec::with_capacity(a.corpora.len());
    for (name, path) in &a.corpora {
        let inputs = match emolime::corpora::CorpusKind::parse(name) {
            Some(kind) if path.is_dir() => {
                let inputs = emolime::corpora::load_corpus(kind, path, &emolime::corpora::LabelSet::default())?;
                report_skipped(kind.name(), &inputs.skipped);
                inputs
            }
            _ => collect_inputs(path).with_context(|| format!("corpus `{name}`"))?,
        };
        for e in &inputs.errors {
            eprintln!("skipped (corpus `{name}`): {e}");
        }
        let meta = DatasetMeta::from_items(name, &inputs.items)?;
        corpora.push((name.as_str(), inputs.items, meta));
    }
    let targets = match &a.targets_from {
        Some(path) => Some(model_targets(path, &a.device, &mut corpora)?),
        None => None,
    };
    // One dataset per (condition, corpus): the corpus's name when clean, CORPUS@CONDITION else.
    let dataset_name = |corpus: &str, c: &Condition| {
        if c.is_clean() {
            corpus.to_string()
        } else {
            format!("{corpus}{sep}{c}")
        }
    };
    let metas: Vec<DatasetMeta> = a
        .conditions
        .iter()
        .flat_map(|c| {
            corpora.iter().map(move |(name, _, meta)| DatasetMeta {
                name: dataset_name(name, c),
                ..meta.clone()
            })
        })
        .collect();
    emolime::rank::plan(&metas.iter().collect::<Vec<_>>(), &cfg).with_context(|| match &a.targets_from {
        Some(m) => format!("the classes are the predictions of {}", m.display()),
        None => "the corpora cannot be ranked".to_string(),
    })?;
    let t0 = std::time::Instant::now();
    let features = FeatureConfig {
        level: Level::Functionals,
        workers: a.workers,
    };
    let mut datasets = Vec::with_capacity(metas.len());
    for c in &a.conditions {
        for (k, (name, items, _)) in corpora.iter().enumerate() {
            let label = dataset_name(name, c);
            let pb = bar(items.len(), &label);
            let results = if c.is_clean() {
                extract_corpus(items, &features, |done, _| pb.set_position(done as u64))
            } else {
                let seed = derive_seed(a.seed, &[k as u64]);
                extract_corpus_under(items, &features, c, seed, |done, _| pb.set_position(done as u64))
                    .with_context(|| format!("corpus `{name}`, --condition `{c}`"))?
            };
            pb.finish_and_clear();
            let (ds, failed) = Dataset::from_extraction(&label, items, results)?;
            for f in &failed {
                eprintln!("failed: {f}");
            }
            datasets.push(ds);
        }
    }
    let extract_s = t0.elapsed().as_secs_f64();
    let names: Vec<String> = EGEMAPS_NAMES.iter().map(|s| s.to_string()).collect();
    let mut pb: Option<(emolime::rank::Stage, ProgressBar)> = None;
    let device = a.device.open()?;
    let scoring_device = device.gpu.as_ref().map(|_| &device.burn);
    let report = emolime::rank::rank_on(&datasets, &names, &cfg, scoring_device, |p| {
        if pb.as_ref().is_none_or(|(stage, _)| *stage != p.stage) {
            if let Some((_, old)) = pb.take() {
                old.finish_and_clear();
            }
            pb = Some((p.stage, bar(p.total, p.stage.name())));
        }
        if let Some((_, b)) = &pb {
            b.set_position(p.done as u64);
        }
    })?;
    if let Some((_, b)) = pb {
        b.finish_and_clear();
    }
    report.write(&out)?;
    if let Some(t) = &targets {
        emolime::output::write_json(&out.path("targets.json"), t)?;
    }
    let path = out.commit()?;
    if let Some(t) = &targets {
        println!("targets: the predictions of {}", t["model"].as_str().unwrap_or(""));
        for c in t["corpora"].as_array().into_iter().flatten() {
            println!(
                "  {}: {} utterances, the model agrees with the labels on {:.1}%",
                c["corpus"].as_str().unwrap_or(""),
                c["utterances"],
                100.0 * c["agreement"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    print_ranking(&report, extract_s);
    println!("outputs: {}", path.display());
    Ok(())
}

/// `emolime features probe`: eGeMAPS functionals and pooled hidden states of every utterance,
/// then the layer x feature map.
fn features_probe(a: &ProbeArgs) -> Result<()> {
    let inputs = collect_inputs(&a.input)?;
    for e in &inputs.errors {
        eprintln!("skipped: {e}");
    }
    let items = inputs.items;
    if let Some(item) = items.iter().find(|i| i.speaker.is_none()) {
        bail!(
            "{}: {} has no speaker (the manifest needs a `speaker` column for speaker-independent folds)",
            a.input.display(),
            item.path.display()
        );
    }
    let device = a.device.open()?;
    let (encoder, _, _) = emolime::model::hf::HfEncoder::load(&a.model, &device.burn)?;
    let out = OutputDir::create(&a.out, a.force)?;
    let t0 = std::time::Instant::now();
    let pb = bar(items.len(), "egemaps");
    let features = extract_corpus(
        &items,
        &FeatureConfig {
            level: Level::Functionals,
            workers: a.workers,
        },
        |done, _| pb.set_position(done as u64),
    );
    pb.finish_and_clear();
    let pb = bar(items.len(), "hidden states");
    let (mut states, mut rows, mut speakers) = (vec![], vec![], vec![]);
    for (item, f) in items.iter().zip(features) {
        let r = f.and_then(|f| {
            let x = encoder.load_audio(&item.path, a.max_seconds)?;
            let st = emolime::rank::probe::pooled_states(&encoder, &x, &device.burn)
                .map_err(|e| e.into_bad_audio(&item.path))?;
            Ok((st, f))
        });
        match r {
            Ok((st, f)) => {
                states.push(st);
                rows.extend(f.iter().copied());
                speakers.push(item.speaker.clone().unwrap_or_default());
            }
            Err(e) => eprintln!("failed: {e}"),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let names: Vec<String> = EGEMAPS_NAMES.iter().map(|s| s.to_string()).collect();
    let x = ndarray::Array2::from_shape_vec((speakers.len(), names.len()), rows)
        .context("feature rows of the wrong width")?;
    let cfg = emolime::rank::probe::ProbeConfig {
        folds: a.folds,
        seed: a.seed,
        ..Default::default()
    };
    let pb = bar(states.first().map_or(0, |s| s.nrows()), "ridge per layer");
    let map = emolime::rank::probe::layer_feature_map(&states, x.view(), &names, &speakers, &cfg, |done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    map.to_table().write(&out, "layer_feature_r2")?;
    let mut summary = map.summary_json();
    summary["model"] = serde_json::json!(a.model.display().to_string());
    summary["input"] = serde_json::json!(a.input.display().to_string());
    emolime::output::write_json(&out.path("summary.json"), &summary)?;
    let title = format!(
        "R^2 of eGeMAPS features from pooled hidden states ({} utterances, {} speakers)",
        map.n_utterances, map.n_speakers
    );
    emolime::figures::layer_feature_figure(map.r2.view(), &names, &title)?.save(&out.path("layer_feature_map"))?;
    let path = out.commit()?;
    let means = map.layer_means();
    println!(
        "{} utterances, {} speakers, {} folds, {} hidden states ({:.1} s)",
        map.n_utterances,
        map.n_speakers,
        map.n_folds,
        means.len(),
        t0.elapsed().as_secs_f64()
    );
    for (l, m) in means.iter().enumerate() {
        println!("  hidden state {l:>2}: mean R^2 {m:+.3}");
    }
    let mut best: Vec<(usize, (usize, f64))> = map.best_layers().into_iter().enumerate().collect();
    best.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    println!("best predicted features:");
    for (j, (l, r2)) in best.iter().take(5) {
        println!("  {:<45} R^2 {r2:.3} at hidden state {l}", names[*j]);
    }
    println!("outputs: {}", path.display());
    Ok(())
}

/// Replaces every item's label by `model`'s predicted class on its clean audio (an item the
/// model cannot read is dropped, with a message); returns a JSON record of the agreement
/// between labels and predictions per corpus.
fn model_targets(
    model_path: &Path,
    device: &DeviceArg,
    corpora: &mut [(&str, Vec<InputItem>, DatasetMeta)],
) -> Result<serde_json::Value> {
    let device = device.open()?;
    let model = AnyModel::load(model_path, &device.burn)?;
    let m = model.as_model();
    let mut ex = Explainer::new(m, &device, ExplainConfig::default())?;
    let ones = ndarray::Array2::<f32>::ones((1, ex.layout().n_bands()));
    let classes = m.classes().to_vec();
    let mut record = vec![];
    for (name, items, meta) in corpora.iter_mut() {
        let pb = bar(items.len(), &format!("{name}: model targets"));
        let (mut kept, mut agree) = (Vec::with_capacity(items.len()), 0usize);
        for item in items.drain(..) {
            let predicted = ex
                .preparer()
                .load_and_prepare(&item)
                .and_then(|p| ex.score_masks(&p, &ones))
                .map(|probs| classes[emolime::model::argmax(&probs.row(0).to_vec())].clone());
            match predicted {
                Ok(label) => {
                    agree += usize::from(item.label.as_deref() == Some(label.as_str()));
                    kept.push(InputItem {
                        label: Some(label),
                        ..item
                    });
                }
                Err(e) => eprintln!("skipped (corpus `{name}`, --targets-from): {e}"),
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        record.push(serde_json::json!({
            "corpus": name,
            "utterances": kept.len(),
            "agreement": agree as f64 / kept.len().max(1) as f64,
        }));
        *items = kept;
        *meta = DatasetMeta::from_items(name, items)?;
    }
    Ok(serde_json::json!({
        "model": model_path.display().to_string(),
        "classes": classes,
        "corpora": record,
    }))
}

/// Prints the corpora, the consensus top k, Kendall's W and the transfer summary.
fn print_ranking(r: &RankReport, extract_s: f64) {
    for d in &r.datasets {
        println!(
            "{}: {} utterances, {} speakers, {} folds; cross-validated accuracy {:.3} (balanced {:.3})",
            d.name, d.n_rows, d.n_speakers, d.folds, d.cv_accuracy, d.cv_balanced_accuracy
        );
    }
    println!(
        "consensus top {} (mean rank over {} rankings: {}; 95% CI; rankings with it in their top {})",
        r.config.top_k,
        r.consensus.rankings.len(),
        r.consensus.rankings.join(", "),
        r.config.top_k
    );
    for c in r.consensus.rows.iter().take(r.config.top_k) {
        println!(
            "  {:>2}  {:<42} {:5.1} [{:.1}, {:.1}]  {}/{}",
            c.consensus_rank,
            c.feature,
            c.mean_rank,
            c.ci_low,
            c.ci_high,
            (c.top_k_fraction * c.ranks.len() as f64).round(),
            c.ranks.len()
        );
    }
    let fmt_w = |w: &emolime::rank::KendallRow| match w.w {
        Some(v) => format!("{v:.3} [{:.3}, {:.3}]", w.ci_low, w.ci_high),
        None => "n/a".into(),
    };
    for (across, what) in [
        ("datasets", "across corpora"),
        ("methods", "across methods"),
        ("conditions", "across conditions"),
    ] {
        let cells: Vec<String> = r
            .agreement
            .kendall
            .iter()
            .filter(|w| w.across == across)
            .map(|w| format!("{} {} ({} items)", w.scope, fmt_w(w), w.n_items))
            .collect();
        if !cells.is_empty() {
            println!("Kendall's W {what}: {}", cells.join("; "));
        }
    }
    for (condition, c) in &r.consensus_by_condition {
        let top: Vec<&str> = c.rows.iter().take(5).map(|row| row.feature.as_str()).collect();
        println!("consensus top 5 under {condition}: {}", top.join(", "));
    }
    let summary = r.summary();
    let cells: Vec<String> = summary
        .transfer
        .iter()
        .map(|t| {
            let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.3}"));
            format!(
                "{}: {} across, {} within",
                t.features,
                f(t.mean_cross_corpus_accuracy),
                f(t.mean_within_corpus_accuracy)
            )
        })
        .collect();
    println!(
        "transfer accuracy (mean; across = train != test, within = speaker CV): {}",
        cells.join("; ")
    );
    println!("features {extract_s:.1} s, ranking {:.1} s", r.seconds);
}

fn bar(total: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn parse_band(s: &str) -> Result<(f32, f32)> {
    let (lo, hi) = s
        .split_once('-')
        .with_context(|| format!("--planted-band-hz: expected LO-HI, got `{s}`"))?;
    Ok((lo.trim().parse()?, hi.trim().parse()?))
}

fn synth(a: &SynthArgs) -> Result<()> {
    let cfg = SynthConfig {
        n_per_class: a.per_class,
        seed: a.seed,
        planted_band_hz: a.planted_band_hz.as_deref().map(parse_band).transpose()?,
        ..SynthConfig::default()
    };
    let manifest = write_corpus(&cfg, &a.out)?;
    println!(
        "wrote {} utterances; manifest {}",
        cfg.n_per_class * cfg.classes.len(),
        manifest.display()
    );
    Ok(())
}

fn devices(a: &DevicesArgs) -> Result<()> {
    let instance = emolime::gpu::new_instance();
    let adapters = emolime::gpu::adapters(&instance);
    let summaries: Vec<_> = adapters
        .iter()
        .enumerate()
        .map(|(i, ad)| emolime::gpu::summarize(i, ad))
        .collect();
    let auto = emolime::device::auto_hardware_adapter(&adapters);
    let picked = auto.map_or("cpu (no hardware gpu adapter)".to_string(), |i| format!("gpu:{i}"));
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "adapters": summaries, "auto": picked }))?
        );
        return Ok(());
    }
    if summaries.is_empty() {
        println!("no wgpu adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)");
    }
    for s in &summaries {
        println!(
            "gpu:{}  {}  [{} {}]  vendor 0x{:04x}  driver {}  memory {}  max storage binding {} MiB  max buffer {} MiB  max workgroups/dim {}",
            s.index,
            s.name,
            s.backend,
            s.device_type,
            s.vendor,
            s.driver,
            s.device_memory_bytes
                .map_or("unknown".to_string(), |b| format!("{} MiB", b >> 20)),
            s.max_storage_binding_bytes >> 20,
            s.max_buffer_bytes >> 20,
            s.max_workgroups_per_dim
        );
    }
    println!("--device auto picks: {picked}");
    Ok(())
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    if a.features.is_some() {
        return train_features(a, FeatureSource::Egemaps { workers: a.workers });
    }
    if let Some(folder) = &a.backbone {
        let device = a.device.open()?;
        let layer: Layer = a.layer.parse()?;
        let embedder = Embedder::load(folder, layer, &device.burn)?;
        eprintln!(
            "backbone {} hidden state {layer} on {}",
            folder.display(),
            device.description
        );
        let cache = (!a.no_embedding_cache).then(|| {
            a.embedding_cache.clone().unwrap_or_else(|| {
                a.out
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .join(".emolime-embeddings")
            })
        });
        return train_features(
            a,
            FeatureSource::Backbone {
                embedder: Box::new(embedder),
                cache,
            },
        );
    }
    train_cnn(a).map(|_| ())
}

/// Labelled feature rows: features `[N, D]`, label indices `[N]`, class names, and one
/// message per skipped item.
struct LabelledFeatures {
    x: ndarray::Array2<f64>,
    y: Vec<usize>,
    /// Speaker of each row, if known.
    speakers: Vec<Option<String>>,
    classes: Vec<String>,
    skipped: Vec<String>,
}

/// What a feature classifier is trained on: eGeMAPS, or a backbone layer's embedding.
enum FeatureSource {
    Egemaps {
        workers: usize,
    },
    Backbone {
        embedder: Box<Embedder>,
        /// Folder of cached embeddings (None: no cache).
        cache: Option<PathBuf>,
    },
}

impl FeatureSource {
    fn name(&self) -> String {
        match self {
            FeatureSource::Egemaps { .. } => EGEMAPS_SET.to_string(),
            FeatureSource::Backbone { embedder, .. } => embedder.feature_set(),
        }
    }

    fn feature_names(&self) -> Vec<String> {
        match self {
            FeatureSource::Egemaps { .. } => EGEMAPS_NAMES.iter().map(|s| s.to_string()).collect(),
            FeatureSource::Backbone { embedder, .. } => embedder.feature_names(),
        }
    }

    /// Features of every item (one result per item, in order).
    fn rows(&self, items: &[InputItem], what: &str) -> Result<Vec<emolime::Result<Vec<f64>>>> {
        let pb = bar(items.len(), what);
        let rows = match self {
            FeatureSource::Egemaps { workers } => {
                let cfg = FeatureConfig {
                    level: Level::Functionals,
                    workers: *workers,
                };
                extract_corpus(items, &cfg, |done, _| pb.set_position(done as u64))
                    .into_iter()
                    .map(|r| r.map(|a| a.into_raw_vec_and_offset().0))
                    .collect()
            }
            FeatureSource::Backbone { embedder, cache } => {
                embed_items(embedder, items, None, cache.as_deref(), EMBED_BATCH, |done, _| {
                    pb.set_position(done as u64)
                })?
            }
        };
        pb.finish_and_clear();
        Ok(rows)
    }

    /// The features of every labelled item, labels indexed into `classes` (`None`: the sorted
    /// labels of `items`).
    fn labelled(&self, items: &[InputItem], classes: Option<&[String]>, what: &str) -> Result<LabelledFeatures> {
        let classes: Vec<String> = classes.map_or_else(|| class_names(items), <[String]>::to_vec);
        let dim = self.feature_names().len();
        let (mut rows, mut labels, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let mut speakers = Vec::new();
        for (item, r) in items.iter().zip(self.rows(items, what)?) {
            let label = item.label.as_ref().and_then(|l| classes.iter().position(|c| c == l));
            match (r, label) {
                (Err(e), _) => skipped.push(e.to_string()),
                (Ok(_), None) => skipped.push(format!(
                    "{}: label {:?} is not one of the model's classes",
                    item.path.display(),
                    item.label.as_deref().unwrap_or("(none)")
                )),
                (Ok(x), Some(l)) => {
                    rows.extend(x);
                    labels.push(l);
                    speakers.push(item.speaker.clone());
                }
            }
        }
        let x = ndarray::Array2::from_shape_vec((labels.len(), dim), rows)?;
        Ok(LabelledFeatures {
            x,
            y: labels,
            speakers,
            classes,
            skipped,
        })
    }
}

/// `train --features egemaps` and `train --backbone DIR`: features, fit, save, and the
/// accuracy on `--test-input`.
fn train_features(a: &TrainArgs, source: FeatureSource) -> Result<()> {
    let random_weights = matches!(a.control, Some(ControlArg::RandomWeights));
    if random_weights && a.head.parse::<emolime::classify::HeadKind>().ok() != Some(emolime::classify::HeadKind::Mlp) {
        bail!(
            "--control random-weights: a {} head has no random initial weights to keep; use --head mlp, or shuffled-labels",
            a.head
        );
    }
    if a.out.exists() && !a.force {
        bail!(
            "{}: model file already exists (pass --force to replace it)",
            a.out.display()
        );
    }
    let head = HeadConfig {
        kind: a.head.parse()?,
        seed: a.seed,
        // The random-weights control: no training step, the seeded initial weights.
        epochs: if random_weights {
            0
        } else {
            a.epochs.unwrap_or(HeadConfig::default().epochs)
        },
        ..HeadConfig::default()
    };
    head.validate()?;
    let inputs = a.source.collect()?;
    let t0 = std::time::Instant::now();
    let LabelledFeatures {
        x,
        y,
        speakers,
        classes,
        mut skipped,
    } = source.labelled(&inputs.items, None, "features")?;
    skipped.extend(inputs.errors.iter().map(|e| e.to_string()));
    for e in &skipped {
        eprintln!("skipped: {e}");
    }
    if y.is_empty() {
        bail!("no usable training example ({} skipped)", skipped.len());
    }
    let y = if matches!(a.control, Some(ControlArg::ShuffledLabels)) {
        // The control: labels permuted among the examples (seeded), as for the CNN.
        let mut order: Vec<usize> = (0..y.len()).collect();
        order.sort_by_key(|&i| emolime::sampling::random_u32(a.seed, 13, i as u32, 0));
        order.iter().map(|&i| y[i]).collect::<Vec<usize>>()
    } else {
        y
    };
    let extract_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let model = FeatureClassifier::fit(x.view(), &y, classes, &source.name(), source.feature_names(), &head)?;
    let fit_s = t1.elapsed().as_secs_f64();
    let train_acc = accuracy(&model.predict(x.view())?, &y)?;
    model.save(&a.out)?;
    println!(
        "{} on {}: {} utterances, {} classes; features {extract_s:.1} s, fit {fit_s:.2} s; \
         train accuracy {train_acc:.3}; model {}",
        head.kind,
        source.name(),
        y.len(),
        model.classes().len(),
        a.out.display()
    );
    speaker_evaluation(a, &model, &source, &x, &y, &speakers, &head)?;
    if let Some(test) = &a.test_input {
        let inputs = collect_inputs(test)?;
        let LabelledFeatures {
            x: xt, y: yt, skipped, ..
        } = source.labelled(&inputs.items, Some(model.classes()), "test")?;
        for e in skipped.into_iter().chain(inputs.errors.iter().map(|e| e.to_string())) {
            eprintln!("test skipped: {e}");
        }
        if yt.is_empty() {
            bail!("{}: no labelled test utterance with a known class", test.display());
        }
        let pred = model.predict(xt.view())?;
        let cm = confusion_matrix(&pred, &yt, model.classes().len())?;
        println!(
            "test accuracy {:.3} on {} utterances ({})",
            accuracy(&pred, &yt)?,
            yt.len(),
            test.display()
        );
        println!(
            "confusion (rows: true, columns: predicted; {})",
            model.classes().join(", ")
        );
        for row in cm.outer_iter() {
            println!("  {}", row.iter().map(|v| format!("{v:5}")).collect::<String>());
        }
    }
    Ok(())
}

/// The leave-speakers-out evaluation of `train --features/--backbone`, printed and written as
/// `MODEL.eval.json`.
#[allow(clippy::too_many_arguments)]
fn speaker_evaluation(
    a: &TrainArgs,
    model: &FeatureClassifier,
    source: &FeatureSource,
    x: &ndarray::Array2<f64>,
    y: &[usize],
    speakers: &[Option<String>],
    head: &HeadConfig,
) -> Result<()> {
    let Some(k) = cv_folds(a.folds, speakers)? else {
        return Ok(());
    };
    let known: Vec<String> = speakers.iter().map(|s| s.clone().unwrap_or_default()).collect();
    let t0 = std::time::Instant::now();
    let report = emolime::classify::eval::speaker_cv(
        x.view(),
        y,
        &known,
        model.classes(),
        &source.name(),
        &source.feature_names(),
        head,
        k,
        a.seed,
    )?;
    let path = a.out.with_extension("eval.json");
    emolime::output::write_json(&path, &report)?;
    print_cv(&report, k, t0.elapsed().as_secs_f64(), &path);
    Ok(())
}

fn train_cnn(a: &TrainArgs) -> Result<Classifier> {
    if a.out.exists() && !a.force {
        bail!(
            "{}: model file already exists (pass --force to replace it)",
            a.out.display()
        );
    }
    let device = a.device.open()?;
    let inputs = a.source.collect()?;
    let cfg = TrainConfig::from(a);
    train_on(
        &inputs.items,
        inputs.errors.iter().map(|e| e.to_string()).collect(),
        &cfg,
        &device,
        &a.out,
        &a.out,
        a.folds,
    )
}

/// Trains, saves to `out` and reports the model as `shown` (its final path); then, unless
/// `folds` is `Some(0)`, the leave-speakers-out evaluation (`MODEL.eval.json`).
fn train_on(
    items: &[InputItem],
    mut errors: Vec<String>,
    cfg: &TrainConfig,
    device: &ComputeDevice,
    out: &Path,
    shown: &Path,
    folds: Option<usize>,
) -> Result<Classifier> {
    let fe = FrontEndConfig::default();
    let pb = bar(items.len(), "features");
    let (examples, classes, failures) = load_training_set(items, &fe, |p| {
        if let Progress::Done { done, .. } = p {
            pb.set_position(done as u64)
        }
    })?;
    pb.finish_and_clear();
    errors.extend(failures.iter().map(|f| f.error.clone()));
    for e in &errors {
        eprintln!("skipped: {e}");
    }
    if examples.is_empty() {
        bail!("no usable training example ({} failures)", errors.len());
    }
    let pb = bar(cfg.epochs, "training");
    let t0 = std::time::Instant::now();
    let (model, report) = train(&examples, classes, fe.clone(), cfg, &device.burn, |epoch, _| {
        pb.set_position(epoch as u64 + 1)
    })?;
    pb.finish_and_clear();
    // The speakers of the examples (the items that loaded, in order).
    let failed: std::collections::BTreeSet<usize> = failures.iter().filter_map(|f| f.position).collect();
    let speakers: Vec<Option<String>> = items
        .iter()
        .enumerate()
        .filter(|(i, _)| !failed.contains(i))
        .map(|(_, item)| item.speaker.clone())
        .collect();
    model.save(out)?;
    println!(
        "trained on {} utterances ({} held out) in {:.1} s on {}: train accuracy {:.2}, held-out accuracy {}; model {}",
        report.n_train,
        report.n_val,
        t0.elapsed().as_secs_f64(),
        device.description,
        report.train_accuracy,
        report.val_accuracy.map_or("n/a".into(), |v| format!("{v:.2}")),
        shown.display()
    );
    if !errors.is_empty() {
        eprintln!("{} inputs skipped", errors.len());
    }
    if let Some(k) = cv_folds(folds, &speakers)? {
        let known: Vec<String> = speakers.into_iter().map(|s| s.unwrap_or_default()).collect();
        let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
        let m = fe.n_mels;
        let pb = bar(k, "folds");
        let t0 = std::time::Instant::now();
        let report = emolime::classify::eval::cross_validate(
            &labels,
            &known,
            &model.meta.classes,
            k,
            cfg.seed,
            |train_rows, test| {
                let part: Vec<emolime::model::Example> = train_rows.iter().map(|&i| examples[i].clone()).collect();
                let (fold_model, _) = train(
                    &part,
                    model.meta.classes.clone(),
                    fe.clone(),
                    cfg,
                    &device.burn,
                    |_, _| {},
                )?;
                pb.inc(1);
                test.iter()
                    .map(|&i| {
                        let e = &examples[i];
                        let p = fold_model.probs_host(e.mel.clone(), [1, m, e.n_frames])?;
                        Ok(emolime::model::argmax(&p))
                    })
                    .collect()
            },
        )?;
        pb.finish_and_clear();
        print_cv(
            &report,
            k,
            t0.elapsed().as_secs_f64(),
            &shown.with_extension("eval.json"),
        );
        emolime::output::write_json(&out.with_extension("eval.json"), &report)?;
    }
    Ok(model)
}

/// The folds of a leave-speakers-out evaluation: `None` when it is off (`--folds 0`) or
/// impossible without an explicit `--folds` (a missing speaker, one speaker: said on stdout);
/// an error when `--folds` asks for it and it is impossible.
fn cv_folds(folds: Option<usize>, speakers: &[Option<String>]) -> Result<Option<usize>> {
    if folds == Some(0) {
        return Ok(None);
    }
    let Some(known) = speakers.iter().cloned().collect::<Option<Vec<String>>>() else {
        if folds.is_some() {
            bail!(
                "--folds: a speaker-independent evaluation needs a speaker for every utterance (a manifest `speaker` column or --corpus)"
            );
        }
        println!("no speaker-independent evaluation: some utterances have no speaker (give a `speaker` column)");
        return Ok(None);
    };
    let n_speakers = emolime::rank::folds::speaker_counts(&known).len();
    Ok(match folds {
        Some(k) => Some(k),
        None if n_speakers < 2 => {
            println!("no speaker-independent evaluation: one speaker only");
            None
        }
        None => Some(n_speakers.min(5)),
    })
}

/// One line of a speaker-independent evaluation.
fn print_cv(report: &emolime::classify::eval::CvReport, k: usize, seconds: f64, path: &Path) {
    let p = &report.pooled;
    println!(
        "speaker-independent, {k} folds ({seconds:.1} s): UA {:.3}, WA {:.3}, macro F1 {:.3}; {}",
        p.ua,
        p.wa,
        p.macro_f1,
        path.display()
    );
}

/// Progress of a corpus run: a bar on a terminal, a plain line every 10 s otherwise (logs of
/// batch jobs), nothing when quiet.
struct Reporter {
    quiet: bool,
    samples_per_utterance: usize,
    bar: Option<ProgressBar>,
    started: std::time::Instant,
    last_line: std::time::Instant,
}

impl Reporter {
    /// Seconds between progress lines when stderr is not a terminal.
    const LINE_EVERY_S: f64 = 10.0;

    fn new(quiet: bool, samples_per_utterance: usize) -> Self {
        let now = std::time::Instant::now();
        Reporter {
            quiet,
            samples_per_utterance,
            bar: None,
            started: now,
            last_line: now,
        }
    }

    fn event(&mut self, p: Progress) {
        if self.quiet {
            return;
        }
        use std::io::IsTerminal;
        match p {
            Progress::Started { pending, resumed } => {
                if resumed > 0 {
                    eprintln!("resuming: {resumed} utterances already done, {pending} to go");
                }
                self.started = std::time::Instant::now();
                self.last_line = self.started;
                if std::io::stderr().is_terminal() {
                    let pb = ProgressBar::new(pending as u64);
                    pb.set_style(
                        ProgressStyle::with_template("explaining [{bar:30}] {pos}/{len} utterances {msg} eta {eta}")
                            .expect("static template")
                            .progress_chars("=> "),
                    );
                    self.bar = Some(pb);
                }
            }
            Progress::Done { done, total } => {
                let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
                let per_s = done as f64 / elapsed;
                let samples_per_s = per_s * self.samples_per_utterance as f64;
                if let Some(pb) = &self.bar {
                    pb.set_position(done as u64);
                    pb.set_message(format!("{per_s:.2}/s, {samples_per_s:.0} samples/s"));
                } else if self.last_line.elapsed().as_secs_f64() >= Self::LINE_EVERY_S || done == total {
                    self.last_line = std::time::Instant::now();
                    let eta = (total - done) as f64 / per_s.max(1e-9);
                    eprintln!(
                        "explaining: {done}/{total} utterances ({:.1}%), {per_s:.2} utterances/s, {samples_per_s:.0} samples/s, eta {eta:.0} s",
                        100.0 * done as f64 / total.max(1) as f64
                    );
                }
            }
        }
    }

    fn finish(self) {
        if let Some(pb) = self.bar {
            pb.finish_and_clear();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_explain(
    model: &dyn SerModel,
    device: &ComputeDevice,
    cfg: ExplainConfig,
    items: &[InputItem],
    prior: Vec<Failure>,
    dir: &Path,
    opts: &RunOptions,
    quiet: bool,
) -> Result<CorpusReport> {
    let mut explainer = Explainer::new(model, device, cfg)?;
    let mut reporter = Reporter::new(quiet, explainer.masks().nrows());
    let report = explain_corpus(&mut explainer, items, prior, &device.description, dir, opts, |p| {
        reporter.event(p)
    })?;
    reporter.finish();
    if let Some(batch) = explainer.reduced_batch() {
        eprintln!(
            "note: the device ran out of memory, so model calls were retried with fewer inputs and went on with \
             {batch} per call (pass --batch-size {batch} to start there)"
        );
    }
    Ok(report)
}

fn print_report(report: &CorpusReport, out: &Path) {
    println!("device: {}", report.device);
    let timing = if report.seconds > 0.0 {
        format!(
            " in {:.1} s ({:.2} utterances/s; waiting for decoded audio {:.1} s)",
            report.seconds, report.utterances_per_s, report.input_wait_s
        )
    } else {
        String::new()
    };
    let resumed = if report.n_resumed > 0 {
        format!(
            " ({} inputs were finished by an earlier, interrupted run)",
            report.n_resumed
        )
    } else {
        String::new()
    };
    println!(
        "explained {} utterances{resumed}{timing}{}",
        report.n_explained,
        report
            .accuracy
            .map_or(String::new(), |a| format!("; accuracy on labelled inputs {a:.2}"))
    );
    let edges: Vec<String> = report
        .band_edges_hz
        .windows(2)
        .map(|w| format!("{:.0}-{:.0}", w[0], w[1]))
        .collect();
    println!(
        "band importance (mean LIME coefficient per band, Hz: {})",
        edges.join(" | ")
    );
    for c in &report.importance {
        if c.n_utterances == 0 {
            println!("  {:>8} (n=  0): no utterances", c.class);
            continue;
        }
        let cells: Vec<String> = c.mean_coefficients.iter().map(|v| format!("{v:+.3}")).collect();
        let top = emolime::model::argmax(&c.mean_coefficients);
        println!(
            "  {:>8} (n={:>3}): {}   top band {}",
            c.class,
            c.n_utterances,
            cells.join(" "),
            edges.get(top).cloned().unwrap_or_default()
        );
    }
    for f in &report.failures {
        eprintln!("failed: {}", f.error);
    }
    println!("outputs: {}", out.display());
}

fn explain(a: &ExplainArgs) -> Result<()> {
    let cfg = a.flags.to_config(EXPLAIN_SAMPLES)?;
    if a.resume && !a.force && a.out.join("summary.json").is_file() {
        println!("{}: this run is finished; nothing to resume", a.out.display());
        return Ok(());
    }
    let opts = RunOptions {
        model: String::new(),
        model_fingerprint: model_fingerprint(&a.model)?,
        input: a.source.describe(),
        shard: a.shard.unwrap_or_default(),
        part_size: a.part_size,
        pack_utterances: a.pack,
    };
    opts.validate()?;
    let device = a.device.open()?;
    let model = AnyModel::load(&a.model, &device.burn)?
        .cast(a.precision.into())
        .with_context(|| format!("{}", a.model.display()))?;
    let model = model.as_model();
    let cfg = a.flags.on_device(cfg, &device, &model.input());
    println!("model: {}", model.describe());
    let inputs = a.source.collect()?;
    let prior: Vec<Failure> = inputs
        .errors
        .iter()
        .map(|e| Failure {
            id: String::new(),
            position: None,
            error: e.to_string(),
        })
        .collect();
    let (out, state) = OutputDir::resumable(&a.out, a.force, a.resume)?;
    if a.resume && state == Resumed::Fresh && !a.quiet {
        eprintln!("no unfinished run of {}: starting one", a.out.display());
    }
    let opts = RunOptions {
        model: model.describe(),
        ..opts
    };
    let report = run_explain(model, &device, cfg, &inputs.items, prior, &out.path(""), &opts, a.quiet)?;
    let path = out.commit()?;
    print_report(&report, &path);
    if !report.failures.is_empty() {
        bail!(
            "{} of {} inputs failed",
            report.failures.len(),
            report.failures.len() + report.n_explained
        );
    }
    Ok(())
}

fn bench(a: &BenchArgs) -> Result<()> {
    let cfg = a.to_config();
    cfg.validate()?;
    let device = a.device.open()?;
    println!("device: {}", device.description);
    if let Some(g) = &device.gpu {
        let s = &g.summary;
        println!(
            "adapter: {} (vendor 0x{:04x}, {}, {}, driver {})",
            s.name, s.vendor, s.backend, s.device_type, s.driver
        );
    }
    let work = tempfile_dir()?;
    let report = emolime::bench::run_bench(&cfg, &device, &work, |what| eprintln!("bench: {what}"));
    let _ = std::fs::remove_dir_all(&work);
    let report = report?;
    let m = &report.ms_per_utterance;
    let scoring = match (&device.gpu, report.row_cached) {
        (None, true) => ", scoring by the row-cached host forward",
        (Some(_), true) => ", scoring by the row-cached forward on the device",
        (_, false) => ", every distinct masked input scored",
    };
    println!(
        "work: {} utterances of {} s, {} samples each, {} bands, {} classes, batch {}, seed {}{scoring}",
        cfg.utterances, cfg.seconds_each, cfg.samples, report.bands, report.classes, report.batch_size, cfg.seed
    );
    println!("model: {}", report.model);
    println!("ms per utterance, utterances packed as in the run, each stage waited for:");
    for (name, v) in [
        ("decode + stft", m.decode_stft),
        ("masks", m.masks),
        ("scoring", m.scoring),
        ("surrogate", m.surrogate),
        ("writing", m.writing),
    ] {
        println!("  {name:>14}: {v:9.2}");
    }
    let through = if report.row_cached {
        "masked inputs through the row-cached forward"
    } else {
        "inputs scored"
    };
    println!(
        "scoring rate: {} {through} per utterance, {:.0} per second of the scoring stage",
        report.scored_per_utterance, report.scored_per_s
    );
    let e = &report.end_to_end;
    println!(
        "end to end: {:.2} utterances/s, {:.0} samples/s, {:.2} explanations/s ({:.2} s)",
        e.utterances_per_s, e.samples_per_s, e.explanations_per_s, e.seconds
    );
    println!(
        "first run (kernel compilation and tuning included, not in the figures above): {:.2} s",
        report.warm_up_seconds
    );
    if let Some(path) = &a.json {
        emolime::output::write_json(path, &report)?;
        println!("record: {}", path.display());
    }
    Ok(())
}

/// A fresh scratch folder under the system's temporary folder.
fn tempfile_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for i in 0.. {
        let dir = base.join(format!("emolime-bench-{}-{i}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(anyhow::Error::new(e).context(format!("{}", dir.display()))),
        }
    }
    unreachable!("unbounded search")
}

fn merge(a: &MergeArgs) -> Result<()> {
    let out = OutputDir::create(&a.out, a.force)?;
    let dir = out.path("");
    let report = merge_runs(&a.runs, &dir)?;
    let manifest = emolime::run::read_manifest(&dir)?;
    emolime::output::write_json(
        &dir.join("summary.json"),
        &serde_json::json!({
            "report": report,
            "config": manifest.identity.config,
            "model": manifest.identity.model,
            "merged_from": a.runs,
        }),
    )?;
    let path = out.commit()?;
    println!(
        "merged {} runs: {} of {} utterances explained, {} inputs failed",
        a.runs.len(),
        report.n_explained,
        manifest.n_inputs,
        report.failures.len()
    );
    print_report(&report, &path);
    Ok(())
}

fn faithfulness(a: &FaithfulnessArgs) -> Result<()> {
    let cfg = a.flags.to_config(EXPLAIN_SAMPLES)?;
    let del = a.deletion_config();
    del.validate()?;
    let device = a.device.open()?;
    let model = AnyModel::load(&a.model, &device.burn)?;
    let model = model.as_model();
    let cfg = a.flags.on_device(cfg, &device, &model.input());
    println!("model: {}", model.describe());
    let inputs = a.source.collect()?;
    for e in &inputs.errors {
        eprintln!("skipped: {e}");
    }
    if inputs.items.is_empty() {
        bail!("{}: no audio files to explain", a.source.describe());
    }
    let out = OutputDir::create(&a.out, a.force)?;
    let mut explainer = Explainer::new(model, &device, cfg.clone())?;
    let pb = (!a.quiet).then(|| bar(inputs.items.len(), "deletion"));
    let t0 = std::time::Instant::now();
    let (curves, failures) = run_deletion(&mut explainer, &inputs.items, &del, |done, _| {
        if let Some(pb) = &pb {
            pb.set_position(done as u64)
        }
    })?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let seconds = t0.elapsed().as_secs_f64();
    for f in &failures {
        eprintln!("failed: {}", f.error);
    }
    if curves.is_empty() {
        bail!("no utterance could be explained ({} failures)", failures.len());
    }
    let summary = summarize(&curves, &del)?;
    let dir = out.path("");
    emolime::output::write_atomic_with(&dir.join("deletion.csv"), |f| {
        write_curves_csv(f, &curves).map_err(|e| emolime::Error::io(f.path(), e))
    })?;
    emolime::output::write_atomic_with(&dir.join("deletion_summary.csv"), |f| {
        write_summary_csv(f, &summary).map_err(|e| emolime::Error::io(f.path(), e))
    })?;
    emolime::output::write_json(
        &dir.join("faithfulness.json"),
        &serde_json::json!({
            "summary": summary,
            "deletion": del,
            "config": cfg,
            "model": model.describe(),
            "input": a.source.describe(),
            "device": device.description,
            "seconds": seconds,
            "failures": failures,
            "input_errors": inputs.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }),
    )?;
    let path = out.commit()?;
    println!("device: {}", device.description);
    println!(
        "{} utterances in {seconds:.1} s; explained class = each utterance's predicted class",
        summary.n_utterances
    );
    let removed: Vec<String> = summary.removed.iter().map(|k| format!("{k:>6}")).collect();
    println!("bands removed (of {}):       {}", summary.n_bands, removed.join(""));
    for o in &summary.orders {
        let cells = |v: &[f64]| v.iter().map(|x| format!("{x:>6.3}")).collect::<String>();
        println!("  {:<6} unchanged share:   {}", o.order.name(), cells(&o.unchanged));
        println!("  {:<6} probability drop:  {}", o.order.name(), cells(&o.mean_drop));
    }
    let iv = |i: &emolime::faithfulness::Interval| format!("{:.3} [{:.3}, {:.3}]", i.mean, i.low, i.high);
    println!(
        "dAUC (random - MoRF) of the class probability: {} (95% bootstrap interval), positive for {:.0}% of utterances",
        iv(&summary.dauc_prob),
        100.0 * summary.share_dauc_positive
    );
    println!(
        "dAUC of the unchanged-prediction share: {}; LeRF - random: {}",
        iv(&summary.dauc_unchanged),
        iv(&summary.lerf_gain_prob)
    );
    println!("outputs: {}", path.display());
    if !failures.is_empty() {
        bail!("{} of {} inputs failed", failures.len(), failures.len() + curves.len());
    }
    Ok(())
}

fn stability(a: &StabilityArgs) -> Result<()> {
    if a.flags.samples.is_some() || a.flags.seed != 0 {
        bail!("stability: use --sample-counts and --seeds (not --samples or --seed)");
    }
    let base = a.flags.to_config(EXPLAIN_SAMPLES)?;
    let cfg = StabilityConfig {
        seeds: a.seeds.clone(),
        sample_counts: a.sample_counts.clone(),
        top_k: a.top_k,
        target: a.target,
        exhaustive_reference: !a.no_exact,
    };
    cfg.validate(base.bands.band_count())?;
    let device = a.device.open()?;
    let model = AnyModel::load(&a.model, &device.burn)?;
    let model = model.as_model();
    let base = a.flags.on_device(base, &device, &model.input());
    println!("model: {}", model.describe());
    let inputs = a.source.collect()?;
    for e in &inputs.errors {
        eprintln!("skipped: {e}");
    }
    let items = &inputs.items[..a.limit.unwrap_or(usize::MAX).min(inputs.items.len())];
    if items.is_empty() {
        bail!("{}: no audio files to explain", a.source.describe());
    }
    let out = OutputDir::create(&a.out, a.force)?;
    let mut runner = StabilityRunner::new(model, &device, &base, cfg.clone())?;
    let pb = (!a.quiet).then(|| bar(items.len(), "stability"));
    let t0 = std::time::Instant::now();
    let (rows, failures) = runner.run(items, |done, _| {
        if let Some(pb) = &pb {
            pb.set_position(done as u64)
        }
    });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let seconds = t0.elapsed().as_secs_f64();
    for f in &failures {
        eprintln!("failed: {}", f.error);
    }
    if rows.is_empty() {
        bail!("no utterance could be explained ({} failures)", failures.len());
    }
    let summary = emolime::stability::summarize(&rows, &cfg);
    let dir = out.path("");
    emolime::output::write_atomic_with(&dir.join("stability.csv"), |f| {
        emolime::stability::write_rows_csv(f, &rows).map_err(|e| emolime::Error::io(f.path(), e))
    })?;
    emolime::output::write_atomic_with(&dir.join("stability_summary.csv"), |f| {
        emolime::stability::write_summary_csv(f, &summary).map_err(|e| emolime::Error::io(f.path(), e))
    })?;
    emolime::output::write_json(
        &dir.join("stability.json"),
        &serde_json::json!({
            "summary": summary,
            "stability": cfg,
            "config": base,
            "exhaustive_reference": runner.has_exact_reference(),
            "model": model.describe(),
            "input": a.source.describe(),
            "device": device.description,
            "seconds": seconds,
            "failures": failures,
        }),
    )?;
    let path = out.commit()?;
    println!("device: {}", device.description);
    println!(
        "{} utterances, seeds {:?}, in {seconds:.1} s; agreement of band rankings across seeds (Spearman; target {}):",
        summary.n_utterances, cfg.seeds, cfg.target
    );
    println!(
        "  samples  scope      mean rho  share>=target  top-{} overlap  rho vs exhaustive",
        cfg.top_k
    );
    for c in &summary.counts {
        println!(
            "  {:>7}  {:<9}  {:>8.3}  {:>13.3}  {:>14.3}  {}",
            c.n_samples,
            c.scope,
            c.mean_spearman,
            c.share_at_target,
            c.mean_top_k,
            c.mean_spearman_exact.map_or("-".into(), |v| format!("{v:.3}"))
        );
    }
    let show = |n: Option<usize>| n.map_or("more than the largest count".to_string(), |n| n.to_string());
    println!(
        "samples needed: all classes {} (mean) / {} (95% of utterance-classes); predicted class {} / {}",
        show(summary.needed_all_mean),
        show(summary.needed_all_95),
        show(summary.needed_predicted_mean),
        show(summary.needed_predicted_95)
    );
    println!("outputs: {}", path.display());
    if !failures.is_empty() {
        bail!("{} of {} inputs failed", failures.len(), items.len());
    }
    Ok(())
}

fn robustness(a: &RobustnessArgs) -> Result<()> {
    use emolime::robustness::{Similarity, pair_similarities, profiles, test_agreement};
    for (i, r) in a.runs.iter().enumerate() {
        if a.runs[..i].iter().any(|o| o.dataset == r.dataset && o.model == r.model) {
            bail!("--run {}:{} is given twice", r.dataset, r.model);
        }
    }
    let mut all = vec![];
    let mut edges: Option<(Vec<f32>, &Path)> = None;
    for r in &a.runs {
        let run = read_run(&r.dir).with_context(|| format!("--run {}:{}", r.dataset, r.model))?;
        let e = &run.manifest.identity.band_edges_hz;
        match &edges {
            Some((first, dir)) if first != e => bail!(
                "{}: band edges {e:?} differ from {}'s {first:?}; explain every run with the same bands",
                r.dir.display(),
                dir.display()
            ),
            Some(_) => {}
            None => edges = Some((e.clone(), &r.dir)),
        }
        if run.records.is_empty() {
            bail!("{}: the run has no explanations", r.dir.display());
        }
        all.extend(profiles(&run.records, &r.dataset, &r.model));
    }
    let edges = edges.map(|(e, _)| e).unwrap_or_default();
    let pairs = pair_similarities(&all);
    let tests = [Similarity::Spearman, Similarity::Cosine]
        .into_iter()
        .map(|s| test_agreement(&pairs, s, a.permutations, a.seed))
        .collect::<emolime::Result<Vec<_>>>()?;
    let out = OutputDir::create(&a.out, a.force)?;
    let dir = out.path("");
    emolime::output::write_atomic_with(&dir.join("profiles.csv"), |f| {
        emolime::robustness::write_profiles_csv(f, &all, &edges).map_err(|e| emolime::Error::io(f.path(), e))
    })?;
    emolime::output::write_atomic_with(&dir.join("pairs.csv"), |f| {
        emolime::robustness::write_pairs_csv(f, &pairs).map_err(|e| emolime::Error::io(f.path(), e))
    })?;
    emolime::output::write_json(
        &dir.join("robustness.json"),
        &serde_json::json!({
            "runs": a.runs.iter().map(|r| serde_json::json!({"dataset": r.dataset, "model": r.model, "dir": r.dir})).collect::<Vec<_>>(),
            "band_edges_hz": edges,
            "tests": tests,
            "profiles": all,
            "pairs": pairs,
        }),
    )?;
    let path = out.commit()?;
    println!(
        "{} profiles ({} runs), {} cross-model and {} cross-dataset pairs",
        all.len(),
        a.runs.len(),
        tests[0].n_cross_model,
        tests[0].n_cross_dataset
    );
    for t in &tests {
        println!(
            "{:?}: cross-model {:.3} vs cross-dataset {:.3} (difference {:+.3}, Cliff's delta {:+.2}); \
             permutation p = {:.4} ({} permutations); Wilcoxon over {} emotions W+ = {}, p = {:.4}",
            t.similarity,
            t.mean_cross_model,
            t.mean_cross_dataset,
            t.difference,
            t.cliffs_delta,
            t.p_permutation,
            t.permutations,
            t.n_emotions,
            t.wilcoxon_w_plus,
            t.p_wilcoxon
        );
    }
    println!("outputs: {}", path.display());
    Ok(())
}

fn study(a: &StudyArgs) -> Result<()> {
    use emolime::study::{StepKind, StudyConfig};
    let cfg = StudyConfig::load(&a.config)?;
    let out = a
        .out
        .clone()
        .or_else(|| cfg.out.clone())
        .with_context(|| format!("{}: give `out = \"FOLDER\"` or --out", a.config.display()))?;
    // Checks that read the inputs, before any work: every input has labelled files, and the
    // classes explained are classes the models are trained on.
    for d in &cfg.dataset {
        let classes = |p: &Path, what: &str| -> Result<Vec<String>> {
            let inputs = collect_inputs(p).with_context(|| format!("dataset `{}` {what}", d.name))?;
            let classes = class_names(&inputs.items);
            if classes.is_empty() {
                bail!(
                    "dataset `{}`: {what} input {} has no labelled audio",
                    d.name,
                    p.display()
                );
            }
            Ok(classes)
        };
        let (train, test) = (classes(&d.train, "train")?, classes(&d.test, "test")?);
        let unknown: Vec<&String> = test.iter().filter(|c| !train.contains(c)).collect();
        if !unknown.is_empty() {
            bail!(
                "dataset `{}`: test labels {unknown:?} are not among the training labels {train:?} ({})",
                d.name,
                d.test.display()
            );
        }
    }
    let steps = cfg.steps(&out);
    if a.dry_run {
        for s in &steps {
            println!("{}", s.command_line());
        }
        return Ok(());
    }
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create the study folder", out.display()))?;
    emolime::output::write_json(
        &out.join("study.json"),
        &serde_json::json!({
            "config_file": a.config,
            "config": cfg,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "steps": steps.iter().map(|s| serde_json::json!({
                "kind": s.kind, "dataset": s.dataset, "model": s.model,
                "output": s.output, "command": s.command_line(),
            })).collect::<Vec<_>>(),
        }),
    )?;
    let t0 = std::time::Instant::now();
    for (i, step) in steps.iter().enumerate() {
        let done = match step.kind {
            // An explain run is finished when its folder exists (an interrupted one is
            // `.NAME.partial` beside it and is resumed).
            StepKind::Explain => step.output.join("summary.json").is_file(),
            _ => step.output.exists(),
        };
        if done {
            println!("[{}/{}] done already: {}", i + 1, steps.len(), step.output.display());
            continue;
        }
        println!("[{}/{}] {}", i + 1, steps.len(), step.command_line());
        let cli = Cli::try_parse_from(std::iter::once("emolime".to_string()).chain(step.args.iter().cloned()))
            .with_context(|| format!("study step {}: {}", i + 1, step.command_line()))?;
        if let Err(e) = dispatch(&cli.command) {
            if step.output.exists() {
                eprintln!("warning: step {} finished with: {}", i + 1, render_error(&e));
            } else {
                return Err(e.context(format!("study step {} failed: {}", i + 1, step.command_line())));
            }
        }
    }
    cfg.write_summary(&out)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let outcome = emolime::report::write_report(&out, &cfg, &steps, &command)?;
    for note in &outcome.left_out {
        eprintln!("report: left out the {note}");
    }
    let report = outcome.path;
    println!(
        "study finished in {:.1} s: {} (summary: {}, report: {})",
        t0.elapsed().as_secs_f64(),
        out.display(),
        out.join("study_summary.csv").display(),
        report.display()
    );
    Ok(())
}

fn compare(a: &CompareArgs) -> Result<()> {
    let load = |p: &Path| -> Result<Vec<ExplanationRecord>> {
        let dir = if p.is_dir() {
            p
        } else {
            p.parent().unwrap_or(Path::new("."))
        };
        Ok(read_run(dir)?.records)
    };
    let c = emolime::run::compare_records(&load(&a.a)?, &load(&a.b)?);
    println!(
        "{} utterance x class pairs in both; {} only in {}, {} only in {}",
        c.n_common,
        c.only_a,
        a.a.display(),
        c.only_b,
        a.b.display()
    );
    if let Some(w) = &c.worst_coefficient {
        println!(
            "largest coefficient difference {:.3e} ({} class {} band {})",
            c.max_coefficient_diff, w.0, w.1, w.2
        );
    }
    println!(
        "largest probability difference {:.3e}; largest intercept difference {:.3e}; predictions differ for {} utterances",
        c.max_prob_diff, c.max_intercept_diff, c.n_prediction_changes
    );
    println!(
        "band rankings: mean Spearman agreement {:.3}; same top band for {:.1}% of utterance x class pairs",
        c.mean_rank_agreement,
        100.0 * c.top_band_agreement
    );
    if let Some(t) = a.tolerance
        && (c.max_coefficient_diff > t || c.only_a > 0 || c.only_b > 0)
    {
        bail!(
            "the runs differ: largest coefficient difference {:.3e} (tolerance {t:.3e}), {} + {} unmatched",
            c.max_coefficient_diff,
            c.only_a,
            c.only_b
        );
    }
    Ok(())
}

fn demo(a: &DemoArgs) -> Result<()> {
    let target = match &a.out {
        Some(p) => p.clone(),
        None => (1..)
            .map(|i| {
                PathBuf::from(if i == 1 {
                    "emolime-demo".to_string()
                } else {
                    format!("emolime-demo-{i}")
                })
            })
            .find(|p| !p.exists())
            .expect("unbounded search"),
    };
    let cfg = a.flags.to_config(DEMO_SAMPLES)?;
    let out = OutputDir::create(&target, a.force)?;
    let device = a.device.open()?;
    // The demo trains emolime's CNN, which consumes mel power.
    let cfg = a.flags.on_device(
        cfg,
        &device,
        &emolime::model::ModelInput::MelPower(FrontEndConfig::default()),
    );
    println!("device: {}", device.description);
    let synth_cfg = SynthConfig::default();
    let manifest = write_corpus(&synth_cfg, &out.path("corpus"))?;
    println!(
        "synthesized {} utterances ({} classes)",
        synth_cfg.n_per_class * synth_cfg.classes.len(),
        synth_cfg.classes.len()
    );
    let inputs = collect_inputs(&manifest)?;
    let model = train_on(
        &inputs.items,
        vec![],
        &TrainConfig::default(),
        &device,
        &out.path("model.emolime"),
        &target.join("model.emolime"),
        Some(0),
    )?;
    // Explain an even spread over the classes.
    let items = even_spread(&inputs.items, a.explain);
    let opts = RunOptions {
        model: model.describe(),
        input: "built-in synthetic corpus".into(),
        ..RunOptions::default()
    };
    let staged = out.path("");
    let report = run_explain(&model, &device, cfg, &items, vec![], &staged, &opts, false)?;
    let path = out.commit()?;
    relocate_paths(&path, &staged)?;
    print_report(&report, &path);
    Ok(())
}

fn export(a: &ExportArgs) -> Result<()> {
    let device = a.device.open()?;
    let AnyModel::Cnn(cnn) = AnyModel::load(&a.model, &device.burn)? else {
        bail!(
            "{}: export takes emolime's log-mel CNN; other models are already in open formats",
            a.model.display()
        );
    };
    let out = OutputDir::create(&a.out, a.force)?;
    let dir = out.path("");
    emolime::output::write_atomic(&dir.join("weights.safetensors"), &cnn.to_safetensors()?)?;
    emolime::output::write_json(
        &dir.join("model.json"),
        &serde_json::json!({
            "meta": cnn.meta,
            "freq_groups": emolime::model::cnn::FREQ_GROUPS,
            "architecture": "power mel [N,1,M,T] -> 10*log10(x+1e-10), (x-db_mean)/db_std -> \
                conv1 3x3 stride (2,1) pad 1, bn1, relu, maxpool 2 -> conv2 3x3 same, bn2, relu, \
                maxpool 2 -> conv3 3x3 same, bn3, relu -> adaptive avg pool (freq_groups, 1) -> \
                flatten -> fc -> softmax",
        }),
    )?;
    let mut n = 0;
    if let Some(input) = &a.input {
        let inputs = collect_inputs(input)?;
        for e in &inputs.errors {
            eprintln!("skipped: {e}");
        }
        let items = even_spread(&inputs.items, a.limit.unwrap_or(inputs.items.len()).max(1));
        if items.is_empty() {
            bail!("{}: no audio files to export", input.display());
        }
        let cfg = ExplainConfig {
            bands: BandConfig {
                n_bands: a.bands,
                kind: BandKind::EqualMel,
            },
            ..ExplainConfig::default()
        };
        cfg.validate()?;
        let model = AnyModel::Cnn(cnn);
        let mut explainer = Explainer::new(model.as_model(), &device, cfg)?;
        let filterbank = explainer.front_end().mel_filterbank()?;
        let all_bands = ndarray::Array2::<f32>::ones((1, a.bands));
        let (mut shapes, mut mels) = (Vec::new(), Vec::new());
        let (mut records, mut manifest) = (Vec::new(), String::from("path,label\n"));
        for item in &items {
            let prepared = explainer.preparer().load_and_prepare(item)?;
            let emolime::explain::PreparedInput::Power(power) = &prepared.input else {
                bail!("export: a CNN's input is a power spectrogram");
            };
            let mel = filterbank.apply(power.view())?; // [M, T]
            let probs = explainer.score_masks(&prepared, &all_bands)?; // [1, C]
            records.push(serde_json::json!({
                "id": item.id,
                "path": item.path,
                "label": item.label,
                "n_frames": mel.ncols(),
                "probs": probs.row(0).to_vec(),
            }));
            // Absolute, so the manifest reads the same files wherever it is used from.
            let abs = std::fs::canonicalize(&item.path).unwrap_or_else(|_| item.path.clone());
            emolime::output::csv_field(&mut manifest, &abs.display().to_string());
            manifest.push(',');
            emolime::output::csv_field(&mut manifest, item.label.as_deref().unwrap_or(""));
            manifest.push('\n');
            shapes.push([mel.nrows(), mel.ncols()]);
            mels.push(mel.iter().copied().collect::<Vec<f32>>()); // row-major [M, T]
        }
        let names: Vec<String> = (0..mels.len()).map(|i| format!("mel.{i}")).collect();
        let arrays: Vec<emolime::output::NamedArray> = (0..mels.len())
            .map(|i| emolime::output::NamedArray {
                name: &names[i],
                shape: &shapes[i],
                data: &mels[i],
            })
            .collect();
        let bytes = emolime::output::safetensors_bytes(&arrays, &Default::default())?;
        emolime::output::write_atomic(&dir.join("inputs.safetensors"), &bytes)?;
        let layout = explainer.layout();
        emolime::output::write_json(
            &dir.join("inputs.json"),
            &serde_json::json!({
                "classes": explainer.classes(),
                "bands": {"n_bands": layout.n_bands(), "edges_hz": layout.edges_hz, "row_band": layout.row_band},
                "utterances": records,
            }),
        )?;
        // A manifest row needs a label; unlabelled audio is explained from the original input.
        if items.iter().all(|i| i.label.is_some()) {
            emolime::output::write_atomic(&dir.join("manifest.csv"), manifest.as_bytes())?;
        } else {
            eprintln!("note: manifest.csv not written: some inputs have no label (a manifest row needs one)");
        }
        n = items.len();
    }
    let path = out.commit()?;
    println!(
        "exported the model{} to {}",
        if n > 0 {
            format!(" and {n} inputs")
        } else {
            String::new()
        },
        path.display()
    );
    Ok(())
}

/// At most `n` of `items`, evenly spread over them (every `len / n`-th, from the first).
fn even_spread(items: &[InputItem], n: usize) -> Vec<InputItem> {
    let step = (items.len() / n.max(1)).max(1);
    items.iter().step_by(step).take(n).cloned().collect()
}

/// Points the records' audio paths from the staging folder to the committed one `dir` (the
/// demo's corpus lives inside its output folder).
fn relocate_paths(dir: &Path, from: &Path) -> Result<()> {
    let mut contents = read_run(dir)?;
    for rec in &mut contents.records {
        if let Ok(rel) = Path::new(&rec.path).strip_prefix(from) {
            rec.path = dir.join(rel).display().to_string();
        }
    }
    write_outputs(dir, &contents)?;
    Ok(())
}
