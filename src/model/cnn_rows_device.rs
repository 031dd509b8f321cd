//! The CNN with its batch norms folded into its convolutions, as Burn operations on any device:
//! every input scored whole ([`DeviceRowCnn::probs_every_input`]), or the row-cached forward of
//! [`super::cnn_rows`], the same row versions, each level computed as one gather of the rows
//! below and one batched convolution ([`DeviceRowCnn::probs`]); on a GPU emolime opened, each
//! level is one fused kernel of `conv_block.wgsl` instead, and the head the two kernels of
//! [`super::row_head`], all five dispatches one submission. The head takes each version of
//! conv3's rows through its row's share of the pooling into groups and the linear layer (C
//! logits per version), so each sample sums H3 such shares rather than pooling C3 H3 values.
//!
//! Which versions exist and which rows each one reads depends on the masks, the band of each
//! mel row and the network's geometry, not on the audio, so a [`RowPlan`] holds those index
//! tables on the device, built once per explainer. Per utterance the device then gathers and
//! convolves a few hundred rows per level instead of building and scoring every masked
//! spectrogram. The host forward ([`RowCachedCnn::probs_band_masked`]) is its CPU twin.

use super::cnn_rows::{HostConv, RowCachedCnn, RowSlots, conv_deps, head_per_row, mask_bits, row_versions};
use super::conv_block::{ConvBlock, GpuConvBlocks, RowLevel};
use super::row_head::{GpuRowHead, RowHead};
use crate::error::{Error, Result, check_shape};
use burn::tensor::activation::softmax;
use burn::tensor::module::{adaptive_avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ndarray::ArrayView2;

/// One level of a [`RowPlan`]: the row versions it computes and the rows each reads.
struct LevelPlan {
    /// Row versions computed `J`.
    n_jobs: usize,
    /// Input rows per version `K`.
    k: usize,
    /// For each version, the slots of the `K` rows it reads in the level below (that level's
    /// version count is its zero row). // [J * K]
    inputs: Tensor<1, Int>,
}

/// Host bookkeeping while a plan is built: each row's bands and its key -> slot map.
struct Slots {
    deps: Vec<u64>,
    index: Vec<RowSlots>,
    n: usize,
}

impl Slots {
    /// The distinct versions of `deps.len()` rows that the samples `bits` need
    /// ([`row_versions`]).
    fn new(deps: Vec<u64>, bits: &[u64]) -> (Self, Vec<(usize, u64)>) {
        let (index, jobs) = row_versions(&deps, bits);
        let n = jobs.len();
        (Slots { deps, index, n }, jobs)
    }

    /// The slot of row `r` (any integer) for `key`, or the zero row outside `0..rows`.
    fn slot(&self, r: isize, key: u64) -> i64 {
        match usize::try_from(r).ok().filter(|&r| r < self.deps.len()) {
            Some(r) => self.index[r][&(key & self.deps[r])] as i64,
            None => self.n as i64,
        }
    }
}

/// The index tables of [`DeviceRowCnn::probs`] for one set of masks (see the module docs).
pub struct RowPlan {
    n_mels: usize,
    n_samples: usize,
    levels: [LevelPlan; 3],
    /// Rows of conv3 `H3`.
    h3: usize,
    /// For each sample and row of conv3, the slot of its version. // [N * H3]
    head: Tensor<1, Int>,
    /// The head's weights for each row of conv3 ([`head_per_row`]) as `w[c, h C + k]`: the
    /// adaptive average pooling of rows into groups composed with the linear layer.
    /// // [C3, H3 * C]
    head_weight: Tensor<2>,
    /// For each version of conv3 and class, its column of `head_weight`'s product: `h C + k`
    /// for the version's row `h` (0 for the zero row, whose product is zero). // [J3 + 1, C]
    head_cols: Tensor<2, Int>,
    /// The levels' index tables and the head for the fused kernels, when the network has
    /// them ([`GpuConvBlocks::forward_rows_head`]).
    fused: Option<FusedPlan>,
}

/// The device tables of a [`RowPlan`] for the fused kernels: each level's rows for
/// `conv_block.wgsl`, and the head for `row_head_share.wgsl` and `row_head_softmax.wgsl`.
struct FusedPlan {
    levels: Vec<RowLevel>,
    head: GpuRowHead,
}

/// The CNN's folded weights on a device: each batch norm folded into its convolution, and the
/// input's decibel scale (`10 / ln 10 / db_std`) into the first convolution's weights.
pub struct DeviceRowCnn {
    convs: [(Tensor<4>, Tensor<1>, usize); 3],
    /// `[C3 * G, C]`.
    fc_weight: Tensor<2>,
    /// `[1, C]`.
    fc_bias: Tensor<2>,
    /// The linear layer's weights on the host, for each plan's head weights. // [C3 * G, C]
    fc_host: Vec<f32>,
    /// The linear layer's bias on the host, for the fused head. // [C]
    bias_host: Vec<f32>,
    groups: usize,
    /// Added to `ln(power + 1e-10)`: `-db_mean ln 10 / 10`. With the scale folded into conv1's
    /// weights, `conv1(ln(p + eps) + offset)` equals conv1 of the normalised decibels, zero
    /// padding included (a padded zero is zero in both).
    log_offset: f32,
    /// The three blocks as fused WGSL kernels, on a GPU emolime opened
    /// ([`DeviceRowCnn::probs_every_input`]).
    fused: Option<GpuConvBlocks>,
    device: Device,
}

impl DeviceRowCnn {
    /// Uploads the host network's folded weights to `device`; on a GPU emolime opened, also as
    /// the fused blocks of `conv_block.wgsl`.
    pub fn new(host: &RowCachedCnn, device: &Device) -> Result<Self> {
        let conv = |c: &HostConv, scale: f32| {
            let weight: Vec<f32> = c.weight.iter().map(|w| w * scale).collect();
            (
                Tensor::<4>::from_data(TensorData::new(weight, [c.out_ch, c.in_ch, 3, 3]), device),
                Tensor::<1>::from_data(TensorData::new(c.bias.clone(), [c.out_ch]), device),
                c.stride_rows,
            )
        };
        let (convs, fc_weight, fc_bias, groups, db_mean, db_std) = host.parts();
        let classes = fc_bias.len();
        let db_per_ln = 10.0 / std::f32::consts::LN_10;
        let log_offset = -db_mean / db_per_ln;
        let fused = match crate::gpu::interop::burn_device_gpu(device) {
            Some(ctx) => {
                let block = |c: &HostConv, scale: f32, pool: bool, log_offset: Option<f32>| ConvBlock {
                    in_ch: c.in_ch,
                    out_ch: c.out_ch,
                    stride_h: c.stride_rows,
                    pool,
                    log_offset,
                    weight: c.weight.iter().map(|w| w * scale).collect(),
                    bias: c.bias.clone(),
                };
                Some(GpuConvBlocks::new(
                    &ctx,
                    vec![
                        block(&convs[0], db_per_ln / db_std, true, Some(log_offset)),
                        block(&convs[1], 1.0, true, None),
                        block(&convs[2], 1.0, false, None),
                    ],
                )?)
            }
            None => None,
        };
        Ok(DeviceRowCnn {
            convs: [
                conv(&convs[0], db_per_ln / db_std),
                conv(&convs[1], 1.0),
                conv(&convs[2], 1.0),
            ],
            fc_weight: Tensor::from_data(
                TensorData::new(fc_weight.to_vec(), [fc_weight.len() / classes, classes]),
                device,
            ),
            fc_bias: Tensor::from_data(TensorData::new(fc_bias.to_vec(), [1, classes]), device),
            fc_host: fc_weight.to_vec(),
            bias_host: fc_bias.to_vec(),
            groups,
            log_offset,
            fused,
            device: device.clone(),
        })
    }

    /// The same network scoring every input through Burn's operations alone (its convolution,
    /// pooling and clamp), as on the CPU backends; for comparisons with the fused kernels.
    pub fn without_fused_kernels(mut self) -> Self {
        self.fused = None;
        self
    }

    /// Whether [`Self::probs_every_input`] runs the fused blocks of `conv_block.wgsl`.
    pub fn has_fused_kernels(&self) -> bool {
        self.fused.is_some()
    }

    /// The first convolution's input from power values: `ln(power + 1e-10)` plus the offset
    /// that, with the scale folded into conv1, makes it the normalised decibels (three
    /// element-wise passes where the unfolded network takes five).
    fn log_input<const D: usize>(&self, power: Tensor<D>) -> Tensor<D> {
        power.add_scalar(1e-10).log().add_scalar(self.log_offset)
    }

    /// Class probabilities of whole power mel spectrograms: the network's forward with each
    /// batch norm folded: a convolution, pooling and a ReLU on the pooled values per block,
    /// where the unfolded network adds four element-wise passes per batch norm and runs its
    /// ReLU before pooling; equal to [`super::SerCnn::forward`]'s softmax up to rounding. On a
    /// GPU emolime opened the three blocks are the fused kernels of `conv_block.wgsl` (one
    /// submission; [`GpuConvBlocks`]), elsewhere, or when a tensor would not fit one storage
    /// binding, Burn's operations.
    ///
    /// # Shapes
    /// `power_mel` [N, 1, M, T] (M >= [`super::MIN_MELS`], T >= [`super::MIN_FRAMES`]) -> [N, C]
    pub fn probs_every_input(&self, power_mel: Tensor<4>) -> Result<Tensor<2>> {
        let [n, c, m, t] = power_mel.dims();
        if c != 1 || m < super::MIN_MELS || t < super::MIN_FRAMES {
            return Err(Error::shape(
                "power_mel",
                format!("[N, 1, M >= {}, T >= {}]", super::MIN_MELS, super::MIN_FRAMES),
                format!("[{n}, {c}, {m}, {t}]"),
            ));
        }
        let block = |x: Tensor<4>, conv: usize, pool: bool| {
            let (weight, bias, stride) = &self.convs[conv];
            let y = conv2d(
                x,
                weight.clone(),
                Some(bias.clone()),
                ConvOptions::new([*stride, 1], [1, 1], [1, 1], 1),
            );
            relu_pooled(y, pool)
        };
        let x = match &self.fused {
            Some(fused) if fused.fits([n, c, m, t]) => fused.forward(&self.device, power_mel)?,
            _ => {
                let x = block(self.log_input(power_mel), 0, true);
                let x = block(x, 1, true);
                block(x, 2, false)
            }
        };
        let x = adaptive_avg_pool2d(x, [self.groups, 1]); // [N, C3, G, 1]
        let [_, c3, g, _] = x.dims();
        let logits = x.reshape([n, c3 * g]).matmul(self.fc_weight.clone()) + self.fc_bias.clone();
        Ok(softmax(logits, 1))
    }

    /// Plans the row versions for `n_mels` mel rows whose bands are `row_band` under `masks`.
    ///
    /// # Shapes
    /// `row_band` [M] (values < B <= 64), `masks` [N, B]
    pub fn plan(&self, n_mels: usize, row_band: &[u32], masks: ArrayView2<f32>) -> Result<RowPlan> {
        let (n, b) = masks.dim();
        check_shape("row_band", &[n_mels], &[row_band.len()])?;
        if b > 64 {
            return Err(Error::shape("masks", "[N, B <= 64]", format!("[{n}, {b}]")));
        }
        crate::perturb::check_row_band(row_band, b)?;
        let s1 = self.convs[0].2;
        let h1 = (n_mels - 1) / s1 + 1;
        let (h1p, h2p) = (h1 / 2, h1 / 4);
        if h2p == 0 {
            return Err(Error::shape("mel rows", "M >= 7", format!("M = {n_mels}")));
        }
        let bits = mask_bits(masks);
        // Level 0: mel row r kept is slot r, removed slot M + r, the zero row 2M.
        let input_deps: Vec<u64> = row_band.iter().map(|&r| 1u64 << r).collect();
        let input_slot = |r: isize, key: u64| -> i64 {
            match usize::try_from(r).ok().filter(|&r| r < n_mels) {
                Some(r) if key & input_deps[r] != 0 => r as i64,
                Some(r) => (n_mels + r) as i64,
                None => 2 * n_mels as i64,
            }
        };
        let dev = &self.device;
        let index = |v: Vec<i64>| {
            let len = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [len]), dev)
        };
        // Level 1: conv1 rows 2q and 2q + 1 (stride s1) and their pooling read input rows
        // 2q s1 - 1 ..= (2q + 1) s1 + 1.
        let (l1, jobs1) = Slots::new((0..h1p).map(|q| conv_deps(&input_deps, 2 * q, 2, s1)).collect(), &bits);
        let k1 = s1 + 3;
        let in1: Vec<i64> = jobs1
            .iter()
            .flat_map(|&(q, key)| (0..k1).map(move |d| ((2 * q * s1) as isize - 1 + d as isize, key)))
            .map(|(r, key)| input_slot(r, key))
            .collect();
        // Level 2: conv2 rows 2q and 2q + 1 read pooled rows 2q - 1 ..= 2q + 2.
        let (l2, jobs2) = Slots::new((0..h2p).map(|q| conv_deps(&l1.deps, 2 * q, 2, 1)).collect(), &bits);
        let in2: Vec<i64> = jobs2
            .iter()
            .flat_map(|&(q, key)| (0..4).map(move |d| ((2 * q) as isize - 1 + d, key)))
            .map(|(r, key)| l1.slot(r, key))
            .collect();
        // Level 3: conv3 row r reads pooled rows r - 1 ..= r + 1.
        let (l3, jobs3) = Slots::new((0..h2p).map(|r| conv_deps(&l2.deps, r, 1, 1)).collect(), &bits);
        let in3: Vec<i64> = jobs3
            .iter()
            .flat_map(|&(r, key)| (0..3).map(move |d| (r as isize - 1 + d, key)))
            .map(|(r, key)| l2.slot(r, key))
            .collect();
        let head: Vec<i64> = bits
            .iter()
            .flat_map(|&key| (0..h2p).map(move |r| (r, key)))
            .map(|(r, key)| l3.slot(r as isize, key))
            .collect();
        let classes = self.fc_bias.dims()[1];
        let c3 = self.fc_host.len() / (self.groups * classes);
        // The head's weights per row ([H3, C3, C]) as [C3, H3 C], for one matmul of every
        // version of conv3's rows.
        let per_row = head_per_row(&self.fc_host, self.groups, classes, h2p);
        let mut head_weight = vec![0.0f32; c3 * h2p * classes];
        for (r, row) in per_row.chunks(c3 * classes).enumerate() {
            for (o, w) in row.chunks(classes).enumerate() {
                head_weight[(o * h2p + r) * classes..][..classes].copy_from_slice(w);
            }
        }
        let head_cols: Vec<i64> = jobs3
            .iter()
            .map(|&(r, _)| r)
            .chain([0])
            .flat_map(|r| (0..classes).map(move |k| (r * classes + k) as i64))
            .collect();
        let fused = match &self.fused {
            Some(blocks) => {
                let ctx = blocks.context();
                let level = |inputs: &[i64], k| RowLevel::new(ctx, as_u32(inputs), k);
                let head = RowHead {
                    h3: h2p,
                    c3,
                    classes,
                    weight: per_row,
                    bias: self.bias_host.clone(),
                    version_row: jobs3.iter().map(|&(r, _)| r as u32).chain([0]).collect(),
                    head: as_u32(&head),
                };
                Some(FusedPlan {
                    levels: vec![level(&in1, k1)?, level(&in2, 4)?, level(&in3, 3)?],
                    head: GpuRowHead::new(ctx, head)?,
                })
            }
            None => None,
        };
        let level = |n_jobs, k, inputs| LevelPlan {
            n_jobs,
            k,
            inputs: index(inputs),
        };
        Ok(RowPlan {
            n_mels,
            n_samples: n,
            levels: [
                level(jobs1.len(), k1, in1),
                level(jobs2.len(), 4, in2),
                level(jobs3.len(), 3, in3),
            ],
            h3: h2p,
            head: index(head),
            head_weight: Tensor::from_data(TensorData::new(head_weight, [c3, h2p * classes]), dev),
            head_cols: Tensor::from_data(TensorData::new(head_cols, [jobs3.len() + 1, classes]), dev),
            fused,
        })
    }

    /// Class probabilities of `U` utterances (one number of frames `T`) under the plan's
    /// masks, from each one's kept and removed mel rows (power; removed rows hold the fill),
    /// every level of all utterances computed by one gather and one convolution; on a GPU
    /// emolime opened, the three levels and the head as one submission of the fused kernels
    /// ([`GpuConvBlocks::forward_rows_head`]) when their tensors fit one storage binding each.
    ///
    /// # Shapes
    /// `rows` [U, 2, M * T] (per utterance all kept, then all removed) -> [U * N, C]
    pub fn probs(&self, plan: &RowPlan, rows: Tensor<3>) -> Result<Tensor<2>> {
        let [u, two, mt] = rows.dims();
        let m = plan.n_mels;
        if u == 0 || two != 2 || mt % m != 0 || mt / m < 4 {
            return Err(Error::shape(
                "kept and removed rows",
                format!("[U >= 1, 2, {m} * T], T >= 4"),
                format!("[{u}, {two}, {mt}]"),
            ));
        }
        let t = mt / m;
        // Each utterance's rows; slot 2M, past them, is the zero row.
        let dims = [u, 2 * m, 1, t];
        if let (Some(blocks), Some(fused)) = (&self.fused, &plan.fused)
            && blocks.fits_rows(dims, &fused.levels, 2 * m)
            && fused.head.fits(u)
        {
            // The three levels and the head: one submission of five dispatches.
            return blocks.forward_rows_head(&self.device, rows.reshape(dims), &fused.levels, 2 * m, &fused.head);
        }
        let x = self.log_input(rows.reshape([u, 2 * m, t]));
        let below = Tensor::cat(vec![x, Tensor::zeros([u, 1, t], &self.device)], 1).reshape([u * (2 * m + 1), 1, t]);
        let l1 = self.level(below, u, &plan.levels[0], 0, true);
        let l2 = self.level(l1, u, &plan.levels[1], 1, true);
        let l3 = self.level(l2, u, &plan.levels[2], 2, false); // [U * (J3 + 1), C3, W3]
        let [v3, c3, w3] = l3.dims();
        let rows3 = l3.sum_dim(2).reshape([v3, c3]).div_scalar(w3 as f32);
        let (n, h3, classes) = (plan.n_samples, plan.h3, self.fc_bias.dims()[1]);
        // Each version's share of the logits through its own row's head weights, then each
        // sample's sum over its H3 versions: the pooling into groups and the linear layer on
        // C values per version and row instead of C3 per sample and row.
        let cols = if u == 1 {
            plan.head_cols.clone()
        } else {
            plan.head_cols.clone().repeat_dim(0, u)
        };
        let share = rows3.matmul(plan.head_weight.clone()).gather(1, cols); // [U * (J3 + 1), C]
        let logits = share
            .select(0, self.per_utterance(&plan.head, u, v3 / u))
            .reshape([u * n, h3, classes])
            .sum_dim(1)
            .reshape([u * n, classes])
            + self.fc_bias.clone();
        Ok(softmax(logits, 1))
    }

    /// `index` for each of `u` utterances whose rows are stacked `stride` apart.
    ///
    /// # Shapes
    /// `index` [L] -> [U * L]
    fn per_utterance(&self, index: &Tensor<1, Int>, u: usize, stride: usize) -> Tensor<1, Int> {
        if u == 1 {
            return index.clone();
        }
        let [len] = index.dims();
        let offsets = Tensor::<1, Int>::arange(0..u as i64, &self.device)
            .mul_scalar(stride as i64)
            .reshape([u, 1]);
        (offsets + index.clone().reshape([1, len])).reshape([u * len])
    }

    /// The row versions of one level for `u` utterances from the level below (each
    /// utterance's last row zero), with a zero row appended per utterance for the level above.
    ///
    /// # Shapes
    /// `below` [U * (V + 1), I, W] -> [U * (J + 1), O, W / 2] pooled, [U * (J + 1), O, W]
    /// otherwise
    fn level(&self, below: Tensor<3>, u: usize, plan: &LevelPlan, conv: usize, pool: bool) -> Tensor<3> {
        let [v, i, w] = below.dims();
        let (weight, bias, stride) = &self.convs[conv];
        let x = below
            .select(0, self.per_utterance(&plan.inputs, u, v / u))
            .reshape([u * plan.n_jobs, plan.k, i, w])
            .swap_dims(1, 2);
        let y = conv2d(
            x,
            weight.clone(),
            Some(bias.clone()),
            ConvOptions::new([*stride, 1], [0, 1], [1, 1], 1),
        );
        let y = relu_pooled(y, pool);
        let [_, o, _, w_out] = y.dims();
        let y = y.reshape([u, plan.n_jobs, o, w_out]);
        Tensor::cat(vec![y, Tensor::zeros([u, 1, o, w_out], &self.device)], 1).reshape([
            u * (plan.n_jobs + 1),
            o,
            w_out,
        ])
    }
}

/// ReLU, after 2x2 max pooling when `pool`: the same values as pooling after the ReLU (both
/// are monotone), with the ReLU's pass over a quarter of the values. The ReLU is a clamp to
/// `[0, inf]`: one element-wise kernel, where Burn's `relu` is two (a comparison into a mask,
/// then a masked fill).
///
/// # Shapes
/// `x` [N, O, H, W] -> [N, O, H / 2, W / 2] pooled, [N, O, H, W] otherwise
fn relu_pooled(x: Tensor<4>, pool: bool) -> Tensor<4> {
    let x = if pool {
        max_pool2d(x, MaxPoolOptions::new([2, 2]))
    } else {
        x
    };
    x.clamp(0.0, f32::INFINITY)
}

/// Index values that the plan built as `i64` (Burn's integer tensors), for the fused kernels'
/// `u32` tables.
fn as_u32(v: &[i64]) -> Vec<u32> {
    v.iter().map(|&x| x as u32).collect()
}
