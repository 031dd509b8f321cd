//! Explaining a whole corpus: decoding on a CPU thread while the device explains, JSON-lines
//! output, per-file failures that do not stop the run, and a summary of band importance.

use crate::error::{Error, Result};
use crate::explain::{Explainer, ExplanationRecord, Prepared};
use crate::input::InputItem;
use crate::output::{JsonLines, OutputDir, write_json};
use ndarray::Array2;
use serde::Serialize;

/// One input that could not be explained.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// The input's id, or the manifest position.
    pub id: String,
    /// The error, naming the file and the cause.
    pub error: String,
}

/// Mean band coefficients of one class.
#[derive(Clone, Debug, Serialize)]
pub struct ClassImportance {
    /// Class name.
    pub class: String,
    /// Utterances averaged (labelled with this class, or predicted as it when unlabelled).
    pub n_utterances: usize,
    /// Mean coefficient per band.
    pub mean_coefficients: Vec<f32>,
}

/// What a corpus run did; also written as `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusReport {
    /// Utterances explained.
    pub n_explained: usize,
    /// Inputs that failed.
    pub failures: Vec<Failure>,
    /// Share of labelled utterances whose unperturbed prediction matched the label.
    pub accuracy: Option<f32>,
    /// Band edges in Hz.
    pub band_edges_hz: Vec<f32>,
    /// Per-class mean importance.
    pub importance: Vec<ClassImportance>,
    /// Device description.
    pub device: String,
    /// Seconds spent.
    pub seconds: f64,
    /// Utterances per second.
    pub utterances_per_s: f64,
}

/// Progress events for a progress bar.
#[derive(Clone, Debug)]
pub enum Progress {
    /// An input finished (explained or failed).
    Done {
        /// Inputs finished so far.
        done: usize,
        /// Inputs in all.
        total: usize,
    },
}

/// Explains every item, writing `explanations.jsonl`, `failures.jsonl`, `summary.json` (and
/// `samples/NNNNNN.json` with `keep_samples`) into `out`. Bad inputs are recorded and skipped.
pub fn explain_corpus(
    explainer: &mut Explainer<'_>,
    items: &[InputItem],
    mut prior_failures: Vec<Failure>,
    device: &str,
    out: &OutputDir,
    mut progress: impl FnMut(Progress),
) -> Result<CorpusReport> {
    let started = std::time::Instant::now();
    let preparer = explainer.preparer();
    let mut lines = JsonLines::create(out.path("explanations.jsonl"))?;
    if explainer.config().keep_samples {
        let dir = out.path("samples");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let classes: Vec<String> = explainer.classes().to_vec();
    let b = explainer.layout().n_bands();
    let mut sums = Array2::<f64>::zeros((classes.len(), b));
    let mut counts = vec![0usize; classes.len()];
    let (mut labelled, mut correct, mut explained) = (0usize, 0usize, 0usize);
    let total = items.len();
    // Decoding and the STFT run on a worker thread, a few utterances ahead of the device.
    let (tx, rx) = crossbeam_channel::bounded::<(usize, Result<Prepared>)>(4);
    std::thread::scope(|scope| -> Result<()> {
        // Owned here so it is dropped if this closure returns early, unblocking the decoder.
        let rx = rx;
        scope.spawn(move || {
            for (i, item) in items.iter().enumerate() {
                let prepared = preparer.load_and_prepare(item);
                if tx.send((i, prepared)).is_err() {
                    break;
                }
            }
        });
        for (done, (i, prepared)) in rx.iter().enumerate() {
            let item = &items[i];
            // Too-short inputs come back as shape errors and are reported as bad audio.
            let result = prepared.and_then(|p| explainer.explain(&p).map_err(|e| e.into_bad_audio(&item.path)));
            match result {
                Ok(exp) => {
                    if exp.probs.iter().any(|p| !p.is_finite()) {
                        prior_failures.push(Failure {
                            id: item.id.clone(),
                            error: format!("{}: model output is not finite", item.path.display()),
                        });
                    } else {
                        for rec in ExplanationRecord::for_each_class(item, &exp, explainer, device) {
                            lines.write(&rec)?;
                        }
                        let predicted = crate::model::argmax(&exp.probs);
                        let class = match item.label.as_ref().and_then(|l| classes.iter().position(|c| c == l)) {
                            Some(k) => {
                                labelled += 1;
                                correct += (k == predicted) as usize;
                                k
                            }
                            None => predicted,
                        };
                        for j in 0..b {
                            sums[[class, j]] += exp.fit.coefs[[class, j]] as f64;
                        }
                        counts[class] += 1;
                        explained += 1;
                        if let Some(sp) = &exp.sample_probs {
                            let record = serde_json::json!({
                                "id": item.id,
                                "masks": explainer.masks().outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
                                "weights": explainer.weights(),
                                "probs": sp.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
                                "classes": classes,
                            });
                            write_json(&out.path(&format!("samples/{i:06}.json")), &record)?;
                        }
                    }
                }
                Err(e) => prior_failures.push(Failure {
                    id: item.id.clone(),
                    error: e.to_string(),
                }),
            }
            progress(Progress::Done { done: done + 1, total });
        }
        Ok(())
    })?;
    lines.finish()?;
    let mut failures_out = JsonLines::create(out.path("failures.jsonl"))?;
    for f in &prior_failures {
        failures_out.write(f)?;
    }
    failures_out.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    let importance = classes
        .iter()
        .enumerate()
        .map(|(k, class)| ClassImportance {
            class: class.clone(),
            n_utterances: counts[k],
            mean_coefficients: (0..b)
                .map(|j| (sums[[k, j]] / counts[k].max(1) as f64) as f32)
                .collect(),
        })
        .collect();
    let report = CorpusReport {
        n_explained: explained,
        failures: prior_failures,
        accuracy: (labelled > 0).then(|| correct as f32 / labelled as f32),
        band_edges_hz: explainer.layout().edges_hz.clone(),
        importance,
        device: device.to_string(),
        seconds,
        utterances_per_s: explained as f64 / seconds.max(1e-9),
    };
    write_json(
        &out.path("summary.json"),
        &serde_json::json!({
            "report": report,
            "config": explainer.config(),
            "bands": explainer.layout(),
            "front_end": explainer.front_end(),
        }),
    )?;
    Ok(report)
}

/// Loads labelled inputs as training examples (power mel spectrograms made with `fe`).
/// Classes are the sorted distinct labels; unlabelled or unreadable inputs become failures.
pub fn load_training_set(
    items: &[InputItem],
    fe: &crate::audio::FrontEndConfig,
    mut progress: impl FnMut(Progress),
) -> Result<(Vec<crate::model::Example>, Vec<String>, Vec<Failure>)> {
    let stft = fe.stft()?;
    let fb = fe.mel_filterbank()?;
    let classes = crate::input::class_names(items);
    let (mut examples, mut failures) = (vec![], vec![]);
    for (done, item) in items.iter().enumerate() {
        let result = (|| -> Result<crate::model::Example> {
            let label = item.label.as_ref().ok_or_else(|| Error::BadAudio {
                path: item.path.clone(),
                reason: "no label (use a manifest or class folders)".into(),
            })?;
            let samples = crate::audio::load_mono(&item.path, fe.sample_rate_hz, crate::model::min_input_samples(fe))?;
            let power = stft.power(&samples).map_err(|e| Error::BadAudio {
                path: item.path.clone(),
                reason: e.to_string(),
            })?;
            let mel = fb.apply(power.view())?;
            let n_frames = mel.ncols();
            Ok(crate::model::Example {
                mel: mel.iter().copied().collect(),
                n_frames,
                label: classes.iter().position(|c| c == label).expect("label collected above"),
            })
        })();
        match result {
            Ok(e) => examples.push(e),
            Err(e) => failures.push(Failure {
                id: item.id.clone(),
                error: e.to_string(),
            }),
        }
        progress(Progress::Done {
            done: done + 1,
            total: items.len(),
        });
    }
    Ok((examples, classes, failures))
}
