//! emolime's one integration-test binary.

mod audio;
mod bands_sampling;
mod common;
mod corpora;
mod faithfulness;
mod features;
mod input;
mod lime;
mod pipeline;
mod resynth;
mod runs;
mod stability;
mod synth;
mod twins;
mod wav2vec2;
