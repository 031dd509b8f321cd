// surrogate.wgsl: weighted least-squares surrogate for every utterance and class of a batch
// (CPU twin: surrogate::SurrogateDesign::fit, same order of summation).
//
// The masks and weights are shared by the whole batch, so the normal equations are solved once
// on the host (surrogate::SurrogateDesign, f64) into a projection: the coefficients of targets y
// are proj_t^T y. Mode 0 (LIME): ridge with an unpenalised intercept by weighted centring, as
// scikit-learn's Ridge(alpha, fit_intercept=True) with sample weights. Mode 1 (Shapley):
// KernelSHAP's fit with intercept = f(empty) and coefficients summing to f(full) - f(empty); the
// last band is eliminated through that constraint, so P = B - 1 features are solved for.
//
// Bindings (group 0):
//   0 uniform            params : Params           (mirrors gpu::kernels::SurrogateParams)
//   1 storage read       proj_t : array<f32> [N, P] the projection, transposed
//   2 storage read       masks  : array<f32> [N, B] shared by the whole batch
//   3 storage read       weights: array<f32> [N]    kernel weights
//   4 storage read       vecs   : array<f32> [3, P] feature means; projections of 1 and of m_B
//   5 storage read_write preds  : array<f32> [U, N, C] model outputs (read only here)
//   6 storage read_write out    : array<f32> [U, C, B + 3] coefficients, intercept, R^2, local
// Dispatch grid: (U, 1, 1), workgroup (64, 1, 1): one workgroup per utterance; its invocations
// share the C * P projections, then each class's R^2 sums over samples i = t, t + T, ... for
// T = params.parts invocations per class.
// Limits: B <= 64, C <= 64.

struct Params {
    n_samples: u32,
    n_bands: u32,
    n_classes: u32,
    n_utts: u32,
    mode: u32,
    empty_sample: u32,
    parts: u32,
    w_sum: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> proj_t: array<f32>;
@group(0) @binding(2) var<storage, read> masks: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read> vecs: array<f32>;
@group(0) @binding(5) var<storage, read_write> preds: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;

var<workgroup> sh_y_avg: array<f32, 64>;
var<workgroup> sh_y0: array<f32, 64>;
var<workgroup> sh_delta: array<f32, 64>;
var<workgroup> sh_res: array<f32, 64>;
var<workgroup> sh_tot: array<f32, 64>;

fn pred(u: u32, i: u32, k: u32) -> f32 {
    return preds[(u * params.n_samples + i) * params.n_classes + k];
}

fn mask(i: u32, j: u32) -> f32 {
    return masks[i * params.n_bands + j];
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let u = wg.x;
    let n = params.n_samples;
    let b = params.n_bands;
    let c = params.n_classes;
    let shapley = params.mode == 1u;
    let p = select(b, b - 1u, shapley);
    let stride = b + 3u;

    // Step 1: per class, the weighted mean of the outputs and the Shapley anchors.
    if (lid < c) {
        var s: f32 = 0.0;
        for (var i: u32 = 0u; i < n; i = i + 1u) {
            s = s + weights[i] * pred(u, i, lid);
        }
        sh_y_avg[lid] = s / params.w_sum;
        let y0 = pred(u, params.empty_sample, lid);
        sh_y0[lid] = y0;
        sh_delta[lid] = pred(u, 0u, lid) - y0;
    }
    workgroupBarrier();

    // Step 2: the C * P coefficients, spread over the workgroup.
    for (var e: u32 = lid; e < c * p; e = e + WG) {
        let k = e / p;
        let j = e % p;
        var s: f32 = 0.0;
        for (var i: u32 = 0u; i < n; i = i + 1u) {
            s = s + proj_t[i * p + j] * pred(u, i, k);
        }
        if (shapley) {
            s = s - (sh_y0[k] * vecs[p + j] + sh_delta[k] * vecs[2u * p + j]);
        }
        out[(u * c + k) * stride + j] = s;
    }
    storageBarrier();
    workgroupBarrier();

    // Step 3: per class, the intercept (and the constrained last band) and the prediction at
    // sample 0.
    if (lid < c) {
        let o = (u * c + lid) * stride;
        var icpt: f32;
        if (shapley) {
            var rest = sh_delta[lid];
            for (var j: u32 = 0u; j < p; j = j + 1u) {
                rest = rest - out[o + j];
            }
            out[o + b - 1u] = rest;
            icpt = sh_y0[lid];
        } else {
            icpt = sh_y_avg[lid];
            for (var j: u32 = 0u; j < p; j = j + 1u) {
                icpt = icpt - vecs[j] * out[o + j];
            }
        }
        out[o + b] = icpt;
        var at0 = icpt;
        for (var j: u32 = 0u; j < b; j = j + 1u) {
            at0 = at0 + out[o + j] * mask(0u, j);
        }
        out[o + b + 2u] = at0;
    }
    storageBarrier();
    workgroupBarrier();

    // Step 4: weighted R^2 sums, T = params.parts invocations per class.
    let parts = params.parts;
    if (lid < c * parts) {
        let k = lid / parts;
        let t = lid % parts;
        let o = (u * c + k) * stride;
        var res: f32 = 0.0;
        var tot: f32 = 0.0;
        for (var i: u32 = t; i < n; i = i + parts) {
            var yhat = out[o + b];
            for (var j: u32 = 0u; j < b; j = j + 1u) {
                yhat = yhat + out[o + j] * mask(i, j);
            }
            let y = pred(u, i, k);
            let e = y - yhat;
            let d = y - sh_y_avg[k];
            res = res + weights[i] * e * e;
            tot = tot + weights[i] * d * d;
        }
        sh_res[lid] = res;
        sh_tot[lid] = tot;
    }
    workgroupBarrier();
    if (lid < c) {
        var ss_res: f32 = 0.0;
        var ss_tot: f32 = 0.0;
        for (var t: u32 = 0u; t < parts; t = t + 1u) {
            ss_res = ss_res + sh_res[lid * parts + t];
            ss_tot = ss_tot + sh_tot[lid * parts + t];
        }
        var r2: f32 = 0.0;
        if (ss_tot > 0.0) {
            r2 = 1.0 - ss_res / ss_tot;
        } else if (ss_res == 0.0) {
            r2 = 1.0;
        }
        out[(u * c + lid) * stride + b + 1u] = r2;
    }
}
