//! eGeMAPS over a corpus: decoding and extraction on all cores (one [`Egemaps`] per worker),
//! rows in input order, per-file failures that do not stop the run, and an atomically written
//! CSV with openSMILE's column names.

use super::{EGEMAPS_NAMES, Egemaps, LLD_NAMES, SAMPLE_RATE_HZ};
use crate::audio::decode_file;
use crate::error::{Error, Result};
use crate::input::InputItem;
use crate::output::{csv_field, write_atomic};
use ndarray::Array2;
use std::fmt::Write as _;
use std::path::Path;

/// What to extract per file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Level {
    /// The 88 functionals, one row per file.
    #[default]
    Functionals,
    /// The 25 frame-level descriptors, one row per 10 ms frame.
    Lld,
}

/// Settings of a corpus extraction.
#[derive(Clone, Debug)]
pub struct FeatureConfig {
    /// Functionals or frame-level descriptors.
    pub level: Level,
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            level: Level::Functionals,
            workers: 0,
        }
    }
}

/// The number of worker threads for `workers` (0: one per available core).
pub fn resolve_workers(workers: usize) -> usize {
    if workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        workers
    }
}

impl FeatureConfig {
    /// The number of worker threads this config runs.
    pub fn resolved_workers(&self) -> usize {
        resolve_workers(self.workers)
    }
}

/// The features of one file: `[1, 88]` functionals or `[T, 25]` frame descriptors.
pub type FileFeatures = Array2<f64>;

/// Decodes `path` and extracts its features.
///
/// Errors: [`Error::Io`] / [`Error::Decode`] when the file cannot be read, [`Error::BadAudio`]
/// naming the file when it holds no samples or a non-finite one.
pub fn extract_file(extractor: &mut Egemaps, path: &Path, level: Level) -> Result<FileFeatures> {
    extract_file_with(extractor, path, level, |samples, _| Ok(samples))
}

/// Decodes `path`, applies `transform(samples, sample_rate_hz)` (which returns samples at the
/// same rate) and extracts the features of the result; the errors of [`extract_file`], and a
/// transform's input-shaped errors as [`Error::BadAudio`] naming the file.
fn extract_file_with(
    extractor: &mut Egemaps,
    path: &Path,
    level: Level,
    transform: impl FnOnce(Vec<f32>, u32) -> Result<Vec<f32>>,
) -> Result<FileFeatures> {
    let audio = decode_file(path)?;
    if audio.samples.is_empty() {
        return Err(Error::BadAudio {
            path: path.to_path_buf(),
            reason: "no samples".into(),
        });
    }
    let rate = audio.sample_rate_hz;
    let run = |e: &mut Egemaps| -> Result<FileFeatures> {
        let samples = transform(audio.samples, rate)?;
        match level {
            Level::Functionals => {
                let v = e.functionals(&samples, rate)?;
                Ok(Array2::from_shape_vec((1, 88), v.to_vec()).expect("88 values"))
            }
            Level::Lld => e.lld(&samples, rate),
        }
    };
    run(extractor).map_err(|e| e.into_bad_audio(path))
}

/// Extracts every item on `config.workers` threads. Returns one result per item, in input
/// order; `progress(done, total)` is called as files finish.
pub fn extract_corpus(
    items: &[InputItem],
    config: &FeatureConfig,
    progress: impl FnMut(usize, usize),
) -> Vec<Result<FileFeatures>> {
    extract_corpus_with(items, config, |_, samples, _| Ok(samples), progress)
}

/// Like [`extract_corpus`], with `transform(item_index, samples, sample_rate_hz)` applied to
/// every decoded waveform before extraction (a recording condition, say; it returns samples at
/// the same rate and is called from the worker threads). A transform's error fails that item
/// only, as an [`Error::BadAudio`] naming the file when it is input-shaped ([`Error::Config`],
/// [`Error::Shape`]).
///
/// # Shapes
/// `items` [N] -> [N] results of `[1, 88]` (functionals) or `[T, 25]` (LLD)
pub fn extract_corpus_with<T>(
    items: &[InputItem],
    config: &FeatureConfig,
    transform: T,
    mut progress: impl FnMut(usize, usize),
) -> Vec<Result<FileFeatures>>
where
    T: Fn(usize, Vec<f32>, u32) -> Result<Vec<f32>> + Sync,
{
    let workers = config.resolved_workers().min(items.len()).max(1);
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<usize>();
    let (res_tx, res_rx) = crossbeam_channel::unbounded::<(usize, Result<FileFeatures>)>();
    for i in 0..items.len() {
        job_tx.send(i).expect("receiver alive");
    }
    drop(job_tx);
    let mut results: Vec<Option<Result<FileFeatures>>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (job_rx, res_tx, transform) = (job_rx.clone(), res_tx.clone(), &transform);
            s.spawn(move || {
                let mut extractor = Egemaps::new();
                for i in job_rx.iter() {
                    let r = extract_file_with(&mut extractor, &items[i].path, config.level, |x, sr| {
                        transform(i, x, sr)
                    });
                    if res_tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);
        for (done, (i, r)) in res_rx.iter().enumerate() {
            results[i] = Some(r);
            progress(done + 1, items.len());
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Device("feature worker stopped".into()))))
        .collect()
}

/// Writes the extracted rows as CSV to `path`, atomically: `id,label,speaker,dataset` then
/// openSMILE's column names (functionals), or `frame_time_s` and the 25 descriptor names (LLD).
/// Failed items are left out (the caller reports them). Values use Rust's shortest exact
/// representation of each `f64`.
pub fn write_csv(path: &Path, items: &[InputItem], results: &[Result<FileFeatures>], level: Level) -> Result<()> {
    let mut out = String::from("id,label,speaker,dataset");
    match level {
        Level::Functionals => EGEMAPS_NAMES.iter().for_each(|n| {
            out.push(',');
            out.push_str(n);
        }),
        Level::Lld => {
            out.push_str(",frame_time_s");
            LLD_NAMES.iter().for_each(|n| {
                out.push(',');
                out.push_str(n);
            });
        }
    }
    out.push('\n');
    for (item, r) in items.iter().zip(results) {
        let Ok(values) = r else { continue };
        for (k, row) in values.outer_iter().enumerate() {
            csv_field(&mut out, &item.id);
            for f in [&item.label, &item.speaker, &item.dataset] {
                out.push(',');
                csv_field(&mut out, f.as_deref().unwrap_or(""));
            }
            if level == Level::Lld {
                let t = (k * super::HOP_LEN) as f64 / SAMPLE_RATE_HZ as f64;
                let _ = write!(out, ",{t}");
            }
            for v in row {
                let _ = write!(out, ",{v}");
            }
            out.push('\n');
        }
    }
    write_atomic(path, out.as_bytes())
}
