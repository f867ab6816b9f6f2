"""``whitespace``: a boundary at each whitespace character (the space is the last character of its token).

Which vocabulary ids are whitespace comes from a boolean table built once from the alphabet (id -> character
string, carried by ``HourglassConfig.alphabet``) with ``str.isspace``."""

from __future__ import annotations

import torch
from torch import Tensor

from speak.lm.boundaries.base import BoundaryOutput, BoundarySource, need_alphabet


class WhitespaceBoundaries(BoundarySource):
    name = "whitespace"
    label = "Whitespace pooling"
    needs_alphabet = True

    def __init__(self, opts, d_model, vocab_size, alphabet):
        super().__init__(opts, d_model, vocab_size, alphabet)
        alphabet = need_alphabet(self.name, alphabet, vocab_size)
        table = torch.tensor([len(ch) == 1 and ch.isspace() for ch in alphabet], dtype=torch.bool)  # [V]
        self.register_buffer("is_space", table, persistent=False)

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        return BoundaryOutput(hard=self.is_space[chars].to(features.dtype))  # [B, L]
