// perturb.wgsl: a chunk of masked copies of the mel spectrograms of one or more utterances,
// each under the same masks (CPU twin: perturb::perturb_cpu, once per utterance).
//
// Bindings (group 0):
//   0 uniform           params   : Params              (mirrors gpu::kernels::PerturbParams)
//   1 storage read      mel      : array<f32> [S, M, T] power mel of S stacked utterances
//   2 storage read      row_mean : array<f32> [S, M]   mean power of each row over time
//   3 storage read      row_band : array<u32> [M]      band index of each row
//   4 storage read      masks    : array<f32> [N, B]   1 keeps a band, 0 removes it
//   5 storage read_write out     : array<f32> [R, M, T] output rows (the model's input tensor)
// Dispatch grid: (ceil(M * T / 256), Nc, U), workgroup (256, 1, 1): one invocation per output
// cell. Grid z = u reads utterance first_utt + u; its output row out_row + u * Nc + i uses mask
// row sample_offset + i. Noise depends on the mask row and the cell, as on the CPU.

struct Params {
    n_mels: u32,
    n_frames: u32,
    n_bands: u32,
    n_chunk: u32,
    sample_offset: u32,
    fill_mode: u32, // 0 zero, 1 row mean, 2 exponential noise at the row mean
    seed_lo: u32,
    seed_hi: u32,
    out_row: u32,
    first_utt: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> mel: array<f32>;
@group(0) @binding(2) var<storage, read> row_mean: array<f32>;
@group(0) @binding(3) var<storage, read> row_band: array<u32>;
@group(0) @binding(4) var<storage, read> masks: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const STREAM_NOISE: u32 = 2u;

// hash_u32, random_u32 and unit_open come from random.wgsl.

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let cell = gid.x;
    let i = gid.y;
    let plane = params.n_mels * params.n_frames;
    if (cell >= plane || i >= params.n_chunk) {
        return;
    }
    let utt = params.first_utt + gid.z;
    let r = cell / params.n_frames;
    let s = params.sample_offset + i;
    var v: f32;
    if (masks[s * params.n_bands + row_band[r]] > 0.5) {
        v = mel[utt * plane + cell];
    } else if (params.fill_mode == 1u) {
        v = row_mean[utt * params.n_mels + r];
    } else if (params.fill_mode == 2u) {
        let u = unit_open(random_u32(params.seed_lo, params.seed_hi, STREAM_NOISE, s, cell));
        v = -log(u) * row_mean[utt * params.n_mels + r];
    } else {
        v = 0.0;
    }
    out[(params.out_row + gid.z * params.n_chunk + i) * plane + cell] = v;
}
