//! Front-end throughput: STFT power spectrogram (CPU) and mel filterbank (CPU twin and GPU).

mod common;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::audio::FrontEndConfig;
use emolime::gpu::ops::GpuMel;

fn front_end(c: &mut Criterion) {
    let fe = FrontEndConfig::default();
    let stft = fe.stft().unwrap();
    let fb = fe.mel_filterbank().unwrap();
    let seconds = 3.0;
    let signal: Vec<f32> = (0..(seconds * fe.sample_rate_hz as f32) as usize)
        .map(|i| common::noise(i) - 0.5)
        .collect();
    let mut g = c.benchmark_group("front_end");
    g.throughput(Throughput::Elements(signal.len() as u64));
    g.bench_function("stft_power_3s_cpu", |b| b.iter(|| stft.power(&signal).unwrap()));
    let power = stft.power(&signal).unwrap();
    g.throughput(Throughput::Elements(power.ncols() as u64));
    g.bench_function("mel_cpu_frames", |b| b.iter(|| fb.apply(power.view()).unwrap()));
    let dev = common::bench_device();
    if let Some(ctx) = &dev.gpu {
        let mut gm = GpuMel::new(ctx, &fb);
        g.bench_function("mel_gpu_frames", |b| {
            b.iter(|| {
                gm.run(ctx, power.view()).unwrap();
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, front_end);
criterion_main!(benches);
