//! emolime: LIME explanations of speech emotion recognition models over frequency subbands,
//! at corpus scale on the GPU.
//!
//! The pipeline for one utterance: decode and resample ([`audio`]), seeded band masks
//! ([`sampling`]) over a band layout in Hz ([`bands`]), the whole batch of perturbed inputs built
//! by a compute shader straight into the input tensor of the model ([`model`]) on the same device,
//! in the form the model declares it consumes: masked power mel spectrograms ([`perturb`]) or
//! waveforms resynthesized from phase-preserving band signals ([`resynth`]); then a weighted
//! least-squares surrogate fitted on the GPU for every class at once ([`surrogate`]). Every GPU
//! kernel has a CPU twin, which is also the path for machines without a GPU. [`explain`] ties it
//! together; [`synth`] makes a labelled corpus so nothing needs a download.

pub mod audio;
pub mod bands;
pub mod bench;
pub mod classify;
pub mod conditions;
pub mod corpora;
pub mod corpus;
pub mod device;
pub mod error;
pub mod explain;
pub mod faithfulness;
pub mod features;
pub mod figures;
pub mod gpu;
pub mod griffin_lim;
pub mod input;
pub mod linalg;
pub mod model;
pub mod output;
pub mod perturb;
pub mod rank;
pub mod report;
pub mod resynth;
pub(crate) mod rng;
pub mod robustness;
pub mod run;
pub mod sampling;
pub mod stability;
pub mod study;
pub mod surrogate;
pub mod synth;
pub mod table;

pub use error::{Error, Result};
