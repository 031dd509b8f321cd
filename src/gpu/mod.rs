//! The wgpu side: adapters, the shared device, compute pipelines and buffers.
//!
//! One [`GpuContext`] owns the `wgpu::Device` and `Queue` that both emolime's kernels and the
//! Burn model use, and every pipeline and bind group layout, built once at start-up.

pub mod errors;
pub mod griffin_lim;
pub mod interop;
pub mod kernels;
pub mod ops;
pub mod shaders;

use crate::error::{Error, Result};
use serde::Serialize;
use std::sync::Arc;

/// What `emolime devices` prints about one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterSummary {
    /// Index for `--device gpu:N`.
    pub index: usize,
    /// Adapter name, e.g. `NVIDIA H100` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// Graphics API (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// Discrete, integrated, virtual or CPU.
    pub device_type: String,
    /// Largest storage buffer binding in bytes.
    pub max_storage_binding_bytes: u64,
    /// Largest buffer in bytes.
    pub max_buffer_bytes: u64,
    /// Largest workgroup count per dispatch dimension.
    pub max_workgroups_per_dim: u32,
    /// Size of the largest device-local memory heap in bytes, where the backend tells
    /// ([`device_memory_bytes`]).
    pub device_memory_bytes: Option<u64>,
}

/// Creates the wgpu instance every adapter query goes through: backends from `WGPU_BACKEND`
/// when it is set; else the primary ones (Vulkan, Metal, DX12), and OpenGL only when they find
/// no adapter at all (probing GL costs time and can print spurious errors; `WGPU_BACKEND=gl`
/// asks for it outright).
pub fn new_instance() -> wgpu::Instance {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env;
    if std::env::var_os("WGPU_BACKEND").is_some() {
        return wgpu::Instance::new(desc());
    }
    let mut primary = desc();
    primary.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(primary);
    if adapters(&instance).is_empty() {
        wgpu::Instance::new(desc())
    } else {
        instance
    }
}

/// All adapters, in wgpu's order (the index used by `--device gpu:N`).
pub fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// Summarises one adapter.
pub fn summarize(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    AdapterSummary {
        index,
        name: info.name,
        vendor: info.vendor,
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        device_type: format!("{:?}", info.device_type),
        max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
        max_buffer_bytes: limits.max_buffer_size,
        max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
        device_memory_bytes: device_memory_bytes(adapter),
    }
}

/// The size in bytes of the adapter's largest device-local memory heap, on Vulkan (on
/// integrated and software adapters such as lavapipe that heap is host memory); `None` on
/// other backends, which do not say.
pub fn device_memory_bytes(adapter: &wgpu::Adapter) -> Option<u64> {
    #[cfg(not(any(target_vendor = "apple", target_arch = "wasm32")))]
    {
        // SAFETY: only reads the physical device's memory properties through the raw handles;
        // nothing is created or destroyed, and the guard is dropped before returning.
        let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
        let props = unsafe {
            hal.shared_instance()
                .raw_instance()
                .get_physical_device_memory_properties(hal.raw_physical_device())
        };
        // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT
        const DEVICE_LOCAL: u32 = 0x1;
        props
            .memory_heaps_as_slice()
            .iter()
            .filter(|h| h.flags.as_raw() & DEVICE_LOCAL != 0)
            .map(|h| h.size)
            .max()
    }
    #[cfg(any(target_vendor = "apple", target_arch = "wasm32"))]
    {
        let _ = adapter;
        None
    }
}

/// Picks the adapter `--device auto` uses: a discrete GPU, else integrated, else virtual, else
/// a CPU (software) adapter; Vulkan/Metal/DX12 before GL. Returns its index.
pub fn auto_adapter(adapters: &[wgpu::Adapter]) -> Option<usize> {
    let rank = |a: &wgpu::Adapter| {
        let info = a.get_info();
        let ty = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        let api = if info.backend == wgpu::Backend::Gl { 1 } else { 0 };
        (ty, api)
    };
    (0..adapters.len()).min_by_key(|&i| rank(&adapters[i]))
}

/// Opens the logical device on `adapter` as CubeCL would, so that Burn can adopt it: every
/// adapter feature but mappable primary buffers, the adapter's limits.
///
/// In a build with the `spirv` feature, a Vulkan adapter that CubeCL's SPIR-V compiler accepts
/// is opened through CubeCL's own Vulkan request, which also enables the extensions its kernels
/// use (the Vulkan memory model, cooperative matrices where the driver has them); Burn's
/// kernels are then compiled to SPIR-V instead of WGSL. Other adapters open as without it.
fn request_device(
    adapter: &wgpu::Adapter,
    limits: &wgpu::Limits,
) -> std::result::Result<(wgpu::Device, wgpu::Queue), String> {
    #[cfg(feature = "spirv")]
    if adapter.get_info().backend == wgpu::Backend::Vulkan {
        // Mesa's lavapipe (22.3) crashes the process compiling CubeCL's SPIR-V matmul kernel.
        if adapter.get_info().device_type == wgpu::DeviceType::Cpu {
            return Err(
                "this build compiles Burn's kernels to SPIR-V (feature `spirv`), which software Vulkan \
                        (lavapipe) crashes on; use a build without the feature, or --device cpu"
                    .into(),
            );
        }
        let native = pollster::block_on(burn::cubecl::wgpu::vulkan::try_request_vulkan_device(adapter))
            .map_err(|e| format!("{e:?}"))?;
        if let Some(pair) = native {
            return Ok(pair);
        }
    }
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("emolime"),
        required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        required_limits: limits.clone(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        trace: wgpu::Trace::Off,
        // SAFETY: as CubeCL requests its devices; emolime itself uses no experimental feature.
        experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
    }))
    .map_err(|e| e.to_string())
}

/// The shared wgpu device, its queue and emolime's compiled kernels. Clones share them.
#[derive(Clone)]
pub struct GpuContext {
    /// The instance the adapter came from.
    pub instance: wgpu::Instance,
    /// The chosen adapter.
    pub adapter: wgpu::Adapter,
    /// The logical device (shared with Burn).
    pub device: wgpu::Device,
    /// The queue (shared with Burn).
    pub queue: wgpu::Queue,
    /// What the adapter is.
    pub summary: AdapterSummary,
    /// The device's limits.
    pub limits: wgpu::Limits,
    /// Compiled pipelines.
    pub kernels: Arc<kernels::Kernels>,
    /// Errors the device reported outside any call, raised by [`GpuContext::read_f32`].
    pub errors: errors::DeviceErrors,
}

impl GpuContext {
    /// Opens adapter `index` (as listed by [`adapters`]); each of emolime's kernels is compiled on
    /// its first use ([`kernels::Kernels::get`]).
    ///
    /// The device is requested as CubeCL does (all adapter features but mappable primary
    /// buffers, the adapter's limits), so Burn can adopt it.
    pub fn new(instance: wgpu::Instance, index: usize) -> Result<Self> {
        let all = adapters(&instance);
        let adapter = all
            .get(index)
            .cloned()
            .ok_or_else(|| Error::Device(format!("no adapter gpu:{index} ({} adapters found)", all.len())))?;
        let summary = summarize(index, &adapter);
        let limits = adapter.limits();
        let (device, queue) = request_device(&adapter, &limits)
            .map_err(|e| Error::Device(format!("{}: cannot open device: {e}", summary.name)))?;
        let errors = errors::DeviceErrors::default();
        errors.watch(&device);
        let kernels = Arc::new(kernels::Kernels::new(&device));
        Ok(GpuContext {
            instance,
            adapter,
            device,
            queue,
            summary,
            limits,
            kernels,
            errors,
        })
    }

    /// Largest storage binding in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Device(format!("waiting for the gpu: {e}")))
    }

    /// Creates a storage buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        let contents: &[u8] = bytemuck::cast_slice(data);
        // Zero-sized bindings are invalid: keep at least 4 bytes.
        let padded;
        let contents = if contents.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            contents
        };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Creates an uninitialised storage buffer of `bytes` bytes (at least 4).
    pub fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Creates a uniform buffer from a params struct.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Copies `len` f32 values from the start of `buffer` back to the CPU. An error the device
    /// reported since the last read-back ([`errors::DeviceErrors`]) is returned instead: the
    /// values may come from a buffer that was never allocated.
    pub fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let read = self.encode_read(&mut enc, buffer, 0, len);
        let index = self.queue.submit([enc.finish()]);
        read.finish(self, index)
    }

    /// Records into `enc` a copy of `len` f32 values of `buffer` from byte `offset` to a
    /// staging buffer; after `enc` is submitted, [`PendingRead::finish`] waits for that
    /// submission alone (not for later ones) and returns the values.
    pub fn encode_read(
        &self,
        enc: &mut wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        offset: u64,
        len: usize,
    ) -> PendingRead {
        let bytes = (len * 4) as u64;
        let staging = (bytes > 0).then(|| {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("emolime readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, bytes);
            staging
        });
        PendingRead { staging }
    }
}

/// Values being copied from the device to the host ([`GpuContext::encode_read`]).
pub struct PendingRead {
    /// `None` for an empty read.
    staging: Option<wgpu::Buffer>,
}

impl PendingRead {
    /// Waits for the submission `index` that holds the copy and returns the values; a device
    /// error reported since the last check is raised instead ([`errors`]).
    pub fn finish(self, ctx: &GpuContext, index: wgpu::SubmissionIndex) -> Result<Vec<f32>> {
        let Some(staging) = self.staging else {
            return Ok(vec![]);
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::Device(format!("waiting for the gpu: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Device("readback callback never ran".into()))?
            .map_err(|e| Error::Device(format!("readback failed: {e}")))?;
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Device(format!("readback map failed: {e:?}")))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        ctx.errors.take()?;
        Ok(out)
    }
}

/// A storage buffer that grows to fit and is otherwise reused across utterances.
pub struct GrowBuffer {
    label: &'static str,
    buffer: Option<wgpu::Buffer>,
}

impl GrowBuffer {
    /// An empty slot; the buffer is created on first use.
    pub fn new(label: &'static str) -> Self {
        GrowBuffer { label, buffer: None }
    }

    /// A buffer of at least `bytes` bytes, reallocated only when it must grow.
    pub fn ensure(&mut self, ctx: &GpuContext, bytes: u64) -> &wgpu::Buffer {
        let need = bytes.max(4).next_multiple_of(4);
        if self.buffer.as_ref().is_none_or(|b| b.size() < need) {
            self.buffer = Some(ctx.storage(self.label, need));
        }
        self.buffer.as_ref().expect("set above")
    }

    /// Writes `data` at the start of the buffer, growing it if needed.
    pub fn write<T: bytemuck::Pod>(&mut self, ctx: &GpuContext, data: &[T]) -> &wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.ensure(ctx, bytes.len() as u64);
        if !bytes.is_empty() {
            ctx.queue.write_buffer(buf, 0, bytes);
        }
        buf
    }
}
