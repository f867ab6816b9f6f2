"""From "a segment starts at t" (BLT's patch starts) to our boundary convention (SPEC section 2).

BLT marks the FIRST element of each patch (decided from the characters before it); our hourglass marks the LAST
character of each group (``hard[:, t] = 1``: t closes its group). A start at t closes the previous group at t - 1:

    hard[:, t] = starts[:, t + 1]   for t < L - 1,

and position 0 always starts a segment: in our convention that start is the sequence's beginning and
needs no mark. ``starts`` may be one longer than the text (a start at L, decided from characters < L, closes the
last group at L - 1); otherwise ``hard[:, L - 1] = 0`` (the text's end closes the trailing group anyway).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["starts_to_boundaries"]


def starts_to_boundaries(starts: Tensor, length: int) -> Tensor:
    """``starts`` [B, N] in {0, 1} (N = length or length + 1) -> ``hard`` [B, length] float (same dtype if float)."""
    if starts.shape[1] not in (length, length + 1):
        raise ValueError(f"starts has {starts.shape[1]} positions; expected {length} or {length + 1}")
    hard = starts[:, 1:]  # [B, N - 1]; a start at t + 1 closes the group at t
    if hard.shape[1] < length:
        hard = torch.cat([hard, hard.new_zeros(hard.shape[0], length - hard.shape[1])], dim=1)  # [B, length]
    return hard if hard.is_floating_point() else hard.float()
