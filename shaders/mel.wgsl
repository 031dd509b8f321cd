// mel.wgsl: power spectrogram -> power mel spectrogram (CPU twin: audio::MelFilterbank::apply).
//
// Bindings (group 0):
//   0 uniform           params  : Params                 (mirrors gpu::kernels::MelParams)
//   1 storage read      power   : array<f32>  [U, K, T]  |STFT|^2 of U utterances, K = n_fft/2 + 1
//   2 storage read      weights : array<f32>  [M, K]     mel filterbank
//   3 storage read      bounds  : array<u32>  [M, 2]     first and one-past-last nonzero bin of each filter
//   4 storage read_write mel    : array<f32>  [U, M, T]
// Dispatch grid: (ceil(T / 64), M, U), workgroup (64, 1, 1): one invocation per (frame, mel row,
// utterance); the utterances of one dispatch share K and T.

struct Params {
    n_bins: u32,
    n_frames: u32,
    n_mels: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> power: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> bounds: array<u32>;
@group(0) @binding(4) var<storage, read_write> mel: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let m = gid.y;
    let u = gid.z;
    if (t >= params.n_frames || m >= params.n_mels) {
        return;
    }
    let power_base = u * params.n_bins * params.n_frames;
    var acc: f32 = 0.0;
    // Zero weights outside [lo, hi) add nothing, so the sum equals the dense one.
    for (var k: u32 = bounds[2u * m]; k < bounds[2u * m + 1u]; k = k + 1u) {
        acc = acc + weights[m * params.n_bins + k] * power[power_base + k * params.n_frames + t];
    }
    mel[(u * params.n_mels + m) * params.n_frames + t] = acc;
}
