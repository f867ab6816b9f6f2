"""The SPEAK tokenizer's own losses: the membrane-potential-driven loss L_mem (Eq. 14) and the contextual-boundary
loss L_reset (Eq. 12). The baselines' boundary losses live in `losses.py`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def membrane_targets(current: torch.Tensor, *, alpha, beta, u_th: float = 1.0, u_reset: float = 0.0,
                     gamma: float = 1.0, delta: float = 1.0, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 14's targets for u at spiking and at non-spiking positions, [B, L] each.

    u_fire = max(u_th, gamma u_th + delta I),  target_fire = alpha u_fire + (1 - alpha) u_th
    u_rest = min(u_th - eps, gamma u_reset + delta I),  target_rest = beta u_rest + (1 - beta) u_reset
    I is detached: targets are targets, not paths for gradient (SPEC section 2). alpha and beta may be learnable
    tensors (GTok) or floats (standalone, 1.2 and 0.6).
    """
    I = current.detach()
    u_fire = torch.clamp(gamma * u_th + delta * I, min=u_th)
    u_rest = torch.clamp(gamma * u_reset + delta * I, max=u_th - eps)
    return alpha * u_fire + (1 - alpha) * u_th, beta * u_rest + (1 - beta) * u_reset


def membrane_loss(u: torch.Tensor, current: torch.Tensor, targets: torch.Tensor, *, alpha=1.2, beta=0.6,
                  u_th: float = 1.0, u_reset: float = 0.0, gamma: float = 1.0, delta: float = 1.0,
                  eps: float = 1e-8, valid: torch.Tensor | None = None, second_term: bool = True,
                  balanced: bool = False) -> torch.Tensor:
    """L_mem (Eq. 14): pull u above threshold where the proxy spikes, below it elsewhere.

    u, current [B, L]; targets [B, L] in {0, 1} (the proxy s_hat); valid [B, L] bool excludes padding.
    Normalised by the number of valid positions so its scale does not depend on L (SPEC section 2).
    `second_term=False` drops the non-target sum ("w/o 2nd term", Table 5, i.e. Cao et al.'s original loss).
    `balanced=True` normalises each of the two sums by its own count and averages them, so spiking and silent
    positions weigh the same whatever the target rate (a choice the paper leaves open; docs/decisions.md).
    """
    fire_target, rest_target = membrane_targets(current, alpha=alpha, beta=beta, u_th=u_th, u_reset=u_reset,
                                                gamma=gamma, delta=delta, eps=eps)
    fire = targets > 0.5  # [B, L]
    err = torch.where(fire, (fire_target - u) ** 2, (rest_target - u) ** 2)  # [B, L]
    keep = torch.ones_like(fire) if valid is None else valid.bool()
    if not second_term:
        keep = keep & fire
    if balanced and second_term:
        on, off = keep & fire, keep & ~fire
        return 0.5 * ((err * on).sum() / on.sum().clamp(min=1) + (err * off).sum() / off.sum().clamp(min=1))
    return (err * keep).sum() / keep.sum().clamp(min=1)


def reset_loss(mask_logits: torch.Tensor, reset_targets: torch.Tensor,
               valid: torch.Tensor | None = None) -> torch.Tensor:
    """L_reset (Eq. 12): BCE-with-logits between the contextual-boundary logits e and the targets e_hat [B, L]."""
    loss = F.binary_cross_entropy_with_logits(mask_logits, reset_targets.to(mask_logits.dtype), reduction="none")
    if valid is None:
        return loss.mean()
    keep = valid.to(loss.dtype)
    return (loss * keep).sum() / keep.sum().clamp(min=1)
