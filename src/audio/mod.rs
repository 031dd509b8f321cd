//! Audio front end: decoding, resampling, STFT and mel spectrograms.
//!
//! [`FrontEndConfig`] holds the settings shared by every stage; build the reusable
//! [`Stft`] plan and [`MelFilterbank`] from it once and apply them to many signals.

pub mod decode;
pub mod mel;
pub mod stft;

pub use decode::{Audio, decode_file, load_mono, resample, write_wav_i16};
pub use mel::{MelFilterbank, MelScale, hz_to_mel, mel_frequencies_hz, mel_to_hz};
pub use stft::{Stft, WindowKind};

use crate::error::{Error, Result};

/// Front-end settings; defaults follow the reference EmoLIME setup.
///
/// Missing fields take their default when deserialised, so a JSON file may name only the
/// settings it changes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FrontEndConfig {
    /// Rate every input is resampled to, in Hz (default 16000).
    pub sample_rate_hz: u32,
    /// FFT length in samples (default 2048).
    pub n_fft: usize,
    /// Window length in samples, at most `n_fft` (default 2048).
    pub win_len: usize,
    /// Hop between frames in samples (default 512).
    pub hop_len: usize,
    /// Analysis window (default Hann).
    pub window: WindowKind,
    /// Pad `n_fft / 2` samples on both sides so frame `t` is centred on sample `t * hop_len`
    /// (default true).
    pub center: bool,
    /// Number of mel bands (default 128).
    pub n_mels: usize,
    /// Lowest mel band edge in Hz (default 0).
    pub fmin_hz: f32,
    /// Highest mel band edge in Hz (default 8000).
    pub fmax_hz: f32,
    /// Mel scale formula (default Slaney).
    pub mel_scale: MelScale,
}

impl Default for FrontEndConfig {
    fn default() -> Self {
        Self {
            sample_rate_hz: 16_000,
            n_fft: 2048,
            win_len: 2048,
            hop_len: 512,
            window: WindowKind::Hann,
            center: true,
            n_mels: 128,
            fmin_hz: 0.0,
            fmax_hz: 8000.0,
            mel_scale: MelScale::Slaney,
        }
    }
}

impl FrontEndConfig {
    /// Checks every field's range and their consistency.
    ///
    /// `n_fft >= 16` (a power of two is not required), `1 <= win_len <= n_fft`,
    /// `hop_len > 0`, `2 <= n_mels <= 512`, `0 <= fmin_hz < fmax_hz <= sample_rate_hz / 2`,
    /// `4000 <= sample_rate_hz <= 192000`. Returns [`Error::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if !(4000..=192_000).contains(&self.sample_rate_hz) {
            return Err(Error::config(
                "sample_rate_hz",
                format!("{} is outside 4000..=192000", self.sample_rate_hz),
            ));
        }
        if self.n_fft < 16 {
            return Err(Error::config("n_fft", format!("{} is below 16", self.n_fft)));
        }
        if self.win_len == 0 || self.win_len > self.n_fft {
            return Err(Error::config(
                "win_len",
                format!("{} must be in 1..=n_fft ({})", self.win_len, self.n_fft),
            ));
        }
        if self.hop_len == 0 {
            return Err(Error::config("hop_len", "must be positive"));
        }
        if !(2..=512).contains(&self.n_mels) {
            return Err(Error::config("n_mels", format!("{} is outside 2..=512", self.n_mels)));
        }
        let nyquist_hz = self.sample_rate_hz as f32 / 2.0;
        if !self.fmin_hz.is_finite() || self.fmin_hz < 0.0 {
            return Err(Error::config(
                "fmin_hz",
                format!("{} must be finite and >= 0", self.fmin_hz),
            ));
        }
        if !self.fmax_hz.is_finite() || self.fmax_hz > nyquist_hz {
            return Err(Error::config(
                "fmax_hz",
                format!(
                    "{} must be finite and <= sample_rate_hz / 2 ({nyquist_hz})",
                    self.fmax_hz
                ),
            ));
        }
        if self.fmin_hz >= self.fmax_hz {
            return Err(Error::config(
                "fmin_hz",
                format!("{} must be below fmax_hz ({})", self.fmin_hz, self.fmax_hz),
            ));
        }
        Ok(())
    }

    /// Number of one-sided frequency bins, `n_fft / 2 + 1`.
    pub fn n_freq_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Validates the config and builds the STFT plan it describes.
    pub fn stft(&self) -> Result<Stft> {
        self.validate()?;
        Stft::new(self.n_fft, self.win_len, self.hop_len, self.window, self.center)
    }

    /// Validates the config and builds the mel filterbank it describes (weights `[M, K]`).
    pub fn mel_filterbank(&self) -> Result<MelFilterbank> {
        self.validate()?;
        MelFilterbank::new(
            self.sample_rate_hz,
            self.n_fft,
            self.n_mels,
            self.fmin_hz,
            self.fmax_hz,
            self.mel_scale,
        )
    }
}
