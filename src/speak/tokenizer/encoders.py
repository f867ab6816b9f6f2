"""ContextEncoder variants (paper Eq. 2, 7): what the token-boundary and contextual-boundary heads read."""

from __future__ import annotations

import torch
from torch import nn

from speak.tokenizer.config import TokenizerConfig

# The n-gram key (one definition; speak.tokenizer.lookup's compiled scan computes the same numbers):
#   key_n(t) = H_n(x_{t-n+1}, ..., x_t) mod buckets,  x_j = ids[j], or 0 (<pad>) before the text starts,
#   H_n: h = n, then h = (h * NGRAM_PRIME + x + 1) mod NGRAM_MODULUS for each x, oldest first.
NGRAM_PRIME = 1_000_003
NGRAM_MODULUS = 2**31 - 1


def _block(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.GELU())


class CharMLPEncoder(nn.Module):
    """Per-character encoder: embedding -> (Linear -> LayerNorm -> GELU) x depth (SPEC section 3, Table 7's best).

    Depends on c_t alone, which is what makes table-lookup inference possible (speak.tokenizer.lookup).
    """

    def __init__(self, vocab_size: int, dim: int, depth: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.blocks = nn.Sequential(*[_block(dim) for _ in range(depth)])

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.embed(char_ids))  # [B, L] -> [B, L, D]


def ngram_keys(char_ids: torch.Tensor, n: int, buckets: int) -> torch.Tensor:
    """key_n(t) for every position [B, L] (int64), each row a text starting at position 0 (see NGRAM_PRIME)."""
    L = char_ids.shape[-1]
    h = torch.full_like(char_ids, n)  # [B, L]
    for lag in range(n - 1, -1, -1):  # oldest character first
        x = nn.functional.pad(char_ids, (lag, 0), value=0)[..., :L]  # [B, L]: x_{t - lag}, <pad> before the start
        h = (h * NGRAM_PRIME + x + 1) % NGRAM_MODULUS
    return h % buckets


class HashedNGramEncoder(nn.Module):
    """Causal character n-gram encoder (not in the paper; docs/decisions.md): the per-character block of
    :class:`CharMLPEncoder` plus, for each order n = 2..N, a hashed embedding of the n-gram ending at t through its
    own Linear -> LayerNorm -> GELU block; the blocks' outputs are summed.

    Each term depends on one table key, and the heads after it are linear, so I_t (before tanh) and e_t are sums of
    per-key numbers: inference stays a table lookup (speak.tokenizer.lookup.NGramLookupTables).
    """

    def __init__(self, vocab_size: int, dim: int, order: int, buckets: int):
        super().__init__()
        self.order, self.buckets = order, buckets
        self.unigram = CharMLPEncoder(vocab_size, dim)
        self.embeds = nn.ModuleList([nn.Embedding(buckets, dim) for _ in range(2, order + 1)])
        self.blocks = nn.ModuleList([_block(dim) for _ in range(2, order + 1)])

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        h = self.unigram(char_ids)  # [B, L, D]
        for n, embed, block in zip(range(2, self.order + 1), self.embeds, self.blocks):
            h = h + block(embed(ngram_keys(char_ids, n, self.buckets)))  # [B, L, D]
        return h

    def key_features(self) -> list[torch.Tensor]:
        """Every table entry's term: [V, D] for the characters, then [buckets, D] for each order 2..N."""
        vocab = self.unigram.embed.num_embeddings
        feats = [self.unigram(torch.arange(vocab, device=self.unigram.embed.weight.device))]
        return feats + [block(embed.weight) for embed, block in zip(self.embeds, self.blocks)]


def make_encoder(cfg: TokenizerConfig) -> nn.Module | None:
    """The built-in encoder for `cfg`, or None when an outer model supplies the features (GTok setting)."""
    if cfg.encoder == "char-mlp":
        return CharMLPEncoder(cfg.vocab_size, cfg.char_dim, depth=1)
    if cfg.encoder == "char-mlp-2":
        return CharMLPEncoder(cfg.vocab_size, cfg.char_dim, depth=2)
    if cfg.encoder == "char-ngram":
        return HashedNGramEncoder(cfg.vocab_size, cfg.char_dim, cfg.ngram_order, cfg.ngram_buckets)
    return None
