//! EmoLIME's Griffin-Lim resynthesis on the device (`--resynthesis griffin-lim` on a GPU): masked
//! mel spectrograms (`perturb.wgsl`) -> magnitude and seeded phases (`gl_init.wgsl`) -> per step,
//! every frame's analysis FFT, phase update, synthesis spectrum and inverse FFT in workgroup
//! memory (`gl_iterate.wgsl`) and the overlap-add (`gl_overlap_add.wgsl`) -> waveforms written
//! into the model's input tensor. CPU twin: [`crate::griffin_lim::MelSignal::perturbed`].
//! Power-of-two FFT lengths up to [`GL_MAX_FFT`] only (others keep the host path).

use super::kernels::{GL_MAX_FFT, GlInitParams, GlIterateParams, GlOverlapAddParams, KernelId, fold_groups, grid_2d};
use super::ops::{PerturbInputs, perturb_into};
use super::{GpuContext, GrowBuffer};
use crate::error::{Error, Result};
use crate::griffin_lim::{GriffinLimSynth, MelSignal};
use crate::perturb::FillMode;

/// Rows resynthesized together at most: each needs about `20 T n_fft` bytes (phases, previous
/// spectrum, magnitude, frame terms), 33 MB for 5 s at the default 2048-point FFT, and 64 rows of
/// `T` frames are already `64 T` workgroups per dispatch.
const MAX_ROWS_PER_PASS: usize = 64;

/// The device state of Griffin-Lim: constant tables uploaded once, work buffers reused.
pub struct GpuGriffinLim {
    n_fft: usize,
    hop: usize,
    center: bool,
    n_bins: usize,
    n_mels: usize,
    iters: usize,
    keep: f32,
    /// Analysis window padded to `n_fft`. // [n_fft]
    window: wgpu::Buffer,
    /// Pseudo-inverse of the mel filterbank. // [K, M]
    pinv: wgpu::Buffer,
    /// `exp(-2 pi i j / n_fft)`. // [n_fft / 2] complex
    twiddle: wgpu::Buffer,
    /// The loaded utterance: `(frames T, samples S)`.
    loaded: Option<(usize, usize)>,
    /// Its mel power. // [M, T]
    mel: GrowBuffer,
    /// Its row means. // [M]
    row_mean: GrowBuffer,
    /// Window sum-square at each padded sample. // [start + S]
    wss: GrowBuffer,
    /// Masked mel of the rows in flight. // [Nc, M, T]
    masked: GrowBuffer,
    /// // [Nc, K, T]
    mag: GrowBuffer,
    /// // [Nc, K, T] complex
    angles: GrowBuffer,
    /// // [Nc, K, T] complex
    prev: GrowBuffer,
    /// Every frame's overlap-add terms. // [Nc, T, n_fft]
    frames: GrowBuffer,
    /// Waveforms between iterations. // [Nc, S]
    wave: GrowBuffer,
}

impl GpuGriffinLim {
    /// Whether `synth` can run on the device (its FFT length is a power of two, at most
    /// [`GL_MAX_FFT`]).
    pub fn supports(synth: &GriffinLimSynth) -> bool {
        let n = synth.stft.n_fft();
        n.is_power_of_two() && (2..=GL_MAX_FFT).contains(&n)
    }

    /// Uploads the window, the pseudo-inverse and the twiddles, and compiles the kernels it
    /// dispatches.
    ///
    /// Errors: [`Error::Config`] when the FFT length is not a power of two.
    pub fn new(ctx: &GpuContext, synth: &GriffinLimSynth) -> Result<Self> {
        let stft = &synth.stft;
        let n_fft = stft.n_fft();
        if !Self::supports(synth) {
            return Err(Error::config(
                "n_fft",
                format!("griffin-lim on the device needs a power-of-two fft length up to {GL_MAX_FFT}, got {n_fft}"),
            ));
        }
        for id in [
            KernelId::Perturb,
            KernelId::GlInit,
            KernelId::GlIterate,
            KernelId::GlOverlapAdd,
        ] {
            ctx.kernels.get(id)?;
        }
        let twiddle: Vec<[f32; 2]> = (0..n_fft / 2)
            .map(|j| {
                let a = -2.0 * std::f64::consts::PI * j as f64 / n_fft as f64;
                [a.cos() as f32, a.sin() as f32]
            })
            .collect();
        let pinv = synth.inverse.pinv();
        let pinv = pinv.as_standard_layout();
        let cfg = &synth.cfg;
        Ok(GpuGriffinLim {
            n_fft,
            hop: stft.hop_len(),
            center: stft.center(),
            n_bins: stft.n_freq_bins(),
            n_mels: pinv.ncols(),
            iters: cfg.iters,
            keep: cfg.momentum / (1.0 + cfg.momentum),
            window: ctx.upload("gl window", stft.window()),
            pinv: ctx.upload("gl pinv", pinv.as_slice().expect("standard layout")),
            twiddle: ctx.upload("fft twiddle", &twiddle),
            loaded: None,
            mel: GrowBuffer::new("gl mel"),
            row_mean: GrowBuffer::new("gl row mean"),
            wss: GrowBuffer::new("gl window sum-square"),
            masked: GrowBuffer::new("gl masked mel"),
            mag: GrowBuffer::new("gl magnitude"),
            angles: GrowBuffer::new("gl angles"),
            prev: GrowBuffer::new("gl previous"),
            frames: GrowBuffer::new("gl frames"),
            wave: GrowBuffer::new("gl wave"),
        })
    }

    /// Uploads one utterance's mel spectrogram, row means and window sum-square. Work recorded
    /// for the previous utterance must be submitted first (the buffers are overwritten).
    ///
    /// # Shapes
    /// `signal.mel` [M, T]
    pub fn load(&mut self, ctx: &GpuContext, signal: &MelSignal) -> Result<()> {
        let (m, t) = signal.mel.dim();
        if m != self.n_mels {
            return Err(Error::shape(
                "mel",
                format!("[{}, T]", self.n_mels),
                format!("[{m}, {t}]"),
            ));
        }
        let mel = signal.mel.as_standard_layout();
        self.mel.write(ctx, mel.as_slice().expect("standard layout"));
        self.row_mean
            .write(ctx, signal.row_mean.as_slice().expect("contiguous"));
        self.wss
            .write(ctx, &signal.synth.stft.window_sum_square(t, signal.n_samples));
        self.loaded = Some((t, signal.n_samples));
        Ok(())
    }

    /// Records the Griffin-Lim waveforms of mask rows `sample_offset..sample_offset + n_chunk`
    /// of the loaded utterance into rows `out_row..out_row + n_chunk` of `out`.
    ///
    /// # Shapes
    /// `row_band` [M], `masks` [N, B], `out` [R, S]
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        row_band: &wgpu::Buffer,
        masks: &wgpu::Buffer,
        n_bands: usize,
        fill: FillMode,
        seed: u64,
        sample_offset: usize,
        n_chunk: usize,
        out_row: usize,
        out: wgpu::BindingResource<'_>,
    ) -> Result<()> {
        let (t, s) = self
            .loaded
            .ok_or_else(|| Error::Device("griffin-lim: no utterance loaded".into()))?;
        let (n_fft, k, m) = (self.n_fft, self.n_bins, self.n_mels);
        let frame_bytes = (t * n_fft * 4) as u64;
        // The largest binding per row: the phases, [K, T] complex.
        let row_bytes = (k * t * 8) as u64;
        if row_bytes > ctx.max_binding_bytes() {
            return Err(Error::config(
                "max-seconds",
                format!(
                    "griffin-lim on the device holds {row_bytes} bytes of phases for {t} frames, more than \
                     the adapter binds ({}); crop the audio with --max-seconds",
                    ctx.max_binding_bytes()
                ),
            ));
        }
        let per_pass = ((ctx.max_binding_bytes() / row_bytes.max(1)) as usize).clamp(1, MAX_ROWS_PER_PASS);
        let rows = per_pass.min(n_chunk).max(1);
        let masked = self.masked.ensure(ctx, (rows * m * t * 4) as u64).clone();
        let mag = self.mag.ensure(ctx, (rows * k * t * 4) as u64).clone();
        let angles = self.angles.ensure(ctx, (rows * k * t * 8) as u64).clone();
        let prev = self.prev.ensure(ctx, (rows * k * t * 8) as u64).clone();
        let frames = self.frames.ensure(ctx, rows as u64 * frame_bytes).clone();
        let wave = self.wave.ensure(ctx, (rows * s * 4) as u64).clone();
        let (mel, row_mean, wss) = (
            self.mel.ensure(ctx, 0).clone(),
            self.row_mean.ensure(ctx, 0).clone(),
            self.wss.ensure(ctx, 0).clone(),
        );
        let perturb = PerturbInputs {
            mel: &mel,
            row_mean: &row_mean,
            utterances: 0..1,
            row_band,
            masks,
            n_mels: m,
            n_frames: t,
            n_bands,
            fill,
            seed,
        };
        let kernels = &ctx.kernels;
        let u32_of = |v: usize| v as u32;
        for first in (0..n_chunk).step_by(rows) {
            let nc = rows.min(n_chunk - first);
            perturb_into(
                ctx,
                enc,
                &perturb,
                sample_offset + first,
                nc,
                0,
                masked.as_entire_binding(),
            )?;
            let init = ctx.uniform(
                "gl_init params",
                &GlInitParams {
                    n_bins: u32_of(k),
                    n_frames: u32_of(t),
                    n_mels: u32_of(m),
                    n_chunk: u32_of(nc),
                    sample_offset: u32_of(sample_offset + first),
                    seed_lo: seed as u32,
                    seed_hi: (seed >> 32) as u32,
                    _pad: 0,
                },
            );
            kernels.get(KernelId::GlInit)?.dispatch(
                ctx,
                enc,
                &[
                    init.as_entire_binding(),
                    self.pinv.as_entire_binding(),
                    masked.as_entire_binding(),
                    mag.as_entire_binding(),
                    angles.as_entire_binding(),
                    prev.as_entire_binding(),
                ],
                grid_2d(nc * k * t),
            )?;
            let step = |analyse: bool| {
                ctx.uniform(
                    "gl_iterate params",
                    &GlIterateParams {
                        n_fft: u32_of(n_fft),
                        log2_n: n_fft.trailing_zeros(),
                        hop: u32_of(self.hop),
                        n_frames: u32_of(t),
                        n_samples: u32_of(s),
                        center: self.center as u32,
                        n_chunk: u32_of(nc),
                        analyse: analyse as u32,
                        keep: self.keep,
                        inv_n: 1.0 / n_fft as f32,
                        _pad: [0; 2],
                    },
                )
            };
            let (first_step, next_step) = (step(false), step(true));
            let ola = |out_row: usize| {
                ctx.uniform(
                    "gl_overlap_add params",
                    &GlOverlapAddParams {
                        n_fft: u32_of(n_fft),
                        hop: u32_of(self.hop),
                        n_frames: u32_of(t),
                        n_samples: u32_of(s),
                        start: u32_of(if self.center { n_fft / 2 } else { 0 }),
                        n_chunk: u32_of(nc),
                        out_row: u32_of(out_row),
                        _pad: 0,
                    },
                )
            };
            let (ola_wave, ola_out) = (ola(0), ola(out_row + first));
            let frame_grid = fold_groups(nc * t); // a workgroup per frame
            // The waveforms are synthesized iters + 1 times, analysed in between.
            for step in 0..=self.iters {
                let params = if step == 0 { &first_step } else { &next_step };
                kernels.get(KernelId::GlIterate)?.dispatch(
                    ctx,
                    enc,
                    &[
                        params.as_entire_binding(),
                        self.twiddle.as_entire_binding(),
                        self.window.as_entire_binding(),
                        wave.as_entire_binding(),
                        mag.as_entire_binding(),
                        angles.as_entire_binding(),
                        prev.as_entire_binding(),
                        frames.as_entire_binding(),
                    ],
                    frame_grid,
                )?;
                let (params, target) = if step == self.iters {
                    (&ola_out, out.clone())
                } else {
                    (&ola_wave, wave.as_entire_binding())
                };
                kernels.get(KernelId::GlOverlapAdd)?.dispatch(
                    ctx,
                    enc,
                    &[
                        params.as_entire_binding(),
                        frames.as_entire_binding(),
                        wss.as_entire_binding(),
                        target,
                    ],
                    grid_2d(nc * s),
                )?;
            }
        }
        Ok(())
    }
}
