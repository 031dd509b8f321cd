//! The black boxes emolime explains: what each one consumes ([`ModelInput`]) and the one
//! interface ([`SerModel`]) the explainer scores batches through.
//!
//! - [`cnn`]: emolime's own log-mel CNN (power mel spectrograms); [`cnn_rows`]: the same
//!   network on the host for band-masked inputs, each row computed once per band state.
//! - [`wav2vec2`]: wav2vec 2.0 / HuBERT encoders in Burn (waveforms).
//! - [`features`]: classifiers on eGeMAPS functionals (waveforms in, features on the CPU).
//! - [`embedding`]: emolime's own heads on a mean-pooled layer of a wav2vec 2.0 / HuBERT backbone.
//! - [`hf`]: Hugging Face checkpoint folders (`config.json`, `model.safetensors` or
//!   `pytorch_model.bin`, `preprocessor_config.json`) with their classification head.

pub mod cnn;
pub mod cnn_rows;
pub mod cnn_rows_device;
pub mod conv_block;
pub mod embedding;
pub mod features;
pub mod gemm_conv;
pub mod hf;
pub mod row_head;
pub mod wav2vec2;

pub use cnn::*;

use crate::audio::FrontEndConfig;
use crate::error::Result;
use burn::tensor::{Device, Tensor};
use std::path::Path;

/// What a model consumes. The explainer builds this input from the masks on the device,
/// straight into the tensor passed to [`SerModel::probs`].
#[derive(Clone, Debug, PartialEq)]
pub enum ModelInput {
    /// Power mel spectrograms made with this front end; a batch is `[N, M * T]` (row-major
    /// `[M, T]` per sample).
    MelPower(FrontEndConfig),
    /// Raw waveforms at `sample_rate_hz` (mono, unnormalised: the model applies its own
    /// preprocessing); a batch is `[N, S]`.
    Waveform {
        /// Rate the model expects, in Hz.
        sample_rate_hz: u32,
    },
}

/// A classifier the explainer can score: class probabilities for a batch of inputs of the
/// kind it declares.
pub trait SerModel {
    /// Class names, in output order.
    fn classes(&self) -> &[String];
    /// What [`SerModel::probs`] consumes.
    fn input(&self) -> ModelInput;
    /// The Burn device the model lives on.
    fn device(&self) -> &Device;
    /// Shortest waveform (in samples at the model's rate) the model can score.
    fn min_samples(&self) -> usize;
    /// Bytes of the largest single tensor a forward pass makes per sample, for an input of
    /// `dim` values per sample; the explainer sizes batches so that tensor fits one storage
    /// binding.
    fn largest_tensor_bytes(&self, dim: usize) -> u64;
    /// One line naming the model, for logs and outputs.
    fn describe(&self) -> String;
    /// Class probabilities.
    ///
    /// # Shapes
    /// `batch` [N, D] (D = M * T or S, see [`ModelInput`]) -> [N, C]
    fn probs(&self, batch: Tensor<2>) -> Result<Tensor<2>>;
    /// Whether the model scores its inputs on the host ([`SerModel::probs_host`]), as a
    /// feature classifier does: the explainer on a GPU then copies each batch back as soon as
    /// it is built and builds the next one on the device while the host scores this one.
    fn scores_on_host(&self) -> bool {
        false
    }
    /// Class probabilities of a batch already on the host (by default uploaded and passed to
    /// [`SerModel::probs`]).
    ///
    /// # Shapes
    /// `batch` [N, D] -> [N, C]
    fn probs_host(&self, batch: ndarray::ArrayView2<f32>) -> Result<Tensor<2>> {
        let (n, d) = batch.dim();
        let values: Vec<f32> = batch.iter().copied().collect();
        self.probs(Tensor::from_data(
            burn::tensor::TensorData::new(values, [n, d]),
            self.device(),
        ))
    }
    /// The model on the host for band-masked mel inputs ([`cnn_rows::RowCachedCnn`]), which
    /// the CPU path uses instead of building every masked input, when the model has one.
    fn row_cached(&self) -> Result<Option<cnn_rows::RowCachedCnn>> {
        Ok(None)
    }
}

/// Any model emolime can load: an emolime model file or a Hugging Face folder. Every variant is
/// boxed: a Burn network's parameter handles take kilobytes, and the variants differ widely
/// in size.
pub enum AnyModel {
    /// emolime's log-mel CNN.
    Cnn(Box<Classifier>),
    /// A wav2vec 2.0 / HuBERT checkpoint with its classification head.
    Hf(Box<hf::HfClassifier>),
    /// A classifier on eGeMAPS functionals (`emolime train --features egemaps`).
    Features(Box<features::FeatureModel>),
    /// A classifier on a backbone layer's mean-pooled states (`emolime train --backbone`).
    Embedding(Box<embedding::EmbeddingModel>),
}

impl AnyModel {
    /// Loads `path` onto `device`: a folder is read as a Hugging Face checkpoint, a JSON file as
    /// a feature classifier, any other file as an emolime CNN model file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if path.is_dir() {
            return Ok(AnyModel::Hf(Box::new(hf::HfClassifier::load(path, device)?)));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let checkpoint_file = ["config.json", "preprocessor_config.json"].contains(&name)
            || [".safetensors", ".bin", ".pt", ".pth"]
                .iter()
                .any(|e| name.ends_with(e));
        if checkpoint_file {
            return Err(crate::error::Error::Model {
                path: path.to_path_buf(),
                reason: "a file of a Hugging Face checkpoint: pass the folder that holds it".into(),
            });
        }
        let mut head = [0u8; 64];
        let n = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| crate::error::Error::io(path, e))?;
        if head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let classifier = crate::classify::FeatureClassifier::load(path)?;
            if embedding::parse_feature_set(classifier.feature_set()).is_some() {
                return Ok(AnyModel::Embedding(Box::new(
                    embedding::EmbeddingModel::from_classifier(path, classifier, device)?,
                )));
            }
            return Ok(AnyModel::Features(Box::new(features::FeatureModel::from_classifier(
                path, classifier, device,
            )?)));
        }
        Ok(AnyModel::Cnn(Box::new(Classifier::load(path, device)?)))
    }

    /// The model scoring in `dtype`: `F32` leaves any model as it is; `F16` casts a wav2vec 2.0
    /// / HuBERT checkpoint's weights and activations ([`hf::HfClassifier::cast`]). Other models
    /// score in f32 only and give [`crate::error::Error::Config`] for any other type.
    pub fn cast(self, dtype: burn::tensor::FloatDType) -> Result<Self> {
        match (self, dtype) {
            (model, burn::tensor::FloatDType::F32) => Ok(model),
            (AnyModel::Hf(m), dtype) => Ok(AnyModel::Hf(Box::new(m.cast(dtype)))),
            _ => Err(crate::error::Error::config(
                "precision",
                "scoring below f32 is for wav2vec 2.0 / HuBERT checkpoints; this model scores in f32",
            )),
        }
    }

    /// The model as the explainer sees it.
    pub fn as_model(&self) -> &dyn SerModel {
        match self {
            AnyModel::Cnn(m) => m.as_ref(),
            AnyModel::Hf(m) => m.as_ref(),
            AnyModel::Features(m) => m.as_ref(),
            AnyModel::Embedding(m) => m.as_ref(),
        }
    }
}

impl SerModel for Classifier {
    fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    fn input(&self) -> ModelInput {
        ModelInput::MelPower(self.meta.front_end.clone())
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn min_samples(&self) -> usize {
        min_input_samples(&self.meta.front_end)
    }

    fn largest_tensor_bytes(&self, dim: usize) -> u64 {
        // Each conv block's output: c1 channels over ceil(M / 2) rows and T frames, then c2 and
        // c3 channels after each 2x2 pooling.
        let m = self.meta.front_end.n_mels.max(1);
        let (rows, t) = (m.div_ceil(2) as u64, (dim / m) as u64);
        let [c1, c2, c3] = self.meta.channels.map(|c| c as u64);
        let conv1 = c1 * rows * t;
        let conv2 = c2 * (rows / 2) * (t / 2);
        let conv3 = c3 * (rows / 4) * (t / 4);
        4 * (dim as u64).max(conv1).max(conv2).max(conv3)
    }

    fn describe(&self) -> String {
        format!(
            "log-mel cnn ({} classes, {} mel bins)",
            self.meta.classes.len(),
            self.meta.front_end.n_mels
        )
    }

    fn probs(&self, batch: Tensor<2>) -> Result<Tensor<2>> {
        let [n, d] = batch.dims();
        let m = self.meta.front_end.n_mels;
        if d % m != 0 || d / m < MIN_FRAMES {
            return Err(crate::error::Error::shape(
                "batch",
                format!("[N, {m} * T] with T >= {MIN_FRAMES}"),
                format!("[{n}, {d}]"),
            ));
        }
        Classifier::probs(self, batch.reshape([n, 1, m, d / m]))
    }

    fn row_cached(&self) -> Result<Option<cnn_rows::RowCachedCnn>> {
        Ok(Some(self.rows.clone()))
    }
}
