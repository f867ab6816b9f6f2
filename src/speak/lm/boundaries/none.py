"""``none``: the vanilla Transformer, no shortening. ``hard`` is all ones (each character its own group, SF = 1); the
hourglass runs every layer at character level and never pools."""

from __future__ import annotations

import torch
from torch import Tensor

from speak.lm.boundaries.base import BoundaryOutput, BoundarySource


class NoBoundaries(BoundarySource):
    name = "none"
    method = "vanilla"
    label = "Vanilla"
    shortens = False

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        return BoundaryOutput(hard=torch.ones(chars.shape, dtype=features.dtype, device=chars.device))  # [B, L]
