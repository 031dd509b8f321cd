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
/// `shaders/gl_init.wgsl`: Griffin-Lim's target magnitude and seeded initial phases.
pub const GL_INIT: &str = include_str!("../../shaders/gl_init.wgsl");
/// `shaders/gl_spectrum.wgsl`: magnitude x phase as full Hermitian frames.
pub const GL_SPECTRUM: &str = include_str!("../../shaders/gl_spectrum.wgsl");
/// `shaders/fft.wgsl`: one radix-2 Stockham stage of a batch of complex FFTs.
pub const FFT: &str = include_str!("../../shaders/fft.wgsl");
/// `shaders/gl_overlap_add.wgsl`: the inverse STFT's weighted overlap-add.
pub const GL_OVERLAP_ADD: &str = include_str!("../../shaders/gl_overlap_add.wgsl");
/// `shaders/gl_frames.wgsl`: the STFT's windowed (centre-padded) frames.
pub const GL_FRAMES: &str = include_str!("../../shaders/gl_frames.wgsl");
/// `shaders/gl_update.wgsl`: fast Griffin-Lim's phase update with momentum.
pub const GL_UPDATE: &str = include_str!("../../shaders/gl_update.wgsl");
