//! Surrogate throughput: LIME fits (all classes) per second, CPU twin and GPU kernel.

mod common;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::gpu::ops::fit_gpu;
use emolime::sampling::{KernelKind, MaskConfig, SampleCount, kernel_weights, sample_masks};
use emolime::surrogate::{SurrogateConfig, fit_cpu};
use ndarray::Array3;

fn surrogate(c: &mut Criterion) {
    let (n, b, classes, utts) = (1000usize, 8usize, 4usize, 32usize);
    let masks = sample_masks(
        &MaskConfig {
            samples: SampleCount::Random(n),
            keep_prob: 0.5,
            seed: 3,
        },
        b,
        false,
    )
    .unwrap();
    let weights = kernel_weights(&masks, KernelKind::Lime { width: 0.25 }).unwrap();
    let preds = Array3::from_shape_fn((utts, n, classes), |(u, i, k)| common::noise(u * 100_000 + i * 10 + k));
    let cfg = SurrogateConfig::default();
    let mut g = c.benchmark_group("surrogate");
    g.throughput(Throughput::Elements(utts as u64));
    g.bench_function("cpu_32utts_1000x8x4", |bch| {
        bch.iter(|| {
            for u in 0..utts {
                fit_cpu(masks.view(), &weights, preds.index_axis(ndarray::Axis(0), u), &cfg).unwrap();
            }
        })
    });
    let dev = common::bench_device();
    if let Some(ctx) = &dev.gpu {
        g.bench_function("gpu_32utts_1000x8x4", |bch| {
            bch.iter(|| fit_gpu(ctx, masks.view(), &weights, preds.view(), &cfg).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, surrogate);
criterion_main!(benches);
