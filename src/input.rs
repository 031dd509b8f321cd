//! Finding the utterances to process: one audio file, a folder (recursive) or a CSV manifest.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Audio file extensions picked up when walking a folder.
pub const AUDIO_EXTENSIONS: &[&str] = &["wav", "flac", "ogg", "mp3"];

/// One utterance to process.
#[derive(Clone, Debug, PartialEq, Eq)]
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
                    speaker: None,
                    dataset: None,
                    gender: None,
                    path: f,
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
            items: vec![InputItem {
                path: path.to_path_buf(),
                id,
                label: None,
                speaker: None,
                dataset: None,
                gender: None,
            }],
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

/// Columns of a manifest with a header row.
struct Columns {
    path: usize,
    label: usize,
    speaker: Option<usize>,
    dataset: Option<usize>,
    gender: Option<usize>,
}

impl Columns {
    /// `path,label[,speaker]` without a header.
    const PLAIN: Columns = Columns {
        path: 0,
        label: 1,
        speaker: Some(2),
        dataset: None,
        gender: None,
    };

    /// Finds the columns by name in a header row whose first field is `path`: the label is the
    /// `label`, `emotion` or `class` column; `speaker`, `dataset` and `gender` (or `sex`) are optional; other columns
    /// are ignored (the `metadata.csv` of `gen_emo_corpus.py` reads as is).
    fn from_header(fields: &[&str]) -> std::result::Result<Columns, String> {
        let find = |names: &[&str]| {
            fields
                .iter()
                .position(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
        };
        let label = find(&["label", "emotion", "class"])
            .ok_or_else(|| "header has no `label`, `emotion` or `class` column".to_string())?;
        Ok(Columns {
            path: 0,
            label,
            speaker: find(&["speaker"]),
            dataset: find(&["dataset"]),
            gender: find(&["gender", "sex"]),
        })
    }
}

/// Reads a CSV manifest; bad rows become errors in [`Inputs::errors`], missing files too.
///
/// Without a header a row is `path,label[,speaker]`. With a header (first field `path`) the
/// columns are found by name: `path`, a label column (`label`, `emotion` or `class`), and
/// optionally `speaker` and `dataset`; any other column is ignored.
pub fn read_manifest(path: &Path) -> Result<Inputs> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let root = path.parent().unwrap_or(Path::new("."));
    let mut inputs = Inputs::default();
    let mut columns = Columns::PLAIN;
    let mut headed = false;
    let mut n_header = 0;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = split_csv(line);
        let bad = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        if i == 0 && fields.first().is_some_and(|f| f.eq_ignore_ascii_case("path")) {
            // `path,label[,speaker]` keeps the plain layout; any other header names its columns.
            let plain = fields.len() <= 3
                && fields
                    .iter()
                    .zip(["path", "label", "speaker"])
                    .all(|(f, want)| f.eq_ignore_ascii_case(want));
            if !plain {
                columns = Columns::from_header(&fields).map_err(bad)?;
                n_header = fields.len();
                headed = true;
            }
            continue;
        }
        let field = |k: usize| fields.get(k).copied().filter(|s| !s.is_empty());
        if headed {
            if fields.len() != n_header {
                inputs.errors.push(bad(format!(
                    "expected {n_header} fields as the header says, got {}",
                    fields.len()
                )));
                continue;
            }
        } else if !(2..=3).contains(&fields.len()) {
            inputs.errors.push(bad(format!(
                "expected `path,label[,speaker]`, got {} fields",
                fields.len()
            )));
            continue;
        }
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
        inputs.items.push(InputItem {
            path: audio,
            id: rel.to_string(),
            label: Some(label.to_string()),
            speaker: columns.speaker.and_then(field).map(str::to_string),
            dataset: columns.dataset.and_then(field).map(str::to_string),
            gender: columns.gender.and_then(field).map(str::to_string),
        });
    }
    Ok(inputs)
}

/// Splits one CSV line on commas, honouring double quotes (no embedded newlines).
fn split_csv(line: &str) -> Vec<&str> {
    let mut out = vec![];
    let (mut start, mut quoted) = (0, false);
    for (i, ch) in line.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(line[start..i].trim().trim_matches('"'));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(line[start..].trim().trim_matches('"'));
    out
}
