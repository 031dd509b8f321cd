//! Every GPU kernel against its CPU twin, on fresh random input.

use crate::common::{Rng, fresh_seed, gpu, max_abs_diff, random_masks};
use emolime::audio::{MelFilterbank, MelScale};
use emolime::gpu::ops::{GpuMel, PerturbInputs, fit_gpu, perturb_into, perturb_to_host};
use emolime::perturb::{FillMode, perturb_cpu, row_means};
use emolime::sampling::{KernelKind, kernel_weights};
use emolime::surrogate::{SurrogateConfig, fit_cpu};
use ndarray::{Array2, Array3};

#[test]
fn every_kernel_compiles_once_on_first_use() {
    use emolime::gpu::kernels::KernelId;
    let Some(ctx) = gpu() else { return };
    ctx.kernels.compile_all().unwrap();
    for id in KernelId::ALL {
        let first = ctx.kernels.get(id).unwrap();
        assert!(
            std::ptr::eq(first, ctx.kernels.get(id).unwrap()),
            "{id:?} compiled twice"
        );
    }
}

#[test]
fn mel_and_row_mean_kernels_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng(fresh_seed("mel"));
    let fb = MelFilterbank::new(16000, 2048, 128, 0.0, 8000.0, MelScale::Slaney).unwrap();
    let t = 20 + rng.below(50);
    let power = Array2::from_shape_fn((fb.n_freq_bins(), t), |_| rng.f32() * rng.f32() * 10.0);
    let want = fb.apply(power.view()).unwrap();
    let want_means = row_means(want.view());
    let mut gm = GpuMel::new(&ctx, &fb);
    let (got, got_means) = gm.run_to_host(&ctx, power.view()).unwrap();
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "mel {g} vs {w}");
    }
    for (g, w) in got_means.iter().zip(want_means.iter()) {
        assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "row mean {g} vs {w}");
    }
    // The buffers are reused: a second, shorter utterance must not see stale data.
    let power2 = Array2::from_shape_fn((fb.n_freq_bins(), 5), |_| rng.f32());
    let (got2, _) = gm.run_to_host(&ctx, power2.view()).unwrap();
    let want2 = fb.apply(power2.view()).unwrap();
    assert!(max_abs_diff(got2.as_slice().unwrap(), want2.as_slice().unwrap()) < 1e-4);
}

#[test]
fn perturb_kernel_matches_cpu_for_every_fill() {
    let Some(ctx) = gpu() else { return };
    let seed = fresh_seed("perturb");
    let mut rng = Rng(seed);
    let (m, t, b) = (32 + rng.below(100), 3 + rng.below(40), 2 + rng.below(15));
    let mel = Array2::from_shape_fn((m, t), |_| rng.f32() * 5.0);
    let means = row_means(mel.view());
    let row_band: Vec<u32> = (0..m).map(|r| (r * b / m) as u32).collect();
    let masks = random_masks(40, b, seed, false);
    let (offset, chunk) = (rng.below(10), 1 + rng.below(25));
    for fill in [FillMode::Zero, FillMode::Mean, FillMode::Noise] {
        let mut want = Array3::<f32>::zeros((chunk, m, t));
        perturb_cpu(
            mel.view(),
            means.view(),
            &row_band,
            masks.view(),
            offset,
            fill,
            seed,
            want.view_mut(),
        )
        .unwrap();
        let got = perturb_to_host(
            &ctx,
            mel.view(),
            means.as_slice().unwrap(),
            &row_band,
            masks.view(),
            offset,
            chunk,
            fill,
            seed,
        )
        .unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() <= 1e-6 + 1e-5 * w.abs(), "{fill:?}: {g} vs {w}");
        }
        if fill == FillMode::Zero {
            assert!(
                got.iter().zip(want.iter()).all(|(g, w)| g == w),
                "zero fill must be bit-exact"
            );
        }
    }
}

/// Several utterances stacked in one mel pass and perturbed by one dispatch equal the CPU twins
/// run on each utterance alone.
#[test]
fn stacked_mel_and_perturb_match_cpu_per_utterance() {
    let Some(ctx) = gpu() else { return };
    let seed = fresh_seed("stacked");
    let mut rng = Rng(seed);
    let fb = MelFilterbank::new(16000, 512, 40, 0.0, 8000.0, MelScale::Slaney).unwrap();
    let (u, t, b) = (2 + rng.below(4), 3 + rng.below(40), 2 + rng.below(10));
    let m = fb.n_mels();
    let powers: Vec<Array2<f32>> = (0..u)
        .map(|_| Array2::from_shape_fn((fb.n_freq_bins(), t), |_| rng.f32() * rng.f32() * 10.0))
        .collect();
    let views: Vec<_> = powers.iter().map(|p| p.view()).collect();
    let mut gm = GpuMel::new(&ctx, &fb);
    // A longer single utterance first: the stacked call must not see its stale values.
    gm.run(&ctx, Array2::from_elem((fb.n_freq_bins(), t + 7), 3.0).view())
        .unwrap();
    let (got_mel, got_means) = gm.encode_to_host(&ctx, &views).unwrap();
    let want: Vec<Array2<f32>> = powers.iter().map(|p| fb.apply(p.view()).unwrap()).collect();
    for (k, w) in want.iter().enumerate() {
        let wm = row_means(w.view());
        for (g, w) in got_mel.index_axis(ndarray::Axis(0), k).iter().zip(w.iter()) {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "utterance {k}: mel {g} vs {w}");
        }
        for (g, w) in got_means.row(k).iter().zip(wm.iter()) {
            assert!(
                (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                "utterance {k}: row mean {g} vs {w}"
            );
        }
    }
    // Perturb utterances first..u of the stack under the same masks, after `out_row` rows.
    let row_band: Vec<u32> = (0..m).map(|r| (r * b / m) as u32).collect();
    let masks = random_masks(30, b, seed, false);
    let (offset, chunk, first, out_row) = (rng.below(10), 1 + rng.below(20), rng.below(u), rng.below(3));
    let band_b = ctx.upload("row band", &row_band);
    let mask_b = ctx.upload("masks", masks.as_standard_layout().as_slice().unwrap());
    let rows = out_row + (u - first) * chunk;
    let out = ctx.storage("perturbed", (rows * m * t * 4) as u64);
    for fill in [FillMode::Zero, FillMode::Mean, FillMode::Noise] {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let (mel_b, means_b) = gm.encode(&ctx, &mut enc, &views).unwrap();
        let inputs = PerturbInputs {
            mel: &mel_b,
            row_mean: &means_b,
            utterances: first..u,
            row_band: &band_b,
            masks: &mask_b,
            n_mels: m,
            n_frames: t,
            n_bands: b,
            fill,
            seed,
        };
        perturb_into(&ctx, &mut enc, &inputs, offset, chunk, out_row, out.as_entire_binding()).unwrap();
        ctx.queue.submit([enc.finish()]);
        let got = Array3::from_shape_vec((rows, m, t), ctx.read_f32(&out, rows * m * t).unwrap()).unwrap();
        for k in first..u {
            // The CPU twin on the GPU's own mel spectrogram, so only the perturbation is compared.
            let mel_k = got_mel.index_axis(ndarray::Axis(0), k);
            let mut w = Array3::<f32>::zeros((chunk, m, t));
            perturb_cpu(
                mel_k,
                got_means.row(k),
                &row_band,
                masks.view(),
                offset,
                fill,
                seed,
                w.view_mut(),
            )
            .unwrap();
            let at = out_row + (k - first) * chunk;
            let g = got.slice(ndarray::s![at..at + chunk, .., ..]);
            for (g, w) in g.iter().zip(w.iter()) {
                assert!(
                    (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
                    "{fill:?}, utterance {k}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn surrogate_kernel_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let seed = fresh_seed("surrogate");
    let mut rng = Rng(seed);
    for kernel in [KernelKind::Lime { width: 0.25 }, KernelKind::Shapley] {
        let b = 2 + rng.below(15);
        let n = 50 + rng.below(400);
        let (u, c) = (1 + rng.below(3), 2 + rng.below(5));
        let shapley = kernel == KernelKind::Shapley;
        let masks = random_masks(n, b, seed, shapley);
        let weights = kernel_weights(&masks, kernel).unwrap();
        let preds = Array3::from_shape_fn((u, n, c), |_| rng.f32());
        let cfg = SurrogateConfig {
            kernel,
            alpha: if shapley { 0.0 } else { 1.0 },
        };
        let fits = fit_gpu(&ctx, masks.view(), &weights, preds.view(), &cfg).unwrap();
        assert_eq!(fits.len(), u);
        for (k, fit) in fits.iter().enumerate() {
            let want = fit_cpu(masks.view(), &weights, preds.index_axis(ndarray::Axis(0), k), &cfg).unwrap();
            let d = max_abs_diff(fit.coefs.as_slice().unwrap(), want.coefs.as_slice().unwrap());
            assert!(d < 1e-4, "{kernel:?} B={b} N={n}: coefficients differ by {d}");
            assert!(max_abs_diff(&fit.intercept, &want.intercept) < 1e-4);
            assert!(max_abs_diff(&fit.r2, &want.r2) < 1e-3);
            assert!(max_abs_diff(&fit.local_pred, &want.local_pred) < 1e-4);
        }
    }
}

/// The row-cached host CNN (each row computed once per state of the bands it sees), and the
/// folded network scoring every input whole, against the Burn network as trained scoring every
/// masked spectrogram, on fresh random weights, shapes, band layouts (contiguous and scattered)
/// and masks, for both fills it serves.
#[test]
fn row_cached_cnn_matches_the_burn_forward() {
    use emolime::audio::FrontEndConfig;
    use emolime::device::ComputeDevice;
    use emolime::model::{Example, TrainConfig, train};
    let mut rng = Rng(fresh_seed("row-cached cnn"));
    let cpu = ComputeDevice::cpu("test");
    // The same row versions as Burn operations (the GPU path's forward): on the CPU backend and
    // on the test adapter.
    let devices: Vec<ComputeDevice> = std::iter::once(ComputeDevice::cpu("test"))
        .chain(crate::common::gpu_device())
        .collect();
    for case in 0..3 {
        let (m, t) = if case == 0 {
            (128, 47)
        } else {
            (7 + rng.below(90), 4 + rng.below(60))
        };
        let fe = FrontEndConfig {
            n_mels: m,
            ..FrontEndConfig::default()
        };
        let examples: Vec<Example> = (0..6)
            .map(|k| Example {
                mel: (0..m * t).map(|_| rng.f32() * rng.f32() * 10.0).collect(),
                n_frames: t,
                label: k % 3,
            })
            .collect();
        let cfg = TrainConfig {
            epochs: 1,
            val_fraction: 0.0,
            channels: [2 + rng.below(7), 2 + rng.below(11), 2 + rng.below(11)],
            seed: rng.next_u64(),
            ..TrainConfig::default()
        };
        let classes = ["a", "b", "c"].map(String::from).to_vec();
        let (model, _) = train(&examples, classes, fe, &cfg, &cpu.burn, |_, _| {}).unwrap();
        let host = model.net().row_cached().unwrap();

        let b = 2 + rng.below(if case == 2 { 62 } else { 15 });
        let row_band: Vec<u32> = (0..m)
            .map(|r| if case == 2 { rng.below(b) } else { r * b / m } as u32)
            .collect();
        let n = 30 + rng.below(40);
        let mut masks = Array2::from_shape_fn((n, b), |_| (rng.f32() < 0.5) as u32 as f32);
        masks.row_mut(0).fill(1.0);
        masks.row_mut(1).fill(0.0);
        let mel = Array2::from_shape_fn((m, t), |_| rng.f32() * rng.f32() * 10.0);
        let means = row_means(mel.view());
        for fill in [FillMode::Zero, FillMode::Mean] {
            let removed = match fill {
                FillMode::Mean => Array2::from_shape_fn((m, t), |(r, _)| means[r]),
                _ => Array2::zeros((m, t)),
            };
            let got = host
                .probs_band_masked(mel.view(), removed.view(), &row_band, masks.view(), 1 + rng.below(3))
                .unwrap();
            let mut inputs = Array3::<f32>::zeros((n, m, t));
            perturb_cpu(
                mel.view(),
                means.view(),
                &row_band,
                masks.view(),
                0,
                fill,
                0,
                inputs.view_mut(),
            )
            .unwrap();
            let inputs = inputs.into_raw_vec_and_offset().0;
            // The network as trained (batch norms unfolded) is the reference.
            let want = {
                let x = burn::tensor::Tensor::<4>::from_data(
                    burn::tensor::TensorData::new(inputs.clone(), [n, 1, m, t]),
                    &cpu.burn,
                );
                emolime::model::read_f32(burn::tensor::activation::softmax(model.net().forward(x), 1)).unwrap()
            };
            // The masks must move the outputs, or agreement would prove nothing.
            let spread = (1..n)
                .map(|s| max_abs_diff(&want[..3], &want[3 * s..3 * s + 3]))
                .fold(0.0, f32::max);
            assert!(spread > 1e-4, "case {case}: masks barely change the outputs ({spread})");
            let diff = max_abs_diff(got.as_slice().unwrap(), &want);
            eprintln!(
                "case {case}: M {m}, T {t}, B {b}, channels {:?}, {fill:?}: {diff:.2e}",
                cfg.channels
            );
            assert!(
                diff < 2e-5,
                "case {case} {fill:?}: largest probability difference {diff}"
            );
            // Every input scored whole with the batch norms folded (`Classifier::probs`).
            let folded = model.probs_host(inputs.clone(), [n, m, t]).unwrap();
            let diff = max_abs_diff(&folded, &want);
            eprintln!("  folded, every input: {diff:.2e}");
            assert!(diff < 2e-5, "case {case} {fill:?}: folded network {diff}");
            for dev in &devices {
                let net = emolime::model::cnn_rows_device::DeviceRowCnn::new(&host, &dev.burn).unwrap();
                // On a GPU the blocks run as the fused kernels of `conv_block.wgsl`; Burn's
                // operations stay the fallback there and the path on the CPU backend.
                assert_eq!(net.has_fused_kernels(), dev.gpu.is_some(), "on {}", dev.description);
                let every = |net: &emolime::model::cnn_rows_device::DeviceRowCnn| {
                    let x = burn::tensor::Tensor::<4>::from_data(
                        burn::tensor::TensorData::new(inputs.clone(), [n, 1, m, t]),
                        &dev.burn,
                    );
                    emolime::model::read_f32(net.probs_every_input(x).unwrap()).unwrap()
                };
                let diff = max_abs_diff(&every(&net), &want);
                eprintln!("  folded, every input, on {}: {diff:.2e}", dev.description);
                assert!(
                    diff < 2e-5,
                    "case {case} {fill:?} folded on {}: {diff}",
                    dev.description
                );
                if net.has_fused_kernels() {
                    let burn_ops = emolime::model::cnn_rows_device::DeviceRowCnn::new(&host, &dev.burn)
                        .unwrap()
                        .without_fused_kernels();
                    let diff = max_abs_diff(&every(&burn_ops), &want);
                    eprintln!("  folded, every input, burn operations: {diff:.2e}");
                    assert!(diff < 2e-5, "case {case} {fill:?} burn operations: {diff}");
                }
                let rows: Vec<f32> = mel.iter().chain(removed.iter()).copied().collect();
                // The utterance twice over with another in between: packing must not mix them.
                let other: Vec<f32> = rows.iter().map(|v| v * 0.5 + 0.1).collect();
                let packed: Vec<f32> = rows.iter().chain(&other).chain(&rows).copied().collect();
                let row_cached = |net: &emolime::model::cnn_rows_device::DeviceRowCnn, what: &str| {
                    let plan = net.plan(m, &row_band, masks.view()).unwrap();
                    let packed = burn::tensor::Tensor::<3>::from_data(
                        burn::tensor::TensorData::new(packed.clone(), [3, 2, m * t]),
                        &dev.burn,
                    );
                    let on_device = emolime::model::read_f32(net.probs(&plan, packed).unwrap()).unwrap();
                    let per = n * 3;
                    assert_eq!(on_device.len(), 3 * per);
                    assert!(
                        max_abs_diff(&on_device[..per], &on_device[2 * per..]) < 1e-6,
                        "the same utterance packed twice"
                    );
                    assert!(max_abs_diff(&on_device[..per], &on_device[per..2 * per]) > 1e-6);
                    let diff = max_abs_diff(&on_device[..per], got.as_slice().unwrap());
                    eprintln!("  row-cached, {what}, on {}: {diff:.2e}", dev.description);
                    assert!(
                        diff < 2e-5,
                        "case {case} {fill:?} {what} on {}: {diff}",
                        dev.description
                    );
                };
                row_cached(
                    &net,
                    if net.has_fused_kernels() {
                        "fused kernels"
                    } else {
                        "burn operations"
                    },
                );
                if net.has_fused_kernels() {
                    let burn_ops = emolime::model::cnn_rows_device::DeviceRowCnn::new(&host, &dev.burn)
                        .unwrap()
                        .without_fused_kernels();
                    row_cached(&burn_ops, "burn operations");
                }
            }
        }
    }
}

/// A random conv block reading `in_ch` channels: 1 to 20 output channels (multiples of the
/// kernel's 8 per invocation and not), weights and biases around zero, a log of power on
/// input when `log`, and a stride up to `max_stride`.
fn random_conv_block(
    rng: &mut Rng,
    in_ch: usize,
    log: bool,
    pool: bool,
    max_stride: usize,
) -> emolime::model::conv_block::ConvBlock {
    let out_ch = 1 + rng.below(20);
    emolime::model::conv_block::ConvBlock {
        in_ch,
        out_ch,
        stride_h: 1 + rng.below(max_stride),
        pool,
        log_offset: log.then(|| rng.f32() * 4.0 - 2.0),
        weight: (0..out_ch * in_ch * 9).map(|_| rng.f32() - 0.5).collect(),
        bias: (0..out_ch).map(|_| rng.f32() - 0.5).collect(),
    }
}

/// `values` as a Burn tensor of `shape` on `device`, in their logical order.
fn tensor4<D: ndarray::Dimension>(
    values: &ndarray::Array<f32, D>,
    shape: [usize; 4],
    device: &burn::tensor::Device,
) -> burn::tensor::Tensor<4> {
    burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(values.iter().copied().collect::<Vec<f32>>(), shape),
        device,
    )
}

/// The conv block kernel's outputs checked against their CPU twins, with a count of the checks
/// whose outputs were not all cut to zero by the ReLU.
#[derive(Default)]
struct ConvChecks {
    checks: usize,
    positive: usize,
}

impl ConvChecks {
    /// Checks the kernel's output `got` against its CPU twin's `want`: the same shape, and
    /// within 2e-6 of the largest value among the outputs and `below` (the block's input in a
    /// chain, whose values the sums add up: with cancellation the outputs can be far smaller
    /// than their terms).
    fn check(
        &mut self,
        got: burn::tensor::Tensor<4>,
        want: &ndarray::Array4<f32>,
        below: Option<&ndarray::Array4<f32>>,
        what: &str,
    ) {
        assert_eq!(got.dims().to_vec(), want.shape().to_vec(), "{what}");
        let got = emolime::model::read_f32(got).unwrap();
        let want = want.as_slice().unwrap();
        let scale = want
            .iter()
            .chain(below.into_iter().flatten())
            .fold(1.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&got, want);
        eprintln!("{what}: {diff:.2e} (scale {scale:.1})");
        assert!(diff <= 2e-6 * scale, "{what}: {diff} at scale {scale}");
        self.checks += 1;
        self.positive += got.iter().any(|&v| v > 0.0) as usize;
    }

    /// Random weights can cut a small block's every output to zero; most checks must not be
    /// so, or the test proves little.
    fn finish(self) {
        let (positive, checks) = (self.positive, self.checks);
        assert!(
            4 * positive >= 3 * checks && checks > 0,
            "{positive} of {checks} checks with a nonzero output"
        );
    }
}

/// `conv_block.wgsl` on whole inputs (pooled or not, log input or not, any stride) against its
/// CPU twin `ConvBlock::cpu`, one block and two chained in one submission, on fresh random
/// shapes, weights and inputs.
#[test]
fn conv_block_kernel_matches_cpu() {
    use emolime::model::conv_block::GpuConvBlocks;
    use ndarray::Array4;
    let Some(dev) = crate::common::gpu_device() else {
        eprintln!("no gpu adapter; skipped");
        return;
    };
    let ctx = dev.gpu.as_ref().expect("a gpu device has a context");
    let mut rng = Rng(fresh_seed("conv block"));
    let mut checks = ConvChecks::default();
    for case in 0..12 {
        let (n, i) = (1 + rng.below(5), 1 + rng.below(10));
        let (h, w) = (8 + rng.below(40), 4 + rng.below(30));
        let (log, pool1, pool2) = (rng.below(2) == 0, rng.below(2) == 0, rng.below(2) == 0);
        let first = random_conv_block(&mut rng, i, log, pool1, 3);
        let second = random_conv_block(&mut rng, first.out_ch, false, pool2, 3);
        let input = Array4::from_shape_fn((n, i, h, w), |_| rng.f32() * rng.f32() * 10.0);
        let want1 = first.cpu(input.view()).unwrap();
        let Ok(want2) = second.cpu(want1.view()) else {
            continue;
        };
        for (blocks, want) in [
            (vec![first.clone()], &want1),
            (vec![first.clone(), second.clone()], &want2),
        ] {
            let depth = blocks.len();
            let what = format!(
                "case {case}, {depth} block(s): [{n}, {i}, {h}, {w}], {:?} / {:?}",
                (first.out_ch, first.stride_h, first.pool, log),
                (second.out_ch, second.stride_h, second.pool),
            );
            let x = tensor4(&input, [n, i, h, w], &dev.burn);
            let got = GpuConvBlocks::new(ctx, blocks).unwrap().forward(&dev.burn, x).unwrap();
            checks.check(got, want, (depth == 2).then_some(&want1), &what);
        }
    }
    checks.finish();
}

/// `conv_block.wgsl` on row versions (the row-cached forward's levels) against its CPU twin
/// `ConvBlock::cpu_rows`: random utterances, rows, index tables that read the zero slot, one
/// level and two chained in one submission, pooled or not, log input or not.
#[test]
fn conv_block_row_versions_match_cpu() {
    use emolime::model::conv_block::{ConvBlock, GpuConvBlocks, RowLevel};
    use ndarray::Array4;
    let Some(dev) = crate::common::gpu_device() else {
        eprintln!("no gpu adapter; skipped");
        return;
    };
    let ctx = dev.gpu.as_ref().expect("a gpu device has a context");
    let mut rng = Rng(fresh_seed("conv block rows"));
    let mut checks = ConvChecks::default();
    // `jobs` jobs of the rows `block` reads (one output row each), slots below `slots` or the
    // zero slot `zero`.
    let index = |rng: &mut Rng, b: &ConvBlock, jobs: usize, slots: usize, zero: usize| {
        let k = if b.pool { b.stride_h + 3 } else { 3 };
        let v: Vec<u32> = (0..jobs * k)
            .map(|_| if rng.below(6) == 0 { zero } else { rng.below(slots) } as u32)
            .collect();
        (v, k)
    };
    for case in 0..10 {
        let (u, s, i, w) = (1 + rng.below(4), 2 + rng.below(30), 1 + rng.below(6), 4 + rng.below(40));
        let (log, pool1, pool2) = (rng.below(2) == 0, rng.below(3) > 0, rng.below(2) == 0);
        // One output row per job: an unpooled level has stride 1 (three rows).
        let first = random_conv_block(&mut rng, i, log, pool1, if pool1 { 3 } else { 1 });
        let second = random_conv_block(&mut rng, first.out_ch, false, pool2, if pool2 { 3 } else { 1 });
        let (j1, j2) = (1 + rng.below(40), 1 + rng.below(40));
        // The first level's zero slot lies past the utterance's rows, as in the mel rows.
        let (index1, k1) = index(&mut rng, &first, j1, s, s);
        let (index2, k2) = index(&mut rng, &second, j2, j1, j1);
        let below = Array4::from_shape_fn((u, s, i, w), |_| rng.f32() * rng.f32() * 10.0);
        let want1 = first.cpu_rows(below.view(), &index1, k1, s).unwrap();
        let (v1, o1, _, w1) = want1.dim();
        let Ok(want2) = second.cpu_rows(
            want1.view().into_shape_with_order((u, v1 / u, o1, w1)).unwrap(),
            &index2,
            k2,
            j1,
        ) else {
            continue;
        };
        for (blocks, want) in [
            (vec![first.clone()], &want1),
            (vec![first.clone(), second.clone()], &want2),
        ] {
            let depth = blocks.len();
            let what = format!(
                "case {case}, {depth} level(s): U {u}, S {s}, I {i}, W {w}, jobs {j1}/{j2}, {:?} / {:?}",
                (first.out_ch, first.stride_h, first.pool, log),
                (second.out_ch, second.pool),
            );
            let mut levels = vec![RowLevel::new(ctx, index1.clone(), k1).unwrap()];
            if depth == 2 {
                levels.push(RowLevel::new(ctx, index2.clone(), k2).unwrap());
            }
            let x = tensor4(&below, [u, s, i, w], &dev.burn);
            let got = GpuConvBlocks::new(ctx, blocks)
                .unwrap()
                .forward_rows(&dev.burn, x, &levels, s)
                .unwrap();
            checks.check(got, want, (depth == 2).then_some(&want1), &what);
        }
    }
    checks.finish();
}

/// `row_head_share.wgsl` then `row_head_softmax.wgsl` against their CPU twin `RowHead::cpu`, on
/// random rows, weights, version tables and utterance counts; and a head whose tables point
/// past its versions refused before any dispatch.
#[test]
fn row_head_kernels_match_cpu() {
    use emolime::model::row_head::{GpuRowHead, RowHead};
    use ndarray::Array3;
    let Some(dev) = crate::common::gpu_device() else {
        eprintln!("no gpu adapter; skipped");
        return;
    };
    let ctx = dev.gpu.as_ref().expect("a gpu device has a context");
    let mut rng = Rng(fresh_seed("row head"));
    for case in 0..10 {
        let (u, v, n) = (1 + rng.below(5), 1 + rng.below(300), 1 + rng.below(400));
        let (h3, c3, w3, classes) = (
            1 + rng.below(20),
            1 + rng.below(40),
            1 + rng.below(12),
            2 + rng.below(7),
        );
        let head = RowHead {
            h3,
            c3,
            classes,
            // Logits of a few units, as a trained head gives, so that probabilities are
            // compared where they are not saturated.
            weight: (0..h3 * c3 * classes)
                .map(|_| (rng.f32() * 2.0 - 1.0) * 4.0 / (c3 * h3) as f32)
                .collect(),
            bias: (0..classes).map(|_| rng.f32() - 0.5).collect(),
            version_row: (0..v).map(|_| rng.below(h3) as u32).collect(),
            head: (0..n * h3).map(|_| rng.below(v) as u32).collect(),
        };
        // Non-negative, as after ReLU; a few versions all zero, as the zero row is.
        let rows = Array3::from_shape_fn(
            (u * v, c3, w3),
            |(i, _, _)| {
                if i % 7 == 3 { 0.0 } else { rng.f32() * 3.0 }
            },
        );
        let want = head.cpu(rows.view()).unwrap();
        let x = tensor4(&rows, [u * v, c3, 1, w3], &dev.burn);
        let got = GpuRowHead::new(ctx, head).unwrap().forward(&dev.burn, x).unwrap();
        let what = format!("case {case}: U {u}, V {v}, N {n}, H3 {h3}, C3 {c3}, W3 {w3}, C {classes}");
        assert_eq!(got.dims(), [u * n, classes], "{what}");
        let got = emolime::model::read_f32(got).unwrap();
        let diff = max_abs_diff(&got, want.as_slice().unwrap());
        eprintln!("{what}: {diff:.2e}");
        assert!(diff <= 1e-6, "{what}: {diff}");
        // Probabilities: each row sums to one, and they are not all alike (or the test proves
        // little).
        for p in got.chunks(classes) {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{what}: {p:?}");
        }
        let spread = got.iter().fold(0.0f32, |m, &p| m.max((p - 1.0 / classes as f32).abs()));
        assert!(spread > 1e-3, "{what}: every probability uniform");
    }
    let bad = RowHead {
        h3: 2,
        c3: 1,
        classes: 2,
        weight: vec![0.0; 4],
        bias: vec![0.0; 2],
        version_row: vec![0, 1],
        head: vec![0, 2],
    };
    let err = GpuRowHead::new(ctx, bad.clone())
        .err()
        .expect("a version past V is refused");
    assert!(err.to_string().contains("version"), "{err}");
    assert!(bad.cpu(ndarray::Array3::zeros((2, 1, 1)).view()).is_err());
}

/// Every head kind's device forward (Burn, f32) against the host's f64 `predict_proba`, for two
/// and for several classes, on the CPU backend and the test adapter.
#[test]
fn device_heads_match_host_heads() {
    use emolime::classify::device::DeviceHead;
    use emolime::classify::{FeatureClassifier, HeadConfig, HeadKind};
    let seed = fresh_seed("device heads");
    let mut rng = Rng(seed);
    let devices: Vec<emolime::device::ComputeDevice> = std::iter::once(emolime::device::ComputeDevice::cpu("test"))
        .chain(crate::common::gpu_device())
        .collect();
    for classes in [2usize, 3 + rng.below(3)] {
        let d = 3 + rng.below(30);
        let n = 20 * classes + rng.below(40);
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        // Overlapping classes around label-dependent centres, on raw (unscaled) feature scales.
        let scales: Vec<f32> = (0..d).map(|_| 0.1 + 100.0 * rng.f32()).collect();
        let mut x = Array2::<f64>::zeros((n, d));
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let centre = ((labels[i] * 7 + j * 3) % 5) as f32 * 0.4;
                *v = f64::from((centre + rng.f32() * 2.0 - 1.0) * scales[j]);
            }
        }
        let names: Vec<String> = (0..d).map(|j| format!("f{j}")).collect();
        let class_names: Vec<String> = (0..classes).map(|c| format!("c{c}")).collect();
        let test = Array2::from_shape_fn((17 + rng.below(30), d), |(_, j)| {
            f64::from((rng.f32() * 3.0 - 1.0) * scales[j])
        });
        for kind in [HeadKind::LogReg, HeadKind::Mlp, HeadKind::Svm] {
            let cfg = HeadConfig {
                kind,
                seed,
                epochs: 20,
                ..Default::default()
            };
            let clf =
                FeatureClassifier::fit(x.view(), &labels, class_names.clone(), "test", names.clone(), &cfg).unwrap();
            let want = clf.predict_proba(test.view()).unwrap();
            for dev in &devices {
                let head = DeviceHead::new(&clf, &dev.burn);
                let got = head.probs_host(test.view()).unwrap();
                assert_eq!(got.dim(), want.dim());
                let err = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(
                    err < 1e-4,
                    "{kind} head, {classes} classes, D = {d}, on {}: largest difference {err} (seed {seed})",
                    dev.description
                );
            }
            // Bad rows are errors, as on the host: a non-finite feature named, a wrong width.
            let head = DeviceHead::new(&clf, &devices[0].burn);
            let mut bad = test.clone();
            bad[[1, d - 1]] = f64::NAN;
            let msg = head.probs_host(bad.view()).unwrap_err().to_string();
            assert!(msg.contains(&format!("f{}", d - 1)), "{msg}");
            assert!(head.probs_host(test.slice(ndarray::s![.., 1..]).view()).is_err());
        }
    }
}

/// Griffin-Lim on the device (perturb -> gl_init -> [gl_iterate, gl_overlap_add] x (iters + 1))
/// against the host's `MelSignal::perturbed`, for every fill, written at an output row offset.
#[test]
fn griffin_lim_kernels_match_cpu() {
    use emolime::audio::{Stft, WindowKind};
    use emolime::gpu::griffin_lim::GpuGriffinLim;
    use emolime::griffin_lim::{GriffinLimConfig, GriffinLimSynth};
    let Some(ctx) = gpu() else { return };
    let seed = fresh_seed("griffin-lim");
    let mut rng = Rng(seed);
    let n_fft = [128usize, 256, 512][rng.below(3)];
    let hop = n_fft / [2usize, 4][rng.below(2)];
    let stft = Stft::new(n_fft, n_fft, hop, WindowKind::Hann, true).unwrap();
    let n_mels = 16 + rng.below(24);
    let fb = MelFilterbank::new(16000, n_fft, n_mels, 0.0, 8000.0, MelScale::Slaney).unwrap();
    let s = 1500 + rng.below(2500);
    // A voiced-like signal: a few harmonics with a random pitch, plus noise.
    let f0 = 100.0 + 150.0 * rng.f32();
    let samples: Vec<f32> = (0..s)
        .map(|i| {
            let t = i as f32 / 16000.0;
            (1..6)
                .map(|h| (std::f32::consts::TAU * f0 * h as f32 * t).sin() / h as f32)
                .sum::<f32>()
                * 0.3
                + 0.05 * (rng.f32() - 0.5)
        })
        .collect();
    let b = 2 + rng.below(7);
    let row_band: Vec<u32> = (0..n_mels).map(|r| (r * b / n_mels) as u32).collect();
    let masks = random_masks(12, b, seed, false);
    let masks_buf = ctx.upload("masks", masks.as_slice().unwrap());
    let row_band_buf = ctx.upload("row band", &row_band);
    for (fill, iters) in [(FillMode::Zero, 1), (FillMode::Mean, 32), (FillMode::Noise, 4)] {
        let cfg = GriffinLimConfig {
            iters,
            ..Default::default()
        };
        let synth = std::sync::Arc::new(GriffinLimSynth::new(stft.clone(), fb.clone(), cfg).unwrap());
        let signal = synth.prepare(&samples).unwrap();
        let (offset, chunk) = (1 + rng.below(4), 3 + rng.below(6));
        let mut want = Array2::<f32>::zeros((chunk, s));
        signal
            .perturbed(&row_band, masks.view(), offset, fill, seed, 2, want.view_mut())
            .unwrap();
        let mut gl = GpuGriffinLim::new(&ctx, &synth).unwrap();
        gl.load(&ctx, &signal).unwrap();
        let out = ctx.storage("out", ((chunk + 1) * s * 4) as u64);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        gl.encode(
            &ctx,
            &mut enc,
            &row_band_buf,
            &masks_buf,
            b,
            fill,
            seed,
            offset,
            chunk,
            1,
            out.as_entire_binding(),
        )
        .unwrap();
        ctx.queue.submit([enc.finish()]);
        let got = ctx.read_f32(&out, (chunk + 1) * s).unwrap();
        // Relative to the input's energy: a row keeping only a weak band is mostly rounding
        // (sqrt of a clipped, nearly cancelling pseudo-inverse). Typical differences after 1 or 4
        // iterations are 1e-7 to 1e-5, but the phase update v / |v| jumps where v is near 0, so a
        // rare row differs by up to about 1e-3; over 32 iterations momentum 0.99 amplifies
        // rounding to about 1e-3 as well (30 runs). A wrong step differs by order 1.
        let energy: f64 = samples.iter().map(|v| f64::from(*v).powi(2)).sum();
        let bound = if iters > 4 { 5e-2 } else { 5e-3 };
        for (i, want_row) in want.rows().into_iter().enumerate() {
            let got_row = &got[(i + 1) * s..(i + 2) * s];
            let diff: f64 = got_row
                .iter()
                .zip(want_row.iter())
                .map(|(g, w)| f64::from(g - w).powi(2))
                .sum();
            let rel = (diff / energy).sqrt();
            assert!(
                rel < bound,
                "{fill:?}, {iters} iterations, n_fft {n_fft}, hop {hop}, row {i}: relative L2 difference {rel} (seed {seed})"
            );
        }
    }
}

#[test]
fn gemm_convolution_matches_burns_conv1d() {
    use burn::tensor::{Tensor, TensorData};
    use emolime::device::ComputeDevice;
    use emolime::model::gemm_conv::GemmConv1d;
    let mut rng = Rng(fresh_seed("gemm conv1d"));
    let devices: Vec<ComputeDevice> = std::iter::once(ComputeDevice::cpu("test"))
        .chain(crate::common::gpu_device())
        .collect();
    // (C_in, C_out, K, stride, padding, groups): the feature encoder's shapes (K = S, K > S,
    // K < S never occurs there but is allowed), the positional convolution (grouped, padded,
    // a kernel longer than one product's taps), then random ones.
    let mut cases = vec![
        (1, 6, 10, 5, 0, 1),
        (6, 5, 3, 2, 0, 1),
        (5, 7, 2, 2, 0, 1),
        (8, 8, 70, 1, 35, 4),
        (3, 4, 2, 3, 1, 1),
    ];
    for _ in 0..4 {
        let groups = 1 + rng.below(3);
        let k = 1 + rng.below(40);
        cases.push((
            groups * (1 + rng.below(4)),
            groups * (1 + rng.below(4)),
            k,
            1 + rng.below(6),
            rng.below(k / 2 + 1),
            groups,
        ));
    }
    for dev in &devices {
        for &(c_in, c_out, k, s, p, g) in &cases {
            let n = 1 + rng.below(3);
            let len = k + rng.below(60);
            let w: Vec<f32> = (0..c_out * (c_in / g) * k).map(|_| rng.f32() - 0.5).collect();
            let b: Vec<f32> = (0..c_out).map(|_| rng.f32() - 0.5).collect();
            let x: Vec<f32> = (0..n * len * c_in).map(|_| rng.f32() - 0.5).collect();
            let weight = Tensor::<3>::from_data(TensorData::new(w, [c_out, c_in / g, k]), &dev.burn);
            let bias = (rng.below(2) == 0).then(|| Tensor::<1>::from_data(TensorData::new(b, [c_out]), &dev.burn));
            let conv = GemmConv1d::from_torch(weight.clone(), bias, s, p, g);
            // The weight round-trips exactly.
            let back = conv.torch_weight().into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(back, weight.into_data().try_to_vec::<f32>().unwrap());
            let x = Tensor::<3>::from_data(TensorData::new(x, [n, len, c_in]), &dev.burn);
            let got = conv.forward(x.clone());
            let want = conv.forward_direct(x);
            assert_eq!(got.dims(), want.dims(), "{:?}", (c_in, c_out, k, s, p, g));
            assert_eq!(got.dims()[1], conv.out_len(len));
            let (got, want) = (
                got.into_data().try_to_vec::<f32>().unwrap(),
                want.into_data().try_to_vec::<f32>().unwrap(),
            );
            let d = max_abs_diff(&got, &want);
            assert!(
                d < 1e-5,
                "{}: C_in {c_in}, C_out {c_out}, K {k}, stride {s}, padding {p}, groups {g}, length {len}: {d}",
                dev.description
            );
        }
    }
}
