"""Named model sizes for quick runs (`speak energy --preset ...`). CPU-scale; not the paper's sizes."""

from __future__ import annotations

import torch.nn as nn

# preset -> (model_type, config kwargs)
PRESETS: dict[str, tuple[str, dict]] = {
    "spikegpt-tiny": ("spikegpt", dict(vocab_size=256, d_model=128, n_layers=4)),
    "spikegpt-tiny-spike-inputs": ("spikegpt", dict(vocab_size=256, d_model=128, n_layers=4, spike_inputs=True)),
    "rwkv-tiny": ("spikegpt", dict(vocab_size=256, d_model=128, n_layers=4, spiking=False)),
    "spikelm-tiny": ("spikelm", dict(vocab_size=256, d_model=128, n_layers=4, n_heads=4, time_steps=4)),
    "transformer-tiny": ("transformer", dict(vocab_size=256, d_model=128, n_layers=4, n_heads=4)),
    # the transformer-tiny preset converted by SDLLM (calibrated on the random ids it is measured on)
    "sdllm-tiny": ("transformer", dict(vocab_size=256, d_model=128, n_layers=4, n_heads=4)),
}


def build_preset(name: str) -> nn.Module:
    from speak.errors import SpeakError
    from speak.lm.spiking.io import build_model

    if name not in PRESETS:
        raise SpeakError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    model_type, cfg = PRESETS[name]
    return build_model(model_type, dict(cfg))
