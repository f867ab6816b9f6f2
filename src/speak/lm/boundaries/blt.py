"""``blt``: BLT's entropy patching (Pagnoni et al. 2024, "Byte Latent Transformer", arXiv 2412.09871, Sec. 2.3) on
characters.

The paper's equations (x_i: the i-th byte, here character; p_e: a small, separately trained byte LM):

- Next-byte entropy: ``H(x_i) = - sum_v p_e(x_i = v | x_<i) log p_e(x_i = v | x_<i)`` (nats).
- Global constraint: a patch starts at i where ``H(x_i) > theta_g``.
- Approximate monotonic constraint: a patch starts at i where ``H(x_i) - H(x_{i-1}) > theta_r``.
- Both ("global+monotonic"): where both hold (the reference code's combination of the two thresholds).
- The first position always starts a patch; patching is not trained by the LM (no gradient reaches it).

On characters: the entropy model is a small causal character LM whose logits at t predict t + 1, so
``Hnext[:, t] = H(x_{t+1})`` is known at t. A patch start at i = t + 1 closes our group at t (:mod:`.starts`):
``hard[:, t] = start(t + 1)``, decided from characters <= t. The monotonic difference at t = 0 would need H(x_0),
the entropy of the first character with no context, which a window without a beginning-of-text symbol does not
have: there ``hard[:, 0]`` follows the global threshold in ``global`` mode and is 0 in the other two.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speak.lm.boundaries.starts import starts_to_boundaries

__all__ = ["MODES", "boundaries_from_next_entropy", "patch_starts"]

MODES = ("global", "monotonic", "global+monotonic")


def patch_starts(entropy: Tensor, mode: str, threshold: float, rel_threshold: float) -> Tensor:
    """Patch starts [B, N] bool from entropies ``entropy[:, i] = H(x_i)`` [B, N]; position 0 always starts.

    ``mode``: "global" (H_i > threshold), "monotonic" (H_i - H_{i-1} > rel_threshold) or "global+monotonic" (both).
    """
    if mode not in MODES:
        raise ValueError(f"unknown BLT patching mode {mode!r}; valid: {', '.join(MODES)}")
    h = entropy.detach()  # [B, N]; no gradient reaches the patching
    above = h[:, 1:] > threshold  # [B, N - 1]
    rising = (h[:, 1:] - h[:, :-1]) > rel_threshold  # [B, N - 1]
    rest = {"global": above, "monotonic": rising, "global+monotonic": above & rising}[mode]
    first = torch.ones(h.shape[0], 1, dtype=torch.bool, device=h.device)  # [B, 1]
    return torch.cat([first, rest], dim=1)  # [B, N]


def boundaries_from_next_entropy(next_entropy: Tensor, mode: str, threshold: float, rel_threshold: float) -> Tensor:
    """Our boundaries [B, L] from ``next_entropy[:, t] = H(x_{t+1})`` [B, L] (the entropy model's logits at t).

    BLT's entropies are ``H(x_i)`` for i = 0..L with H(x_0) unknown (taken as +inf: no monotonic start at i = 1);
    ``hard[:, t] = start(t + 1)``.
    """
    B, L = next_entropy.shape
    h0 = next_entropy.new_full((B, 1), torch.inf)  # [B, 1]
    starts = patch_starts(torch.cat([h0, next_entropy.detach()], dim=1), mode, threshold, rel_threshold)  # [B, L+1]
    return starts_to_boundaries(starts, L).to(next_entropy.dtype)  # [B, L]
