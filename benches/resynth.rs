//! Band resynthesis: the per-utterance band split (CPU FFT work) and the perturbed-waveform mix
//! `[N, B + 1] x [B + 1, S]`, CPU twin and GPU kernel; and EmoLIME's Griffin-Lim resynthesis
//! (`--resynthesis griffin-lim`) of masked mel spectrograms, host threads and device kernels.

mod common;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::audio::{FrontEndConfig, MelScale};
use emolime::bands::{BandConfig, BandLayout};
use emolime::gpu::ops::{ResynthInputs, resynth_into};
use emolime::perturb::FillMode;
use emolime::resynth::{BandSignals, bin_bands, resynth_cpu};
use ndarray::Array2;

fn resynth(c: &mut Criterion) {
    let fe = FrontEndConfig::default();
    let stft = fe.stft().unwrap();
    let layout = BandLayout::new(&BandConfig::default(), 128, 0.0, 8000.0, MelScale::Slaney).unwrap();
    let b = layout.n_bands();
    let bins = bin_bands(&layout, fe.n_fft, fe.sample_rate_hz).unwrap();
    let s = 3 * 16000; // 3 s of audio
    let x: Vec<f32> = (0..s).map(|i| common::noise(i) - 0.5).collect();
    let n = 256;
    let masks = common::masks(n, b);
    let mut g = c.benchmark_group("resynth");
    g.throughput(Throughput::Elements(1));
    for fill in [FillMode::Zero, FillMode::Mean] {
        g.bench_function(format!("band_split_{fill:?}_3s_8bands"), |bch| {
            bch.iter(|| BandSignals::new(&stft, &bins, b, &x, fill, 1).unwrap())
        });
    }
    let bands = BandSignals::new(&stft, &bins, b, &x, FillMode::Zero, 1).unwrap();
    g.throughput(Throughput::Elements(n as u64));
    let mut out = Array2::<f32>::zeros((n, s));
    g.bench_function("cpu_mix_256x3s_8bands", |bch| {
        bch.iter(|| resynth_cpu(bands.rows.view(), masks.view(), 0, out.view_mut()).unwrap())
    });
    let dev = common::bench_device();
    if let Some(ctx) = &dev.gpu {
        let rows = ctx.upload("rows", bands.rows.as_slice().unwrap());
        let mask_b = ctx.upload("masks", masks.as_slice().unwrap());
        let out = ctx.storage("out", (n * s * 4) as u64);
        let inputs = ResynthInputs {
            rows: &rows,
            masks: &mask_b,
            n_samples: s,
            n_bands: b,
        };
        g.bench_function("gpu_mix_256x3s_8bands", |bch| {
            bch.iter(|| {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                resynth_into(ctx, &mut enc, &inputs, 0, n, 0, out.as_entire_binding()).unwrap();
                ctx.queue.submit([enc.finish()]);
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
}

/// 16 waveforms of 1 s from masked mel spectrograms, 32 iterations (the default front end:
/// 2048-point FFT, hop 512, 128 mel rows).
fn griffin_lim(c: &mut Criterion) {
    use emolime::gpu::griffin_lim::GpuGriffinLim;
    use emolime::griffin_lim::{GriffinLimConfig, GriffinLimSynth};
    let fe = FrontEndConfig::default();
    let synth = std::sync::Arc::new(
        GriffinLimSynth::new(
            fe.stft().unwrap(),
            fe.mel_filterbank().unwrap(),
            GriffinLimConfig::default(),
        )
        .unwrap(),
    );
    let layout = BandLayout::new(&BandConfig::default(), 128, 0.0, 8000.0, MelScale::Slaney).unwrap();
    let b = layout.n_bands();
    let s = 16000;
    let x: Vec<f32> = (0..s).map(|i| common::noise(i) - 0.5).collect();
    let signal = synth.prepare(&x).unwrap();
    let n = 16;
    let masks = common::masks(n, b);
    let mut g = c.benchmark_group("griffin_lim");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut out = Array2::<f32>::zeros((n, s));
    g.bench_function("cpu_16x1s_32iters", |bch| {
        bch.iter(|| {
            signal
                .perturbed(
                    &layout.row_band,
                    masks.view(),
                    0,
                    FillMode::Zero,
                    1,
                    threads,
                    out.view_mut(),
                )
                .unwrap()
        })
    });
    let dev = common::bench_device();
    if let Some(ctx) = &dev.gpu {
        let mut gl = GpuGriffinLim::new(ctx, &synth).unwrap();
        gl.load(ctx, &signal).unwrap();
        let row_band = ctx.upload("row band", &layout.row_band);
        let mask_b = ctx.upload("masks", masks.as_slice().unwrap());
        let out = ctx.storage("out", (n * s * 4) as u64);
        g.bench_function("gpu_16x1s_32iters", |bch| {
            bch.iter(|| {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                gl.encode(
                    ctx,
                    &mut enc,
                    &row_band,
                    &mask_b,
                    b,
                    FillMode::Zero,
                    1,
                    0,
                    n,
                    0,
                    out.as_entire_binding(),
                )
                .unwrap();
                ctx.queue.submit([enc.finish()]);
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, resynth, griffin_lim);
criterion_main!(benches);
