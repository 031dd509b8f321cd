//! Resumable, shardable corpus runs: the run folder (`run.json` and numbered parts, each complete
//! before it appears), resumption after a kill, shards chosen by a stable hash of the utterance
//! id, and merging parts and shards into one dataset with checks for duplicates and gaps.
//!
//! A run folder holds `run.json` (what is explained with which settings: a resumed run must match
//! it) and, while the run is going, `parts/part-NNNNNN.jsonl` (explanation records),
//! `parts/part-NNNNNN.failures.jsonl` and last `parts/part-NNNNNN.done.json` (the positions the
//! part covers). Every file is written to a temporary name and renamed, and a part counts only
//! once its `done.json` exists, so a kill at any moment loses at most the part being written.
//! When every utterance is done, the parts become `explanations.jsonl`, `explanations.parquet`
//! and `failures.jsonl`, in input order.

use crate::corpus::{CorpusReport, Failure, ReportBuilder};
use crate::error::{Error, Result};
use crate::explain::{ExplainConfig, ExplanationRecord};
use crate::input::InputItem;
use crate::output::{AtomicFile, write_atomic_with, write_json};
use crate::rng::{SplitMix64, fnv1a};
use crate::table::ParquetSink;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the run-folder layout written into `run.json`.
pub const RUN_FORMAT: u32 = 1;
/// The run's settings and utterances.
pub const RUN_FILE: &str = "run.json";
/// Folder of the numbered parts while a run is going.
pub const PARTS_DIR: &str = "parts";
/// The explanations, one JSON object per utterance and class, in input order.
pub const EXPLANATIONS_JSONL: &str = "explanations.jsonl";
/// The same explanations as a Parquet table (see [`crate::table`]).
pub const EXPLANATIONS_PARQUET: &str = "explanations.parquet";
/// One JSON object per input that could not be explained.
pub const FAILURES_JSONL: &str = "failures.jsonl";

/// One of `count` disjoint slices of a corpus: the utterances whose id hashes to `index`
/// (0-based). Every utterance is in exactly one shard, whatever the order of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which slice, `0..count`.
    pub index: usize,
    /// Number of slices.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Shard `index` of `count`; `index` is 0-based and below `count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        let shard = Shard { index, count };
        shard.validate()?;
        Ok(shard)
    }

    /// Parses `I/N` (0-based `I`, as Slurm's `SLURM_ARRAY_TASK_ID` with `--array=0-(N-1)`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::config("shard", format!("expected I/N with 0 <= I < N (0-based), got `{s}`"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }

    /// Checks `index < count` and `count >= 1`.
    pub fn validate(&self) -> Result<()> {
        if self.count == 0 || self.index >= self.count {
            return Err(Error::config(
                "shard",
                format!(
                    "shard {}/{} does not exist: N must be >= 1 and the index 0-based, below N",
                    self.index, self.count
                ),
            ));
        }
        Ok(())
    }

    /// Whether the utterance `id` belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        self.count == 1 || (stable_hash(id) % self.count as u64) as usize == self.index
    }
}

/// A 64-bit hash of `s` that never changes between versions, platforms or runs: FNV-1a over the
/// UTF-8 bytes, finished by one splitmix64 step so that consecutive ids spread evenly.
pub fn stable_hash(s: &str) -> u64 {
    SplitMix64::new(fnv1a(s.as_bytes())).next_u64()
}

/// A fingerprint of a model file or folder, so a run is never resumed or merged with another
/// model's explanations: the hash of the file's bytes, or for a folder of every file's name,
/// size and first and last MiB.
pub fn model_fingerprint(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    let mut add_file = |p: &Path, name: &str, whole: bool| -> Result<()> {
        let bytes = if whole {
            std::fs::read(p).map_err(|e| Error::io(p, e))?
        } else {
            use std::io::{Read, Seek, SeekFrom};
            const MIB: u64 = 1 << 20;
            let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
            let len = f.metadata().map_err(|e| Error::io(p, e))?.len();
            let mut buf = Vec::new();
            (&mut f).take(MIB).read_to_end(&mut buf).map_err(|e| Error::io(p, e))?;
            if len > 2 * MIB {
                f.seek(SeekFrom::Start(len - MIB)).map_err(|e| Error::io(p, e))?;
                f.take(MIB).read_to_end(&mut buf).map_err(|e| Error::io(p, e))?;
            }
            buf.extend_from_slice(&len.to_le_bytes());
            buf
        };
        text.push_str(&format!("{name}:{:016x};", fnv1a(&bytes)));
        Ok(())
    };
    if meta.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for p in &names {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            add_file(p, &name, false)?;
        }
    } else {
        add_file(path, "", true)?;
    }
    Ok(format!("{:016x}", stable_hash(&text)))
}

/// One utterance of a run: its position in the whole input and its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunItem {
    /// 0-based position in the input, before sharding.
    pub position: usize,
    /// The utterance id.
    pub id: String,
}

/// What a run explains and how: written first as `run.json`; a resumed run must match it, and
/// runs merged together must agree on everything but the shard and the input's path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// [`RUN_FORMAT`] of the writer.
    pub format: u32,
    /// The model, the input and the settings.
    #[serde(flatten)]
    pub identity: RunIdentity,
    /// The slice of the input this run explains.
    pub shard: Shard,
    /// Utterances in the whole input, before sharding.
    pub n_inputs: usize,
    /// Hash of every id of the whole input, in order.
    pub inputs_hash: String,
    /// Input rows that could not be used (bad manifest rows), the same for every shard.
    pub input_errors: Vec<Failure>,
    /// The utterances of this run, in input order.
    pub items: Vec<RunItem>,
}

/// Identity of a run: its model, settings and input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The model, as it describes itself.
    pub model: String,
    /// [`model_fingerprint`] of the model file or folder.
    pub model_fingerprint: String,
    /// The input as given (file, folder or manifest).
    pub input: String,
    /// Explanation settings.
    pub config: ExplainConfig,
    /// Class names, model order.
    pub classes: Vec<String>,
    /// Band edges in Hz (`B + 1`).
    pub band_edges_hz: Vec<f32>,
    /// Perturbed samples per utterance.
    pub n_samples: usize,
}

impl RunManifest {
    /// The manifest of `shard` of `items` (the whole input, in order).
    pub fn new(identity: RunIdentity, shard: Shard, items: &[InputItem], input_errors: Vec<Failure>) -> Self {
        let mut ids = String::new();
        for item in items {
            ids.push_str(&item.id);
            ids.push('\n');
        }
        RunManifest {
            format: RUN_FORMAT,
            identity,
            shard,
            n_inputs: items.len(),
            inputs_hash: format!("{:016x}", stable_hash(&ids)),
            input_errors,
            items: items
                .iter()
                .enumerate()
                .filter(|(_, item)| shard.contains(&item.id))
                .map(|(position, item)| RunItem {
                    position,
                    id: item.id.clone(),
                })
                .collect(),
        }
    }

    /// The first setting in which `other` differs from `self`, described for an error message.
    fn difference(&self, other: &RunManifest, with_shard: bool) -> Option<String> {
        let (a, b) = (&self.identity, &other.identity);
        let checks: [(&str, String, String); 9] = [
            ("model", a.model.clone(), b.model.clone()),
            (
                "model file (fingerprint)",
                a.model_fingerprint.clone(),
                b.model_fingerprint.clone(),
            ),
            ("settings", settings(&a.config), settings(&b.config)),
            ("classes", a.classes.join(","), b.classes.join(",")),
            ("band edges", json(&a.band_edges_hz), json(&b.band_edges_hz)),
            ("sample count", a.n_samples.to_string(), b.n_samples.to_string()),
            (
                "input (its utterances)",
                format!("{} utterances, hash {}", self.n_inputs, self.inputs_hash),
                format!("{} utterances, hash {}", other.n_inputs, other.inputs_hash),
            ),
            (
                "shard",
                if with_shard {
                    self.shard.to_string()
                } else {
                    String::new()
                },
                if with_shard {
                    other.shard.to_string()
                } else {
                    String::new()
                },
            ),
            ("format", self.format.to_string(), other.format.to_string()),
        ];
        checks
            .into_iter()
            .find(|(_, a, b)| a != b)
            .map(|(what, a, b)| format!("the {what} differs: {a} here, {b} now"))
    }

    /// The manifest without its item list and input errors, as JSON: the Parquet metadata.
    pub fn settings_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.remove("items");
            map.remove("input_errors");
        }
        v.to_string()
    }
}

/// The settings that decide the explanations, as JSON: the batch size and the row cache do
/// not (they change only rounding), so a run resumed with a smaller batch (after running out
/// of device memory) is the same run.
fn settings(cfg: &ExplainConfig) -> String {
    json(&ExplainConfig {
        batch_size: 0,
        row_cache: true,
        ..cfg.clone()
    })
}

/// Compact JSON of `v`, for comparing settings.
fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The marker that makes a part count: written last.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PartIndex {
    part: usize,
    positions: Vec<usize>,
    n_records: usize,
    n_failures: usize,
}

/// Everything a run folder holds: its manifest and the records and failures written so far.
#[derive(Clone, Debug)]
pub struct RunContents {
    /// The run's `run.json`.
    pub manifest: RunManifest,
    /// Explanation records, sorted by position and class.
    pub records: Vec<ExplanationRecord>,
    /// Inputs of the run that failed, sorted by position (bad manifest rows are in the manifest).
    pub failures: Vec<Failure>,
}

impl RunContents {
    /// Positions that are done: explained or failed.
    pub fn done_positions(&self) -> BTreeSet<usize> {
        self.records
            .iter()
            .map(|r| r.position)
            .chain(self.failures.iter().filter_map(|f| f.position))
            .collect()
    }

    /// The run's utterances that are neither explained nor failed.
    pub fn missing(&self) -> Vec<&RunItem> {
        missing(&self.manifest.items, &self.done_positions())
    }

    fn sort(&mut self) {
        self.records.sort_by_key(|r| (r.position, r.class_index));
        self.failures.sort_by_key(|f| f.position);
    }
}

/// The items whose position is not in `done`.
fn missing<'a>(items: &'a [RunItem], done: &BTreeSet<usize>) -> Vec<&'a RunItem> {
    items.iter().filter(|it| !done.contains(&it.position)).collect()
}

/// A run folder being filled: skips what earlier invocations finished, adds numbered parts.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    manifest: RunManifest,
    done: BTreeSet<usize>,
    n_resumed: usize,
    next_part: usize,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

fn write_lines<T: Serialize>(path: &Path, values: impl IntoIterator<Item = T>) -> Result<()> {
    write_atomic_with(path, |f| {
        for v in values {
            serde_json::to_writer(&mut *f, &v).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })?;
            f.write_all(b"\n").map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    })
}

fn part_name(part: usize, suffix: &str) -> String {
    format!("part-{part:06}.{suffix}")
}

/// The complete parts of `dir/parts`, in part order, after removing (when `clean`) the files
/// of parts that never got their marker (a kill while writing them). Checks that every part
/// holds positions of this run, each once.
fn list_parts(dir: &Path, manifest: &RunManifest, clean: bool) -> Result<Vec<PartIndex>> {
    let parts_dir = dir.join(PARTS_DIR);
    if !parts_dir.is_dir() {
        return Ok(vec![]);
    }
    let mut markers = BTreeMap::new();
    let mut others = vec![];
    for entry in std::fs::read_dir(&parts_dir).map_err(|e| Error::io(&parts_dir, e))? {
        let path = entry.map_err(|e| Error::io(&parts_dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name
            .strip_prefix("part-")
            .and_then(|r| r.strip_suffix(".done.json"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => {
                markers.insert(n, path);
            }
            None => others.push((name, path)),
        }
    }
    if clean {
        for (name, path) in &others {
            let part = name
                .strip_prefix("part-")
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<usize>().ok());
            if part.is_none_or(|n| !markers.contains_key(&n)) {
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            }
        }
    }
    let known: BTreeSet<usize> = manifest.items.iter().map(|it| it.position).collect();
    let mut seen = BTreeSet::new();
    let mut indices = vec![];
    for (n, marker) in markers {
        let index: PartIndex = read_json(&marker)?;
        if index.part != n {
            return Err(Error::run(
                &marker,
                format!("names part {} in the file of part {n}", index.part),
            ));
        }
        for &p in &index.positions {
            if !known.contains(&p) {
                return Err(Error::run(
                    &marker,
                    format!("part {n} holds position {p}, not part of this run"),
                ));
            }
            if !seen.insert(p) {
                return Err(Error::run(
                    &marker,
                    format!("position {p} is in part {n} and in an earlier part"),
                ));
            }
        }
        indices.push(index);
    }
    Ok(indices)
}

/// Explanation records in position order, read lazily.
type Records = Box<dyn Iterator<Item = Result<ExplanationRecord>>>;

/// Whether `dir` holds a finished run's merged files (and no parts).
fn is_finished(dir: &Path) -> bool {
    !dir.join(PARTS_DIR).is_dir() && dir.join(EXPLANATIONS_JSONL).is_file() && dir.join(FAILURES_JSONL).is_file()
}

/// A run folder's records in position order, holding one part (or one line) in memory at a
/// time, and its failed utterances (bad input rows are in the manifest).
fn open_run(dir: &Path, manifest: &RunManifest) -> Result<(Records, Vec<Failure>)> {
    if is_finished(dir) {
        let path = dir.join(EXPLANATIONS_JSONL);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let records = std::io::BufRead::lines(std::io::BufReader::new(file))
            .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .map(move |l| {
                let line = l.map_err(|e| Error::io(&path, e))?;
                serde_json::from_str(&line).map_err(|source| Error::Json {
                    path: path.clone(),
                    source,
                })
            });
        let failures: Vec<Failure> = read_lines(&dir.join(FAILURES_JSONL))?;
        let failures = failures.into_iter().filter(|f| f.position.is_some()).collect();
        return Ok((Box::new(records), failures));
    }
    let parts = list_parts(dir, manifest, false)?;
    let parts_dir = dir.join(PARTS_DIR);
    let mut failures = vec![];
    for p in &parts {
        let path = parts_dir.join(part_name(p.part, "failures.jsonl"));
        let part_failures: Vec<Failure> = read_lines(&path)?;
        if part_failures.len() != p.n_failures {
            return Err(damaged(&path, p.n_failures, part_failures.len()));
        }
        failures.extend(part_failures);
    }
    let records = parts.into_iter().flat_map(move |p| {
        let path = parts_dir.join(part_name(p.part, "jsonl"));
        let read: Vec<Result<ExplanationRecord>> = match read_lines::<ExplanationRecord>(&path) {
            Ok(v) if v.len() == p.n_records => v.into_iter().map(Ok).collect(),
            Ok(v) => vec![Err(damaged(&path, p.n_records, v.len()))],
            Err(e) => vec![Err(e)],
        };
        read
    });
    Ok((Box::new(records), failures))
}

fn damaged(path: &Path, expected: usize, got: usize) -> Error {
    Error::run(
        path,
        format!("damaged part: its marker names {expected} lines, the file holds {got}"),
    )
}

/// Reads a whole run folder into memory, finished (its merged files) or not (its complete parts).
pub fn read_run(dir: &Path) -> Result<RunContents> {
    let manifest = read_manifest(dir)?;
    let (records, failures) = open_run(dir, &manifest)?;
    let mut contents = RunContents {
        records: records.collect::<Result<_>>()?,
        failures,
        manifest,
    };
    contents.sort();
    Ok(contents)
}

/// A run folder's `run.json`.
pub fn read_manifest(dir: &Path) -> Result<RunManifest> {
    let run_file = dir.join(RUN_FILE);
    if !run_file.is_file() {
        return Err(Error::run(dir, format!("not an emolime run folder (no {RUN_FILE})")));
    }
    read_json(&run_file)
}

/// Writes a run's output files, `explanations.jsonl`, `explanations.parquet` and
/// `failures.jsonl` (bad input rows first), from records and failures given in position
/// order, one Parquet batch in memory; each file appears atomically on [`OutputWriter::finish`].
pub struct OutputWriter {
    dir: PathBuf,
    jsonl: AtomicFile,
    parquet: ParquetSink,
    failures: AtomicFile,
    last: Option<(usize, usize)>,
    report: ReportBuilder,
}

impl OutputWriter {
    /// Starts the output files of `manifest`'s run in `dir`.
    pub fn create(dir: &Path, manifest: &RunManifest) -> Result<Self> {
        let mut w = OutputWriter {
            dir: dir.to_path_buf(),
            jsonl: AtomicFile::create(&dir.join(EXPLANATIONS_JSONL))?,
            parquet: ParquetSink::create(&dir.join(EXPLANATIONS_PARQUET), &manifest.settings_json())?,
            failures: AtomicFile::create(&dir.join(FAILURES_JSONL))?,
            last: None,
            report: ReportBuilder::new(manifest),
        };
        for f in &manifest.input_errors {
            write_line(&mut w.failures, f)?;
        }
        Ok(w)
    }

    /// Adds one record; records come by increasing position, then class.
    pub fn record(&mut self, r: &ExplanationRecord) -> Result<()> {
        let key = (r.position, r.class_index);
        if self.last.is_some_and(|last| key <= last) {
            return Err(Error::run(
                &self.dir,
                format!("explanation records out of order at position {} ({})", r.position, r.id),
            ));
        }
        self.last = Some(key);
        write_line(&mut self.jsonl, r)?;
        self.parquet.push(r)?;
        self.report.record(r);
        Ok(())
    }

    /// Adds one failed utterance.
    pub fn failure(&mut self, f: &Failure) -> Result<()> {
        write_line(&mut self.failures, f)?;
        self.report.failure(f);
        Ok(())
    }

    /// Moves the files into place (the JSON lines last) and returns the run's report.
    pub fn finish(self) -> Result<CorpusReport> {
        self.failures.commit()?;
        self.parquet.finish()?;
        self.jsonl.commit()?;
        Ok(self.report.finish())
    }
}

fn write_line<T: Serialize>(file: &mut AtomicFile, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *file, value).map_err(|source| Error::Json {
        path: file.path().to_path_buf(),
        source,
    })?;
    file.write_all(b"\n").map_err(|e| Error::io(file.path(), e))
}

/// Writes `contents` as a run's output files (see [`OutputWriter`]).
pub fn write_outputs(dir: &Path, contents: &RunContents) -> Result<CorpusReport> {
    let mut w = OutputWriter::create(dir, &contents.manifest)?;
    for f in &contents.failures {
        w.failure(f)?;
    }
    for r in &contents.records {
        w.record(r)?;
    }
    w.finish()
}

impl RunFolder {
    /// Opens `dir` for `manifest`: writes `run.json` in a new folder; in a folder an earlier
    /// invocation left, checks that its `run.json` matches and takes every complete part (or
    /// the merged files of a finished run) as done, discarding incomplete parts.
    pub fn open(dir: &Path, manifest: RunManifest) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let run_file = dir.join(RUN_FILE);
        if run_file.is_file() {
            let old: RunManifest = read_json(&run_file)?;
            if let Some(diff) = old.difference(&manifest, true) {
                return Err(Error::run(
                    dir,
                    format!("cannot resume this run: {diff}; start over with --force or use another --out"),
                ));
            }
        } else {
            write_json(&run_file, &manifest)?;
        }
        let parts_dir = dir.join(PARTS_DIR);
        let done = if is_finished(dir) {
            read_run(dir)?.done_positions()
        } else {
            std::fs::create_dir_all(&parts_dir).map_err(|e| Error::io(&parts_dir, e))?;
            let parts = list_parts(dir, &manifest, true)?;
            parts.iter().flat_map(|p| p.positions.iter().copied()).collect()
        };
        let next_part = std::fs::read_dir(&parts_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_prefix("part-")?.split('.').next()?.parse::<usize>().ok()
                    })
                    .max()
                    .map_or(0, |n| n + 1)
            })
            .unwrap_or(0);
        Ok(RunFolder {
            dir: dir.to_path_buf(),
            n_resumed: done.len(),
            manifest,
            done,
            next_part,
        })
    }

    /// The run's manifest.
    pub fn manifest(&self) -> &RunManifest {
        &self.manifest
    }

    /// Whether the utterance at `position` was finished by an earlier invocation or part.
    pub fn is_done(&self, position: usize) -> bool {
        self.done.contains(&position)
    }

    /// Utterances an earlier invocation finished.
    pub fn n_resumed(&self) -> usize {
        self.n_resumed
    }

    /// Adds one part: the utterances at `positions`, their records and their failures. The
    /// part counts only once all three files exist.
    pub fn write_part(
        &mut self,
        positions: &[usize],
        records: &[ExplanationRecord],
        failures: &[Failure],
    ) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let n = self.next_part;
        let parts_dir = self.dir.join(PARTS_DIR);
        std::fs::create_dir_all(&parts_dir).map_err(|e| Error::io(&parts_dir, e))?;
        write_lines(&parts_dir.join(part_name(n, "jsonl")), records)?;
        write_lines(&parts_dir.join(part_name(n, "failures.jsonl")), failures)?;
        write_json(
            &parts_dir.join(part_name(n, "done.json")),
            &PartIndex {
                part: n,
                positions: positions.to_vec(),
                n_records: records.len(),
                n_failures: failures.len(),
            },
        )?;
        self.done.extend(positions);
        self.next_part += 1;
        Ok(())
    }

    /// Joins the parts into the run's output files (see [`OutputWriter`]) once every
    /// utterance is done, removes the parts, and returns the run's report.
    pub fn finish(self) -> Result<CorpusReport> {
        let missing = missing(&self.manifest.items, &self.done);
        if let Some(first) = missing.first() {
            return Err(Error::run(
                &self.dir,
                format!(
                    "{} utterances are not done yet (first: {}); resume the run",
                    missing.len(),
                    first.id
                ),
            ));
        }
        let (records, failures) = open_run(&self.dir, &self.manifest)?;
        if is_finished(&self.dir) {
            // Killed after joining the parts, before the folder was moved into place.
            let mut report = ReportBuilder::new(&self.manifest);
            failures.iter().for_each(|f| report.failure(f));
            for r in records {
                report.record(&r?);
            }
            return Ok(report.finish());
        }
        let mut w = OutputWriter::create(&self.dir, &self.manifest)?;
        for f in &failures {
            w.failure(f)?;
        }
        for r in records {
            w.record(&r?)?;
        }
        let report = w.finish()?;
        let parts_dir = self.dir.join(PARTS_DIR);
        std::fs::remove_dir_all(&parts_dir).map_err(|e| Error::io(&parts_dir, e))?;
        Ok(report)
    }
}

/// Joins finished or unfinished run folders (the shards of one input, or one run) into one
/// dataset in `out` (its `run.json` and output files, in input order), streaming the records
/// (one line per run in memory). Refuses runs with other settings, a shard given twice or
/// missing, an utterance in two folders, and an utterance of a shard that is neither explained
/// nor failed (a gap: resume that shard first). Returns the merged run's report.
pub fn merge_runs(dirs: &[PathBuf], out: &Path) -> Result<CorpusReport> {
    let first_dir = dirs
        .first()
        .ok_or_else(|| Error::config("merge", "no run folder given"))?;
    let manifests: Vec<RunManifest> = dirs.iter().map(|d| read_manifest(d)).collect::<Result<_>>()?;
    let base = &manifests[0];
    let count = base.shard.count;
    let mut shard_dir: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    let mut owner: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    let mut failures = vec![];
    for (m, dir) in manifests.iter().zip(dirs) {
        if let Some(diff) = base.difference(m, false) {
            return Err(Error::run(
                dir,
                format!("cannot merge with {}: {diff}", first_dir.display()),
            ));
        }
        if m.shard.count != count {
            return Err(Error::run(
                dir,
                format!(
                    "is shard {} but {} is shard {}",
                    m.shard,
                    first_dir.display(),
                    base.shard
                ),
            ));
        }
        if let Some(other) = shard_dir.insert(m.shard.index, dir) {
            return Err(Error::run(
                dir,
                format!("shard {} is given twice (also {})", m.shard, other.display()),
            ));
        }
        // First pass: which utterances the folder holds.
        let (records, run_failures) = open_run(dir, m)?;
        let mut done: BTreeSet<usize> = run_failures.iter().filter_map(|f| f.position).collect();
        for r in records {
            done.insert(r?.position);
        }
        let missing = missing(&m.items, &done);
        if let Some(item) = missing.first() {
            return Err(Error::run(
                dir,
                format!(
                    "{} of its utterances are not done (first: {} at position {}): resume this run before merging",
                    missing.len(),
                    item.id,
                    item.position
                ),
            ));
        }
        for p in done {
            if let Some(other) = owner.insert(p, dir) {
                return Err(Error::run(
                    dir,
                    format!("the utterance at position {p} is also in {}", other.display()),
                ));
            }
        }
        failures.extend(run_failures);
    }
    if let Some(missing) = (0..count).find(|i| !shard_dir.contains_key(i)) {
        return Err(Error::run(
            first_dir,
            format!("shard {missing}/{count} is missing: pass every shard's folder"),
        ));
    }
    let mut manifest = base.clone();
    manifest.shard = Shard::default();
    manifest.items = manifests.iter().flat_map(|m| m.items.iter().cloned()).collect();
    manifest.items.sort_by_key(|it| it.position);
    if manifest.items.len() != manifest.n_inputs {
        return Err(Error::run(
            first_dir,
            format!(
                "the shards hold {} utterances, the input {}",
                manifest.items.len(),
                manifest.n_inputs
            ),
        ));
    }
    failures.sort_by_key(|f| f.position);
    write_json(&out.join(RUN_FILE), &manifest)?;
    let mut w = OutputWriter::create(out, &manifest)?;
    for f in &failures {
        w.failure(f)?;
    }
    // Second pass: a k-way merge of the runs' records by position and class.
    let mut heads: Vec<(Option<ExplanationRecord>, Records)> = vec![];
    for (m, dir) in manifests.iter().zip(dirs) {
        let mut records = open_run(dir, m)?.0;
        let head = records.next().transpose()?;
        heads.push((head, records));
    }
    loop {
        let next = heads
            .iter()
            .enumerate()
            .filter_map(|(i, (h, _))| h.as_ref().map(|r| ((r.position, r.class_index), i)))
            .min();
        let Some((_, i)) = next else { break };
        let (head, rest) = &mut heads[i];
        let record = head.take().expect("chosen above");
        *head = rest.next().transpose()?;
        w.record(&record)?;
    }
    w.finish()
}

/// How two runs' explanations differ (see [`compare_records`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    /// Utterance x class pairs present in both.
    pub n_common: usize,
    /// Pairs only in the first run.
    pub only_a: usize,
    /// Pairs only in the second run.
    pub only_b: usize,
    /// Largest absolute difference of one band coefficient.
    pub max_coefficient_diff: f32,
    /// Where it is: utterance id, class, band index.
    pub worst_coefficient: Option<(String, String, usize)>,
    /// Largest absolute difference of an unperturbed class probability.
    pub max_prob_diff: f32,
    /// Largest absolute difference of a surrogate intercept.
    pub max_intercept_diff: f32,
    /// Utterances whose predicted class differs.
    pub n_prediction_changes: usize,
    /// Mean over common pairs of the Spearman agreement of the two band rankings (NaN when
    /// none are common): near 1 for the same model re-explained, low for a sanity-check
    /// control model.
    pub mean_rank_agreement: f64,
    /// Share of common pairs whose most important band is the same.
    pub top_band_agreement: f64,
}

/// Compares two runs' records, matched by utterance id and class. A NaN anywhere, or records
/// with different band counts, count as an infinite difference.
pub fn compare_records(a: &[ExplanationRecord], b: &[ExplanationRecord]) -> Comparison {
    let key = |r: &ExplanationRecord| (r.id.clone(), r.class.clone());
    let index: BTreeMap<(String, String), &ExplanationRecord> = b.iter().map(|r| (key(r), r)).collect();
    let mut c = Comparison::default();
    let mut matched = BTreeSet::new();
    let mut changed = BTreeSet::new();
    let (mut rank_sum, mut top_same) = (0.0f64, 0usize);
    let diff = |x: f32, y: f32| {
        let d = (x - y).abs();
        if d.is_nan() { f32::INFINITY } else { d }
    };
    for ra in a {
        let Some(rb) = index.get(&key(ra)) else {
            c.only_a += 1;
            continue;
        };
        matched.insert(key(ra));
        c.n_common += 1;
        if ra.coefficients.len() != rb.coefficients.len() {
            c.max_coefficient_diff = f32::INFINITY;
            c.worst_coefficient = Some((ra.id.clone(), ra.class.clone(), 0));
        }
        for (j, (x, y)) in ra.coefficients.iter().zip(&rb.coefficients).enumerate() {
            let d = diff(*x, *y);
            if d > c.max_coefficient_diff || c.worst_coefficient.is_none() {
                c.max_coefficient_diff = c.max_coefficient_diff.max(d);
                c.worst_coefficient = Some((ra.id.clone(), ra.class.clone(), j));
            }
        }
        for (x, y) in ra.probs.iter().zip(&rb.probs) {
            c.max_prob_diff = c.max_prob_diff.max(diff(*x, *y));
        }
        c.max_intercept_diff = c.max_intercept_diff.max(diff(ra.intercept, rb.intercept));
        if ra.predicted != rb.predicted {
            changed.insert(ra.id.clone());
        }
        rank_sum += crate::stability::ranking_agreement(&ra.coefficients, &rb.coefficients);
        let top = |c: &[f32]| crate::faithfulness::relevance_order(c).first().copied();
        top_same += (top(&ra.coefficients) == top(&rb.coefficients)) as usize;
    }
    let n = c.n_common as f64;
    c.mean_rank_agreement = if c.n_common > 0 { rank_sum / n } else { f64::NAN };
    c.top_band_agreement = if c.n_common > 0 { top_same as f64 / n } else { f64::NAN };
    c.only_b = b.iter().filter(|r| !matched.contains(&key(r))).count();
    c.n_prediction_changes = changed.len();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_ids_disjointly_and_stably() {
        let ids: Vec<String> = (0..3000).map(|i| format!("spk{}/utt{i}.wav", i % 7)).collect();
        let n = 5;
        let mut sizes = vec![0usize; n];
        for id in &ids {
            let owners: Vec<usize> = (0..n).filter(|&i| Shard::new(i, n).unwrap().contains(id)).collect();
            assert_eq!(owners.len(), 1, "{id} in {owners:?}");
            sizes[owners[0]] += 1;
        }
        for s in &sizes {
            assert!((500..700).contains(s), "uneven shards {sizes:?}");
        }
        // Fixed values: the hash must never change, or shards of one corpus made by two
        // versions would overlap.
        // (values from an independent Python implementation of FNV-1a + splitmix64)
        assert_eq!(stable_hash(""), 0xc381_7c01_6ba4_ff30);
        assert_eq!(stable_hash("a/b.wav"), 0x6fe9_8de5_af8c_364a);
        assert_eq!(stable_hash("angry/angry_s0_000.wav"), 0x9076_1025_b6c8_1d32);
        assert!(Shard::new(2, 3).unwrap().contains("a/b.wav"));
    }

    #[test]
    fn shard_parsing_names_the_problem() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        assert_eq!(Shard::parse(" 0 / 1 ").unwrap(), Shard::default());
        for bad in ["3/3", "1/0", "x/2", "2", "-1/3", ""] {
            let err = Shard::parse(bad).unwrap_err().to_string();
            assert!(err.contains("shard"), "{bad}: {err}");
        }
    }
}
