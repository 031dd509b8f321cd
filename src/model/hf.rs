//! Hugging Face checkpoint folders: `config.json`, the weights (`model.safetensors`, or
//! `pytorch_model.bin` through Burn's PyTorch reader), `preprocessor_config.json`, and the
//! `Wav2Vec2ForSequenceClassification` / `HubertForSequenceClassification` head.

use super::gemm_conv::GemmConv1d;
use super::wav2vec2::{Encoder, EncoderConfig};
use super::{ModelInput, SerModel};
use crate::error::{Error, Result};
use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::store::{ModuleStore, PytorchStore, SafetensorsStore};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Tensors of one checkpoint file, looked up by name with their shapes checked.
pub struct Weights {
    file: PathBuf,
    store: Store,
}

enum Store {
    Safetensors(Box<SafetensorsStore>),
    Pytorch(Box<PytorchStore>),
    /// Every tensor asked for exists, with N(0, 0.02) values: a model of a real size for
    /// speed measurements.
    Random,
}

impl Weights {
    /// Opens `file`: `.safetensors` directly, anything else (`.bin`, `.pt`, `.pth`) through
    /// Burn's PyTorch reader. Nothing is read until the first lookup.
    pub fn open(file: &Path) -> Result<Self> {
        if !file.is_file() {
            return Err(Error::io(
                file,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file"),
            ));
        }
        let store = if file.extension().is_some_and(|e| e == "safetensors") {
            Store::Safetensors(Box::new(SafetensorsStore::from_file(file)))
        } else {
            Store::Pytorch(Box::new(PytorchStore::from_file(file)))
        };
        Ok(Weights {
            file: file.to_path_buf(),
            store,
        })
    }

    /// A source that has every tensor asked for, filled with N(0, 0.02) values from the
    /// device's generator: random-weight models of real sizes cost the same FLOPs as trained
    /// ones (benches). Seed the device for repeatable values.
    pub fn random() -> Self {
        Weights {
            file: PathBuf::from("<random weights>"),
            store: Store::Random,
        }
    }

    /// The weights file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn bad(&self, reason: String) -> Error {
        Error::Model {
            path: self.file.clone(),
            reason,
        }
    }

    /// The tensor `name` as f32 data, or `None` when the file has no such tensor.
    pub fn raw(&mut self, name: &str) -> Result<Option<TensorData>> {
        let found = match &mut self.store {
            Store::Safetensors(s) => s.get_tensor(name).map_err(|e| e.to_string()),
            Store::Pytorch(s) => s.get_tensor(name).map_err(|e| e.to_string()),
            Store::Random => return Ok(None),
        };
        let found = match found {
            Ok(t) => t.cloned(),
            Err(e) => return Err(self.bad(format!("cannot read the checkpoint: {e}"))),
        };
        match found {
            None => Ok(None),
            Some(t) => burn::store::bridge::to_data(&t)
                .map(|d| Some(d.convert::<f32>()))
                .map_err(|e| self.bad(format!("tensor `{name}`: {e:?}"))),
        }
    }

    /// Whether the file holds a tensor named `name`.
    pub fn contains(&mut self, name: &str) -> Result<bool> {
        if matches!(self.store, Store::Random) {
            return Ok(true);
        }
        Ok(self.raw(name)?.is_some())
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get<const D: usize>(&mut self, name: &str, shape: [usize; D], device: &Device) -> Result<Tensor<D>> {
        if matches!(self.store, Store::Random) {
            let normal = burn::tensor::Distribution::Normal(0.0, 0.02);
            return Ok(Tensor::random(shape, normal, device));
        }
        let data = self
            .raw(name)?
            .ok_or_else(|| self.bad(format!("missing tensor `{name}`")))?;
        if data.shape().as_slice() != shape {
            return Err(self.bad(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                data.shape().as_slice()
            )));
        }
        Ok(Tensor::from_data(data, device))
    }

    /// A `torch.nn.Linear` (`{name}.weight` [out, in], `{name}.bias` [out]) as a Burn `Linear`.
    pub fn linear(&mut self, name: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Linear> {
        let mut lin = LinearConfig::new(d_in, d_out).init(device);
        let w: Tensor<2> = self.get(&format!("{name}.weight"), [d_out, d_in], device)?;
        lin.weight = Param::from_tensor(w.transpose());
        lin.bias = Some(Param::from_tensor(self.get(
            &format!("{name}.bias"),
            [d_out],
            device,
        )?));
        Ok(lin)
    }

    /// A `torch.nn.LayerNorm` over `dim` features.
    pub fn layer_norm(&mut self, name: &str, dim: usize, eps: f64, device: &Device) -> Result<LayerNorm> {
        let mut ln = LayerNormConfig::new(dim).with_epsilon(eps).init(device);
        ln.gamma = Param::from_tensor(self.get(&format!("{name}.weight"), [dim], device)?);
        ln.beta = Some(Param::from_tensor(self.get(&format!("{name}.bias"), [dim], device)?));
        Ok(ln)
    }

    /// A `torch.nn.Conv1d` (`{name}.weight` [out, in / groups, k], optional `{name}.bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        padding: usize,
        bias: bool,
        device: &Device,
    ) -> Result<GemmConv1d> {
        let weight = self.get(&format!("{name}.weight"), [c_out, c_in / groups, kernel], device)?;
        let bias = if bias {
            Some(self.get(&format!("{name}.bias"), [c_out], device)?)
        } else {
            None
        };
        Ok(GemmConv1d::from_torch(weight, bias, stride, padding, groups))
    }

    /// The weight-normalised positional convolution (`weight_norm(conv, dim=2)`), stored either
    /// as `{name}.weight_g` / `{name}.weight_v` or as
    /// `{name}.parametrizations.weight.original0` / `original1`; the effective weight
    /// `g * v / ||v||` (norm over all but the kernel axis) is computed once here. Padding is
    /// `kernel / 2` on both sides, as `transformers` pads it.
    pub fn weight_norm_conv1d(
        &mut self,
        name: &str,
        channels: usize,
        in_per_group: usize,
        kernel: usize,
        groups: usize,
        device: &Device,
    ) -> Result<GemmConv1d> {
        let (g_name, v_name) = if self.contains(&format!("{name}.weight_g"))? {
            (format!("{name}.weight_g"), format!("{name}.weight_v"))
        } else if self.contains(&format!("{name}.parametrizations.weight.original0"))? {
            (
                format!("{name}.parametrizations.weight.original0"),
                format!("{name}.parametrizations.weight.original1"),
            )
        } else if self.contains(&format!("{name}.weight"))? {
            // Already folded.
            return self.conv1d(name, channels, channels, kernel, 1, groups, kernel / 2, true, device);
        } else {
            return Err(self.bad(format!(
                "missing tensor `{name}.weight_g` (or `{name}.parametrizations.weight.original0`)"
            )));
        };
        let g: Tensor<3> = self.get(&g_name, [1, 1, kernel], device)?;
        let v: Tensor<3> = self.get(&v_name, [channels, in_per_group, kernel], device)?;
        let norm = v.clone().powi_scalar(2).sum_dim(0).sum_dim(1).sqrt(); // [1, 1, K]
        let weight = v.mul(g.div(norm));
        let bias = self.get(&format!("{name}.bias"), [channels], device)?;
        Ok(GemmConv1d::from_torch(weight, Some(bias), 1, kernel / 2, groups))
    }
}

/// The fields of `preprocessor_config.json` that change the model's input.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct Preprocessor {
    /// Rate the model expects, in Hz.
    pub sampling_rate: u32,
    /// Zero mean, unit variance per utterance (`(x - mean) / sqrt(var + 1e-7)`).
    pub do_normalize: bool,
}

impl Default for Preprocessor {
    /// `Wav2Vec2FeatureExtractor`'s defaults.
    fn default() -> Self {
        Preprocessor {
            sampling_rate: 16_000,
            do_normalize: true,
        }
    }
}

/// The sequence-classification head: projector, mean pooling over time, classifier.
#[derive(Debug)]
struct Head {
    layer_weights: Option<Tensor<1>>,
    projector: Linear,
    classifier: Linear,
}

/// The encoder of a checkpoint folder with its preprocessing, without a head.
#[derive(Debug)]
pub struct HfEncoder {
    /// The checkpoint folder.
    pub folder: PathBuf,
    /// The weights file read.
    pub weights_file: PathBuf,
    /// The encoder.
    pub encoder: Encoder,
    /// Preprocessing (from `preprocessor_config.json`, else the feature extractor's defaults).
    pub preprocessor: Preprocessor,
    /// Whether `preprocessor_config.json` was found.
    pub has_preprocessor_file: bool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        reason: format!("does not parse: {e}"),
    })
}

impl HfEncoder {
    /// Loads the encoder of a checkpoint folder (a bare `Wav2Vec2Model` / `HubertModel` or the
    /// backbone of a classifier) and returns the still-open weights for the head. Every defect
    /// (no `config.json`, a config that does not parse or describes another architecture, a
    /// missing or mis-shaped tensor) is one [`Error::Model`] naming the file and the key or
    /// tensor.
    pub fn load(folder: &Path, device: &Device) -> Result<(Self, EncoderConfig, Weights)> {
        let config_path = folder.join("config.json");
        if !config_path.is_file() {
            return Err(Error::Model {
                path: folder.to_path_buf(),
                reason: "not a Hugging Face checkpoint folder (no config.json)".into(),
            });
        }
        let cfg: EncoderConfig = read_json(&config_path)?;
        cfg.validate().map_err(|(key, why)| Error::Model {
            path: config_path.clone(),
            reason: format!("`{key}`: {why}"),
        })?;
        let pre_path = folder.join("preprocessor_config.json");
        let has_preprocessor_file = pre_path.is_file();
        let preprocessor: Preprocessor = if has_preprocessor_file {
            read_json(&pre_path)?
        } else {
            Preprocessor::default()
        };
        if !(4000..=192_000).contains(&preprocessor.sampling_rate) {
            return Err(Error::Model {
                path: pre_path,
                reason: format!(
                    "`sampling_rate` {} is outside 4000..=192000",
                    preprocessor.sampling_rate
                ),
            });
        }
        let weights_file = ["model.safetensors", "pytorch_model.bin"]
            .iter()
            .map(|f| folder.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::Model {
                path: folder.to_path_buf(),
                reason: "no weights (model.safetensors or pytorch_model.bin)".into(),
            })?;
        let mut weights = Weights::open(&weights_file)?;
        let mut me = Self::from_weights(&cfg, preprocessor, &mut weights, device)?;
        me.folder = folder.to_path_buf();
        me.has_preprocessor_file = has_preprocessor_file;
        Ok((me, cfg, weights))
    }

    /// Builds the encoder of `cfg` from `weights` (a checkpoint, or [`Weights::random`]).
    pub fn from_weights(
        cfg: &EncoderConfig,
        preprocessor: Preprocessor,
        weights: &mut Weights,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()
            .map_err(|(key, why)| Error::config("model", format!("`{key}`: {why}")))?;
        let prefix = format!("{}.", cfg.model_type);
        let probe = format!("{prefix}feature_extractor.conv_layers.0.conv.weight");
        let prefix = if weights.contains(&probe)? {
            prefix
        } else {
            String::new()
        };
        let encoder = Encoder::load(cfg, weights, &prefix, device)?;
        Ok(HfEncoder {
            folder: PathBuf::new(),
            weights_file: weights.file().to_path_buf(),
            encoder,
            preprocessor,
            has_preprocessor_file: false,
        })
    }

    /// The preprocessing the feature extractor applies to every waveform.
    ///
    /// # Shapes
    /// `wave` [N, S] -> [N, S]
    pub fn preprocess(&self, wave: Tensor<2>) -> Tensor<2> {
        if !self.preprocessor.do_normalize {
            return wave;
        }
        let mean = wave.clone().mean_dim(1); // [N, 1]
        let centred = wave - mean;
        let var = centred.clone().powi_scalar(2).mean_dim(1); // [N, 1]
        centred / var.add_scalar(1e-7).sqrt()
    }

    /// Decodes `path` at the encoder's rate (at least its receptive field long), keeping only
    /// the first `max_seconds` when given (never below the receptive field).
    ///
    /// # Shapes
    /// -> [S]
    pub fn load_audio(&self, path: &std::path::Path, max_seconds: Option<f64>) -> Result<Vec<f32>> {
        let (rate, min) = (self.preprocessor.sampling_rate, self.encoder.config().receptive_field());
        let mut x = crate::audio::load_mono(path, rate, min)?;
        if let Some(s) = max_seconds {
            x.truncate(((s * rate as f64) as usize).max(min));
        }
        Ok(x)
    }

    /// Hidden states `0..=up_to` of raw (unpreprocessed) waveforms, as `transformers` returns
    /// them (see [`Encoder::hidden_states`]).
    ///
    /// # Shapes
    /// `wave` [N, S] -> `up_to + 1` tensors [N, T', H]
    pub fn hidden_states(&self, wave: Tensor<2>, up_to: usize) -> Vec<Tensor<3>> {
        self.encoder.hidden_states(self.preprocess(wave), up_to)
    }
}

/// A `Wav2Vec2ForSequenceClassification` or `HubertForSequenceClassification` checkpoint.
#[derive(Debug)]
pub struct HfClassifier {
    /// The encoder and its preprocessing.
    pub backbone: HfEncoder,
    classes: Vec<String>,
    head: Head,
    device: Device,
}

impl HfClassifier {
    /// Loads a checkpoint folder onto `device` (see [`HfEncoder::load`]); a checkpoint
    /// without a sequence-classification head, or whose head does not match `id2label`, is an
    /// [`Error::Model`].
    pub fn load(folder: &Path, device: &Device) -> Result<Self> {
        let (backbone, cfg, mut weights) = HfEncoder::load(folder, device)?;
        Self::with_head(backbone, &cfg, &mut weights, device)
    }

    /// A classifier of `cfg`'s size with random weights (see [`Weights::random`]), for speed
    /// measurements; `cfg.id2label` names the classes.
    pub fn random(cfg: &EncoderConfig, device: &Device) -> Result<Self> {
        let mut weights = Weights::random();
        let backbone = HfEncoder::from_weights(cfg, Preprocessor::default(), &mut weights, device)?;
        Self::with_head(backbone, cfg, &mut weights, device)
    }

    /// The classifier with its weights in `dtype` (`F16` to score in half precision; the input
    /// is normalised in f32 first, the norms and softmaxes run in f32, and the probabilities are
    /// returned in f32). `cargo bench --bench scoring` measures its speed and its agreement with
    /// f32.
    pub fn cast(self, dtype: burn::tensor::FloatDType) -> Self {
        let HfClassifier {
            backbone,
            classes,
            head,
            device,
        } = self;
        HfClassifier {
            backbone: HfEncoder {
                encoder: backbone.encoder.cast(dtype),
                ..backbone
            },
            classes,
            head: Head {
                layer_weights: head.layer_weights.map(|w| w.cast(dtype)),
                projector: super::wav2vec2::cast_linear(head.projector, dtype),
                classifier: super::wav2vec2::cast_linear(head.classifier, dtype),
            },
            device,
        }
    }

    /// Adds the sequence-classification head from `weights` to `backbone`.
    fn with_head(backbone: HfEncoder, cfg: &EncoderConfig, weights: &mut Weights, device: &Device) -> Result<Self> {
        if !weights.contains("classifier.weight")? {
            return Err(Error::Model {
                path: backbone.weights_file.clone(),
                reason: "no sequence-classification head (`classifier.weight`): emolime explains \
                         `Wav2Vec2ForSequenceClassification` / `HubertForSequenceClassification` checkpoints"
                    .into(),
            });
        }
        let config_path = backbone.folder.join("config.json");
        let classes = class_names(cfg).map_err(|reason| Error::Model {
            path: config_path,
            reason,
        })?;
        let c = classes.len();
        let (h, p) = (cfg.hidden_size, cfg.classifier_proj_size);
        let layer_weights = if cfg.use_weighted_layer_sum {
            Some(weights.get("layer_weights", [cfg.num_hidden_layers + 1], device)?)
        } else {
            None
        };
        let projector = weights.linear("projector", h, p, device)?;
        let classifier = weights.linear("classifier", p, c, device).map_err(|e| match e {
            Error::Model { path, reason } => Error::Model {
                path,
                reason: format!("{reason} (config.json's id2label names {c} classes)"),
            },
            other => other,
        })?;
        Ok(HfClassifier {
            backbone,
            classes,
            head: Head {
                layer_weights,
                projector,
                classifier,
            },
            device: device.clone(),
        })
    }

    /// Classification logits of raw (unnormalised) waveforms.
    ///
    /// # Shapes
    /// `wave` [N, S] -> [N, C]
    pub fn logits(&self, wave: Tensor<2>) -> Tensor<2> {
        let encoder = &self.backbone.encoder;
        let hidden = match &self.head.layer_weights {
            Some(w) => {
                let states = self.backbone.hidden_states(wave, encoder.n_layers());
                let norm = softmax(w.clone(), 0);
                let stacked = Tensor::stack::<4>(states, 0); // [L + 1, N, T', H]
                let [l, _, _, _] = stacked.dims();
                (stacked * norm.reshape([l, 1, 1, 1])).sum_dim(0).squeeze_dim::<3>(0)
            }
            None => encoder.last_hidden_state(encoder.last_layer_output(self.backbone.preprocess(wave))),
        };
        let projected = self.head.projector.forward(hidden); // [N, T', P]
        let pooled = projected.mean_dim(1).squeeze_dim::<2>(1); // [N, P]
        self.head.classifier.forward(pooled)
    }
}

/// Class names from `id2label`, in output order; the keys must be `0..C`.
fn class_names(cfg: &EncoderConfig) -> std::result::Result<Vec<String>, String> {
    let mut pairs: Vec<(usize, String)> = cfg
        .id2label
        .iter()
        .map(|(k, v)| {
            k.parse::<usize>()
                .map(|i| (i, v.clone()))
                .map_err(|_| format!("`id2label` key `{k}` is not a class index"))
        })
        .collect::<std::result::Result<_, _>>()?;
    pairs.sort();
    if pairs.len() < 2 || pairs.iter().enumerate().any(|(i, (k, _))| i != *k) {
        return Err(format!(
            "`id2label` must name classes 0..C with C >= 2, got keys {:?}",
            pairs.iter().map(|p| p.0).collect::<Vec<_>>()
        ));
    }
    Ok(pairs.into_iter().map(|p| p.1).collect())
}

impl SerModel for HfClassifier {
    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn input(&self) -> ModelInput {
        ModelInput::Waveform {
            sample_rate_hz: self.backbone.preprocessor.sampling_rate,
        }
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn min_samples(&self) -> usize {
        self.backbone.encoder.config().receptive_field()
    }

    fn largest_tensor_bytes(&self, dim: usize) -> u64 {
        let encoder = &self.backbone.encoder;
        let cfg = encoder.config();
        // The weighted layer sum stacks every hidden state: [L + 1, T', H] per sample.
        let stacked = if self.head.layer_weights.is_some() {
            4 * ((cfg.num_hidden_layers + 1) * (cfg.n_frames(dim) + 1) * cfg.hidden_size) as u64
        } else {
            0
        };
        encoder.largest_tensor_bytes(dim).max(stacked)
    }

    fn describe(&self) -> String {
        let cfg = self.backbone.encoder.config();
        let precision = match self.backbone.encoder.dtype() {
            burn::tensor::FloatDType::F32 => String::new(),
            other => format!(", scoring in {other:?}").to_lowercase(),
        };
        format!(
            "{} ({} layers, hidden {}, {}{precision}) from {}{}",
            cfg.architectures
                .as_ref()
                .and_then(|a| a.first().cloned())
                .unwrap_or_else(|| cfg.model_type.clone()),
            cfg.num_hidden_layers,
            cfg.hidden_size,
            if cfg.do_stable_layer_norm {
                "pre-norm"
            } else {
                "post-norm"
            },
            self.backbone.weights_file.display(),
            if self.backbone.has_preprocessor_file {
                ""
            } else {
                " (no preprocessor_config.json: 16 kHz, normalised)"
            }
        )
    }

    fn probs(&self, batch: Tensor<2>) -> Result<Tensor<2>> {
        let [n, s] = batch.dims();
        let min = self.min_samples();
        if s < min {
            return Err(Error::shape(
                "batch",
                format!("[N, S] with S >= {min}"),
                format!("[{n}, {s}]"),
            ));
        }
        Ok(softmax(self.logits(batch).cast(burn::tensor::FloatDType::F32), 1))
    }
}
