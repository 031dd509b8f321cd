// gl_overlap_add.wgsl: the inverse STFT's weighted overlap-add of gl_iterate.wgsl's frame terms
// (CPU twin: the overlap-add loop of audio::Stft::inverse, librosa.istft semantics).
//
// Bindings (group 0):
//   0 uniform           params : Params                       (mirrors gpu::kernels::GlOverlapAddParams)
//   1 storage read      frames : array<f32> [Nc, T, n_fft]   (re(ifft) / n_fft) window of each frame
//   2 storage read      wss    : array<f32> [start + S]       window sum-square at each padded sample
//   3 storage read_write out   : array<f32> [R, S]            rows out_row .. out_row + Nc written
// Dispatch grid: (min(G, 65535), ceil(G / 65535), 1) with G = ceil(Nc * S / 256), workgroup
// (256, 1, 1): one invocation per output sample (i, s). With q = s + start:
//   out[out_row + i, s] = (sum over frames t, in order, with t hop <= q < t hop + n_fft, of
//   frames[i, t, q - t hop]) / wss[q]  (no division where wss[q] is not above the smallest
//   normal f32).

struct Params {
    n_fft: u32,
    hop: u32,
    n_frames: u32,
    n_samples: u32,
    start: u32,
    n_chunk: u32,
    out_row: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> frames: array<f32>;
@group(0) @binding(2) var<storage, read> wss: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const MIN_POSITIVE: f32 = 1.17549435e-38;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 256u;
    let s_len = params.n_samples;
    if (id >= params.n_chunk * s_len) {
        return;
    }
    let i = id / s_len;
    let s = id % s_len;
    let q = s + params.start;
    let n_fft = params.n_fft;
    var t_lo = 0u;
    if (q >= n_fft) {
        t_lo = (q - n_fft) / params.hop + 1u;
    }
    let t_hi = min(params.n_frames, q / params.hop + 1u);
    var acc = 0.0;
    for (var t = t_lo; t < t_hi; t = t + 1u) {
        let n = q - t * params.hop;
        acc = acc + frames[(i * params.n_frames + t) * n_fft + n];
    }
    let w = wss[q];
    if (w > MIN_POSITIVE) {
        acc = acc / w;
    }
    out[(params.out_row + i) * s_len + s] = acc;
}
