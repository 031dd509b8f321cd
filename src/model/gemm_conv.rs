//! 1-D convolutions lowered to matrix products on channel-last input: the wav2vec 2.0 / HuBERT
//! feature encoder and positional convolution.
//!
//! Burn's wgpu backend runs a convolution with its direct kernel when autotune is off (as in
//! emolime's build: on lavapipe autotune made a first call take 23 s and chose a slower kernel,
//! and a kernel chosen by timing could change results from run to run): one invocation per
//! output value, no tiling, far from the device's matmul rate on the 512-channel layers of a
//! wav2vec 2.0 feature encoder. Here each convolution becomes one matmul per group of taps, which the backend tiles
//! well: the input `[N, L, C]` is read as blocks of `stride` positions (`[N, L / S, S·C]`, a
//! reshape), the window of output `t` is blocks `t .. t + ⌈K / S⌉` cut to `K` positions (one
//! slice per block, concatenated), and the windows times the weight `[K·C, C_out]` are the
//! outputs. Layers with `K = S` need no copy at all.

use burn::tensor::{FloatDType, Tensor};

/// At most this many taps go into one product; longer kernels (the positional convolution's
/// 128) are summed over several, so that the unfolded input stays near the size of the layer's
/// input rather than `K` times it.
const MAX_TAPS_PER_PRODUCT: usize = 32;

/// A 1-D convolution (`torch.nn.Conv1d` semantics: stride, symmetric zero padding, groups,
/// optional bias) computed as matrix products on channel-last input.
#[derive(Debug)]
pub struct GemmConv1d {
    /// One weight per run of taps, each `[G, taps · C_in / G, C_out / G]`, rows ordered by tap
    /// then input channel of the group.
    weights: Vec<Tensor<3>>,
    /// The tap range of each entry of `weights`.
    tap_runs: Vec<std::ops::Range<usize>>,
    /// `[C_out]`.
    bias: Option<Tensor<1>>,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl GemmConv1d {
    /// From a weight in PyTorch's layout.
    ///
    /// # Shapes
    /// `weight` [C_out, C_in / groups, K], `bias` [C_out]
    ///
    /// # Panics
    /// When `stride` or `groups` is zero or `groups` does not divide `C_out`: the callers derive
    /// them from a validated configuration.
    pub fn from_torch(
        weight: Tensor<3>,
        bias: Option<Tensor<1>>,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> Self {
        let [c_out, cg_in, kernel] = weight.dims();
        assert!(
            stride > 0 && groups > 0 && c_out.is_multiple_of(groups),
            "bad convolution geometry"
        );
        let cg_out = c_out / groups;
        // [C_out, Cg_in, K] -> [G, K, Cg_in, Cg_out]
        let full = weight.reshape([groups, cg_out, cg_in, kernel]).permute([0, 3, 2, 1]);
        let mut weights = Vec::new();
        let mut tap_runs = Vec::new();
        // Runs of whole stride blocks, at most MAX_TAPS_PER_PRODUCT taps (at least one block).
        let blocks_per_run = (MAX_TAPS_PER_PRODUCT / stride).max(1);
        let mut start = 0;
        while start < kernel {
            let end = (start + blocks_per_run * stride).min(kernel);
            let taps = end - start;
            weights.push(
                full.clone()
                    .slice([0..groups, start..end, 0..cg_in, 0..cg_out])
                    .reshape([groups, taps * cg_in, cg_out]),
            );
            tap_runs.push(start..end);
            start = end;
        }
        GemmConv1d {
            weights,
            tap_runs,
            bias,
            c_in: cg_in * groups,
            c_out,
            kernel,
            stride,
            padding,
            groups,
        }
    }

    /// The same convolution with its weights in `dtype` (its input must then be `dtype` too).
    pub fn cast(self, dtype: FloatDType) -> Self {
        GemmConv1d {
            weights: self.weights.into_iter().map(|w| w.cast(dtype)).collect(),
            bias: self.bias.map(|b| b.cast(dtype)),
            ..self
        }
    }

    /// The weight back in PyTorch's layout.
    ///
    /// # Shapes
    /// -> [C_out, C_in / groups, K]
    pub fn torch_weight(&self) -> Tensor<3> {
        let (g, cg_in) = (self.groups, self.c_in / self.groups);
        let cg_out = self.c_out / g;
        let parts = self
            .weights
            .iter()
            .zip(&self.tap_runs)
            .map(|(w, r)| w.clone().reshape([g, r.len(), cg_in, cg_out]))
            .collect();
        Tensor::cat(parts, 1)
            .permute([0, 3, 2, 1])
            .reshape([self.c_out, cg_in, self.kernel])
    }

    /// Output length for an input of `len` positions (0 when the padded input is shorter than
    /// the kernel).
    pub fn out_len(&self, len: usize) -> usize {
        let padded = len + 2 * self.padding;
        if padded < self.kernel {
            0
        } else {
            (padded - self.kernel) / self.stride + 1
        }
    }

    /// Bytes of the largest tensor one input of `len` positions creates here: the unfolded
    /// windows of one run of taps, or the output.
    pub fn largest_tensor_bytes(&self, len: usize) -> u64 {
        let t = self.out_len(len) as u64;
        let taps = self.tap_runs.iter().map(|r| r.len()).max().unwrap_or(0) as u64;
        4 * t * (taps * self.c_in as u64).max(self.c_out as u64)
    }

    /// The convolution.
    ///
    /// # Shapes
    /// `x` [N, L, C_in] -> [N, T, C_out] with `T = out_len(L)`
    ///
    /// # Panics
    /// When `x` does not have `C_in` channels or `T` is 0 (callers check input lengths against
    /// the receptive field first).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, len, c] = x.dims();
        assert_eq!(c, self.c_in, "input channels");
        let t = self.out_len(len);
        assert!(
            t > 0,
            "input of {len} positions is shorter than the kernel of {}",
            self.kernel
        );
        let (s, k, device, dtype) = (self.stride, self.kernel, x.device(), x.dtype());
        // Blocks of S positions: output t reads blocks t .. t + ⌈K / S⌉.
        let blocks = t - 1 + k.div_ceil(s);
        let need = blocks * s;
        let front = self.padding;
        let x = if front == 0 && len >= need {
            x.slice([0..n, 0..need, 0..c])
        } else {
            // Zeros in front, the input cut to what the windows read, zeros behind.
            let keep = len.min(need.saturating_sub(front));
            let back = need - front.min(need) - keep;
            let mut parts = Vec::with_capacity(3);
            if front > 0 {
                parts.push(Tensor::zeros([n, front.min(need), c], (&device, dtype)));
            }
            if keep > 0 {
                parts.push(x.slice([0..n, 0..keep, 0..c]));
            }
            if back > 0 {
                parts.push(Tensor::zeros([n, back, c], (&device, dtype)));
            }
            Tensor::cat(parts, 1)
        };
        let xb = x.reshape([n, blocks, s * c]); // [N, blocks, S·C]
        let (g, cg_out) = (self.groups, self.c_out / self.groups);
        let mut out: Option<Tensor<3>> = None;
        let mut out_grouped: Option<Tensor<4>> = None;
        for (w, run) in self.weights.iter().zip(&self.tap_runs) {
            // The windows of this run of taps: one slice per stride block it covers.
            let first_block = run.start / s;
            let pieces: Vec<Tensor<3>> = (first_block..run.end.div_ceil(s))
                .map(|q| {
                    let width = (run.end.min(q * s + s) - q * s) * c;
                    xb.clone().slice([0..n, q..q + t, 0..width])
                })
                .collect();
            let cols = if pieces.len() == 1 {
                pieces.into_iter().next().expect("one piece")
            } else {
                Tensor::cat(pieces, 2)
            }; // [N, T, taps·C]
            let taps = run.len();
            if g == 1 {
                let y = cols
                    .reshape([n * t, taps * c])
                    .matmul(w.clone().reshape([taps * c, self.c_out]))
                    .reshape([n, t, self.c_out]);
                out = Some(match out {
                    Some(acc) => acc + y,
                    None => y,
                });
            } else {
                let cg = c / g;
                let cols = cols
                    .reshape([n * t, taps, g, cg])
                    .permute([2, 0, 1, 3])
                    .reshape([g, n * t, taps * cg]); // [G, N·T, taps·Cg]
                let y = cols.matmul(w.clone()); // [G, N·T, Cg_out]
                let y = y.reshape([g, n, t, cg_out]);
                out_grouped = Some(match out_grouped {
                    Some(acc) => acc + y,
                    None => y,
                });
            }
        }
        let y = match (out, out_grouped) {
            (Some(y), _) => y,
            (None, Some(y)) => y.permute([1, 2, 0, 3]).reshape([n, t, self.c_out]),
            (None, None) => unreachable!("a kernel has at least one tap"),
        };
        match &self.bias {
            Some(b) => y + b.clone().reshape([1, 1, self.c_out]),
            None => y,
        }
    }

    /// The same convolution through Burn's own `conv1d` on channel-first input: the reference
    /// the tests and benches compare [`GemmConv1d::forward`] with.
    ///
    /// # Shapes
    /// `x` [N, L, C_in] -> [N, T, C_out]
    pub fn forward_direct(&self, x: Tensor<3>) -> Tensor<3> {
        use burn::tensor::module::conv1d;
        use burn::tensor::ops::ConvOptions;
        let options = ConvOptions::new([self.stride], [self.padding], [1], self.groups);
        conv1d(x.swap_dims(1, 2), self.torch_weight(), self.bias.clone(), options).swap_dims(1, 2)
    }
}
