"""``fixed``: a boundary every ``fixed_k`` characters (t closes its group when (t + 1) % k == 0)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from speak.errors import SpeakError
from speak.lm.boundaries.base import BoundaryOutput, BoundarySource, SourceOptions


@dataclass
class FixedOptions(SourceOptions):
    fixed_k: int = 4  # group length

    def validate(self) -> None:
        if self.fixed_k <= 0:
            raise SpeakError(f"boundary.fixed_k must be positive, got {self.fixed_k}")


class FixedBoundaries(BoundarySource):
    name = "fixed"
    label = "Fixed-length pooling"
    Options = FixedOptions
    opts: FixedOptions

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        L = chars.shape[1]
        t = torch.arange(L, device=chars.device)  # [L]
        hard = ((t + 1) % self.opts.fixed_k == 0).to(features.dtype)  # [L]
        return BoundaryOutput(hard=hard.unsqueeze(0).expand(chars.shape[0], L).contiguous())  # [B, L]
