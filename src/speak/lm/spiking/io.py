"""Save / load the LMs of this package: ``config.json`` + ``model.safetensors`` in a directory (never pickle).

Layout (format 1):
    config.json        {"format": "speak-lm", "format_version": 1, "model_type": "spikegpt" | "spikelm" |
                        "transformer", "config": {dataclass fields}, "weights": "model.safetensors",
                        "weights_sha256": "...", "vocab": [str, ...] | null, "metadata": {...}}
    model.safetensors  the state dict (tensors cloned and made contiguous, so tied/shared storage is fine)

Writes are atomic: each file goes to a temporary name in the same directory, is fsync'ed and ``os.replace``d into
place; the weights are written first and config.json last (its presence commits the checkpoint). Loading checks the
sha256 recorded in config.json, so a truncated or altered weights file is reported as corrupted (SpeakError) instead
of failing deep inside torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from speak.atomic import atomic_write_bytes, read_json
from speak.errors import SpeakError

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def model_registry() -> dict[str, tuple[type, type]]:
    """model_type -> (model class, config dataclass)."""
    from speak.lm.spiking.spikegpt import SpikeGPT, SpikeGPTConfig
    from speak.lm.spiking.spikelm import SpikeLM, SpikeLMConfig
    from speak.lm.transformer import TransformerConfig, TransformerLM

    return {
        "spikegpt": (SpikeGPT, SpikeGPTConfig),
        "spikelm": (SpikeLM, SpikeLMConfig),
        "transformer": (TransformerLM, TransformerConfig),
    }


def model_type_of(model: nn.Module) -> str:
    for name, (cls, _) in model_registry().items():
        if type(model) is cls:
            return name
    raise SpeakError(f"save_model: unsupported model class {type(model).__name__}")


def build_model(model_type: str, config: dict[str, Any]) -> nn.Module:
    reg = model_registry()
    if model_type not in reg:
        raise SpeakError(f"unknown model_type {model_type!r}; known: {', '.join(reg)}")
    cls, cfg_cls = reg[model_type]
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = set(config) - names
    if unknown:
        raise SpeakError(f"unknown {model_type} config fields: {', '.join(sorted(unknown))}")
    return cls(cfg_cls(**config))


def save_model(
    model: nn.Module, directory: str | os.PathLike, vocab: list[str] | None = None, metadata: dict | None = None
) -> Path:
    """Write ``model`` (SpikeGPT / SpikeLM / TransformerLM) to ``directory``; returns the directory path."""
    from safetensors.torch import save

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model_type = model_type_of(model)
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    blob = save(tensors)
    cfg = {
        "format": "speak-lm",
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "config": dataclasses.asdict(model.config),
        "weights": WEIGHTS_NAME,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "vocab": list(vocab) if vocab is not None else None,
        "metadata": metadata or {},
    }
    atomic_write_bytes(d / WEIGHTS_NAME, blob)
    atomic_write_bytes(d / CONFIG_NAME, json.dumps(cfg, indent=2, ensure_ascii=False).encode("utf-8"))
    return d


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CONFIG_NAME
    cfg = read_json(path, missing=f"{directory}: not a model checkpoint (no {CONFIG_NAME})", what="config")
    if not isinstance(cfg, dict) or cfg.get("format") != "speak-lm" or "model_type" not in cfg:
        raise SpeakError(f"{path}: not a speak-lm checkpoint config")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise SpeakError(f"{path}: unsupported format_version {cfg.get('format_version')!r}")
    return cfg


def load_model(directory: str | os.PathLike, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by ``save_model``: returns (model in eval mode, the config.json dict)."""
    from safetensors.torch import load

    cfg = read_config(directory)
    wpath = Path(directory) / cfg.get("weights", WEIGHTS_NAME)
    if not wpath.is_file():
        raise SpeakError(f"{directory}: missing weights file {wpath.name}")
    blob = wpath.read_bytes()
    expected = cfg.get("weights_sha256")
    if expected and hashlib.sha256(blob).hexdigest() != expected:
        raise SpeakError(f"{wpath}: corrupted weights (sha256 mismatch with {CONFIG_NAME})")
    try:
        tensors = load(blob)
    except Exception as err:  # safetensors raises its own error types
        raise SpeakError(f"{wpath}: corrupted weights ({err})") from None
    model = build_model(cfg["model_type"], cfg["config"])
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise SpeakError(f"{wpath}: weights do not match the config ({str(err).splitlines()[0]})") from None
    model.to(map_location).eval()
    return model, cfg
