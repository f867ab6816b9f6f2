"""A teacher-forced membrane objective for Stage-1 mimic training (not in the paper; docs/decisions.md).

L_mem (Eq. 14) regresses the free-running membrane towards targets. Here the membrane is instead run along the
exemplar's own boundaries: the neuron integrates I_t (Eq. 1) and resets (Eq. 10) wherever the exemplar has a
boundary, hard where the contextual-boundary mask says so (Eq. 9). Every u_t is then a fixed linear function of
the currents, and a class-balanced logistic loss on u_t - u_th asks the neuron to cross its threshold exactly at
the exemplar's boundaries. For a hashed n-gram encoder (currents = sums of per-key terms) the problem is convex in
those terms, which is what plain per-key sums need to be optimised well. At inference the neuron runs free, as
always; a miss or a false spike only shifts the state until the next reset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def forced_membrane(current: torch.Tensor, gold: torch.Tensor, hard: torch.Tensor, *, theta: float,
                    u_th: float = 1.0, u_reset: float = 0.0) -> torch.Tensor:
    """Pre-reset membrane u [B, L] of Eq. 1 + 10 with gamma = delta = 1, the spikes forced to `gold` [B, L] (bool)
    and the reset hard where `hard` [B, L] (bool; read only where gold). Computed with cumulative sums: u_t is the
    current summed since the last hard reset, less theta u_th per soft reset since then, plus u_reset."""
    B, L = current.shape
    soft_step = (gold & ~hard).to(current.dtype)  # [B, L]
    zero = current.new_zeros(B, 1)
    c = torch.cat([zero, current.cumsum(1)], 1)  # [B, L + 1]: c[:, t + 1] = I_0 + ... + I_t
    n_soft = torch.cat([zero, soft_step.cumsum(1)], 1)  # [B, L + 1]
    idx = torch.arange(L, device=current.device).expand(B, L)
    last = torch.where(gold & hard, idx, torch.full_like(idx, -1)).cummax(1).values  # [B, L] last hard reset <= t
    before = torch.cat([torch.full_like(idx[:, :1], -1), last[:, :-1]], 1) + 1  # [B, L] where u_t's sum starts
    since = c[:, 1:] - c.gather(1, before)  # I summed over (last hard reset, t]
    softs = n_soft[:, :-1] - n_soft.gather(1, before)  # soft resets in (last hard reset, t - 1]
    return u_reset + since - theta * u_th * softs


def forced_membrane_reference(current: torch.Tensor, gold: torch.Tensor, hard: torch.Tensor, *, theta: float,
                              u_th: float = 1.0, u_reset: float = 0.0) -> torch.Tensor:
    """The same membrane, one step at a time (the slow twin for parity tests)."""
    B, L = current.shape
    v = torch.full((B,), u_reset, dtype=current.dtype)
    out = []
    for t in range(L):
        u = v + current[:, t]
        out.append(u)
        v = torch.where(gold[:, t], torch.where(hard[:, t], torch.full_like(u, u_reset), u - theta * u_th), u)
    return torch.stack(out, 1)


def forced_loss(u: torch.Tensor, gold: torch.Tensor, valid: torch.Tensor, *, u_th: float = 1.0,
                scale: float = 4.0) -> torch.Tensor:
    """Logistic loss on scale (u_t - u_th) against the exemplar's spikes, boundaries and non-boundaries weighing
    the same (the mean of the two classes' mean losses), padding excluded."""
    bce = F.binary_cross_entropy_with_logits(scale * (u - u_th), gold.to(u.dtype), reduction="none")  # [B, L]
    on, off = valid & gold, valid & ~gold
    return 0.5 * ((bce * on).sum() / on.sum().clamp(min=1) + (bce * off).sum() / off.sum().clamp(min=1))
