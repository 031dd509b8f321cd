//! The log-mel CNN classifier (Burn), its training loop and its model file (emolime's own format).
//!
//! The model takes *power* mel spectrograms `[N, 1, M, T]`, the form the perturbation kernel
//! writes, and converts them to normalised decibels itself, so a masked band filled with zeros
//! reaches the network exactly as EmoLIME feeds it.

use crate::audio::FrontEndConfig;
use crate::error::{Error, Result};
use crate::model::cnn_rows::{HostConv, RowCachedCnn};
use crate::model::cnn_rows_device::DeviceRowCnn;
use crate::sampling::random_u32;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// First bytes of every emolime model file.
pub const MODEL_MAGIC: &[u8] = b"EMOLIME-MODEL 1\n";
/// Frequency groups kept by the pooling head (the network sees where energy is, not only how much).
pub const FREQ_GROUPS: usize = 8;
/// Dropout probability on the head's inputs during training.
const DROPOUT: f64 = 0.2;
/// Smallest number of frames the network accepts (two 2x2 poolings).
pub const MIN_FRAMES: usize = 4;
/// Fewest mel rows the network accepts (a convolution strided by 2 over them, then two 2x2
/// poolings).
pub const MIN_MELS: usize = 7;

/// Shortest waveform (samples at `fe`'s rate) that gives the network [`MIN_FRAMES`] frames and
/// one full analysis window.
pub fn min_input_samples(fe: &FrontEndConfig) -> usize {
    fe.win_len.max((MIN_FRAMES - 1) * fe.hop_len)
}

/// Everything about a model except its weights; stored as JSON in the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Class names, in output order.
    pub classes: Vec<String>,
    /// The front end the model was trained with (explanations reuse it).
    pub front_end: FrontEndConfig,
    /// Frames per training crop.
    pub train_frames: usize,
    /// Mean of the training decibels.
    pub db_mean: f32,
    /// Standard deviation of the training decibels.
    pub db_std: f32,
    /// Channels of the three convolution blocks.
    pub channels: [usize; 3],
}

/// The network: three conv blocks (the first strided over frequency), then pooling over time
/// into a few frequency groups, so the head sees where energy is, and a linear layer.
#[derive(Module, Debug)]
pub struct SerCnn {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    pool: MaxPool2d,
    head_pool: AdaptiveAvgPool2d,
    /// Kept so model files keep their layout; training applies host-drawn masks instead
    /// ([`SerCnn::forward_masked`]).
    dropout: Dropout,
    fc: Linear,
    act: Relu,
    db_mean: f32,
    db_std: f32,
}

impl SerCnn {
    /// A freshly initialised network for `meta` on `device`.
    pub fn new(meta: &ModelMeta, device: &Device) -> Self {
        let [c1, c2, c3] = meta.channels;
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        SerCnn {
            // Stride 2 over frequency: the first block halves the mel rows at half the cost.
            conv1: Conv2dConfig::new([1, c1], [3, 3])
                .with_stride([2, 1])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            bn1: BatchNormConfig::new(c1).init(device),
            conv2: conv(c1, c2),
            bn2: BatchNormConfig::new(c2).init(device),
            conv3: conv(c2, c3),
            bn3: BatchNormConfig::new(c3).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            head_pool: AdaptiveAvgPool2dConfig::new([FREQ_GROUPS, 1]).init(),
            dropout: DropoutConfig::new(DROPOUT).init(),
            fc: LinearConfig::new(c3 * FREQ_GROUPS, meta.classes.len()).init(device),
            act: Relu::new(),
            db_mean: meta.db_mean,
            db_std: meta.db_std,
        }
    }

    /// Logits for a batch of power mel spectrograms (inference: no dropout).
    ///
    /// # Shapes
    /// `power_mel` [N, 1, M, T] -> [N, C]
    pub fn forward(&self, power_mel: Tensor<4>) -> Tensor<2> {
        self.forward_masked(power_mel, None)
    }

    /// Logits with the head's inputs multiplied by `dropout` (training): a mask drawn on the
    /// host ([`dropout_mask`]) rather than by the device's generator, so training draws the same
    /// masks on every device.
    ///
    /// # Shapes
    /// `power_mel` [N, 1, M, T], `dropout` [N, C3 * G] -> [N, C]
    pub fn forward_masked(&self, power_mel: Tensor<4>, dropout: Option<Tensor<2>>) -> Tensor<2> {
        let x = power_mel
            .add_scalar(1e-10)
            .log()
            .mul_scalar(10.0 / std::f32::consts::LN_10)
            .sub_scalar(self.db_mean)
            .div_scalar(self.db_std);
        let x = self
            .pool
            .forward(self.act.forward(self.bn1.forward(self.conv1.forward(x))));
        let x = self
            .pool
            .forward(self.act.forward(self.bn2.forward(self.conv2.forward(x))));
        let x = self.act.forward(self.bn3.forward(self.conv3.forward(x)));
        let x = self.head_pool.forward(x); // [N, C3, G, 1]
        let [n, c, g, _] = x.dims();
        let x = x.reshape([n, c * g]);
        self.fc.forward(match dropout {
            Some(mask) => x * mask,
            None => x,
        })
    }

    /// The network's inference weights on the host, each batch norm folded into its
    /// convolution, for scoring band-masked inputs row by row.
    pub fn row_cached(&self) -> Result<RowCachedCnn> {
        let conv = |conv: &Conv2d, bn: &BatchNorm| -> Result<HostConv> {
            let [o, i, kh, kw] = conv.weight.val().dims();
            let pad_one = matches!(
                conv.padding,
                PaddingConfig2d::Same | PaddingConfig2d::Explicit(1, 1, 1, 1)
            );
            if [kh, kw] != [3, 3] || !pad_one || conv.stride[1] != 1 || conv.groups != 1 || conv.dilation != [1, 1] {
                return Err(Error::Device(format!(
                    "the host CNN needs 3x3 convolutions with padding 1 and stride 1 over time, got {conv:?}"
                )));
            }
            let bias = match &conv.bias {
                Some(b) => read_f32(b.val())?,
                None => vec![0.0; o],
            };
            HostConv::fold(
                i,
                conv.stride[0],
                read_f32(conv.weight.val())?,
                bias,
                &read_f32(bn.gamma.val())?,
                &read_f32(bn.beta.val())?,
                &read_f32(bn.running_mean.value())?,
                &read_f32(bn.running_var.value())?,
                bn.epsilon,
            )
        };
        RowCachedCnn::new(
            [
                conv(&self.conv1, &self.bn1)?,
                conv(&self.conv2, &self.bn2)?,
                conv(&self.conv3, &self.bn3)?,
            ],
            read_f32(self.fc.weight.val())?,
            match &self.fc.bias {
                Some(b) => read_f32(b.val())?,
                None => vec![0.0; self.fc.weight.val().dims()[1]],
            },
            FREQ_GROUPS,
            self.db_mean,
            self.db_std,
        )
    }
}

/// A trained classifier ready for inference on one device.
pub struct Classifier {
    /// Its description.
    pub meta: ModelMeta,
    /// The network in inference mode (its training form; [`Classifier::net`]).
    net: SerCnn,
    /// The network's folded weights on the host, read back once ([`SerCnn::row_cached`]); the
    /// explainer's row-cached paths start from them ([`crate::model::SerModel::row_cached`]).
    pub(crate) rows: RowCachedCnn,
    /// The same weights on `device`, which score ([`Classifier::probs`]).
    folded: DeviceRowCnn,
    /// Where it runs.
    pub device: Device,
}

impl Classifier {
    /// A classifier of `net` (put in inference mode) on `device`; its batch norms are folded
    /// into its convolutions for scoring.
    pub fn new(meta: ModelMeta, net: SerCnn, device: &Device) -> Result<Self> {
        let net = net.valid();
        let rows = net.row_cached()?;
        let folded = DeviceRowCnn::new(&rows, device)?;
        Ok(Classifier {
            meta,
            net,
            rows,
            folded,
            device: device.clone(),
        })
    }

    /// The network in inference mode, as trained: batch norms unfolded.
    pub fn net(&self) -> &SerCnn {
        &self.net
    }

    /// Number of classes `C`.
    pub fn n_classes(&self) -> usize {
        self.meta.classes.len()
    }

    /// Class probabilities, from the network with its batch norms folded
    /// ([`DeviceRowCnn::probs_every_input`]; equal to the softmax of [`SerCnn::forward`] up to
    /// rounding).
    ///
    /// # Shapes
    /// `power_mel` [N, 1, M, T] (M >= [`MIN_MELS`], T >= [`MIN_FRAMES`]) -> [N, C]
    pub fn probs(&self, power_mel: Tensor<4>) -> Result<Tensor<2>> {
        self.folded.probs_every_input(power_mel)
    }

    /// Class probabilities for spectrograms held on the host.
    ///
    /// # Shapes
    /// `power_mel` [N * M * T] with `dims = [N, M, T]` -> [N * C]
    pub fn probs_host(&self, power_mel: Vec<f32>, dims: [usize; 3]) -> Result<Vec<f32>> {
        let [n, m, t] = dims;
        if power_mel.len() != n * m * t {
            return Err(Error::shape(
                "power_mel",
                format!("[{n}, {m}, {t}]"),
                format!("{} values", power_mel.len()),
            ));
        }
        let x = Tensor::<4>::from_data(TensorData::new(power_mel, [n, 1, m, t]), &self.device);
        read_f32(self.probs(x)?)
    }

    /// Writes the model file atomically: magic line, one JSON line of [`ModelMeta`], Burn's record.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Model {
            path: path.to_path_buf(),
            reason,
        };
        let record = self
            .net
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| bad(format!("cannot encode weights: {e}")))?;
        let meta = serde_json::to_vec(&self.meta).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let mut bytes = Vec::with_capacity(MODEL_MAGIC.len() + meta.len() + 1 + record.len());
        bytes.extend_from_slice(MODEL_MAGIC);
        bytes.extend_from_slice(&meta);
        bytes.push(b'\n');
        bytes.extend_from_slice(&record);
        crate::output::write_atomic(path, &bytes)
    }

    /// The network's weights as a safetensors file in PyTorch's names and layouts
    /// (`conv1.weight` [C1, 1, 3, 3], `bn1.weight`, `bn1.running_mean`, ..., `fc.weight`
    /// [C, C3 * G]), with the [`ModelMeta`] as JSON under the metadata key `emolime.meta`. The
    /// peers in `benches/peers/` rebuild the network from it in PyTorch.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
        let meta = serde_json::to_string(&self.meta).map_err(|e| Error::Device(format!("encoding the header: {e}")))?;
        let mut store = SafetensorsStore::from_bytes(None)
            .with_to_adapter(BurnToPyTorchAdapter)
            .metadata("emolime.meta", meta);
        self.net
            .save_into(&mut store)
            .map_err(|e| Error::Device(format!("exporting weights: {e}")))?;
        store
            .get_bytes()
            .map_err(|e| Error::Device(format!("exporting weights: {e}")))
    }

    /// Loads a model file onto `device`; every defect is an [`Error::Model`], never a panic.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bad = |reason: String| Error::Model {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let rest = bytes
            .strip_prefix(MODEL_MAGIC)
            .ok_or_else(|| bad("not an emolime model (bad magic line)".into()))?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("truncated header".into()))?;
        let meta: ModelMeta = serde_json::from_slice(&rest[..nl]).map_err(|e| bad(format!("bad header: {e}")))?;
        meta.front_end
            .validate()
            .map_err(|e| bad(format!("bad front end: {e}")))?;
        if meta.classes.len() < 2
            || meta.channels.contains(&0)
            || meta.db_std.is_nan()
            || meta.db_std <= 0.0
            || meta.front_end.n_mels < MIN_MELS
        {
            return Err(bad("header describes an impossible network".into()));
        }
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(rest[nl + 1..].to_vec()))
                .map_err(|e| bad(format!("bad weights: {e}")))?;
        let net = SerCnn::new(&meta, device)
            .try_load_record(record)
            .map_err(|e| bad(format!("weights do not fit: {e}")))?;
        Classifier::new(meta, net, device)
    }
}

/// Reads a float tensor back to the host.
pub fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    // Work is queued lazily: an allocation or kernel that failed on the device surfaces here,
    // as the backend's error or as one the device reported to emolime's handler.
    let device = t.device();
    let data = t.try_into_data().map_err(|e| Error::device_failure(&e.to_string()))?;
    crate::gpu::errors::check_burn_device(&device)?;
    data.try_into_vec::<f32>()
        .map_err(|e| Error::Device(format!("reading a tensor back: {e:?}")))
}

/// Reads a `[R, C]` float tensor back to the host as f64.
///
/// # Shapes
/// `t` [R, C] -> [R, C]
pub fn read_f64_2d(t: Tensor<2>) -> Result<ndarray::Array2<f64>> {
    let dims = t.dims();
    let values = read_f32(t)?;
    ndarray::Array2::from_shape_vec((dims[0], dims[1]), values.into_iter().map(f64::from).collect())
        .map_err(|e| Error::shape("tensor read back", format!("{dims:?}"), e.to_string()))
}

/// Training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Utterances per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Frames per crop (longer spectrograms are centre-cropped, shorter ones tiled).
    pub train_frames: usize,
    /// Share of each class held out for validation.
    pub val_fraction: f32,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Channels of the three conv blocks.
    pub channels: [usize; 3],
    /// A sanity-check control model instead of a normal one (see [`Control`]).
    #[serde(default)]
    pub control: Option<Control>,
}

/// Control models for sanity-checking explanations: an explanation method that gives a
/// trained model's explanation for these too does not explain the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Control {
    /// Trained as usual on labels permuted among the training examples (seeded): whatever it
    /// learns is not the emotion.
    ShuffledLabels,
    /// Not trained: the seeded initial weights (with the data's input normalisation).
    RandomWeights,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 12,
            batch_size: 16,
            learning_rate: 3e-3,
            train_frames: 48,
            val_fraction: 0.2,
            seed: 0,
            channels: [8, 16, 32],
            control: None,
        }
    }
}

impl TrainConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::config("epochs", "epochs and batch size must be >= 1"));
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return Err(Error::config("learning-rate", "must be > 0"));
        }
        if self.train_frames < MIN_FRAMES {
            return Err(Error::config("train-frames", format!("must be >= {MIN_FRAMES}")));
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return Err(Error::config("val-fraction", "must be in [0, 0.9)"));
        }
        if self.channels.contains(&0) {
            return Err(Error::config("channels", "must be >= 1"));
        }
        Ok(())
    }
}

/// One labelled training example: a power mel spectrogram.
#[derive(Clone, Debug)]
pub struct Example {
    /// Power mel spectrogram, row-major. // [M, T]
    pub mel: Vec<f32>,
    /// Frames `T`.
    pub n_frames: usize,
    /// Class index.
    pub label: usize,
}

/// What training achieved.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Accuracy on the training split.
    pub train_accuracy: f32,
    /// Accuracy on the held-out split (None when nothing was held out).
    pub val_accuracy: Option<f32>,
    /// Training examples.
    pub n_train: usize,
    /// Held-out examples.
    pub n_val: usize,
    /// Mean loss of the last epoch.
    pub final_loss: f32,
}

/// Crops (centre) or tiles a [M, T] spectrogram to `frames` frames.
///
/// # Shapes
/// `mel` [M, T] -> [M, frames]
pub fn fit_frames(mel: &[f32], n_mels: usize, n_frames: usize, frames: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n_mels * frames);
    let start = n_frames.saturating_sub(frames) / 2;
    for m in 0..n_mels {
        let row = &mel[m * n_frames..(m + 1) * n_frames];
        out.extend((0..frames).map(|f| row[(start + f) % n_frames]));
    }
    out
}

/// Trains a classifier on `examples` (power mel spectrograms made with `front_end`).
pub fn train(
    examples: &[Example],
    classes: Vec<String>,
    front_end: FrontEndConfig,
    cfg: &TrainConfig,
    device: &Device,
    mut progress: impl FnMut(usize, f32),
) -> Result<(Classifier, TrainReport)> {
    cfg.validate()?;
    front_end.validate()?;
    let m = front_end.n_mels;
    if m < MIN_MELS {
        return Err(Error::config(
            "n_mels",
            format!("the cnn needs at least {MIN_MELS} mel rows, got {m}"),
        ));
    }
    let c = classes.len();
    if c < 2 {
        return Err(Error::config("classes", format!("need at least 2 classes, got {c}")));
    }
    if let Some(e) = examples
        .iter()
        .find(|e| e.label >= c || e.mel.len() != m * e.n_frames || e.n_frames == 0)
    {
        return Err(Error::shape(
            "example",
            format!("[{m}, T] with label < {c}"),
            format!("{} values, label {}", e.mel.len(), e.label),
        ));
    }
    // Split: the last `val_fraction` of each class (in a seeded order) is held out.
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| random_u32(cfg.seed, 11, i as u32, 0));
    let (mut train_idx, mut val_idx) = (vec![], vec![]);
    for (class, name) in classes.iter().enumerate() {
        let members: Vec<usize> = order.iter().copied().filter(|&i| examples[i].label == class).collect();
        if members.is_empty() {
            return Err(Error::config(
                "classes",
                format!("class `{name}` has no training example"),
            ));
        }
        let n_val = ((members.len() as f32) * cfg.val_fraction).floor() as usize;
        let n_val = n_val.min(members.len() - 1);
        val_idx.extend_from_slice(&members[members.len() - n_val..]);
        train_idx.extend_from_slice(&members[..members.len() - n_val]);
    }
    let frames = cfg.train_frames;
    let crops: Vec<Vec<f32>> = examples
        .iter()
        .map(|e| fit_frames(&e.mel, m, e.n_frames, frames))
        .collect();
    // Decibel statistics of the training crops.
    let (mut sum, mut sum_sq, mut count) = (0f64, 0f64, 0f64);
    for &i in &train_idx {
        for &v in &crops[i] {
            let db = 10.0 * ((v as f64) + 1e-10).log10();
            sum += db;
            sum_sq += db * db;
            count += 1.0;
        }
    }
    let db_mean = (sum / count) as f32;
    let db_std = ((sum_sq / count - (sum / count).powi(2)).max(1e-6)).sqrt() as f32;
    let meta = ModelMeta {
        classes,
        front_end,
        train_frames: frames,
        db_mean,
        db_std,
        channels: cfg.channels,
    };

    // The labels trained on: the true ones, or for the shuffled-labels control the training
    // labels permuted among the training examples.
    let mut targets: Vec<usize> = examples.iter().map(|e| e.label).collect();
    if cfg.control == Some(Control::ShuffledLabels) {
        let mut permuted = train_idx.clone();
        permuted.sort_by_key(|&i| random_u32(cfg.seed, 13, i as u32, 0));
        for (&to, &from) in train_idx.iter().zip(&permuted) {
            targets[to] = examples[from].label;
        }
    }
    let epochs = if cfg.control == Some(Control::RandomWeights) {
        0
    } else {
        cfg.epochs
    };
    let plain = device.clone();
    let ad = plain.clone().autodiff();
    let mut net = initial_network(&meta, cfg.seed, &ad)?;
    let head_inputs = meta.channels[2] * FREQ_GROUPS;
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let batch_of = |idx: &[usize], dev: &Device| {
        let mut x = Vec::with_capacity(idx.len() * m * frames);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            x.extend_from_slice(&crops[i]);
            y.push(targets[i] as i64);
        }
        (
            Tensor::<4>::from_data(TensorData::new(x, [idx.len(), 1, m, frames]), dev),
            Tensor::<1, Int>::from_data(TensorData::new(y, [idx.len()]), dev),
        )
    };
    let mut final_loss = f32::NAN;
    let mut shuffled = train_idx.clone();
    for epoch in 0..epochs {
        shuffled.sort_by_key(|&i| random_u32(cfg.seed, 12, epoch as u32, i as u32));
        let (mut loss_sum, mut steps) = (0f32, 0usize);
        for batch in shuffled.chunks(cfg.batch_size) {
            let (x, y) = batch_of(batch, &ad);
            let mask = dropout_mask(cfg.seed, epoch, steps, batch.len(), head_inputs);
            let mask = Tensor::<2>::from_data(TensorData::new(mask, [batch.len(), head_inputs]), &ad);
            let loss = loss_fn.forward(net.forward_masked(x, Some(mask)), y);
            loss_sum += loss.clone().into_scalar::<f32>();
            steps += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            // Cosine decay of the learning rate.
            let lr = cfg.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos());
            net = optim.step(lr, net, grads);
        }
        final_loss = loss_sum / steps.max(1) as f32;
        progress(epoch, final_loss);
    }
    let classifier = Classifier::new(meta, net, &plain)?;
    let accuracy = |idx: &[usize]| -> Result<f32> {
        let mut correct = 0usize;
        for batch in idx.chunks(64) {
            let (x, _) = batch_of(batch, &plain);
            let p = read_f32(classifier.probs(x)?)?;
            for (k, &i) in batch.iter().enumerate() {
                let row = &p[k * c..(k + 1) * c];
                correct += (argmax(row) == examples[i].label) as usize;
            }
        }
        Ok(correct as f32 / idx.len().max(1) as f32)
    };
    let train_accuracy = accuracy(&train_idx)?;
    let val_accuracy = if val_idx.is_empty() {
        None
    } else {
        Some(accuracy(&val_idx)?)
    };
    let report = TrainReport {
        train_accuracy,
        val_accuracy,
        n_train: train_idx.len(),
        n_val: val_idx.len(),
        final_loss,
    };
    Ok((classifier, report))
}

/// The seeded initial network on `device`: drawn by the CPU backend's generator and copied
/// over, so every device starts training from the same weights.
fn initial_network(meta: &ModelMeta, seed: u64, device: &Device) -> Result<SerCnn> {
    // The CPU backend's generator is shared by the process: seeding and drawing happen under one
    // lock so that trainings on other threads cannot reseed it in between.
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let drawn = {
        let _guard = INIT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cpu = Device::flex();
        cpu.seed(seed);
        SerCnn::new(meta, &cpu)
    };
    let bytes = drawn
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Device(format!("encoding initial weights: {e}")))?;
    let record = burn::store::ModuleRecord::from_bytes(bytes)
        .map_err(|e| Error::Device(format!("decoding initial weights: {e}")))?;
    SerCnn::new(meta, device)
        .try_load_record(record)
        .map_err(|e| Error::Device(format!("loading initial weights: {e}")))
}

/// Inverted-dropout mask of training step `step` of `epoch`: each value 0 with probability
/// [`DROPOUT`], else `1 / (1 - DROPOUT)`, from the counter-based generator (the same on every
/// device).
///
/// # Shapes
/// -> [n * width], row-major [n, width]
pub fn dropout_mask(seed: u64, epoch: usize, step: usize, n: usize, width: usize) -> Vec<f32> {
    let keep = 1.0 / (1.0 - DROPOUT as f32);
    let threshold = (DROPOUT * u32::MAX as f64) as u32;
    let stream = (epoch as u32).wrapping_mul(1 << 16).wrapping_add(step as u32);
    (0..n * width)
        .map(|i| {
            if random_u32(seed, 14, stream, i as u32) < threshold {
                0.0
            } else {
                keep
            }
        })
        .collect()
}

/// Index of the largest value (first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Too few mel rows for the network's strided convolution and two poolings: a config error
    /// naming `n_mels` before any training, at the smallest count the front end allows and at
    /// one below the network's least; that least trains.
    #[test]
    fn too_few_mel_rows_are_a_config_error() {
        let cpu = crate::device::ComputeDevice::cpu("test");
        let device = cpu.burn.clone();
        let cfg = TrainConfig {
            epochs: 1,
            val_fraction: 0.0,
            ..TrainConfig::default()
        };
        let classes = || vec!["a".to_string(), "b".to_string()];
        let examples = |m: usize| -> Vec<Example> {
            (0..4)
                .map(|k| Example {
                    mel: (0..m * 8).map(|i| 1.0 + ((i * 7 + k) % 5) as f32).collect(),
                    n_frames: 8,
                    label: k % 2,
                })
                .collect()
        };
        for m in [2, MIN_MELS - 1] {
            let fe = FrontEndConfig {
                n_mels: m,
                ..FrontEndConfig::default()
            };
            match train(&examples(m), classes(), fe, &cfg, &device, |_, _| {}) {
                Err(Error::Config {
                    field: "n_mels",
                    reason,
                }) => assert!(reason.contains("at least 7"), "{reason}"),
                Err(e) => panic!("{m} mel rows: {e}"),
                Ok(_) => panic!("{m} mel rows trained"),
            }
        }
        let fe = FrontEndConfig {
            n_mels: MIN_MELS,
            ..FrontEndConfig::default()
        };
        let (model, _) = train(&examples(MIN_MELS), classes(), fe, &cfg, &device, |_, _| {}).unwrap();
        let probs = model.probs_host(vec![1.0; MIN_MELS * 8], [1, MIN_MELS, 8]).unwrap();
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{probs:?}");
    }
}
