//! Audio file I/O: decoding (symphonia) to mono f32, resampling (rubato), input checks,
//! and atomic 16-bit WAV writing (hound).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rubato::{FftFixedInOut, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::{Error, Result};

/// Peak absolute amplitude below which [`load_mono`] calls a file silent.
pub const SILENCE_PEAK: f32 = 1e-6;

/// Consecutive undecodable packets after which decoding gives up.
const MAX_CONSECUTIVE_BAD_PACKETS: usize = 1000;

/// Decoded audio, mono.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    /// Mono samples, nominally in `[-1, 1]` (float files are passed through unclamped).
    /// Shape `[S]`.
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate_hz: u32,
}

impl Audio {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate_hz == 0 {
            0.0
        } else {
            self.samples.len() as f64 / f64::from(self.sample_rate_hz)
        }
    }
}

/// A [`Error::Decode`] for `path`.
fn decode_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A [`Error::BadAudio`] for `path`.
fn bad_audio(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadAudio {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Decodes WAV/FLAC/OGG(Vorbis)/MP3 with symphonia; mixes all channels to mono by
/// averaging; any sample format (u8, i16, i24, i32, f32, f64) to f32 in `[-1, 1]`.
///
/// Only the first audio track is read. Undecodable packets are skipped; a stream cut short
/// (unexpected end of file) ends decoding and returns what was decoded so far. A file with
/// a valid header and no samples decodes to an empty [`Audio`].
///
/// # Shapes
/// returns `samples` `[S]` (frames of the file; channels are averaged away).
///
/// Errors: [`Error::Io`] when the file cannot be opened or is not a file; [`Error::Decode`]
/// when it is empty, not a recognised audio format, has no audio track or unknown sample
/// rate, or the stream fails in a way that cannot be skipped.
pub fn decode_file(path: &Path) -> Result<Audio> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if meta.len() == 0 {
        return Err(decode_err(path, "file is empty (0 bytes)"));
    }
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // Symphonia should report corrupt input as errors; should a codec panic instead, the
    // file is reported as undecodable rather than taking the caller down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_stream(path, file)))
        .unwrap_or_else(|_| Err(decode_err(path, "the decoder crashed on this file")))
}

/// The body of [`decode_file`] once the file is open.
fn decode_stream(path: &Path, file: fs::File) -> Result<Audio> {
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::IoError(io_err) if io_err.kind() == io::ErrorKind::UnexpectedEof => {
                decode_err(path, "file ends inside the audio header (truncated?)")
            }
            SymError::IoError(io_err) => decode_err(path, format!("cannot read the audio header ({io_err})")),
            other => decode_err(path, format!("not a recognised audio file ({other})")),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| decode_err(path, "no audio track"))?;
    let track_id = track.id;
    let mut sample_rate_hz = track.codec_params.sample_rate;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| decode_err(path, format!("unsupported codec ({e})")))?;

    let mut samples: Vec<f32> = Vec::new();
    let mut interleaved: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => {
                return Err(decode_err(path, "stream changed mid-file (decoder reset required)"));
            }
            Err(e) => return Err(decode_err(path, format!("cannot read packet ({e})"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        if packet.data.is_empty() {
            // A reader at end of file hands out empty packets: the stream is over.
            break;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => {
                bad_packets = 0;
                decoded
            }
            Err(SymError::DecodeError(_)) => {
                bad_packets += 1;
                if bad_packets >= MAX_CONSECUTIVE_BAD_PACKETS {
                    return Err(decode_err(path, "too many consecutive undecodable packets"));
                }
                continue;
            }
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => {
                return Err(decode_err(path, "stream changed mid-file (decoder reset required)"));
            }
            Err(e) => return Err(decode_err(path, format!("cannot decode packet ({e})"))),
        };
        let spec = *decoded.spec();
        let n_frames = decoded.frames();
        if n_frames == 0 {
            continue;
        }
        sample_rate_hz = sample_rate_hz.or(Some(spec.rate));
        let n_channels = spec.channels.count().max(1);
        let capacity = decoded.capacity() as u64;
        let buf = match &mut interleaved {
            Some(buf) if buf.capacity() >= decoded.capacity() * n_channels => buf,
            slot => slot.insert(SampleBuffer::<f32>::new(capacity, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let data = buf.samples(); // [frames * channels], interleaved
        if n_channels == 1 {
            samples.extend_from_slice(data);
        } else {
            let scale = 1.0 / n_channels as f32;
            samples.extend(
                data.chunks_exact(n_channels)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            );
        }
    }
    let sample_rate_hz = match sample_rate_hz {
        Some(rate) if rate > 0 => rate,
        _ => return Err(decode_err(path, "unknown sample rate")),
    };
    Ok(Audio {
        samples,
        sample_rate_hz,
    })
}

/// [`decode_file`] + resample to `target_rate_hz` ([`resample`]; output length
/// `round(len * target / source)`) + checks.
///
/// Errors: those of [`decode_file`]; [`Error::Config`] if `target_rate_hz == 0`;
/// [`Error::BadAudio`] naming the path when the file has no samples, any sample is not
/// finite, fewer than `min_len` samples remain after resampling, or it is silent
/// (peak absolute amplitude below [`SILENCE_PEAK`]).
///
/// # Shapes
/// returns `[S']` with `S' = round(S * target_rate_hz / file_rate_hz) >= min_len`.
pub fn load_mono(path: &Path, target_rate_hz: u32, min_len: usize) -> Result<Vec<f32>> {
    if target_rate_hz == 0 {
        return Err(Error::config("target_rate_hz", "must be positive"));
    }
    let audio = decode_file(path)?;
    if audio.samples.is_empty() {
        return Err(bad_audio(path, "no samples"));
    }
    if let Some((i, x)) = audio.samples.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(bad_audio(path, format!("sample {i} is not finite ({x})")));
    }
    let samples = resample(&audio.samples, audio.sample_rate_hz, target_rate_hz).map_err(|e| {
        decode_err(
            path,
            format!(
                "cannot resample {} hz to {target_rate_hz} hz ({e})",
                audio.sample_rate_hz
            ),
        )
    })?;
    if samples.len() < min_len {
        return Err(bad_audio(
            path,
            format!(
                "too short: {} samples at {target_rate_hz} hz, need at least {min_len}",
                samples.len()
            ),
        ));
    }
    let peak = samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak < SILENCE_PEAK {
        return Err(bad_audio(
            path,
            format!("silent (peak amplitude {peak:e} < {SILENCE_PEAK:e})"),
        ));
    }
    Ok(samples)
}

/// Resamples mono audio from `from_hz` to `to_hz` with rubato's synchronous FFT resampler
/// (band-limited, anti-aliased), compensating its delay so sample `i` of the output lines
/// up with time `i / to_hz` of the input.
///
/// The output has exactly `round(len * to_hz / from_hz)` samples (halves round up). Equal
/// rates or an empty input return a copy.
///
/// # Shapes
/// `samples` `[S]` -> `[round(S * to_hz / from_hz)]`
///
/// Errors: [`Error::Config`] when a rate is 0 or the resampler cannot be built.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>> {
    if from_hz == 0 {
        return Err(Error::config("from_hz", "sample rate must be positive"));
    }
    if to_hz == 0 {
        return Err(Error::config("to_hz", "sample rate must be positive"));
    }
    if from_hz == to_hz || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let out_len =
        ((samples.len() as u128 * u128::from(to_hz) + u128::from(from_hz / 2)) / u128::from(from_hz)) as usize;
    let mut resampler = FftFixedInOut::<f32>::new(from_hz as usize, to_hz as usize, 1024, 1)
        .map_err(|e| Error::config("to_hz", format!("cannot resample {from_hz} hz to {to_hz} hz: {e}")))?;
    let chunk_in = resampler.input_frames_next();
    let chunk_out = resampler.output_frames_next();
    let delay = resampler.output_delay();
    let needed = delay + out_len;
    let mut out = Vec::with_capacity(needed + chunk_out);
    let mut in_buf = vec![vec![0.0f32; chunk_in]]; // [1, chunk_in]
    let mut out_buf = vec![vec![0.0f32; chunk_out]]; // [1, chunk_out]
    let mut pos = 0usize;
    while out.len() < needed {
        let n = (samples.len() - pos).min(chunk_in);
        in_buf[0][..n].copy_from_slice(&samples[pos..pos + n]);
        in_buf[0][n..].fill(0.0);
        pos += n;
        let (_, n_out) = resampler
            .process_into_buffer(&in_buf, &mut out_buf, None)
            .map_err(|e| Error::config("to_hz", format!("resampling failed: {e}")))?;
        out.extend_from_slice(&out_buf[0][..n_out]);
    }
    out.drain(..delay);
    out.truncate(out_len);
    Ok(out)
}

/// Counter making temporary file names unique within the process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Maps a hound error to [`Error::Io`] for `path`.
fn hound_err(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(source) => Error::io(path, source),
        other => Error::io(path, io::Error::other(other.to_string())),
    }
}

/// Writes mono 16-bit PCM WAV atomically (temp file in the same folder + rename); clamps to
/// `[-1, 1]` and scales by 32767 with rounding (NaN becomes 0).
///
/// # Shapes
/// `samples` `[S]`
///
/// Errors: [`Error::Config`] if `sample_rate_hz == 0`; [`Error::Io`] naming `path` when the
/// folder is missing or not writable. On error no partial file is left behind.
pub fn write_wav_i16(path: &Path, samples: &[f32], sample_rate_hz: u32) -> Result<()> {
    if sample_rate_hz == 0 {
        return Err(Error::config("sample_rate_hz", "must be positive"));
    }
    // A WAV data chunk holds at most 4 GiB: 2^31 16-bit samples.
    if samples.len() >= (1usize << 31) - 64 {
        return Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "too many samples for one wav file"),
        ));
    }
    let file_name = path.file_name().ok_or_else(|| {
        Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_wav_i16_to(&tmp, path, samples, sample_rate_hz)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        // Best effort: the temp file may not exist.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes and syncs the WAV at `tmp`; errors name `path`, the file the caller asked for.
fn write_wav_i16_to(tmp: &Path, path: &Path, samples: &[f32], sample_rate_hz: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: sample_rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(tmp, spec).map_err(|e| hound_err(path, e))?;
    {
        let mut w16 = writer.get_i16_writer(samples.len() as u32);
        for &x in samples {
            let x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
            w16.write_sample((x * 32767.0).round() as i16);
        }
        w16.flush().map_err(|e| hound_err(path, e))?;
    }
    writer.finalize().map_err(|e| hound_err(path, e))?;
    fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))?;
    Ok(())
}
