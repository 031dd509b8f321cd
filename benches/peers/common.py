"""Shared by the peer benchmarks, without PyTorch: exporting inputs, emolime runs (timed, and with
their masks saved), the LIME kernel emolime uses, tables. The PyTorch rebuild of emolime's CNN is
in `torch_cnn.py` (only the captum and `lime` peers need it).

Every peer script takes the same model and inputs: `emolime export --model M --input I --limit N
--out DIR` writes weights.safetensors (PyTorch names and layouts), inputs.safetensors (each
utterance's power mel spectrogram, [M, T]), inputs.json (classes, band rows, emolime's
probabilities) and manifest.csv (the same utterances, for `emolime explain`).
"""

import argparse
import json
import math
import os
import subprocess
import tempfile
import time

import numpy as np


def export(binary, model_path, input_path, limit, bands, out):
    """Runs `emolime export` into `out` (on the CPU) and returns the manifest of the exported
    utterances; exits when there is none (the inputs must be labelled)."""
    run_checked([binary, "export", "--model", model_path, "--input", input_path, "--limit", str(limit),
                 "--bands", str(bands), "--out", out, "--device", "cpu"])
    manifest = os.path.join(out, "manifest.csv")
    if not os.path.isfile(manifest):
        raise SystemExit(f"{input_path}: the peers need labelled inputs (a folder of class folders or a manifest)")
    return manifest


def lime_weight(z, kernel_width=0.25):
    """emolime's (and `lime`'s) sample weight: sqrt(exp(-d^2 / w^2)), d the cosine distance
    between the binary mask z [B] and the all-ones mask (1 for the empty mask)."""
    k = float(z.sum())
    d = 1.0 - k / math.sqrt(k * len(z)) if k > 0 else 1.0
    return math.sqrt(math.exp(-(d * d) / (kernel_width * kernel_width)))


def run_emolime(binary, model_path, manifest, samples, device, extra=()):
    """Runs `emolime explain` on the exported manifest; returns (seconds the explain loop took as
    emolime reports it, process wall seconds, run folder (a TemporaryDirectory to keep alive))."""
    tmp = tempfile.TemporaryDirectory(prefix="emolime-peer-")
    out = os.path.join(tmp.name, "run")
    cmd = [binary, "explain", "--model", model_path, "--input", manifest, "--out", out,
           "--samples", str(samples), "--device", device, *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    with open(os.path.join(out, "summary.json")) as f:
        seconds = json.load(f)["report"]["seconds"]
    return seconds, wall, tmp, out


def read_emolime_run(run_dir):
    """(coefficients {(position, class): [B]}, masks {position: [N, B] array}) of a run made with
    --save-samples; positions are the manifest's row order, the export's utterance order."""
    coefs = {}
    with open(os.path.join(run_dir, "explanations.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            coefs[(r["position"], r["class"])] = np.asarray(r["coefficients"], dtype=np.float64)
    masks = {}
    sdir = os.path.join(run_dir, "samples")
    for name in sorted(os.listdir(sdir)):
        with open(os.path.join(sdir, name)) as f:
            s = json.load(f)
        masks[s["position"]] = np.asarray(s["masks"], dtype=np.float32)
    return coefs, masks


def print_table(title, header, rows):
    """A plain fixed-width table on stdout."""
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def run_checked(cmd):
    """Runs a command; exits with its stderr when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return done.stdout


def parser(doc, default_samples):
    """The arguments every peer script takes: the emolime binary, the model, the input, how many
    utterances, the sample counts and the band count."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emolime", default="target/release/emolime", help="the emolime binary")
    ap.add_argument("--model", required=True, help="a CNN model file from `emolime train`")
    ap.add_argument("--input", required=True, help="audio folder or manifest (labelled)")
    ap.add_argument("--limit", type=int, default=8, help="utterances (an even spread)")
    ap.add_argument("--samples", default=default_samples, help="sample counts, comma-separated")
    ap.add_argument("--bands", type=int, default=8)
    return ap
