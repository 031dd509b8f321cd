//! Typed launches of the kernels: the GPU twins of `MelFilterbank::apply`, `perturb::row_means`,
//! `perturb::perturb_cpu` and `surrogate::fit_cpu`.

use super::kernels::{KernelId, MelParams, PerturbParams, ResynthParams, RowMeanParams, SurrogateParams, groups};
use super::{GpuContext, GrowBuffer};
use crate::audio::MelFilterbank;
use crate::error::{Error, Result, check_shape};
use crate::perturb::FillMode;
use crate::surrogate::{SurrogateConfig, SurrogateDesign, SurrogateFit, check_fit_inputs, packed_len, r2_parts};
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// Largest classes and bands the surrogate kernel handles.
pub const MAX_SURROGATE_DIM: usize = 64;

/// Bytes of power spectrograms [`GpuMel::encode`] is asked to stack at most (see
/// [`GpuMel::stack_len`]): about 260 utterances of 2 s at the default front end (2048-point FFT,
/// hop 512), while a group of long utterances does not grow the buffers without bound.
pub const MAX_STACKED_POWER_BYTES: u64 = 64 << 20;

/// The mel filterbank resident on the GPU, with reusable input/output buffers.
pub struct GpuMel {
    weights: wgpu::Buffer,
    bounds: wgpu::Buffer,
    n_mels: usize,
    n_bins: usize,
    power: GrowBuffer,
    mel: GrowBuffer,
    means: GrowBuffer,
}

impl GpuMel {
    /// Uploads the filterbank once.
    pub fn new(ctx: &GpuContext, fb: &MelFilterbank) -> Self {
        let w = fb.weights();
        let (m, k) = w.dim();
        let mut bounds = Vec::with_capacity(2 * m);
        for row in w.rows() {
            let lo = row.iter().position(|&v| v != 0.0).unwrap_or(0);
            let hi = row.iter().rposition(|&v| v != 0.0).map_or(0, |i| i + 1);
            bounds.extend([lo as u32, hi.max(lo) as u32]);
        }
        let flat: Vec<f32> = w.iter().copied().collect();
        GpuMel {
            weights: ctx.upload("mel weights", &flat),
            bounds: ctx.upload("mel bounds", &bounds),
            n_mels: m,
            n_bins: k,
            power: GrowBuffer::new("power"),
            mel: GrowBuffer::new("mel"),
            means: GrowBuffer::new("row means"),
        }
    }

    /// Computes the power mel spectrogram and its row means on the GPU; the results stay there.
    ///
    /// # Shapes
    /// `power` [K, T] -> (`mel` buffer [M, T], `means` buffer [M])
    pub fn run(&mut self, ctx: &GpuContext, power: ArrayView2<f32>) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let buffers = self.encode(ctx, &mut enc, &[power])?;
        ctx.queue.submit([enc.finish()]);
        Ok(buffers)
    }

    /// How many utterances of `n_frames` frames one [`Self::encode`] stacks at most: as many as
    /// fit in [`MAX_STACKED_POWER_BYTES`] and in the adapter's storage binding, at least one.
    pub fn stack_len(&self, ctx: &GpuContext, n_frames: usize) -> usize {
        let each = (self.n_bins.max(self.n_mels) * n_frames.max(1) * 4) as u64;
        let budget = MAX_STACKED_POWER_BYTES.min(ctx.max_binding_bytes());
        usize::try_from(budget / each).unwrap_or(usize::MAX).max(1)
    }

    /// Uploads the power spectrograms of `U` utterances of equal length and records into `enc`
    /// their mel spectrograms and row means, stacked (utterance `u` in slot `u`): two dispatches
    /// whatever `U`. The uploads land before `enc`'s submission. Returns the buffers that hold
    /// the results once `enc` is submitted; the next call reuses them, so submit what reads
    /// them first.
    ///
    /// # Shapes
    /// `powers` U x [K, T] -> (`mel` buffer [U, M, T], `means` buffer [U, M])
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        powers: &[ArrayView2<f32>],
    ) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
        let Some(first) = powers.first() else {
            return Err(Error::shape("power spectrograms", "at least one", "none".to_string()));
        };
        let t = first.ncols();
        for power in powers {
            check_shape("power", &[self.n_bins, t], &[power.nrows(), power.ncols()])?;
        }
        let (m, k, u) = (self.n_mels, self.n_bins, powers.len());
        let (power_bytes, mel_bytes) = ((u * k * t * 4) as u64, (u * m * t * 4) as u64);
        if power_bytes > ctx.max_binding_bytes() || mel_bytes > ctx.max_binding_bytes() {
            return Err(Error::Device(format!(
                "{u} spectrograms of {t} frames exceed the adapter's {} byte storage binding",
                ctx.max_binding_bytes()
            )));
        }
        let groups_z = u32::try_from(u).unwrap_or(u32::MAX);
        let power_buf = self.power.ensure(ctx, power_bytes).clone();
        for (slot, power) in powers.iter().enumerate() {
            let contiguous = power.as_standard_layout();
            let values: &[f32] = contiguous.as_slice().expect("standard layout");
            if !values.is_empty() {
                ctx.queue
                    .write_buffer(&power_buf, (slot * k * t * 4) as u64, bytemuck::cast_slice(values));
            }
        }
        let mel_buf = self.mel.ensure(ctx, mel_bytes).clone();
        let means_buf = self.means.ensure(ctx, (u * m * 4) as u64).clone();
        let mp = ctx.uniform(
            "mel params",
            &MelParams {
                n_bins: k as u32,
                n_frames: t as u32,
                n_mels: m as u32,
                _pad: 0,
            },
        );
        let rp = ctx.uniform(
            "row mean params",
            &RowMeanParams {
                n_mels: m as u32,
                n_frames: t as u32,
                _pad: [0; 2],
            },
        );
        let kernels = &ctx.kernels;
        kernels.get(KernelId::Mel)?.dispatch(
            ctx,
            enc,
            &[
                mp.as_entire_binding(),
                power_buf.as_entire_binding(),
                self.weights.as_entire_binding(),
                self.bounds.as_entire_binding(),
                mel_buf.as_entire_binding(),
            ],
            [groups(t, 64), m as u32, groups_z],
        )?;
        kernels.get(KernelId::RowMean)?.dispatch(
            ctx,
            enc,
            &[
                rp.as_entire_binding(),
                mel_buf.as_entire_binding(),
                means_buf.as_entire_binding(),
            ],
            [m as u32, groups_z, 1],
        )?;
        Ok((mel_buf, means_buf))
    }

    /// Test and debugging helper: mel spectrogram and row means back on the CPU.
    ///
    /// # Shapes
    /// `power` [K, T] -> ([M, T], [M])
    pub fn run_to_host(&mut self, ctx: &GpuContext, power: ArrayView2<f32>) -> Result<(Array2<f32>, Array1<f32>)> {
        let (mel, means) = self.encode_to_host(ctx, &[power])?;
        Ok((mel.index_axis_move(Axis(0), 0), means.index_axis_move(Axis(0), 0)))
    }

    /// Test and debugging helper: [`Self::encode`] of several utterances, read back.
    ///
    /// # Shapes
    /// `powers` U x [K, T] -> ([U, M, T], [U, M])
    pub fn encode_to_host(
        &mut self,
        ctx: &GpuContext,
        powers: &[ArrayView2<f32>],
    ) -> Result<(Array3<f32>, Array2<f32>)> {
        let (u, m) = (powers.len(), self.n_mels);
        let t = powers.first().map_or(0, |p| p.ncols());
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let (mel, means) = self.encode(ctx, &mut enc, powers)?;
        ctx.queue.submit([enc.finish()]);
        let mel = ctx.read_f32(&mel, u * m * t)?;
        let means = ctx.read_f32(&means, u * m)?;
        let mel = Array3::from_shape_vec((u, m, t), mel).map_err(|e| Error::Device(e.to_string()))?;
        let means = Array2::from_shape_vec((u, m), means).map_err(|e| Error::Device(e.to_string()))?;
        Ok((mel, means))
    }
}

/// Inputs of a perturbation launch that stay the same for every chunk of the utterances.
pub struct PerturbInputs<'a> {
    /// Power mel spectrograms of `S` utterances stacked, as [`GpuMel::encode`] leaves them. // [S, M, T]
    pub mel: &'a wgpu::Buffer,
    /// Row means buffer. // [S, M]
    pub row_mean: &'a wgpu::Buffer,
    /// The slots of `mel` perturbed, each under the same masks, one after another in the
    /// output (`0..1` for one utterance).
    pub utterances: std::ops::Range<usize>,
    /// Band of each row. // [M]
    pub row_band: &'a wgpu::Buffer,
    /// Masks. // [N, B]
    pub masks: &'a wgpu::Buffer,
    /// Mel rows `M`.
    pub n_mels: usize,
    /// Frames `T`.
    pub n_frames: usize,
    /// Bands `B`.
    pub n_bands: usize,
    /// Fill of removed bands.
    pub fill: FillMode,
    /// Seed (noise fill).
    pub seed: u64,
}

/// Records the perturbation of samples `offset..offset + n_chunk` of each utterance `u` of
/// `inputs.utterances` (counted from 0) into rows `out_row + u * n_chunk ..` of `out`
/// (`[R, M, T]` f32): one dispatch.
pub fn perturb_into(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    inputs: &PerturbInputs<'_>,
    offset: usize,
    n_chunk: usize,
    out_row: usize,
    out: wgpu::BindingResource<'_>,
) -> Result<()> {
    let slots = inputs.utterances.len();
    if slots == 0 {
        return Ok(());
    }
    let params = PerturbParams {
        out_row: out_row as u32,
        first_utt: inputs.utterances.start as u32,
        _pad: [0; 2],
        n_mels: inputs.n_mels as u32,
        n_frames: inputs.n_frames as u32,
        n_bands: inputs.n_bands as u32,
        n_chunk: n_chunk as u32,
        sample_offset: offset as u32,
        fill_mode: inputs.fill.code(),
        seed_lo: inputs.seed as u32,
        seed_hi: (inputs.seed >> 32) as u32,
    };
    let pb = ctx.uniform("perturb params", &params);
    ctx.kernels.get(KernelId::Perturb)?.dispatch(
        ctx,
        encoder,
        &[
            pb.as_entire_binding(),
            inputs.mel.as_entire_binding(),
            inputs.row_mean.as_entire_binding(),
            inputs.row_band.as_entire_binding(),
            inputs.masks.as_entire_binding(),
            out,
        ],
        [
            groups(inputs.n_mels * inputs.n_frames, 256),
            n_chunk as u32,
            u32::try_from(slots).unwrap_or(u32::MAX),
        ],
    )
}

/// GPU twin of [`crate::perturb::perturb_cpu`] with host arrays (tests, benches).
///
/// # Shapes
/// `mel` [M, T], `row_band` [M], `masks` [N, B] -> [Nc, M, T]
#[allow(clippy::too_many_arguments)]
pub fn perturb_to_host(
    ctx: &GpuContext,
    mel: ArrayView2<f32>,
    row_mean: &[f32],
    row_band: &[u32],
    masks: ArrayView2<f32>,
    offset: usize,
    n_chunk: usize,
    fill: FillMode,
    seed: u64,
) -> Result<Array3<f32>> {
    let (m, t) = mel.dim();
    let (n, b) = masks.dim();
    check_shape("row_mean", &[m], &[row_mean.len()])?;
    check_shape("row_band", &[m], &[row_band.len()])?;
    if offset + n_chunk > n || row_band.iter().any(|&r| r as usize >= b) {
        return Err(Error::shape(
            "masks",
            format!("[>={}, >{}]", offset + n_chunk, row_band.iter().max().unwrap_or(&0)),
            format!("[{n}, {b}]"),
        ));
    }
    let mel_c = mel.as_standard_layout();
    let masks_c = masks.as_standard_layout();
    let mel_b = ctx.upload("mel", mel_c.as_slice().expect("standard layout"));
    let mean_b = ctx.upload("row mean", row_mean);
    let band_b = ctx.upload("row band", row_band);
    let mask_b = ctx.upload("masks", masks_c.as_slice().expect("standard layout"));
    let out = ctx.storage("perturbed", (n_chunk * m * t * 4) as u64);
    let inputs = PerturbInputs {
        mel: &mel_b,
        row_mean: &mean_b,
        utterances: 0..1,
        row_band: &band_b,
        masks: &mask_b,
        n_mels: m,
        n_frames: t,
        n_bands: b,
        fill,
        seed,
    };
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    perturb_into(ctx, &mut enc, &inputs, offset, n_chunk, 0, out.as_entire_binding())?;
    ctx.queue.submit([enc.finish()]);
    let flat = ctx.read_f32(&out, n_chunk * m * t)?;
    Array3::from_shape_vec((n_chunk, m, t), flat).map_err(|e| Error::Device(e.to_string()))
}

/// Band signals of one utterance resident on the GPU, for [`resynth_into`].
pub struct ResynthInputs<'a> {
    /// Rows `[delta_0 .. delta_{B-1}, base]` of [`crate::resynth::BandSignals`]. // [B + 1, S]
    pub rows: &'a wgpu::Buffer,
    /// Masks. // [N, B]
    pub masks: &'a wgpu::Buffer,
    /// Waveform samples `S`.
    pub n_samples: usize,
    /// Bands `B`.
    pub n_bands: usize,
}

/// Records the resynthesis of waveforms `offset..offset + n_chunk` into rows
/// `out_row..out_row + n_chunk` of `out` (`[R, S]` f32).
pub fn resynth_into(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    inputs: &ResynthInputs<'_>,
    offset: usize,
    n_chunk: usize,
    out_row: usize,
    out: wgpu::BindingResource<'_>,
) -> Result<()> {
    let params = ResynthParams {
        out_row: out_row as u32,
        _pad: [0; 3],
        n_samples: inputs.n_samples as u32,
        n_bands: inputs.n_bands as u32,
        n_chunk: n_chunk as u32,
        sample_offset: offset as u32,
    };
    let pb = ctx.uniform("resynth params", &params);
    ctx.kernels.get(KernelId::Resynth)?.dispatch(
        ctx,
        encoder,
        &[
            pb.as_entire_binding(),
            inputs.rows.as_entire_binding(),
            inputs.masks.as_entire_binding(),
            out,
        ],
        [groups(inputs.n_samples, 256), n_chunk as u32, 1],
    )
}

/// GPU twin of [`crate::resynth::resynth_cpu`] with host arrays (tests, benches).
///
/// # Shapes
/// `rows` [B + 1, S], `masks` [N, B] -> [Nc, S]
pub fn resynth_to_host(
    ctx: &GpuContext,
    rows: ArrayView2<f32>,
    masks: ArrayView2<f32>,
    offset: usize,
    n_chunk: usize,
) -> Result<Array2<f32>> {
    let (b1, s) = rows.dim();
    let (n, b) = masks.dim();
    check_shape("rows", &[b + 1, s], &[b1, s])?;
    if offset + n_chunk > n {
        return Err(Error::shape(
            "masks",
            format!("[>={}, B]", offset + n_chunk),
            format!("[{n}, {b}]"),
        ));
    }
    let rows_c = rows.as_standard_layout();
    let masks_c = masks.as_standard_layout();
    let rows_b = ctx.upload("band rows", rows_c.as_slice().expect("standard layout"));
    let mask_b = ctx.upload("masks", masks_c.as_slice().expect("standard layout"));
    let out = ctx.storage("resynthesized", (n_chunk * s * 4) as u64);
    let inputs = ResynthInputs {
        rows: &rows_b,
        masks: &mask_b,
        n_samples: s,
        n_bands: b,
    };
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    resynth_into(ctx, &mut enc, &inputs, offset, n_chunk, 0, out.as_entire_binding())?;
    ctx.queue.submit([enc.finish()]);
    let flat = ctx.read_f32(&out, n_chunk * s)?;
    Array2::from_shape_vec((n_chunk, s), flat).map_err(|e| Error::Device(e.to_string()))
}

/// Fits the surrogate for `U` utterances sharing one set of masks and weights, on the GPU.
///
/// # Shapes
/// `masks` [N, B], `weights` [N], `preds` [U, N, C] -> U fits with coefficients [C, B]
pub fn fit_gpu(
    ctx: &GpuContext,
    masks: ArrayView2<f32>,
    weights: &[f32],
    preds: ArrayView3<f32>,
    cfg: &SurrogateConfig,
) -> Result<Vec<SurrogateFit>> {
    let (u, n_rows, c) = preds.dim();
    check_fit_inputs(masks, weights, n_rows, c, cfg)?;
    if u == 0 {
        return Ok(vec![]);
    }
    let design = SurrogateDesign::new(masks, weights, cfg)?;
    let inputs = FitInputs::upload(ctx, &design);
    let preds_c = preds.as_standard_layout();
    let pred_buf = ctx.upload("preds", preds_c.as_slice().expect("standard layout"));
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let out = encode_fit(ctx, &mut enc, &inputs, pred_buf.as_entire_binding(), u, c)?;
    ctx.queue.submit([enc.finish()]);
    read_fits(ctx, &out, u, c, masks.ncols())
}

/// A [`SurrogateDesign`] resident on the GPU (uploaded once per run).
pub struct FitInputs {
    /// The projection, transposed. // [N, P]
    pub proj_t: wgpu::Buffer,
    /// Masks. // [N, B]
    pub masks: wgpu::Buffer,
    /// Kernel weights. // [N]
    pub weights: wgpu::Buffer,
    /// Feature means and the Shapley projections. // [3, P]
    pub vecs: wgpu::Buffer,
    /// Samples `N`.
    pub n_samples: usize,
    /// Bands `B`.
    pub n_bands: usize,
    /// Sum of the kernel weights.
    pub w_sum: f32,
    /// 0 LIME, 1 Shapley.
    pub mode: u32,
    /// The Shapley fit's all-removed sample.
    pub empty_sample: usize,
}

impl FitInputs {
    /// Uploads `design`.
    pub fn upload(ctx: &GpuContext, design: &SurrogateDesign) -> Self {
        let flat = |a: ArrayView2<f32>| a.as_standard_layout().iter().copied().collect::<Vec<f32>>();
        FitInputs {
            proj_t: ctx.upload("surrogate projection", &flat(design.proj_t())),
            masks: ctx.upload("masks", &flat(design.masks().view())),
            weights: ctx.upload("weights", design.weights()),
            vecs: ctx.upload("surrogate vectors", &flat(design.vecs())),
            n_samples: design.n_samples(),
            n_bands: design.n_bands(),
            w_sum: design.weight_sum(),
            mode: design.config().mode_code(),
            empty_sample: design.empty_sample(),
        }
    }
}

/// Records the surrogate fit on predictions already on the GPU (`preds` binding `[U, N, C]`);
/// returns the output buffer `[U, C, B + 3]` to read with [`read_fits`] after submission.
pub fn encode_fit(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    inputs: &FitInputs,
    preds: wgpu::BindingResource<'_>,
    n_utts: usize,
    n_classes: usize,
) -> Result<wgpu::Buffer> {
    let (n, b) = (inputs.n_samples, inputs.n_bands);
    let c = n_classes;
    if b > MAX_SURROGATE_DIM || c > MAX_SURROGATE_DIM {
        return Err(Error::config(
            "surrogate",
            format!("the gpu surrogate handles at most 64 bands and 64 classes, got {b} and {c}"),
        ));
    }
    if (n_utts * n * c * 4) as u64 > ctx.max_binding_bytes() {
        return Err(Error::Device(format!(
            "{n_utts}x{n}x{c} predictions exceed the storage binding limit"
        )));
    }
    let stride = packed_len(b);
    let out = ctx.storage("surrogate out", (n_utts * c * stride * 4) as u64);
    let params = SurrogateParams {
        n_samples: n as u32,
        n_bands: b as u32,
        n_classes: c as u32,
        n_utts: n_utts as u32,
        mode: inputs.mode,
        empty_sample: inputs.empty_sample as u32,
        parts: r2_parts(c) as u32,
        w_sum: inputs.w_sum,
    };
    let pb = ctx.uniform("surrogate params", &params);
    ctx.kernels.get(KernelId::Surrogate)?.dispatch(
        ctx,
        enc,
        &[
            pb.as_entire_binding(),
            inputs.proj_t.as_entire_binding(),
            inputs.masks.as_entire_binding(),
            inputs.weights.as_entire_binding(),
            inputs.vecs.as_entire_binding(),
            preds,
            out.as_entire_binding(),
        ],
        [n_utts as u32, 1, 1],
    )?;
    Ok(out)
}

/// Reads back and unpacks the fits written by [`encode_fit`].
pub fn read_fits(ctx: &GpuContext, out: &wgpu::Buffer, n_utts: usize, c: usize, b: usize) -> Result<Vec<SurrogateFit>> {
    unpack_fits(&ctx.read_f32(out, n_utts * c * packed_len(b))?, c, b)
}

/// Unpacks the fits of [`encode_fit`]'s output once copied back (`[U, C, B + 3]` values, see
/// [`crate::surrogate::packed_len`]).
pub fn unpack_fits(flat: &[f32], c: usize, b: usize) -> Result<Vec<SurrogateFit>> {
    flat.chunks(c * packed_len(b))
        .map(|chunk| SurrogateFit::from_packed(chunk, c, b))
        .collect()
}
