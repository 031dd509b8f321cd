// gl_frames.wgsl: the STFT's windowed frames of a chunk of waveforms, as complex FFT input
// (CPU twin: the framing of audio::Stft::forward: centre reflect padding as numpy's, or zero
// padding when the signal is not longer than n_fft / 2, and the window padded to n_fft).
//
// Bindings (group 0):
//   0 uniform           params : Params                   (mirrors gpu::kernels::GlFramesParams)
//   1 storage read      wave   : array<f32> [Nc, S]
//   2 storage read      window : array<f32> [n_fft]
//   3 storage read_write out   : array<vec2<f32>> [Nc, T, n_fft]  (x w, 0)
// Dispatch grid: (min(G, 65535), ceil(G / 65535), 1) with G = ceil(Nc * T * n_fft / 256),
// workgroup (256, 1, 1): one invocation per output value, linear index ((i * T) + t) * n_fft + n.

struct Params {
    n_fft: u32,
    hop: u32,
    n_frames: u32,
    n_samples: u32,
    center: u32,
    n_chunk: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> wave: array<f32>;
@group(0) @binding(2) var<storage, read> window: array<f32>;
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
    let len = i32(params.n_samples);
    var pad = 0i;
    if (params.center != 0u) {
        pad = i32(n_fft / 2u);
    }
    var idx = i32(t * params.hop + n) - pad;
    var x = 0.0;
    if (idx >= 0 && idx < len) {
        x = wave[i * params.n_samples + u32(idx)];
    } else if (len > pad) {
        // numpy "reflect": mirror about the edge samples without repeating them.
        if (idx < 0) {
            idx = -idx;
        } else {
            idx = 2 * len - 2 - idx;
        }
        x = wave[i * params.n_samples + u32(idx)];
    }
    out[cell] = vec2<f32>(x * window[n], 0.0);
}
