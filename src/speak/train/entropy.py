"""Token-level entropy and the contextual-boundary targets e_hat of Eq. 12 (paper Sec. 3.2, App. A.2; SPEC section 2).

A token's entropy is the entropy (nats) of the model's predictive distribution for the token's FIRST character
(`first`, the default), or the mean over its characters (`mean`). The top `ratio` (20%) of tokens in a batch are
high-entropy; the spike that closes the token before each of them is a contextual boundary: e_hat = 1 at
start(k) - 1, so the membrane starts that token from u_reset.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def predictive_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each position's next-character distribution: logits [B, L, V] -> [B, L].

    Entry t is the uncertainty about character t + 1. Computed without gradient.
    """
    with torch.no_grad():
        logp = torch.log_softmax(logits.float(), dim=-1)
        return -(logp.exp() * logp).sum(-1)


def reset_targets_from_entropy(entropy_next: torch.Tensor, spikes: torch.Tensor, *, ratio: float = 0.2,
                               mode: str = "first", valid: torch.Tensor | None = None) -> torch.Tensor:
    """e_hat [B, L] (float 0/1) from next-char entropies [B, L] and the tokenizer's spikes s [B, L].

    Tokens follow Eq. 5 (a spike closes its token). Only tokens that start after position 0 can receive a target
    (their boundary is inside the sequence); the top `ratio` of those, ranked within the batch, are high-entropy.
    """
    if mode not in ("first", "mean"):
        raise ValueError(f"token entropy mode must be 'first' or 'mean', got {mode!r}")
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
        if mode == "first":
            token_h = h_pos[starts]  # [K] in row-major order
        else:
            token_idx = torch.cumsum(starts.long(), dim=1)  # [B, L]: token 0 = the one at position 0
            n_tok = int(token_idx.max()) + 1 if L else 1
            flat = (torch.arange(B, device=spikes.device)[:, None] * n_tok + token_idx)[valid]
            sums = torch.zeros(B * n_tok, device=spikes.device).index_add_(0, flat, h_pos[valid])
            counts = torch.zeros(B * n_tok, device=spikes.device).index_add_(0, flat, torch.ones_like(h_pos[valid]))
            means = sums / counts.clamp(min=1)
            token_h = means[(torch.arange(B, device=spikes.device)[:, None] * n_tok + token_idx)[starts]]
        targets = torch.zeros(B, L, dtype=torch.float32, device=spikes.device)
        k = int(math.ceil(ratio * token_h.numel()))
        if k == 0:
            return targets
        top = torch.topk(token_h, k).indices
        rows, cols = starts.nonzero(as_tuple=True)
        targets[rows[top], cols[top] - 1] = 1.0  # the boundary that closes the token before a high-entropy one
        return targets


class NGramEntropy:
    """A character n-gram LM's predictive entropy: the stand-in language model for Stage-1 (standalone) training,
    where no neural LM exists yet to rank tokens by entropy. Add-k smoothed over the vocabulary."""

    def __init__(self, vocab_size: int, order: int = 3, smoothing: float = 0.1):
        if order < 1:
            raise ValueError("order must be >= 1")
        self.V, self.order, self.k = vocab_size, order, smoothing
        self._table: dict[int, float] = {}
        self._default = math.log(vocab_size)

    def _contexts(self, ids: np.ndarray) -> np.ndarray:
        """Context code of each position t = the (order - 1) characters ending at t (predicting t + 1)."""
        ctx = np.zeros(ids.shape[0], dtype=np.int64)
        for j in range(self.order - 1):
            shifted = np.zeros_like(ids)
            shifted[j:] = ids[: ids.shape[0] - j] if j else ids
            ctx = ctx * self.V + shifted
        return ctx

    def fit(self, ids: np.ndarray) -> "NGramEntropy":
        ids = np.asarray(ids, dtype=np.int64)
        ctx = self._contexts(ids)[:-1]
        nxt = ids[1:]
        pairs, counts = np.unique(np.stack([ctx, nxt]), axis=1, return_counts=True)
        order = np.argsort(pairs[0], kind="stable")
        pairs, counts = pairs[:, order], counts[order]
        bounds = np.flatnonzero(np.diff(pairs[0])) + 1
        for c_idx, cnt in zip(np.split(pairs[0], bounds), np.split(counts, bounds)):
            total = cnt.sum() + self.k * self.V
            p_seen = (cnt + self.k) / total
            n_unseen = self.V - cnt.size
            p_unseen = self.k / total
            h = -(p_seen * np.log(p_seen)).sum() - n_unseen * p_unseen * math.log(p_unseen)
            self._table[int(c_idx[0])] = float(h)
        return self

    def entropy_next(self, ids: np.ndarray) -> np.ndarray:
        """[N] float32: entropy of the distribution of character t + 1 given the context ending at t."""
        ctx = self._contexts(np.asarray(ids, dtype=np.int64))
        get = self._table.get
        return np.fromiter((get(int(c), self._default) for c in ctx), dtype=np.float32, count=ctx.shape[0])
