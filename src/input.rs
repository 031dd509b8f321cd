//! Finding the utterances to process: one audio file, a folder (recursive) or a CSV manifest.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Audio file extensions picked up when walking a folder.
pub const AUDIO_EXTENSIONS: &[&str] = &["wav", "flac", "ogg", "mp3"];

/// One utterance to process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputItem {
    /// The audio file.
    pub path: PathBuf,
    /// Identifier written to the outputs: the path relative to the input root, `/`-separated.
    pub id: String,
    /// Label from the manifest (or the parent folder name when walking a folder), if any.
    pub label: Option<String>,
    /// Speaker from the manifest, if any.
    pub speaker: Option<String>,
    /// Dataset (corpus, recording condition) from the manifest's `dataset` column, if any.
    pub dataset: Option<String>,
    /// Speaker gender (`female`, `male`), from a corpus loader or a `gender` column, if known.
    pub gender: Option<String>,
    /// The manifest's `split` column (`train`, `test`, ...), if any.
    pub split: Option<String>,
    /// Every other manifest column, by header name (empty values left out): carried into the
    /// outputs as they are.
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl InputItem {
    /// An item with only a path and an id.
    pub fn new(path: impl Into<PathBuf>, id: impl Into<String>) -> Self {
        InputItem {
            path: path.into(),
            id: id.into(),
            ..InputItem::default()
        }
    }
}

/// A file a corpus loader left out, and why (not the corpus's naming, a label not kept, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it is not used.
    pub reason: String,
}

/// What [`collect_inputs`] found: the usable items and one error per bad manifest row.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Items to process, in a stable order.
    pub items: Vec<InputItem>,
    /// Rows that could not be used; processing goes on without them.
    pub errors: Vec<Error>,
    /// Files a corpus loader deliberately left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// The distinct labels of `items`, sorted: the class names a model trained on them uses.
pub fn class_names(items: &[InputItem]) -> Vec<String> {
    let mut classes: Vec<String> = items.iter().filter_map(|i| i.label.clone()).collect();
    classes.sort();
    classes.dedup();
    classes
}

/// Collects utterances from `path`: a `.csv` manifest (see [`read_manifest`]; paths relative to
/// the manifest's folder), a folder (walked recursively, sorted, label = parent
/// folder name), or a single audio file.
pub fn collect_inputs(path: &Path) -> Result<Inputs> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let mut files = vec![];
        walk_files(path, &|p| has_extension(p, AUDIO_EXTENSIONS), &mut files)?;
        files.sort();
        let items = files
            .into_iter()
            .map(|f| {
                let rel = f.strip_prefix(path).unwrap_or(&f);
                let label = rel
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|s| s.to_string_lossy().into_owned());
                InputItem {
                    id: id_of(rel),
                    label,
                    ..InputItem::new(f, "")
                }
            })
            .collect();
        Ok(Inputs {
            items,
            ..Inputs::default()
        })
    } else if has_extension(path, &["csv"]) {
        read_manifest(path)
    } else {
        let id = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Inputs {
            items: vec![InputItem::new(path, id)],
            ..Inputs::default()
        })
    }
}

fn id_of(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn has_extension(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Every file under `dir` (recursively) that `keep` accepts, appended to `out` unsorted.
pub(crate) fn walk_files(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() {
            walk_files(&path, keep, out)?;
        } else if keep(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Where each understood column of a manifest is; every other header column is metadata.
struct Columns {
    path: usize,
    label: usize,
    speaker: Option<usize>,
    dataset: Option<usize>,
    gender: Option<usize>,
    split: Option<usize>,
    /// `(index, header name)` of the other columns.
    metadata: Vec<(usize, String)>,
    /// Fields a row must have; `None`: 2 or 3 (`path,label[,speaker]`).
    n_fields: Option<usize>,
}

impl Columns {
    /// `path,label[,speaker]`, with no header or with exactly that header.
    fn plain() -> Columns {
        Columns {
            path: 0,
            label: 1,
            speaker: Some(2),
            dataset: None,
            gender: None,
            split: None,
            metadata: vec![],
            n_fields: None,
        }
    }

    /// Finds the columns by name in a header row (case-insensitive): `path` and a label column
    /// (`label`, `emotion` or `class`) are required; `speaker`, `dataset`, `gender` (or `sex`)
    /// and `split` are understood; every other column is metadata (so the `metadata.csv` of
    /// `gen_emo_corpus.py` reads as is, its `text` column carried along).
    fn from_header(fields: &csv::StringRecord) -> std::result::Result<Columns, String> {
        let names: Vec<String> = fields.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
        if let Some((i, name)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
            return Err(format!("header names column `{name}` twice (column {})", i + 1));
        }
        let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
        let path = find(&["path"]).ok_or_else(|| "header has no `path` column".to_string())?;
        let label = find(&["label", "emotion", "class"])
            .ok_or_else(|| "header has no `label`, `emotion` or `class` column".to_string())?;
        let mut cols = Columns {
            path,
            label,
            speaker: find(&["speaker"]),
            dataset: find(&["dataset"]),
            gender: find(&["gender", "sex"]),
            split: find(&["split"]),
            metadata: vec![],
            n_fields: Some(names.len()),
        };
        let known = [
            Some(cols.path),
            Some(cols.label),
            cols.speaker,
            cols.dataset,
            cols.gender,
            cols.split,
        ];
        cols.metadata = fields
            .iter()
            .enumerate()
            .filter(|(i, _)| !known.contains(&Some(*i)))
            .map(|(i, name)| (i, name.trim().to_string()))
            .collect();
        Ok(cols)
    }
}

/// Reads a CSV manifest (the `csv` crate: quoted fields may hold commas, quotes and line
/// breaks; `#` starts a comment line); bad rows become errors in [`Inputs::errors`], missing
/// files too, and the other rows are used.
///
/// Without a header a row is `path,label[,speaker]`. With a header (a first row naming a
/// `path` column) the columns are found by name: `path`, a label column (`label`, `emotion` or
/// `class`), and optionally `speaker`, `dataset`, `gender` (or `sex`) and `split`; any other
/// column is kept in [`InputItem::metadata`] and written to the outputs. Paths are relative to
/// the manifest's folder.
pub fn read_manifest(path: &Path) -> Result<Inputs> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(std::io::BufReader::new(file));
    let root = path.parent().unwrap_or(Path::new("."));
    let mut inputs = Inputs::default();
    let mut columns = Columns::plain();
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        let at = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let err = Error::Manifest {
                    path: path.to_path_buf(),
                    line: e.position().map_or(at, |p| p.line() as usize),
                    reason: e.to_string(),
                };
                // A broken file (unreadable, not UTF-8) stops; a malformed row is skipped.
                match e.kind() {
                    csv::ErrorKind::Io(_) | csv::ErrorKind::Utf8 { .. } => return Err(err),
                    _ => {
                        inputs.errors.push(err);
                        continue;
                    }
                }
            }
        }
        // The record's own first line (a quoted field may span several).
        let line_no = record.position().map_or(at, |p| p.line() as usize);
        let bad = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        if std::mem::take(&mut first) && record.iter().any(|f| f.eq_ignore_ascii_case("path")) {
            let plain = record.len() <= 3
                && record
                    .iter()
                    .zip(["path", "label", "speaker"])
                    .all(|(f, want)| f.eq_ignore_ascii_case(want));
            if !plain {
                columns = Columns::from_header(&record).map_err(bad)?;
            }
            continue;
        }
        match columns.n_fields {
            Some(n) if record.len() != n => {
                inputs.errors.push(bad(format!(
                    "expected {n} fields as the header says, got {}",
                    record.len()
                )));
                continue;
            }
            None if !(2..=3).contains(&record.len()) => {
                inputs.errors.push(bad(format!(
                    "expected `path,label[,speaker]`, got {} fields",
                    record.len()
                )));
                continue;
            }
            _ => {}
        }
        let field = |k: usize| record.get(k).filter(|s| !s.is_empty());
        let (Some(rel), Some(label)) = (field(columns.path), field(columns.label)) else {
            inputs.errors.push(bad("empty path or label".into()));
            continue;
        };
        let rel_path = Path::new(rel);
        let audio = if rel_path.is_absolute() {
            rel_path.to_path_buf()
        } else {
            root.join(rel_path)
        };
        if !audio.is_file() {
            inputs.errors.push(bad(format!("{}: no such file", audio.display())));
            continue;
        }
        let opt = |c: Option<usize>| c.and_then(field).map(str::to_string);
        inputs.items.push(InputItem {
            path: audio,
            id: rel.to_string(),
            label: Some(label.to_string()),
            speaker: opt(columns.speaker),
            dataset: opt(columns.dataset),
            gender: opt(columns.gender),
            split: opt(columns.split),
            metadata: columns
                .metadata
                .iter()
                .filter_map(|(i, name)| field(*i).map(|v| (name.clone(), v.to_string())))
                .collect(),
        });
    }
    Ok(inputs)
}
