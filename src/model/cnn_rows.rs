//! The log-mel CNN on the host for band-masked inputs: each frequency row of each layer is
//! computed once per state of the bands it can see, not once per perturbed sample.
//!
//! A band mask changes whole mel rows, and a frequency row of a convolution or pooling layer
//! depends only on the input rows in its receptive field, so on only the few bands that field
//! covers. With 8 bands over 128 mel rows, a row of the last convolution sees at most 4 bands:
//! at most 16 distinct versions of it exist, however many of the 2^8 masks are sampled. This
//! module computes the distinct versions once, level by level (each level's rows from the
//! level below), the last level as each version's share of the logits (the head's pooling and
//! linear layer are linear in conv3's rows), and sums every sample's shares. The arithmetic is the
//! network's own (batch norm folded into each convolution), so the probabilities equal the
//! batched forward of [`super::SerCnn`] up to f32 rounding (checked by `tests/it/twins.rs`).
//! It serves the CPU path when the fill is a function of the row (zero or mean fill); seeded
//! noise differs per sample, and then the explainer builds every masked input instead.

use crate::error::{Error, Result, check_shape};
use ndarray::{Array2, ArrayView2};
use std::collections::HashMap;

/// One 3x3 convolution (padding 1 on both axes, stride 1 over time) with its batch norm folded
/// in: `y = relu(bias + w * x)`.
#[derive(Clone, Debug)]
pub(crate) struct HostConv {
    /// Output channels `O`.
    pub out_ch: usize,
    /// Input channels `I`.
    pub in_ch: usize,
    /// Stride over frequency rows.
    pub stride_rows: usize,
    /// `[O, I, 3, 3]` (kernel rows over frequency, columns over time).
    pub weight: Vec<f32>,
    /// `[O]`.
    pub bias: Vec<f32>,
}

impl HostConv {
    /// Folds inference batch norm `(x - mean) / sqrt(var + eps) * gamma + beta` into the
    /// convolution's weights and bias.
    ///
    /// # Shapes
    /// `weight` [O, I, 3, 3], `bias`, `gamma`, `beta`, `mean`, `var` [O]
    #[allow(clippy::too_many_arguments)]
    pub fn fold(
        in_ch: usize,
        stride_rows: usize,
        mut weight: Vec<f32>,
        bias: Vec<f32>,
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
        eps: f64,
    ) -> Result<Self> {
        let out_ch = bias.len();
        check_shape("conv weight", &[out_ch * in_ch * 9], &[weight.len()])?;
        for (name, v) in [
            ("gamma", gamma),
            ("beta", beta),
            ("running mean", mean),
            ("running var", var),
        ] {
            check_shape(name, &[out_ch], &[v.len()])?;
        }
        let per_out = in_ch * 9;
        let mut folded_bias = vec![0.0; out_ch];
        for o in 0..out_ch {
            let scale = (gamma[o] as f64 / (var[o] as f64 + eps).sqrt()) as f32;
            weight[o * per_out..(o + 1) * per_out]
                .iter_mut()
                .for_each(|w| *w *= scale);
            folded_bias[o] = (bias[o] - mean[o]) * scale + beta[o];
        }
        Ok(HostConv {
            out_ch,
            in_ch,
            stride_rows,
            weight,
            bias: folded_bias,
        })
    }

    /// One output row: `out[o][t] = relu(bias[o] + sum_i,dr,dt w[o,i,dr,dt] * rows[dr][i][t+dt-1])`,
    /// zero outside the input (a `None` row is padding).
    ///
    /// # Shapes
    /// each present row `[I, W]`, `out` [O, W]
    fn row(&self, rows: [Option<&[f32]>; 3], w: usize, out: &mut [f32]) {
        for o in 0..self.out_ch {
            let acc = &mut out[o * w..(o + 1) * w];
            acc.fill(self.bias[o]);
            for (dr, row) in rows.iter().enumerate() {
                let Some(row) = row else { continue };
                for i in 0..self.in_ch {
                    let x = &row[i * w..(i + 1) * w];
                    let k = &self.weight[((o * self.in_ch + i) * 3 + dr) * 3..][..3];
                    // Column t - 1, t and t + 1 of the input feed output column t.
                    acc[1..].iter_mut().zip(&x[..w - 1]).for_each(|(a, v)| *a += k[0] * v);
                    acc.iter_mut().zip(x).for_each(|(a, v)| *a += k[1] * v);
                    acc[..w - 1].iter_mut().zip(&x[1..]).for_each(|(a, v)| *a += k[2] * v);
                }
            }
            acc.iter_mut().for_each(|a| *a = a.max(0.0));
        }
    }
}

/// The CNN's inference weights on the host (see the module docs).
#[derive(Clone, Debug)]
pub struct RowCachedCnn {
    convs: [HostConv; 3],
    /// `[C3 * G, C]` (Burn's layout: input-major).
    fc_weight: Vec<f32>,
    /// `[C]`.
    fc_bias: Vec<f32>,
    groups: usize,
    db_mean: f32,
    db_std: f32,
}

/// The distinct versions of every row of one level: row `r`'s version for a sample is keyed by
/// the sample's kept-band bits restricted to `deps[r]`.
struct Level {
    /// Bands each row can see, as bits.
    deps: Vec<u64>,
    /// Values per row version.
    row_len: usize,
    /// Per row: key -> slot in `data`.
    index: Vec<HashMap<u64, usize>>,
    /// Every version of every row, `row_len` values each.
    data: Vec<f32>,
}

impl Level {
    /// The version of row `r` for a sample with kept-band bits `bits`.
    fn get(&self, r: usize, bits: u64) -> &[f32] {
        let slot = self.index[r][&(bits & self.deps[r])];
        &self.data[slot * self.row_len..(slot + 1) * self.row_len]
    }
}

impl RowCachedCnn {
    /// Builds from host weights; `fc_weight` is `[C3 * groups, C]`.
    pub(crate) fn new(
        convs: [HostConv; 3],
        fc_weight: Vec<f32>,
        fc_bias: Vec<f32>,
        groups: usize,
        db_mean: f32,
        db_std: f32,
    ) -> Result<Self> {
        if convs[0].in_ch != 1 || convs[1].in_ch != convs[0].out_ch || convs[2].in_ch != convs[1].out_ch {
            return Err(Error::shape(
                "conv channels",
                "1 -> C1 -> C2 -> C3",
                format!(
                    "{} -> {}, {} -> {}, {} -> {}",
                    convs[0].in_ch, convs[0].out_ch, convs[1].in_ch, convs[1].out_ch, convs[2].in_ch, convs[2].out_ch
                ),
            ));
        }
        check_shape(
            "fc weight",
            &[convs[2].out_ch * groups * fc_bias.len()],
            &[fc_weight.len()],
        )?;
        Ok(RowCachedCnn {
            convs,
            fc_weight,
            fc_bias,
            groups,
            db_mean,
            db_std,
        })
    }

    /// Number of classes `C`.
    pub fn n_classes(&self) -> usize {
        self.fc_bias.len()
    }

    /// The folded convolutions, the head's weights `[C3 * G, C]` and bias `[C]`, the groups
    /// `G` and the dB normalisation (mean, std), for [`super::cnn_rows_device::DeviceRowCnn`].
    pub(crate) fn parts(&self) -> (&[HostConv; 3], &[f32], &[f32], usize, f32, f32) {
        (
            &self.convs,
            &self.fc_weight,
            &self.fc_bias,
            self.groups,
            self.db_mean,
            self.db_std,
        )
    }

    /// Class probabilities of one power mel spectrogram under each band mask: row `r` of the
    /// model input is `kept[r]` where the mask keeps band `row_band[r]` (value > 0.5) and
    /// `removed[r]` where it removes it. Runs on up to `threads` threads.
    ///
    /// # Shapes
    /// `kept` [M, T], `removed` [M, T], `row_band` [M] (values < B <= 64), `masks` [N, B]
    /// -> [N, C]
    pub fn probs_band_masked(
        &self,
        kept: ArrayView2<f32>,
        removed: ArrayView2<f32>,
        row_band: &[u32],
        masks: ArrayView2<f32>,
        threads: usize,
    ) -> Result<Array2<f32>> {
        let (m, t) = kept.dim();
        let (n, b) = masks.dim();
        check_shape("removed", &[m, t], removed.shape())?;
        check_shape("row_band", &[m], &[row_band.len()])?;
        if b > 64 {
            return Err(Error::shape("masks", "[N, B <= 64]", format!("[{n}, {b}]")));
        }
        crate::perturb::check_row_band(row_band, b)?;
        // Rows and columns after each block: conv1 (stride 2 over rows) and 2x2 pooling, conv2
        // and pooling, conv3.
        let h1 = (m - 1) / self.convs[0].stride_rows + 1;
        let (h1p, w1p) = (h1 / 2, t / 2);
        let (h2p, w2p) = (h1p / 2, w1p / 2);
        if h2p == 0 || w2p == 0 {
            return Err(Error::shape(
                "mel spectrogram",
                "[M >= 7, T >= 4]",
                format!("[{m}, {t}]"),
            ));
        }
        let bits = mask_bits(masks);
        let normalise = |p: ArrayView2<f32>| -> Vec<f32> {
            let scale = 10.0 / std::f32::consts::LN_10;
            p.iter()
                .map(|&v| ((v + 1e-10).ln() * scale - self.db_mean) / self.db_std)
                .collect()
        };
        let (xk, xr) = (normalise(kept), normalise(removed));
        let input_deps: Vec<u64> = row_band.iter().map(|&r| 1u64 << r).collect();

        // Block 1 reads the input rows (one channel) through the stride; blocks 2 and 3 read
        // the pooled rows below them.
        let input_row = |r: usize, key: u64| -> &[f32] {
            let x = if key & input_deps[r] != 0 { &xk } else { &xr };
            &x[r * t..(r + 1) * t]
        };
        let c = &self.convs;
        let l1 = build_level(
            &bits,
            h1p,
            c[0].out_ch * w1p,
            2 * c[0].out_ch * t,
            threads,
            &|q| conv_deps(&input_deps, 2 * q, 2, c[0].stride_rows),
            &|q, key, scratch, out| pooled_row(&c[0], |r, k| input_row(r, k), m, 2 * q, key, t, scratch, out),
        );
        let l2 = build_level(
            &bits,
            h2p,
            c[1].out_ch * w2p,
            2 * c[1].out_ch * w1p,
            threads,
            &|q| conv_deps(&l1.deps, 2 * q, 2, 1),
            &|q, key, scratch, out| pooled_row(&c[1], |r, k| l1.get(r, k), h1p, 2 * q, key, w1p, scratch, out),
        );
        let (c3, classes) = (c[2].out_ch, self.n_classes());
        // The head is linear in conv3's rows up to the softmax, so each version of row r
        // computes its share of the logits, `share[k] = sum_o mean(row[o]) w[r, o, k]`
        // ([`head_per_row`]), and each sample sums its rows' shares (as the device forward does).
        let head = head_per_row(&self.fc_weight, self.groups, classes, h2p); // [H3, C3, C]
        let l3 = build_level(
            &bits,
            h2p,
            classes,
            c3 * w2p,
            threads,
            &|r| conv_deps(&l2.deps, r, 1, 1),
            &|r, key, scratch, out| {
                let rows = conv_inputs(|j, k| l2.get(j, k), h2p, r, 1, key);
                let full = &mut scratch[..c3 * w2p];
                c[2].row(rows, w2p, full);
                out.fill(0.0);
                add_row_share(full, w2p, &head[r * c3 * classes..(r + 1) * c3 * classes], out);
            },
        );

        // Per sample: the bias plus its rows' shares, and a softmax.
        let mut probs = Array2::<f32>::zeros((n, classes));
        for (mut p, &key) in probs.rows_mut().into_iter().zip(&bits) {
            let logits = p.as_slice_mut().expect("a row of a standard-layout array");
            logits.copy_from_slice(&self.fc_bias);
            for r in 0..h2p {
                logits.iter_mut().zip(l3.get(r, key)).for_each(|(l, v)| *l += v);
            }
            softmax_in_place(logits);
        }
        Ok(probs)
    }
}

/// The head's weights per row of conv3: its adaptive average pooling of `h3` rows into
/// `groups` groups composed with the linear layer `fc_weight` ([C3 * G, C]), so that a row's
/// share of the logits is `sum_o mean(row[o]) w[r, o, k]` and the logits are the bias plus
/// every row's share: `w[r, o, k] = sum over the groups g holding r of fc[o G + g, k] / rows_g`.
///
/// # Shapes
/// `fc_weight` [C3 * G, C] -> [H3, C3, C]
pub(crate) fn head_per_row(fc_weight: &[f32], groups: usize, classes: usize, h3: usize) -> Vec<f32> {
    let c3 = fc_weight.len() / (groups * classes).max(1);
    let mut head = vec![0.0f32; h3 * c3 * classes];
    for g in 0..groups {
        let (start, end) = (g * h3 / groups, ((g + 1) * h3).div_ceil(groups));
        let rows = (end - start) as f32;
        for r in start..end {
            for o in 0..c3 {
                let fc = &fc_weight[(o * groups + g) * classes..][..classes];
                let w = &mut head[(r * c3 + o) * classes..][..classes];
                w.iter_mut().zip(fc).for_each(|(w, f)| *w += f / rows);
            }
        }
    }
    head
}

/// Adds one row version's share of the logits to `out`: `out[k] += sum_o mean(values[o]) w[o, k]`.
///
/// # Shapes
/// `values` [C3, W] (a version's columns per channel), `weight` [C3, C] (its row's slice of
/// [`head_per_row`]), `out` [C]
pub(crate) fn add_row_share(values: &[f32], cols: usize, weight: &[f32], out: &mut [f32]) {
    for (channel, w) in values.chunks(cols).zip(weight.chunks(out.len())) {
        let mean = channel.iter().sum::<f32>() / cols as f32;
        out.iter_mut().zip(w).for_each(|(l, w)| *l += mean * w);
    }
}

/// Turns logits into probabilities in place: `exp(l - max) / sum`.
pub(crate) fn softmax_in_place(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    logits.iter_mut().for_each(|l| *l = (*l - max).exp());
    let sum: f32 = logits.iter().sum();
    logits.iter_mut().for_each(|e| *e /= sum);
}

/// Each mask's kept bands as bits (band `k` is bit `k`; a value above 0.5 keeps it).
///
/// # Shapes
/// `masks` [N, B <= 64] -> [N]
pub(crate) fn mask_bits(masks: ArrayView2<f32>) -> Vec<u64> {
    masks
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0u64, |acc, (k, &v)| if v > 0.5 { acc | (1 << k) } else { acc })
        })
        .collect()
}

/// The bands seen by output rows `first * stride - 1 ..= first * stride + 1` of a 3x3
/// convolution over rows with `deps`, for `count` consecutive output rows starting at `first`
/// (`count` 2 for a block followed by 2x2 pooling).
pub(crate) fn conv_deps(deps: &[u64], first: usize, count: usize, stride: usize) -> u64 {
    (first..first + count)
        .flat_map(|r| (r * stride).saturating_sub(1)..=(r * stride + 1))
        .filter_map(|j| deps.get(j))
        .fold(0, |a, d| a | d)
}

/// The three input rows of output row `r` of a 3x3 convolution (padding 1) over `h` rows.
fn conv_inputs<'a>(
    get: impl Fn(usize, u64) -> &'a [f32],
    h: usize,
    r: usize,
    stride: usize,
    key: u64,
) -> [Option<&'a [f32]>; 3] {
    std::array::from_fn(|dr| {
        let j = (r * stride + dr).checked_sub(1)?;
        (j < h).then(|| get(j, key))
    })
}

/// Conv rows `first` and `first + 1` of `conv` over `h` input rows of `w` columns, then 2x2
/// max pooling into `out` `[O, w / 2]`. `scratch` holds at least `2 * O * w` values.
#[allow(clippy::too_many_arguments)]
fn pooled_row<'a>(
    conv: &HostConv,
    get: impl Fn(usize, u64) -> &'a [f32] + Copy,
    h: usize,
    first: usize,
    key: u64,
    w: usize,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let o = conv.out_ch;
    let (a, rest) = scratch.split_at_mut(o * w);
    let bb = &mut rest[..o * w];
    conv.row(conv_inputs(get, h, first, conv.stride_rows, key), w, a);
    conv.row(conv_inputs(get, h, first + 1, conv.stride_rows, key), w, bb);
    let wp = w / 2;
    for ch in 0..o {
        let (ra, rb) = (&a[ch * w..(ch + 1) * w], &bb[ch * w..(ch + 1) * w]);
        for (x, v) in out[ch * wp..(ch + 1) * wp].iter_mut().enumerate() {
            *v = ra[2 * x].max(ra[2 * x + 1]).max(rb[2 * x]).max(rb[2 * x + 1]);
        }
    }
}

/// Writes version `key` of row `r` into `out`, given scratch: `(r, key, scratch, out)`.
type RowFn<'a> = dyn Fn(usize, u64, &mut [f32], &mut [f32]) + Sync + 'a;

/// One row's versions: the sample bits restricted to the row's bands -> slot.
pub(crate) type RowSlots = HashMap<u64, usize>;

/// The versions of each row that the samples `bits` need: row `r`'s version for a sample is
/// its bits restricted to `deps[r]`. Returns per row the map key -> slot, and the `(row, key)`
/// of every slot, in order of first appearance per row.
pub(crate) fn row_versions(deps: &[u64], bits: &[u64]) -> (Vec<RowSlots>, Vec<(usize, u64)>) {
    let mut index = vec![HashMap::new(); deps.len()];
    let mut jobs: Vec<(usize, u64)> = Vec::new();
    for (r, map) in index.iter_mut().enumerate() {
        for &b in bits {
            let key = b & deps[r];
            let next = jobs.len();
            map.entry(key).or_insert_with(|| {
                jobs.push((r, key));
                next
            });
        }
    }
    (index, jobs)
}

/// Computes every version of each of `rows` rows that some sample needs (`deps(r)`: the bands
/// row `r` sees; `compute(r, key, scratch, out)`: writes version `key` of row `r`, `row_len`
/// values, using `scratch_len` values of scratch), spread over `threads` threads.
fn build_level(
    bits: &[u64],
    rows: usize,
    row_len: usize,
    scratch_len: usize,
    threads: usize,
    deps: &(dyn Fn(usize) -> u64 + Sync),
    compute: &RowFn<'_>,
) -> Level {
    let deps: Vec<u64> = (0..rows).map(deps).collect();
    let (index, jobs) = row_versions(&deps, bits);
    let mut data = vec![0.0f32; jobs.len() * row_len];
    let per_thread = jobs.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (chunk_jobs, chunk_out) in jobs.chunks(per_thread).zip(data.chunks_mut(per_thread * row_len)) {
            s.spawn(move || {
                let mut scratch = vec![0.0f32; scratch_len];
                for (&(r, key), out) in chunk_jobs.iter().zip(chunk_out.chunks_mut(row_len)) {
                    compute(r, key, &mut scratch, out);
                }
            });
        }
    });
    Level {
        deps,
        row_len,
        index,
        data,
    }
}
