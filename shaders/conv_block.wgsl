// conv_block.wgsl: one block of the mel CNN with its batch norm folded in: a 3x3 convolution
// (stride `stride_h` over rows, 1 over columns, zero padding 1), its bias, 2x2 max pooling
// (floor) or none, then ReLU; on the first block the input is read as
// `ln(power + 1e-10) + log_offset` (padding stays zero). CPU twin: model::conv_block::ConvBlock::cpu.
//
// Bindings (group 0):
//   0 uniform           params : Params      (mirrors gpu::kernels::ConvBlockParams)
//   1 storage read_write input : array<f32> [N, I, H, W] (read only; read_write because Burn's
//                                 tensors may share one buffer with `output`, and wgpu refuses a
//                                 buffer bound read-only and writable in one dispatch)
//   2 storage read      weight : array<f32> [O, I, 3, 3]
//   3 storage read      bias   : array<f32> [O]
//   4 storage read_write output : array<f32> [N, O, Ho, Wo]
// Dispatch grid: (gx, gy, ceil(O / 8)) with gx * gy >= ceil(N * Th * Tw / 64) (folded as
// gpu::kernels::fold_groups folds), workgroup (64, 1, 1). Each invocation computes a 2x2 tile
// of convolution outputs for 8 output channels (the workgroup's z), so each weight it loads
// serves four outputs and each input value it loads eight channels; pooled, the tile is one
// output (Th = Ho, Tw = Wo), else up to four (Th = ceil(Ho / 2), Tw = ceil(Wo / 2)).

struct Params {
    n: u32,
    in_ch: u32,
    out_ch: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    stride_h: u32,
    pool: u32,
    log_input: u32,
    log_offset: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

/// Output channels per invocation.
const OC_T: u32 = 8u;

/// Input value at row `r`, column `c` of channel plane `base` (zero outside the input).
fn load(base: u32, r: i32, c: i32) -> f32 {
    if (r < 0 || c < 0 || r >= i32(params.in_h) || c >= i32(params.in_w)) {
        return 0.0;
    }
    let v = input[base + u32(r) * params.in_w + u32(c)];
    if (params.log_input == 1u) {
        return log(v + 1e-10) + params.log_offset;
    }
    return v;
}

/// This invocation's tile as (n, th, tw), or n = N past the end.
fn tile_of(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, tiles_h: u32, tiles_w: u32) -> vec3<u32> {
    let idx = (wg.x + wg.y * nwg.x) * 64u + lid;
    let per = tiles_h * tiles_w;
    if (idx >= params.n * per) {
        return vec3<u32>(params.n, 0u, 0u);
    }
    let rem = idx % per;
    return vec3<u32>(idx / per, rem / tiles_w, rem % tiles_w);
}

/// Writes `max(v + bias, 0)` for input `n`, output channel `oc`, row `r`, column `c`.
fn store(n: u32, oc: u32, r: u32, c: u32, v: f32) {
    let y = max(v + bias[oc], 0.0);
    output[((n * params.out_ch + oc) * params.out_h + r) * params.out_w + c] = y;
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pool = params.pool == 1u;
    let tiles_h = select((params.out_h + 1u) / 2u, params.out_h, pool);
    let tiles_w = select((params.out_w + 1u) / 2u, params.out_w, pool);
    let pos = tile_of(wg, nwg, lid, tiles_h, tiles_w);
    if (pos.x >= params.n) {
        return;
    }
    let oc0 = wg.z * OC_T;
    // The tile's convolution outputs: rows 2 th + a, columns 2 tw + b (a, b in 0..2).
    let col0 = i32(2u * pos.z) - 1;
    // acc[(a * 2 + b) * OC_T + k]: row 2 th + a, column 2 tw + b, channel oc0 + k.
    var acc: array<f32, 32>;
    for (var i = 0u; i < 32u; i++) {
        acc[i] = 0.0;
    }
    for (var ic = 0u; ic < params.in_ch; ic++) {
        let base = (pos.x * params.in_ch + ic) * params.in_h * params.in_w;
        // tile[(a * 3 + ky) * 4 + c]: input row (2 th + a) stride_h - 1 + ky, column col0 + c.
        var tile: array<f32, 24>;
        for (var a = 0u; a < 2u; a++) {
            let row0 = i32((2u * pos.y + a) * params.stride_h) - 1;
            for (var ky = 0u; ky < 3u; ky++) {
                for (var c = 0u; c < 4u; c++) {
                    tile[(a * 3u + ky) * 4u + c] = load(base, row0 + i32(ky), col0 + i32(c));
                }
            }
        }
        for (var k = 0u; k < OC_T; k++) {
            let oc = oc0 + k;
            if (oc >= params.out_ch) {
                break;
            }
            let wb = (oc * params.in_ch + ic) * 9u;
            var w: array<f32, 9>;
            for (var j = 0u; j < 9u; j++) {
                w[j] = weight[wb + j];
            }
            for (var a = 0u; a < 2u; a++) {
                for (var b = 0u; b < 2u; b++) {
                    var s = 0.0;
                    for (var ky = 0u; ky < 3u; ky++) {
                        for (var kx = 0u; kx < 3u; kx++) {
                            s += w[ky * 3u + kx] * tile[(a * 3u + ky) * 4u + b + kx];
                        }
                    }
                    acc[(a * 2u + b) * OC_T + k] += s;
                }
            }
        }
    }
    for (var k = 0u; k < OC_T; k++) {
        let oc = oc0 + k;
        if (oc >= params.out_ch) {
            break;
        }
        if (pool) {
            let m = max(max(acc[k], acc[OC_T + k]), max(acc[2u * OC_T + k], acc[3u * OC_T + k]));
            store(pos.x, oc, pos.y, pos.z, m);
        } else {
            for (var a = 0u; a < 2u; a++) {
                for (var b = 0u; b < 2u; b++) {
                    let r = 2u * pos.y + a;
                    let c = 2u * pos.z + b;
                    if (r < params.out_h && c < params.out_w) {
                        store(pos.x, oc, r, c, acc[(a * 2u + b) * OC_T + k]);
                    }
                }
            }
        }
    }
}
