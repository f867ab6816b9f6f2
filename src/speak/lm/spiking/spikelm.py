"""SpikeLM (Xing et al. 2024; seed 002): a Transformer whose Linear layers are driven by elastic bi-spikes.

    ids [B, T] -> token + learned position embedding [B, T, C] -> n_layers x Block -> LayerNorm -> head -> [B, T, V]
    Block (pre-LN):  x = x + Attn(LN1(x));  x = x + FFN(LN2(x))
    Attn:  q, k, v = SpikeLinear_qkv(x);  softmax(q k^T / sqrt(D) + causal mask) v;  SpikeLinear_o
    FFN:   SpikeLinear_fc(x) -> GELU -> SpikeLinear_proj

SpikeLinear = ElasticBiSpike on the input, then the Linear applied to each of the T spike frames and averaged over T:
    frames f_t = alpha * s_t, s_t in {-1, 0, +1}  [T, B, L, C_in]  ->  y = mean_t W f_t + b  [B, L, C_out]
Every product W f_t has a ternary (times one scalar alpha) input, so it is additions/subtractions of weight columns
plus one scale; the run-time energy hooks see alpha * {-1, 0, 1} inputs and count ACs.

Modelling choices (docs/spiking_lms.md):
- spikes at the inputs of the attention projections (qkv, output) and of both FFN Linears; the attention score and
  value products stay dense (softmax attention on the spike-driven q, k, v), as does the LM head (``spike_head``
  turns it into a SpikeLinear too) and the embedding lookup;
- one learned step alpha per SpikeLinear (per tensor), initialised from the first batch as 2 * mean|x|, LSQ gradient;
- frequency encoding over ``time_steps`` T frames by the signed integrate-and-fire encoder of
  ``neurons.signed_if_encode`` (mean of the frames = x rounded to the grid alpha / T, clipped to [-alpha, alpha]);
- ``causal=False`` turns the model into a bidirectional encoder (``hidden(ids)`` gives [B, T, C] features).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from speak.lm.spiking.neurons import ElasticBiSpike


@dataclass
class SpikeLMConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0  # 0 -> 4 * d_model
    max_len: int = 1024
    time_steps: int = 1  # T frames of the frequency encoding (1 = single-step ternary spikes)
    causal: bool = True  # False: bidirectional encoder
    spike_head: bool = False

    @property
    def ff(self) -> int:
        return self.d_ff or 4 * self.d_model


class SpikeLinear(nn.Module):
    """Linear layer driven by elastic bi-spikes: x [..., C_in] -> mean_t Linear(alpha * s_t) [..., C_out]."""

    def __init__(self, c_in: int, c_out: int, time_steps: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.spike = ElasticBiSpike(time_steps)
        self.linear = nn.Linear(c_in, c_out, bias=bias)
        nn.init.normal_(self.linear.weight, std=0.02)
        if bias:
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.spike(x)  # [T, ..., C_in], values alpha * {-1, 0, 1}
        if frames.shape[0] == 1:
            return self.linear(frames[0])  # [..., C_out] (the mean over one frame, without its copy)
        return self.linear(frames).mean(dim=0)  # [..., C_out]


class Attention(nn.Module):
    def __init__(self, cfg: SpikeLMConfig) -> None:
        super().__init__()
        assert cfg.d_model % cfg.n_heads == 0
        self.n_heads, self.causal = cfg.n_heads, cfg.causal
        self.qkv = SpikeLinear(cfg.d_model, 3 * cfg.d_model, cfg.time_steps)
        self.proj = SpikeLinear(cfg.d_model, cfg.d_model, cfg.time_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 x [B, T, C]
        q, k, v = (z.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for z in (q, k, v))  # [B, H, T, D]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # [B, H, T, D]
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # [B, T, C]


class FFN(nn.Module):
    def __init__(self, cfg: SpikeLMConfig) -> None:
        super().__init__()
        self.fc = SpikeLinear(cfg.d_model, cfg.ff, cfg.time_steps)
        self.proj = SpikeLinear(cfg.ff, cfg.d_model, cfg.time_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))  # [B, T, C]


class Block(nn.Module):
    def __init__(self, cfg: SpikeLMConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn, self.ffn = Attention(cfg), FFN(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # [B, T, C]
        return x + self.ffn(self.ln2(x))  # [B, T, C]


class SpikeLM(nn.Module):
    """ids [B, T] (int64) -> logits [B, T, V]; logits[:, t] predicts ids[:, t + 1] when ``causal``."""

    def __init__(self, cfg: SpikeLMConfig) -> None:
        super().__init__()
        self.config = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        nn.init.normal_(self.emb.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if cfg.spike_head:
            self.head = SpikeLinear(cfg.d_model, cfg.vocab_size, cfg.time_steps, bias=False)
        else:
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
            nn.init.normal_(self.head.weight, std=0.02)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        if T > self.config.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len {self.config.max_len}")
        x = self.emb(ids) + self.pos(torch.arange(T, device=ids.device))  # [B, T, C]
        for blk in self.blocks:
            x = blk(x)  # [B, T, C]
        return self.ln_f(x)  # [B, T, C]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(ids))  # [B, T, V]
