//! emolime's own heads on a self-supervised backbone (EmoLIME's second black box: an SVC on
//! mean-pooled wav2vec 2.0 states): a wav2vec 2.0 / HuBERT checkpoint folder, one of its layers
//! mean-pooled over time, and a [`FeatureClassifier`] on that vector.
//!
//! The classifier file records the backbone and the layer in its feature-set name,
//! `hf-layer:<layer>:<folder>` (`<layer>` is a hidden-state index or `last`), so
//! [`super::AnyModel::load`] can rebuild the whole model from the one JSON file.

use super::hf::HfEncoder;
use super::{ModelInput, SerModel, read_f64_2d};
use crate::classify::FeatureClassifier;
use crate::classify::device::DeviceHead;
use crate::error::{Error, Result};
use crate::rng::fnv1a;
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// Prefix of the feature-set name of a classifier on backbone embeddings.
pub const EMBEDDING_SET_PREFIX: &str = "hf-layer";

/// Which hidden state is pooled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Hidden state `i` as `transformers` numbers them (0: the transformer's input).
    Index(usize),
    /// `transformers`' `last_hidden_state` (the last layer, after the final layer norm of
    /// stable-layer-norm models), EmoLIME's choice.
    Last,
}

impl std::str::FromStr for Layer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("last") {
            return Ok(Layer::Last);
        }
        s.parse()
            .map(Layer::Index)
            .map_err(|_| Error::config("layer", format!("`{s}` is neither a layer index nor `last`")))
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Index(i) => write!(f, "{i}"),
            Layer::Last => f.write_str("last"),
        }
    }
}

/// A wav2vec 2.0 / HuBERT encoder as a feature extractor: one layer, mean-pooled over time.
pub struct Embedder {
    backbone: HfEncoder,
    layer: Layer,
    device: Device,
}

impl Embedder {
    /// Loads the encoder of `folder` (a bare model or a classifier checkpoint; any head is
    /// ignored) onto `device`.
    ///
    /// Errors: a bad folder ([`Error::Model`]), a layer index above the number of layers
    /// ([`Error::Config`]).
    pub fn load(folder: &Path, layer: Layer, device: &Device) -> Result<Self> {
        let (backbone, _, _) = HfEncoder::load(folder, device)?;
        let n = backbone.encoder.n_layers();
        if let Layer::Index(i) = layer
            && i > n
        {
            return Err(Error::config(
                "layer",
                format!("{} has hidden states 0..={n}, not {i}", folder.display()),
            ));
        }
        Ok(Embedder {
            backbone,
            layer,
            device: device.clone(),
        })
    }

    /// The rate the backbone expects, Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.backbone.preprocessor.sampling_rate
    }

    /// Width of the embedding.
    pub fn dim(&self) -> usize {
        self.backbone.encoder.config().hidden_size
    }

    /// The feature-set name a classifier on these embeddings records.
    pub fn feature_set(&self) -> String {
        let folder = std::fs::canonicalize(&self.backbone.folder).unwrap_or_else(|_| self.backbone.folder.clone());
        format!("{EMBEDDING_SET_PREFIX}:{}:{}", self.layer, folder.display())
    }

    /// Column names of the embedding, `dim0 ..`.
    pub fn feature_names(&self) -> Vec<String> {
        (0..self.dim()).map(|i| format!("dim{i}")).collect()
    }

    /// Mean-pooled hidden states of raw waveforms (preprocessed as the checkpoint says).
    ///
    /// # Shapes
    /// `wave` [N, S] -> [N, H]
    pub fn embed(&self, wave: Tensor<2>) -> Result<Array2<f64>> {
        read_f64_2d(self.embed_on_device(wave)?)
    }

    /// [`Embedder::embed`] left on the device.
    ///
    /// # Shapes
    /// `wave` [N, S] -> [N, H]
    pub fn embed_on_device(&self, wave: Tensor<2>) -> Result<Tensor<2>> {
        let [n, s] = wave.dims();
        let min = self.backbone.encoder.config().receptive_field();
        if s < min {
            return Err(Error::shape("wave", format!("[N, S >= {min}]"), format!("[{n}, {s}]")));
        }
        let encoder = &self.backbone.encoder;
        let states = match self.layer {
            Layer::Last => encoder.last_hidden_state(encoder.last_layer_output(self.backbone.preprocess(wave))),
            Layer::Index(i) => self
                .backbone
                .hidden_states(wave, i)
                .pop()
                .expect("hidden_states returns up_to + 1 states"),
        }; // [N, T', H]
        Ok(states.mean_dim(1).reshape([n, self.dim()]))
    }

    /// The Burn device the backbone lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// A [`FeatureClassifier`] on an [`Embedder`]'s vectors, behind the [`SerModel`] interface.
pub struct EmbeddingModel {
    embedder: Embedder,
    /// The classifier, uploaded to the backbone's device.
    head: DeviceHead,
}

/// `(layer, folder)` from a feature-set name `hf-layer:<layer>:<folder>`.
pub fn parse_feature_set(name: &str) -> Option<(Layer, PathBuf)> {
    let mut parts = name.splitn(3, ':');
    if parts.next()? != EMBEDDING_SET_PREFIX {
        return None;
    }
    let layer = parts.next()?.parse().ok()?;
    Some((layer, PathBuf::from(parts.next()?)))
}

impl EmbeddingModel {
    /// Pairs an embedder with a classifier fitted on its vectors.
    ///
    /// Errors: [`Error::Config`] when the classifier's width differs from the embedding's.
    pub fn new(embedder: Embedder, classifier: FeatureClassifier) -> Result<Self> {
        if classifier.feature_names().len() != embedder.dim() {
            return Err(Error::config(
                "model",
                format!(
                    "the classifier takes {} features, the backbone gives {}",
                    classifier.feature_names().len(),
                    embedder.dim()
                ),
            ));
        }
        let head = DeviceHead::new(&classifier, &embedder.device);
        Ok(EmbeddingModel { embedder, head })
    }

    /// Rebuilds the model from a classifier file written by `emolime train --backbone`.
    pub fn from_classifier(path: &Path, classifier: FeatureClassifier, device: &Device) -> Result<Self> {
        let bad = |reason: String| Error::Model {
            path: path.to_path_buf(),
            reason,
        };
        let (layer, folder) = parse_feature_set(classifier.feature_set()).ok_or_else(|| {
            bad(format!(
                "feature set `{}` is not a backbone layer",
                classifier.feature_set()
            ))
        })?;
        let embedder = Embedder::load(&folder, layer, device)
            .map_err(|e| bad(format!("its backbone {}: {e}", folder.display())))?;
        Self::new(embedder, classifier).map_err(|e| bad(e.to_string()))
    }

    /// The classifier inside.
    pub fn classifier(&self) -> &FeatureClassifier {
        self.head.classifier()
    }

    /// The embedder inside.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }
}

impl SerModel for EmbeddingModel {
    fn classes(&self) -> &[String] {
        self.head.classifier().classes()
    }

    fn input(&self) -> ModelInput {
        ModelInput::Waveform {
            sample_rate_hz: self.embedder.sample_rate_hz(),
        }
    }

    fn device(&self) -> &Device {
        &self.embedder.device
    }

    fn min_samples(&self) -> usize {
        self.embedder.backbone.encoder.config().receptive_field()
    }

    fn largest_tensor_bytes(&self, dim: usize) -> u64 {
        self.embedder.backbone.encoder.largest_tensor_bytes(dim)
    }

    fn describe(&self) -> String {
        let cfg = self.embedder.backbone.encoder.config();
        format!(
            "{} on hidden state {} of {} ({} layers, hidden {}) from {}",
            self.head.classifier().kind(),
            self.embedder.layer,
            cfg.model_type,
            cfg.num_hidden_layers,
            cfg.hidden_size,
            self.embedder.backbone.folder.display()
        )
    }

    fn probs(&self, batch: Tensor<2>) -> Result<Tensor<2>> {
        self.head.probs(self.embedder.embed_on_device(batch)?)
    }
}

/// The cache file of `item`'s embedding: keyed by the feature set (backbone folder and layer),
/// the crop, and the audio file's canonical path, size and modification time, so an edited file
/// or another layer never reads a stale vector.
fn cache_file(dir: &Path, feature_set: &str, max_seconds: Option<f64>, audio: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(audio).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let path = std::fs::canonicalize(audio).ok()?;
    let key = format!(
        "{feature_set}\n{max_seconds:?}\n{}\n{}\n{modified}",
        path.display(),
        meta.len()
    );
    Some(dir.join(format!("{:016x}.f64", fnv1a(key.as_bytes()))))
}

/// Utterances per forward pass of [`embed_items`] by default.
pub const EMBED_BATCH: usize = 8;

/// Embeds every item: one result per item in input order (the `[H]` vector, or the error naming
/// the file). Utterances of equal length go through the backbone together, up to `batch` per
/// forward pass (never padded, so each vector equals its utterance embedded alone up to
/// rounding); at most `batch` decoded utterances wait for a partner at a time. `max_seconds`
/// crops each utterance first (None: whole files), which also makes long utterances share a
/// length. With `cache`, vectors are read from and written to that folder (one little-endian
/// f64 file per utterance, written atomically), so a second training run on the same files and
/// layer skips the backbone.
pub fn embed_items(
    embedder: &Embedder,
    items: &[crate::input::InputItem],
    max_seconds: Option<f64>,
    cache: Option<&Path>,
    batch: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Result<Vec<f64>>>> {
    if let Some(dir) = cache {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let batch = batch.max(1);
    let h = embedder.dim();
    let feature_set = embedder.feature_set();
    let mut results: Vec<Option<Result<Vec<f64>>>> = (0..items.len()).map(|_| None).collect();
    let mut done = 0;
    // Decoded utterances waiting for a forward pass, by length.
    let mut pending: std::collections::BTreeMap<usize, Vec<Pending>> = Default::default();
    let mut n_pending = 0;
    for (i, item) in items.iter().enumerate() {
        let cached = cache.and_then(|dir| cache_file(dir, &feature_set, max_seconds, &item.path));
        if let Some(file) = &cached
            && let Ok(bytes) = std::fs::read(file)
            && bytes.len() == 8 * h
        {
            results[i] = Some(Ok(bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()));
            done += 1;
            progress(done, items.len());
            continue;
        }
        let x = match embedder.backbone.load_audio(&item.path, max_seconds) {
            Ok(x) => x,
            Err(e) => {
                results[i] = Some(Err(e));
                done += 1;
                progress(done, items.len());
                continue;
            }
        };
        let len = x.len();
        let group = pending.entry(len).or_default();
        group.push(Pending {
            item: i,
            samples: x,
            cache_file: cached,
        });
        n_pending += 1;
        let ready: Vec<Vec<Pending>> = if group.len() == batch {
            vec![pending.remove(&len).expect("just filled")]
        } else if n_pending >= batch {
            std::mem::take(&mut pending).into_values().collect()
        } else {
            vec![]
        };
        for group in ready {
            n_pending -= group.len();
            done += embed_group(embedder, items, group, &mut results)?;
            progress(done, items.len());
        }
    }
    for group in std::mem::take(&mut pending).into_values() {
        done += embed_group(embedder, items, group, &mut results)?;
        progress(done, items.len());
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every item is embedded, read from the cache or failed"))
        .collect())
}

/// A decoded utterance waiting in [`embed_items`] for others of its length.
struct Pending {
    /// Its index in the items.
    item: usize,
    /// Its samples. // [S]
    samples: Vec<f32>,
    /// Where its vector is cached, if anywhere.
    cache_file: Option<PathBuf>,
}

/// Embeds utterances of one length `S` in one forward pass and writes each vector (and its
/// cache file) into `results`. When the pass fails, each utterance is embedded alone, so every
/// file gets its own result and error. Returns how many utterances it took.
///
/// # Shapes
/// `group` `K` utterances of `[S]` samples each
fn embed_group(
    embedder: &Embedder,
    items: &[crate::input::InputItem],
    group: Vec<Pending>,
    results: &mut [Option<Result<Vec<f64>>>],
) -> Result<usize> {
    let Some(n) = group.first().map(|p| p.samples.len()) else {
        return Ok(0);
    };
    let k = group.len();
    let flat: Vec<f32> = group.iter().flat_map(|p| p.samples.iter().copied()).collect();
    let wave = Tensor::from_data(TensorData::new(flat, [k, n]), &embedder.device);
    match embedder.embed(wave) {
        Ok(rows) => {
            for (p, row) in group.iter().zip(rows.rows()) {
                let v = row.to_vec();
                if let Some(file) = &p.cache_file {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    crate::output::write_atomic(file, &bytes)?;
                }
                results[p.item] = Some(Ok(v));
            }
        }
        Err(e) if k == 1 => results[group[0].item] = Some(Err(e.into_bad_audio(&items[group[0].item].path))),
        Err(_) => {
            for p in group {
                embed_group(embedder, items, vec![p], results)?;
            }
        }
    }
    Ok(k)
}
