//! Surrogate throughput: LIME fits (all classes) per second, CPU twin and GPU kernel.

mod common;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::gpu::ops::{FitInputs, encode_fit, fit_gpu, read_fits};
use emolime::sampling::{KernelKind, MaskConfig, SampleCount, kernel_weights, sample_masks};
use emolime::surrogate::{SurrogateConfig, SurrogateDesign, fit_cpu};
use ndarray::Array3;

/// `(samples N, bands B, classes C, utterances U)`: the demo's shape, and the shape of issue
/// #10's target (10,000 utterances x 8 classes x 1000 samples x 16 bands), per dispatch of 256.
const SHAPES: [(usize, usize, usize, usize); 2] = [(1000, 8, 4, 32), (1000, 16, 8, 256)];

fn surrogate(c: &mut Criterion) {
    let dev = common::bench_device();
    let mut g = c.benchmark_group("surrogate");
    for (n, b, classes, utts) in SHAPES {
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
        let shape = format!("{utts}utts_{n}x{b}x{classes}");
        g.throughput(Throughput::Elements(utts as u64));
        g.bench_function(format!("cpu_{shape}"), |bch| {
            bch.iter(|| {
                for u in 0..utts {
                    fit_cpu(masks.view(), &weights, preds.index_axis(ndarray::Axis(0), u), &cfg).unwrap();
                }
            })
        });
        // As an explanation run fits: the design built once, then one fit per utterance.
        let design = SurrogateDesign::new(masks.view(), &weights, &cfg).unwrap();
        g.bench_function(format!("cpu_design_reused_{shape}"), |bch| {
            bch.iter(|| {
                for u in 0..utts {
                    design.fit(preds.index_axis(ndarray::Axis(0), u)).unwrap();
                }
            })
        });
        if let Some(ctx) = &dev.gpu {
            g.bench_function(format!("gpu_{shape}"), |bch| {
                bch.iter(|| fit_gpu(ctx, masks.view(), &weights, preds.view(), &cfg).unwrap())
            });
            // As an explanation run fits: design and outputs already on the device, one
            // dispatch and the read-back of the coefficients.
            let inputs = FitInputs::upload(ctx, &design);
            let flat = preds.as_standard_layout();
            let pred_buf = ctx.upload("preds", flat.as_slice().unwrap());
            g.bench_function(format!("gpu_dispatch_{shape}"), |bch| {
                bch.iter(|| {
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    let out = encode_fit(ctx, &mut enc, &inputs, pred_buf.as_entire_binding(), utts, classes).unwrap();
                    ctx.queue.submit([enc.finish()]);
                    read_fits(ctx, &out, utts, classes, b).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, surrogate);
criterion_main!(benches);
