// fft.wgsl: one radix-2 Stockham stage of a batch of complex FFTs of power-of-two length n;
// log2(n) dispatches with p = 1, 2, 4, ..., n / 2, ping-ponging two buffers, give the transform
// in natural order (CPU twin: rustfft, through audio::Stft; unnormalised in both directions).
//
// Bindings (group 0):
//   0 uniform           params  : Params                   (mirrors gpu::kernels::FftParams)
//   1 storage read      twiddle : array<vec2<f32>> [n / 2] exp(-2 pi i j / n), computed in f64
//   2 storage read      src     : array<vec2<f32>> [R, n]
//   3 storage read_write dst    : array<vec2<f32>> [R, n]
// Dispatch grid: (min(G, 65535), ceil(G / 65535), 1) with G = ceil(R * n / 2 / 256), workgroup
// (256, 1, 1): one invocation per butterfly (row r, index i < n / 2):
//   k = i mod p, w = twiddle[k n / (2p)] (conjugated when inverse), u0 = src[i], u1 = w src[i + n/2],
//   dst[2i - k] = u0 + u1, dst[2i - k + p] = u0 - u1.

struct Params {
    n: u32,
    p: u32,
    n_rows: u32,
    inverse: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> twiddle: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> src: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec2<f32>>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 256u;
    let half_n = params.n / 2u;
    if (id >= params.n_rows * half_n) {
        return;
    }
    let row = id / half_n;
    let i = id % half_n;
    let p = params.p;
    let k = i & (p - 1u);
    var w = twiddle[k * (half_n / p)];
    if (params.inverse != 0u) {
        w.y = -w.y;
    }
    let base = row * params.n;
    let u0 = src[base + i];
    let v = src[base + i + half_n];
    let u1 = vec2<f32>(v.x * w.x - v.y * w.y, v.x * w.y + v.y * w.x);
    let j = 2u * i - k;
    dst[base + j] = u0 + u1;
    dst[base + j + p] = u0 - u1;
}
