//! wav2vec 2.0 and HuBERT encoders in Burn, layer for layer as `transformers` defines them
//! (`modeling_wav2vec2.py`, `modeling_hubert.py`), loaded from a checkpoint's tensors.
//!
//! Both variants are covered: the base layout (group-norm feature encoder, post-norm
//! transformer) and the "stable layer norm" layout of large / robust models (layer-norm feature
//! encoder, pre-norm transformer). Inference only: dropout and masking are left out.

use super::gemm_conv::GemmConv1d;
use super::hf::Weights;
use crate::error::{Error, Result};
use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::{Device, FloatDType, Tensor};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The fields of a `config.json` the encoder and its heads use; missing fields take
/// `transformers`' defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct EncoderConfig {
    /// `wav2vec2` or `hubert`.
    pub model_type: String,
    /// Class names of the architectures the checkpoint was saved from.
    pub architectures: Option<Vec<String>>,
    /// Width of the transformer `H`.
    pub hidden_size: usize,
    /// Transformer layers `L`.
    pub num_hidden_layers: usize,
    /// Attention heads (divides `H`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer (`gelu` or `relu`).
    pub hidden_act: String,
    /// Channels of each feature-encoder convolution.
    pub conv_dim: Vec<usize>,
    /// Stride of each feature-encoder convolution.
    pub conv_stride: Vec<usize>,
    /// Kernel of each feature-encoder convolution.
    pub conv_kernel: Vec<usize>,
    /// Whether the feature-encoder convolutions have a bias.
    pub conv_bias: bool,
    /// `group` (group norm on the first convolution) or `layer` (layer norm on every one).
    pub feat_extract_norm: String,
    /// Activation of the feature encoder (`gelu`).
    pub feat_extract_activation: String,
    /// HuBERT only: layer norm before the feature projection (wav2vec 2.0 always has it).
    pub feat_proj_layer_norm: bool,
    /// Kernel of the convolutional positional embedding.
    pub num_conv_pos_embeddings: usize,
    /// Groups of the convolutional positional embedding.
    pub num_conv_pos_embedding_groups: usize,
    /// Pre-norm transformer ("stable layer norm", large and robust models).
    pub do_stable_layer_norm: bool,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f64,
    /// Width of the classification head's projector.
    pub classifier_proj_size: usize,
    /// The head mixes every hidden state with learned softmax weights.
    pub use_weighted_layer_sum: bool,
    /// Class names by output index (keys are decimal indices).
    pub id2label: BTreeMap<String, String>,
    /// Batch norm in the positional embedding (not supported).
    pub conv_pos_batch_norm: bool,
    /// Adapter layers after the encoder (not supported).
    pub add_adapter: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            model_type: "wav2vec2".into(),
            architectures: None,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            conv_dim: vec![512; 7],
            conv_stride: vec![5, 2, 2, 2, 2, 2, 2],
            conv_kernel: vec![10, 3, 3, 3, 3, 2, 2],
            conv_bias: false,
            feat_extract_norm: "group".into(),
            feat_extract_activation: "gelu".into(),
            feat_proj_layer_norm: true,
            num_conv_pos_embeddings: 128,
            num_conv_pos_embedding_groups: 16,
            do_stable_layer_norm: false,
            layer_norm_eps: 1e-5,
            classifier_proj_size: 256,
            use_weighted_layer_sum: false,
            id2label: BTreeMap::new(),
            conv_pos_batch_norm: false,
            add_adapter: false,
        }
    }
}

impl EncoderConfig {
    /// The size of wav2vec 2.0 base (95 M parameters), with a four-emotion head.
    pub fn base() -> Self {
        EncoderConfig {
            architectures: Some(vec!["Wav2Vec2ForSequenceClassification".into()]),
            id2label: ["angry", "happy", "neutral", "sad"]
                .iter()
                .enumerate()
                .map(|(i, c)| (i.to_string(), c.to_string()))
                .collect(),
            ..EncoderConfig::default()
        }
    }

    /// The size of wav2vec 2.0 large / robust (317 M parameters: layer-norm feature encoder,
    /// pre-norm transformer), with a four-emotion head.
    pub fn large() -> Self {
        EncoderConfig {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            feat_extract_norm: "layer".into(),
            do_stable_layer_norm: true,
            conv_bias: true,
            ..EncoderConfig::base()
        }
    }

    /// Checks the sizes and that every switch is one this implementation follows; `key` errors
    /// name the offending `config.json` key.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        let bad = |k: &str, why: String| Err((k.to_string(), why));
        if self.model_type != "wav2vec2" && self.model_type != "hubert" {
            return bad(
                "model_type",
                format!(
                    "`{}` is not wav2vec 2.0 or HuBERT (expected `wav2vec2` or `hubert`)",
                    self.model_type
                ),
            );
        }
        let n = self.conv_dim.len();
        if n == 0 || self.conv_stride.len() != n || self.conv_kernel.len() != n {
            return bad(
                "conv_dim",
                format!(
                    "conv_dim, conv_stride and conv_kernel must have one equal, non-zero length (got {n}, {}, {})",
                    self.conv_stride.len(),
                    self.conv_kernel.len()
                ),
            );
        }
        if self.conv_dim.contains(&0) || self.conv_stride.contains(&0) || self.conv_kernel.contains(&0) {
            return bad("conv_dim", "sizes must be >= 1".into());
        }
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(
                "num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        if self.intermediate_size == 0 || self.num_conv_pos_embeddings == 0 {
            return bad("intermediate_size", "sizes must be >= 1".into());
        }
        let g = self.num_conv_pos_embedding_groups;
        if g == 0 || !self.hidden_size.is_multiple_of(g) {
            return bad(
                "num_conv_pos_embedding_groups",
                format!("{g} groups do not divide hidden_size {}", self.hidden_size),
            );
        }
        if !["group", "layer"].contains(&self.feat_extract_norm.as_str()) {
            return bad(
                "feat_extract_norm",
                format!("`{}` is not `group` or `layer`", self.feat_extract_norm),
            );
        }
        for (k, v) in [
            ("hidden_act", &self.hidden_act),
            ("feat_extract_activation", &self.feat_extract_activation),
        ] {
            if Activation::parse(v).is_none() {
                return bad(k, format!("activation `{v}` is not supported (gelu, relu)"));
            }
        }
        if self.conv_pos_batch_norm {
            return bad(
                "conv_pos_batch_norm",
                "batch norm in the positional embedding is not supported".into(),
            );
        }
        if self.add_adapter {
            return bad("add_adapter", "adapter layers are not supported".into());
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return bad("layer_norm_eps", "must be > 0".into());
        }
        Ok(())
    }

    /// Shortest input (samples) for which the feature encoder yields one frame.
    pub fn receptive_field(&self) -> usize {
        self.conv_kernel
            .iter()
            .zip(&self.conv_stride)
            .rev()
            .fold(1, |need, (&k, &s)| (need - 1) * s + k)
    }

    /// Frames the feature encoder yields for `n_samples` (0 when shorter than the receptive field).
    pub fn n_frames(&self, n_samples: usize) -> usize {
        self.conv_kernel.iter().zip(&self.conv_stride).fold(
            n_samples,
            |len, (&k, &s)| {
                if len < k { 0 } else { (len - k) / s + 1 }
            },
        )
    }
}

#[derive(Clone, Copy, Debug)]
enum Activation {
    Gelu,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Gelu => gelu(x),
            Activation::Relu => relu(x),
        }
    }
}

/// The normalisation of one feature-encoder convolution.
#[derive(Debug)]
enum ConvNorm {
    None,
    /// `GroupNorm` with one group per channel: each channel normalised over time, then scaled
    /// and shifted.
    Channel(Box<ChannelAffine>),
    Layer(LayerNorm),
}

impl ConvNorm {
    /// # Shapes
    /// `x` [N, T, C] -> [N, T, C]
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            ConvNorm::None => x,
            ConvNorm::Channel(affine) => in_f32(x, |x| {
                let ChannelAffine { gamma, beta } = affine.as_ref();
                let c = gamma.dims()[0];
                let mean = x.clone().mean_dim(1); // [N, 1, C]
                let centred = x - mean;
                let var = centred.clone().powi_scalar(2).mean_dim(1); // [N, 1, C], biased as torch's
                let scale = var.add_scalar(GROUP_NORM_EPS).sqrt().recip() * gamma.clone().reshape([1, 1, c]);
                centred * scale + beta.clone().reshape([1, 1, c])
            }),
            ConvNorm::Layer(ln) => norm(ln, x),
        }
    }
}

/// The scale and shift of [`ConvNorm::Channel`].
#[derive(Debug)]
struct ChannelAffine {
    /// [C]
    gamma: Tensor<1>,
    /// [C]
    beta: Tensor<1>,
}

/// `torch.nn.GroupNorm`'s default epsilon, which `transformers` keeps for the feature encoder.
const GROUP_NORM_EPS: f64 = 1e-5;

#[derive(Debug)]
struct ConvLayer {
    conv: GemmConv1d,
    norm: ConvNorm,
}

#[derive(Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    /// # Shapes
    /// `x` [N, T, H] -> [N, T, H]
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, t, h] = x.dims();
        let hd = h / self.heads;
        let split = |y: Tensor<3>| y.reshape([n, t, self.heads, hd]).swap_dims(1, 2); // [N, heads, T, hd]
        let q = split(self.q.forward(x.clone()).mul_scalar((hd as f32).powf(-0.5)));
        let k = split(self.k.forward(x.clone()));
        let v = split(self.v.forward(x));
        let scores = q.matmul(k.swap_dims(2, 3)); // [N, heads, T, T]
        let ctx = in_f32(scores, |s| softmax(s, 3)).matmul(v); // [N, heads, T, hd]
        self.out.forward(ctx.swap_dims(1, 2).reshape([n, t, h]))
    }
}

#[derive(Debug)]
struct EncoderLayer {
    attention: Attention,
    layer_norm: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    final_layer_norm: LayerNorm,
}

/// A wav2vec 2.0 or HuBERT encoder with its weights, ready for inference.
#[derive(Debug)]
pub struct Encoder {
    cfg: EncoderConfig,
    conv_layers: Vec<ConvLayer>,
    proj_norm: Option<LayerNorm>,
    projection: Linear,
    pos_conv: Box<GemmConv1d>,
    pos_drop_last: bool,
    encoder_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    act: Activation,
    conv_act: Activation,
    /// The dtype of the weights and of every activation ([`Encoder::cast`]).
    dtype: FloatDType,
}

/// A `Linear` with its parameters in `dtype`.
pub(crate) fn cast_linear(mut lin: Linear, dtype: FloatDType) -> Linear {
    lin.weight = Param::from_tensor(lin.weight.val().cast(dtype));
    lin.bias = lin.bias.map(|b| Param::from_tensor(b.val().cast(dtype)));
    lin
}

/// Runs `f` in f32 when `x` is in a narrower float type, returning `x`'s type: the norms and
/// the softmax, which mixed-precision inference keeps in f32 because their sums of squares and
/// exponentials overflow f16 (its largest value is 65504).
fn in_f32<const D: usize>(x: Tensor<D>, f: impl FnOnce(Tensor<D>) -> Tensor<D>) -> Tensor<D> {
    let dtype = FloatDType::from(x.dtype());
    if dtype == FloatDType::F32 {
        f(x)
    } else {
        f(x.cast(FloatDType::F32)).cast(dtype)
    }
}

/// A layer norm (parameters in f32) applied in f32 ([`in_f32`]).
///
/// # Shapes
/// `x` [N, T, C] -> [N, T, C]
fn norm(ln: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    in_f32(x, |x| ln.forward(x))
}

impl Encoder {
    /// Builds the encoder from `weights`, whose names start with `prefix` (`wav2vec2.`,
    /// `hubert.` or empty for a bare model). Every tensor is checked against the shape the
    /// config implies; a missing or mis-shaped one is an [`Error::Model`] naming it.
    pub fn load(cfg: &EncoderConfig, weights: &mut Weights, prefix: &str, device: &Device) -> Result<Self> {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let mut conv_layers = Vec::with_capacity(cfg.conv_dim.len());
        let mut in_ch = 1;
        for (i, ((&out_ch, &k), &s)) in cfg
            .conv_dim
            .iter()
            .zip(&cfg.conv_kernel)
            .zip(&cfg.conv_stride)
            .enumerate()
        {
            let p = format!("{prefix}feature_extractor.conv_layers.{i}.");
            let conv = weights.conv1d(&format!("{p}conv"), in_ch, out_ch, k, s, 1, 0, cfg.conv_bias, device)?;
            let norm = match (cfg.feat_extract_norm.as_str(), i) {
                ("group", 0) => ConvNorm::Channel(Box::new(ChannelAffine {
                    gamma: weights.get(&format!("{p}layer_norm.weight"), [out_ch], device)?,
                    beta: weights.get(&format!("{p}layer_norm.bias"), [out_ch], device)?,
                })),
                ("layer", _) => ConvNorm::Layer(weights.layer_norm(&format!("{p}layer_norm"), out_ch, 1e-5, device)?),
                _ => ConvNorm::None,
            };
            conv_layers.push(ConvLayer { conv, norm });
            in_ch = out_ch;
        }
        let c = in_ch;
        let proj_norm = if cfg.model_type == "wav2vec2" || cfg.feat_proj_layer_norm {
            Some(weights.layer_norm(&format!("{prefix}feature_projection.layer_norm"), c, eps, device)?)
        } else {
            None
        };
        let projection = weights.linear(&format!("{prefix}feature_projection.projection"), c, h, device)?;
        let kp = cfg.num_conv_pos_embeddings;
        let groups = cfg.num_conv_pos_embedding_groups;
        let pos_conv = weights.weight_norm_conv1d(
            &format!("{prefix}encoder.pos_conv_embed.conv"),
            h,
            h / groups,
            kp,
            groups,
            device,
        )?;
        let encoder_norm = weights.layer_norm(&format!("{prefix}encoder.layer_norm"), h, eps, device)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("{prefix}encoder.layers.{l}.");
            layers.push(EncoderLayer {
                attention: Attention {
                    q: weights.linear(&format!("{p}attention.q_proj"), h, h, device)?,
                    k: weights.linear(&format!("{p}attention.k_proj"), h, h, device)?,
                    v: weights.linear(&format!("{p}attention.v_proj"), h, h, device)?,
                    out: weights.linear(&format!("{p}attention.out_proj"), h, h, device)?,
                    heads: cfg.num_attention_heads,
                },
                layer_norm: weights.layer_norm(&format!("{p}layer_norm"), h, eps, device)?,
                ff_in: weights.linear(
                    &format!("{p}feed_forward.intermediate_dense"),
                    h,
                    cfg.intermediate_size,
                    device,
                )?,
                ff_out: weights.linear(
                    &format!("{p}feed_forward.output_dense"),
                    cfg.intermediate_size,
                    h,
                    device,
                )?,
                final_layer_norm: weights.layer_norm(&format!("{p}final_layer_norm"), h, eps, device)?,
            });
        }
        Ok(Encoder {
            cfg: cfg.clone(),
            conv_layers,
            proj_norm,
            projection,
            pos_conv: Box::new(pos_conv),
            pos_drop_last: kp.is_multiple_of(2),
            encoder_norm,
            layers,
            act: Activation::parse(&cfg.hidden_act).ok_or_else(|| Error::config("hidden_act", "unsupported"))?,
            conv_act: Activation::parse(&cfg.feat_extract_activation)
                .ok_or_else(|| Error::config("feat_extract_activation", "unsupported"))?,
            dtype: FloatDType::F32,
        })
    }

    /// The encoder with its convolution and linear weights in `dtype` (`F16` to score in half
    /// precision): every forward then casts its input to `dtype` and computes in it, except the
    /// norms and the attention softmax, which run in f32 on f32 parameters as mixed-precision
    /// inference keeps them.
    pub fn cast(self, dtype: FloatDType) -> Self {
        let lin = |l: Linear| cast_linear(l, dtype);
        Encoder {
            conv_layers: self
                .conv_layers
                .into_iter()
                .map(|l| ConvLayer {
                    conv: l.conv.cast(dtype),
                    norm: l.norm,
                })
                .collect(),
            projection: lin(self.projection),
            pos_conv: Box::new(self.pos_conv.cast(dtype)),
            layers: self
                .layers
                .into_iter()
                .map(|l| EncoderLayer {
                    attention: Attention {
                        q: lin(l.attention.q),
                        k: lin(l.attention.k),
                        v: lin(l.attention.v),
                        out: lin(l.attention.out),
                        heads: l.attention.heads,
                    },
                    ff_in: lin(l.ff_in),
                    ff_out: lin(l.ff_out),
                    ..l
                })
                .collect(),
            dtype,
            ..self
        }
    }

    /// The dtype the encoder computes in.
    pub fn dtype(&self) -> FloatDType {
        self.dtype
    }

    /// The configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Feature encoder and projection.
    ///
    /// # Shapes
    /// `wave` [N, S] -> [N, T', H] with `T' = config().n_frames(S)`
    pub fn features(&self, wave: Tensor<2>) -> Tensor<3> {
        self.features_with(wave, GemmConv1d::forward)
    }

    /// [`Encoder::features`] with Burn's own convolution in place of the matrix products: the
    /// reference the tests and benches compare the lowering with.
    ///
    /// # Shapes
    /// `wave` [N, S] -> [N, T', H]
    pub fn features_direct(&self, wave: Tensor<2>) -> Tensor<3> {
        self.features_with(wave, GemmConv1d::forward_direct)
    }

    /// # Shapes
    /// `wave` [N, S] -> [N, T', H]
    fn features_with(&self, wave: Tensor<2>, conv: impl Fn(&GemmConv1d, Tensor<3>) -> Tensor<3>) -> Tensor<3> {
        let [n, s] = wave.dims();
        let mut x = wave.cast(self.dtype).reshape([n, s, 1]); // [N, S, 1], channel-last throughout
        for layer in &self.conv_layers {
            x = conv(&layer.conv, x); // [N, T, C]
            x = self.conv_act.apply(layer.norm.forward(x));
        }
        if let Some(ln) = &self.proj_norm {
            x = norm(ln, x);
        }
        self.projection.forward(x)
    }

    /// The hidden states `0..=up_to` as `transformers` 5 returns them with
    /// `output_hidden_states=True`: entry 0 is the transformer's input, entry `l` the output of
    /// layer `l`. In the stable-layer-norm variant the final layer norm belongs to
    /// `last_hidden_state` only ([`Encoder::last_hidden_state`]); `transformers` 4 applied it to
    /// the last entry of `hidden_states` too. Layers past `up_to` are not computed.
    ///
    /// # Shapes
    /// `wave` [N, S] -> `up_to + 1` tensors [N, T', H]
    pub fn hidden_states(&self, wave: Tensor<2>, up_to: usize) -> Vec<Tensor<3>> {
        self.run(wave, up_to, true)
    }

    /// The output of the last layer (the last entry of [`Encoder::hidden_states`]), keeping no
    /// earlier state alive.
    ///
    /// # Shapes
    /// `wave` [N, S] -> [N, T', H]
    pub fn last_layer_output(&self, wave: Tensor<2>) -> Tensor<3> {
        self.run(wave, self.layers.len(), false)
            .pop()
            .expect("run returns at least one state")
    }

    /// Runs the encoder up to layer `up_to`, returning every state (`keep_all`) or the last one.
    fn run(&self, wave: Tensor<2>, up_to: usize, keep_all: bool) -> Vec<Tensor<3>> {
        let up_to = up_to.min(self.layers.len());
        let x = self.features(wave); // [N, T', H]
        let pos = self.pos_conv.forward(x.clone()); // [N, T' (+1), H]
        let [n, tp, h] = pos.dims();
        let pos = if self.pos_drop_last {
            pos.slice([0..n, 0..tp - 1, 0..h])
        } else {
            pos
        };
        // transformers applies `feat_extract_activation` here too.
        let mut x = x + self.conv_act.apply(pos);
        let stable = self.cfg.do_stable_layer_norm;
        if !stable {
            x = norm(&self.encoder_norm, x);
        }
        let mut states = Vec::with_capacity(if keep_all { up_to + 1 } else { 1 });
        if keep_all {
            states.push(x.clone());
        }
        for layer in self.layers.iter().take(up_to) {
            x = if stable {
                let a = layer.attention.forward(norm(&layer.layer_norm, x.clone()));
                let x = x + a;
                let ff = layer.ff_out.forward(
                    self.act
                        .apply(layer.ff_in.forward(norm(&layer.final_layer_norm, x.clone()))),
                );
                x + ff
            } else {
                let a = layer.attention.forward(x.clone());
                let x = norm(&layer.layer_norm, x + a);
                let ff = layer.ff_out.forward(self.act.apply(layer.ff_in.forward(x.clone())));
                norm(&layer.final_layer_norm, x + ff)
            };
            if keep_all {
                states.push(x.clone());
            }
        }
        if !keep_all {
            states.push(x);
        }
        states
    }

    /// `last_hidden_state` from the output of the last layer: the final layer norm in the
    /// stable-layer-norm variant, the identity otherwise.
    ///
    /// # Shapes
    /// `last` [N, T', H] -> [N, T', H]
    pub fn last_hidden_state(&self, last: Tensor<3>) -> Tensor<3> {
        if self.cfg.do_stable_layer_norm {
            norm(&self.encoder_norm, last)
        } else {
            last
        }
    }

    /// Layers `L`.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Bytes of the largest tensor one sample of `n_samples` creates: a convolution's unfolded
    /// windows or output, the attention scores or the feed-forward activations.
    pub fn largest_tensor_bytes(&self, n_samples: usize) -> u64 {
        let mut len = n_samples;
        let mut largest = 0;
        for layer in &self.conv_layers {
            largest = largest.max(layer.conv.largest_tensor_bytes(len));
            len = layer.conv.out_len(len);
        }
        largest = largest.max(self.pos_conv.largest_tensor_bytes(len));
        let t = len as u64 + 1;
        let heads = self.cfg.num_attention_heads as u64;
        let inter = self.cfg.intermediate_size as u64;
        largest.max(4 * (heads * t * t).max(inter * t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Activations of a few hundred, as a checkpoint's hidden states can reach: in f16 their
    /// squares summed over 768 features are far past f16's range; the norm runs in f32 and gives
    /// f16 values equal to the f32 norm's.
    #[test]
    fn norms_of_f16_activations_run_in_f32() {
        let cpu = crate::device::ComputeDevice::cpu("test");
        let device = cpu.burn.clone();
        let ln = burn::nn::LayerNormConfig::new(768).init(&device);
        let values: Vec<f32> = (0..2 * 768).map(|i| 300.0 + ((i * 37) % 101) as f32).collect();
        let x = Tensor::<3>::from_data(burn::tensor::TensorData::new(values, [1, 2, 768]), &device);
        let want = crate::model::read_f32(norm(&ln, x.clone())).unwrap();
        let half = norm(&ln, x.cast(FloatDType::F16));
        assert_eq!(FloatDType::from(half.dtype()), FloatDType::F16);
        let got = crate::model::read_f32(half.cast(FloatDType::F32)).unwrap();
        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(got.iter().all(|v| v.is_finite()) && worst < 2e-2, "{worst}");
    }
}
