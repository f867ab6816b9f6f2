"""Shared stand-ins: a tiny LM and objective that need nothing but torch (the trainer is generic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speak.train.config import TrainConfig


class TinyLM(nn.Module):
    """Embedding -> dropout -> causal mean-free MLP: logits[:, t] from chars[:, t] (enough to learn bigrams)."""

    def __init__(self, vocab: int = 16, d: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.drop = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, vocab))

    def forward(self, chars: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, V]
        return self.mlp(self.drop(self.embed(chars)))


def tiny_objective(model, batch, *, step):
    logits = model(batch.chars[:, :-1])  # [B, L, V]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.chars[:, 1:].reshape(-1))
    return loss, {"lm_loss": float(loss.detach()), "bpc": float(loss.detach()) / math.log(2), "sf": 1.0}


def tiny_ids(n: int = 4000, vocab: int = 16, seed: int = 0) -> np.ndarray:
    """A learnable id sequence: a noisy cycle."""
    rng = np.random.default_rng(seed)
    base = np.arange(n) % (vocab - 2) + 2
    noise = rng.random(n) < 0.1
    base[noise] = rng.integers(2, vocab, size=int(noise.sum()))
    return base.astype(np.int64)


def tiny_cfg(out, **kw) -> TrainConfig:
    base = dict(preset="cpu-tiny", steps=6, batch_size=4, seq_len=16, lr=1e-2, warmup=2, eval_every=0,
                checkpoint_every=3, log_every=1, out=str(out), quiet=True, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def tiny_corpus(tmp_path):
    """A small real-text corpus file (about 60 KB: enough for cpu-tiny batches and a few eval windows)."""
    from speak.text.corpora import load_corpus

    text = load_corpus("embedded")[:60_000]
    p = tmp_path / "tiny.txt"
    p.write_text(text, encoding="utf-8")
    return p
