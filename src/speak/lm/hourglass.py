"""The hourglass character LM with dynamic pooling (DTP, Nawrot et al. 2023; SPEC section 4).

    chars [B, L] -> embedding -> pre-layers (char level) -> boundary source -> downsample (null group + group means)
      -> LayerNorm (DTP's down-LN) -> shortened layers (over 1 + G slots, causal)
      -> upsample (slot = groups closed at or before t, DTP's) -> + pre-layer residual
      -> post-layers (char level) -> LayerNorm -> Linear -> logits [B, L, V]   (logits[:, t] predicts chars[:, t + 1])

Vanilla (boundary ``none``): no shortening; all pre + shortened + post layers run at character level.

Decisions where the reference differs or the spec is silent:
- Attention: causal multi-head self-attention through ``F.scaled_dot_product_attention(is_causal=True)`` with rotary
  position embeddings (RoPE, base 10000) on queries and keys, instead of DTP's Transformer-XL relative attention.
  Rotary is relative, needs no learned table and no length cap; in the shortened stack positions are slot indices.
- Normalisation: post-LN blocks (``x = LN(x + Drop(Attn(x))); x = LN(x + Drop(FF(x)))``) as in DTP; the final
  LayerNorm before the output projection is kept as the spec's data flow says (for post-LN it is a cheap extra).
  ``norm_first=True`` gives pre-LN blocks (often easier to train small models without warm-up).
- FF: Linear(d, d_ff) -> GELU -> Dropout -> Linear(d_ff, d). Output projection is not tied to the embedding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.boundaries import BoundaryConfig, BoundaryOutput, make_boundary_source
from speak.lm.pooling import downsample
from speak.presets import HOURGLASS_PRESETS

__all__ = [
    "PRESETS",
    "BoundaryConfig",
    "HourglassConfig",
    "HourglassLM",
    "HourglassOutput",
    "alphabet_from_vocab",
    "count_parameters",
]


@dataclass
class HourglassConfig:
    vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    layers: tuple[int, int, int] = (2, 8, 2)  # (pre, shortened, post)
    dropout: float = 0.1
    max_len: int = 2048
    boundary: BoundaryConfig = field(default_factory=BoundaryConfig)
    alphabet: tuple[str, ...] | None = None  # id -> character string; needed by sources with needs_alphabet
    norm_first: bool = False  # False = post-LN (DTP)

    def __post_init__(self) -> None:
        if isinstance(self.boundary, dict):
            self.boundary = BoundaryConfig(**self.boundary)
        self.layers = tuple(self.layers)  # type: ignore[assignment]
        if self.alphabet is not None:
            self.alphabet = tuple(self.alphabet)
        self.validate()

    def validate(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise SpeakError(f"hourglass {name} must be a positive integer, got {value!r}")
        if len(self.layers) != 3 or any(not isinstance(n, int) or n < 0 for n in self.layers):
            raise SpeakError(f"hourglass layers must be three non-negative integers (pre, shortened, post), got {self.layers!r}")
        if sum(self.layers) == 0:
            raise SpeakError("hourglass layers must contain at least one layer")
        if self.d_model % self.n_heads != 0:
            raise SpeakError(f"hourglass d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if (self.d_model // self.n_heads) % 2 != 0:
            raise SpeakError(f"hourglass head dim d_model/n_heads = {self.d_model // self.n_heads} must be even (rotary)")
        if not 0.0 <= self.dropout < 1.0:
            raise SpeakError(f"hourglass dropout must be in [0, 1), got {self.dropout}")
        if self.alphabet is not None and len(self.alphabet) != self.vocab_size:
            raise SpeakError(f"hourglass alphabet has {len(self.alphabet)} entries but vocab_size is {self.vocab_size}")
        self.boundary.validate()
        if self.boundary.source.needs_alphabet and self.alphabet is None:
            raise SpeakError(f"boundary source {self.boundary.name!r} needs HourglassConfig.alphabet (id -> character)")

    @classmethod
    def from_preset(cls, preset: str, vocab_size: int, **overrides: Any) -> "HourglassConfig":
        if preset not in PRESETS:
            raise SpeakError(f"unknown hourglass preset {preset!r}; valid: {', '.join(PRESETS)}")
        kwargs = {**PRESETS[preset], **overrides}
        return cls(vocab_size=vocab_size, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_boundary(self, name: str, **options: Any) -> "HourglassConfig":
        return replace(self, boundary=BoundaryConfig(name=name, **options))


def alphabet_from_vocab(vocab: Any) -> tuple[str, ...]:
    """id -> character string for a ``speak.text.CharVocab`` (or any object with ``char_of`` and ``len``)."""
    return tuple(vocab.char_of(i) for i in range(len(vocab)))


PRESETS = HOURGLASS_PRESETS  # model sizes by name (speak.presets)


@dataclass
class HourglassOutput:
    logits: Tensor  # [B, L, V]; logits[:, t] predicts the character at t + 1
    boundary: BoundaryOutput


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half form) for [B, H, N, hd] tensors."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # [hd / 2]
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        n = q.shape[-2]
        pos = torch.arange(n, device=q.device, dtype=torch.float32)  # [N]
        ang = torch.outer(pos, self.inv_freq)  # [N, hd / 2]
        cos = torch.cat([ang.cos(), ang.cos()], dim=-1).to(q.dtype)  # [N, hd]
        sin = torch.cat([ang.sin(), ang.sin()], dim=-1).to(q.dtype)  # [N, hd]

        def rot(x: Tensor) -> Tensor:
            x1, x2 = x.chunk(2, dim=-1)  # [B, H, N, hd / 2] each
            return x * cos + torch.cat([-x2, x1], dim=-1) * sin

        return rot(q), rot(k)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.rotary = Rotary(d_model // n_heads)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # [B, H, N, hd] x3
        q, k = self.rotary(q, k)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # [B, H, N, hd]
        return self.out(y.transpose(1, 2).reshape(B, N, D))  # [B, N, D]


class Block(nn.Module):
    def __init__(self, cfg: HourglassConfig):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.attn = CausalSelfAttention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ff = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.d_ff, cfg.d_model)
        )
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:  # [B, N, D] -> [B, N, D]
        if self.norm_first:
            x = x + self.drop(self.attn(self.ln1(x)))
            return x + self.drop(self.ff(self.ln2(x)))
        x = self.ln1(x + self.drop(self.attn(x)))
        return self.ln2(x + self.drop(self.ff(x)))


def _stack(cfg: HourglassConfig, n: int) -> nn.ModuleList:
    return nn.ModuleList(Block(cfg) for _ in range(n))


def _run(layers: nn.ModuleList, x: Tensor) -> Tensor:
    for layer in layers:
        x = layer(x)
    return x


class HourglassLM(nn.Module):
    def __init__(self, config: HourglassConfig):
        super().__init__()
        config.validate()
        self.config = config
        pre, short, post = config.layers
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.pre = _stack(config, pre)
        self.short = _stack(config, short)
        self.post = _stack(config, post)
        self.boundary_source = make_boundary_source(
            config.boundary, config.d_model, config.vocab_size, config.alphabet
        )
        self.null_group = nn.Parameter(torch.randn(config.d_model) * 0.02)
        self.down_norm = nn.LayerNorm(config.d_model)  # DTP's down-LN over the shortened sequence
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    @property
    def shortens(self) -> bool:
        return self.boundary_source.shortens

    def forward(self, chars: Tensor, boundaries: Tensor | None = None) -> HourglassOutput:
        """Logits [B, L, V] for next-character prediction. ``boundaries`` [B, L] (0/1) replaces the boundary
        source's output (e.g. to score the SPEAK proxy s_hat under the current LM, SPEC section 2)."""
        if chars.dim() != 2:
            raise SpeakError(f"HourglassLM expects chars of shape [B, L], got {tuple(chars.shape)}")
        if chars.shape[1] > self.config.max_len:
            raise SpeakError(f"sequence length {chars.shape[1]} exceeds max_len {self.config.max_len}")
        if boundaries is not None and boundaries.shape != chars.shape:
            raise SpeakError(f"boundaries must have the shape of chars {tuple(chars.shape)}, got "
                             f"{tuple(boundaries.shape)}")
        x = self.drop(self.embed(chars))  # [B, L, D]
        h = _run(self.pre, x)  # [B, L, D] causal pre-layer features
        if boundaries is None:
            boundary = self.boundary_source(chars, h)  # hard [B, L]
        else:
            boundary = BoundaryOutput(hard=boundaries.to(h.dtype))  # [B, L]
        if self.boundary_source.shortens:
            groups, _ = downsample(h, boundary.hard, self.null_group)  # [B, 1 + G, D]
            groups = _run(self.short, self.down_norm(groups))  # [B, 1 + G, D] causal over slots
            y = self.boundary_source.upsample(groups, boundary) + h  # [B, L, D] groups closed at <= t + residual
        else:
            y = _run(self.short, h)  # [B, L, D] vanilla: everything at character level
        y = _run(self.post, y)  # [B, L, D]
        logits = self.head(self.norm(y))  # [B, L, V]
        return HourglassOutput(logits=logits, boundary=boundary)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(lm_params, tokenizer_params).

    tokenizer_params = the boundary source's own parameters (DTP/MAGNET predictors; for ``speak`` the tokenizer
    heads, its encoder being the shared pre-layers). lm_params = every other parameter of the model. Parameters that
    never take part in the forward (e.g. the SPEAK net's built-in encoder when features replace it) count in neither.
    """
    model = getattr(model, "module", model)  # DDP / wrappers
    source = model.boundary_source
    tok_ids = {id(p) for p in source.tokenizer_parameters()}
    unused = {id(p) for p in source.unused_parameters()}
    tok = lm = 0
    for p in model.parameters():
        if id(p) in unused:
            continue
        if id(p) in tok_ids:
            tok += p.numel()
        else:
            lm += p.numel()
    return lm, tok
