//! Integration tests for the audio front end: decoding and input checks, resampling,
//! STFT/ISTFT against librosa, and the mel filterbank against librosa.

use std::path::{Path, PathBuf};

use emolime::Error;
use emolime::audio::{
    FrontEndConfig, MelFilterbank, MelScale, Stft, WindowKind, decode_file, hz_to_mel, load_mono, mel_frequencies_hz,
    mel_to_hz, resample, write_wav_i16,
};
use ndarray::Array2;
use rustfft::num_complex::Complex32;

// ---------------------------------------------------------------------------------------
// helpers

/// splitmix64: a tiny deterministic PRNG.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` uniform samples in `[-1, 1)`.
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| ((splitmix64(&mut state) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        .collect()
}

/// `n` samples of `amp * sin(2 pi freq t)` at `rate_hz`.
fn sine(n: usize, freq_hz: f64, rate_hz: u32, amp: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq_hz * i as f64 / f64::from(rate_hz)).sin()) as f32)
        .collect()
}

/// The signal librosa references were computed on:
/// `x = sin(0.1 n) + 0.5 cos(0.37 n) + 0.25 sin(0.001 n^2)`, `n = 0..3000`, float32.
fn librosa_probe_signal() -> Vec<f32> {
    (0..3000)
        .map(|n| {
            let n = n as f64;
            ((0.1 * n).sin() + 0.5 * (0.37 * n).cos() + 0.25 * (0.001 * n * n).sin()) as f32
        })
        .collect()
}

/// Writes a WAV with hound; `write` pushes the samples.
fn write_wav(
    path: &Path,
    channels: u16,
    rate_hz: u32,
    bits: u16,
    format: hound::SampleFormat,
    write: impl FnOnce(&mut hound::WavWriter<std::io::BufWriter<std::fs::File>>),
) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate_hz,
        bits_per_sample: bits,
        sample_format: format,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    write(&mut w);
    w.finalize().expect("finalize wav");
}

/// A 16-bit mono WAV holding `samples` (scaled by 32767).
fn write_i16(path: &Path, samples: &[f32], rate_hz: u32) {
    write_wav(path, 1, rate_hz, 16, hound::SampleFormat::Int, |w| {
        for &x in samples {
            w.write_sample((x * 32767.0).round() as i16).expect("sample");
        }
    });
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn assert_close(got: f32, want: f64, rel: f64, what: &str) {
    let tol = rel * want.abs().max(1e-6);
    assert!(
        (f64::from(got) - want).abs() <= tol,
        "{what}: got {got}, want {want} (tol {tol})"
    );
}

/// Bin with the largest value in column `t` of a `[K, T]` array.
fn peak_bin(power: &Array2<f32>, t: usize) -> usize {
    let col = power.column(t);
    let mut best = 0;
    for k in 0..col.len() {
        if col[k] > col[best] {
            best = k;
        }
    }
    best
}

// ---------------------------------------------------------------------------------------
// config

#[test]
fn default_config_is_valid_and_serde_round_trips() {
    let cfg = FrontEndConfig::default();
    cfg.validate().expect("default config is valid");
    assert_eq!(cfg.n_freq_bins(), 1025);
    let json = serde_json::to_string(&cfg).expect("serialise");
    assert!(json.contains("\"window\":\"hann\""), "{json}");
    assert!(json.contains("\"mel_scale\":\"slaney\""), "{json}");
    let back: FrontEndConfig = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, cfg);
    let partial: FrontEndConfig =
        serde_json::from_str(r#"{"n_mels": 64, "window": "hamming", "mel_scale": "htk"}"#).expect("partial config");
    assert_eq!(partial.n_mels, 64);
    assert_eq!(partial.window, WindowKind::Hamming);
    assert_eq!(partial.mel_scale, MelScale::Htk);
    assert_eq!(partial.hop_len, 512);
    let stft = cfg.stft().expect("stft");
    assert_eq!(stft.n_freq_bins(), 1025);
    let fb = cfg.mel_filterbank().expect("filterbank");
    assert_eq!((fb.n_mels(), fb.n_freq_bins()), (128, 1025));
}

#[test]
fn invalid_configs_are_rejected() {
    let bad: Vec<(&str, FrontEndConfig)> = vec![
        (
            "n_fft",
            FrontEndConfig {
                n_fft: 8,
                win_len: 8,
                ..Default::default()
            },
        ),
        (
            "win_len",
            FrontEndConfig {
                win_len: 4096,
                ..Default::default()
            },
        ),
        (
            "win_len",
            FrontEndConfig {
                win_len: 0,
                ..Default::default()
            },
        ),
        (
            "hop_len",
            FrontEndConfig {
                hop_len: 0,
                ..Default::default()
            },
        ),
        (
            "n_mels",
            FrontEndConfig {
                n_mels: 1,
                ..Default::default()
            },
        ),
        (
            "n_mels",
            FrontEndConfig {
                n_mels: 513,
                ..Default::default()
            },
        ),
        (
            "fmin_hz",
            FrontEndConfig {
                fmin_hz: -1.0,
                ..Default::default()
            },
        ),
        (
            "fmin_hz",
            FrontEndConfig {
                fmin_hz: 8000.0,
                ..Default::default()
            },
        ),
        (
            "fmax_hz",
            FrontEndConfig {
                fmax_hz: 8001.0,
                ..Default::default()
            },
        ),
        (
            "fmax_hz",
            FrontEndConfig {
                fmax_hz: f32::NAN,
                ..Default::default()
            },
        ),
        (
            "sample_rate_hz",
            FrontEndConfig {
                sample_rate_hz: 3999,
                ..Default::default()
            },
        ),
        (
            "sample_rate_hz",
            FrontEndConfig {
                sample_rate_hz: 192_001,
                ..Default::default()
            },
        ),
    ];
    for (field, cfg) in bad {
        match cfg.validate() {
            Err(Error::Config { field: f, .. }) => assert_eq!(f, field, "{cfg:?}"),
            other => panic!("expected config error on {field}, got {other:?}"),
        }
        assert!(cfg.stft().is_err() && cfg.mel_filterbank().is_err());
    }
    // Non-power-of-two FFT sizes are fine.
    FrontEndConfig {
        n_fft: 400,
        win_len: 400,
        hop_len: 160,
        ..Default::default()
    }
    .validate()
    .expect("n_fft 400 is valid");
}

// ---------------------------------------------------------------------------------------
// mel

// Reference values below were produced with librosa 0.11.0 (numpy float64 internally,
// float32 filterbank), e.g.
//   m = librosa.filters.mel(sr=16000, n_fft=2048, n_mels=128, fmax=8000)
//   m.sum(axis=1)[i]; m[10, 30:36]; m.sum()
//   librosa.mel_frequencies(n_mels=130, fmin=0, fmax=8000)
//   librosa.mel_frequencies(n_mels=10, fmin=20, fmax=8000, htk=True)
//   librosa.hz_to_mel(f), librosa.hz_to_mel(f, htk=True)
//   mh = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20, fmax=8000, htk=True)

#[test]
fn hz_to_mel_matches_librosa() {
    let slaney = [
        (0.0, 0.0),
        (440.0, 6.6),
        (1000.0, 15.0),
        (4000.0, 35.163760314616646),
        (8000.0, 45.245640471924965),
    ];
    for (hz, mel) in slaney {
        assert_close(hz_to_mel(hz, MelScale::Slaney), mel, 1e-6, "slaney hz_to_mel");
        let back = mel_to_hz(hz_to_mel(hz, MelScale::Slaney), MelScale::Slaney);
        assert!(
            (back - hz).abs() <= 1e-3 * hz.max(1.0),
            "slaney round trip {hz} -> {back}"
        );
    }
    let htk = [
        (0.0, 0.0),
        (440.0, 549.6386753811499),
        (1000.0, 999.9855371396244),
        (4000.0, 2146.06452750619),
        (8000.0, 2840.023046708319),
    ];
    for (hz, mel) in htk {
        assert_close(hz_to_mel(hz, MelScale::Htk), mel, 1e-6, "htk hz_to_mel");
        let back = mel_to_hz(hz_to_mel(hz, MelScale::Htk), MelScale::Htk);
        assert!((back - hz).abs() <= 1e-3 * hz.max(1.0), "htk round trip {hz} -> {back}");
    }
}

#[test]
fn mel_frequencies_match_librosa() {
    let f = mel_frequencies_hz(130, 0.0, 8000.0, MelScale::Slaney);
    assert_eq!(f.len(), 130);
    let want = [
        (0, 0.0),
        (1, 23.382759933811354),
        (2, 46.76551986762271),
        (15, 350.7413990071703),
        (50, 1190.5651002052061),
        (100, 3975.4295230071825),
        (128, 7809.394617501089),
        (129, 7999.999999999998),
    ];
    for (i, hz) in want {
        assert!(
            (f64::from(f[i]) - hz).abs() <= 1e-5 * hz.max(1.0),
            "slaney[{i}] = {}",
            f[i]
        );
    }
    let f = mel_frequencies_hz(10, 20.0, 8000.0, MelScale::Htk);
    let want = [
        19.99999999999993,
        249.67601441412907,
        552.6174060465349,
        952.1954246667196,
        1479.2366193482635,
        2174.401037677749,
        3091.3190573467255,
        4300.728849657458,
        5895.933670983957,
        8000.000000000002,
    ];
    for (i, hz) in want.iter().enumerate() {
        assert!((f64::from(f[i]) - hz).abs() <= 1e-5 * hz, "htk[{i}] = {}", f[i]);
    }
}

#[test]
fn mel_filterbank_matches_librosa_slaney() {
    let fb = MelFilterbank::new(16000, 2048, 128, 0.0, 8000.0, MelScale::Slaney).expect("fb");
    let w = fb.weights(); // [M, K]
    assert_eq!(w.dim(), (128, 1025));
    let row_sums = [
        (0, 0.12799929082393646),
        (1, 0.12799930572509766),
        (5, 0.12799930572509766),
        (10, 0.12799929082393646),
        (20, 0.12799930572509766),
        (40, 0.12799929082393646),
        (64, 0.12811265885829926),
        (100, 0.12789040803909302),
        (127, 0.1279659867286682),
    ];
    for (m, want) in row_sums {
        assert_close(w.row(m).sum(), want, 1e-5, &format!("row sum {m}"));
    }
    // Row 10 is non-zero exactly on bins 30..=35.
    let row10 = [
        0.0010011836420744658,
        0.015290074050426483,
        0.029578963294625282,
        0.041665248572826385,
        0.027376357465982437,
        0.013087469153106213,
    ];
    for k in 0..1025 {
        let got = w[[10, k]];
        if (30..36).contains(&k) {
            assert_close(got, row10[k - 30], 1e-5, &format!("w[10, {k}]"));
        } else {
            assert_eq!(got, 0.0, "w[10, {k}]");
        }
    }
    // Row 100: support 509..=533, first weight, peak value and position.
    let nz: Vec<usize> = (0..1025).filter(|&k| w[[100, k]] > 0.0).collect();
    assert_eq!((nz[0], nz[nz.len() - 1]), (509, 533));
    assert_close(w[[100, 509]], 0.00011889114830410108, 1e-3, "w[100, 509]");
    assert_close(w[[100, 521]], 0.009956730529665947, 1e-5, "w[100, 521]");
    for (m, k) in [(0, 3), (10, 33), (50, 156), (100, 521), (127, 1000)] {
        let row = w.row(m);
        let argmax = (0..1025).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        assert_eq!(argmax, k, "argmax of row {m}");
    }
    assert_close(w.sum(), 16.3839111328125, 1e-5, "total");
    assert_eq!(fb.n_empty_filters(), 0);
    // Edges are the 130 mel frequencies.
    let edges = fb.edges_hz();
    assert_eq!(edges, mel_frequencies_hz(130, 0.0, 8000.0, MelScale::Slaney).as_slice());
}

#[test]
fn mel_filterbank_matches_librosa_htk() {
    let fb = MelFilterbank::new(16000, 512, 40, 20.0, 8000.0, MelScale::Htk).expect("fb");
    let w = fb.weights(); // [M, K]
    assert_eq!(w.dim(), (40, 257));
    for (m, want) in [
        (0, 0.034260451793670654),
        (1, 0.030642304569482803),
        (20, 0.032101109623909),
        (39, 0.031976960599422455),
    ] {
        assert_close(w.row(m).sum(), want, 1e-5, &format!("htk row sum {m}"));
    }
    let row20 = [
        0.0009263938409276307,
        0.0022355716209858656,
        0.0035447494592517614,
        0.004853927064687014,
        0.0061631049029529095,
        0.005339433439075947,
        0.004107452929019928,
        0.002875472418963909,
        0.001643492141738534,
        0.00041151157347485423,
    ];
    for k in 0..257 {
        let got = w[[20, k]];
        if (56..66).contains(&k) {
            assert_close(got, row20[k - 56], 1e-4, &format!("htk w[20, {k}]"));
        } else {
            assert_eq!(got, 0.0, "htk w[20, {k}]");
        }
    }
    assert_close(w.sum(), 1.2811663150787354, 1e-5, "htk total");
}

#[test]
fn mel_apply_equals_matrix_product_and_checks_shape() {
    let fb = MelFilterbank::new(16000, 512, 40, 0.0, 8000.0, MelScale::Slaney).expect("fb");
    let n_frames = 7;
    let vals = noise(257 * n_frames, 7);
    let power = Array2::from_shape_fn((257, n_frames), |(k, t)| vals[k * n_frames + t].abs()); // [K, T]
    let mel = fb.apply(power.view()).expect("apply"); // [M, T]
    assert_eq!(mel.dim(), (40, n_frames));
    let want = fb.weights().dot(&power); // [M, T]
    for (a, b) in mel.iter().zip(want.iter()) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-3), "{a} vs {b}");
    }
    // Column-major input gives the same result.
    let transposed = power.t().to_owned(); // [T, K]
    let mel_t = fb.apply(transposed.t()).expect("apply on a transposed view");
    assert_eq!(mel_t, mel);
    let wrong = Array2::<f32>::zeros((256, n_frames));
    assert!(matches!(fb.apply(wrong.view()), Err(Error::Shape { .. })));
}

#[test]
fn mel_filterbank_rejects_bad_arguments() {
    for r in [
        MelFilterbank::new(0, 512, 40, 0.0, 8000.0, MelScale::Slaney),
        MelFilterbank::new(16000, 1, 40, 0.0, 8000.0, MelScale::Slaney),
        MelFilterbank::new(16000, 512, 0, 0.0, 8000.0, MelScale::Slaney),
        MelFilterbank::new(16000, 512, 40, 100.0, 50.0, MelScale::Slaney),
        MelFilterbank::new(16000, 512, 40, 0.0, 9000.0, MelScale::Htk),
        MelFilterbank::new(16000, 512, 40, f32::NAN, 8000.0, MelScale::Htk),
    ] {
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
    }
}

// ---------------------------------------------------------------------------------------
// stft

#[test]
fn periodic_windows_match_scipy() {
    // scipy.signal.get_window('hann', 8) = [0, .1464466, .5, .8535534, 1, .8535534, .5, .1464466]
    let hann = WindowKind::Hann.periodic(8);
    let want = [0.0, 0.146_446_6, 0.5, 0.853_553_4, 1.0, 0.853_553_4, 0.5, 0.146_446_6];
    assert!(max_abs_diff(&hann, &want) < 1e-6, "{hann:?}");
    // get_window('hamming', 4) = [0.08, 0.54, 1.0, 0.54]
    let hamming = WindowKind::Hamming.periodic(4);
    assert!(max_abs_diff(&hamming, &[0.08, 0.54, 1.0, 0.54]) < 1e-6, "{hamming:?}");
    assert_eq!(WindowKind::Rectangular.periodic(3), vec![1.0; 3]);
}

#[test]
fn stft_matches_librosa_reflect_hann_short_window() {
    // librosa.stft(x, n_fft=512, hop_length=128, win_length=400, window='hann',
    //              center=True, pad_mode='reflect'), librosa 0.11.0 -> shape (257, 24)
    let x = librosa_probe_signal();
    let stft = Stft::new(512, 400, 128, WindowKind::Hann, true).expect("stft");
    assert_eq!(stft.n_frames(x.len()), 24);
    let s = stft.forward(&x).expect("forward"); // [K, T]
    assert_eq!(s.dim(), (257, 24));
    let want = [
        ((0, 0), (29.934860229492188, 0.0)),
        ((8, 0), (3.853685140609741, 0.0)),
        ((16, 3), (-0.03764957934617996, 0.042761195451021194)),
        ((30, 10), (-35.21202850341797, 34.87013244628906)),
        ((100, 23), (-0.013369254767894745, 0.2219124734401703)),
        ((256, 5), (6.012889116391307e-06, 0.0)),
    ];
    for ((k, t), (re, im)) in want {
        let got = s[[k, t]];
        let err = ((f64::from(got.re) - re).powi(2) + (f64::from(got.im) - im).powi(2)).sqrt();
        assert!(
            err <= 1e-4 + 1e-5 * (re * re + im * im).sqrt(),
            "S[{k}, {t}] = {got}, want {re}+{im}i"
        );
    }
}

#[test]
fn stft_matches_librosa_hamming_no_center() {
    // librosa.stft(x, n_fft=256, hop_length=100, window='hamming', center=False) -> (129, 28)
    let x = librosa_probe_signal();
    let stft = Stft::new(256, 256, 100, WindowKind::Hamming, false).expect("stft");
    let s = stft.forward(&x).expect("forward"); // [K, T]
    assert_eq!(s.dim(), (129, 28));
    let want = [
        ((0, 0), (0.8794230222702026, 0.0)),
        ((4, 2), (67.66442108154297, -12.763705253601074)),
        ((15, 7), (-1.8889169692993164, 34.38602828979492)),
        ((128, 27), (0.001917829504236579, 0.0)),
        ((3, 27), (-1.4088159799575806, 25.544002532958984)),
    ];
    for ((k, t), (re, im)) in want {
        let got = s[[k, t]];
        let err = ((f64::from(got.re) - re).powi(2) + (f64::from(got.im) - im).powi(2)).sqrt();
        assert!(
            err <= 1e-4 + 1e-5 * (re * re + im * im).sqrt(),
            "S[{k}, {t}] = {got}, want {re}+{im}i"
        );
    }
}

#[test]
fn istft_of_modified_spectrum_matches_librosa() {
    // S = librosa.stft(x, n_fft=512, hop_length=128, win_length=400, pad_mode='reflect')
    // mask = (np.arange(257) / 256.0).astype(np.float32)[:, None]
    // y = librosa.istft(S * mask, hop_length=128, win_length=400, n_fft=512, length=2900)
    let x = librosa_probe_signal();
    let stft = Stft::new(512, 400, 128, WindowKind::Hann, true).expect("stft");
    let mut s = stft.forward(&x).expect("forward"); // [K, T]
    for (k, mut row) in s.rows_mut().into_iter().enumerate() {
        let gain = k as f32 / 256.0;
        row.iter_mut().for_each(|v| *v *= gain);
    }
    let y = stft.inverse(s.view(), 2900).expect("inverse"); // [2900]
    assert_eq!(y.len(), 2900);
    let want = [
        (0, -0.023972738534212112),
        (1, 0.022357286885380745),
        (100, 0.018836304545402527),
        (1234, 0.10197653621435165),
        (2000, -0.1428535431623459),
        (2899, -0.005026571918278933),
    ];
    for (i, v) in want {
        assert!((f64::from(y[i]) - v).abs() < 1e-5, "y[{i}] = {}, want {v}", y[i]);
    }
}

#[test]
fn stft_istft_round_trip_reconstructs_random_signal() {
    let cases = [
        (2048, 2048, 512, WindowKind::Hann, 16000),
        (512, 400, 160, WindowKind::Hann, 5000),
        (400, 400, 100, WindowKind::Hamming, 3001),
        (256, 256, 64, WindowKind::Rectangular, 1000),
        (255, 200, 50, WindowKind::Hann, 777),
    ];
    for (i, &(n_fft, win_len, hop_len, window, len)) in cases.iter().enumerate() {
        let x = noise(len, 42 + i as u64);
        let stft = Stft::new(n_fft, win_len, hop_len, window, true).expect("stft");
        let spec = stft.forward(&x).expect("forward"); // [K, T]
        assert_eq!(spec.dim(), (n_fft / 2 + 1, stft.n_frames(len)));
        let y = stft.inverse(spec.view(), len).expect("inverse"); // [S]
        assert_eq!(y.len(), len);
        let err = max_abs_diff(&x, &y);
        assert!(err < 1e-4, "case {i}: max error {err}");
        // Asking for more samples zero-pads past the last frame, fewer truncates.
        let longer = stft.inverse(spec.view(), len + 3 * n_fft).expect("inverse longer");
        assert!(max_abs_diff(&x, &longer[..len]) < 1e-4);
        assert!(longer[len + 2 * n_fft..].iter().all(|&v| v == 0.0));
        let shorter = stft.inverse(spec.view(), len / 2).expect("inverse shorter");
        assert!(max_abs_diff(&x[..len / 2], &shorter) < 1e-4);
    }
    // Without centring the interior (full window overlap) is still exact.
    let x = noise(4096, 9);
    let stft = Stft::new(512, 512, 128, WindowKind::Hann, false).expect("stft");
    let spec = stft.forward(&x).expect("forward");
    let y = stft.inverse(spec.view(), x.len()).expect("inverse");
    assert!(max_abs_diff(&x[512..3584], &y[512..3584]) < 1e-4);
}

#[test]
fn sine_power_peaks_at_its_bin() {
    let stft = FrontEndConfig::default().stft().expect("stft");
    // Bin k of a 2048-point FFT at 16 kHz is k * 7.8125 Hz.
    for (freq_hz, bin) in [(1000.0, 128), (437.5, 56), (3000.0, 384)] {
        let x = sine(16000, freq_hz, 16000, 0.5);
        let p = stft.power(&x).expect("power"); // [K, T]
        assert_eq!(p.dim(), (1025, 32));
        for t in [2, 15, 29] {
            assert_eq!(peak_bin(&p, t), bin, "{freq_hz} hz, frame {t}");
        }
        // Periodic Hann coherent gain is 1/2: |X| = amp * n_fft / 4 = 256.
        let peak = p[[bin, 15]].sqrt();
        assert!((peak - 256.0).abs() < 1.0, "{freq_hz} hz peak magnitude {peak}");
        // forward and power agree.
        let s = stft.forward(&x).expect("forward");
        assert!((s[[bin, 15]].norm_sqr() - p[[bin, 15]]).abs() < 1e-2);
    }
}

#[test]
fn plans_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Stft>();
    assert_send_sync::<MelFilterbank>();
    assert_send_sync::<FrontEndConfig>();
}

#[test]
fn stft_frame_counts_and_short_signals() {
    let c = Stft::new(2048, 2048, 512, WindowKind::Hann, true).expect("stft");
    assert_eq!(c.n_frames(16000), 32); // 1 + 16000 / 512
    assert_eq!(c.n_frames(1), 1);
    assert_eq!(c.n_frames(0), 0);
    // Shorter than n_fft / 2 + 1: zero padding instead of reflect, still one frame.
    let p = c.power(&[0.5; 100]).expect("short centred signal");
    assert_eq!(p.dim(), (1025, 1));
    assert!(matches!(c.power(&[]), Err(Error::Shape { .. })));

    let nc = Stft::new(512, 512, 128, WindowKind::Hann, false).expect("stft");
    assert_eq!(nc.n_frames(511), 0);
    assert_eq!(nc.n_frames(512), 1);
    assert_eq!(nc.n_frames(1000), 4);
    match nc.forward(&[0.1; 300]) {
        Err(e @ Error::Shape { .. }) => assert!(e.to_string().contains("too short"), "{e}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    // Inverse shape checks.
    let wrong = Array2::<Complex32>::zeros((100, 3));
    assert!(matches!(nc.inverse(wrong.view(), 10), Err(Error::Shape { .. })));
    let empty = Array2::<Complex32>::zeros((257, 0));
    assert!(matches!(nc.inverse(empty.view(), 10), Err(Error::Shape { .. })));
    // Bad plans.
    assert!(matches!(
        Stft::new(512, 600, 128, WindowKind::Hann, true),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        Stft::new(512, 512, 0, WindowKind::Hann, true),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        Stft::new(1, 1, 1, WindowKind::Hann, true),
        Err(Error::Config { .. })
    ));
}

#[test]
fn log_mel_pipeline_has_expected_shape() {
    let cfg = FrontEndConfig::default();
    let stft = cfg.stft().expect("stft");
    let fb = cfg.mel_filterbank().expect("fb");
    let x = sine(24000, 1000.0, 16000, 0.3);
    let p = stft.power(&x).expect("power"); // [K, T]
    let mel = fb.apply(p.view()).expect("mel"); // [M, T]
    assert_eq!(mel.dim(), (128, 1 + 24000 / 512));
    // 1 kHz lands in the band whose peak is nearest 1 kHz.
    let edges = fb.edges_hz();
    let col = mel.column(10);
    let best = (0..128).fold(0, |b, m| if col[m] > col[b] { m } else { b });
    assert!(
        (edges[best + 1] - 1000.0).abs() < 40.0,
        "band {best} peaks at {}",
        edges[best + 1]
    );
}

// ---------------------------------------------------------------------------------------
// decoding

#[test]
fn decodes_16_bit_mono_exactly() {
    let dir = tmp();
    let path = dir.path().join("a.wav");
    let x = sine(4000, 440.0, 16000, 0.8);
    write_i16(&path, &x, 16000);
    let audio = decode_file(&path).expect("decode");
    assert_eq!(audio.sample_rate_hz, 16000);
    assert_eq!(audio.samples.len(), 4000);
    let want: Vec<f32> = x.iter().map(|v| (v * 32767.0).round() / 32768.0).collect();
    assert!(max_abs_diff(&audio.samples, &want) < 1e-6);
    let loaded = load_mono(&path, 16000, 1000).expect("load");
    assert_eq!(loaded, audio.samples);
}

#[test]
fn decodes_8_bit_wav() {
    let dir = tmp();
    let path = dir.path().join("u8.wav");
    let x = sine(2000, 300.0, 8000, 0.9);
    write_wav(&path, 1, 8000, 8, hound::SampleFormat::Int, |w| {
        for &v in &x {
            w.write_sample((v * 127.0).round() as i8).expect("sample");
        }
    });
    let audio = decode_file(&path).expect("decode 8-bit");
    assert_eq!((audio.sample_rate_hz, audio.samples.len()), (8000, 2000));
    assert!(max_abs_diff(&audio.samples, &x) < 2.0 / 128.0);
}

#[test]
fn decodes_24_bit_wav() {
    let dir = tmp();
    let path = dir.path().join("i24.wav");
    let x = sine(3000, 500.0, 22050, 0.7);
    write_wav(&path, 1, 22050, 24, hound::SampleFormat::Int, |w| {
        for &v in &x {
            w.write_sample((f64::from(v) * 8_388_607.0).round() as i32)
                .expect("sample");
        }
    });
    let audio = decode_file(&path).expect("decode 24-bit");
    assert_eq!((audio.sample_rate_hz, audio.samples.len()), (22050, 3000));
    assert!(max_abs_diff(&audio.samples, &x) < 1e-6);
}

#[test]
fn decodes_32_bit_float_wav() {
    let dir = tmp();
    let path = dir.path().join("f32.wav");
    let x = noise(3000, 3);
    write_wav(&path, 1, 16000, 32, hound::SampleFormat::Float, |w| {
        for &v in &x {
            w.write_sample(v).expect("sample");
        }
    });
    let audio = decode_file(&path).expect("decode f32");
    assert_eq!(audio.samples, x);
}

#[test]
fn stereo_is_averaged_to_mono() {
    let dir = tmp();
    let path = dir.path().join("stereo.wav");
    let left = noise(2000, 11);
    let right = noise(2000, 12);
    write_wav(&path, 2, 16000, 32, hound::SampleFormat::Float, |w| {
        for (l, r) in left.iter().zip(&right) {
            w.write_sample(*l).expect("left");
            w.write_sample(*r).expect("right");
        }
    });
    let audio = decode_file(&path).expect("decode stereo");
    assert_eq!(audio.samples.len(), 2000);
    let want: Vec<f32> = left.iter().zip(&right).map(|(l, r)| (l + r) * 0.5).collect();
    assert!(max_abs_diff(&audio.samples, &want) < 1e-6);
}

#[test]
fn resamples_48k_keeping_a_1khz_sine_at_1khz() {
    let dir = tmp();
    let path = dir.path().join("48k.wav");
    let x = sine(48000, 1000.0, 48000, 0.5);
    write_i16(&path, &x, 48000);
    let y = load_mono(&path, 16000, 2048).expect("load 48k");
    assert_eq!(y.len(), 16000);
    let p = FrontEndConfig::default()
        .stft()
        .expect("stft")
        .power(&y)
        .expect("power");
    for t in [3, 16, 28] {
        assert_eq!(peak_bin(&p, t), 128, "frame {t}: 1 khz is bin 128 at 16 khz");
    }
    // Delay is compensated: the output lines up with the ideal 16 kHz sine.
    let want = sine(16000, 1000.0, 16000, 0.5);
    let err = max_abs_diff(&y[200..15800], &want[200..15800]);
    assert!(err < 5e-3, "max error vs ideal sine {err}");
}

#[test]
fn resample_lengths_are_rounded_and_rates_checked() {
    let x = noise(44100, 5);
    assert_eq!(resample(&x, 44100, 16000).expect("44.1k").len(), 16000);
    assert_eq!(resample(&x[..1001], 44100, 16000).expect("odd").len(), 363); // 363.17
    assert_eq!(resample(&x[..1000], 22050, 16000).expect("up").len(), 726); // 725.62
    assert_eq!(resample(&x[..7], 8000, 16000).expect("tiny").len(), 14);
    assert_eq!(resample(&x[..10], 16000, 16000).expect("same"), x[..10].to_vec());
    assert!(resample(&[], 48000, 16000).expect("empty").is_empty());
    assert!(matches!(resample(&x, 0, 16000), Err(Error::Config { .. })));
    assert!(matches!(resample(&x, 16000, 0), Err(Error::Config { .. })));
}

#[test]
fn missing_file_is_io_error() {
    let dir = tmp();
    let path = dir.path().join("nope.wav");
    let err = load_mono(&path, 16000, 1).expect_err("missing");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.wav"), "{err}");
    assert!(
        matches!(decode_file(dir.path()), Err(Error::Io { .. })),
        "a folder is not a file"
    );
}

#[test]
fn empty_file_is_decode_error() {
    let dir = tmp();
    let path = dir.path().join("empty.wav");
    std::fs::write(&path, b"").expect("write");
    let err = load_mono(&path, 16000, 1).expect_err("empty");
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("empty.wav"), "{err}");
}

#[test]
fn text_file_is_decode_error() {
    let dir = tmp();
    let path = dir.path().join("notes.wav");
    std::fs::write(&path, "this is not audio, just some text\n".repeat(50)).expect("write");
    let err = decode_file(&path).expect_err("text");
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.wav"), "{err}");
}

#[test]
fn garbage_after_riff_header_does_not_panic() {
    let dir = tmp();
    let path = dir.path().join("junk.wav");
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVE".to_vec();
    let mut state = 99;
    bytes.extend((0..500).map(|_| splitmix64(&mut state) as u8));
    std::fs::write(&path, bytes).expect("write");
    assert!(load_mono(&path, 16000, 1).is_err());
}

#[test]
fn truncated_wav_decodes_available_part() {
    let dir = tmp();
    let path = dir.path().join("cut.wav");
    let x = sine(16000, 440.0, 16000, 0.5);
    write_i16(&path, &x, 16000);
    let full_len = std::fs::metadata(&path).expect("meta").len();
    // Keep the 44-byte header and 5000.5 samples: the header still claims 16000.
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(44 + 10_001).expect("truncate");
    drop(file);
    assert!(full_len > 44 + 10_001);
    let audio = decode_file(&path).expect("truncated wav decodes");
    assert!(
        (4000..=5000).contains(&audio.samples.len()),
        "decoded {} samples",
        audio.samples.len()
    );
    let want: Vec<f32> = x.iter().map(|v| (v * 32767.0).round() / 32768.0).collect();
    let n = audio.samples.len();
    assert!(max_abs_diff(&audio.samples, &want[..n]) < 1e-6);
    // Header only: decodes to nothing, which load_mono rejects.
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(44).expect("truncate");
    drop(file);
    let err = load_mono(&path, 16000, 1).expect_err("no samples");
    assert!(matches!(err, Error::BadAudio { .. } | Error::Decode { .. }), "{err:?}");
}

#[test]
fn silent_wav_is_bad_audio() {
    let dir = tmp();
    let path = dir.path().join("silence.wav");
    write_i16(&path, &[0.0; 8000], 16000);
    let err = load_mono(&path, 16000, 1).expect_err("silent");
    match &err {
        Error::BadAudio { path: p, reason } => {
            assert_eq!(p, &path);
            assert!(reason.contains("silent"), "{reason}");
        }
        other => panic!("expected bad audio, got {other:?}"),
    }
}

#[test]
fn nan_float_wav_is_bad_audio() {
    let dir = tmp();
    let path = dir.path().join("nan.wav");
    let mut x = noise(4000, 21);
    x[1234] = f32::NAN;
    write_wav(&path, 1, 16000, 32, hound::SampleFormat::Float, |w| {
        for &v in &x {
            w.write_sample(v).expect("sample");
        }
    });
    let err = load_mono(&path, 16000, 1).expect_err("nan");
    assert!(
        matches!(&err, Error::BadAudio { reason, .. } if reason.contains("not finite")),
        "{err:?}"
    );
    assert!(err.to_string().contains("nan.wav"), "{err}");
}

#[test]
fn file_shorter_than_one_frame_is_rejected() {
    let dir = tmp();
    let path = dir.path().join("short.wav");
    write_i16(&path, &noise(100, 4), 16000);
    let err = load_mono(&path, 16000, 2048).expect_err("short");
    assert!(
        matches!(&err, Error::BadAudio { reason, .. } if reason.contains("too short")),
        "{err:?}"
    );
    // With min_len 0 it loads; a non-centred STFT then refuses it with a shape error.
    let x = load_mono(&path, 16000, 0).expect("load");
    assert_eq!(x.len(), 100);
    let stft = Stft::new(2048, 2048, 512, WindowKind::Hann, false).expect("stft");
    assert!(matches!(stft.power(&x), Err(Error::Shape { .. })));
}

// ---------------------------------------------------------------------------------------
// writing

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

#[test]
fn write_wav_i16_round_trips_and_clamps() {
    let dir = tmp();
    let path = dir.path().join("out.wav");
    let x = vec![0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, f32::NAN, 0.25];
    write_wav_i16(&path, &x, 22050).expect("write");
    assert_eq!(dir_entries(dir.path()), vec![path.clone()], "no temp file left");
    let mut reader = hound::WavReader::open(&path).expect("open");
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, 22050, 16));
    let got: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("sample")).collect();
    assert_eq!(got, vec![0, 16384, -16384, 32767, -32767, 32767, -32767, 0, 8192]);
    // Overwrites atomically.
    write_wav_i16(&path, &[0.1; 10], 16000).expect("overwrite");
    assert_eq!(decode_file(&path).expect("decode").samples.len(), 10);
    // Missing folder: io error naming the file, nothing left behind.
    let bad = dir.path().join("missing").join("x.wav");
    let err = write_wav_i16(&bad, &x, 16000).expect_err("missing folder");
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("x.wav"),
        "{err}"
    );
    assert!(matches!(write_wav_i16(&path, &x, 0), Err(Error::Config { .. })));
}

/// A 400-sample mono 16-bit FLAC at 8 kHz holding `round(16384 * sin(2 pi 1000 t))`,
/// written by libFLAC 1.4.3 via python soundfile:
/// `sf.write(p, 0.5 * np.sin(2 * np.pi * 1000 * np.arange(400) / 8000), 8000, subtype="PCM_16")`.
const TINY_FLAC_HEX: &[&str] = &[
    "664c6143000000221000100000019900019901f400f00000019066d9e6295ae46a5e9973e32623a02e78",
    "84000028200000007265666572656e6365206c6962464c414320312e342e332032303233303632330000",
    "0000fff8740800018f244e00002d4140002d410000d2bfc000d2bfb41a95202e3dd997e6b98cbfb680d5",
    "54d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85",
    "668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d",
    "97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668",
    "f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97b",
    "d85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f55",
    "54d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85",
    "668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d",
    "97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668",
    "f5554d97bd85668f5554d97bd85668f5554d97bd85668f5554d97bd85668f4ea30",
];

fn unhex(lines: &[&str]) -> Vec<u8> {
    let hex: String = lines.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn decodes_flac() {
    let dir = tmp();
    let path = dir.path().join("tiny.flac");
    let bytes = unhex(TINY_FLAC_HEX);
    std::fs::write(&path, &bytes).expect("write");
    let audio = decode_file(&path).expect("decode flac");
    assert_eq!((audio.sample_rate_hz, audio.samples.len()), (8000, 400));
    let want: Vec<f32> = (0..400)
        .map(|i| (16384.0 * (2.0 * std::f64::consts::PI * i as f64 / 8.0).sin()).round() as f32 / 32768.0)
        .collect();
    assert!(max_abs_diff(&audio.samples, &want) < 1e-6);
    // Cut inside the header: a decode error, not a panic.
    std::fs::write(&path, &bytes[..20]).expect("write");
    assert!(matches!(decode_file(&path), Err(Error::Decode { .. })));
}
