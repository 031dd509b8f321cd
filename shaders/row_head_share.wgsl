// row_head_share.wgsl: the row-cached CNN's head, first step: each version of conv3's rows
// (the last level of model::cnn_rows_device's forward) gives its share of the logits through
// its own row's head weights (model::cnn_rows::head_per_row: the pooling of rows into groups
// composed with the linear layer),
//   share[v, k] = sum_o mean_w(rows[v, o, w]) weight[row(v), o, k].
// row_head_softmax.wgsl then sums each sample's shares. CPU twin of both:
// model::row_head::RowHead::cpu.
//
// Bindings (group 0):
//   0 uniform            params : Params (row_head_params.wgsl, compiled before this
//                                 file; mirrors gpu::kernels::RowHeadParams)
//   1 storage read_write rows        : array<f32> [U * V, C3, W3] (read only; read_write
//                                      because Burn's tensors may share one buffer with
//                                      `share`, and wgpu refuses a buffer bound read-only and
//                                      writable in one dispatch)
//   2 storage read       weight      : array<f32> [H3, C3, C]
//   3 storage read       version_row : array<u32> [V] (the conv3 row of each of an
//                                      utterance's V versions, each < H3)
//   4 storage read_write share       : array<f32> [U * V, C]
// Dispatch grid: (gx, gy, 1) with gx * gy >= ceil(U V C / 64) (folded as
// gpu::kernels::fold_groups folds), workgroup (64, 1, 1); one invocation per version and class.

@group(0) @binding(1) var<storage, read_write> rows: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> version_row: array<u32>;
@group(0) @binding(4) var<storage, read_write> share: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = (wg.x + wg.y * nwg.x) * 64u + lid;
    let classes = params.classes;
    if (idx >= params.n_utts * params.n_versions * classes) {
        return;
    }
    let v = idx / classes;
    let k = idx % classes;
    let row = version_row[v % params.n_versions];
    let w3 = params.w3;
    var acc = 0.0;
    for (var o = 0u; o < params.c3; o++) {
        let start = (v * params.c3 + o) * w3;
        var sum = 0.0;
        for (var w = 0u; w < w3; w++) {
            sum += rows[start + w];
        }
        acc += sum / f32(w3) * weight[(row * params.c3 + o) * classes + k];
    }
    share[idx] = acc;
}
