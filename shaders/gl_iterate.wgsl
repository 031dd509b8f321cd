// gl_iterate.wgsl: one fast Griffin-Lim step for every frame of a chunk, a workgroup per frame,
// the FFTs in workgroup memory (CPU twin: one iteration of griffin_lim::griffin_lim through
// audio::Stft::forward and the per-frame half of audio::Stft::inverse). With analyse = 1:
//   1. the frame of the current waveform (centre reflect padding as numpy's, or zero padding when
//      the signal is not longer than n_fft / 2), windowed, forward FFT -> rebuilt bins r;
//   2. for every bin f < K: v = r - keep * prev, angle = v / (|v| + 1e-16), prev = r.
// With analyse = 0 (the first step) the angles are used as they are. Then, always:
//   3. the Hermitian spectrum mag * angle (conjugate of bin n_fft - n above K), inverse FFT, and
//      out[i, t, n] = (re / n_fft) * window[n]: the frame's overlap-add term.
//
// Bindings (group 0):
//   0 uniform           params  : Params                       (mirrors gpu::kernels::GlIterateParams)
//   1 storage read      twiddle : array<vec2<f32>> [n_fft / 2]  exp(-2 pi i j / n_fft), computed in f64
//   2 storage read      window  : array<f32> [n_fft]             analysis window padded to n_fft
//   3 storage read      wave    : array<f32> [Nc, S]             current waveforms (analyse = 1)
//   4 storage read      mag     : array<f32> [Nc, K, T]          target magnitude
//   5 storage read_write angles : array<vec2<f32>> [Nc, K, T]
//   6 storage read_write prev   : array<vec2<f32>> [Nc, K, T]
//   7 storage read_write out    : array<f32> [Nc, T, n_fft]      overlap-add terms
// Dispatch grid: (min(Nc T, 65535), ceil(Nc T / 65535), 1), workgroup (256, 1, 1): workgroup
// (wg.x + wg.y * nwg.x) is frame t of chunk row i, linear index i * T + t. n_fft is a power of
// two, at most MAX_N (2048: 16 KiB of workgroup memory); the FFT is an in-place radix-2
// decimation in time from bit-reversed order, unnormalised in both directions.

struct Params {
    n_fft: u32,
    log2_n: u32,
    hop: u32,
    n_frames: u32,
    n_samples: u32,
    center: u32,
    n_chunk: u32,
    analyse: u32,
    keep: f32,
    inv_n: f32,
    _pad0: u32,
    _pad1: u32,
}

const MAX_N: u32 = 2048u;
const WG: u32 = 256u;
// Bins an invocation updates at most: ceil((MAX_N / 2 + 1) / WG).
const PER_INV: u32 = 5u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> twiddle: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> window: array<f32>;
@group(0) @binding(3) var<storage, read> wave: array<f32>;
@group(0) @binding(4) var<storage, read> mag: array<f32>;
@group(0) @binding(5) var<storage, read_write> angles: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> prev: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

var<workgroup> buf: array<vec2<f32>, 2048>;

fn bit_reverse(n: u32) -> u32 {
    return reverseBits(n) >> (32u - params.log2_n);
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// In-place FFT of buf (loaded in bit-reversed order); conjugate twiddles when inverse.
fn fft(lid: u32, inverse: bool) {
    let n = params.n_fft;
    var half = 1u;
    loop {
        if (half >= n) {
            break;
        }
        for (var b = lid; b < n / 2u; b = b + WG) {
            let pos = b % half;
            let i0 = (b / half) * 2u * half + pos;
            let i1 = i0 + half;
            var w = twiddle[pos * (n / (2u * half))];
            if (inverse) {
                w.y = -w.y;
            }
            let x1 = cmul(buf[i1], w);
            let x0 = buf[i0];
            buf[i0] = x0 + x1;
            buf[i1] = x0 - x1;
        }
        workgroupBarrier();
        half = half * 2u;
    }
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup: a workgroup past the end returns as a whole.
    let frame = wg.x + wg.y * nwg.x;
    if (frame >= params.n_chunk * params.n_frames) {
        return;
    }
    let n = params.n_fft;
    let k_bins = n / 2u + 1u;
    let t_frames = params.n_frames;
    let i = frame / t_frames;
    let t = frame % t_frames;
    // The bins f = lid + j WG this invocation owns, and their new spectrum values.
    var spec: array<vec2<f32>, 5>;
    if (params.analyse != 0u) {
        let len = i32(params.n_samples);
        var pad = 0i;
        if (params.center != 0u) {
            pad = i32(n / 2u);
        }
        for (var j = lid; j < n; j = j + WG) {
            var idx = i32(t * params.hop + j) - pad;
            var x = 0.0;
            if (idx >= 0 && idx < len) {
                x = wave[i * params.n_samples + u32(idx)];
            } else if (len > pad) {
                if (idx < 0) {
                    idx = -idx;
                } else {
                    idx = 2 * len - 2 - idx;
                }
                x = wave[i * params.n_samples + u32(idx)];
            }
            buf[bit_reverse(j)] = vec2<f32>(x * window[j], 0.0);
        }
        workgroupBarrier();
        fft(lid, false);
    }
    for (var j = 0u; j < PER_INV; j = j + 1u) {
        let f = lid + j * WG;
        if (f < k_bins) {
            let cell = (i * k_bins + f) * t_frames + t;
            var a = angles[cell];
            if (params.analyse != 0u) {
                let r = buf[f];
                let v = r - prev[cell] * params.keep;
                a = v / (length(v) + 1e-16);
                angles[cell] = a;
                prev[cell] = r;
            }
            spec[j] = a * mag[cell];
        }
    }
    workgroupBarrier();
    for (var j = 0u; j < PER_INV; j = j + 1u) {
        let f = lid + j * WG;
        if (f < k_bins) {
            buf[bit_reverse(f)] = spec[j];
            if (f > 0u && f < n - f) {
                buf[bit_reverse(n - f)] = vec2<f32>(spec[j].x, -spec[j].y);
            }
        }
    }
    workgroupBarrier();
    fft(lid, true);
    for (var j = lid; j < n; j = j + WG) {
        out[frame * n + j] = buf[j].x * params.inv_n * window[j];
    }
}
