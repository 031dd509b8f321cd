"""emolime's CPU path against the `lime` package (`LimeBase`) on the same CNN in PyTorch (CPU),
the same inputs, band masks, kernel (width 0.25 on cosine distance) and ridge (alpha 1); prints
explanations per second and the ratio emolime / lime for each sample count, and checks agreement.

    python3 benches/peers/lime_peer.py --emolime target/release/emolime --model M.emolime \
        --input CORPUS [--limit 8] [--samples 64,1000] [--batch 256]

The lime side is what a user writes around `LimeBase`: draw masks, build the masked
spectrograms, score them with the model in batches, fit every class with
`explain_instance_with_data`. Timings exclude start-up (emolime's from its own report, decoding
included). Agreement: the same lime code fed emolime's masks gives emolime's coefficients.
"""

import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import torch_cnn  # noqa: E402


def main():
    ap = common.parser(__doc__, "64,1000")
    ap.add_argument("--batch", type=int, default=256, help="spectrograms per model call on the lime side")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())

    from lime.lime_base import LimeBase
    from sklearn.linear_model import Ridge
    from sklearn.metrics.pairwise import cosine_distances

    work = tempfile.TemporaryDirectory(prefix="lime-peer-")
    export = os.path.join(work.name, "export")
    manifest = common.export(args.emolime, args.model, args.input, args.limit, args.bands, export)
    model, inputs, mels = torch_cnn.load_export(export, "cpu")
    classes = inputs["classes"]
    rows = np.asarray(inputs["bands"]["row_band"])
    n_expl = len(mels) * len(classes)
    print(f"cpu: {os.cpu_count()} threads; {len(mels)} utterances x {len(classes)} classes, {args.bands} bands")
    print(f"probabilities, PyTorch rebuild vs emolime: largest difference {torch_cnn.check_probabilities(model, inputs, mels):.2e}")
    width = 0.25
    base = LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / width ** 2)), random_state=args.seed)

    def explain(mel, z):
        """lime's coefficients [C, B] of one utterance for masks z [N, B]."""
        keep_rows = torch.from_numpy(z[:, rows].astype(np.float32))  # [N, M]
        probs = []
        with torch.no_grad():
            for s in range(0, len(z), args.batch):
                x = mel[None] * keep_rows[s:s + args.batch, :, None]  # [n, M, T]
                probs.append(model(x[:, None]).numpy())
        probs = np.concatenate(probs)
        d = cosine_distances(z, np.ones((1, z.shape[1])))[:, 0]
        out = []
        for c in range(len(classes)):
            _, exp, _, _ = base.explain_instance_with_data(
                z, probs, d, c, num_features=z.shape[1], feature_selection="none",
                model_regressor=Ridge(alpha=1.0, fit_intercept=True))
            coef = np.zeros(z.shape[1])
            for band, w in exp:
                coef[band] = w
            out.append(coef)
        return np.asarray(out)

    rng = np.random.default_rng(args.seed)
    table = []
    for spec in args.samples.split(","):
        n = int(spec)
        emo_s, _, _keep, _ = common.run_emolime(args.emolime, args.model, manifest, spec, "cpu")
        _, _, keep, run_dir = common.run_emolime(args.emolime, args.model, manifest, spec, "cpu", ["--save-samples"])
        coefs, masks = common.read_emolime_run(run_dir)
        worst = 0.0
        for i, mel in enumerate(mels):
            got = explain(mel, masks[i])
            for c, name in enumerate(classes):
                worst = max(worst, float(np.abs(got[c] - coefs[(i, name)]).max()))
        keep.cleanup()
        explain(mels[0], rng.integers(0, 2, (n, args.bands)).astype(np.float64))  # warm-up
        t0 = time.perf_counter()
        for mel in mels:
            z = rng.integers(0, 2, (n, args.bands)).astype(np.float64)
            z[0] = 1.0  # lime's first sample is the unperturbed input
            explain(mel, z)
        lime_s = time.perf_counter() - t0
        emo_rate, lime_rate = n_expl / emo_s, n_expl / lime_s
        table.append([spec, f"{emo_rate:.1f}", f"{lime_rate:.1f}", f"{emo_rate / lime_rate:.2f}x", f"{worst:.1e}"])
        print(f"samples {spec}: emolime {emo_s:.3f} s, lime {lime_s:.3f} s; lime on emolime's masks: {worst:.1e}", flush=True)
    common.print_table("explanations per second on the CPU (one utterance x one class each)",
                       ["samples", "emolime expl/s", "lime expl/s", "emolime/lime", "max |coef diff|"], table)


if __name__ == "__main__":
    main()
