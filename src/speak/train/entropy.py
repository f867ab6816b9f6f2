"""A character n-gram LM's predictive entropy: the stand-in language model of Stage-1 (standalone) training, where no
neural LM exists yet to rank tokens by entropy (L_reset's targets, ``speak.lm.boundaries.speak_losses``)."""

from __future__ import annotations

import math

import numpy as np


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
