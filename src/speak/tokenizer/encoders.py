"""ContextEncoder variants (paper Eq. 2, 7): what the token-boundary and contextual-boundary heads read."""

from __future__ import annotations

import torch
from torch import nn

from speak.tokenizer.config import TokenizerConfig

# The n-gram key (one definition; speak.tokenizer.lookup's compiled scan computes the same numbers). For the
# n-gram of order n >= 2 ending at position p, newest character first:
#   h = NGRAM_SEED, then h = (h * NGRAM_PRIME + x + 1) & NGRAM_MASK for x = x_p, x_{p-1}, ..., x_{p-n+1}
#   (x_j = ids[j], or 0 (<pad>) outside the text), and key_n(p) = (h ^ (h >> 15)) & (buckets - 1).
# Newest first, the hash of order n continues the one of order n - 1, so one chain gives every order. Order 1 is the
# character id itself. A lookahead r reads key_n(t + r) from its own table. Masks and shifts instead of a modulus
# keep the compiled scan fast; buckets is a power of two.
NGRAM_SEED = 0x2545F491
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


def ngram_keys(char_ids: torch.Tensor, order: int, buckets: int, ahead: int = 0) -> list[torch.Tensor]:
    """[key_1, ..., key_order], each [B, L + ahead] int64: key_n(p) for p = 0 .. L + ahead - 1, where each row is one
    text from position 0 (<pad> before it and after its end, so key_n(t + r) with r <= ahead is defined). key_1 is
    the character id. See NGRAM_SEED."""
    ids = nn.functional.pad(char_ids, (order - 1, ahead), value=0)  # [B, order - 1 + L + ahead]
    span = ids.shape[-1] - order + 1
    h = torch.full(char_ids.shape[:-1] + (span,), NGRAM_SEED, dtype=torch.int64, device=char_ids.device)
    keys = [ids[..., order - 1:]]
    for j in range(order):  # x_{p - j}: newest first
        x = ids[..., order - 1 - j : order - 1 - j + span]
        h = (h * NGRAM_PRIME + x + 1) & NGRAM_MASK
        if j >= 1:
            keys.append((h ^ (h >> 15)) & (buckets - 1))
    return keys


class HashedNGramEncoder(nn.Module):
    """Character n-gram encoder (not in the paper; docs/decisions.md): h_t is the sum of one learned D-vector per
    table key: the character at t and the hashed n-grams of orders 2..N ending at t, and with ``lookahead`` k the
    same for the positions t + 1 .. t + k (each offset its own tables; then no longer causal: standalone use only).

    The heads after it are linear, so I_t (before tanh) and e_t are sums of one number per key: inference folds the
    tables into per-key scalars and sums a few table reads per character (speak.tokenizer.lookup.NGramLookupTables).

    Table layout (the rows of ``table``): for r = 0..k, the V character rows, then ``buckets`` rows per order 2..N.
    """

    def __init__(self, vocab_size: int, dim: int, order: int, buckets: int, lookahead: int = 0):
        super().__init__()
        self.vocab, self.order, self.buckets, self.lookahead = vocab_size, order, buckets, lookahead
        self.per_offset = vocab_size + (order - 1) * buckets
        self.table = nn.Embedding(self.per_offset * (lookahead + 1), dim)
        nn.init.normal_(self.table.weight, std=0.02)
        offsets = [vocab_size + (n - 2) * buckets for n in range(2, order + 1)]
        self.register_buffer("_offsets", torch.tensor([0] + offsets), persistent=False)

    def rows(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Every table row position t reads, [B, L, S] with S = (k + 1) N."""
        L = char_ids.shape[-1]
        keys = torch.stack(ngram_keys(char_ids, self.order, self.buckets, self.lookahead), -1)  # [B, L + k, N]
        keys = keys + self._offsets  # [B, L + k, N]
        return torch.cat([keys[..., r : r + L, :] + r * self.per_offset for r in range(self.lookahead + 1)], -1)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        rows = self.rows(char_ids)  # [B, L, S]
        out = nn.functional.embedding_bag(rows.reshape(-1, rows.shape[-1]), self.table.weight, mode="sum")
        return out.reshape(*rows.shape[:-1], -1)  # [B, L, D]

    def key_features(self) -> torch.Tensor:
        """Every table row's D-vector, [K, D] in table order."""
        return self.table.weight


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
