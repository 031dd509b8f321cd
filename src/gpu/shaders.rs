//! Every WGSL source of the crate, in one place.

/// `shaders/mel.wgsl`: power spectrogram to power mel spectrogram.
pub const MEL: &str = include_str!("../../shaders/mel.wgsl");
/// `shaders/row_mean.wgsl`: mean of each mel row over time.
pub const ROW_MEAN: &str = include_str!("../../shaders/row_mean.wgsl");
/// `shaders/perturb.wgsl`: masked copies of a mel spectrogram.
pub const PERTURB: &str = include_str!("../../shaders/perturb.wgsl");
/// `shaders/surrogate.wgsl`: the weighted least-squares surrogate.
pub const SURROGATE: &str = include_str!("../../shaders/surrogate.wgsl");
/// `shaders/resynth.wgsl`: perturbed waveforms mixed from band signals.
pub const RESYNTH: &str = include_str!("../../shaders/resynth.wgsl");
