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

/// `n` random masks over `b` bands (seed 1, keep probability 0.5, sample 0 keeps every band).
///
/// # Shapes
/// returns `[n, b]`
#[allow(dead_code)] // not every bench samples masks
pub fn masks(n: usize, b: usize) -> ndarray::Array2<f32> {
    use emolime::sampling::{MaskConfig, SampleCount, sample_masks};
    let cfg = MaskConfig {
        samples: SampleCount::Random(n),
        keep_prob: 0.5,
        seed: 1,
    };
    sample_masks(&cfg, b, false).expect("valid mask settings")
}
