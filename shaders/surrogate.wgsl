// surrogate.wgsl: weighted least-squares surrogate for every utterance and class of a batch
// (CPU twin: surrogate::fit_cpu, same loop order).
//
// Mode 0 (LIME): ridge with an unpenalised intercept by weighted centring, as scikit-learn's
// Ridge(alpha, fit_intercept=True) with sample weights. Mode 1 (Shapley): KernelSHAP's fit with
// intercept = f(empty) and coefficients summing to f(full) - f(empty); the last band is
// eliminated through that constraint, so P = B - 1 features are solved for.
//
// Bindings (group 0):
//   0 uniform           params  : Params                   (mirrors gpu::surrogate::SurrogateParams)
//   1 storage read      masks   : array<f32> [N, B]        shared by the whole batch
//   2 storage read      weights : array<f32> [N]           kernel weights
//   3 storage read_write preds  : array<f32> [U, N, C]     model outputs (read only here)
//   4 storage read_write scratch: array<f32> [U, P*P + C*P] normal equations
//   5 storage read_write out    : array<f32> [U, C, B + 3] coefficients, intercept, R^2, local prediction
// Dispatch grid: (U, 1, 1), workgroup (64, 1, 1): one workgroup per utterance.
// Limits: B <= 64, C <= 64. A singular system writes NaN for that utterance.

struct Params {
    n_samples: u32,
    n_bands: u32,
    n_classes: u32,
    n_utts: u32,
    mode: u32,
    empty_sample: u32,
    alpha: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> masks: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> preds: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;

var<workgroup> sh_w_sum: f32;
var<workgroup> sh_x_mean: array<f32, 64>;
var<workgroup> sh_y_mean: array<f32, 64>;
var<workgroup> sh_y0: array<f32, 64>;
var<workgroup> sh_delta: array<f32, 64>;
var<workgroup> sh_ok: u32;

fn n_feat() -> u32 {
    return select(params.n_bands, params.n_bands - 1u, params.mode == 1u);
}

fn mask(i: u32, j: u32) -> f32 {
    return masks[i * params.n_bands + j];
}

fn feat(i: u32, j: u32) -> f32 {
    if (params.mode == 1u) {
        return mask(i, j) - mask(i, params.n_bands - 1u);
    }
    return mask(i, j);
}

fn pred(u: u32, i: u32, k: u32) -> f32 {
    return preds[(u * params.n_samples + i) * params.n_classes + k];
}

fn targ(u: u32, i: u32, k: u32) -> f32 {
    if (params.mode == 1u) {
        return pred(u, i, k) - sh_y0[k] - mask(i, params.n_bands - 1u) * sh_delta[k];
    }
    return pred(u, i, k);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let u = wg.x;
    let n = params.n_samples;
    let b = params.n_bands;
    let c = params.n_classes;
    let p = n_feat();
    let shapley = params.mode == 1u;
    let stride = b + 3u;
    let base = u * (p * p + c * p);

    // Step 0: total weight and the Shapley constraint values.
    if (lid < c) {
        sh_y0[lid] = pred(u, params.empty_sample, lid);
        sh_delta[lid] = pred(u, 0u, lid) - sh_y0[lid];
    }
    if (lid == 0u) {
        var s: f32 = 0.0;
        for (var i: u32 = 0u; i < n; i = i + 1u) {
            s = s + weights[i];
        }
        sh_w_sum = s;
    }
    workgroupBarrier();

    // Step 1: weighted means (zero in Shapley mode, which has no free intercept).
    if (lid < p) {
        var s: f32 = 0.0;
        if (!shapley) {
            for (var i: u32 = 0u; i < n; i = i + 1u) {
                s = s + weights[i] * feat(i, lid);
            }
            s = s / sh_w_sum;
        }
        sh_x_mean[lid] = s;
    }
    if (lid < c) {
        var s: f32 = 0.0;
        if (!shapley) {
            for (var i: u32 = 0u; i < n; i = i + 1u) {
                s = s + weights[i] * targ(u, i, lid);
            }
            s = s / sh_w_sum;
        }
        sh_y_mean[lid] = s;
    }
    workgroupBarrier();

    // Step 2: centred Gram matrix [P, P] (+ alpha on the diagonal) and right-hand sides [C, P].
    for (var e: u32 = lid; e < p * p; e = e + WG) {
        let r = e / p;
        let q = e % p;
        var s: f32 = 0.0;
        for (var i: u32 = 0u; i < n; i = i + 1u) {
            s = s + weights[i] * (feat(i, r) - sh_x_mean[r]) * (feat(i, q) - sh_x_mean[q]);
        }
        if (r == q) {
            s = s + params.alpha;
        }
        scratch[base + e] = s;
    }
    for (var e: u32 = lid; e < c * p; e = e + WG) {
        let k = e / p;
        let j = e % p;
        var s: f32 = 0.0;
        for (var i: u32 = 0u; i < n; i = i + 1u) {
            s = s + weights[i] * (feat(i, j) - sh_x_mean[j]) * (targ(u, i, k) - sh_y_mean[k]);
        }
        scratch[base + p * p + e] = s;
    }
    storageBarrier();
    workgroupBarrier();

    // Step 3: Cholesky factor and solves, one invocation (P <= 64).
    if (lid == 0u) {
        var ok = true;
        for (var j: u32 = 0u; j < p; j = j + 1u) {
            var d = scratch[base + j * p + j];
            for (var k: u32 = 0u; k < j; k = k + 1u) {
                d = d - scratch[base + j * p + k] * scratch[base + j * p + k];
            }
            if (!(d > 0.0)) {
                ok = false;
                break;
            }
            d = sqrt(d);
            scratch[base + j * p + j] = d;
            for (var i: u32 = j + 1u; i < p; i = i + 1u) {
                var s = scratch[base + i * p + j];
                for (var k: u32 = 0u; k < j; k = k + 1u) {
                    s = s - scratch[base + i * p + k] * scratch[base + j * p + k];
                }
                scratch[base + i * p + j] = s / d;
            }
        }
        sh_ok = select(0u, 1u, ok);
        for (var k: u32 = 0u; k < c; k = k + 1u) {
            let o = (u * c + k) * stride;
            if (!ok) {
                for (var j: u32 = 0u; j < stride; j = j + 1u) {
                    out[o + j] = bitcast<f32>(0x7fc00000u);
                }
                continue;
            }
            let x = base + p * p + k * p;
            for (var i: u32 = 0u; i < p; i = i + 1u) {
                var s = scratch[x + i];
                for (var q: u32 = 0u; q < i; q = q + 1u) {
                    s = s - scratch[base + i * p + q] * scratch[x + q];
                }
                scratch[x + i] = s / scratch[base + i * p + i];
            }
            for (var ii: u32 = 0u; ii < p; ii = ii + 1u) {
                let i = p - 1u - ii;
                var s = scratch[x + i];
                for (var q: u32 = i + 1u; q < p; q = q + 1u) {
                    s = s - scratch[base + q * p + i] * scratch[x + q];
                }
                scratch[x + i] = s / scratch[base + i * p + i];
            }
            if (shapley) {
                var rest = sh_delta[k];
                for (var j: u32 = 0u; j < p; j = j + 1u) {
                    out[o + j] = scratch[x + j];
                    rest = rest - scratch[x + j];
                }
                out[o + b - 1u] = rest;
                out[o + b] = sh_y0[k];
                // Sample 0 keeps every band in Shapley mode: f(full) = f(empty) + all coefficients.
                var y_full = sh_y0[k] + rest * mask(0u, b - 1u);
                for (var j: u32 = 0u; j < p; j = j + 1u) {
                    y_full = y_full + scratch[x + j] * mask(0u, j);
                }
                out[o + b + 2u] = y_full;
            } else {
                var icpt = sh_y_mean[k];
                var at0: f32 = 0.0;
                for (var j: u32 = 0u; j < p; j = j + 1u) {
                    out[o + j] = scratch[x + j];
                    icpt = icpt - sh_x_mean[j] * scratch[x + j];
                    at0 = at0 + scratch[x + j] * mask(0u, j);
                }
                out[o + b] = icpt;
                out[o + b + 2u] = icpt + at0;
            }
        }
    }
    storageBarrier();
    workgroupBarrier();

    // Step 4: weighted R^2, one invocation per class. (The prediction at sample 0 is written in
    // step 3 from the solution itself: a separate loop here over the coefficients read back
    // from `out` kept only the first term on lavapipe for B = 21.)
    if (lid < c) {
        let o = (u * c + lid) * stride;
        if (sh_ok == 1u) {
            var y_avg: f32 = 0.0;
            for (var i: u32 = 0u; i < n; i = i + 1u) {
                y_avg = y_avg + weights[i] * pred(u, i, lid);
            }
            y_avg = y_avg / sh_w_sum;
            var ss_res: f32 = 0.0;
            var ss_tot: f32 = 0.0;
            for (var i: u32 = 0u; i < n; i = i + 1u) {
                var yhat = out[o + b];
                for (var j: u32 = 0u; j < b; j = j + 1u) {
                    yhat = yhat + out[o + j] * mask(i, j);
                }
                let e = pred(u, i, lid) - yhat;
                let d = pred(u, i, lid) - y_avg;
                ss_res = ss_res + weights[i] * e * e;
                ss_tot = ss_tot + weights[i] * d * d;
            }
            var r2: f32 = 0.0;
            if (ss_tot > 0.0) {
                r2 = 1.0 - ss_res / ss_tot;
            } else if (ss_res == 0.0) {
                r2 = 1.0;
            }
            out[o + b + 1u] = r2;
        }
    }
}
