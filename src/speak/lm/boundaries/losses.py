"""The baselines' boundary losses and the LM's predictive entropy (pure functions). Each docstring gives the
equation and where it comes from. SPEAK's own L_mem (Eq. 14) and L_reset (Eq. 12) are in ``speak_losses``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


__all__ = [
    "binomial_prior_loss",
    "boundary_bce",
    "dtp_entropy_targets",
    "entropy_spike_targets",
    "per_script_binomial_prior_loss",
    "predictive_entropy",
]


def predictive_entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of each position's next-character distribution: logits [B, L, V] -> [B, L].

    Entry t is the uncertainty about character t + 1. Computed without gradient.
    """
    with torch.no_grad():
        logp = torch.log_softmax(logits.float(), dim=-1)
        return -(logp.exp() * logp).sum(-1)


def _mask_like(x: Tensor, mask: Tensor | None) -> Tensor:
    return torch.ones_like(x) if mask is None else mask.to(x.dtype)


def boundary_bce(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Boundary-predictor loss (DTP's entropy / unigram supervision), BCE-with-logits on LOGITS.

        L = - (1 / |M|) sum_{(b,t) in M} [ y_bt log sigmoid(z_bt) + (1 - y_bt) log(1 - sigmoid(z_bt)) ]

    ``logits`` z [B, L] are raw predictor outputs (the public DTP code feeds probabilities to
    ``binary_cross_entropy_with_logits``, a double sigmoid; we do not). ``targets`` y [B, L] in {0, 1};
    ``mask`` [B, L] (optional) selects the positions M that count. Returns a scalar.
    """
    logits = logits.float()  # [B, L]; float32 under autocast too
    m = _mask_like(logits, mask)  # [B, L]
    per = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")  # [B, L]
    return (per * m).sum() / m.sum().clamp_min(1.0)


def _binomial_nll(k: Tensor, n: Tensor, prior: Tensor | float) -> Tensor:
    """-log Binomial(k; n, p) elementwise, differentiable in k (lgamma): [B] -> [B]."""
    p = torch.as_tensor(prior, dtype=k.dtype, device=k.device)
    log_comb = torch.lgamma(n + 1.0) - torch.lgamma(k + 1.0) - torch.lgamma(n - k + 1.0)
    return -(log_comb + k * torch.log(p) + (n - k) * torch.log1p(-p))


def binomial_prior_loss(hard: Tensor, prior: float | Tensor, mask: Tensor | None = None) -> Tensor:
    """DTP's Binomial prior on the number of boundaries (Gumbel-sigmoid variant; MAGNET uses one per script).

        k_b = sum_t m_bt h_bt,   n_b = sum_t m_bt
        L = (1 / B) sum_b  -log Binomial(k_b; n_b, p) / n_b

    i.e. the negative log-likelihood of each sequence's boundary count under Binomial(n_b, p), normalised per
    sequence by its number of positions (so its scale does not depend on L). ``hard`` [B, L] are the (straight-
    through) boundaries or probabilities; the gradient reaches them through k via lgamma. Sequences with n_b = 0
    contribute 0. ``prior`` is a float or a 0-d tensor. Returns a scalar.
    """
    hard = hard.float()  # [B, L]; counts must be exact (bf16 is not above 256)
    m = _mask_like(hard, mask)  # [B, L]
    k = (hard * m).sum(dim=1)  # [B]
    n = m.sum(dim=1)  # [B]
    nll = _binomial_nll(k, n, prior)  # [B]
    return (nll / n.clamp_min(1.0) * (n > 0).to(nll.dtype)).mean()


def per_script_binomial_prior_loss(
    hard: Tensor, script_ids: Tensor, priors: Tensor, mask: Tensor | None = None
) -> Tensor:
    """MAGNET's prior: one Binomial per script (Ahia et al. 2024).

        k_bs = sum_t m_bt 1[script_bt = s] h_bt,   n_bs = sum_t m_bt 1[script_bt = s]
        L = (1 / B) sum_b  sum_s -log Binomial(k_bs; n_bs, p_s) / n_b,   n_b = sum_s n_bs

    ``script_ids`` [B, L] int64 index ``priors`` [S] (or [B, S], one set per sequence: MAGNET's per-byte priors
    converted per character, ``speak.lm.scripts.char_priors``). Per sequence the per-script NLLs are summed and
    normalised by the sequence's positions, so a single-script text gives exactly :func:`binomial_prior_loss`.
    Returns a scalar.
    """
    hard = hard.float()  # [B, L]
    m = _mask_like(hard, mask)  # [B, L]
    S = priors.shape[-1]
    onehot = F.one_hot(script_ids, S).to(hard.dtype) * m.unsqueeze(-1)  # [B, L, S]
    k = torch.einsum("bl,bls->bs", hard, onehot)  # [B, S]
    n = onehot.sum(dim=1)  # [B, S]
    p = priors.to(hard.dtype).clamp(1e-6, 1 - 1e-6)  # [S] or [B, S]
    p = p.unsqueeze(0) if p.dim() == 1 else p  # [1 or B, S]
    nll = _binomial_nll(k, n, p) * (n > 0).to(hard.dtype)  # [B, S]; absent scripts contribute 0
    total = n.sum(dim=1)  # [B]
    return (nll.sum(dim=1) / total.clamp_min(1.0)).mean()


@torch.no_grad()
def dtp_entropy_targets(logits: Tensor) -> Tensor:
    """DTP's entropy-spike boundary targets: [B, L, V] -> [B, L] float in {0, 1}, no grad.

        H_t = entropy of the next-character distribution at t (logits[:, t] predicts chars[:, t + 1])
        y_t = 1[H_t > H_{t-1} and H_t > H_{t-2}]

    A high H_t means the character at t + 1 is hard to predict, i.e. a new token starts at t + 1, so t closes its
    group (our boundary convention, SPEC section 2). Edges: y_0 = 0 (no predecessor); y_1 compares with H_0 only.
    """
    return entropy_spike_targets(predictive_entropy(logits.detach()))  # [B, L]


def entropy_spike_targets(H: Tensor) -> Tensor:
    """:func:`dtp_entropy_targets` from precomputed next-character entropies H [B, L] (shared with L_reset)."""
    B, L = H.shape
    inf = torch.full((B, 1), math.inf, dtype=H.dtype, device=H.device)
    prev1 = torch.cat([inf, H[:, :-1]], dim=1)[:, :L]  # [B, L]; +inf at t = 0 -> never a target
    prev2 = torch.cat([-inf, -inf, H[:, :-2]], dim=1)[:, :L]  # [B, L]; -inf at t < 2 -> ignored
    return ((H > prev1) & (H > prev2)).float()
