// gl_update.wgsl: fast Griffin-Lim's phase update from the rebuilt spectrum (CPU twin: the
// update loop of griffin_lim::griffin_lim, librosa's momentum form):
//   v = rebuilt - keep * prev,  angle = v / (|v| + 1e-16),  prev = rebuilt.
//
// Bindings (group 0):
//   0 uniform           params  : Params                       (mirrors gpu::kernels::GlUpdateParams)
//   1 storage read      rebuilt : array<vec2<f32>> [Nc, T, n_fft]  forward FFT of the frames
//   2 storage read_write angles : array<vec2<f32>> [Nc, K, T]
//   3 storage read_write prev   : array<vec2<f32>> [Nc, K, T]
// Dispatch grid: (min(G, 65535), ceil(G / 65535), 1) with G = ceil(Nc * K * T / 256), workgroup
// (256, 1, 1): one invocation per (i, f, t), linear index ((i * K) + f) * T + t.

struct Params {
    n_bins: u32,
    n_frames: u32,
    n_fft: u32,
    n_chunk: u32,
    keep: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> rebuilt: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> angles: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> prev: array<vec2<f32>>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let cell = gid.x + gid.y * nwg.x * 256u;
    let plane = params.n_bins * params.n_frames;
    if (cell >= params.n_chunk * plane) {
        return;
    }
    let i = cell / plane;
    let f = (cell % plane) / params.n_frames;
    let t = cell % params.n_frames;
    let r = rebuilt[(i * params.n_frames + t) * params.n_fft + f];
    let v = r - prev[cell] * params.keep;
    angles[cell] = v / (length(v) + 1e-16);
    prev[cell] = r;
}
