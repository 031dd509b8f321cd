//! Perturbation throughput: masked spectrograms per second, CPU twin and GPU kernel.

mod common;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::gpu::ops::{PerturbInputs, perturb_into};
use emolime::perturb::{FillMode, perturb_cpu, row_means};
use ndarray::{Array2, Array3};

fn masking(c: &mut Criterion) {
    let (m, t, b, n) = (128usize, 94usize, 8usize, 256usize);
    let mel = Array2::from_shape_fn((m, t), |(i, j)| common::noise(i * t + j));
    let means = row_means(mel.view());
    let row_band: Vec<u32> = (0..m).map(|r| (r * b / m) as u32).collect();
    let masks = common::masks(n, b);
    let mut g = c.benchmark_group("masking");
    g.throughput(Throughput::Elements(n as u64));
    for fill in [FillMode::Zero, FillMode::Noise] {
        let mut out = Array3::<f32>::zeros((n, m, t));
        g.bench_function(format!("cpu_{fill:?}_256x128x94"), |bch| {
            bch.iter(|| {
                perturb_cpu(
                    mel.view(),
                    means.view(),
                    &row_band,
                    masks.view(),
                    0,
                    fill,
                    1,
                    out.view_mut(),
                )
                .unwrap()
            })
        });
    }
    let dev = common::bench_device();
    if let Some(ctx) = &dev.gpu {
        let mel_b = ctx.upload("mel", mel.as_slice().unwrap());
        let mean_b = ctx.upload("means", means.as_slice().unwrap());
        let band_b = ctx.upload("bands", &row_band);
        let mask_b = ctx.upload("masks", masks.as_slice().unwrap());
        let out = ctx.storage("out", (n * m * t * 4) as u64);
        for fill in [FillMode::Zero, FillMode::Noise] {
            let inputs = PerturbInputs {
                mel: &mel_b,
                row_mean: &mean_b,
                utterances: 0..1,
                row_band: &band_b,
                masks: &mask_b,
                n_mels: m,
                n_frames: t,
                n_bands: b,
                fill,
                seed: 1,
            };
            g.bench_function(format!("gpu_{fill:?}_256x128x94"), |bch| {
                bch.iter(|| {
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    perturb_into(ctx, &mut enc, &inputs, 0, n, 0, out.as_entire_binding()).unwrap();
                    ctx.queue.submit([enc.finish()]);
                    ctx.wait().unwrap();
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, masking);
criterion_main!(benches);
