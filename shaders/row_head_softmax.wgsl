// row_head_softmax.wgsl: the row-cached CNN's head, second step: each sample's logits are the
// bias plus the shares (row_head_share.wgsl) of its H3 versions of conv3's rows, one per row,
// and its probabilities their softmax,
//   probs[u N + n, k] = softmax_k(bias[k] + sum_h share[u V + head[n H3 + h], k]).
// CPU twin of both steps: model::row_head::RowHead::cpu.
//
// Bindings (group 0):
//   0 uniform            params : Params (row_head_params.wgsl, compiled before this
//                                 file; mirrors gpu::kernels::RowHeadParams)
//   1 storage read_write share  : array<f32> [U * V, C] (read only; read_write because Burn's
//                                 tensors may share one buffer with `probs`)
//   2 storage read       head   : array<u32> [N, H3] (each sample's version of each row, < V)
//   3 storage read       bias   : array<f32> [C]
//   4 storage read_write probs  : array<f32> [U * N, C]
// Dispatch grid: (gx, gy, 1) with gx * gy >= ceil(U N / 64) (folded as
// gpu::kernels::fold_groups folds), workgroup (64, 1, 1); one invocation per sample, which
// writes its logits into `probs` and turns them into probabilities in place.

@group(0) @binding(1) var<storage, read_write> share: array<f32>;
@group(0) @binding(2) var<storage, read> head: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = (wg.x + wg.y * nwg.x) * 64u + lid;
    if (s >= params.n_utts * params.n_samples) {
        return;
    }
    let classes = params.classes;
    let first_version = (s / params.n_samples) * params.n_versions;
    let slots = (s % params.n_samples) * params.h3;
    let out = s * classes;
    var top = -3.4028235e38;
    for (var k = 0u; k < classes; k++) {
        var logit = bias[k];
        for (var h = 0u; h < params.h3; h++) {
            logit += share[(first_version + head[slots + h]) * classes + k];
        }
        probs[out + k] = logit;
        top = max(top, logit);
    }
    var total = 0.0;
    for (var k = 0u; k < classes; k++) {
        let e = exp(probs[out + k] - top);
        probs[out + k] = e;
        total += e;
    }
    for (var k = 0u; k < classes; k++) {
        probs[out + k] = probs[out + k] / total;
    }
}
