//! emolime: LIME explanations of speech emotion recognition models over frequency subbands,
//! at corpus scale on the GPU.
//!
//! The pipeline for one utterance: decode and resample ([`audio`]), STFT on the CPU and the power
//! mel spectrogram on the GPU ([`gpu`]), seeded band masks ([`sampling`]) over a band layout
//! ([`bands`]), the whole batch of masked spectrograms built by a compute shader straight into the
//! model's input tensor ([`perturb`]), scored by a Burn classifier on the same device ([`model`]),
//! and a weighted least-squares surrogate fitted on the GPU for every class at once
//! ([`surrogate`]). Every GPU kernel has a CPU twin, which is also the path for machines without a
//! GPU. [`explain`] ties it together; [`synth`] makes a labelled corpus so nothing needs a download.

pub mod audio;
pub mod bands;
pub mod corpus;
pub mod device;
pub mod error;
pub mod explain;
pub mod gpu;
pub mod input;
pub mod model;
pub mod output;
pub mod perturb;
pub mod resynth;
pub mod sampling;
pub mod surrogate;
pub mod synth;

pub use error::{Error, Result};
