// conv_block.wgsl: one block of the mel CNN with its batch norm folded in: a 3x3 convolution
// (stride `stride_h` over rows, 1 over columns), its bias, 2x2 max pooling (floor) or none,
// then ReLU; on the first block the input is read as `ln(power + 1e-10) + log_offset` (zeros
// of the padding and of the zero slot stay zero). CPU twins: model::conv_block::ConvBlock::cpu
// (whole inputs) and ConvBlock::cpu_rows (row versions).
//
// Pipeline-overridable constant `POOL`: 2x2 max pooling or none, one pipeline each
// (gpu::kernels::KernelId::ConvBlockPool and ConvBlock). With it and the loops' literal bounds,
// every index into the private arrays (rows, tile, accumulators) is a constant once the loops
// unroll, so the driver's compiler can keep them in registers.
//
// Two modes (`k_rows`):
// - whole inputs (k_rows = 0): input [N, I, H, W], zero padding 1 on every side, output
//   [N, O, Ho, Wo];
// - row versions (k_rows = K > 0; the row-cached forward, model::cnn_rows_device): input
//   [U, S, I, W], S = `slot_stride` rows per utterance; job j of utterance u convolves the K
//   rows `index[j K + d]` of its utterance (slot `zero_slot` reads as zeros), without padding
//   over rows, into one output row; output [U, J + 1, O, 1, Wo], job J of each utterance
//   written as zeros (the zero row the level above reads for rows outside the input).
//
// Bindings (group 0):
//   0 uniform           params : Params      (mirrors gpu::kernels::ConvBlockParams)
//   1 storage read_write input : array<f32>  (read only; read_write because Burn's tensors
//                                 may share one buffer with `output`, and wgpu refuses a
//                                 buffer bound read-only and writable in one dispatch)
//   2 storage read      weight : array<vec4<f32>> [I, 9, O8 / 4]: tap ky * 3 + kx of input
//                                 channel i for output channels in their order, O8 = O
//                                 rounded up to 8 (the extra channels zero)
//   3 storage read      bias   : array<f32> [O]
//   4 storage read      index  : array<u32> [J, K] (row versions; any buffer otherwise)
//   5 storage read_write output : array<f32>
// Dispatch grid: (gx, gy, ceil(O / 8)) with gx * gy >= ceil(N' * Ho * Tw / 64) (folded as
// gpu::kernels::fold_groups folds; N' = N, or U (J + 1) for row versions), workgroup
// (64, 1, 1). Each invocation computes four convolution outputs for 8 output channels (the
// workgroup's z), so each weight it loads serves four outputs and each input value it loads
// eight channels: pooled, the 2x2 window of one output (Tw = Wo); else 4 outputs along a row
// (Tw = ceil(Wo / 4)). Row versions have Ho = 1.

struct Params {
    n: u32,
    in_ch: u32,
    out_ch: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    stride_h: u32,
    log_input: u32,
    log_offset: f32,
    k_rows: u32,
    n_jobs: u32,
    slot_stride: u32,
    zero_slot: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> index: array<u32>;
@group(0) @binding(5) var<storage, read_write> output: array<f32>;

/// 2x2 max pooling after the convolution (set per pipeline).
override POOL: bool = false;

/// Output channels per invocation.
const OC_T: u32 = 8u;

/// A tile row that reads as zeros.
const NO_ROW: u32 = 0xffffffffu;

/// This invocation's tile as (n, th, tw), or n = N' past the end.
fn tile_of(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, tiles_h: u32, tiles_w: u32) -> vec3<u32> {
    let idx = (wg.x + wg.y * nwg.x) * 64u + lid;
    let per = tiles_h * tiles_w;
    if (idx >= params.n * per) {
        return vec3<u32>(params.n, 0u, 0u);
    }
    let rem = idx % per;
    return vec3<u32>(idx / per, rem / tiles_w, rem % tiles_w);
}

/// Where row `r` of the tile starts in channel 0, or NO_ROW for a row of zeros: pooled,
/// r = 3 a + ky reads for convolution row 2 oh + a (0 <= r < 6); else r = ky for row oh.
fn row_start(pos: vec3<u32>, r: u32, pool: bool) -> u32 {
    let conv_row = select(pos.y, 2u * pos.y + r / 3u, pool);
    let ky = r % 3u;
    if (!pool && r >= 3u) {
        return NO_ROW;
    }
    if (params.k_rows == 0u) {
        let row = i32(conv_row * params.stride_h + ky) - 1;
        if (row < 0 || row >= i32(params.in_h)) {
            return NO_ROW;
        }
        return pos.x * params.in_ch * params.in_h * params.in_w + u32(row) * params.in_w;
    }
    let d = conv_row * params.stride_h + ky;
    let job = pos.x % (params.n_jobs + 1u);
    if (d >= params.k_rows) {
        return NO_ROW;
    }
    let slot = index[job * params.k_rows + d];
    if (slot == params.zero_slot) {
        return NO_ROW;
    }
    let utt = pos.x / (params.n_jobs + 1u);
    return (utt * params.slot_stride + slot) * params.in_ch * params.in_w;
}

/// The input value at column `c` of the row starting at `start`, channel plane `plane` away.
fn load(start: u32, plane: u32, c: i32) -> f32 {
    if (start == NO_ROW || c < 0 || c >= i32(params.in_w)) {
        return 0.0;
    }
    let v = input[start + plane + u32(c)];
    if (params.log_input == 1u) {
        return log(v + 1e-10) + params.log_offset;
    }
    return v;
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
    let pool = POOL;
    let tiles_w = select((params.out_w + 3u) / 4u, params.out_w, pool);
    let pos = tile_of(wg, nwg, lid, params.out_h, tiles_w);
    if (pos.x >= params.n) {
        return;
    }
    let oc0 = wg.z * OC_T;
    if (params.k_rows > 0u && pos.x % (params.n_jobs + 1u) == params.n_jobs) {
        // The utterance's zero row.
        let cols = select(4u, 1u, pool);
        for (var k = 0u; k < OC_T; k++) {
            for (var b = 0u; b < cols; b++) {
                let c = cols * pos.z + b;
                if (oc0 + k < params.out_ch && c < params.out_w) {
                    output[((pos.x * params.out_ch + oc0 + k) * params.out_h) * params.out_w + c] = 0.0;
                }
            }
        }
        return;
    }
    var rows: array<u32, 6>;
    for (var r = 0u; r < 6u; r++) {
        rows[r] = row_start(pos, r, pool);
    }
    let plane_len = select(params.in_w, params.in_h * params.in_w, params.k_rows == 0u);
    // Output channels rounded up to OC_T: the weights' innermost extent.
    let out_ch_padded = (params.out_ch + OC_T - 1u) / OC_T * OC_T;
    // acc[2 q + h]: output q of the four (pooled: window position 2 a + b; else column
    // 4 ow + q), channels oc0 + 4 h .. oc0 + 4 h + 3. Every index below is a constant once
    // the loops (of literal bounds) unroll, so the arrays can live in registers.
    var acc: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    // tile[r * 4 + c] (pooled: 6 rows, columns 2 ow - 1 + c) or tile[r * 6 + c] (else: 3
    // rows, columns 4 ow - 1 + c).
    var tile: array<f32, 24>;
    for (var ic = 0u; ic < params.in_ch; ic++) {
        let plane = ic * plane_len;
        if (pool) {
            let col0 = i32(2u * pos.z) - 1;
            for (var r = 0u; r < 6u; r++) {
                for (var c = 0u; c < 4u; c++) {
                    tile[r * 4u + c] = load(rows[r], plane, col0 + i32(c));
                }
            }
        } else {
            let col0 = i32(4u * pos.z) - 1;
            for (var r = 0u; r < 3u; r++) {
                for (var c = 0u; c < 6u; c++) {
                    tile[r * 6u + c] = load(rows[r], plane, col0 + i32(c));
                }
            }
        }
        // This input channel's share, summed over the 9 taps before it joins acc.
        var s: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i++) {
            s[i] = vec4<f32>(0.0);
        }
        for (var ky = 0u; ky < 3u; ky++) {
            for (var kx = 0u; kx < 3u; kx++) {
                // The tap's weights for channels oc0 .. oc0 + 7: two loads of four.
                let wb = ((ic * 9u + ky * 3u + kx) * out_ch_padded + oc0) / 4u;
                let w0 = weight[wb];
                let w1 = weight[wb + 1u];
                for (var q = 0u; q < 4u; q++) {
                    // Pooled: rows 3 a + ky, columns b + kx (q = 2 a + b); else rows ky,
                    // columns q + kx.
                    let t = select(tile[ky * 6u + q + kx], tile[(3u * (q / 2u) + ky) * 4u + q % 2u + kx], pool);
                    s[2u * q] += w0 * t;
                    s[2u * q + 1u] += w1 * t;
                }
            }
        }
        for (var i = 0u; i < 8u; i++) {
            acc[i] += s[i];
        }
    }
    for (var h = 0u; h < 2u; h++) {
        // Pooled: the 2x2 window's largest; else the four columns.
        let m = max(max(acc[h], acc[2u + h]), max(acc[4u + h], acc[6u + h]));
        for (var c = 0u; c < 4u; c++) {
            let oc = oc0 + 4u * h + c;
            if (oc >= params.out_ch) {
                break;
            }
            if (pool) {
                store(pos.x, oc, pos.y, pos.z, m[c]);
            } else {
                for (var q = 0u; q < 4u; q++) {
                    let col = 4u * pos.z + q;
                    if (col < params.out_w) {
                        store(pos.x, oc, pos.y, col, acc[2u * q + h][c]);
                    }
                }
            }
        }
    }
}
