//! Classifiers on eGeMAPS functionals as black boxes (EmoLIME's hand-crafted arm): the model
//! consumes waveforms, computes the 88 functionals of every one on all CPU cores, and returns
//! its head's class probabilities.

use super::{ModelInput, SerModel, read_f32};
use crate::classify::FeatureClassifier;
use crate::classify::device::DeviceHead;
use crate::error::{Error, Result};
use crate::features::{EGEMAPS_NAMES, Egemaps, SAMPLE_RATE_HZ, pitch};
use burn::tensor::{Device, Tensor};
use ndarray::{Array2, ArrayView2};
use std::path::Path;
use std::sync::Mutex;

/// The name a classifier on eGeMAPS v02 functionals records as its feature set.
pub const EGEMAPS_SET: &str = "egemaps";

/// A [`FeatureClassifier`] on eGeMAPS v02 functionals behind the [`SerModel`] interface.
pub struct FeatureModel {
    /// The classifier, uploaded to the device.
    head: DeviceHead,
    device: Device,
    workers: usize,
    /// One extractor per worker, built once and reused batch after batch.
    pool: Mutex<Vec<Egemaps>>,
}

impl FeatureModel {
    /// Wraps `classifier`, which must have been fitted on the 88 eGeMAPS functionals in
    /// openSMILE's order; `workers` threads extract features (0: one per core).
    ///
    /// Errors: [`Error::Config`] for another feature set or other columns.
    pub fn new(classifier: FeatureClassifier, device: &Device, workers: usize) -> Result<Self> {
        if classifier.feature_set() != EGEMAPS_SET
            || classifier.feature_names().iter().map(String::as_str).ne(EGEMAPS_NAMES)
        {
            return Err(Error::config(
                "model",
                format!(
                    "a classifier on `{}` ({} features) is not one on the 88 eGeMAPS v02 functionals",
                    classifier.feature_set(),
                    classifier.feature_names().len()
                ),
            ));
        }
        let workers = crate::features::corpus::resolve_workers(workers);
        Ok(FeatureModel {
            head: DeviceHead::new(&classifier, device),
            device: device.clone(),
            workers,
            pool: Mutex::new((0..workers).map(|_| Egemaps::new()).collect()),
        })
    }

    /// Loads a classifier file written by `emolime train --features egemaps`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_classifier(path, FeatureClassifier::load(path)?, device)
    }

    /// Wraps a classifier read from `path` (named in errors).
    pub fn from_classifier(path: &Path, classifier: FeatureClassifier, device: &Device) -> Result<Self> {
        Self::new(classifier, device, 0).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The classifier inside.
    pub fn classifier(&self) -> &FeatureClassifier {
        self.head.classifier()
    }

    /// The 88 functionals of every waveform, rows split over the workers.
    ///
    /// # Shapes
    /// `waveforms` [N, S] at 16 kHz -> [N, 88]
    pub fn features(&self, waveforms: ArrayView2<f32>) -> Result<Array2<f64>> {
        let n = waveforms.nrows();
        let mut out = Array2::<f64>::zeros((n, EGEMAPS_NAMES.len()));
        if n == 0 {
            return Ok(out);
        }
        let mut extractors = std::mem::take(&mut *self.pool.lock().map_err(|_| poisoned())?);
        extractors.resize_with(self.workers, Egemaps::new);
        let per = n.div_ceil(extractors.len());
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = out
                .axis_chunks_iter_mut(ndarray::Axis(0), per)
                .zip(waveforms.axis_chunks_iter(ndarray::Axis(0), per))
                .zip(extractors.iter_mut())
                .map(|((mut dst, src), eg)| {
                    s.spawn(move || -> Result<()> {
                        for (mut row, wave) in dst.outer_iter_mut().zip(src.outer_iter()) {
                            let samples: &[f32] = wave.as_slice().ok_or_else(|| {
                                Error::shape("waveforms", "a standard-layout [N, S] array", "a strided view")
                            })?;
                            let v = eg.functionals(samples, SAMPLE_RATE_HZ)?;
                            row.iter_mut().zip(v).for_each(|(d, x)| *d = x);
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Device("a feature worker panicked".into())))
                })
                .collect()
        });
        *self.pool.lock().map_err(|_| poisoned())? = extractors;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(out)
    }
}

fn poisoned() -> Error {
    Error::Device("the feature extractor pool is poisoned".into())
}

impl SerModel for FeatureModel {
    fn classes(&self) -> &[String] {
        self.head.classifier().classes()
    }

    fn input(&self) -> ModelInput {
        ModelInput::Waveform {
            sample_rate_hz: SAMPLE_RATE_HZ,
        }
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn min_samples(&self) -> usize {
        pitch::FRAME_LEN
    }

    fn largest_tensor_bytes(&self, dim: usize) -> u64 {
        4 * dim as u64
    }

    fn describe(&self) -> String {
        format!(
            "{} on eGeMAPS v02 functionals ({} classes, {} extraction threads)",
            self.head.classifier().kind(),
            self.head.classifier().classes().len(),
            self.workers
        )
    }

    fn probs(&self, batch: Tensor<2>) -> Result<Tensor<2>> {
        let [n, s] = batch.dims();
        let host = read_f32(batch)?;
        let waves =
            ArrayView2::from_shape((n, s), &host).map_err(|e| Error::shape("batch", "[N, S]", e.to_string()))?;
        self.probs_host(waves)
    }

    fn scores_on_host(&self) -> bool {
        true
    }

    fn probs_host(&self, batch: ArrayView2<f32>) -> Result<Tensor<2>> {
        let x = self.features(batch)?;
        self.head.probs_of_rows(x.view())
    }
}
