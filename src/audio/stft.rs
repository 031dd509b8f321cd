//! Short-time Fourier transform: window functions, a reusable forward/inverse STFT plan
//! with librosa semantics (`librosa.stft` / `librosa.istft`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::error::{Error, Result};

/// Analysis window shape.
///
/// All windows are *periodic* (DFT-even), like scipy/librosa
/// `get_window(..., fftbins=True)`: a window of length `N` is the first `N` points of the
/// symmetric window of length `N + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Hann window, `0.5 - 0.5 cos(2 pi n / N)`.
    Hann,
    /// Hamming window, `0.54 - 0.46 cos(2 pi n / N)`.
    Hamming,
    /// Rectangular (boxcar) window, all ones.
    Rectangular,
}

impl WindowKind {
    /// The periodic window of `win_len` samples (computed in f64, rounded to f32).
    ///
    /// # Shapes
    /// returns `[win_len]`
    pub fn periodic(self, win_len: usize) -> Vec<f32> {
        let n_total = win_len as f64;
        (0..win_len)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * n as f64 / n_total;
                let w = match self {
                    WindowKind::Hann => 0.5 - 0.5 * phase.cos(),
                    WindowKind::Hamming => 0.54 - 0.46 * phase.cos(),
                    WindowKind::Rectangular => 1.0,
                };
                w as f32
            })
            .collect()
    }
}

/// A reusable STFT plan (rustfft forward+inverse plans, window, scratch), built once.
///
/// Cheap to clone (the FFT plans are shared) and safe to use from many threads at once;
/// each call allocates its own per-call scratch buffers once, outside the per-frame loop.
#[derive(Clone)]
pub struct Stft {
    n_fft: usize,
    win_len: usize,
    hop_len: usize,
    window_kind: WindowKind,
    center: bool,
    /// Window zero-padded (centred) to `n_fft`. // [n_fft]
    window: Vec<f32>,
    /// `window[n]^2`. // [n_fft]
    window_sq: Vec<f32>,
    forward_plan: Arc<dyn Fft<f32>>,
    inverse_plan: Arc<dyn Fft<f32>>,
}

impl fmt::Debug for Stft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stft")
            .field("n_fft", &self.n_fft)
            .field("win_len", &self.win_len)
            .field("hop_len", &self.hop_len)
            .field("window", &self.window_kind)
            .field("center", &self.center)
            .finish()
    }
}

impl Stft {
    /// Builds the plan: FFT plans of length `n_fft`, the periodic window of `win_len`
    /// samples centred in `n_fft` (as `librosa.util.pad_center` does).
    ///
    /// Errors ([`Error::Config`]): `n_fft < 2`, `win_len` not in `1..=n_fft`, `hop_len == 0`.
    pub fn new(n_fft: usize, win_len: usize, hop_len: usize, window: WindowKind, center: bool) -> Result<Self> {
        if n_fft < 2 {
            return Err(Error::config("n_fft", format!("{n_fft} is below 2")));
        }
        if win_len == 0 || win_len > n_fft {
            return Err(Error::config(
                "win_len",
                format!("{win_len} must be in 1..=n_fft ({n_fft})"),
            ));
        }
        if hop_len == 0 {
            return Err(Error::config("hop_len", "must be positive"));
        }
        let short = window.periodic(win_len); // [win_len]
        let left_pad = (n_fft - win_len) / 2;
        let mut padded = vec![0.0f32; n_fft]; // [n_fft]
        padded[left_pad..left_pad + win_len].copy_from_slice(&short);
        let window_sq = padded.iter().map(|w| w * w).collect();
        let mut planner = FftPlanner::<f32>::new();
        let forward_plan = planner.plan_fft_forward(n_fft);
        let inverse_plan = planner.plan_fft_inverse(n_fft);
        Ok(Self {
            n_fft,
            win_len,
            hop_len,
            window_kind: window,
            center,
            window: padded,
            window_sq,
            forward_plan,
            inverse_plan,
        })
    }

    /// FFT length in samples.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Window length in samples (before padding to `n_fft`).
    pub fn win_len(&self) -> usize {
        self.win_len
    }

    /// Hop between frames in samples.
    pub fn hop_len(&self) -> usize {
        self.hop_len
    }

    /// Window shape.
    pub fn window_kind(&self) -> WindowKind {
        self.window_kind
    }

    /// Whether frames are centred (signal padded by `n_fft / 2` on both sides).
    pub fn center(&self) -> bool {
        self.center
    }

    /// The analysis window, zero-padded (centred) to `n_fft`.
    ///
    /// # Shapes
    /// returns `[n_fft]`
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// Number of one-sided frequency bins, `n_fft / 2 + 1`.
    pub fn n_freq_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of frames for a signal of `n_samples`.
    ///
    /// As librosa: with `center` the signal is padded by `n_fft / 2` on both sides (reflect
    /// padding, or zero padding when the signal is shorter than `n_fft / 2 + 1`), and
    /// `frames = 1 + (padded_len - n_fft) / hop_len`. Without `center`, a signal shorter
    /// than `n_fft` has 0 frames. An empty signal always has 0 frames.
    pub fn n_frames(&self, n_samples: usize) -> usize {
        if n_samples == 0 {
            return 0;
        }
        let pad = if self.center { self.n_fft / 2 } else { 0 };
        let padded_len = n_samples + 2 * pad;
        if padded_len < self.n_fft {
            0
        } else {
            1 + (padded_len - self.n_fft) / self.hop_len
        }
    }

    /// Shortest signal (in samples) that yields at least one frame.
    pub fn min_signal_len(&self) -> usize {
        if self.center {
            (self.n_fft - 2 * (self.n_fft / 2)).max(1)
        } else {
            self.n_fft
        }
    }

    /// Complex STFT, `X[k, t] = sum_n x_pad[t * hop_len + n] w[n] exp(-2 pi i k n / n_fft)`.
    ///
    /// Matches `librosa.stft(y, n_fft, hop_length, win_length, window, center,
    /// pad_mode="reflect")` (window padded to `n_fft` centred when `win_len < n_fft`).
    ///
    /// # Shapes
    /// `signal` `[S]` -> `[K, T]` with `K = n_fft / 2 + 1`, `T = self.n_frames(S)`.
    ///
    /// Errors: [`Error::Shape`] when the signal is too short for one frame.
    pub fn forward(&self, signal: &[f32]) -> Result<Array2<Complex32>> {
        let n_bins = self.n_freq_bins();
        let n_frames = self.check_signal(signal)?;
        let mut spec = Array2::<Complex32>::zeros((n_bins, n_frames)); // [K, T]
        self.for_each_frame(signal, |t, bins| {
            for (dst, src) in spec.column_mut(t).iter_mut().zip(bins) {
                *dst = *src;
            }
        });
        Ok(spec)
    }

    /// Power spectrogram `|STFT|^2`.
    ///
    /// # Shapes
    /// `signal` `[S]` -> `[K, T]` with `K = n_fft / 2 + 1`, `T = self.n_frames(S)`.
    ///
    /// Errors: [`Error::Shape`] when the signal is too short for one frame.
    pub fn power(&self, signal: &[f32]) -> Result<Array2<f32>> {
        let n_bins = self.n_freq_bins();
        let n_frames = self.check_signal(signal)?;
        let mut power = Array2::<f32>::zeros((n_bins, n_frames)); // [K, T]
        self.for_each_frame(signal, |t, bins| {
            for (dst, src) in power.column_mut(t).iter_mut().zip(bins) {
                *dst = src.norm_sqr();
            }
        });
        Ok(power)
    }

    /// Inverse STFT by weighted overlap-add, with `librosa.istft(spec, hop_length,
    /// win_length, n_fft, window, center, length=length)` semantics: each frame is inverse
    /// transformed, multiplied by the window, overlap-added, divided by the window sum-square
    /// where that exceeds the smallest normal f32, the centre padding is removed, and the
    /// result is cut or zero-padded to exactly `length` samples.
    ///
    /// # Shapes
    /// `spec` `[K, T]` with `K = n_fft / 2 + 1`, `T >= 1` -> `[length]`.
    ///
    /// Errors: [`Error::Shape`] when `K` is wrong or `T == 0`.
    pub fn inverse(&self, spec: ArrayView2<Complex32>, length: usize) -> Result<Vec<f32>> {
        let n_bins = self.n_freq_bins();
        let (got_bins, got_frames) = spec.dim(); // [K, T]
        if got_bins != n_bins || got_frames == 0 {
            return Err(Error::shape(
                "spec",
                format!("[{n_bins}, T] with T >= 1"),
                format!("[{got_bins}, {got_frames}]"),
            ));
        }
        if length == 0 {
            return Ok(Vec::new());
        }
        let n_fft = self.n_fft;
        let start = if self.center { n_fft / 2 } else { 0 };
        let total = start + length;
        // Frames starting at or beyond `total` cannot touch the output.
        let n_frames = got_frames.min(total.div_ceil(self.hop_len));
        let mut signal = vec![0.0f32; total]; // [start + length]
        let win_sum_sq = self.window_sum_square(got_frames, length); // [start + length]
        let mut buf = vec![Complex32::default(); n_fft]; // [n_fft]
        let mut scratch = vec![Complex32::default(); self.inverse_plan.get_inplace_scratch_len()];
        let scale = 1.0 / n_fft as f32;
        for t in 0..n_frames {
            let column = spec.column(t); // [K]
            // Hermitian extension: X[n_fft - k] = conj(X[k]).
            for (k, dst) in buf.iter_mut().enumerate() {
                *dst = if k < n_bins {
                    column[k]
                } else {
                    column[n_fft - k].conj()
                };
            }
            self.inverse_plan.process_with_scratch(&mut buf, &mut scratch);
            let offset = t * self.hop_len;
            let end = (offset + n_fft).min(total);
            let span = end - offset;
            let out = &mut signal[offset..end];
            for n in 0..span {
                // Real part of the full inverse == numpy irfft (imag of DC/Nyquist dropped).
                out[n] += buf[n].re * scale * self.window[n];
            }
        }
        for (y, wss) in signal.iter_mut().zip(&win_sum_sq) {
            if *wss > f32::MIN_POSITIVE {
                *y /= *wss;
            }
        }
        signal.drain(..start);
        Ok(signal)
    }

    /// The inverse STFT's normaliser: the sum of `window^2` over the frames covering each sample
    /// of the centre-padded output, added frame by frame in order, as [`Stft::inverse`] divides
    /// by it.
    ///
    /// # Shapes
    /// returns `[start + length]`, `start` being `n_fft / 2` with `center`, else 0
    pub fn window_sum_square(&self, n_frames: usize, length: usize) -> Vec<f32> {
        let start = if self.center { self.n_fft / 2 } else { 0 };
        let total = start + length;
        let mut wss = vec![0.0f32; total]; // [start + length]
        // Frames starting at or beyond `total` cannot touch the output.
        for t in 0..n_frames.min(total.div_ceil(self.hop_len)) {
            let offset = t * self.hop_len;
            let end = (offset + self.n_fft).min(total);
            for (dst, w) in wss[offset..end].iter_mut().zip(&self.window_sq) {
                *dst += w;
            }
        }
        wss
    }

    /// Returns the frame count for `signal`, or a shape error if it has no frame.
    fn check_signal(&self, signal: &[f32]) -> Result<usize> {
        let n_frames = self.n_frames(signal.len());
        if n_frames == 0 {
            return Err(Error::shape(
                "signal (too short for one stft frame)",
                format!("[S] with S >= {}", self.min_signal_len()),
                format!("[{}]", signal.len()),
            ));
        }
        Ok(n_frames)
    }

    /// The signal with centre padding applied (borrowed when `center` is off).
    ///
    /// # Shapes
    /// `[S]` -> `[S + 2 * (n_fft / 2)]` (centre) or `[S]`.
    fn padded<'a>(&self, signal: &'a [f32]) -> Cow<'a, [f32]> {
        if !self.center {
            return Cow::Borrowed(signal);
        }
        let pad = self.n_fft / 2;
        let len = signal.len();
        let mut out = vec![0.0f32; len + 2 * pad];
        out[pad..pad + len].copy_from_slice(signal);
        if len > pad {
            // numpy "reflect": mirror about the edge samples without repeating them.
            for j in 0..pad {
                out[j] = signal[pad - j];
                out[pad + len + j] = signal[len - 2 - j];
            }
        }
        Cow::Owned(out)
    }

    /// Runs the windowed forward FFT over every frame, calling `sink(t, bins)` with the
    /// `K` one-sided bins of frame `t`. One frame buffer and one scratch buffer are reused.
    ///
    /// # Shapes
    /// `signal` `[S]`; `bins` `[K]`.
    fn for_each_frame(&self, signal: &[f32], mut sink: impl FnMut(usize, &[Complex32])) {
        let n_fft = self.n_fft;
        let n_bins = self.n_freq_bins();
        let n_frames = self.n_frames(signal.len());
        let padded = self.padded(signal);
        let mut buf = vec![Complex32::default(); n_fft]; // [n_fft]
        let mut scratch = vec![Complex32::default(); self.forward_plan.get_inplace_scratch_len()];
        for t in 0..n_frames {
            let offset = t * self.hop_len;
            let frame = &padded[offset..offset + n_fft];
            for ((dst, x), w) in buf.iter_mut().zip(frame).zip(&self.window) {
                *dst = Complex32::new(x * w, 0.0);
            }
            self.forward_plan.process_with_scratch(&mut buf, &mut scratch);
            sink(t, &buf[..n_bins]);
        }
    }
}
