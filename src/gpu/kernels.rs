//! Compiled compute pipelines and their `#[repr(C)]` params, one per `.wgsl` file.

use super::{GpuContext, shaders};
use crate::error::{Error, Result};
use bytemuck::{Pod, Zeroable};
use std::sync::OnceLock;

/// Uniforms of `mel.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MelParams {
    /// Frequency bins `K`.
    pub n_bins: u32,
    /// Frames `T`.
    pub n_frames: u32,
    /// Mel rows `M`.
    pub n_mels: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Uniforms of `row_mean.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RowMeanParams {
    /// Mel rows `M`.
    pub n_mels: u32,
    /// Frames `T`.
    pub n_frames: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// Uniforms of `perturb.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PerturbParams {
    /// Mel rows `M`.
    pub n_mels: u32,
    /// Frames `T`.
    pub n_frames: u32,
    /// Bands `B`.
    pub n_bands: u32,
    /// Samples in this chunk `Nc`.
    pub n_chunk: u32,
    /// Mask row of the chunk's first sample.
    pub sample_offset: u32,
    /// [`crate::perturb::FillMode::code`].
    pub fill_mode: u32,
    /// Low 32 bits of the seed.
    pub seed_lo: u32,
    /// High 32 bits of the seed.
    pub seed_hi: u32,
    /// Output row of the chunk's first sample (several utterances share one output tensor).
    pub out_row: u32,
    /// Slot of the first utterance read from the stacked mel spectrograms (grid z adds to it).
    pub first_utt: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}

/// Uniforms of `resynth.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ResynthParams {
    /// Waveform samples `S`.
    pub n_samples: u32,
    /// Bands `B`.
    pub n_bands: u32,
    /// Waveforms in this chunk `Nc`.
    pub n_chunk: u32,
    /// Mask row of the chunk's first waveform.
    pub sample_offset: u32,
    /// Output row of the chunk's first waveform (several utterances share one output tensor).
    pub out_row: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 3],
}

/// Uniforms of `surrogate.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct SurrogateParams {
    /// Samples `N`.
    pub n_samples: u32,
    /// Bands `B`.
    pub n_bands: u32,
    /// Classes `C`.
    pub n_classes: u32,
    /// Utterances `U`.
    pub n_utts: u32,
    /// 0 LIME ridge, 1 Shapley.
    pub mode: u32,
    /// Index of the all-removed sample (Shapley).
    pub empty_sample: u32,
    /// Invocations summing each class's R^2 ([`crate::surrogate::r2_parts`]).
    pub parts: u32,
    /// Sum of the kernel weights.
    pub w_sum: f32,
}

/// Uniforms of `gl_init.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GlInitParams {
    /// Frequency bins `K`.
    pub n_bins: u32,
    /// Frames `T`.
    pub n_frames: u32,
    /// Mel rows `M`.
    pub n_mels: u32,
    /// Rows in this chunk `Nc`.
    pub n_chunk: u32,
    /// Mask row (sample index) of the chunk's first row.
    pub sample_offset: u32,
    /// Low 32 bits of the seed.
    pub seed_lo: u32,
    /// High 32 bits of the seed.
    pub seed_hi: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Uniforms of `gl_iterate.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GlIterateParams {
    /// FFT length (a power of two, at most [`GL_MAX_FFT`]).
    pub n_fft: u32,
    /// `log2(n_fft)`.
    pub log2_n: u32,
    /// Hop between frames in samples.
    pub hop: u32,
    /// Frames `T`.
    pub n_frames: u32,
    /// Samples `S`.
    pub n_samples: u32,
    /// 1 when frames are centred.
    pub center: u32,
    /// Rows in this chunk `Nc`.
    pub n_chunk: u32,
    /// 1: analyse the current waveforms and update the phases first; 0: use the phases as they are.
    pub analyse: u32,
    /// `momentum / (1 + momentum)`.
    pub keep: f32,
    /// `1 / n_fft`.
    pub inv_n: f32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}

/// The longest FFT `gl_iterate.wgsl` holds in workgroup memory.
pub const GL_MAX_FFT: usize = 2048;

/// Uniforms of `gl_overlap_add.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GlOverlapAddParams {
    /// FFT length.
    pub n_fft: u32,
    /// Hop between frames in samples.
    pub hop: u32,
    /// Frames `T`.
    pub n_frames: u32,
    /// Output samples `S`.
    pub n_samples: u32,
    /// Centre padding removed from the front (`n_fft / 2` or 0).
    pub start: u32,
    /// Rows in this chunk `Nc`.
    pub n_chunk: u32,
    /// Output row of the chunk's first row.
    pub out_row: u32,
    /// Padding to 32 bytes.
    pub _pad: u32,
}

/// Uniforms of `conv_block.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ConvBlockParams {
    /// Inputs `N`.
    pub n: u32,
    /// Input channels `I`.
    pub in_ch: u32,
    /// Output channels `O`.
    pub out_ch: u32,
    /// Input rows `H`.
    pub in_h: u32,
    /// Input columns `W`.
    pub in_w: u32,
    /// Output rows `Ho`.
    pub out_h: u32,
    /// Output columns `Wo`.
    pub out_w: u32,
    /// Stride of the convolution over rows.
    pub stride_h: u32,
    /// 1: the input is power, read as `ln(power + 1e-10) + log_offset`.
    pub log_input: u32,
    /// Added to the log of the input when `log_input` is 1.
    pub log_offset: f32,
    /// Rows each job reads `K` (row versions), or 0 for whole inputs.
    pub k_rows: u32,
    /// Jobs per utterance `J` (row versions).
    pub n_jobs: u32,
    /// Input rows per utterance `S` (row versions).
    pub slot_stride: u32,
    /// The slot that reads as zeros (row versions).
    pub zero_slot: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}

/// Uniforms of `row_head_share.wgsl` and `row_head_softmax.wgsl` (the row-cached CNN's head).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RowHeadParams {
    /// Utterances `U`.
    pub n_utts: u32,
    /// Samples per utterance `N`.
    pub n_samples: u32,
    /// Versions of conv3's rows per utterance `V` (the last one the zero row).
    pub n_versions: u32,
    /// Rows of conv3 `H3`.
    pub h3: u32,
    /// Channels of conv3 `C3`.
    pub c3: u32,
    /// Columns of conv3 `W3`.
    pub w3: u32,
    /// Classes `C`.
    pub classes: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Output channels one invocation of `conv_block.wgsl` computes (its grid's z covers the
/// output channels in groups of this many).
pub const CONV_BLOCK_CHANNELS: usize = 8;

/// One compute pipeline and the bind group layout it was built with.
pub struct Kernel {
    name: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The run-time checks wgpu compiles into emolime's kernels: all of its defaults (bounds
/// checks, integer division guards) but loop bounding. wgpu gives every loop a hidden 64-bit
/// counter and a second exit, in case a shader loops forever; with it the driver's compiler
/// does not unroll even a loop of three, so the conv block kernel's private arrays (indexed by
/// loop counters) went through memory: on lavapipe the CNN's block kernel ran 1.75x faster
/// without it, and all kernels compiled in about 40% of the time (`docs/optimisations.md`).
/// CubeCL compiles the Burn kernels it launches unchecked without it too.
fn runtime_checks() -> wgpu::ShaderRuntimeChecks {
    let mut checks = wgpu::ShaderRuntimeChecks::checked();
    checks.force_loop_bounding = false;
    checks
}

/// Binding kinds of a kernel, in binding order.
#[derive(Clone, Copy)]
enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

impl Kernel {
    /// A kernel with the shader's pipeline-overridable constants set to `constants` (name,
    /// value), which the driver's compiler sees as constants.
    fn specialised(
        device: &wgpu::Device,
        name: &'static str,
        source: &str,
        slots: &[Slot],
        constants: &[(&str, f64)],
    ) -> Result<Self> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        // SAFETY: the only check turned off is loop bounding ([`runtime_checks`]), whose one
        // requirement is that no loop runs forever; every loop in `shaders/` ends on its own,
        // which `kernels::tests::every_loop_ends` checks loop by loop.
        let module = unsafe {
            device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                },
                runtime_checks(),
            )
        };
        let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match slot {
                        Slot::Uniform => wgpu::BufferBindingType::Uniform,
                        Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Slot::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                ..Default::default()
            },
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("kernel {name} does not compile: {err}")));
        }
        Ok(Kernel { name, pipeline, layout })
    }

    /// Records one dispatch of this kernel into `encoder`.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        bindings: &[wgpu::BindingResource<'_>],
        grid: [u32; 3],
    ) -> Result<()> {
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        if grid.iter().any(|&g| g > max) {
            return Err(Error::Device(format!(
                "{}: dispatch grid {grid:?} exceeds the adapter's {max} workgroups per dimension",
                self.name
            )));
        }
        if grid.contains(&0) {
            return Ok(());
        }
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        let group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(self.name),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        Ok(())
    }
}

/// One of emolime's kernels: a `.wgsl` file, with its pipeline constants where one file makes
/// several pipelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelId {
    /// `mel.wgsl`.
    Mel,
    /// `row_mean.wgsl`.
    RowMean,
    /// `perturb.wgsl`.
    Perturb,
    /// `surrogate.wgsl`.
    Surrogate,
    /// `resynth.wgsl`.
    Resynth,
    /// `gl_init.wgsl`.
    GlInit,
    /// `gl_iterate.wgsl`.
    GlIterate,
    /// `gl_overlap_add.wgsl`.
    GlOverlapAdd,
    /// `conv_block.wgsl` for blocks without pooling (`POOL = false`).
    ConvBlock,
    /// `conv_block.wgsl` for blocks with 2x2 pooling (`POOL = true`).
    ConvBlockPool,
    /// `row_head_share.wgsl`.
    RowHeadShare,
    /// `row_head_softmax.wgsl`.
    RowHeadSoftmax,
}

impl KernelId {
    /// Every kernel.
    pub const ALL: [KernelId; 12] = [
        KernelId::Mel,
        KernelId::RowMean,
        KernelId::Perturb,
        KernelId::Surrogate,
        KernelId::Resynth,
        KernelId::GlInit,
        KernelId::GlIterate,
        KernelId::GlOverlapAdd,
        KernelId::ConvBlock,
        KernelId::ConvBlockPool,
        KernelId::RowHeadShare,
        KernelId::RowHeadSoftmax,
    ];

    /// The pipeline's name, its source, its bindings in order and its pipeline constants.
    fn spec(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static [Slot],
        &'static [(&'static str, f64)],
    ) {
        use Slot::*;
        match self {
            KernelId::Mel => ("mel", shaders::MEL, &[Uniform, Read, Read, Read, ReadWrite], &[]),
            KernelId::RowMean => ("row_mean", shaders::ROW_MEAN, &[Uniform, Read, ReadWrite], &[]),
            KernelId::Perturb => (
                "perturb",
                shaders::PERTURB,
                &[Uniform, Read, Read, Read, Read, ReadWrite],
                &[],
            ),
            KernelId::Surrogate => (
                "surrogate",
                shaders::SURROGATE,
                &[Uniform, Read, Read, Read, Read, ReadWrite, ReadWrite],
                &[],
            ),
            KernelId::Resynth => ("resynth", shaders::RESYNTH, &[Uniform, Read, Read, ReadWrite], &[]),
            KernelId::GlInit => (
                "gl_init",
                shaders::GL_INIT,
                &[Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite],
                &[],
            ),
            KernelId::GlIterate => (
                "gl_iterate",
                shaders::GL_ITERATE,
                &[Uniform, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite],
                &[],
            ),
            KernelId::GlOverlapAdd => (
                "gl_overlap_add",
                shaders::GL_OVERLAP_ADD,
                &[Uniform, Read, Read, ReadWrite],
                &[],
            ),
            KernelId::ConvBlock => (
                "conv_block",
                shaders::CONV_BLOCK,
                &[Uniform, ReadWrite, Read, Read, Read, ReadWrite],
                &[("POOL", 0.0)],
            ),
            KernelId::ConvBlockPool => (
                "conv_block_pool",
                shaders::CONV_BLOCK,
                &[Uniform, ReadWrite, Read, Read, Read, ReadWrite],
                &[("POOL", 1.0)],
            ),
            KernelId::RowHeadShare => (
                "row_head_share",
                shaders::ROW_HEAD_SHARE,
                &[Uniform, ReadWrite, Read, Read, ReadWrite],
                &[],
            ),
            KernelId::RowHeadSoftmax => (
                "row_head_softmax",
                shaders::ROW_HEAD_SOFTMAX,
                &[Uniform, ReadWrite, Read, Read, ReadWrite],
                &[],
            ),
        }
    }
}

/// Every kernel of one device, each compiled on its first use: a process compiles only the
/// kernels its model and settings dispatch (a wav2vec 2.0 run never the CNN's blocks, a CNN run
/// never Griffin-Lim's).
pub struct Kernels {
    device: wgpu::Device,
    compiled: [OnceLock<Kernel>; KernelId::ALL.len()],
}

impl Kernels {
    /// The kernels of `device`, none compiled yet.
    pub fn new(device: &wgpu::Device) -> Self {
        Kernels {
            device: device.clone(),
            compiled: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Kernel `id`, compiled now if this is its first use.
    pub fn get(&self, id: KernelId) -> Result<&Kernel> {
        let cell = &self.compiled[id as usize];
        if let Some(kernel) = cell.get() {
            return Ok(kernel);
        }
        let (name, source, slots, constants) = id.spec();
        // Two threads may both compile a kernel on first use; one result is kept.
        let kernel = Kernel::specialised(&self.device, name, source, slots, constants)?;
        Ok(cell.get_or_init(|| kernel))
    }

    /// The kernels compiled so far, in [`KernelId::ALL`]'s order.
    pub fn compiled(&self) -> Vec<KernelId> {
        KernelId::ALL
            .into_iter()
            .filter(|&id| self.compiled[id as usize].get().is_some())
            .collect()
    }

    /// Compiles every kernel not compiled yet (a check that all compile on this device, and
    /// what a process would pay to compile them all).
    pub fn compile_all(&self) -> Result<()> {
        for id in KernelId::ALL {
            self.get(id)?;
        }
        Ok(())
    }
}

/// A grid of 256-wide workgroups covering `n` invocations, folded as [`fold_groups`] does;
/// kernels index `gid.x + gid.y * nwg.x * 256`.
pub fn grid_2d(n: usize) -> [u32; 3] {
    fold_groups(n.div_ceil(256))
}

/// A grid of `groups` workgroups, folded into two dimensions when it exceeds one dimension's
/// 65 535; kernels number their workgroup `wg.x + wg.y * nwg.x` (and skip those past the end).
pub fn fold_groups(groups: usize) -> [u32; 3] {
    let x = groups.min(65_535);
    [x as u32, groups.div_ceil(x.max(1)) as u32, 1]
}

/// Workgroups needed to cover `n` items with groups of `size`.
pub fn groups(n: usize, size: usize) -> u32 {
    n.div_ceil(size) as u32
}

#[cfg(test)]
mod tests {
    //! Besides the ids: the kernels are compiled without wgpu's loop bounding
    //! ([`runtime_checks`]), which is sound only while every loop ends on its own, so
    //! `every_loop_ends` checks each loop's form in every kernel's source.

    use super::*;

    /// Each kernel's pipeline name and WGSL source.
    fn sources() -> Vec<(&'static str, &'static str)> {
        KernelId::ALL
            .into_iter()
            .map(|id| {
                let (name, source, ..) = id.spec();
                (name, source)
            })
            .collect()
    }

    #[test]
    fn kernel_ids_index_their_own_slots_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for (i, id) in KernelId::ALL.into_iter().enumerate() {
            assert_eq!(id as usize, i, "{id:?} out of place in KernelId::ALL");
            assert!(names.insert(id.spec().0), "{id:?}: name used twice");
        }
    }

    /// `loop` statements that end on their own, by kernel, with why.
    const ENDING_LOOPS: &[(&str, &str)] = &[(
        "gl_iterate",
        "fft() doubles `half` from 1 until it reaches n_fft, a power of two up to GL_MAX_FFT \
         (GpuGriffinLim::new refuses others)",
    )];

    /// Names a `for` counter may grow by besides nonzero literals: `WG`, a nonzero constant of
    /// `gl_iterate.wgsl` and `surrogate.wgsl`, and `parts` of `surrogate.wgsl`
    /// (`surrogate::r2_parts`, at least 1).
    const POSITIVE_STEPS: &[&str] = &["WG", "parts"];

    /// The source without its `//` comments.
    fn code(source: &str) -> String {
        source
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    /// Byte offsets where the word `word` starts in `code`.
    fn word_at(code: &str, word: &str) -> Vec<usize> {
        code.match_indices(word)
            .filter(|(i, _)| {
                let before = code[..*i].chars().next_back().is_none_or(|c| !is_ident(c));
                let after = code[i + word.len()..].chars().next().is_none_or(|c| !is_ident(c));
                before && after
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The text between the bracket `open` at `start` and its match.
    fn bracketed(code: &str, start: usize, open: char, close: char) -> &str {
        let mut depth = 0;
        for (i, c) in code[start..].char_indices() {
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    return &code[start + 1..start + i];
                }
            }
        }
        panic!("unbalanced {open}{close} in a shader");
    }

    /// Whether `body` assigns `name` (`name =`, `name += ...`, `name++`, ...).
    fn assigns(body: &str, name: &str) -> bool {
        word_at(body, name).into_iter().any(|i| {
            let rest = body[i + name.len()..].trim_start();
            ["+=", "-=", "*=", "/=", "++", "--"]
                .iter()
                .any(|op| rest.starts_with(op))
                || (rest.starts_with('=') && !rest.starts_with("=="))
        })
    }

    /// Why the `for` loop with this header and body might not end, or None when it ends: a
    /// counter declared by the loop that grows by a positive step up to a bound (`i < n`; the
    /// bounds are buffer lengths, far below the point where the counter would wrap), or halves
    /// down to zero (`s > 0u`), and that the body does not assign.
    fn for_loop_fault(header: &str, body: &str) -> Option<String> {
        let parts: Vec<&str> = header.split(';').map(str::trim).collect();
        let [init, cond, step] = parts[..] else {
            return Some(format!("cannot read the header `{header}`"));
        };
        let Some(var) = init.strip_prefix("var ") else {
            return Some(format!("the counter is not declared by the loop: `{init}`"));
        };
        let name = var.split(|c: char| !is_ident(c)).next().unwrap_or("");
        let step = step.replace(' ', "");
        let growing = cond.starts_with(&format!("{name} <")) && {
            let by = step
                .strip_prefix(&format!("{name}={name}+"))
                .or_else(|| step.strip_prefix(&format!("{name}+=")));
            step == format!("{name}++")
                || by.is_some_and(|s| {
                    POSITIVE_STEPS.contains(&s) || s.trim_end_matches('u').parse::<u64>().is_ok_and(|v| v > 0)
                })
        };
        let halving = cond.replace(' ', "") == format!("{name}>0u")
            && (step == format!("{name}={name}/2u") || step == format!("{name}/=2u"));
        if !growing && !halving {
            return Some(format!(
                "`{cond}; {step}` is neither a counter growing to a bound nor one halving to zero"
            ));
        }
        if assigns(body, name) {
            return Some(format!("the body assigns the counter `{name}`"));
        }
        None
    }

    #[test]
    fn every_loop_ends() {
        let mut faults = vec![];
        let mut for_loops = 0;
        for (shader, source) in sources() {
            let code = code(source);
            for at in word_at(&code, "for") {
                let open = at + code[at..].find('(').expect("a for loop has a header");
                let header = bracketed(&code, open, '(', ')');
                let brace = open + code[open..].find('{').expect("a for loop has a body");
                let body = bracketed(&code, brace, '{', '}');
                for_loops += 1;
                if let Some(fault) = for_loop_fault(header, body) {
                    faults.push(format!("{shader}: for ({header}): {fault}"));
                }
            }
            if !word_at(&code, "while").is_empty() {
                faults.push(format!("{shader}: a while loop (write a for loop with a bound)"));
            }
            let loops = word_at(&code, "loop").len();
            let known = ENDING_LOOPS.iter().filter(|(s, _)| *s == shader).count();
            if loops != known {
                faults.push(format!(
                    "{shader}: {loops} loop statements, {known} listed in ENDING_LOOPS with why they end"
                ));
            }
        }
        assert!(faults.is_empty(), "loops that may not end:\n{}", faults.join("\n"));
        assert!(for_loops > 30, "only {for_loops} for loops found: the scan is broken");
    }

    #[test]
    fn every_shader_file_is_a_kernel_source() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("shaders/ is readable") {
            let path = entry.expect("shaders/ is readable").path();
            if path.extension().is_some_and(|e| e == "wgsl") {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("a shader is readable");
                assert!(
                    sources().iter().any(|(_, source)| source.contains(text.as_str())),
                    "{} is in no kernel's source, so its loops go unchecked",
                    path.display()
                );
            }
        }
        let distinct: std::collections::HashSet<&str> = sources().into_iter().map(|(_, source)| source).collect();
        assert!(
            files >= distinct.len(),
            "{files} shader files for {} sources",
            distinct.len()
        );
    }

    #[test]
    fn the_loop_check_catches_loops_that_may_not_end() {
        let ends = |header: &str, body: &str| for_loop_fault(header, body).is_none();
        assert!(ends("var i = 0u; i < n; i++", "x += 1.0;"));
        assert!(ends("var t: u32 = lid; t < n; t = t + 64u", ""));
        assert!(ends("var e: u32 = lid; e < c * p; e = e + WG", ""));
        assert!(ends("var s: u32 = 32u; s > 0u; s = s / 2u", "y = s;"));
        assert!(!ends("var i = 0u; i < n; i = i + step", ""), "an unknown step may be 0");
        assert!(!ends("var i = 0u; i < n; i = i + 0u", ""));
        assert!(!ends("var i = n; i > 0u; i--", ""), "counting down is not checked");
        assert!(
            !ends("var i = 0u; i < n; i++", "i = 0u;"),
            "the body resets the counter"
        );
        assert!(!ends("var i = 0u; i < n; i++", "if (a) { i -= 1u; }"));
        assert!(ends("var i = 0u; i < n; i++", "if (i == 3u) { break; }"));
        assert!(!ends("; i < n; i++", ""), "a counter from outside the loop");
        let code = code("loop { } // while\nwhile (true) {}");
        assert_eq!(word_at(&code, "loop").len(), 1);
        assert_eq!(word_at(&code, "while").len(), 1);
        assert!(word_at("loops for_each", "loop").is_empty());
        assert!(word_at("loops for_each", "for").is_empty());
    }
}
