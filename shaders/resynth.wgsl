// resynth.wgsl: a chunk of perturbed waveforms mixed from one utterance's band signals
// (CPU twin: resynth::resynth_cpu).
//
// Bindings (group 0):
//   0 uniform           params : Params                (mirrors gpu::kernels::ResynthParams)
//   1 storage read      rows   : array<f32> [B + 1, S] delta_b = x_b - f_b per band, then base
//   2 storage read      masks  : array<f32> [N, B]     1 keeps a band, 0 removes it
//   3 storage read_write out   : array<f32> [R, S]     the model's input tensor; rows
//                                                     out_row .. out_row + Nc are written
// Dispatch grid: (ceil(S / 256), Nc, 1), workgroup (256, 1, 1): one invocation per output sample.
// out[out_row + i, s] = rows[B, s] + sum_b masks[sample_offset + i, b] * rows[b, s], summed in
// band order.

struct Params {
    n_samples: u32,     // S
    n_bands: u32,       // B
    n_chunk: u32,       // Nc
    sample_offset: u32, // mask row of the chunk's first output
    out_row: u32,       // output row of the chunk's first output
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read> masks: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = gid.x;
    let i = gid.y;
    let n_s = params.n_samples;
    if (s >= n_s || i >= params.n_chunk) {
        return;
    }
    let b_count = params.n_bands;
    let mask_row = (params.sample_offset + i) * b_count;
    var acc = rows[b_count * n_s + s];
    for (var b = 0u; b < b_count; b = b + 1u) {
        let m = masks[mask_row + b];
        if (m != 0.0) {
            acc = acc + m * rows[b * n_s + s];
        }
    }
    out[(params.out_row + i) * n_s + s] = acc;
}
