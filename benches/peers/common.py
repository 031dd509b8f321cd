"""Shared by the peer benchmarks: emolime's exported CNN rebuilt in PyTorch, the exported inputs,
emolime runs (timed, and with their masks saved), and the LIME kernel emolime uses.

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
import torch
from safetensors import safe_open
from torch import nn


class SerCnn(nn.Module):
    """emolime's log-mel CNN (src/model/cnn.rs), layer for layer."""

    def __init__(self, meta, freq_groups):
        super().__init__()
        c1, c2, c3 = meta["channels"]
        self.db_mean = float(meta["db_mean"])
        self.db_std = float(meta["db_std"])
        self.conv1 = nn.Conv2d(1, c1, 3, stride=(2, 1), padding=1)
        self.bn1 = nn.BatchNorm2d(c1, eps=1e-5)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding="same")
        self.bn2 = nn.BatchNorm2d(c2, eps=1e-5)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding="same")
        self.bn3 = nn.BatchNorm2d(c3, eps=1e-5)
        self.pool = nn.MaxPool2d(2)
        self.head_pool = nn.AdaptiveAvgPool2d((freq_groups, 1))
        self.fc = nn.Linear(c3 * freq_groups, len(meta["classes"]))

    def forward(self, power_mel):
        """[N, 1, M, T] power mel -> [N, C] logits."""
        x = 10.0 * torch.log10(power_mel + 1e-10)
        x = (x - self.db_mean) / self.db_std
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = torch.relu(self.bn3(self.conv3(x)))
        x = self.head_pool(x)
        return self.fc(x.flatten(1))


class Probs(nn.Module):
    """Softmax over a network's logits: the output emolime explains."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


def export(binary, model_path, input_path, limit, bands, out):
    """Runs `emolime export` into `out` (on the CPU) and returns the manifest of the exported
    utterances; exits when there is none (the inputs must be labelled)."""
    run_checked([binary, "export", "--model", model_path, "--input", input_path, "--limit", str(limit),
                 "--bands", str(bands), "--out", out, "--device", "cpu"])
    manifest = os.path.join(out, "manifest.csv")
    if not os.path.isfile(manifest):
        raise SystemExit(f"{input_path}: the peers need labelled inputs (a folder of class folders or a manifest)")
    return manifest


def load_export(export_dir, device):
    """(model returning probabilities, inputs.json, [mel [M, T] tensors]) from an export folder."""
    with open(os.path.join(export_dir, "model.json")) as f:
        info = json.load(f)
    net = SerCnn(info["meta"], info["freq_groups"])
    state = {}
    with safe_open(os.path.join(export_dir, "weights.safetensors"), "pt") as f:
        for k in f.keys():
            state[k] = f.get_tensor(k)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{export_dir}: weights do not fit the network: missing {missing}, unexpected {unexpected}")
    model = Probs(net).to(device).eval()
    with open(os.path.join(export_dir, "inputs.json")) as f:
        inputs = json.load(f)
    mels = []
    with safe_open(os.path.join(export_dir, "inputs.safetensors"), "pt") as f:
        for i in range(len(inputs["utterances"])):
            mels.append(f.get_tensor(f"mel.{i}").to(device))
    return model, inputs, mels


def check_probabilities(model, inputs, mels):
    """Largest |p_torch - p_emolime| over the exported utterances and classes."""
    worst = 0.0
    with torch.no_grad():
        for mel, u in zip(mels, inputs["utterances"]):
            p = model(mel[None, None]).cpu().numpy()[0]
            worst = max(worst, float(np.abs(p - np.asarray(u["probs"])).max()))
    return worst


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


def band_rows(inputs, device):
    """Band index of each mel row, as a [M] long tensor."""
    return torch.tensor(inputs["bands"]["row_band"], dtype=torch.long, device=device)


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
