//! Scoring throughput: perturbed spectrograms through the CNN per second on the bench device.

mod common;
use burn::tensor::{Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::audio::FrontEndConfig;
use emolime::model::{Example, TrainConfig, read_f32, train};

fn scoring(c: &mut Criterion) {
    let dev = common::bench_device();
    let (m, t) = (128usize, 47usize);
    // An untrained-but-initialised network costs the same to run as a trained one; one epoch on
    // random data gives it real batch-norm statistics.
    let examples: Vec<Example> = (0..8)
        .map(|k| Example {
            mel: (0..m * t).map(|i| common::noise(i + k * 7919)).collect(),
            n_frames: t,
            label: k % 4,
        })
        .collect();
    let classes = ["a", "b", "c", "d"].map(String::from).to_vec();
    let cfg = TrainConfig {
        epochs: 1,
        val_fraction: 0.0,
        ..TrainConfig::default()
    };
    let (model, _) = train(
        &examples,
        classes,
        FrontEndConfig::default(),
        &cfg,
        &dev.burn,
        |_, _| {},
    )
    .unwrap();
    let mut g = c.benchmark_group("scoring");
    for batch in [64usize, 256] {
        let data: Vec<f32> = (0..batch * m * t).map(common::noise).collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("cnn_probs_batch{batch}_128x47"), |b| {
            b.iter(|| {
                let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [batch, 1, m, t]), &dev.burn);
                read_f32(model.probs(x)).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
