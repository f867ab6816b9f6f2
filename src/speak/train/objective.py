"""The training objective over one batch (the hourglass/trainer seam, docs/ARCHITECTURE.md).

    L_total = L_LM + w * sum_k L_aux,k(source)

- L_LM: mean cross-entropy (nats) of ``logits[:, t]`` vs ``chars[:, t + 1]``; targets equal to ``<pad>`` (id 0)
  are ignored. bpc = L_LM / ln 2.
- L_aux: the boundary source's own losses (``source.aux_losses``; each source's module documents them), with
  w = its ``loss_weight`` option (1 for sources without one). Positions whose input is ``<pad>`` are masked out.
- metrics: loss, lm_loss, bpc, sf (B * L / groups over the batch, trailing partial groups included; 1.0 for a
  source that does not shorten), n_groups, boundary_rate, and each auxiliary loss by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from speak.lm.pooling import count_groups
from speak.text.vocab import PAD_ID
from speak.units import LN2

if TYPE_CHECKING:  # pragma: no cover
    from speak.lm.hourglass import HourglassLM
    from speak.train.data import Batch

__all__ = ["batch_shortening", "compute_objective"]


def batch_shortening(hard: Tensor, shortens: bool = True) -> tuple[float, int]:
    """(SF, groups) of a batch's boundaries [B, L]: characters / groups, each sequence's trailing partial group
    counted."""
    B, L = hard.shape
    if not shortens:
        return 1.0, B * L
    groups = int(count_groups(hard).sum().item())
    return (B * L) / max(groups, 1), groups


def compute_objective(model: "HourglassLM", batch: "Batch", *, step: int) -> tuple[Tensor, dict[str, float]]:
    """Total loss (L_LM + the boundary source's auxiliary losses) and scalar metrics (lm_loss, bpc, sf, ...)."""
    core = getattr(model, "module", model)  # unwrap DDP for the source; call the wrapper itself
    source = core.boundary_source
    chars = batch.chars
    inputs, targets = chars[:, :-1], chars[:, 1:]  # [B, L] each
    out = model(inputs)
    V = out.logits.shape[-1]
    lm_loss = F.cross_entropy(
        out.logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=PAD_ID
    )  # nats per predicted character
    aux = source.aux_losses(out.boundary, out.logits, batch.boundary_targets, inputs != PAD_ID)
    weight = getattr(source.opts, "loss_weight", 1.0)
    total = lm_loss
    for value in aux.values():
        total = total + weight * value
    sf, groups = batch_shortening(out.boundary.hard, source.shortens)
    metrics: dict[str, float] = {
        "loss": float(total.detach()),
        "lm_loss": float(lm_loss.detach()),
        "bpc": float(lm_loss.detach()) / LN2,
        "sf": sf,
        "n_groups": float(groups),
        "boundary_rate": float(out.boundary.hard.detach().float().mean()),
    }
    for key, value in aux.items():
        metrics[key] = float(value.detach())
    return total, metrics
