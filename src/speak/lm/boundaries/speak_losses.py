"""The SPEAK tokenizer's own losses: the membrane-potential-driven loss L_mem (Eq. 14), the contextual-boundary
loss L_reset (Eq. 12) and its targets e_hat from token-level entropy (Sec. 3.2, App. A.2). Used by the GTok source
(``speak.lm.boundaries.speak``) and by Stage-1 training (``speak.train.mimic``). The baselines' losses live in
``losses``.

A token's entropy is the entropy (nats) of the model's predictive distribution for the token's FIRST character. The
top ``ratio`` (20%) of tokens in a batch are high-entropy; the spike that closes the token before each of them is a
contextual boundary: e_hat = 1 at start(k) - 1, so the membrane starts that token from u_reset.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def membrane_targets(current: torch.Tensor, *, alpha, beta, u_th: float = 1.0, u_reset: float = 0.0,
                     gamma: float = 1.0, delta: float = 1.0, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 14's targets for u at spiking and at non-spiking positions, [B, L] each.

    u_fire = max(u_th, gamma u_th + delta I),  target_fire = alpha u_fire + (1 - alpha) u_th
    u_rest = min(u_th - eps, gamma u_reset + delta I),  target_rest = beta u_rest + (1 - beta) u_reset
    I is detached: targets are targets, not paths for gradient (SPEC section 2). alpha and beta may be learnable
    tensors (GTok) or floats (standalone); their defaults are ``SpeakOptions.mem_alpha`` / ``mem_beta``.
    """
    I = current.detach()
    u_fire = torch.clamp(gamma * u_th + delta * I, min=u_th)
    u_rest = torch.clamp(gamma * u_reset + delta * I, max=u_th - eps)
    return alpha * u_fire + (1 - alpha) * u_th, beta * u_rest + (1 - beta) * u_reset


def membrane_loss(u: torch.Tensor, current: torch.Tensor, targets: torch.Tensor, *, alpha, beta,
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
    """L_reset (Eq. 12): BCE-with-logits between the contextual-boundary logits e and the targets e_hat [B, L],
    averaged over the positions where ``valid`` [B, L] is True (all when None). The GTok source passes its spikes:
    e_hat is defined at token boundaries only (docs/decisions.md)."""
    loss = F.binary_cross_entropy_with_logits(mask_logits, reset_targets.to(mask_logits.dtype), reduction="none")
    if valid is None:
        return loss.mean()
    keep = valid.to(loss.dtype)
    return (loss * keep).sum() / keep.sum().clamp(min=1)


def reset_targets_from_entropy(entropy_next: torch.Tensor, spikes: torch.Tensor, *, ratio: float = 0.2,
                               valid: torch.Tensor | None = None) -> torch.Tensor:
    """e_hat [B, L] (float 0/1) from next-char entropies [B, L] and the tokenizer's spikes s [B, L].

    Tokens follow Eq. 5 (a spike closes its token). Only tokens that start after position 0 can receive a target
    (their boundary is inside the sequence); the top `ratio` of those, ranked within the batch, are high-entropy.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must lie in [0, 1], got {ratio}")
    with torch.no_grad():
        B, L = spikes.shape
        closed = spikes.detach() > 0.5  # [B, L]
        valid = torch.ones_like(closed) if valid is None else valid.bool()
        starts = torch.zeros_like(closed)
        starts[:, 1:] = closed[:, :-1] & valid[:, 1:]  # a token starts right after a spike
        # entropy of predicting character t is entropy_next[t - 1]
        h_pos = torch.zeros_like(entropy_next, dtype=torch.float32)
        h_pos[:, 1:] = entropy_next[:, :-1].float()
        token_h = h_pos[starts]  # [K] in row-major order
        targets = torch.zeros(B, L, dtype=torch.float32, device=spikes.device)
        k = int(math.ceil(ratio * token_h.numel()))
        if k == 0:
            return targets
        top = torch.topk(token_h, k).indices
        rows, cols = starts.nonzero(as_tuple=True)
        targets[rows[top], cols[top] - 1] = 1.0  # the boundary that closes the token before a high-entropy one
        return targets
