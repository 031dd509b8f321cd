"""The cost of EmoLIME's reference pipeline per explanation, against emolime explaining an eGeMAPS
classifier on the CPU path.

    python3 benches/peers/emolime_reference.py --emolime target/release/emolime \
        --model FEATURES.json --input CORPUS [--limit 2] [--samples 64] [--bands 8] \
        [--pipeline paper|stft] [--train MANIFEST] [--griffin-lim-iters 32] [--emolime-samples N]

FEATURES.json is an eGeMAPS classifier from `emolime train --features egemaps`; emolime explains
it with `--samples N --device cpu`, resynthesising all samples from band signals with one matrix
product and extracting its own eGeMAPS on all cores. The reference pipeline, per perturbed
sample, is one of:

- `paper` (the default; what the EmoLIME authors' code does, needs librosa): power mel
  spectrogram (128 Slaney mels, n_fft 2048, hop 512, fmax 8 kHz), the dropped bands' mel rows
  zeroed (--bands equal groups of rows), mel -> STFT by librosa's NNLS, Griffin-Lim (32
  iterations, random phase start), a temporary WAV file, openSMILE ComParE_2016 functionals
  (6,373), standardised into an RBF `SVC(probability=True)` trained here on the ComParE
  functionals of --train (default: --input; a CSV with `path` and `label` or `emotion` columns).
- `stft` (a cheaper lower bound; FEATURES.json must have a logreg head): the dropped bands
  (emolime's band edges) zeroed in the magnitude STFT, Griffin-Lim (32 iterations from zero phase,
  scipy), openSMILE eGeMAPS v02 on the samples in memory, the same standardisation and logistic
  regression as FEATURES.json.

Then `lime`'s ridge on every class. The two sides do not give the same numbers (different
resynthesis, extractors and classifiers): this compares cost only.
"""

import atexit
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
from scipy.io import wavfile
from scipy.signal import istft, resample_poly, stft

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

N_FFT, HOP, RATE = 2048, 512, 16000


def griffin_lim(mag, n_iter, length):
    """A waveform whose STFT magnitude approaches `mag` [K, T] (zero initial phase)."""
    spec = mag.astype(np.complex128)
    x = None
    for _ in range(n_iter):
        _, x = istft(spec, fs=RATE, nperseg=N_FFT, noverlap=N_FFT - HOP, nfft=N_FFT)
        x = x[:length]
        _, _, rebuilt = stft(x, fs=RATE, nperseg=N_FFT, noverlap=N_FFT - HOP, nfft=N_FFT)
        rebuilt = rebuilt[:, : mag.shape[1]]
        spec = mag * np.exp(1j * np.angle(rebuilt))
    _, x = istft(spec, fs=RATE, nperseg=N_FFT, noverlap=N_FFT - HOP, nfft=N_FFT)
    return x[:length]


def load(path):
    """Mono float samples at 16 kHz of a WAV file (integer PCM scaled to [-1, 1])."""
    rate, raw = wavfile.read(path)
    x = raw.astype(np.float64)
    if raw.dtype.kind in "iu":
        x /= float(np.iinfo(raw.dtype).max) + 1.0
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x if rate == RATE else resample_poly(x, RATE, rate)


def read_manifest(path):
    """(paths, labels) of a CSV manifest with a `path` column and a `label` or `emotion` column;
    relative paths are resolved against the manifest's folder."""
    import csv
    if not path.endswith(".csv"):
        raise SystemExit(f"{path}: --train (or --input in the paper pipeline) must be a CSV manifest")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0]:
        raise SystemExit(f"{path}: no `path` column")
    key = "label" if "label" in rows[0] else "emotion" if "emotion" in rows[0] else None
    if key is None:
        raise SystemExit(f"{path}: no `label` or `emotion` column")
    root = os.path.dirname(os.path.abspath(path))
    return [os.path.join(root, r["path"]) for r in rows], [r[key] for r in rows]


def paper_classifier(train_path):
    """(classify(wave) -> probabilities [K], K) for the paper's black box: openSMILE ComParE_2016
    functionals of a temporary WAV file, standardised, into an RBF SVC with probability outputs
    trained on the ComParE functionals of the manifest `train_path`."""
    import opensmile
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                            feature_level=opensmile.FeatureLevel.Functionals)
    paths, labels = read_manifest(train_path)
    t0 = time.perf_counter()
    feats = np.stack([smile.process_file(p).to_numpy()[0] for p in paths])
    scaler = StandardScaler().fit(feats)
    try:
        with warnings.catch_warnings():  # scikit-learn 1.9 deprecates probability=True; the paper used it
            warnings.simplefilter("ignore", FutureWarning)
            svc = SVC(kernel="rbf", probability=True, random_state=0).fit(scaler.transform(feats), labels)
    except ValueError as e:
        raise SystemExit(f"{train_path}: cannot train the reference SVC ({e}); give --train a larger manifest")
    print(f"reference SVC: {len(paths)} files of {train_path}, {len(svc.classes_)} classes, "
          f"ComParE_2016 + training {time.perf_counter() - t0:.1f} s", flush=True)
    wav = tempfile.NamedTemporaryFile(suffix=".wav", delete=False)
    wav.close()
    atexit.register(os.unlink, wav.name)

    def classify(wave):
        wavfile.write(wav.name, RATE, wave.astype(np.float32))
        return svc.predict_proba(scaler.transform(smile.process_file(wav.name).to_numpy()))[0]

    return classify, len(svc.classes_)


def logreg_classifier(model_path, model):
    """(classify(wave) -> probabilities [K], K) for the `stft` pipeline: openSMILE eGeMAPS v02
    functionals into FEATURES.json's scaler and logistic regression."""
    import opensmile

    if model.get("head", {}).get("kind") != "logreg":
        raise SystemExit(f"{model_path}: the stft pipeline needs a logreg head "
                         "(`emolime train --features egemaps --head logreg`)")
    k, d = model["head"]["n_classes"], model["head"]["n_features"]
    coef = np.asarray(model["head"]["coef"]).reshape(k, d)
    intercept = np.asarray(model["head"]["intercept"])
    mean, scale = np.asarray(model["scaler"]["mean"]), np.asarray(model["scaler"]["scale"])
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    if list(smile.feature_names) != model["feature_names"]:
        raise SystemExit("openSMILE's eGeMAPS v02 names differ from the model's")

    def classify(wave):
        feats = smile.process_signal(wave.astype(np.float32), RATE).to_numpy()[0]
        z = (feats - mean) / np.where(scale > 0, scale, 1.0) @ coef.T + intercept
        z = np.exp(z - z.max())
        return z / z.sum()

    return classify, k


def main():
    ap = common.parser(__doc__, "64")
    ap.add_argument("--pipeline", choices=["paper", "stft"], default="paper",
                    help="the reference: the authors' pipeline, or the cheaper STFT + eGeMAPS lower bound")
    ap.add_argument("--train", default=None,
                    help="paper pipeline: manifest the reference SVC is trained on (default: --input)")
    ap.add_argument("--griffin-lim-iters", type=int, default=32)
    ap.add_argument("--emolime-samples", type=int, default=None,
                    help="samples per explanation for emolime (default: --samples); the per-sample "
                         "ratio then compares the reference at --samples with emolime at this count")
    ap.set_defaults(limit=2)
    args = ap.parse_args()
    from lime.lime_base import LimeBase
    from sklearn.linear_model import Ridge
    from sklearn.metrics.pairwise import cosine_distances

    with open(args.model) as f:
        model = json.load(f)
    if args.pipeline == "paper":
        try:
            import librosa
        except ImportError:
            raise SystemExit("the paper pipeline needs librosa (`pip install librosa`), or use --pipeline stft")
        if 128 % args.bands != 0:
            raise SystemExit(f"--bands {args.bands}: the paper pipeline splits 128 mel rows into equal groups")
        classify, k = paper_classifier(args.train or args.input)
    else:
        classify, k = logreg_classifier(args.model, model)

    # The utterances: every input of the (labelled) manifest or folder, an even spread.
    work = tempfile.TemporaryDirectory(prefix="reference-peer-")
    run = os.path.join(work.name, "probe")
    common.run_checked([args.emolime, "explain", "--model", args.model, "--input", args.input, "--out", run,
                        "--samples", "16", "--bands", str(args.bands), "--device", "cpu", "--quiet"])
    records = [json.loads(line) for line in open(os.path.join(run, "explanations.jsonl"))]
    paths = list(dict.fromkeys(r["path"] for r in records))
    step = max(1, len(paths) // args.limit)
    paths = paths[::step][: args.limit]
    edges = records[0]["band_edges_hz"]
    manifest = os.path.join(work.name, "subset.csv")
    labels = {r["path"]: (r.get("label") or records[0]["class"]) for r in records}
    with open(manifest, "w") as f:
        f.write("path,label\n" + "".join(f"{p},{labels[p]}\n" for p in paths))
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / RATE)
    bin_band = np.clip(np.searchsorted(edges, freqs, side="right") - 1, 0, len(edges) - 2)
    n_bands = len(edges) - 1
    width = 0.25
    base = LimeBase(lambda dist: np.sqrt(np.exp(-(dist ** 2) / width ** 2)), random_state=0)
    rng = np.random.default_rng(0)
    n = int(args.samples)

    t0 = time.perf_counter()
    per_sample = []
    per_utt = []
    for path in paths:
        x = load(path)
        if args.pipeline == "paper":
            mel = librosa.feature.melspectrogram(y=x, sr=RATE, n_fft=N_FFT, hop_length=HOP, n_mels=128,
                                                 fmax=RATE / 2, power=2.0)

            def resynthesise(mask):
                rows = np.repeat(mask, 128 // n_bands)[:, None]
                return librosa.feature.inverse.mel_to_audio(mel * rows, sr=RATE, n_fft=N_FFT, hop_length=HOP,
                                                            power=2.0, fmax=RATE / 2,
                                                            n_iter=args.griffin_lim_iters, length=len(x))
        else:
            _, _, spec = stft(x, fs=RATE, nperseg=N_FFT, noverlap=N_FFT - HOP, nfft=N_FFT)
            mag = np.abs(spec)

            def resynthesise(mask):
                return griffin_lim(mag * mask[bin_band][:, None], args.griffin_lim_iters, len(x))
        z = rng.integers(0, 2, (n, n_bands)).astype(np.float64)
        z[0] = 1.0
        probs = []
        for mask in z:
            ts = time.perf_counter()
            probs.append(classify(resynthesise(mask)))
            per_sample.append(time.perf_counter() - ts)
        per_utt.append((path, len(x) / RATE, np.mean(per_sample[-n:])))
        probs = np.asarray(probs)
        dist = cosine_distances(z, np.ones((1, n_bands)))[:, 0]
        for c in range(k):
            base.explain_instance_with_data(z, probs, dist, c, num_features=n_bands, feature_selection="none",
                                            model_regressor=Ridge(alpha=1.0, fit_intercept=True))
    ref_s = time.perf_counter() - t0
    n_emo = args.emolime_samples or n
    emo_s, emo_wall, _keep, _ = common.run_emolime(args.emolime, args.model, manifest, n_emo, "cpu",
                                                    ["--bands", str(args.bands)])
    n_expl = len(paths) * k
    ref_ms = 1000 * np.mean(per_sample)
    emo_ms = 1000 * emo_wall / (len(paths) * n_emo)
    common.print_table(
        f"{len(paths)} utterances x {k} classes, {n} samples, {n_bands} bands, CPU "
        f"({os.cpu_count()} threads); reference per sample {1000 * np.mean(per_sample):.1f} ms "
        f"({args.pipeline} pipeline, Griffin-Lim {args.griffin_lim_iters} iterations)",
        ["pipeline", "seconds", "s per explanation", "explanations/s"],
        [[f"EmoLIME reference ({n} samples)", f"{ref_s:.2f}", f"{ref_s / n_expl:.3f}", f"{n_expl / ref_s:.2f}"],
         [f"emolime ({n_emo} samples)", f"{emo_s:.2f}", f"{emo_s / n_expl:.3f}", f"{n_expl / emo_s:.2f}"],
         ["ratio emolime / reference", "", "", f"{ref_s / emo_s:.1f}x"]])
    print(f"per sample: reference {ref_ms:.1f} ms ({n} samples per utterance), emolime {emo_ms:.2f} ms "
          f"({n_emo} samples, process wall time {emo_wall:.2f} s): {ref_ms / emo_ms:.0f}x")
    # Per utterance: emolime run alone on each (its process start-up counted against it).
    rows = []
    for i, (path, seconds, ref_one) in enumerate(per_utt):
        one = os.path.join(work.name, f"one{i}.csv")
        with open(one, "w") as f:
            f.write(f"path,label\n{path},{labels[path]}\n")
        _, wall_one, _k, _ = common.run_emolime(args.emolime, args.model, one, n_emo, "cpu",
                                                ["--bands", str(args.bands)])
        emo_one = wall_one / n_emo
        rows.append([os.path.basename(path), f"{seconds:.2f}", f"{1000 * ref_one:.1f}", f"{1000 * emo_one:.2f}",
                     f"{ref_one / emo_one:.0f}x"])
    common.print_table("per sample, each utterance alone (emolime: process wall time / samples)",
                       ["utterance", "seconds", "reference ms", "emolime ms", "ratio"], rows)


if __name__ == "__main__":
    main()
