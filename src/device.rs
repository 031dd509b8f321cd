//! Choosing where work runs: a wgpu adapter shared by emolime's kernels and Burn, or the CPU.

use crate::error::{Error, Result};
use crate::gpu::{self, GpuContext};
use std::str::FromStr;

/// The `--device` choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A hardware GPU if there is one, else the CPU path (a software adapter such as lavapipe is
    /// slower than Burn's CPU backend, so `auto` does not pick it; name it with `gpu:N`).
    #[default]
    Auto,
    /// Adapter `N` as listed by `emolime devices`.
    Gpu(usize),
    /// Plain Rust CPU twins and Burn's `flex` CPU backend (im2col + gemm convolutions, SIMD,
    /// threads).
    Cpu,
    /// The CPU twins with Burn's older `ndarray` backend (`cpu:ndarray`), kept for comparison.
    CpuNdarray,
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cpu:ndarray" => Ok(DeviceSpec::CpuNdarray),
            "gpu" => Ok(DeviceSpec::Gpu(0)),
            _ => s
                .strip_prefix("gpu:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Gpu)
                .ok_or_else(|| Error::config("device", format!("expected auto, cpu, cpu:ndarray or gpu:N, got `{s}`"))),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Gpu(i) => write!(f, "gpu:{i}"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::CpuNdarray => write!(f, "cpu:ndarray"),
        }
    }
}

/// An opened compute device: the Burn device and, on a GPU, the shared wgpu context.
pub struct ComputeDevice {
    /// Burn's device (wgpu on an adopted adapter, or the CPU backend).
    pub burn: burn::tensor::Device,
    /// The wgpu context when running on a GPU.
    pub gpu: Option<GpuContext>,
    /// One line saying what this is, for logs and outputs.
    pub description: String,
}

impl ComputeDevice {
    /// Opens the device `spec` names.
    pub fn open(spec: DeviceSpec) -> Result<Self> {
        let index = match spec {
            DeviceSpec::Cpu => return Ok(Self::cpu("cpu (requested)")),
            DeviceSpec::CpuNdarray => {
                #[allow(deprecated)]
                let burn = burn::tensor::Device::ndarray();
                return Ok(ComputeDevice {
                    burn,
                    gpu: None,
                    description: "cpu (requested, burn ndarray backend)".into(),
                });
            }
            DeviceSpec::Gpu(i) => i,
            DeviceSpec::Auto => {
                let instance = gpu::new_instance();
                let adapters = gpu::adapters(&instance);
                match auto_hardware_adapter(&adapters) {
                    Some(i) => i,
                    None => return Ok(Self::cpu("cpu (no hardware gpu adapter found)")),
                }
            }
        };
        let ctx = GpuContext::new(gpu::new_instance(), index)?;
        let setup = burn::tensor::wgpu::WgpuSetup {
            instance: ctx.instance.clone(),
            adapter: ctx.adapter.clone(),
            device: ctx.device.clone(),
            queue: ctx.queue.clone(),
            backend: ctx.adapter.get_info().backend,
        };
        let burn = burn::tensor::Device::wgpu_options()
            .setup(setup)
            .init()
            .map_err(|e| Error::Device(format!("burn cannot adopt {}: {e:?}", ctx.summary.name)))?;
        // Burn installed its own handler for the device's errors, which drops them
        // (`gpu::errors`): record them again, and let Burn's read-back find the record.
        ctx.errors.watch(&ctx.device);
        gpu::interop::register_burn_device(&burn, &ctx);
        let s = &ctx.summary;
        let runtime = gpu::interop::burn_runtime_name(&burn)?;
        let description = format!(
            "gpu:{} {} ({}, {}, {}; burn on {runtime})",
            s.index, s.name, s.backend, s.device_type, s.driver
        );
        Ok(ComputeDevice {
            burn,
            gpu: Some(ctx),
            description,
        })
    }

    /// The CPU path (Burn's `flex` backend).
    pub fn cpu(why: &str) -> Self {
        let burn = burn::tensor::Device::flex();
        ComputeDevice {
            burn,
            gpu: None,
            description: why.to_string(),
        }
    }
}

impl Drop for ComputeDevice {
    fn drop(&mut self) {
        if self.gpu.is_some() {
            gpu::interop::unregister_burn_device(&self.burn);
        }
    }
}

/// The adapter `auto` picks: the best-ranked one that is not a software (CPU-type) adapter.
pub fn auto_hardware_adapter(adapters: &[wgpu::Adapter]) -> Option<usize> {
    gpu::auto_adapter(adapters).filter(|&i| adapters[i].get_info().device_type != wgpu::DeviceType::Cpu)
}
