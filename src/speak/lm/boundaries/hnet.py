"""``hnet``: H-Net's dynamic chunking (Hwang, Wang & Gu 2025, arXiv 2507.07955, Sec. 2.2) on characters.

The paper's equations (x_hat: encoder outputs, here the hourglass pre-layer features h):

- Routing module, Eq. (4): ``q_t = W_q h_t``, ``k_t = W_k h_t`` (W_q, W_k initialised to the identity),
  ``p_t = (1 - cos(q_t, k_{t-1})) / 2``, ``b_t = 1(p_t >= 0.5)``, and ``p_0 = 1``: the first position always starts
  a chunk. ``b_t = 1`` means t STARTS a chunk.
- Smoothing module, Eq. (5): over the chunk sequence, ``zbar_j = P_j zhat_j + (1 - P_j) zbar_{j-1}`` with P_j the
  boundary probability p at chunk j's first position: an unsure boundary blends its chunk into the previous one.
- Upsampler, Eq. (6)-(9): ``c_t = p_t^{b_t} (1 - p_t)^{1 - b_t}`` (the router's confidence in its own decision),
  ``STE(c_t) = c_t + sg(1 - c_t)`` (value 1, gradient of c_t), and position t receives ``STE(c_t) * zbar`` of its
  chunk. The router thus learns from the LM loss through P (Eq. 5) and c (Eq. 9).
- Ratio loss, Eq. (10): ``L_ratio = N / (N - 1) * ((N - 1) F G + (1 - F)(1 - G))`` with ``F = mean_t b_t`` (the
  boundary rate, no gradient), ``G = mean_t p_t`` and N the target compression ratio (characters per chunk); it is
  1 at F = G = 1/N and weighted by alpha = 0.03 in the paper.

Causal adaptation (docs/baselines.md). H-Net's b_t = 1 closes the chunk at t - 1, a decision made from character t;
with DTP's upsampling (position t reads the group it closes, :mod:`speak.lm.pooling`) that would let t - 1 read
character t. Here position t CLOSES its group when b_t = 1 (``hard[t] = b_t`` for t >= 1, :func:`routing_boundaries`):
the same decision from the same p_t (q_t against k_{t-1}, characters <= t), the chunk ending after t instead of
before it, so every chunk is shifted one character later. ``hard[0] = 0``: H-Net's forced start p_0 = 1 is the
text's beginning, which needs no mark.

In the hourglass, position t reads slot ``closed[t]`` (groups closed at or before t); the EMA runs over these slots
with P of slot j = p at the first position that reads it, i.e. the position whose decision closed group j - 1 (P = 1
for the null group, as p_0 = 1). Chunk vectors are group means, as for every source in the harness.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.boundaries.base import BoundaryOutput
from speak.lm.boundaries.learned import LearnedOptions, LearnedSource
from speak.lm.pooling import groups_closed, upsample

__all__ = [
    "HNetChunking",
    "HNetOptions",
    "chunk_starts",
    "confidence",
    "dechunk",
    "ema_smooth",
    "ema_smooth_reference",
    "ratio_loss",
    "routing_boundaries",
    "routing_probs",
    "slot_probs",
    "ste_ones",
]


def routing_probs(q: Tensor, k: Tensor) -> Tensor:
    """Eq. (4): ``p_t = (1 - cos(q_t, k_{t-1})) / 2`` clamped to [0, 1], ``p_0 = 1``. q, k [B, L, D] -> p [B, L]."""
    cos = F.cosine_similarity(q[:, 1:].float(), k[:, :-1].float(), dim=-1)  # [B, L - 1]
    p = ((1.0 - cos) / 2.0).clamp(0.0, 1.0)  # [B, L - 1]
    return torch.cat([p.new_ones(p.shape[0], 1), p], dim=1)  # [B, L]


def chunk_starts(p: Tensor) -> Tensor:
    """Eq. (4): ``b_t = 1(p_t >= 0.5)`` as float, no gradient. [B, L] -> [B, L]."""
    return (p.detach() >= 0.5).to(p.dtype)


def routing_boundaries(b: Tensor) -> Tensor:
    """Our boundaries from Eq. (4)'s decisions, causally: ``hard[t] = b_t`` for t >= 1 (t closes its group when p_t,
    from q_t and k_{t-1}, crosses 0.5), ``hard[0] = 0``. [B, L] -> [B, L] (module doc: the causal adaptation)."""
    hard = b.detach().clone()  # [B, L]
    hard[:, :1] = 0.0
    return hard


def confidence(p: Tensor, b: Tensor) -> Tensor:
    """Eq. (6): ``c_t = p_t^{b_t} (1 - p_t)^{1 - b_t}``, i.e. p_t where t starts a chunk, 1 - p_t elsewhere."""
    return torch.where(b > 0.5, p, 1.0 - p)  # [B, L]


def ste_ones(c: Tensor) -> Tensor:
    """Eq. (7): ``STE(c) = c + sg(1 - c)``: the value 1 (exactly, for c >= 0.5), the gradient of c."""
    return c + (1.0 - c).detach()


def ratio_loss(b: Tensor, p: Tensor, target_ratio: float, valid: Tensor | None = None) -> Tensor:
    """Eq. (10): ``N / (N - 1) * ((N - 1) F G + (1 - F)(1 - G))`` over the valid positions of the batch.

    ``b`` [B, L] chunk starts (no gradient), ``p`` [B, L] boundary probabilities, ``target_ratio`` N > 1,
    ``valid`` [B, L] bool (None = all). F = mean of b, G = mean of p.
    """
    n = float(target_ratio)
    m = torch.ones_like(p) if valid is None else valid.to(p.dtype)  # [B, L]
    count = m.sum().clamp_min(1.0)
    f = (b.detach().to(p.dtype) * m).sum() / count  # boundary rate, no gradient
    g = (p * m).sum() / count
    return n / (n - 1.0) * ((n - 1.0) * f * g + (1.0 - f) * (1.0 - g))


def slot_probs(p: Tensor, hard: Tensor, n_slots: int) -> Tensor:
    """P of each shortened-sequence slot: p at the first position that reads it. -> [B, n_slots].

    Position t reads slot ``closed[t]`` (groups closed at or before t); the first reader of slot j >= 1 is the
    position that closed group j - 1, whose p decided that boundary. Slots no position reads (padding) get P = 1.
    """
    B, L = p.shape
    slot = groups_closed(hard.detach()).long()  # [B, L]
    first = torch.ones_like(slot, dtype=torch.bool)  # [B, L]
    first[:, 1:] = slot[:, 1:] != slot[:, :-1]
    index = torch.where(first, slot, torch.full_like(slot, n_slots))  # [B, L]; non-first positions -> dummy slot
    base = p.new_ones(B, n_slots + 1)  # [B, S + 1]
    return base.scatter(1, index, p)[:, :n_slots]  # [B, S]


def ema_smooth(z: Tensor, P: Tensor) -> Tensor:
    """Eq. (5) over slots: ``zbar_j = P_j z_j + (1 - P_j) zbar_{j-1}``, ``zbar_{-1} = 0``. z [B, S, D], P [B, S].

    Closed form, one batched matmul: ``zbar_j = sum_{i <= j} P_i prod_{i < k <= j} (1 - P_k) z_i``; the products are
    exp of differences of cumulative log(1 - P) in float64 (P clamped below 1 - 1e-6 inside the log only).
    """
    S = z.shape[1]
    Pd = P.double()  # [B, S]
    log_keep = torch.log1p(-Pd.clamp(max=1.0 - 1e-6))  # [B, S]
    cum = torch.cumsum(log_keep, dim=1)  # [B, S]
    diff = cum.unsqueeze(2) - cum.unsqueeze(1)  # [B, S(j), S(i)] = sum_{i < k <= j} log(1 - P_k) for i <= j
    lower = torch.ones(S, S, dtype=torch.bool, device=z.device).tril()  # i <= j
    decay = torch.where(lower, diff, torch.full_like(diff, -torch.inf)).exp()  # [B, S, S]
    weights = (decay * Pd.unsqueeze(1)).to(z.dtype)  # [B, S, S]
    return torch.bmm(weights, z)  # [B, S, D]


def ema_smooth_reference(z: Tensor, P: Tensor) -> Tensor:
    """Loop version of :func:`ema_smooth` (the recurrence as written)."""
    out = torch.zeros_like(z)
    prev = torch.zeros_like(z[:, 0])  # [B, D]
    for j in range(z.shape[1]):
        prev = P[:, j : j + 1].to(z.dtype) * z[:, j] + (1.0 - P[:, j : j + 1].to(z.dtype)) * prev
        out[:, j] = prev
    return out


def dechunk(groups: Tensor, p: Tensor, hard: Tensor) -> Tensor:
    """Smoothing + upsampling (Eq. 5-9): slots [B, S, D] -> [B, L, D] with ``STE(c_t) * zbar_{closed[t]}``."""
    zbar = ema_smooth(groups, slot_probs(p, hard, groups.shape[1]))  # [B, S, D]
    up = upsample(zbar, hard.detach())  # [B, L, D]
    c = confidence(p, chunk_starts(p))  # [B, L]
    return up * ste_ones(c).to(up.dtype).unsqueeze(-1)  # [B, L, D]


@dataclass
class HNetOptions(LearnedOptions):
    loss_weight: float = 0.03  # alpha: the ratio loss's weight (the paper's value)
    # N of Eq. (10), characters per chunk: the source's SF knob. 4.5 sits near DTP-Unigram's SF on en-bible (4.45).
    target_ratio: float = 4.5

    def validate(self) -> None:
        super().validate()
        if not self.target_ratio > 1.0:
            raise SpeakError(f"boundary.target_ratio must be > 1, got {self.target_ratio}")


class HNetChunking(LearnedSource):
    """H-Net's routing module on the pre-layer features; its smoothing and confidence scaling in :meth:`upsample`."""

    name = "hnet"
    label = "H-Net (dynamic chunking)"
    Options = HNetOptions
    opts: HNetOptions

    def __init__(self, opts, d_model, vocab_size, alphabet):
        super().__init__(opts, d_model, vocab_size, alphabet)
        self.w_q = nn.Linear(d_model, d_model, bias=False)
        self.w_k = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():  # the paper's initialisation: p_t starts as the plain cosine of adjacent states
            self.w_q.weight.copy_(torch.eye(d_model))
            self.w_k.weight.copy_(torch.eye(d_model))
        self.add_encoder_head(d_model)

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        h = self.features(features)  # [B, L, D]
        p = routing_probs(self.w_q(h), self.w_k(h))  # [B, L] float32
        hard = routing_boundaries(chunk_starts(p)).to(features.dtype)  # [B, L]; no grad, characters <= t
        return BoundaryOutput(hard=hard, head_logits=self.head_logits(features), extras={"probs": p})

    def upsample(self, groups: Tensor, out: BoundaryOutput) -> Tensor:
        p = out.extras.get("probs")
        if p is None:  # boundaries given from outside (no router decision to smooth with)
            return super().upsample(groups, out)
        return dechunk(groups, p, out.hard)  # [B, L, D]

    def source_losses(self, out, lm_logits, targets, valid):
        p = out.extras["probs"]  # [B, L]
        return {"ratio": ratio_loss(chunk_starts(p), p, self.opts.target_ratio, valid)}
