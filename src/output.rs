//! Output folders and files: atomic writes, no silent overwrite, JSON lines.

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// One named f32 array for [`safetensors_bytes`]. // data [prod(shape)]
#[derive(Clone, Copy, Debug)]
pub struct NamedArray<'a> {
    /// Its name in the file.
    pub name: &'a str,
    /// Its shape, outermost first.
    pub shape: &'a [usize],
    /// Its values, row-major.
    pub data: &'a [f32],
}

/// Encodes f32 arrays as a safetensors file (an 8-byte little-endian header length, a JSON
/// header naming each array's dtype, shape and byte range, then the data), with `metadata` as
/// the header's string map; arrays are stored in the order given.
///
/// # Shapes
/// each array's `data` holds `shape.iter().product()` values, checked.
pub fn safetensors_bytes(arrays: &[NamedArray<'_>], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0usize;
    for a in arrays {
        let n: usize = a.shape.iter().product();
        if n != a.data.len() {
            return Err(Error::shape(
                "safetensors array",
                format!("{} values for {} {:?}", n, a.name, a.shape),
                format!("{} values", a.data.len()),
            ));
        }
        if a.name == "__metadata__" || header.contains_key(a.name) {
            return Err(Error::config(
                "safetensors",
                format!("array name {:?} used twice or reserved", a.name),
            ));
        }
        let end = offset + 4 * n;
        header.insert(
            a.name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": a.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut head = serde_json::to_vec(&header).map_err(|e| Error::config("safetensors", format!("header: {e}")))?;
    // The data starts 8-byte aligned; the format pads the header with spaces.
    head.resize(head.len().div_ceil(8) * 8, b' ');
    let mut bytes = Vec::with_capacity(8 + head.len() + offset);
    bytes.extend_from_slice(&(head.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&head);
    for a in arrays {
        bytes.extend_from_slice(bytemuck::cast_slice(a.data));
    }
    Ok(bytes)
}

/// `.NAME.SUFFIX` beside `path` (named `NAME`), after creating the folder they share.
fn hidden_sibling(path: &Path, suffix: &str) -> Result<PathBuf> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    Ok(parent.join(format!(".{name}.{suffix}")))
}

/// Appends `s` to `out` as one CSV field (see [`csv_quoted`]).
pub fn csv_field(out: &mut String, s: &str) {
    out.push_str(&csv_quoted(s));
}

/// `s` as one CSV field: quoted (with doubled quotes) when it holds a comma, a quote or a line
/// break, else as it is.
pub fn csv_quoted(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// An output folder being filled: created in a staging folder beside the target and moved into
/// place by [`OutputDir::commit`], so a crash never leaves a half-written folder under the name
/// the user asked for, and an existing folder is replaced only with `force`.
pub struct OutputDir {
    target: PathBuf,
    staging: PathBuf,
    force: bool,
    /// Held while a resumable run writes its staging folder; kept on drop.
    lock: Option<std::fs::File>,
}

/// How [`OutputDir::resumable`] found the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// A fresh staging folder was made.
    Fresh,
    /// An unfinished run's staging folder is continued.
    Continued,
}

impl OutputDir {
    /// Prepares to write `target`. Fails if it exists and `force` is false.
    pub fn create(target: &Path, force: bool) -> Result<Self> {
        if target.exists() && !force {
            return Err(Error::OutputExists {
                path: target.to_path_buf(),
            });
        }
        let staging = hidden_sibling(target, &format!("partial-{}", std::process::id()))?;
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(OutputDir {
            target: target.to_path_buf(),
            staging,
            force,
            lock: None,
        })
    }

    /// Prepares a resumable run's output: the staging folder is `.NAME.partial` beside
    /// `target`, the same for every invocation, and is kept when the process dies or fails, so
    /// `resume` can continue it. A staging folder left by an earlier run is continued with
    /// `resume`, replaced with `force`, and otherwise refused; an existing `target` is refused
    /// unless `force`. An exclusive lock on `.NAME.partial/lock` keeps a second process out.
    pub fn resumable(target: &Path, force: bool, resume: bool) -> Result<(Self, Resumed)> {
        if target.exists() && !force {
            return Err(Error::OutputExists {
                path: target.to_path_buf(),
            });
        }
        let staging = hidden_sibling(target, "partial")?;
        let mut state = Resumed::Fresh;
        if staging.exists() {
            // Refuse before touching anything if another process holds the run.
            let lock = open_lock(&staging)?;
            if resume {
                state = Resumed::Continued;
            } else if force {
                drop(lock);
                std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
            } else {
                return Err(Error::run(
                    &staging,
                    format!(
                        "an unfinished run of {} is here; continue it with --resume or start over with --force",
                        target.display()
                    ),
                ));
            }
        }
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        let lock = open_lock(&staging)?;
        Ok((
            OutputDir {
                target: target.to_path_buf(),
                staging,
                force,
                lock: Some(lock),
            },
            state,
        ))
    }

    /// Path of `name` inside the folder being written.
    pub fn path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// The final folder name.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the finished folder into place (replacing an old one only when forced).
    pub fn commit(mut self) -> Result<PathBuf> {
        if let Some(lock) = self.lock.take() {
            let path = self.staging.join(LOCK_FILE);
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            drop(lock);
        }
        if self.target.exists() {
            if !self.force {
                return Err(Error::OutputExists {
                    path: self.target.clone(),
                });
            }
            let old = self.staging.with_extension("old");
            std::fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
            std::fs::rename(&self.staging, &self.target).map_err(|e| Error::io(&self.target, e))?;
            let _ = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
        } else {
            std::fs::rename(&self.staging, &self.target).map_err(|e| Error::io(&self.target, e))?;
        }
        Ok(self.target.clone())
    }
}

/// The lock file inside a resumable run's staging folder.
const LOCK_FILE: &str = "lock";

/// Opens and exclusively locks `dir/lock`; fails if another process holds it.
fn open_lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::run(
            dir,
            "another emolime process is writing this run (its lock file is held)",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// A file written under a temporary name in its folder and renamed to its name by
/// [`AtomicFile::commit`] (after a sync), so readers never see it half-written; dropped without a
/// commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path` (creating its folder).
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = hidden_sibling(path, &format!("tmp-{}", std::process::id()))?;
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let buf = self.file.take().expect("present until commit");
        let file = buf.into_inner().map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("present until commit").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("present until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a file atomically (see [`AtomicFile`]) by handing `write` the open file: for outputs
/// too large to build in memory.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut AtomicFile) -> Result<()>) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    write(&mut file)?;
    file.commit()
}

/// Appends JSON lines to a file inside an [`OutputDir`] (the whole folder becomes visible only on
/// commit, so lines are never seen half-written).
pub struct JsonLines {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl JsonLines {
    /// Creates (truncates) the file.
    pub fn create(path: PathBuf) -> Result<Self> {
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(JsonLines {
            path,
            file: std::io::BufWriter::new(file),
        })
    }

    /// Writes one value as one line.
    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.file, value).map_err(|source| Error::Json {
            path: self.path.clone(),
            source,
        })?;
        self.file.write_all(b"\n").map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes and syncs the file.
    pub fn finish(mut self) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))?;
        self.file.get_ref().sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        // A folder that was never committed is removed, leaving the target untouched; a
        // resumable run's is kept for --resume.
        if self.lock.is_none() && self.staging.exists() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}
