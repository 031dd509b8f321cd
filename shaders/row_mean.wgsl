// row_mean.wgsl: mean of each mel row over time (CPU twin: perturb::row_means).
//
// Bindings (group 0):
//   0 uniform           params : Params              (mirrors gpu::kernels::RowMeanParams)
//   1 storage read      mel    : array<f32> [U, M, T]
//   2 storage read_write means : array<f32> [U, M]
// Dispatch grid: (M, U, 1), workgroup (64, 1, 1): one workgroup per (row, utterance), tree
// reduction.

struct Params {
    n_mels: u32,
    n_frames: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> mel: array<f32>;
@group(0) @binding(2) var<storage, read_write> means: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = wg.x;
    let row = wg.y * params.n_mels + m;
    var acc: f32 = 0.0;
    if (m < params.n_mels) {
        for (var t: u32 = lid; t < params.n_frames; t = t + 64u) {
            acc = acc + mel[row * params.n_frames + t];
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride: u32 = 32u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] = partial[lid] + partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u && m < params.n_mels) {
        means[row] = partial[0] / f32(max(params.n_frames, 1u));
    }
}
