//! eGeMAPS v02 extraction of one 3 s utterance, whole and by stage: the 20 ms spectral path
//! (loudness, spectra, MFCC, LPC formants), the 60 ms pitch path (SHS spectrum and candidates)
//! and the 88 functionals end to end. One thread; corpus throughput on all cores is measured by
//! `emolime features` (see the README).

#[allow(dead_code)] // the bench device helper is for GPU benches
mod common;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::features::Egemaps;
use emolime::features::pitch::{self, PitchAnalyzer};
use emolime::features::spectral::{self, SpectralAnalyzer};

/// A 3 s voiced-like test signal: a 150 Hz pulse train with vibrato plus a little noise.
fn utterance() -> Vec<f32> {
    let sr = 16_000.0f32;
    let mut phase = 0.0f32;
    (0..48_000)
        .map(|i| {
            let t = i as f32 / sr;
            phase += (150.0 + 20.0 * (std::f32::consts::TAU * 1.3 * t).sin()) / sr;
            0.3 * ((phase % 1.0) - 0.5) + 0.01 * (common::noise(i) - 0.5)
        })
        .collect()
}

fn egemaps(c: &mut Criterion) {
    let x = utterance();
    let xd: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let mut g = c.benchmark_group("egemaps");
    g.throughput(Throughput::Elements(1));
    let mut sp = SpectralAnalyzer::new();
    let n20 = (xd.len() - spectral::FRAME_LEN) / 160 + 1;
    g.bench_function("spectral_path_3s", |b| {
        b.iter(|| {
            sp.reset();
            (0..n20)
                .map(|k| sp.analyse(&xd[k * 160..k * 160 + spectral::FRAME_LEN], true).loudness)
                .sum::<f64>()
        })
    });
    let mut pa = PitchAnalyzer::new();
    let n60 = (xd.len() - pitch::FRAME_LEN) / 160 + 1;
    let mut mags = vec![0.0; pitch::N_BINS];
    g.bench_function("pitch_path_3s", |b| {
        b.iter(|| {
            let frames: Vec<_> = (0..n60)
                .map(|k| pa.analyse(&xd[k * 160..k * 160 + pitch::FRAME_LEN], &mut mags))
                .collect();
            pitch::smooth_f0(&frames)
        })
    });
    let mut eg = Egemaps::new();
    g.bench_function("functionals_3s", |b| b.iter(|| eg.functionals(&x, 16_000).unwrap()));
    g.finish();
}

criterion_group!(benches, egemaps);
criterion_main!(benches);
