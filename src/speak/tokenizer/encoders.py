"""ContextEncoder variants (paper Eq. 2, 7): what the token-boundary and contextual-boundary heads read."""

from __future__ import annotations

import torch
from torch import nn

from speak.tokenizer.config import TokenizerConfig

# The n-gram key (one definition; speak.tokenizer.lookup's compiled scan computes the same numbers). For the n-gram
# ending r characters after t (r = 0: ending at t):
#   h = n + 1000 r, then h = (h * NGRAM_PRIME + x + 1) & NGRAM_MASK for x = x_{t+r-n+1}, ..., x_{t+r} (oldest first;
#   x_j = ids[j], or 0 (<pad>) outside the text), and key_{n,r}(t) = (h ^ (h >> 15)) & (buckets - 1).
# Masks and shifts instead of a modulus keep the compiled scan fast; buckets is a power of two.
NGRAM_PRIME = 1_000_003
NGRAM_MASK = 2**31 - 1


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


def ngram_specs(order: int, lookahead: int) -> list[tuple[int, int]]:
    """The (n, r) pairs of an n-gram encoder, in table order: r = 0..lookahead, then n = 2..order."""
    return [(n, r) for r in range(lookahead + 1) for n in range(2, order + 1)]


def ngram_keys(char_ids: torch.Tensor, n: int, buckets: int, ahead: int = 0) -> torch.Tensor:
    """key_{n,ahead}(t) for every position [B, L] (int64); each row is one text from position 0 to L (<pad> after
    it reads as the end of the text). See NGRAM_PRIME."""
    L = char_ids.shape[-1]
    padded = nn.functional.pad(char_ids, (n, ahead), value=0)  # [B, n + L + ahead]
    h = torch.full_like(char_ids, n + 1000 * ahead)  # [B, L]
    for j in range(ahead - n + 1, ahead + 1):  # oldest character first: x_{t + j}
        h = (h * NGRAM_PRIME + padded[..., n + j : n + j + L] + 1) & NGRAM_MASK
    return (h ^ (h >> 15)) & (buckets - 1)


class HashedNGramEncoder(nn.Module):
    """Character n-gram encoder (not in the paper; docs/decisions.md): the per-character block of
    :class:`CharMLPEncoder` plus, for each order n = 2..N, a hashed embedding of the n-gram ending at t (and, with
    ``lookahead`` k, of those ending 1..k characters later) through its own Linear -> LayerNorm -> GELU block; the
    blocks' outputs are summed. With lookahead 0 it is causal.

    Each term depends on one table key, and the heads after it are linear, so I_t (before tanh) and e_t are sums of
    per-key numbers: inference stays a table lookup (speak.tokenizer.lookup.NGramLookupTables).
    """

    def __init__(self, vocab_size: int, dim: int, order: int, buckets: int, lookahead: int = 0):
        super().__init__()
        self.buckets = buckets
        self.specs = ngram_specs(order, lookahead)
        self.unigram = CharMLPEncoder(vocab_size, dim)
        self.embeds = nn.ModuleList([nn.Embedding(buckets, dim) for _ in self.specs])
        self.blocks = nn.ModuleList([_block(dim) for _ in self.specs])

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        h = self.unigram(char_ids)  # [B, L, D]
        for (n, r), embed, block in zip(self.specs, self.embeds, self.blocks):
            h = h + block(embed(ngram_keys(char_ids, n, self.buckets, r)))  # [B, L, D]
        return h

    def key_features(self) -> list[torch.Tensor]:
        """Every table entry's term: [V, D] for the characters, then [buckets, D] for each (n, r) of ``specs``."""
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
        return HashedNGramEncoder(cfg.vocab_size, cfg.char_dim, cfg.ngram_order, cfg.ngram_buckets,
                                  cfg.ngram_lookahead)
    return None
