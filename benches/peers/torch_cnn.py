"""emolime's exported log-mel CNN rebuilt in PyTorch, and the exported inputs it reads (the captum
and `lime` peers; see `common.py` for the export itself)."""

import json
import os

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


def band_rows(inputs, device):
    """Band index of each mel row, as a [M] long tensor."""
    return torch.tensor(inputs["bands"]["row_band"], dtype=torch.long, device=device)
