//! The library's one error type: every fallible public function returns [`Result<T>`].

use std::path::PathBuf;

/// Everything that can go wrong in emolime, with the file and the cause where there is one.
///
/// Messages are lowercase and name the offending file, so a corpus run can print one line
/// per failed input and go on with the rest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An audio file could not be decoded (not audio, truncated, unsupported codec, ...).
    #[error("{path}: cannot decode audio: {reason}")]
    Decode {
        /// The audio file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An audio file decoded, but its content cannot be explained (empty, silent, too short, NaN).
    #[error("{path}: unusable audio: {reason}")]
    BadAudio {
        /// The audio file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// A row of a CSV manifest is malformed.
    #[error("{path}:{line}: bad manifest row: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the row.
        reason: String,
    },
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid configuration: {field}: {reason}")]
    Config {
        /// The field (or CLI flag) at fault.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// An array passed to a function does not have the documented shape.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// The argument or buffer.
        what: &'static str,
        /// The expected shape, e.g. `[N, B]`.
        expected: String,
        /// The shape that was given.
        got: String,
    },
    /// A saved model file is missing, corrupt or from an incompatible version.
    #[error("{path}: bad model file: {reason}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// Why it could not be loaded.
        reason: String,
    },
    /// No usable compute device, or the GPU reported an error.
    #[error("device error: {0}")]
    Device(String),
    /// The device had no memory left for an allocation, or one exceeded the largest it can
    /// make; fewer inputs per model call (`--batch-size`) need less.
    #[error("device out of memory: {detail}")]
    DeviceOutOfMemory {
        /// What the backend said.
        detail: String,
    },
    /// An output folder already exists and `--force` was not given.
    #[error("{path}: output folder already exists (pass --force to replace it)")]
    OutputExists {
        /// The output folder.
        path: PathBuf,
    },
    /// A run folder cannot be resumed or merged as asked (other settings, another input, a
    /// duplicate or missing utterance, a missing shard, a part written by something else).
    #[error("{path}: {reason}")]
    Run {
        /// The run folder (or the file in it) at fault.
        path: PathBuf,
        /// What is wrong, and what to do about it.
        reason: String,
    },
    /// Writing or reading a Parquet file failed.
    #[error("{path}: parquet: {reason}")]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// What arrow-rs said.
        reason: String,
    },
    /// Encoding or decoding JSON failed.
    #[error("{path}: json: {source}")]
    Json {
        /// The file being read or written.
        path: PathBuf,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// Shorthand for `std::result::Result<T, emolime::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An input-shaped error (too short, wrong shape, inconsistent with the settings) as a
    /// per-file [`Error::BadAudio`] naming `path`; any other error is returned unchanged.
    pub fn into_bad_audio(self, path: &std::path::Path) -> Self {
        match self {
            Error::Shape { .. } | Error::Config { .. } => Error::BadAudio {
                path: path.to_path_buf(),
                reason: self.to_string(),
            },
            other => other,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error for `field`.
    pub fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            field,
            reason: reason.into(),
        }
    }

    /// A run-folder error for `path`.
    pub fn run(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Run {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A device failure described by `text` (a backend's error or panic message): an
    /// [`Error::DeviceOutOfMemory`] when it says the device ran out of memory or could not
    /// allocate a buffer that large, else an [`Error::Device`]. Backtraces are dropped.
    pub fn device_failure(text: &str) -> Self {
        let detail = text
            .split("\nBacktrace")
            .next()
            .unwrap_or(text)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        if says_out_of_memory(&detail) {
            Error::DeviceOutOfMemory { detail }
        } else {
            Error::Device(detail)
        }
    }

    /// Whether this is a device out-of-memory error.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::DeviceOutOfMemory { .. })
    }

    /// A shape error for argument `what`.
    pub fn shape(what: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::Shape {
            what,
            expected: expected.into(),
            got: got.into(),
        }
    }
}

/// Whether a backend's message reports an exhausted device memory or an allocation larger than
/// the device can make (the wordings of wgpu, CubeCL and the Vulkan drivers).
fn says_out_of_memory(text: &str) -> bool {
    let t = text.to_lowercase();
    [
        "out of memory",
        "out-of-memory",
        "outofmemory",
        "out of device memory",
        "out_of_device_memory",
        "out_of_host_memory",
        "can't allocate buffer",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// Returns a [`Error::Shape`] unless `got == expected`.
pub(crate) fn check_shape(what: &'static str, expected: &[usize], got: &[usize]) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::shape(what, format!("{expected:?}"), format!("{got:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_messages_are_classified() {
        // CubeCL's IoError and LaunchError wordings, wgpu's, and Vulkan's result codes.
        for oom in [
            "An error happened during execution\nCaused by:\n  out of device memory allocating 4294967296 bytes\nBacktrace:\n  0: x",
            "can't allocate buffer of size: 8589934592\n",
            "wgpu error: Out of Memory",
            "An out-of-memory error happened during launch",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ] {
            let e = Error::device_failure(oom);
            assert!(e.is_out_of_memory(), "{oom:?} -> {e}");
            assert!(
                !e.to_string().contains("Backtrace") && !e.to_string().contains("0: x"),
                "{e}"
            );
        }
        for other in [
            "wgpu error: Validation Error",
            "the device was lost",
            "shader compilation failed",
        ] {
            let e = Error::device_failure(other);
            assert!(!e.is_out_of_memory(), "{other:?} -> {e}");
            assert!(matches!(e, Error::Device(_)));
        }
    }
}
