#!/usr/bin/env python3
"""Makes the wav2vec 2.0 / HuBERT equivalence fixtures under tests/fixtures/w2v/.

Each fixture is a tiny randomly initialised checkpoint saved by `transformers` exactly as a
user's checkpoint folder looks (config.json, model.safetensors or pytorch_model.bin,
preprocessor_config.json), plus `reference.safetensors` holding the raw input waveforms and
what `transformers` computes from them: every hidden state and, with a head, the logits.

Run once, commit the output (CI never installs PyTorch):
    python3 -m venv /tmp/pyref && /tmp/pyref/bin/pip install torch transformers safetensors numpy
    /tmp/pyref/bin/python scripts/make_w2v_fixtures.py
Versions used for the committed fixtures are written to tests/fixtures/w2v/VERSIONS.txt.
"""

import json
import pathlib

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import (
    HubertConfig,
    HubertForSequenceClassification,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForSequenceClassification,
    Wav2Vec2Model,
)

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "w2v"
LABELS = {0: "angry", 1: "happy", 2: "neutral", 3: "sad"}
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    conv_dim=[16, 16, 16],
    conv_stride=[5, 2, 2],
    conv_kernel=[10, 3, 3],
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    classifier_proj_size=8,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    layerdrop=0.0,
)

# name, config class, model class, extra config, safetensors?
CASES = [
    ("w2v_base_head", Wav2Vec2Config, Wav2Vec2ForSequenceClassification,
     dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False), True),
    ("w2v_large_head_weighted", Wav2Vec2Config, Wav2Vec2ForSequenceClassification,
     dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
          use_weighted_layer_sum=True), True),
    ("hubert_base_head_bin", HubertConfig, HubertForSequenceClassification,
     dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False), False),
    ("hubert_large_bare", HubertConfig, HubertModel,
     dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True), True),
    ("w2v_base_bare", Wav2Vec2Config, Wav2Vec2Model,
     dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False), True),
]


def waveforms(seed: int) -> np.ndarray:
    """Two different speech-like signals, 1600 samples at 16 kHz, unnormalised."""
    rng = np.random.default_rng(seed)
    t = np.arange(1600) / 16000.0
    a = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t) + 0.02 * rng.standard_normal(1600)
    b = 0.5 * np.sign(np.sin(2 * np.pi * 95 * t)) * np.exp(-3 * t) + 0.05 * rng.standard_normal(1600) + 0.1
    return np.stack([a, b]).astype(np.float32)


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    for i, (name, cfg_cls, model_cls, extra, safetensors) in enumerate(CASES):
        cfg = cfg_cls(**TINY, **extra, num_labels=len(LABELS), id2label=LABELS,
                      label2id={v: k for k, v in LABELS.items()})
        model = model_cls(cfg).eval()
        with torch.no_grad():
            # Random, non-trivial norms and biases so every parameter matters.
            for p_name, p in model.named_parameters():
                if p_name.endswith("bias") or "layer_norm" in p_name or "layer_weights" in p_name:
                    p.add_(0.1 * torch.randn_like(p))
        folder = OUT / name
        model.save_pretrained(folder)
        if not safetensors:
            # A checkpoint that ships only pytorch_model.bin (a pickled state dict).
            torch.save(model.state_dict(), folder / "pytorch_model.bin")
            (folder / "model.safetensors").unlink()
        elif name == "hubert_large_bare":
            # Older checkpoints name the weight-norm tensors weight_g / weight_v.
            from safetensors.numpy import load_file
            tensors = load_file(str(folder / "model.safetensors"))
            renamed = {
                k.replace("parametrizations.weight.original0", "weight_g")
                 .replace("parametrizations.weight.original1", "weight_v"): v
                for k, v in tensors.items()
            }
            save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
        fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                      do_normalize=True, return_attention_mask=False)
        fe.save_pretrained(folder)
        wave = waveforms(i)
        inputs = fe(list(wave), sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            out = model(inputs["input_values"], output_hidden_states=True)
        ref = {"input": wave}
        for j, h in enumerate(out.hidden_states):
            ref[f"hidden_states.{j}"] = h.numpy().astype(np.float32)
        if hasattr(out, "logits"):
            ref["logits"] = out.logits.numpy().astype(np.float32)
        save_file(ref, str(folder / "reference.safetensors"))
        print(name, {k: v.shape for k, v in ref.items()})
    (OUT / "VERSIONS.txt").write_text(
        f"torch {torch.__version__}\ntransformers {transformers.__version__}\n"
    )


if __name__ == "__main__":
    main()
