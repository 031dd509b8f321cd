//! Errors a wgpu device reports outside any call (an allocation out of memory, a failed
//! validation), kept per device and raised at the next read-back instead of being lost.
//!
//! wgpu reports such errors to one handler per device. Burn's wgpu runtime installs one that
//! panics on its own device thread, where the panic is caught and dropped: the work that needed
//! the failed allocation then reads back whatever the invalid buffer holds, and a run goes on
//! with wrong numbers (seen on an H100 with the device's memory held by another process).
//! [`DeviceErrors::watch`] replaces that handler with one that records the first error;
//! [`GpuContext::read_f32`](super::GpuContext::read_f32) and the Burn read-back
//! ([`crate::model::read_f32`]) return it as an [`Error`], which is
//! [`Error::DeviceOutOfMemory`] for an allocation that failed, so a model call can be retried
//! with fewer inputs ([`crate::explain::with_halving`]).

use crate::error::{Error, Result};
use std::sync::{Arc, Mutex, PoisonError};

/// The first error a wgpu device reported since it was last taken. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct DeviceErrors {
    first: Arc<Mutex<Option<String>>>,
}

impl DeviceErrors {
    /// Installs the recording handler on `device`, replacing any earlier one (Burn replaces
    /// emolime's when it adopts a device, so [`crate::device::ComputeDevice::open`] installs it
    /// again afterwards).
    pub fn watch(&self, device: &wgpu::Device) {
        let errors = self.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| errors.record(&error.to_string())));
    }

    /// Records `text` as the device's error unless one is pending already (the handler
    /// [`DeviceErrors::watch`] installs; tests record errors of their own).
    pub fn record(&self, text: &str) {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| text.to_string());
    }

    /// Whether an error is pending.
    pub fn is_pending(&self) -> bool {
        self.first.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Takes the pending error, if any: [`Error::DeviceOutOfMemory`] when the device ran out of
    /// memory, else [`Error::Device`]. Work submitted before the error was taken may have used
    /// what failed, so a caller discards its results and, for memory, retries smaller.
    pub fn take(&self) -> Result<()> {
        match self.first.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(text) => Err(Error::device_failure(&format!("the device reported: {text}"))),
            None => Ok(()),
        }
    }
}

/// Takes the error pending on Burn's `device`, if it is a GPU emolime opened
/// ([`DeviceErrors::take`]); `Ok` for the CPU backends.
pub fn check_burn_device(device: &burn::tensor::Device) -> Result<()> {
    super::interop::burn_device_gpu(device).map_or(Ok(()), |ctx| ctx.errors.take())
}
