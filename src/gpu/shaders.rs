//! Every WGSL source of the crate, in one place.

/// `shaders/mel.wgsl`: power spectrogram to power mel spectrogram.
pub const MEL: &str = include_str!("../../shaders/mel.wgsl");
/// `shaders/row_mean.wgsl`: mean of each mel row over time.
pub const ROW_MEAN: &str = include_str!("../../shaders/row_mean.wgsl");
/// `shaders/perturb.wgsl`: masked copies of a mel spectrogram (after `random.wgsl`).
pub const PERTURB: &str = concat!(
    include_str!("../../shaders/random.wgsl"),
    include_str!("../../shaders/perturb.wgsl")
);
/// `shaders/surrogate.wgsl`: the weighted least-squares surrogate.
pub const SURROGATE: &str = include_str!("../../shaders/surrogate.wgsl");
/// `shaders/resynth.wgsl`: perturbed waveforms mixed from band signals.
pub const RESYNTH: &str = include_str!("../../shaders/resynth.wgsl");
/// `shaders/gl_init.wgsl`: Griffin-Lim's target magnitude and seeded initial phases (after
/// `random.wgsl`).
pub const GL_INIT: &str = concat!(
    include_str!("../../shaders/random.wgsl"),
    include_str!("../../shaders/gl_init.wgsl")
);
/// `shaders/gl_iterate.wgsl`: one fast Griffin-Lim step per frame, FFTs in workgroup memory.
pub const GL_ITERATE: &str = include_str!("../../shaders/gl_iterate.wgsl");
/// `shaders/gl_overlap_add.wgsl`: the inverse STFT's weighted overlap-add.
pub const GL_OVERLAP_ADD: &str = include_str!("../../shaders/gl_overlap_add.wgsl");
/// `shaders/conv_block.wgsl`: one block of the mel CNN (3x3 convolution, batch norm folded,
/// optional 2x2 max pooling, ReLU).
pub const CONV_BLOCK: &str = include_str!("../../shaders/conv_block.wgsl");
/// `shaders/row_head_share.wgsl`: each version of the row-cached CNN's conv3 rows times its
/// row's head weights (after `row_head_params.wgsl`).
pub const ROW_HEAD_SHARE: &str = concat!(
    include_str!("../../shaders/row_head_params.wgsl"),
    include_str!("../../shaders/row_head_share.wgsl")
);
/// `shaders/row_head_softmax.wgsl`: each sample's logits from its versions' shares, and their
/// softmax (after `row_head_params.wgsl`).
pub const ROW_HEAD_SOFTMAX: &str = concat!(
    include_str!("../../shaders/row_head_params.wgsl"),
    include_str!("../../shaders/row_head_softmax.wgsl")
);
