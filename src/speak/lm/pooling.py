"""Dynamic pooling for the hourglass LM: characters -> groups (downsample) and groups -> characters (upsample).

Boundary convention (SPEC section 2): ``hard[b, t] = 1`` means position t is the LAST character of its group
(the group closes at t). The trailing, unfinished group (after the last boundary) is also a group. So the group of
position t is ``before[t] = number of boundaries at positions < t`` (0-based among the real groups).

Layout of the shortened sequence: slot 0 is a learned null group, slot ``1 + k`` is the mean of real group k. The
hourglass applies DTP's down-LN to it before the shortened layers (:mod:`speak.lm.hourglass`).

Upsampling follows DTP (Nawrot et al. 2023; SPEC section 4): position t reads slot ``closed[t]`` = the number of
groups closed AT OR BEFORE t. Boundaries [0,0,1,0,1,0] read slots [0,0,1,1,2,2]: the character that closes a group
already reads it.

Causality. The shortened Transformer is causal over slots, so its output at slot j has seen the null group and real
groups 0..j-1, i.e. the groups closed at positions <= t whenever j = closed[t]. Each of those groups holds only
characters <= t (a group closing at t ends at t), and every registered boundary source decides ``hard[t]`` from
characters <= t (tests/lm/test_hourglass.py checks each one). The null group is DTP's one-slot shift: without it
slot j would hold group j, and position t would read the group still open at t. The residual from the causal
pre-layers brings character t itself. (Boundaries GIVEN from outside, e.g. an exemplar segmentation that looked
ahead, carry their own look-ahead into the model; that is the caller's business.)

Gradients to ``hard`` (for the Gumbel straight-through sources), as in DTP. Downsampling: the assignment of
position t to a group is a one-hot matrix built from the *differentiable* float ``before = cumsum(hard) - hard``;
its entries are written as ``onehot * (1 - (slot - before))``: the value is exactly the one-hot (``slot - before =
0`` on it), but the entry carries d/d(before) = +1. Divided by the group's (equally differentiable) count, a group
mean's derivative with respect to ``before[t]`` is ``(x_t - mean) / count``: centred, zero when the group's
characters are alike. This is the same device as DTP's soft assignment (an identity-valued expression whose
derivative is the shift of the group index); our own formulation. Upsampling reads with a plain one-hot and sends
NO gradient to ``hard``: DTP normalises each position's one-hot read by itself (x / x), whose derivative vanishes.
(A read that carried the +1 device too would send every boundary at s the sum over all later positions t of
<dL/dy_t, group output read at t>: uncentred, of one sign for every boundary of a sequence, which pushes a Gumbel or
MAGNET boundary rate away from its prior.) With rule-based sources (``hard`` without grad) both are ordinary one-hots.

Both functions are vectorised (one-hot + batched matmul, no loop over groups); the ``*_reference`` twins are slow,
obvious loops kept for parity tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "boundaries_before",
    "groups_closed",
    "count_groups",
    "downsample",
    "upsample",
    "downsample_reference",
    "upsample_reference",
]


def boundaries_before(hard: Tensor) -> Tensor:
    """Number of boundaries at positions strictly before t, as float32 (keeps grads): [B, L] -> [B, L].

    Always float32, whatever the autocast dtype: bf16 counts stop being exact integers above 256.
    """
    hard = hard.float()  # [B, L]
    return torch.cumsum(hard, dim=1) - hard  # [B, L]


def groups_closed(hard: Tensor) -> Tensor:
    """Number of groups closed at or before t (DTP's upsampling slot), as float32: [B, L] -> [B, L]."""
    return torch.cumsum(hard.float(), dim=1)  # [B, L]


def count_groups(hard: Tensor) -> Tensor:
    """Groups per sequence including the trailing partial group: [B, L] -> [B] int64 (0 when L == 0)."""
    if hard.shape[1] == 0:
        return torch.zeros(hard.shape[0], dtype=torch.long, device=hard.device)
    return (hard[:, :-1].detach() > 0.5).sum(dim=1) + 1  # [B]


def _assignment(before: Tensor, n_slots: int) -> Tensor:
    """One-hot slot assignment with DTP-style gradients to ``before``: [B, L] -> [B, L, n_slots]."""
    slots = torch.arange(n_slots, device=before.device, dtype=before.dtype)  # [S]
    diff = slots.view(1, 1, -1) - before.unsqueeze(-1)  # [B, L, S]; exactly 0 at the own slot
    onehot = (diff.detach().abs() < 0.5).to(before.dtype)  # [B, L, S]
    return onehot * (1.0 - diff)  # [B, L, S]; value == onehot, d/d(before) == onehot


def downsample(x: Tensor, hard: Tensor, null_group: Tensor) -> tuple[Tensor, Tensor]:
    """Mean-pool characters into groups and prepend the null group.

    Args:
        x: [B, L, D] character features.
        hard: [B, L] boundaries in {0, 1} (float; may carry straight-through grads); 1 = t closes its group.
        null_group: [D] learned vector placed at slot 0.
    Returns:
        groups: [B, 1 + G_max, D]; slot 0 = null group, slot 1 + k = mean of group k, padding slots = 0.
        group_mask: [B, 1 + G_max] bool; True for the null group and every real group (incl. the trailing one).
    """
    B, L, D = x.shape
    n_groups = count_groups(hard)  # [B]
    g_max = int(n_groups.max().item()) if B > 0 else 0
    before = boundaries_before(hard)  # [B, L] group index of each position
    assign = _assignment(before, g_max)  # [B, L, G] float32
    sums = torch.bmm(assign.transpose(1, 2).to(x.dtype), x)  # [B, G, D]
    counts = assign.sum(dim=1)  # [B, G]
    means = (sums / counts.clamp_min(1.0).unsqueeze(-1)).to(x.dtype)  # [B, G, D]; empty (padding) groups stay 0
    null = null_group.to(x.dtype).view(1, 1, D).expand(B, 1, D)  # [B, 1, D]
    groups = torch.cat([null, means], dim=1)  # [B, 1 + G, D]
    slots = torch.arange(g_max, device=x.device)  # [G]
    real = slots.unsqueeze(0) < n_groups.unsqueeze(1)  # [B, G]
    group_mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=x.device), real], dim=1)  # [B, 1 + G]
    return groups, group_mask


def upsample(groups: Tensor, hard: Tensor) -> Tensor:
    """Give position t the shortened output at slot ``closed[t]`` (groups closed at or before t; 0 = the null group).

    Args:
        groups: [B, 1 + G, D] outputs of the (causal) shortened Transformer over the downsampled sequence.
        hard: [B, L] the same boundaries used to downsample.
    Returns:
        [B, L, D].
    """
    B, S, D = groups.shape
    closed = groups_closed(hard.detach())  # [B, L] in [0, G] <= S - 1; no gradient to hard (DTP, module doc)
    assign = _assignment(closed, S)  # [B, L, 1 + G] float32 one-hot
    return torch.bmm(assign.to(groups.dtype), groups)  # [B, L, D]


# --------------------------------------------------------------------------------------------------------------
# Slow, obvious twins (parity oracles; forward values only).


def downsample_reference(x: Tensor, hard: Tensor, null_group: Tensor) -> tuple[Tensor, Tensor]:
    """Loop version of :func:`downsample` (same outputs)."""
    B, L, D = x.shape
    per_seq: list[list[Tensor]] = []
    for b in range(B):
        groups: list[Tensor] = []
        current: list[Tensor] = []
        for t in range(L):
            current.append(x[b, t])
            if float(hard[b, t]) > 0.5 or t == L - 1:  # a boundary, or the text's end, closes the group
                groups.append(torch.stack(current).mean(dim=0))
                current = []
        per_seq.append(groups)
    g_max = max((len(g) for g in per_seq), default=0)
    out = x.new_zeros(B, 1 + g_max, D)
    mask = torch.zeros(B, 1 + g_max, dtype=torch.bool)
    for b, groups in enumerate(per_seq):
        out[b, 0] = null_group
        mask[b, 0] = True
        for k, g in enumerate(groups):
            out[b, 1 + k] = g
            mask[b, 1 + k] = True
    return out, mask


def upsample_reference(groups: Tensor, hard: Tensor) -> Tensor:
    """Loop version of :func:`upsample` (same outputs)."""
    B, L = hard.shape
    out = groups.new_zeros(B, L, groups.shape[-1])
    for b in range(B):
        closed = 0
        for t in range(L):
            if float(hard[b, t]) > 0.5:  # the group closing at t is already read at t
                closed += 1
            out[b, t] = groups[b, closed]
    return out
