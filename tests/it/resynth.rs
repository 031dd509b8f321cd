//! Phase-preserving band resynthesis: sample 0 is the input, bands split by frequency, and the
//! GPU kernel against its CPU twin.

use crate::common::{Rng, fresh_seed, gpu, max_abs_diff};
use emolime::audio::{FrontEndConfig, MelScale};
use emolime::bands::{BandConfig, BandKind, BandLayout};
use emolime::gpu::ops::resynth_to_host;
use emolime::perturb::FillMode;
use emolime::resynth::{BandSignals, bin_bands, resynth_cpu};
use emolime::sampling::{MaskConfig, SampleCount, sample_masks};
use ndarray::Array2;

fn default_layout() -> BandLayout {
    BandLayout::new(&BandConfig::default(), 128, 0.0, 8000.0, MelScale::Slaney).unwrap()
}

/// Harmonics with a wandering pitch plus noise: something like a voice.
fn voice(rng: &mut Rng, n: usize) -> Vec<f32> {
    let f0 = 90.0 + 150.0 * rng.f32();
    let noise: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
    (0..n)
        .map(|i| {
            let t = i as f32 / 16000.0;
            let pitch = f0 * (1.0 + 0.1 * (6.0 * t).sin());
            (1..12)
                .map(|h| (std::f32::consts::TAU * pitch * h as f32 * t).sin() / h as f32)
                .sum::<f32>()
                * 0.2
                + 0.05 * noise[i]
        })
        .collect()
}

fn masks(seed: u64, n: usize, b: usize) -> Array2<f32> {
    sample_masks(
        &MaskConfig {
            samples: SampleCount::Random(n),
            keep_prob: 0.5,
            seed,
        },
        b,
        false,
    )
    .unwrap()
}

#[test]
fn sample_zero_is_the_input_on_cpu_and_gpu() {
    let ctx = gpu();
    let seed = fresh_seed("resynth sample 0");
    let mut rng = Rng(seed);
    let fe = FrontEndConfig::default();
    let stft = fe.stft().unwrap();
    let layout = default_layout();
    let bins = bin_bands(&layout, fe.n_fft, fe.sample_rate_hz).unwrap();
    let len = 4000 + rng.below(30000);
    let x = voice(&mut rng, len);
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let m = masks(seed, 16, layout.n_bands());
    for fill in [FillMode::Zero, FillMode::Mean, FillMode::Noise] {
        let bands = BandSignals::new(&stft, &bins, layout.n_bands(), &x, fill, seed).unwrap();
        let mut out = Array2::<f32>::zeros((2, x.len()));
        resynth_cpu(bands.rows.view(), m.view(), 0, out.view_mut()).unwrap();
        let err = max_abs_diff(out.row(0).as_slice().unwrap(), &x);
        assert!(
            err <= 1e-5 * peak,
            "{fill:?}: cpu sample 0 differs from the input by {err} (peak {peak})"
        );
        if let Some(ctx) = &ctx {
            let got = resynth_to_host(ctx, bands.rows.view(), m.view(), 0, 2).unwrap();
            let err = max_abs_diff(got.row(0).as_slice().unwrap(), &x);
            assert!(
                err <= 1e-5 * peak,
                "{fill:?}: gpu sample 0 differs from the input by {err} (peak {peak})"
            );
        }
    }
}

#[test]
fn removing_a_band_removes_its_frequencies_only() {
    let fe = FrontEndConfig::default();
    let stft = fe.stft().unwrap();
    let layout = default_layout();
    let bins = bin_bands(&layout, fe.n_fft, fe.sample_rate_hz).unwrap();
    let n = 16000;
    let tone = |hz: f32| -> Vec<f32> {
        (0..n)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / 16000.0).sin() * 0.5)
            .collect()
    };
    let (low, high) = (tone(500.0), tone(3000.0));
    let x: Vec<f32> = low.iter().zip(&high).map(|(a, b)| a + b).collect();
    let band_of = |hz: f32| {
        layout
            .edges_hz
            .windows(2)
            .position(|w| hz >= w[0] && hz < w[1])
            .unwrap()
    };
    let (b_low, b_high) = (band_of(500.0), band_of(3000.0));
    assert_ne!(b_low, b_high);
    let bands = BandSignals::new(&stft, &bins, layout.n_bands(), &x, FillMode::Zero, 0).unwrap();
    let mut mask = Array2::<f32>::ones((1, layout.n_bands()));
    mask[[0, b_high]] = 0.0;
    let mut out = Array2::<f32>::zeros((1, n));
    resynth_cpu(bands.rows.view(), mask.view(), 0, out.view_mut()).unwrap();
    // Away from the edges, what is left is the low tone.
    let inner = 2048..n - 2048;
    let err = max_abs_diff(&out.row(0).as_slice().unwrap()[inner.clone()], &low[inner]);
    assert!(err < 1e-3, "removing the 3 kHz band left {err} of something else");
}

#[test]
fn resynth_kernel_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let seed = fresh_seed("resynth kernel");
    let mut rng = Rng(seed);
    let (b, s) = (2 + rng.below(20), 1 + rng.below(5000));
    let rows = Array2::from_shape_fn((b + 1, s), |_| rng.f32() * 2.0 - 1.0);
    let m = masks(seed, 50, b);
    let (offset, chunk) = (rng.below(20), 1 + rng.below(30));
    let mut want = Array2::<f32>::zeros((chunk, s));
    resynth_cpu(rows.view(), m.view(), offset, want.view_mut()).unwrap();
    let got = resynth_to_host(&ctx, rows.view(), m.view(), offset, chunk).unwrap();
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "resynth {g} vs {w}");
    }
}

#[test]
fn shapes_and_bands_are_checked() {
    let rows = Array2::<f32>::zeros((5, 100));
    let m = masks(1, 10, 3); // 3 bands, rows say 4
    let mut out = Array2::<f32>::zeros((2, 100));
    assert!(resynth_cpu(rows.view(), m.view(), 0, out.view_mut()).is_err());
    let m = masks(1, 10, 4);
    assert!(
        resynth_cpu(rows.view(), m.view(), 9, out.view_mut()).is_err(),
        "offset past the masks"
    );
    // A band above the Nyquist frequency holds no STFT bin.
    let cfg = BandConfig {
        kind: BandKind::Custom(vec![0.0, 1000.0, 8500.0, 9000.0]),
        n_bands: 3,
    };
    let layout = BandLayout::new(&cfg, 512, 0.0, 9000.0, MelScale::Slaney).unwrap();
    let err = bin_bands(&layout, 2048, 16000).unwrap_err().to_string();
    assert!(err.contains("holds no stft bin"), "{err}");
}
