//! Scoring throughput on the bench device: perturbed spectrograms through the CNN (and the CPU
//! path's row-cached host forward of the same CNN under 1000 band masks), and
//! perturbed waveforms through wav2vec 2.0 base- and large-sized classifiers with random
//! weights (the same FLOPs as real checkpoints). `EMOLIME_BENCH_W2V=base,large` (default)
//! picks the sizes, `EMOLIME_BENCH_W2V_SECONDS` (default 1) the length, `EMOLIME_BENCH_W2V_BATCH`
//! (default 8) the batch; `EMOLIME_BENCH_W2V=none` skips them, `EMOLIME_BENCH_W2V_F16=0` their
//! f16 variants.

mod common;
use burn::tensor::{FloatDType, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emolime::audio::FrontEndConfig;
use emolime::model::hf::HfClassifier;
use emolime::model::wav2vec2::EncoderConfig;
use emolime::model::{Example, SerModel, TrainConfig, read_f32, train};

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
    let host = model.net().row_cached().unwrap();
    // The same folded network through Burn's operations alone: what the fused kernels of
    // `conv_block.wgsl` (used by `model.probs` on a GPU) save; the same path on the CPU.
    let burn_ops = emolime::model::cnn_rows_device::DeviceRowCnn::new(&host, &dev.burn)
        .unwrap()
        .without_fused_kernels();
    let mut g = c.benchmark_group("scoring");
    for batch in [64usize, 256] {
        let data: Vec<f32> = (0..batch * m * t).map(common::noise).collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("cnn_probs_batch{batch}_128x47"), |b| {
            b.iter(|| {
                let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [batch, 1, m, t]), &dev.burn);
                read_f32(model.probs(x).unwrap()).unwrap()
            })
        });
        g.bench_function(format!("cnn_burn_ops_batch{batch}_128x47"), |b| {
            b.iter(|| {
                let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [batch, 1, m, t]), &dev.burn);
                read_f32(burn_ops.probs_every_input(x).unwrap()).unwrap()
            })
        });
        // The network as trained, batch norms unfolded: what the folding in `model.probs` saves.
        g.bench_function(format!("cnn_unfolded_batch{batch}_128x47"), |b| {
            b.iter(|| {
                let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [batch, 1, m, t]), &dev.burn);
                read_f32(burn::tensor::activation::softmax(model.net().forward(x), 1)).unwrap()
            })
        });
    }
    // The CPU path's scoring: the row-cached host forward of one utterance under 1000 masks of 8
    // contiguous bands (zero fill), against which the batches above score every masked input.
    let mel = ndarray::Array2::from_shape_fn((m, t), |(r, f)| common::noise(r * t + f));
    let removed = ndarray::Array2::<f32>::zeros((m, t));
    let row_band: Vec<u32> = (0..m).map(|r| (r * 8 / m) as u32).collect();
    let n_masks = 1000usize;
    let masks = ndarray::Array2::from_shape_fn((n_masks, 8), |(i, j)| {
        (common::noise(i * 8 + j + 99) < 0.5) as u32 as f32
    });
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    g.throughput(Throughput::Elements(n_masks as u64));
    g.bench_function(format!("cnn_row_cached_{n_masks}masks_8bands_128x47"), |b| {
        b.iter(|| {
            host.probs_band_masked(mel.view(), removed.view(), &row_band, masks.view(), threads)
                .unwrap()
        })
    });
    // The GPU path's scoring: the same row versions as device operations on the bench device,
    // for one utterance and for 16 packed together (one call); on a GPU with the levels as the
    // fused kernels of `conv_block.wgsl` (`cnn_row_cached_device_*`) and through Burn's
    // operations alone (`cnn_row_cached_burn_ops_*`, the same as the former on the CPU).
    let net = emolime::model::cnn_rows_device::DeviceRowCnn::new(&host, &dev.burn).unwrap();
    let plan = net.plan(m, &row_band, masks.view()).unwrap();
    let ops_net = emolime::model::cnn_rows_device::DeviceRowCnn::new(&host, &dev.burn)
        .unwrap()
        .without_fused_kernels();
    let ops_plan = ops_net.plan(m, &row_band, masks.view()).unwrap();
    for utts in [1usize, 16] {
        let ends: Vec<f32> = (0..utts)
            .flat_map(|_| mel.iter().chain(removed.iter()).copied())
            .collect();
        g.throughput(Throughput::Elements((utts * n_masks) as u64));
        let variants = [("device", &net, &plan), ("burn_ops", &ops_net, &ops_plan)];
        for (name, net, plan) in variants.into_iter().take(if net.has_fused_kernels() { 2 } else { 1 }) {
            g.bench_function(
                format!("cnn_row_cached_{name}_{utts}x{n_masks}masks_8bands_128x47"),
                |b| {
                    b.iter(|| {
                        let x = Tensor::<3>::from_data(TensorData::new(ends.clone(), [utts, 2, m * t]), &dev.burn);
                        read_f32(net.probs(plan, x).unwrap()).unwrap()
                    })
                },
            );
        }
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let seconds: f32 = env("EMOLIME_BENCH_W2V_SECONDS", "1")
        .parse()
        .expect("EMOLIME_BENCH_W2V_SECONDS");
    let batch: usize = env("EMOLIME_BENCH_W2V_BATCH", "8")
        .parse()
        .expect("EMOLIME_BENCH_W2V_BATCH");
    let s = (seconds * 16000.0) as usize;
    for size in env("EMOLIME_BENCH_W2V", "base,large").split(',') {
        let cfg = match size {
            "base" => EncoderConfig::base(),
            "large" => EncoderConfig::large(),
            "none" | "" => continue,
            other => panic!("EMOLIME_BENCH_W2V: unknown size {other}"),
        };
        dev.burn.seed(7);
        let model = HfClassifier::random(&cfg, &dev.burn).unwrap();
        let data: Vec<f32> = (0..batch * s).map(|i| common::noise(i) - 0.5).collect();
        g.throughput(Throughput::Elements(batch as u64));
        g.sample_size(10);
        g.bench_function(format!("w2v_{size}_probs_batch{batch}_{seconds}s"), |b| {
            b.iter(|| {
                let x = Tensor::<2>::from_data(TensorData::new(data.clone(), [batch, s]), &dev.burn);
                read_f32(model.probs(x).unwrap()).unwrap()
            })
        });
        // The same model scoring in f16 (weights and activations; input normalised in f32),
        // with its agreement with f32 on this batch printed once.
        if env("EMOLIME_BENCH_W2V_F16", "1") == "1" {
            dev.burn.seed(7);
            let half = HfClassifier::random(&cfg, &dev.burn)
                .unwrap()
                .cast(burn::tensor::FloatDType::F16);
            let x = || Tensor::<2>::from_data(TensorData::new(data.clone(), [batch, s]), &dev.burn);
            let full_probs = read_f32(model.probs(x()).unwrap()).unwrap();
            let half_probs = read_f32(half.probs(x()).unwrap()).unwrap();
            let c = full_probs.len() / batch;
            let argmax = |p: &[f32]| {
                p.chunks(c)
                    .map(|r| (0..c).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
                    .collect::<Vec<_>>()
            };
            let same = argmax(&full_probs)
                .iter()
                .zip(argmax(&half_probs))
                .filter(|(a, b)| **a == *b)
                .count();
            let worst = full_probs
                .iter()
                .zip(&half_probs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "w2v_{size} f16 agreement with f32, batch {batch}: largest probability difference {worst:.2e}, \
                 same top class {same}/{batch}"
            );
            g.bench_function(format!("w2v_{size}_probs_f16_batch{batch}_{seconds}s"), |b| {
                b.iter(|| read_f32(half.probs(x()).unwrap()).unwrap())
            });
        }
        // The feature encoder alone, its convolutions as matrix products (the model's path) and
        // through Burn's own conv1d (the direct kernel when autotune is off), summed on the
        // device so that one value is read back.
        let encoder = &model.backbone.encoder;
        for (path, direct) in [("gemm", false), ("direct", true)] {
            g.bench_function(format!("w2v_{size}_features_{path}_batch{batch}_{seconds}s"), |b| {
                b.iter(|| {
                    let x = Tensor::<2>::from_data(TensorData::new(data.clone(), [batch, s]), &dev.burn);
                    let y = if direct {
                        encoder.features_direct(x)
                    } else {
                        encoder.features(x)
                    };
                    read_f32(y.sum().reshape([1, 1])).unwrap()
                })
            });
        }
        // The positional convolution's shape (grouped, padded, 128 taps) on the frames.
        let (h, frames) = (cfg.hidden_size, cfg.n_frames(s));
        let groups = cfg.num_conv_pos_embedding_groups;
        let kp = cfg.num_conv_pos_embeddings;
        let w = Tensor::<3>::from_data(
            TensorData::new(
                (0..h * (h / groups) * kp)
                    .map(|i| common::noise(i) - 0.5)
                    .collect::<Vec<f32>>(),
                [h, h / groups, kp],
            ),
            &dev.burn,
        );
        let pos = emolime::model::gemm_conv::GemmConv1d::from_torch(w, None, 1, kp / 2, groups);
        let xs: Vec<f32> = (0..batch * frames * h).map(|i| common::noise(i + 5) - 0.5).collect();
        for (path, direct) in [("gemm", false), ("direct", true)] {
            g.bench_function(format!("w2v_{size}_pos_conv_{path}_batch{batch}_{seconds}s"), |b| {
                b.iter(|| {
                    let x = Tensor::<3>::from_data(TensorData::new(xs.clone(), [batch, frames, h]), &dev.burn);
                    let y = if direct { pos.forward_direct(x) } else { pos.forward(x) };
                    read_f32(y.sum().reshape([1, 1])).unwrap()
                })
            });
        }
    }
    g.finish();
}

/// The device's limits through the same backend, the denominators of the scoring benches'
/// "share of the device" figures: an f32 matmul (throughput in FLOPs, counted as 2·n³), a sum
/// over a large buffer (bytes read) and an elementwise scale of it (bytes read and written);
/// on a GPU also the start-up cost of compiling emolime's kernels.
#[allow(clippy::single_range_in_vec_init)] // Burn slices take one range per dimension.
fn device_limits(c: &mut Criterion) {
    let dev = common::bench_device();
    let mut g = c.benchmark_group("device_limits");
    g.sample_size(10);
    let n = 4096usize;
    let a = Tensor::<2>::from_data(
        TensorData::new((0..n * n).map(common::noise).collect::<Vec<f32>>(), [n, n]),
        &dev.burn,
    );
    let b = Tensor::<2>::from_data(
        TensorData::new((0..n * n).map(|i| common::noise(i + 1)).collect::<Vec<f32>>(), [n, n]),
        &dev.burn,
    );
    g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
    g.bench_function(format!("matmul_f32_{n}_flops"), |bch| {
        // Reading one value back waits for the product without timing a 64 MiB copy.
        bch.iter(|| read_f32(a.clone().matmul(b.clone()).slice([0..1, 0..1])).unwrap())
    });
    // The same product in f16 (f16 scoring's matmuls; tensor cores where Burn's kernels reach
    // them, as the `spirv` build's cooperative-matrix matmul can).
    let (a16, b16) = (a.clone().cast(FloatDType::F16), b.clone().cast(FloatDType::F16));
    g.bench_function(format!("matmul_f16_{n}_flops"), |bch| {
        bch.iter(|| {
            let corner = a16.clone().matmul(b16.clone()).slice([0..1, 0..1]);
            read_f32(corner.cast(FloatDType::F32)).unwrap()
        })
    });
    let len = 64 << 20;
    let big = Tensor::<1>::from_data(
        TensorData::new((0..len).map(common::noise).collect::<Vec<f32>>(), [len]),
        &dev.burn,
    );
    g.throughput(Throughput::Bytes(4 * len as u64));
    g.bench_function("sum_f32_256MiB_bytes_read", |bch| {
        bch.iter(|| read_f32(big.clone().sum()).unwrap())
    });
    // An elementwise pass reads and writes every value: 512 MiB moved.
    g.throughput(Throughput::Bytes(8 * len as u64));
    g.bench_function("scale_f32_256MiB_bytes_moved", |bch| {
        bch.iter(|| read_f32(big.clone().mul_scalar(2.0).slice([0..1])).unwrap())
    });
    // What every process pays before its first dispatch: compiling emolime's kernels (after
    // the first iteration with the driver's shader caches warm, as for a second process).
    if let Some(ctx) = &dev.gpu {
        g.throughput(Throughput::Elements(1));
        g.bench_function("compile_emolime_kernels", |bch| {
            bch.iter(|| emolime::gpu::kernels::Kernels::new(&ctx.device).compile_all().unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, scoring, device_limits);
criterion_main!(benches);
