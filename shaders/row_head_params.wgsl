// row_head_params.wgsl: the uniforms both row-head kernels read (row_head_share.wgsl and
// row_head_softmax.wgsl, each compiled after this file; gpu::shaders joins them), mirroring
// gpu::kernels::RowHeadParams, bound at group 0, binding 0.

struct Params {
    n_utts: u32,
    n_samples: u32,
    n_versions: u32,
    h3: u32,
    c3: u32,
    w3: u32,
    classes: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
