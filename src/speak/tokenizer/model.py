"""The SPEAK tokenizer network: token-boundary head T (Eq. 2-4) and contextual-boundary head C (Eq. 7-9)
sharing one ContextEncoder, driving one entropy-aware scan (Eq. 10-11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from speak.neuron import LIFNeuron
from speak.tokenizer.config import TokenizerConfig
from speak.tokenizer.encoders import make_encoder

if TYPE_CHECKING:  # pragma: no cover
    from speak.tokenizer.lookup import LookupTables, NGramLookupTables


@dataclass
class TokenizerOutput:
    """Everything one forward produces; all [B, L]."""

    current: torch.Tensor  # I_t = Linear1(h_t)  (input current of the neuron)
    u: torch.Tensor  # pre-reset membrane potential: the soft boundaries (Eq. 4)
    s: torch.Tensor  # spikes in {0, 1}: the hard boundaries (Eq. 4); s_t = 1 closes the token at t
    v: torch.Tensor  # post-reset membrane potential
    mask_logits: torch.Tensor  # e_t = Linear2(h_t), contextual-boundary logits (Eq. 8)
    mask: torch.Tensor  # m_t = 1(sigmoid(e_t) > 0.5), bool: hard reset where True (Eq. 9)
    mask_scores: torch.Tensor | None = None  # what the threshold was compared with: e_t, or e_t - its causal mean


def causal_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Exponentially weighted mean of x [B, L] over positions <= t (time constant ``window`` positions, weights
    cut at 4 windows), normalised by the weights present, so the first positions average what exists. [B, L]"""
    k = 4 * window
    w = (1.0 - 1.0 / window) ** torch.arange(k - 1, -1, -1, dtype=x.dtype, device=x.device)  # [k], newest last
    num = F.conv1d(F.pad(x[:, None], (k - 1, 0)), w[None, None])  # [B, 1, L]
    den = F.conv1d(F.pad(torch.ones_like(x[:1, None]), (k - 1, 0)), w[None, None])  # [1, 1, L]
    return (num / den)[:, 0]  # [B, L]


class SpeakTokenizerNet(nn.Module):
    """T = LIF o Linear1 o ContextEncoder (Eq. 2) and C = Linear2 o ContextEncoder (Eq. 7).

    `forward(char_ids, features=None)`: with the built-in per-character encoder, `features` is None; in the GTok
    setting an outer model (the hourglass pre-layers) passes its hidden states [B, L, D] as the encoder output.
    """

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_dim
        self.encoder = make_encoder(cfg)
        if cfg.linear1 == "mlp":  # DTP's boundary predictor shape
            self.linear1 = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, 1))
        else:
            self.linear1 = nn.Linear(d, 1)
        self.linear2 = nn.Linear(d, 1)
        self.neuron = LIFNeuron(theta=cfg.theta, u_th=cfg.u_th, u_reset=cfg.u_reset, gamma=cfg.gamma,
                                delta=cfg.delta, surrogate_alpha=cfg.surrogate_alpha, reset_mode=cfg.reset_mode)

    def encode(self, char_ids: torch.Tensor | None, features: torch.Tensor | None = None) -> torch.Tensor:
        """ContextEncoder output h [B, L, D]."""
        if features is not None:
            return features
        if self.encoder is None:
            raise ValueError("this tokenizer reads an outer model's features (encoder='features'): pass features")
        return self.encoder(char_ids)

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(current I [B, L], contextual-boundary logits e [B, L]) from encoder states h [B, L, D]."""
        current = self.linear1(h).squeeze(-1)  # [B, L]
        if self.cfg.tanh:
            current = torch.tanh(current)
        return current, self.linear2(h).squeeze(-1)  # [B, L], [B, L]

    def forward(self, char_ids: torch.Tensor | None, features: torch.Tensor | None = None,
                mask_threshold: float | torch.Tensor = 0.0, mask_window: int = 0) -> TokenizerOutput:
        """`mask_threshold` is Eq. 9's threshold as a logit: 0 is sigmoid(e) > 0.5 as written; the GTok source
        passes one calibrated to the high-entropy share (``speak.lm.boundaries.speak``). ``mask_window`` > 0
        compares e_t - causal_mean(e)_t instead of e_t (C judges a character against its recent context)."""
        h = self.encode(char_ids, features)  # [B, L, D]
        current, e = self.heads(h)  # [B, L] each
        scores = e.detach()  # [B, L]
        if mask_window > 0:
            scores = scores - causal_mean(scores.float(), mask_window).to(scores.dtype)  # [B, L]
        mask = scores > mask_threshold  # sigmoid(e) > 0.5 <=> e > 0; no gradient through m (Eq. 9)
        u, s, v = self.neuron(current.float(), mask)  # [B, L] each
        return TokenizerOutput(current=current, u=u, s=s, v=v, mask_logits=e, mask=mask, mask_scores=scores)

    def lookup_tables(self) -> "LookupTables | NGramLookupTables":
        """The tables that make inference a lookup (per-character and hashed n-gram encoders only)."""
        from speak.neuron.modes import ResetMode
        from speak.tokenizer.lookup import LookupTables

        cfg = self.cfg
        if cfg.encoder == "char-ngram":
            return self._ngram_tables()
        if not cfg.per_character:
            raise ValueError("table lookup needs a per-character or n-gram encoder (char-*)")
        with torch.no_grad():
            current, e = self.heads(self.encode(torch.arange(cfg.vocab_size)[None]))  # [1, V] each
        hard, theta = ResetMode.parse(cfg.reset_mode).resolve(e[0] > 0, cfg.theta, (cfg.vocab_size,))
        hard = hard if hard is not None else torch.zeros(cfg.vocab_size, dtype=torch.bool)
        return LookupTables(current[0].float().numpy().copy(), hard.numpy().copy(), theta, cfg.u_th, cfg.u_reset,
                            cfg.gamma, cfg.delta)

    def _ngram_tables(self) -> "NGramLookupTables":
        """Each key's term of I_t (before tanh) and of e_t: the linear heads applied to the encoder's per-key
        features, the biases added once, in the character rows."""
        from speak.neuron.modes import ResetMode
        from speak.tokenizer import lookup

        cfg = self.cfg
        with torch.no_grad():
            feats = self.encoder.key_features()  # [K, D]
            cur = feats @ self.linear1.weight[0]  # [K]
            msk = feats @ self.linear2.weight[0]  # [K]
            cur[: cfg.vocab_size] += self.linear1.bias[0]  # the r = 0 character rows: read once per position
            msk[: cfg.vocab_size] += self.linear2.bias[0]
        mode = ResetMode.parse(cfg.reset_mode)
        _, theta = mode.resolve(None, cfg.theta, (1,))
        if mode.uses_mask:
            hard_mode = lookup.HARD_FROM_MASK
        else:
            hard_mode = lookup.HARD_ALWAYS if mode is ResetMode.ALL_HARD else lookup.HARD_NEVER
        return lookup.NGramLookupTables(
            cur.float().numpy().copy(), msk.float().numpy().copy(), cfg.vocab_size,
            cfg.ngram_order, cfg.ngram_lookahead, cfg.ngram_buckets, cfg.tanh, hard_mode, theta, cfg.u_th,
            cfg.u_reset, cfg.gamma, cfg.delta)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
