//! Explaining a whole corpus: decoding on a CPU thread while the device explains, output in
//! resumable numbered parts (see [`crate::run`]), per-file failures that do not stop the run, and
//! a summary of band importance computed from the finished records.

use crate::error::{Error, Result};
use crate::explain::{
    Explainer, ExplanationRecord, PendingExplanations, Prepared, UtteranceExplanation, utterances_per_batch,
};
use crate::input::InputItem;
use crate::output::write_json;
use crate::run::{RunFolder, RunIdentity, RunManifest, Shard};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One input that could not be explained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The input's id, or empty for a bad manifest row.
    pub id: String,
    /// Its position in the input (absent for a bad manifest row).
    #[serde(default)]
    pub position: Option<usize>,
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
    /// Utterances explained (by this invocation and the ones it resumed).
    pub n_explained: usize,
    /// Utterances an earlier, interrupted invocation had finished (explained or failed).
    pub n_resumed: usize,
    /// The slice of the input explained.
    pub shard: Shard,
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
    /// Seconds this invocation spent.
    pub seconds: f64,
    /// Utterances this invocation explained per second.
    pub utterances_per_s: f64,
    /// Seconds the device stage of this invocation waited for decoded input after the first
    /// input arrived (0 when decoding always kept ahead).
    pub input_wait_s: f64,
}

/// Progress events for a progress bar.
#[derive(Clone, Debug)]
pub enum Progress {
    /// Work is about to start.
    Started {
        /// Inputs to do now.
        pending: usize,
        /// Inputs an earlier invocation finished.
        resumed: usize,
    },
    /// An input finished (explained or failed).
    Done {
        /// Inputs finished so far.
        done: usize,
        /// Inputs in all.
        total: usize,
    },
}

/// Settings of a corpus run beyond the explanation itself.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Names the model in `run.json`: its description.
    pub model: String,
    /// [`crate::run::model_fingerprint`] of the model file.
    pub model_fingerprint: String,
    /// The input as given, for `run.json`.
    pub input: String,
    /// The slice of the input to explain.
    pub shard: Shard,
    /// Utterances per part file: a kill loses at most about three times this many (the part
    /// being filled and two waiting for the writer thread).
    pub part_size: usize,
    /// At most this many consecutive utterances of one input size share model calls (only as
    /// many as fill one batch); 1 explains one utterance at a time.
    pub pack_utterances: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            model: String::new(),
            model_fingerprint: String::new(),
            input: String::new(),
            shard: Shard::default(),
            part_size: 64,
            pack_utterances: 64,
        }
    }
}

impl RunOptions {
    /// Checks the shard and the part size.
    pub fn validate(&self) -> Result<()> {
        self.shard.validate()?;
        if self.part_size == 0 {
            return Err(Error::config("part-size", "must be >= 1"));
        }
        Ok(())
    }
}

/// Threads that decode inputs during a corpus run: one per core but the one that drives the
/// device, at least 1 and at most 8.
fn decode_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, 8)
}

/// How many consecutive utterances of one input size share model calls: enough to fill a
/// batch with the inputs the model scores (the distinct masks of each, when masks repeat and
/// the input depends on the mask alone: [`Explainer::scored_per_utterance`]), at most
/// `pack_utterances` and at least 1.
pub fn pack_size(explainer: &Explainer<'_>, pack_utterances: usize) -> usize {
    pack_utterances.max(1).min(utterances_per_batch(
        explainer.config().batch_size,
        explainer.scored_per_utterance(),
    ))
}

/// Explains the items of `opts.shard` (of `items`, the whole input in order) into the run
/// folder `dir`: `run.json`, numbered parts while going, then `explanations.jsonl`,
/// `explanations.parquet`, `failures.jsonl` and `summary.json` (and `samples/NNNNNN.json`
/// with `keep_samples`, numbered by input position). A folder an interrupted run left is
/// resumed: its finished utterances are kept, the rest explained, and the result is the one an
/// uninterrupted run gives. Bad inputs are recorded and skipped.
pub fn explain_corpus(
    explainer: &mut Explainer<'_>,
    items: &[InputItem],
    input_errors: Vec<Failure>,
    device: &str,
    dir: &Path,
    opts: &RunOptions,
    mut progress: impl FnMut(Progress),
) -> Result<CorpusReport> {
    opts.validate()?;
    let started = std::time::Instant::now();
    let preparer = explainer.preparer();
    let identity = RunIdentity {
        model: opts.model.clone(),
        model_fingerprint: opts.model_fingerprint.clone(),
        input: opts.input.clone(),
        config: explainer.config().clone(),
        classes: explainer.classes().to_vec(),
        band_edges_hz: explainer.layout().edges_hz.clone(),
        n_samples: explainer.masks().nrows(),
    };
    let mut folder = RunFolder::open(dir, RunManifest::new(identity, opts.shard, items, input_errors))?;
    if explainer.config().keep_samples {
        let samples_dir = dir.join("samples");
        std::fs::create_dir_all(&samples_dir).map_err(|e| Error::io(&samples_dir, e))?;
    }
    let pending: Vec<usize> = folder
        .manifest()
        .items
        .iter()
        .map(|it| it.position)
        .filter(|&p| !folder.is_done(p))
        .collect();
    let total = pending.len();
    progress(Progress::Started {
        pending: total,
        resumed: folder.n_resumed(),
    });
    let group_cap = pack_size(explainer, opts.pack_utterances);
    // Parts are written on a writer thread, at most two waiting, so the device does not wait
    // on Parquet encoding and the disk.
    let (parts_tx, parts_rx) = crossbeam_channel::bounded::<Part>(2);
    let mut sink = PartSink {
        parts: Some(parts_tx),
        dir,
        device,
        part_size: opts.part_size,
        classes: explainer.classes().to_vec(),
        positions: vec![],
        records: vec![],
        failures: vec![],
        explained_now: 0,
        done: 0,
        total,
    };
    // Time the device stage spent waiting for decoded input, after the first one arrived.
    let mut input_wait_s = 0.0;
    let folder_ref = &mut folder;
    let (device_result, writer_result) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<()> {
            for part in parts_rx {
                folder_ref.write_part(&part.positions, &part.records, &part.failures)?;
            }
            Ok(())
        });
        let device_result = explain_pending(
            scope,
            explainer,
            items,
            &pending,
            &preparer,
            group_cap,
            &mut sink,
            &mut input_wait_s,
            &mut progress,
        )
        .and_then(|()| sink.flush());
        // Closing the channel ends the writer once it has written what is queued.
        sink.parts = None;
        let writer_result = writer
            .join()
            .unwrap_or_else(|_| Err(Error::run(dir, "the part writer panicked")));
        (device_result, writer_result)
    });
    // A write that failed stops the device loop with a closed channel; its own error says why.
    writer_result?;
    device_result?;
    let explained_now = sink.explained_now;
    let n_resumed = folder.n_resumed();
    let model = folder.manifest().identity.model.clone();
    let mut report = folder.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    report.n_resumed = n_resumed;
    report.seconds = seconds;
    report.utterances_per_s = explained_now as f64 / seconds.max(1e-9);
    report.input_wait_s = input_wait_s;
    if report.device.is_empty() {
        report.device = device.to_string();
    }
    write_json(
        &dir.join("summary.json"),
        &serde_json::json!({
            "report": report,
            "config": explainer.config(),
            "model": model,
            "bands": explainer.layout(),
            "front_end": explainer.front_end(),
        }),
    )?;
    Ok(report)
}

/// The device stage of [`explain_corpus`]: decodes `pending` on worker threads of `scope`, a
/// few utterances ahead of the device (worker w takes the pending inputs w, w + W, w + 2W, ...
/// and the device reads the workers' queues in turn, so inputs arrive in order and at most
/// about 4 + 2 group_cap + W are held decoded, a group in flight included), explains them in
/// groups of at most `group_cap` consecutive same-size utterances with one group in flight
/// (each group is submitted to the device before the one before it is collected:
/// [`Explainer::submit_many`]), and hands each outcome to `sink` in input order. Adds the time
/// it waited for decoded input after the first one to `input_wait_s`.
#[allow(clippy::too_many_arguments)]
fn explain_pending<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    explainer: &mut Explainer<'_>,
    items: &'scope [InputItem],
    pending: &'scope [usize],
    preparer: &crate::explain::Preparer,
    group_cap: usize,
    sink: &mut PartSink<'_>,
    input_wait_s: &mut f64,
    progress: &mut impl FnMut(Progress),
) -> Result<()> {
    let workers = decode_workers().min(pending.len()).max(1);
    let depth = (4 + group_cap).div_ceil(workers).max(2);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| crossbeam_channel::bounded::<(usize, Result<Prepared>)>(depth))
        .unzip();
    for (w, tx) in txs.into_iter().enumerate() {
        let preparer = preparer.clone();
        scope.spawn(move || {
            for &p in pending.iter().skip(w).step_by(workers) {
                let prepared = preparer.load_and_prepare(&items[p]);
                if tx.send((p, prepared)).is_err() {
                    break;
                }
            }
        });
    }
    let mut group: Vec<(usize, Prepared)> = Vec::with_capacity(group_cap);
    // One group in flight: group g + 1 is gathered, recorded and submitted while the device
    // computes group g, which is collected after that (so outcomes still reach `sink` in input
    // order).
    let mut in_flight: Option<InFlight> = None;
    let mut k = 0;
    loop {
        let t0 = std::time::Instant::now();
        let next = if k < pending.len() {
            rxs[k % workers].recv().ok()
        } else {
            None
        };
        if k > 0 {
            *input_wait_s += t0.elapsed().as_secs_f64();
        }
        k += 1;
        let flush = match &next {
            Some((_, Ok(pr))) => {
                group.len() >= group_cap || group.first().is_some_and(|(_, g)| g.input.shape() != pr.input.shape())
            }
            _ => true,
        };
        if flush && !group.is_empty() {
            let group = std::mem::replace(&mut group, Vec::with_capacity(group_cap));
            let refs: Vec<&Prepared> = group.iter().map(|(_, pr)| pr).collect();
            let work = explainer.submit_many(&refs);
            drop(refs);
            collect_in_flight(explainer, in_flight.take(), items, sink, progress)?;
            in_flight = Some(InFlight { group, work });
        }
        match next {
            None => break,
            Some((p, Ok(pr))) => group.push((p, pr)),
            Some((p, Err(e))) => {
                collect_in_flight(explainer, in_flight.take(), items, sink, progress)?;
                sink.add(p, &items[p], Err(e), explainer, progress)?;
            }
        }
    }
    collect_in_flight(explainer, in_flight, items, sink, progress)
}

/// A group of consecutive same-size utterances submitted to the explainer, not yet collected.
struct InFlight {
    group: Vec<(usize, Prepared)>,
    work: Result<PendingExplanations>,
}

/// Collects the group in flight, if any, and hands each outcome to `sink`.
fn collect_in_flight(
    explainer: &mut Explainer<'_>,
    in_flight: Option<InFlight>,
    items: &[InputItem],
    sink: &mut PartSink<'_>,
    progress: &mut impl FnMut(Progress),
) -> Result<()> {
    let Some(InFlight { group, work }) = in_flight else {
        return Ok(());
    };
    let outcomes = match work.map(|w| explainer.collect(w)) {
        Ok(Ok(exps)) => group.iter().map(|(p, _)| *p).zip(exps.into_iter().map(Ok)).collect(),
        // Out of memory reported at the read-back: again, waiting for each try, with fewer
        // inputs per call (a submission that ran out of memory was retried so already).
        Ok(Err(e)) if e.is_out_of_memory() => explain_group(explainer, &group, items),
        Ok(Err(e)) | Err(e) => explain_each(explainer, &group, items, e),
    };
    for (p, result) in outcomes {
        sink.add(p, &items[p], result, explainer, progress)?;
    }
    Ok(())
}

/// Explains a group of consecutive same-size utterances together; when that fails, each alone,
/// so every failure names its own file.
fn explain_group(
    explainer: &mut Explainer<'_>,
    group: &[(usize, Prepared)],
    items: &[InputItem],
) -> Vec<(usize, Result<UtteranceExplanation>)> {
    let refs: Vec<&Prepared> = group.iter().map(|(_, pr)| pr).collect();
    match explainer.explain_many(&refs) {
        Ok(exps) => group.iter().map(|(p, _)| *p).zip(exps.into_iter().map(Ok)).collect(),
        Err(e) => explain_each(explainer, group, items, e),
    }
}

/// After explaining `group` together failed with `error`: each utterance alone, so every
/// failure names its own file (a group of one reports `error` as its file's).
fn explain_each(
    explainer: &mut Explainer<'_>,
    group: &[(usize, Prepared)],
    items: &[InputItem],
    error: Error,
) -> Vec<(usize, Result<UtteranceExplanation>)> {
    // Too-short inputs come back as shape errors and are reported as bad audio.
    match group {
        [(p, _)] => vec![(*p, Err(error.into_bad_audio(&items[*p].path)))],
        _ => group
            .iter()
            .map(|(p, pr)| (*p, explainer.explain(pr).map_err(|e| e.into_bad_audio(&items[*p].path))))
            .collect(),
    }
}

/// Collects finished utterances into parts of the run folder, in input order.
struct PartSink<'a> {
    /// The writer thread's queue (`None` once closed).
    parts: Option<crossbeam_channel::Sender<Part>>,
    dir: &'a Path,
    device: &'a str,
    part_size: usize,
    classes: Vec<String>,
    positions: Vec<usize>,
    records: Vec<ExplanationRecord>,
    failures: Vec<Failure>,
    explained_now: usize,
    done: usize,
    total: usize,
}

impl PartSink<'_> {
    /// Adds the outcome of the utterance at `position`; writes a part when one is full.
    fn add(
        &mut self,
        position: usize,
        item: &InputItem,
        result: Result<UtteranceExplanation>,
        explainer: &Explainer<'_>,
        progress: &mut impl FnMut(Progress),
    ) -> Result<()> {
        let failure = |error: String| Failure {
            id: item.id.clone(),
            position: Some(position),
            error,
        };
        match result {
            Ok(exp) if exp.probs.iter().any(|v| !v.is_finite()) => {
                self.failures
                    .push(failure(format!("{}: model output is not finite", item.path.display())));
            }
            Ok(exp) => {
                self.records.extend(ExplanationRecord::for_each_class(
                    position,
                    item,
                    &exp,
                    explainer,
                    self.device,
                ));
                self.explained_now += 1;
                if let Some(sp) = &exp.sample_probs {
                    let record = serde_json::json!({
                        "id": item.id,
                        "position": position,
                        "masks": explainer.masks().outer_iter().take(sp.nrows()).map(|r| r.to_vec()).collect::<Vec<_>>(),
                        "weights": &explainer.weights()[..sp.nrows()],
                        "probs": sp.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
                        "classes": self.classes,
                    });
                    write_json(&self.dir.join(format!("samples/{position:06}.json")), &record)?;
                }
            }
            Err(e) => self.failures.push(failure(e.to_string())),
        }
        self.positions.push(position);
        if self.positions.len() >= self.part_size {
            self.flush()?;
        }
        self.done += 1;
        progress(Progress::Done {
            done: self.done,
            total: self.total,
        });
        Ok(())
    }

    /// Hands what is collected to the writer thread as a part.
    fn flush(&mut self) -> Result<()> {
        if self.positions.is_empty() {
            return Ok(());
        }
        let part = Part {
            positions: std::mem::take(&mut self.positions),
            records: std::mem::take(&mut self.records),
            failures: std::mem::take(&mut self.failures),
        };
        let sent = self.parts.as_ref().is_some_and(|tx| tx.send(part).is_ok());
        if sent {
            Ok(())
        } else {
            Err(Error::run(self.dir, "the part writer stopped"))
        }
    }
}

/// Finished utterances for one part file: their positions, records and failures.
struct Part {
    positions: Vec<usize>,
    records: Vec<ExplanationRecord>,
    failures: Vec<Failure>,
}

/// Builds a run's [`CorpusReport`] from its records, given in position order (the records of
/// one utterance together), and its failures: counts, accuracy on labelled utterances, and each
/// class's mean band coefficients over the utterances labelled with it (or predicted as it
/// when unlabelled). Holds one row of sums per class, whatever the corpus size.
#[derive(Clone, Debug)]
pub struct ReportBuilder {
    classes: Vec<String>,
    sums: Array2<f64>,
    counts: Vec<usize>,
    labelled: usize,
    correct: usize,
    explained: usize,
    last_position: Option<usize>,
    devices: std::collections::BTreeSet<String>,
    failures: Vec<Failure>,
    shard: Shard,
    band_edges_hz: Vec<f32>,
}

impl ReportBuilder {
    /// An empty report of `manifest`'s run (its bad input rows already counted as failures).
    pub fn new(manifest: &RunManifest) -> Self {
        let id = &manifest.identity;
        let (c, b) = (id.classes.len(), id.band_edges_hz.len().saturating_sub(1));
        ReportBuilder {
            classes: id.classes.clone(),
            sums: Array2::zeros((c, b)),
            counts: vec![0; c],
            labelled: 0,
            correct: 0,
            explained: 0,
            last_position: None,
            devices: Default::default(),
            failures: manifest.input_errors.clone(),
            shard: manifest.shard,
            band_edges_hz: id.band_edges_hz.clone(),
        }
    }

    /// Adds one record (one utterance and class).
    pub fn record(&mut self, r: &ExplanationRecord) {
        let predicted = self.classes.iter().position(|x| *x == r.predicted).unwrap_or(0);
        let label = r.label.as_ref().and_then(|l| self.classes.iter().position(|x| x == l));
        if self.last_position != Some(r.position) {
            self.last_position = Some(r.position);
            self.explained += 1;
            if let Some(k) = label {
                self.labelled += 1;
                self.correct += (k == predicted) as usize;
            }
            if !self.devices.contains(&r.device) {
                self.devices.insert(r.device.clone());
            }
        }
        let class = label.unwrap_or(predicted);
        if r.class_index == class && class < self.counts.len() {
            for (sum, v) in self.sums.row_mut(class).iter_mut().zip(&r.coefficients) {
                *sum += *v as f64;
            }
            self.counts[class] += 1;
        }
    }

    /// Adds one failed utterance.
    pub fn failure(&mut self, f: &Failure) {
        self.failures.push(f.clone());
    }

    /// The report; `device` lists the devices that computed the records, timing fields are zero.
    pub fn finish(self) -> CorpusReport {
        let b = self.sums.ncols();
        let importance = self
            .classes
            .iter()
            .enumerate()
            .map(|(k, class)| ClassImportance {
                class: class.clone(),
                n_utterances: self.counts[k],
                mean_coefficients: (0..b)
                    .map(|j| (self.sums[[k, j]] / self.counts[k].max(1) as f64) as f32)
                    .collect(),
            })
            .collect();
        CorpusReport {
            n_explained: self.explained,
            n_resumed: 0,
            shard: self.shard,
            failures: self.failures,
            accuracy: (self.labelled > 0).then(|| self.correct as f32 / self.labelled as f32),
            band_edges_hz: self.band_edges_hz,
            importance,
            device: self.devices.into_iter().collect::<Vec<_>>().join("; "),
            seconds: 0.0,
            utterances_per_s: 0.0,
            input_wait_s: 0.0,
        }
    }
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
                position: Some(done),
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
