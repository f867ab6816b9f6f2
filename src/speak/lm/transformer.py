"""A plain causal Transformer LM (GPT-style, pre-LN): the non-spiking baseline and what SDLLM converts.

    ids [B, T] -> token embedding (+ learned positions) [B, T, C] -> n_layers x Block -> LayerNorm -> head -> [B, T, V]
    Block: x = x + Attn(LN1(x));  x = x + MLP(LN2(x))          (MLP: Linear C->F, GELU, Linear F->C)
    Attn:  q, k, v = split(W_qkv x) -> heads [B, H, T, D] (rotary on q, k if positions="rotary")
           softmax(q k^T / sqrt(D) + causal mask) v -> W_o

``causal=False`` gives a bidirectional encoder (then logits are not next-token predictions). Every projection is an
``nn.Linear`` so the energy hooks and the SDLLM converter find them; the attention score / value products are
activation-activation products done with ``F.scaled_dot_product_attention`` (not Linear layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TransformerConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0  # 0 -> 4 * d_model
    max_len: int = 1024
    positions: str = "learned"  # "learned" | "rotary"
    dropout: float = 0.0
    causal: bool = True

    @property
    def ff(self) -> int:
        return self.d_ff or 4 * self.d_model


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (rotate-half form) on x [B, H, T, D] (D even)."""
    B, H, T, D = x.shape
    inv = 1.0 / base ** (torch.arange(0, D, 2, device=x.device, dtype=torch.float64) / D)  # [D/2]
    ang = torch.arange(T, device=x.device, dtype=torch.float64)[:, None] * inv[None]  # [T, D/2]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)  # [T, D/2]
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]  # [B, H, T, D/2]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # [B, H, T, D]


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        assert cfg.d_model % cfg.n_heads == 0
        self.n_heads, self.causal, self.rope = cfg.n_heads, cfg.causal, cfg.positions == "rotary"
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 x [B, T, C]
        q, k, v = (z.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for z in (q, k, v))  # [B, H, T, D]
        if self.rope:
            q, k = rotary(q), rotary(k)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, T, D]
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # [B, T, C]


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.ff)
        self.proj = nn.Linear(cfg.ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))  # [B, T, C]


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn, self.mlp = Attention(cfg), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))  # [B, T, C]
        return x + self.drop(self.mlp(self.ln2(x)))  # [B, T, C]


class TransformerLM(nn.Module):
    """ids [B, T] (int64) -> logits [B, T, V]; logits[:, t] predicts ids[:, t + 1] (when causal)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        if T > self.config.max_len and self.pos is not None:
            raise ValueError(f"sequence length {T} exceeds max_len {self.config.max_len}")
        x = self.emb(ids)  # [B, T, C]
        if self.pos is not None:
            x = x + self.pos(torch.arange(T, device=ids.device))  # [B, T, C]
        for blk in self.blocks:
            x = blk(x)  # [B, T, C]
        return self.ln_f(x)  # [B, T, C]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(ids))  # [B, T, V]
