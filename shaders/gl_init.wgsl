// gl_init.wgsl: Griffin-Lim's start for a chunk of masked mel spectrograms: the STFT magnitude
// (clipped pseudo-inverse of the mel filterbank), seeded random initial phases, and a zero
// "previous rebuilt spectrum" for the momentum (CPU twin: griffin_lim::MelInverse::magnitude and
// the start of griffin_lim::griffin_lim).
//
// Bindings (group 0):
//   0 uniform           params : Params                  (mirrors gpu::kernels::GlInitParams)
//   1 storage read      pinv   : array<f32> [K, M]       pseudo-inverse of the mel filterbank
//   2 storage read      masked : array<f32> [Nc, M, T]   masked mel power (perturb.wgsl's output)
//   3 storage read_write mag   : array<f32> [Nc, K, T]   target magnitude
//   4 storage read_write angles: array<vec2<f32>> [Nc, K, T] unit phases
//   5 storage read_write prev  : array<vec2<f32>> [Nc, K, T] zeroed
// Dispatch grid: (min(G, 65535), ceil(G / 65535), 1) with G = ceil(Nc * K * T / 256), workgroup
// (256, 1, 1): one invocation per (chunk row i, bin f, frame t), linear index ((i * K) + f) * T + t.
// Phase of (sample_offset + i, f, t): 2 pi unit_open(random_u32(seed, 4, sample, f * T + t)).

struct Params {
    n_bins: u32,
    n_frames: u32,
    n_mels: u32,
    n_chunk: u32,
    sample_offset: u32,
    seed_lo: u32,
    seed_hi: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pinv: array<f32>;
@group(0) @binding(2) var<storage, read> masked: array<f32>;
@group(0) @binding(3) var<storage, read_write> mag: array<f32>;
@group(0) @binding(4) var<storage, read_write> angles: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> prev: array<vec2<f32>>;

const STREAM_PHASE: u32 = 4u;
const TAU: f32 = 6.283185307179586;

// hash_u32, random_u32 and unit_open come from random.wgsl.

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
    let m_rows = params.n_mels;
    var acc = 0.0;
    for (var m = 0u; m < m_rows; m = m + 1u) {
        acc = acc + pinv[f * m_rows + m] * masked[(i * m_rows + m) * params.n_frames + t];
    }
    mag[cell] = sqrt(max(acc, 0.0));
    let u = unit_open(random_u32(params.seed_lo, params.seed_hi, STREAM_PHASE, params.sample_offset + i, f * params.n_frames + t));
    let a = TAU * u;
    angles[cell] = vec2<f32>(cos(a), sin(a));
    prev[cell] = vec2<f32>(0.0, 0.0);
}
