//! The mel CNN's blocks as one fused kernel each (`shaders/conv_block.wgsl`): a 3x3 convolution
//! with its batch norm folded in, 2x2 max pooling or none, and ReLU, the first block reading
//! power through the log it needs; [`ConvBlock::cpu`] is its CPU twin and [`GpuConvBlocks`]
//! runs a chain of blocks on Burn tensors in one submission.
//!
//! Burn runs such a block as a direct convolution (one invocation per output value, every
//! index recomputed), a pooling pass and a ReLU pass, each through memory; the fused kernel
//! reads each input patch once per eight output channels and writes only the pooled values.

use crate::error::{Error, Result, check_shape};
use crate::gpu::GpuContext;
use crate::gpu::interop::{BoundTensor, submit_after_burn};
use crate::gpu::kernels::{CONV_BLOCK_CHANNELS, ConvBlockParams, fold_groups};
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

    /// The CPU twin of `conv_block.wgsl`: the block in plain Rust.
    ///
    /// # Shapes
    /// `input` [N, I, H, W] -> [N, O, Ho, Wo]
    pub fn cpu(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        self.validate()?;
        let (n, i, h, w) = input.dim();
        let [_, o, ho, wo] = self.out_dims([n, i, h, w])?;
        let read = |b: usize, c: usize, r: isize, col: isize| -> f32 {
            if r < 0 || col < 0 || r >= h as isize || col >= w as isize {
                return 0.0;
            }
            let v = input[[b, c, r as usize, col as usize]];
            match self.log_offset {
                Some(offset) => (v + POWER_FLOOR).ln() + offset,
                None => v,
            }
        };
        let conv = |b: usize, oc: usize, r: usize, col: usize| -> f32 {
            let mut acc = 0.0f32;
            for ic in 0..i {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let x = read(b, ic, (r * self.stride_h + ky) as isize - 1, (col + kx) as isize - 1);
                        acc += self.weight[((oc * i + ic) * 3 + ky) * 3 + kx] * x;
                    }
                }
            }
            acc
        };
        Ok(Array4::from_shape_fn((n, o, ho, wo), |(b, oc, r, col)| {
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
        }))
    }
}

/// A chain of [`ConvBlock`]s resident on a GPU, each block one dispatch of `conv_block.wgsl`
/// and the chain one submission.
pub struct GpuConvBlocks {
    ctx: GpuContext,
    blocks: Vec<(ConvBlock, wgpu::Buffer, wgpu::Buffer)>,
}

impl GpuConvBlocks {
    /// Uploads the blocks' weights. Each block's input channels must be the output channels
    /// of the block before.
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
        let blocks = blocks
            .into_iter()
            .map(|b| {
                let weight = ctx.upload("conv block weight", &b.weight);
                let bias = ctx.upload("conv block bias", &b.bias);
                (b, weight, bias)
            })
            .collect();
        Ok(GpuConvBlocks {
            ctx: ctx.clone(),
            blocks,
        })
    }

    /// The dimensions of every tensor the chain reads or writes for input `dims`, input first.
    fn all_dims(&self, dims: [usize; 4]) -> Result<Vec<[usize; 4]>> {
        let mut all = vec![dims];
        for (block, _, _) in &self.blocks {
            let next = block.out_dims(*all.last().unwrap_or(&dims))?;
            all.push(next);
        }
        Ok(all)
    }

    /// Whether every tensor of the chain for input `dims` fits one storage binding of the
    /// device and its grid fits the dispatch limits; [`Self::forward`] fails otherwise.
    pub fn fits(&self, dims: [usize; 4]) -> bool {
        let limit = self.ctx.max_binding_bytes();
        self.all_dims(dims).is_ok_and(|all| {
            all.iter().all(|d| (d.iter().product::<usize>() * 4) as u64 <= limit)
                && all[1..].iter().all(|&[n, _, h, w]| u32::try_from(n * h * w).is_ok())
        })
    }

    /// The chain's output for `input`, computed by one submission after Burn's pending work.
    ///
    /// # Shapes
    /// `input` [N, I, H, W] -> [N, O, Ho, Wo] of the last block
    pub fn forward(&self, device: &Device, input: Tensor<4>) -> Result<Tensor<4>> {
        let all = self.all_dims(input.dims())?;
        if !self.fits(all[0]) {
            return Err(Error::Device(format!(
                "the conv blocks' tensors for input {:?} exceed the device's {} bytes per binding",
                all[0],
                self.ctx.max_binding_bytes()
            )));
        }
        let mut below = BoundTensor::new(input)?;
        // Every tensor stays pinned until the commands that use it are submitted.
        let mut pinned = Vec::with_capacity(self.blocks.len());
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        for ((block, weight, bias), (&[n, i, h, w], &[_, o, ho, wo])) in
            self.blocks.iter().zip(all.iter().zip(&all[1..]))
        {
            let out = BoundTensor::empty([n, o, ho, wo], device)?;
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
                    pool: block.pool as u32,
                    log_input: block.log_offset.is_some() as u32,
                    log_offset: block.log_offset.unwrap_or(0.0),
                    _pad: 0,
                },
            );
            let tiles = if block.pool {
                ho * wo
            } else {
                ho.div_ceil(2) * wo.div_ceil(2)
            };
            let [gx, gy, _] = fold_groups((n * tiles).div_ceil(64));
            let grid = [gx, gy, o.div_ceil(CONV_BLOCK_CHANNELS) as u32];
            self.ctx.kernels.conv_block.dispatch(
                &self.ctx,
                &mut enc,
                &[
                    params.as_entire_binding(),
                    below.binding(),
                    weight.as_entire_binding(),
                    bias.as_entire_binding(),
                    out.binding(),
                ],
                grid,
            )?;
            pinned.push(std::mem::replace(&mut below, out));
        }
        submit_after_burn(device, &self.ctx.queue, enc)?;
        drop(pinned);
        Ok(below.into_tensor())
    }
}
