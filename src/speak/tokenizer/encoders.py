"""ContextEncoder variants (paper Eq. 2, 7): what the token-boundary and contextual-boundary heads read."""

from __future__ import annotations

import torch
from torch import nn

from speak.tokenizer.config import TokenizerConfig


class CharMLPEncoder(nn.Module):
    """Per-character encoder: embedding -> (Linear -> LayerNorm -> GELU) x depth (SPEC section 3, Table 7's best).

    Depends on c_t alone, which is what makes table-lookup inference possible (speak.tokenizer.lookup).
    """

    def __init__(self, vocab_size: int, dim: int, depth: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.GELU())
                                      for _ in range(depth)])

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.embed(char_ids))  # [B, L] -> [B, L, D]


def make_encoder(cfg: TokenizerConfig) -> nn.Module | None:
    """The built-in encoder for `cfg`, or None when an outer model supplies the features (GTok setting)."""
    if cfg.encoder == "char-mlp":
        return CharMLPEncoder(cfg.vocab_size, cfg.char_dim, depth=1)
    if cfg.encoder == "char-mlp-2":
        return CharMLPEncoder(cfg.vocab_size, cfg.char_dim, depth=2)
    return None
