"""FLOPs and bytes of one scoring forward, and the roofline share a measured rate reaches.

    python3 scripts/roofline.py [--matmul-tflops 18.9] [--bandwidth-gbs 1357] \
        [--cnn-per-s 152400] [--w2v-base-per-s 724.8] [--w2v-large-per-s 323.6]

Defaults are the H100 figures in the README: `cargo bench --bench scoring` (device_limits: the
f32 matmul rate, and the bandwidth of an elementwise pass; the w2v benches at batch 128 for base
and 64 for large, `bash scripts/gpu_check.sh w2v`), and the
CNN's scoring stage in `emolime bench --batch-size 4096` (1000 samples in 6.56 ms). FLOPs count
a multiply-add as 2 and cover convolutions, linear layers and attention products; bytes are the
least a forward must move (its input, weights once per batch, each layer's output written once and
read once), so the bound they give is optimistic.
"""

import argparse


def conv_out(n, k, s, p=0):
    return (n + 2 * p - k) // s + 1


def cnn(m=128, t=47, ch=(8, 16, 32), groups=8, classes=4, fused=False):
    """emolime's log-mel CNN on one [M, T] spectrogram: (FLOPs, bytes).

    Layer by layer (Burn's operations), each convolution's output is written and read once;
    with `fused` (one kernel per block, `shaders/conv_block.wgsl`: convolution, pooling and
    ReLU together), only each block's pooled output is.
    """
    c1, c2, c3 = ch
    h1, w1 = conv_out(m, 3, 2, 1), t  # conv1, stride (2, 1)
    f = 2 * 9 * 1 * c1 * h1 * w1
    acts = c1 * h1 * w1
    h2, w2 = h1 // 2, w1 // 2
    f += 2 * 9 * c1 * c2 * h2 * w2
    acts += c2 * h2 * w2
    h3, w3 = h2 // 2, w2 // 2
    f += 2 * 9 * c2 * c3 * h3 * w3
    acts += c3 * h3 * w3
    f += 2 * c3 * groups * classes
    if fused:
        acts = c1 * h2 * w2 + c2 * (h2 // 2) * (w2 // 2) + c3 * h3 * w3
    # The masked input is written by the perturbation kernel and read by the network.
    bytes_ = 4 * (2 * m * t + 2 * acts)
    return f, bytes_


def w2v(hidden, layers, inter, samples=16000, classes=4):
    """wav2vec 2.0 on one waveform of `samples` at 16 kHz: (FLOPs, bytes of activations)."""
    conv = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    n, c_in, f, acts = samples, 1, 0, 0
    for c, k, s in conv:
        n = conv_out(n, k, s)
        f += 2 * k * c_in * c * n
        acts += c * n
        c_in = c
    t = n
    f += 2 * 512 * hidden * t  # feature projection
    f += 2 * 128 * hidden * (hidden // 16) * t  # positional convolution, 16 groups
    per_layer = 2 * 4 * hidden * hidden * t + 2 * 2 * hidden * inter * t + 2 * 2 * t * t * hidden
    f += layers * per_layer
    f += 2 * hidden * hidden + 2 * hidden * classes  # pooled projection and classifier
    acts += layers * t * (6 * hidden + inter)
    return f, 4 * (samples + 2 * acts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matmul-tflops", type=float, default=18.9)
    ap.add_argument("--bandwidth-gbs", type=float, default=1357.0)
    ap.add_argument("--cnn-per-s", type=float, default=152400.0)
    ap.add_argument("--cnn-fused-per-s", type=float, default=0.0, help="0: not measured yet")
    ap.add_argument("--w2v-base-per-s", type=float, default=724.8)
    ap.add_argument("--w2v-large-per-s", type=float, default=323.6)
    a = ap.parse_args()
    rows = [
        ("log-mel CNN, 128 x 47", *cnn(), a.cnn_per_s),
        ("  fused blocks", *cnn(fused=True), a.cnn_fused_per_s),
        ("wav2vec 2.0 base, 1 s", *w2v(768, 12, 3072), a.w2v_base_per_s),
        ("wav2vec 2.0 large, 1 s", *w2v(1024, 24, 4096), a.w2v_large_per_s),
    ]
    print(f"{'model':24} {'GFLOP':>9} {'MB moved':>9} {'bound/s':>10} {'by':>9} {'measured/s':>11} {'share':>6}")
    for name, flops, bytes_, rate in rows:
        by_compute = a.matmul_tflops * 1e12 / flops
        by_memory = a.bandwidth_gbs * 1e9 / bytes_
        bound = min(by_compute, by_memory)
        which = "compute" if by_compute <= by_memory else "memory"
        measured = f"{rate:11.1f} {rate / bound:6.1%}" if rate > 0 else f"{'-':>11} {'-':>6}"
        print(f"{name:24} {flops / 1e9:9.4f} {bytes_ / 1e6:9.3f} {bound:10.0f} {which:>9} {measured}")


if __name__ == "__main__":
    main()
