//! Shared bench helpers: the bench device (EMOLIME_BENCH_DEVICE=gpu:N|cpu, default auto).

use emolime::device::{ComputeDevice, DeviceSpec};

/// Opens the device named by `EMOLIME_BENCH_DEVICE` (default `auto`).
pub fn bench_device() -> ComputeDevice {
    let spec: DeviceSpec = std::env::var("EMOLIME_BENCH_DEVICE")
        .unwrap_or_else(|_| "auto".into())
        .parse()
        .expect("EMOLIME_BENCH_DEVICE");
    let dev = ComputeDevice::open(spec).expect("open bench device");
    eprintln!("bench device: {}", dev.description);
    dev
}

/// A deterministic pseudo-random value in [0, 1).
pub fn noise(i: usize) -> f32 {
    (emolime::sampling::random_u32(42, 0, i as u32, 0) >> 8) as f32 / 16_777_216.0
}
