//! The mel CNN's blocks as one fused kernel each (`shaders/conv_block.wgsl`): a 3x3 convolution
//! with its batch norm folded in, 2x2 max pooling or none, and ReLU, the first block reading
//! power through the log it needs; [`ConvBlock::cpu`] (whole inputs) and [`ConvBlock::cpu_rows`]
//! (the row versions of the row-cached forward) are its CPU twins, and [`GpuConvBlocks`] runs
//! a chain of blocks on Burn tensors in one submission.
//!
//! Burn runs such a block as a direct convolution (one invocation per output value, every
//! index recomputed), a pooling pass and a ReLU pass, each through memory; the fused kernel
//! reads each input patch once per eight output channels and writes only the pooled values.

use super::row_head::GpuRowHead;
use crate::error::{Error, Result, check_shape};
use crate::gpu::GpuContext;
use crate::gpu::interop::{BoundTensor, submit_after_burn};
use crate::gpu::kernels::{CONV_BLOCK_CHANNELS, ConvBlockParams, KernelId, fold_groups};
use burn::tensor::{Device, Tensor};
use ndarray::{Array4, ArrayView4};

/// The `1e-10` added to power before its log, as in the network's decibel front end.
const POWER_FLOOR: f32 = 1e-10;

/// One block: weights with the batch norm folded in, and what follows the convolution.
#[derive(Clone, Debug)]
pub struct ConvBlock {
    /// Input channels `I`.
    pub in_ch: usize,
    /// Output channels `O`.
    pub out_ch: usize,
    /// Stride over rows (frequency); 1 over columns (time). Padding is 1 on every side.
    pub stride_h: usize,
    /// 2x2 max pooling (floor) after the convolution.
    pub pool: bool,
    /// When set, the input is power and the convolution reads `ln(power + 1e-10) + offset`
    /// (padding stays zero).
    pub log_offset: Option<f32>,
    /// `[O, I, 3, 3]` (rows over frequency, columns over time).
    pub weight: Vec<f32>,
    /// `[O]`.
    pub bias: Vec<f32>,
}

impl ConvBlock {
    /// The pipeline of `conv_block.wgsl` that computes this block.
    fn kernel(&self) -> KernelId {
        if self.pool {
            KernelId::ConvBlockPool
        } else {
            KernelId::ConvBlock
        }
    }

    /// The weights as `conv_block.wgsl` reads them: `[I, 9, O8]`, tap by tap with the output
    /// channels innermost, `O8` the output channels rounded up to a multiple of
    /// [`CONV_BLOCK_CHANNELS`] (the extra ones zero), so that an invocation loads a tap's
    /// weights for its 8 channels as two `vec4`s.
    fn weight_by_tap(&self) -> Vec<f32> {
        let (o, i) = (self.out_ch, self.in_ch);
        let o8 = o.div_ceil(CONV_BLOCK_CHANNELS) * CONV_BLOCK_CHANNELS;
        let mut out = vec![0.0; i * 9 * o8];
        for oc in 0..o {
            for ic in 0..i {
                for tap in 0..9 {
                    out[(ic * 9 + tap) * o8 + oc] = self.weight[(oc * i + ic) * 9 + tap];
                }
            }
        }
        out
    }

    /// Checks the weights' lengths against the channel counts, and the stride.
    pub fn validate(&self) -> Result<()> {
        if self.weight.len() != self.out_ch * self.in_ch * 9 {
            return Err(Error::shape(
                "conv block weight",
                format!("[{}, {}, 3, 3]", self.out_ch, self.in_ch),
                format!("{} values", self.weight.len()),
            ));
        }
        check_shape("conv block bias", &[self.out_ch], &[self.bias.len()])?;
        if self.in_ch == 0 || self.out_ch == 0 || self.stride_h == 0 {
            return Err(Error::config(
                "conv block",
                format!(
                    "channels and stride must be positive, got {} -> {} channels, stride {}",
                    self.in_ch, self.out_ch, self.stride_h
                ),
            ));
        }
        Ok(())
    }

    /// The output's rows and columns for an input of `in_h` x `in_w`, or `None` when the
    /// input is too small to give one.
    pub fn out_hw(&self, in_h: usize, in_w: usize) -> Option<[usize; 2]> {
        if in_h == 0 || in_w == 0 {
            return None;
        }
        let conv_h = (in_h - 1) / self.stride_h + 1;
        let hw = if self.pool {
            [conv_h / 2, in_w / 2]
        } else {
            [conv_h, in_w]
        };
        (hw[0] > 0 && hw[1] > 0).then_some(hw)
    }

    /// The output dimensions for `input` dimensions, checked.
    ///
    /// # Shapes
    /// `[N, I, H, W]` -> `[N, O, Ho, Wo]`
    fn out_dims(&self, dims: [usize; 4]) -> Result<[usize; 4]> {
        let [n, i, h, w] = dims;
        match self.out_hw(h, w) {
            Some([ho, wo]) if i == self.in_ch => Ok([n, self.out_ch, ho, wo]),
            _ => Err(Error::shape(
                "conv block input",
                format!(
                    "[N, {}, H, W] with H, W large enough for one output{}",
                    self.in_ch,
                    if self.pool { " after 2x2 pooling" } else { "" }
                ),
                format!("{dims:?}"),
            )),
        }
    }

    /// The CPU twin of `conv_block.wgsl` on whole inputs: the block in plain Rust.
    ///
    /// # Shapes
    /// `input` [N, I, H, W] -> [N, O, Ho, Wo]
    pub fn cpu(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.validate()?;
        let (n, i, h, w) = input.dim();
        let [_, _, ho, wo] = self.out_dims([n, i, h, w])?;
        let read = |b: usize, c: usize, r: isize, col: isize| -> f32 {
            if r < 0 || col < 0 || r >= h as isize || col >= w as isize {
                return 0.0;
            }
            self.log_input(input[[b, c, r as usize, col as usize]])
        };
        Ok(self.apply([n, ho, wo], 1, read))
    }

    /// The CPU twin of `conv_block.wgsl` on row versions: job `j` of utterance `u` convolves,
    /// without padding over rows, the `K` rows `index[j K + d]` of `below[u]` (slot
    /// `zero_slot` reads as zeros) into one output row; each utterance's job `J` is a row of
    /// zeros.
    ///
    /// # Shapes
    /// `below` [U, S, I, W], `index` [J * K] -> [U * (J + 1), O, 1, Wo]
    pub fn cpu_rows(&self, below: ArrayView4<f32>, index: &[u32], k: usize, zero_slot: usize) -> Result<Array4<f32>> {
        self.validate()?;
        let (u, s, i, w) = below.dim();
        let [_, _, _, wo] = self.rows_out_dims([u, s, i, w], index, k, zero_slot)?;
        let jobs = index.len() / k;
        let read = |b: usize, c: usize, d: isize, col: isize| -> f32 {
            let slot = index[(b % (jobs + 1)) * k + d as usize] as usize;
            if col < 0 || col >= w as isize || slot == zero_slot {
                return 0.0;
            }
            self.log_input(below[[b / (jobs + 1), slot, c, col as usize]])
        };
        let mut out = self.apply([u * (jobs + 1), 1, wo], 0, |b, c, d, col| {
            if b % (jobs + 1) == jobs {
                0.0
            } else {
                read(b, c, d, col)
            }
        });
        for utt in 0..u {
            out.index_axis_mut(ndarray::Axis(0), utt * (jobs + 1) + jobs).fill(0.0);
        }
        Ok(out)
    }

    /// `v` as the convolution reads it: through the log when the block reads power.
    fn log_input(&self, v: f32) -> f32 {
        match self.log_offset {
            Some(offset) => (v + POWER_FLOOR).ln() + offset,
            None => v,
        }
    }

    /// The block's outputs `[N, O, Ho, Wo]` where `read(n, ic, row, col)` gives the input
    /// (rows counted from the top of the padding, `pad_h` rows of it).
    fn apply(
        &self,
        [n, ho, wo]: [usize; 3],
        pad_h: isize,
        read: impl Fn(usize, usize, isize, isize) -> f32,
    ) -> Array4<f32> {
        let i = self.in_ch;
        let conv = |b: usize, oc: usize, r: usize, col: usize| -> f32 {
            let mut acc = 0.0f32;
            for ic in 0..i {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let x = read(
                            b,
                            ic,
                            (r * self.stride_h + ky) as isize - pad_h,
                            (col + kx) as isize - 1,
                        );
                        acc += self.weight[((oc * i + ic) * 3 + ky) * 3 + kx] * x;
                    }
                }
            }
            acc
        };
        Array4::from_shape_fn((n, self.out_ch, ho, wo), |(b, oc, r, col)| {
            let v = if self.pool {
                let (r, col) = (2 * r, 2 * col);
                conv(b, oc, r, col)
                    .max(conv(b, oc, r, col + 1))
                    .max(conv(b, oc, r + 1, col))
                    .max(conv(b, oc, r + 1, col + 1))
            } else {
                conv(b, oc, r, col)
            };
            (v + self.bias[oc]).max(0.0)
        })
    }

    /// The output dimensions for row versions, checked: `K` rows must give exactly one output
    /// row, and every index must be a slot of `below` or `zero_slot`.
    ///
    /// # Shapes
    /// `[U, S, I, W]`, `index` [J * K] -> `[U * (J + 1), O, 1, Wo]`
    fn rows_out_dims(&self, dims: [usize; 4], index: &[u32], k: usize, zero_slot: usize) -> Result<[usize; 4]> {
        let [u, s, i, w] = dims;
        let conv_rows = k.checked_sub(3).map(|r| r / self.stride_h + 1);
        let one_row = conv_rows == Some(if self.pool { 2 } else { 1 });
        if !one_row || !index.len().is_multiple_of(k.max(1)) || i != self.in_ch || w < 2 {
            return Err(Error::shape(
                "conv block row versions",
                format!(
                    "below [U, S, {}, W >= 2], index [J * K] with K rows giving one output row",
                    self.in_ch
                ),
                format!("below {dims:?}, index of {} values, K = {k}", index.len()),
            ));
        }
        if let Some(&bad) = index.iter().find(|&&v| v as usize >= s && v as usize != zero_slot) {
            return Err(Error::shape(
                "conv block row index",
                format!("slots below {s} or the zero slot {zero_slot}"),
                format!("slot {bad}"),
            ));
        }
        let wo = if self.pool { w / 2 } else { w };
        Ok([u * (index.len() / k + 1), self.out_ch, 1, wo])
    }
}

/// One level of row versions on the GPU: which rows each job reads (see
/// [`ConvBlock::cpu_rows`]).
pub struct RowLevel {
    index: wgpu::Buffer,
    /// The index on the host, for the shape checks.
    host: Vec<u32>,
    k: usize,
}

impl RowLevel {
    /// Uploads the index of `index.len() / k` jobs of `k` rows each.
    ///
    /// # Shapes
    /// `index` [J * K]
    pub fn new(ctx: &GpuContext, index: Vec<u32>, k: usize) -> Result<Self> {
        if k == 0 || !index.len().is_multiple_of(k) {
            return Err(Error::shape(
                "row level index",
                format!("[J * {k}]"),
                format!("{} values", index.len()),
            ));
        }
        Ok(RowLevel {
            index: ctx.upload("row level index", &index),
            host: index,
            k,
        })
    }

    /// Jobs `J`.
    fn jobs(&self) -> usize {
        self.host.len() / self.k
    }
}

/// A chain of [`ConvBlock`]s resident on a GPU, each block one dispatch of `conv_block.wgsl`
/// and the chain one submission.
pub struct GpuConvBlocks {
    ctx: GpuContext,
    blocks: Vec<(ConvBlock, wgpu::Buffer, wgpu::Buffer)>,
    /// Bound as the index on whole inputs, which read none.
    no_index: wgpu::Buffer,
}

/// The geometry of one dispatch: input `[N, I, H, W]` (row versions: `[U, S, I, W]`), output
/// `[N', O, Ho, Wo]`, and for row versions the rows per job, jobs and zero slot.
#[derive(Clone, Copy)]
struct Step {
    input: [usize; 4],
    output: [usize; 4],
    rows: Option<(usize, usize, usize)>,
}

impl GpuConvBlocks {
    /// Uploads the blocks' weights and compiles the kernels they need. Each block's input
    /// channels must be the output channels of the block before.
    pub fn new(ctx: &GpuContext, blocks: Vec<ConvBlock>) -> Result<Self> {
        if blocks.is_empty() {
            return Err(Error::config("conv blocks", "a chain needs at least one block"));
        }
        for (k, b) in blocks.iter().enumerate() {
            b.validate()?;
            if k > 0 && blocks[k - 1].out_ch != b.in_ch {
                return Err(Error::shape(
                    "conv block chain",
                    format!("block {k} reading {} channels", blocks[k - 1].out_ch),
                    format!("{} channels", b.in_ch),
                ));
            }
        }
        for b in &blocks {
            ctx.kernels.get(b.kernel())?;
        }
        let blocks = blocks
            .into_iter()
            .map(|b| {
                let weight = ctx.upload("conv block weight", &b.weight_by_tap());
                let bias = ctx.upload("conv block bias", &b.bias);
                (b, weight, bias)
            })
            .collect();
        Ok(GpuConvBlocks {
            ctx: ctx.clone(),
            blocks,
            no_index: ctx.upload("conv block no index", &[0u32]),
        })
    }

    /// The device the blocks live on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The chain's steps for whole inputs of `dims`.
    fn steps(&self, dims: [usize; 4]) -> Result<Vec<Step>> {
        let mut input = dims;
        let mut steps = Vec::with_capacity(self.blocks.len());
        for (block, _, _) in &self.blocks {
            let output = block.out_dims(input)?;
            steps.push(Step {
                input,
                output,
                rows: None,
            });
            input = output;
        }
        Ok(steps)
    }

    /// The chain's steps on row versions: `levels[l]` feeds block `l`, the first reading
    /// `below` of `dims` with `zero_slot` as its zero row, each later one the level before
    /// (whose job `J` is its zero row).
    fn row_steps(&self, dims: [usize; 4], levels: &[RowLevel], zero_slot: usize) -> Result<Vec<Step>> {
        if levels.len() != self.blocks.len() {
            return Err(Error::shape(
                "row levels",
                format!("{} levels", self.blocks.len()),
                format!("{} levels", levels.len()),
            ));
        }
        let (mut input, mut zero) = (dims, zero_slot);
        let mut steps = Vec::with_capacity(levels.len());
        for ((block, _, _), level) in self.blocks.iter().zip(levels) {
            let [n, o, _, wo] = block.rows_out_dims(input, &level.host, level.k, zero)?;
            steps.push(Step {
                input,
                output: [n, o, 1, wo],
                rows: Some((level.k, level.jobs(), zero)),
            });
            // The next level sees each utterance's J + 1 rows, the last one zero.
            input = [input[0], level.jobs() + 1, o, wo];
            zero = level.jobs();
        }
        Ok(steps)
    }

    /// Whether every tensor of `steps` fits one storage binding and their grids the
    /// dispatch limits.
    fn steps_fit(&self, steps: &[Step]) -> bool {
        let limit = self.ctx.max_binding_bytes();
        let bytes = |d: &[usize; 4]| (d.iter().product::<usize>() * 4) as u64;
        steps.iter().all(|s| {
            let [n, _, h, w] = s.output;
            bytes(&s.input) <= limit && bytes(&s.output) <= limit && u32::try_from(n * h * w).is_ok()
        })
    }

    /// Whether the chain's tensors for whole inputs of `dims` fit one storage binding of the
    /// device each and its grids the dispatch limits; [`Self::forward`] fails otherwise.
    pub fn fits(&self, dims: [usize; 4]) -> bool {
        self.steps(dims).is_ok_and(|steps| self.steps_fit(&steps))
    }

    /// The same for row versions ([`Self::forward_rows`]).
    pub fn fits_rows(&self, dims: [usize; 4], levels: &[RowLevel], zero_slot: usize) -> bool {
        self.row_steps(dims, levels, zero_slot)
            .is_ok_and(|steps| self.steps_fit(&steps))
    }

    /// The chain's output for whole inputs, computed by one submission after Burn's pending
    /// work.
    ///
    /// # Shapes
    /// `input` [N, I, H, W] -> [N, O, Ho, Wo] of the last block
    pub fn forward(&self, device: &Device, input: Tensor<4>) -> Result<Tensor<4>> {
        let steps = self.steps(input.dims())?;
        self.run(device, input, &steps, None)
    }

    /// The chain on row versions (the row-cached forward's levels, each utterance's rows
    /// stacked), computed by one submission after Burn's pending work: block `l` computes the
    /// jobs of `levels[l]` ([`ConvBlock::cpu_rows`] is its twin), the first reading `below`
    /// with `zero_slot` as its zero row, each later one the rows of the level before.
    ///
    /// # Shapes
    /// `below` [U, S, I, W] -> [U * (J + 1), O, 1, Wo] of the last level
    pub fn forward_rows(
        &self,
        device: &Device,
        below: Tensor<4>,
        levels: &[RowLevel],
        zero_slot: usize,
    ) -> Result<Tensor<4>> {
        let steps = self.row_steps(below.dims(), levels, zero_slot)?;
        self.run(device, below, &steps, Some(levels))
    }

    /// The chain on row versions as [`Self::forward_rows`], then `head` on the last level's
    /// versions ([`GpuRowHead::record`]), all in one submission after Burn's pending work.
    ///
    /// # Shapes
    /// `below` [U, S, I, W] -> [U * N, C]
    pub fn forward_rows_head(
        &self,
        device: &Device,
        below: Tensor<4>,
        levels: &[RowLevel],
        zero_slot: usize,
        head: &GpuRowHead,
    ) -> Result<Tensor<2>> {
        let steps = self.row_steps(below.dims(), levels, zero_slot)?;
        let last = steps.last().map_or([0; 4], |s| s.output);
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        let (rows, pinned) = self.record(device, &mut enc, below, &steps, Some(levels))?;
        let (probs, share) = head.record(device, &mut enc, &rows, last)?;
        submit_after_burn(device, &self.ctx.queue, enc)?;
        drop((pinned, rows, share));
        Ok(probs.into_tensor())
    }

    /// Records and submits the dispatches of `steps`.
    fn run(&self, device: &Device, input: Tensor<4>, steps: &[Step], levels: Option<&[RowLevel]>) -> Result<Tensor<4>> {
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        let (out, pinned) = self.record(device, &mut enc, input, steps, levels)?;
        submit_after_burn(device, &self.ctx.queue, enc)?;
        drop(pinned);
        Ok(out.into_tensor())
    }

    /// Records the dispatches of `steps` into `enc`; returns the last block's output and the
    /// tensors that must stay pinned until `enc` is submitted.
    fn record(
        &self,
        device: &Device,
        enc: &mut wgpu::CommandEncoder,
        input: Tensor<4>,
        steps: &[Step],
        levels: Option<&[RowLevel]>,
    ) -> Result<(BoundTensor<4>, Vec<BoundTensor<4>>)> {
        if !self.steps_fit(steps) {
            return Err(Error::Device(format!(
                "the conv blocks' tensors for input {:?} exceed the device's {} bytes per binding",
                steps.first().map(|s| s.input),
                self.ctx.max_binding_bytes()
            )));
        }
        let mut below = BoundTensor::new(input)?;
        // Every tensor stays pinned until the commands that use it are submitted.
        let mut pinned = Vec::with_capacity(steps.len());
        for (l, ((block, weight, bias), step)) in self.blocks.iter().zip(steps).enumerate() {
            let [_, s_or_i, i_or_h, w] = step.input;
            let (i, h) = match step.rows {
                Some((k, _, _)) => (i_or_h, k),
                None => (s_or_i, i_or_h),
            };
            let [n, o, ho, wo] = step.output;
            let (k_rows, n_jobs, zero_slot) = step.rows.unwrap_or((0, 0, 0));
            let out = BoundTensor::empty(step.output, device)?;
            let params = self.ctx.uniform(
                "conv block params",
                &ConvBlockParams {
                    n: n as u32,
                    in_ch: i as u32,
                    out_ch: o as u32,
                    in_h: h as u32,
                    in_w: w as u32,
                    out_h: ho as u32,
                    out_w: wo as u32,
                    stride_h: block.stride_h as u32,
                    log_input: block.log_offset.is_some() as u32,
                    log_offset: block.log_offset.unwrap_or(0.0),
                    k_rows: k_rows as u32,
                    n_jobs: n_jobs as u32,
                    slot_stride: s_or_i as u32,
                    zero_slot: zero_slot as u32,
                    _pad: [0; 2],
                },
            );
            let tiles = if block.pool { ho * wo } else { ho * wo.div_ceil(4) };
            let [gx, gy, _] = fold_groups((n * tiles).div_ceil(64));
            let grid = [gx, gy, o.div_ceil(CONV_BLOCK_CHANNELS) as u32];
            let index = match levels {
                Some(levels) => &levels[l].index,
                None => &self.no_index,
            };
            let kernel = self.ctx.kernels.get(block.kernel())?;
            kernel.dispatch(
                &self.ctx,
                enc,
                &[
                    params.as_entire_binding(),
                    below.binding(),
                    weight.as_entire_binding(),
                    bias.as_entire_binding(),
                    index.as_entire_binding(),
                    out.binding(),
                ],
                grid,
            )?;
            pinned.push(std::mem::replace(&mut below, out));
        }
        Ok((below, pinned))
    }
}
