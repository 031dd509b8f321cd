// gl_spectrum.wgsl: Griffin-Lim's current estimate, magnitude x unit phase, written as the full
// Hermitian spectrum of every frame for the inverse FFT (CPU twin: the Hermitian extension in
// audio::Stft::inverse, fed by griffin_lim::griffin_lim).
//
// Bindings (group 0):
//   0 uniform           params : Params                      (mirrors gpu::kernels::GlSpectrumParams)
//   1 storage read      mag    : array<f32> [Nc, K, T]
//   2 storage read      angles : array<vec2<f32>> [Nc, K, T]
//   3 storage read_write out   : array<vec2<f32>> [Nc, T, n_fft]  spectrum of frame (i, t)
// Dispatch grid: (min(G, 65535), ceil(G / 65535), 1) with G = ceil(Nc * T * n_fft / 256),
// workgroup (256, 1, 1): one invocation per output value, linear index ((i * T) + t) * n_fft + n.
// out[i, t, n] = mag * angle at bin n for n < K, else the conjugate of bin n_fft - n.

struct Params {
    n_bins: u32,
    n_frames: u32,
    n_fft: u32,
    n_chunk: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> mag: array<f32>;
@group(0) @binding(2) var<storage, read> angles: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec2<f32>>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let cell = gid.x + gid.y * nwg.x * 256u;
    let n_fft = params.n_fft;
    let per_row = params.n_frames * n_fft;
    if (cell >= params.n_chunk * per_row) {
        return;
    }
    let i = cell / per_row;
    let t = (cell % per_row) / n_fft;
    let n = cell % n_fft;
    var f = n;
    if (n >= params.n_bins) {
        f = n_fft - n;
    }
    let src = (i * params.n_bins + f) * params.n_frames + t;
    var v = angles[src] * mag[src];
    if (n >= params.n_bins) {
        v.y = -v.y;
    }
    out[cell] = v;
}
