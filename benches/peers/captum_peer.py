"""emolime against captum's Lime and KernelShap on the same CNN, the same inputs, the same band
masks (captum's feature mask) and the same sample counts; prints explanations per second and the
ratio emolime / captum for each count, and checks agreement.

    python3 benches/peers/captum_peer.py --emolime target/release/emolime --model M.emolime \
        --input CORPUS [--limit 8] [--samples 64,1000,exhaustive] [--device cuda|cpu]

An explanation is one utterance and one class (captum explains one target per call; emolime
explains every class of an utterance from one set of scored samples). Timings exclude start-up:
emolime's from its own report (the explain loop, decoding included), captum's after one warm-up
call. Checks: the PyTorch rebuild gives emolime's probabilities, and captum Lime fed emolime's
masks (through `perturb_func`) with emolime's kernel and ridge gives emolime's coefficients.
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
    ap = common.parser(__doc__, "64,1000,exhaustive")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="captum's torch device")
    ap.add_argument("--emolime-device", default=None, help="emolime's --device [gpu:0 with cuda, else cpu]")
    ap.add_argument("--perturbations-per-eval", type=int, default=0, help="captum batch [0: all samples at once]")
    ap.add_argument("--no-kernel-shap", action="store_true")
    args = ap.parse_args()
    emo_dev = args.emolime_device or ("gpu:0" if args.device.startswith("cuda") else "cpu")
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count())
    # emolime scores in f32; PyTorch's default TF32 convolutions on NVIDIA would differ by ~1e-4.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import KernelShap, Lime

    work = tempfile.TemporaryDirectory(prefix="captum-peer-")
    export = os.path.join(work.name, "export")
    manifest = common.export(args.emolime, args.model, args.input, args.limit, args.bands, export)
    model, inputs, mels = torch_cnn.load_export(export, args.device)
    classes = inputs["classes"]
    rows = torch_cnn.band_rows(inputs, args.device)
    feature_masks = [rows[None, None, :, None].expand(1, 1, m.shape[0], m.shape[1]) for m in mels]
    n_expl = len(mels) * len(classes)
    print(f"device: torch {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), "
          f"emolime {emo_dev}; {len(mels)} utterances x {len(classes)} classes, {args.bands} bands")
    print(f"probabilities, PyTorch rebuild vs emolime: largest difference {torch_cnn.check_probabilities(model, inputs, mels):.2e}")

    def similarity(_orig, _pert, interp, **_kw):
        return common.lime_weight(interp[0].detach().cpu().numpy())

    lime = Lime(model, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=similarity)
    # The same, fed given masks in order (emolime's), for the agreement check.
    given = {"masks": None}
    lime_given = Lime(model, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=similarity,
                      perturb_func=lambda _x, **_k: next(given["masks"]))
    shap = KernelShap(model)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def time_captum(method, n):
        ppe = args.perturbations_per_eval or n
        call = lambda mel, fm, c: method.attribute(  # noqa: E731
            mel[None, None], baselines=0.0, target=c, feature_mask=fm, n_samples=n,
            perturbations_per_eval=ppe, return_input_shape=False)
        call(mels[0], feature_masks[0], 0)  # warm-up
        sync()
        t0 = time.perf_counter()
        for mel, fm in zip(mels, feature_masks):
            for c in range(len(classes)):
                call(mel, fm, c)
        sync()
        return time.perf_counter() - t0

    table = []
    for spec in args.samples.split(","):
        n = 2 ** args.bands if spec == "exhaustive" else int(spec)
        # emolime, timed (its own report of the explain loop), then once more keeping its masks.
        emo_s, emo_wall, _keep, _ = common.run_emolime(args.emolime, args.model, manifest, spec, emo_dev)
        _, _, keep, run_dir = common.run_emolime(args.emolime, args.model, manifest, spec, emo_dev, ["--save-samples"])
        coefs, masks = common.read_emolime_run(run_dir)
        # Agreement: captum Lime on emolime's masks, kernel and ridge.
        worst = 0.0
        for i, (mel, fm) in enumerate(zip(mels, feature_masks)):
            z = torch.tensor(masks[i], device=args.device)
            for c, name in enumerate(classes):
                given["masks"] = iter(z.split(1))
                got = lime_given.attribute(mel[None, None], baselines=0.0, target=c, feature_mask=fm,
                                           n_samples=z.shape[0], perturbations_per_eval=z.shape[0],
                                           return_input_shape=False)
                diff = np.abs(got[0].detach().cpu().numpy() - coefs[(i, name)]).max()
                worst = max(worst, float(diff))
        keep.cleanup()
        lime_s = time_captum(lime, n)
        shap_s = None if args.no_kernel_shap else time_captum(shap, n)
        emo_rate = n_expl / emo_s
        row = [spec, f"{emo_rate:.1f}", f"{n_expl / lime_s:.1f}", f"{emo_rate / (n_expl / lime_s):.1f}x"]
        if shap_s is not None:
            row += [f"{n_expl / shap_s:.1f}", f"{emo_rate / (n_expl / shap_s):.1f}x"]
        row += [f"{n_expl / emo_wall:.1f}", f"{worst:.1e}"]
        table.append(row)
        print(f"samples {spec}: emolime {emo_s:.3f} s (process {emo_wall:.2f} s), captum Lime {lime_s:.3f} s"
              + ("" if shap_s is None else f", KernelShap {shap_s:.3f} s") + f"; Lime on emolime's masks: {worst:.1e}",
              flush=True)
    header = ["samples", "emolime expl/s", "captum Lime expl/s", "emolime/Lime"]
    if not args.no_kernel_shap:
        header += ["KernelShap expl/s", "emolime/KernelShap"]
    header += ["emolime incl. start-up", "max |coef diff| vs Lime"]
    common.print_table("explanations per second (one utterance x one class each)", header, table)


if __name__ == "__main__":
    main()
