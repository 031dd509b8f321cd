//! Sharing buffers with Burn: a Burn tensor's wgpu buffer bound as a storage binding of our kernels.

use crate::error::{Error, Result};
use burn::backend::Cube;
use burn::backend::wgpu::{AutoCompiler, CubeTensor};
use burn::cubecl::wgpu::WgpuServer;
use burn::tensor::{DType, Device, Tensor};
use std::sync::{Arc, Mutex, PoisonError};

/// The GPUs emolime opened for Burn, looked up by Burn's device (equality ignores autodiff):
/// the Burn read-back takes a device's errors from here ([`super::errors::check_burn_device`]),
/// and a model finds the shared wgpu device its own kernels run on ([`burn_device_gpu`]).
static BURN_GPUS: Mutex<Vec<(Device, Arc<super::GpuContext>)>> = Mutex::new(Vec::new());

/// Records that Burn's `device` computes on `ctx`'s wgpu device.
pub fn register_burn_device(device: &Device, ctx: &super::GpuContext) {
    let mut all = BURN_GPUS.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|(d, _)| d != device);
    all.push((device.clone(), Arc::new(ctx.clone())));
}

/// Forgets `device` (when the device is closed).
pub fn unregister_burn_device(device: &Device) {
    BURN_GPUS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|(d, _)| d != device);
}

/// The wgpu context behind Burn's `device` when emolime opened it ([`register_burn_device`]);
/// `None` for the CPU backends.
pub fn burn_device_gpu(device: &Device) -> Option<Arc<super::GpuContext>> {
    BURN_GPUS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(d, _)| d == device)
        .map(|(_, ctx)| ctx.clone())
}

/// Burn's wgpu tensor as CubeCL holds it (its buffer handle).
fn into_cube<const D: usize>(tensor: Tensor<D>) -> Result<CubeTensor> {
    tensor
        .try_into_primitive::<Cube>()
        .map_err(|e| Error::Device(format!("tensor is not on a wgpu device: {e:?}")))
}

/// The inverse of [`into_cube`].
fn from_cube<const D: usize>(cube: CubeTensor) -> Tensor<D> {
    Tensor::<D>::from_primitive::<Cube>(cube)
}

/// A Burn tensor whose memory is pinned while our kernels read or write it.
pub struct BoundTensor<const D: usize> {
    tensor: Tensor<D>,
    buffer: wgpu::Buffer,
    offset: u64,
    size: u64,
    _pin: Box<dyn std::any::Any>,
}

impl<const D: usize> BoundTensor<D> {
    /// Pins `tensor` (a contiguous f32 tensor on a wgpu device) and finds its buffer.
    pub fn new(tensor: Tensor<D>) -> Result<Self> {
        let cube = into_cube(tensor)?;
        let cube = if cube.is_contiguous() {
            cube
        } else {
            burn::backend::wgpu::into_contiguous(cube)
        };
        if cube.dtype != DType::F32 {
            return Err(Error::Device(format!("expected an f32 tensor, got {:?}", cube.dtype)));
        }
        let pinned = cube
            .client
            .get_resource::<WgpuServer<AutoCompiler>>(cube.handle.clone())
            .map_err(|e| Error::Device(format!("cannot reach the tensor's buffer: {e:?}")))?;
        let r = pinned.resource();
        let (buffer, offset, size) = (r.buffer.clone(), r.offset, r.size);
        let tensor = from_cube::<D>(cube);
        Ok(BoundTensor {
            tensor,
            buffer,
            offset,
            size,
            _pin: Box::new(pinned),
        })
    }

    /// Allocates an uninitialised f32 tensor of `shape` on `device` and pins it.
    pub fn empty(shape: [usize; D], device: &Device) -> Result<Self> {
        Self::new(Tensor::<D>::empty(shape, device))
    }

    /// The binding our kernels use.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.size.next_multiple_of(4)),
        })
    }

    /// Writes host values into the tensor from value `first` on, through `queue` (applied
    /// before the queue's next submission).
    pub fn write(&self, queue: &wgpu::Queue, first: usize, values: &[f32]) -> Result<()> {
        let (start, bytes) = ((first * 4) as u64, (values.len() * 4) as u64);
        if start + bytes > self.size {
            return Err(Error::shape(
                "tensor write",
                format!("at most {} values", self.size / 4),
                format!("values {first}..{}", first + values.len()),
            ));
        }
        queue.write_buffer(&self.buffer, self.offset + start, bytemuck::cast_slice(values));
        Ok(())
    }

    /// Records a copy of the tensor's values to the host into `enc`, after what `enc` already
    /// holds; submit `enc`, then [`crate::gpu::PendingRead::finish`] gives the values.
    pub fn encode_read(&self, ctx: &crate::gpu::GpuContext, enc: &mut wgpu::CommandEncoder) -> crate::gpu::PendingRead {
        ctx.encode_read(enc, &self.buffer, self.offset, (self.size / 4) as usize)
    }

    /// Releases the pin; call after the commands using [`Self::binding`] are submitted.
    pub fn into_tensor(self) -> Tensor<D> {
        self.tensor
    }
}

/// Submits our encoder after Burn's pending work, so both run in issue order on the one queue;
/// returns the submission, for [`crate::gpu::PendingRead::finish`].
pub fn submit_after_burn(
    device: &Device,
    queue: &wgpu::Queue,
    encoder: wgpu::CommandEncoder,
) -> Result<wgpu::SubmissionIndex> {
    device
        .flush()
        .map_err(|e| Error::Device(format!("flushing burn's queue: {e:?}")))?;
    Ok(queue.submit([encoder.finish()]))
}

/// The name of the CubeCL runtime behind Burn's kernels on the wgpu `device`, naming the
/// compiler that serves it: `wgpu<wgsl>`, or `wgpu<spirv>` in a build with the `spirv` feature
/// on a Vulkan adapter CubeCL accepts.
pub fn burn_runtime_name(device: &Device) -> Result<&'static str> {
    // An empty tensor: no kernel to compile just to reach the client.
    Ok(into_cube(Tensor::<1>::empty([1], device))?.client.name())
}
