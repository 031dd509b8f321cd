//! Shared test helpers: fresh seeds, a small PRNG, the test GPU, a run's records.

use emolime::gpu::{self, GpuContext};

/// A fresh seed for each run (printed, so a failure can be replayed with EMOLIME_TEST_SEED).
pub fn fresh_seed(test: &str) -> u64 {
    let seed = std::env::var("EMOLIME_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: EMOLIME_TEST_SEED={seed}");
    seed
}

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The adapter GPU tests run on: `EMOLIME_TEST_ADAPTER` or the first one (lavapipe in CI).
/// Without any adapter the GPU tests fail, unless EMOLIME_SKIP_GPU_TESTS=1 says to skip them.
pub fn gpu() -> Option<GpuContext> {
    let instance = gpu::new_instance();
    let adapters = gpu::adapters(&instance);
    if adapters.is_empty() {
        if std::env::var("EMOLIME_SKIP_GPU_TESTS").as_deref() == Ok("1") {
            eprintln!("no wgpu adapter: GPU test skipped (EMOLIME_SKIP_GPU_TESTS=1)");
            return None;
        }
        panic!("no wgpu adapter found: install mesa-vulkan-drivers (or set EMOLIME_SKIP_GPU_TESTS=1)");
    }
    let index = std::env::var("EMOLIME_TEST_ADAPTER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some(GpuContext::new(instance, index).expect("open the test adapter"))
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The test adapter opened as a compute device (Burn on the shared wgpu device), or None when
/// GPU tests are skipped.
pub fn gpu_device() -> Option<emolime::device::ComputeDevice> {
    gpu()?;
    let index = std::env::var("EMOLIME_TEST_ADAPTER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some(emolime::device::ComputeDevice::open(emolime::device::DeviceSpec::Gpu(index)).expect("open the test device"))
}

/// `n` masks over `b` bands drawn as an explanation draws them (keep probability 0.5, sample 0
/// keeping every band; the last removing every band when `include_empty`).
///
/// # Shapes
/// returns `[n, b]`
pub fn random_masks(n: usize, b: usize, seed: u64, include_empty: bool) -> ndarray::Array2<f32> {
    let cfg = emolime::sampling::MaskConfig {
        samples: emolime::sampling::SampleCount::Random(n),
        keep_prob: 0.5,
        seed,
    };
    emolime::sampling::sample_masks(&cfg, b, include_empty).expect("valid mask settings")
}

/// The explanation records of the run folder `dir` (its `explanations.jsonl`), in file order.
pub fn read_records(dir: &std::path::Path) -> Vec<emolime::explain::ExplanationRecord> {
    std::fs::read_to_string(dir.join("explanations.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
