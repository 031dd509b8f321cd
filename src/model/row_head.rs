//! The row-cached CNN's head as two kernels, `row_head_share.wgsl` (each version of conv3's
//! rows times its own row's head weights: C logits' worth per version) and
//! `row_head_softmax.wgsl` (each sample's bias plus its H3 versions' shares, through a
//! softmax); [`RowHead::cpu`] is their CPU twin and [`GpuRowHead`] records them after the
//! fused blocks of `conv_block.wgsl`, in the same submission.
//!
//! Through Burn's operations the same head is a mean over columns, a matmul, a gather of
//! each version's own row's columns, a select of each sample's versions, a sum, the bias
//! and a softmax: a dozen launches and kernels compiled per process for a few kilobytes of
//! values, which on a GPU costs more than the arithmetic.

use super::cnn_rows::{add_row_share, softmax_in_place};
use crate::error::{Error, Result, check_shape};
use crate::gpu::GpuContext;
use crate::gpu::interop::BoundTensor;
use crate::gpu::kernels::{KernelId, RowHeadParams, fold_groups};
use burn::tensor::Device;
use ndarray::{Array2, ArrayView3};

/// The head of the row-cached forward for one plan: each version's row, each sample's
/// versions, and the weights per row.
#[derive(Clone, Debug)]
pub struct RowHead {
    /// Rows of conv3 `H3`.
    pub h3: usize,
    /// Channels of conv3 `C3`.
    pub c3: usize,
    /// Classes `C`.
    pub classes: usize,
    /// The head's weights per row ([`super::cnn_rows::head_per_row`]). // [H3, C3, C]
    pub weight: Vec<f32>,
    /// The linear layer's bias. // [C]
    pub bias: Vec<f32>,
    /// The conv3 row of each of an utterance's `V` versions (any row for the zero row, whose
    /// values are zero). // [V]
    pub version_row: Vec<u32>,
    /// For each sample and row of conv3, the version it reads (< V). // [N * H3]
    pub head: Vec<u32>,
}

impl RowHead {
    /// Checks the lengths against `H3`, `C3` and `C`, and every row and version in range.
    pub fn validate(&self) -> Result<()> {
        let (h3, c3, c) = (self.h3, self.c3, self.classes);
        if h3 == 0 || c3 == 0 || c == 0 || self.version_row.is_empty() {
            return Err(Error::config(
                "row head",
                format!(
                    "rows, channels, classes and versions must be positive, got H3 {h3}, C3 {c3}, C {c}, V {}",
                    self.version_row.len()
                ),
            ));
        }
        check_shape("row head weight", &[h3 * c3 * c], &[self.weight.len()])?;
        check_shape("row head bias", &[c], &[self.bias.len()])?;
        if !self.head.len().is_multiple_of(h3) {
            return Err(Error::shape(
                "row head versions",
                format!("[N * {h3}]"),
                format!("{} values", self.head.len()),
            ));
        }
        if let Some(&bad) = self.version_row.iter().find(|&&r| r as usize >= h3) {
            return Err(Error::shape(
                "row head version row",
                format!("rows below {h3}"),
                format!("row {bad}"),
            ));
        }
        let v = self.version_row.len();
        if let Some(&bad) = self.head.iter().find(|&&s| s as usize >= v) {
            return Err(Error::shape(
                "row head sample version",
                format!("versions below {v}"),
                format!("version {bad}"),
            ));
        }
        Ok(())
    }

    /// Versions per utterance `V`.
    pub fn n_versions(&self) -> usize {
        self.version_row.len()
    }

    /// Samples per utterance `N`.
    pub fn n_samples(&self) -> usize {
        self.head.len() / self.h3.max(1)
    }

    /// Utterances of `dims` (`[U * V, C3, W3]`), checked.
    fn utterances(&self, dims: [usize; 3]) -> Result<usize> {
        let [uv, c3, w3] = dims;
        let v = self.n_versions();
        if uv == 0 || !uv.is_multiple_of(v) || c3 != self.c3 || w3 == 0 {
            return Err(Error::shape(
                "row head input",
                format!("[U * {v}, {}, W3 >= 1]", self.c3),
                format!("{dims:?}"),
            ));
        }
        Ok(uv / v)
    }

    /// The CPU twin of `row_head_share.wgsl` and `row_head_softmax.wgsl`: the class
    /// probabilities of every sample of `U` utterances from their versions of conv3's rows.
    ///
    /// # Shapes
    /// `rows` [U * V, C3, W3] -> [U * N, C]
    pub fn cpu(&self, rows: ArrayView3<f32>) -> Result<Array2<f32>> {
        self.validate()?;
        let u = self.utterances(rows.dim().into())?;
        let (v, n, h3, c3, c) = (self.n_versions(), self.n_samples(), self.h3, self.c3, self.classes);
        let w3 = rows.dim().2;
        let rows = rows.as_standard_layout();
        let values = rows.as_slice().expect("a standard-layout array");
        let mut share = vec![0.0f32; u * v * c];
        for ((version, out), version_values) in share.chunks_mut(c).enumerate().zip(values.chunks(c3 * w3)) {
            let row = self.version_row[version % v] as usize;
            add_row_share(version_values, w3, &self.weight[row * c3 * c..][..c3 * c], out);
        }
        let mut probs = Array2::<f32>::zeros((u * n, c));
        for (s, mut p) in probs.rows_mut().into_iter().enumerate() {
            let logits = p.as_slice_mut().expect("a row of a standard-layout array");
            let first = (s / n) * v;
            logits.copy_from_slice(&self.bias);
            for &version in &self.head[(s % n) * h3..][..h3] {
                let sh = &share[(first + version as usize) * c..][..c];
                logits.iter_mut().zip(sh).for_each(|(l, s)| *l += s);
            }
            softmax_in_place(logits);
        }
        Ok(probs)
    }
}

/// A [`RowHead`] resident on a GPU: its tables and weights uploaded once per plan.
pub struct GpuRowHead {
    ctx: GpuContext,
    host: RowHead,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    version_row: wgpu::Buffer,
    head: wgpu::Buffer,
}

impl GpuRowHead {
    /// Validates `head`, uploads it and compiles the two kernels.
    pub fn new(ctx: &GpuContext, head: RowHead) -> Result<Self> {
        head.validate()?;
        ctx.kernels.get(KernelId::RowHeadShare)?;
        ctx.kernels.get(KernelId::RowHeadSoftmax)?;
        Ok(GpuRowHead {
            ctx: ctx.clone(),
            weight: ctx.upload("row head weight", &head.weight),
            bias: ctx.upload("row head bias", &head.bias),
            version_row: ctx.upload("row head version rows", &head.version_row),
            head: ctx.upload("row head sample versions", &head.head),
            host: head,
        })
    }

    /// The head on the host.
    pub fn host(&self) -> &RowHead {
        &self.host
    }

    /// Whether the head's tensors for `u` utterances fit one storage binding each and its
    /// grids the dispatch limits.
    pub fn fits(&self, u: usize) -> bool {
        let limit = self.ctx.max_binding_bytes();
        let (v, n, c) = (self.host.n_versions(), self.host.n_samples(), self.host.classes);
        let largest = (u * v.max(n) * c) as u64 * 4;
        largest <= limit && u32::try_from(u * v.max(n) * c).is_ok()
    }

    /// Records both kernels into `enc` on `rows`, the versions of conv3's rows; returns the
    /// probabilities and the shares, to stay pinned until `enc` is submitted.
    ///
    /// # Shapes
    /// `rows` [U * V, C3, 1, W3] -> `[U * N, C]` (and the shares `[U * V, C]`)
    pub fn record(
        &self,
        device: &Device,
        enc: &mut wgpu::CommandEncoder,
        rows: &BoundTensor<4>,
        dims: [usize; 4],
    ) -> Result<(BoundTensor<2>, BoundTensor<2>)> {
        let [uv, c3, one, w3] = dims;
        if one != 1 {
            return Err(Error::shape(
                "row head input",
                "[U * V, C3, 1, W3]",
                format!("{dims:?}"),
            ));
        }
        let u = self.host.utterances([uv, c3, w3])?;
        if !self.fits(u) {
            return Err(Error::Device(format!(
                "the row head's tensors for {u} utterances exceed the device's {} bytes per binding",
                self.ctx.max_binding_bytes()
            )));
        }
        let h = &self.host;
        let (v, n, c) = (h.n_versions(), h.n_samples(), h.classes);
        let params = self.ctx.uniform(
            "row head params",
            &RowHeadParams {
                n_utts: u as u32,
                n_samples: n as u32,
                n_versions: v as u32,
                h3: h.h3 as u32,
                c3: c3 as u32,
                w3: w3 as u32,
                classes: c as u32,
                _pad: 0,
            },
        );
        let share = BoundTensor::empty([u * v, c], device)?;
        let probs = BoundTensor::empty([u * n, c], device)?;
        let kernels = &self.ctx.kernels;
        kernels.get(KernelId::RowHeadShare)?.dispatch(
            &self.ctx,
            enc,
            &[
                params.as_entire_binding(),
                rows.binding(),
                self.weight.as_entire_binding(),
                self.version_row.as_entire_binding(),
                share.binding(),
            ],
            fold_groups((u * v * c).div_ceil(64)),
        )?;
        kernels.get(KernelId::RowHeadSoftmax)?.dispatch(
            &self.ctx,
            enc,
            &[
                params.as_entire_binding(),
                share.binding(),
                self.head.as_entire_binding(),
                self.bias.as_entire_binding(),
                probs.binding(),
            ],
            fold_groups((u * n).div_ceil(64)),
        )?;
        Ok((probs, share))
    }

    /// The head alone, in one submission after Burn's pending work.
    ///
    /// # Shapes
    /// `rows` [U * V, C3, 1, W3] -> [U * N, C]
    pub fn forward(&self, device: &Device, rows: burn::tensor::Tensor<4>) -> Result<burn::tensor::Tensor<2>> {
        let dims = rows.dims();
        let rows = BoundTensor::new(rows)?;
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        let (probs, share) = self.record(device, &mut enc, &rows, dims)?;
        crate::gpu::interop::submit_after_burn(device, &self.ctx.queue, enc)?;
        drop((rows, share));
        Ok(probs.into_tensor())
    }
}
