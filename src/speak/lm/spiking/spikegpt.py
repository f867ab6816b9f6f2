"""SpikeGPT (Zhu et al. 2023; seed 004): an RWKV-4 language model with binary spikes, written from the description.

    ids [B, T] -> binary embedding H(E[ids]) [B, T, C] -> n_layers x Block -> LayerNorm -> head -> logits [B, T, V]

    Block (spike_inputs=False, the default placement: a LIF on each residual branch output)
        x = x + LIF_att(TimeMix(LN1(x)))
        x = x + LIF_ffn(ChannelMix(LN2(x)))

    Block (spike_inputs=True: spikes at the INPUTS of every Linear, so each Linear is driven by {0, 1} spikes and its
    multiply-accumulates become additions; the branch outputs are then added to the residual without a LIF)
        x = x + TimeMix(LN1(x))        with LIF before key / value / receptance / output
        x = x + ChannelMix(LN2(x))     with LIF before key / receptance / value;  head input = LIF(LN_out(x))

TimeMix (RWKV-4):  xx = token_shift(x) (x_{t-1}, the carried state at t = 0);  x_k = mu_k x + (1 - mu_k) xx (same for
v, r);  k = W_k x_k, v = W_v x_v, r = W_r x_r;  out = W_o(sigmoid(r) * WKV(w, u, k, v)), w = -exp(time_decay).
ChannelMix: k = relu(W_k x_k)^2;  out = sigmoid(W_r x_r) * W_v k.

Modelling choices (documented in docs/spiking_lms.md):
- binary embedding H(E[ids]) with the arctan surrogate (alpha = 2); no LayerNorm right after it (the first block's
  LN1 normalises); with ``spiking=False`` (the non-spiking twin) the embedding stays real and no LIF is used;
- LIF: tau = 2, threshold 1, hard reset 0, arctan surrogate (``neurons.MultiStepLIF``, a compiled scan), time = the token axis, so
  each LIF carries one membrane per channel through the sequence (and through generation);
- RWKV initialisation simplified: time_decay spread over [-5, 3] across channels (layer-dependent exponent as in
  RWKV-4), time_first = log(0.3), token-shift mixes mu = (c / C)^(1 - layer / n_layers);
- no weight tying (the embedding is binarised, the head is a separate Linear), no biases in the Linears;
- parallel form uses ``wkv.wkv`` (the compiled recurrence on CPU, the chunked form on CUDA), recurrent form on
  CUDA the per-step loop (``wkv.wkv_loop``); ``step`` carries (token-shift inputs, WKV a/b/p, every LIF membrane) in a state dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from speak.lm.spiking.neurons import MultiStepLIF, heaviside_atan
from speak.lm.spiking.wkv import wkv, wkv_loop

State = dict  # nested dict of tensors: {"blocks": [ {"att": {...}, "ffn": {...}, "lif_att": v, ...} ], "lif_head": v}


@dataclass
class SpikeGPTConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_ff: int = 0  # 0 -> 4 * d_model
    spiking: bool = True  # False: the non-spiking RWKV twin (ablation)
    spike_inputs: bool = False  # True: spikes at the inputs of the Linear layers instead of on the branch outputs
    tau: float = 2.0
    v_threshold: float = 1.0
    surrogate_alpha: float = 2.0
    wkv_chunk: int = 32
    branch_init_gain: float = 8.0  # output-projection init gain with branch LIFs (see SpikeGPT.__init__)
    ln_gain_spike_inputs: float = 2.0  # LayerNorm weight init when spike_inputs=True (see SpikeGPT.__init__)

    @property
    def ff(self) -> int:
        return self.d_ff or 4 * self.d_model


def _lif(cfg: SpikeGPTConfig) -> MultiStepLIF:
    return MultiStepLIF(tau=cfg.tau, v_threshold=cfg.v_threshold, v_reset=0.0, surrogate_alpha=cfg.surrogate_alpha)


def _token_shift(x: torch.Tensor, prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, T, C] -> (x shifted right by one with ``prev`` [B, C] (zeros if None) at t = 0, new prev = x[:, -1])."""
    first = torch.zeros_like(x[:, 0]) if prev is None else prev  # [B, C]
    xx = torch.cat([first[:, None], x[:, :-1]], dim=1)  # [B, T, C]
    return xx, x[:, -1]


class _InputSpikes(nn.Module):
    """Named LIFs placed before Linear layers (spike_inputs=True) or identities; state = their membranes."""

    def __init__(self, cfg: SpikeGPTConfig, names: list[str]) -> None:
        super().__init__()
        self.on = cfg.spiking and cfg.spike_inputs
        self.lifs = nn.ModuleDict({n: _lif(cfg) for n in names}) if self.on else nn.ModuleDict()

    def __call__(self, name: str, x: torch.Tensor, st: dict, new: dict) -> torch.Tensor:
        if not self.on:
            return x
        s, v = self.lifs[name](x, st.get("lif_" + name), return_state=True)  # [B, T, C] spikes, [B, C]
        new["lif_" + name] = v
        return s


class TimeMix(nn.Module):
    def __init__(self, cfg: SpikeGPTConfig, layer: int) -> None:
        super().__init__()
        C = cfg.d_model
        ratio_0_to_1 = layer / max(cfg.n_layers - 1, 1)
        ratio_1_to_almost0 = 1.0 - layer / cfg.n_layers
        c = torch.arange(C, dtype=torch.float32)
        self.time_decay = nn.Parameter(-5 + 8 * (c / max(C - 1, 1)) ** (0.7 + 1.3 * ratio_0_to_1))  # [C]
        self.time_first = nn.Parameter(torch.full((C,), float(torch.log(torch.tensor(0.3)))))  # [C]
        mix = (c / C) ** ratio_1_to_almost0
        self.mix_k = nn.Parameter(mix.clone())
        self.mix_v = nn.Parameter(mix.clone() + 0.3 * ratio_0_to_1)
        self.mix_r = nn.Parameter(0.5 * mix.clone())
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.spk = _InputSpikes(cfg, ["k", "v", "r", "o"])
        self.chunk = cfg.wkv_chunk

    def forward(self, x: torch.Tensor, st: dict, recurrent: bool = False) -> tuple[torch.Tensor, dict]:
        # x: [B, T, C] (LayerNorm'd residual)
        new: dict = {}
        xx, new["shift"] = _token_shift(x, st.get("shift"))  # [B, T, C]
        d = x - xx  # [B, T, C]; x_m = mu x + (1 - mu) xx = xx + mu (x - xx), one fused op per mix
        xk = torch.addcmul(xx, d, self.mix_k)  # [B, T, C]
        xv = torch.addcmul(xx, d, self.mix_v)  # [B, T, C]
        xr = torch.addcmul(xx, d, self.mix_r)  # [B, T, C]
        k = self.key(self.spk("k", xk, st, new))  # [B, T, C]
        v = self.value(self.spk("v", xv, st, new))  # [B, T, C]
        r = torch.sigmoid(self.receptance(self.spk("r", xr, st, new)))  # [B, T, C]
        w = -torch.exp(self.time_decay)  # [C], < 0
        if recurrent and k.is_cuda:
            y, new["wkv"] = wkv_loop(w, self.time_first, k, v, st.get("wkv"))  # [B, T, C]
        else:
            y, new["wkv"] = wkv(w, self.time_first, k, v, st.get("wkv"), chunk=self.chunk)  # [B, T, C]
        return self.output(self.spk("o", r * y, st, new)), new  # [B, T, C]


class ChannelMix(nn.Module):
    def __init__(self, cfg: SpikeGPTConfig, layer: int) -> None:
        super().__init__()
        C, Fd = cfg.d_model, cfg.ff
        c = torch.arange(C, dtype=torch.float32)
        mix = (c / C) ** (1.0 - layer / cfg.n_layers)
        self.mix_k = nn.Parameter(mix.clone())
        self.mix_r = nn.Parameter(mix.clone())
        self.key = nn.Linear(C, Fd, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(Fd, C, bias=False)
        self.spk = _InputSpikes(cfg, ["k", "r", "v"])

    def forward(self, x: torch.Tensor, st: dict, recurrent: bool = False) -> tuple[torch.Tensor, dict]:
        # x: [B, T, C]
        new: dict = {}
        xx, new["shift"] = _token_shift(x, st.get("shift"))  # [B, T, C]
        d = x - xx  # [B, T, C]
        xk = torch.addcmul(xx, d, self.mix_k)  # [B, T, C]
        xr = torch.addcmul(xx, d, self.mix_r)  # [B, T, C]
        k = torch.square(torch.relu(self.key(self.spk("k", xk, st, new))))  # [B, T, F]
        kv = self.value(self.spk("v", k, st, new))  # [B, T, C]
        return torch.sigmoid(self.receptance(self.spk("r", xr, st, new))) * kv, new  # [B, T, C]


class Block(nn.Module):
    def __init__(self, cfg: SpikeGPTConfig, layer: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.att = TimeMix(cfg, layer)
        self.ffn = ChannelMix(cfg, layer)
        self.branch_lif = cfg.spiking and not cfg.spike_inputs
        if self.branch_lif:
            self.lif_att = _lif(cfg)
            self.lif_ffn = _lif(cfg)

    def forward(self, x: torch.Tensor, st: dict, recurrent: bool = False) -> tuple[torch.Tensor, dict]:
        # x: [B, T, C]
        new: dict = {}
        h, new["att"] = self.att(self.ln1(x), st.get("att", {}), recurrent)  # [B, T, C]
        if self.branch_lif:
            h, new["lif_att"] = self.lif_att(h, st.get("lif_att"), return_state=True)  # [B, T, C] spikes
        x = x + h  # [B, T, C]
        h, new["ffn"] = self.ffn(self.ln2(x), st.get("ffn", {}), recurrent)  # [B, T, C]
        if self.branch_lif:
            h, new["lif_ffn"] = self.lif_ffn(h, st.get("lif_ffn"), return_state=True)  # [B, T, C] spikes
        return x + h, new  # [B, T, C]


class SpikeGPT(nn.Module):
    """ids [B, T] (int64) -> logits [B, T, V]; logits[:, t] predicts ids[:, t + 1]."""

    def __init__(self, cfg: SpikeGPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.emb.weight, std=1.0 if cfg.spiking else 0.02)
        self.blocks = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layers)])
        self.ln_out = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head_lif = _lif(cfg) if (cfg.spiking and cfg.spike_inputs) else None
        if cfg.spiking and not cfg.spike_inputs:
            # branch LIFs (threshold 1) read the branch outputs, which PyTorch's default init keeps at ~0.2 rms: no
            # spike at all at init. Output projections ~ N(0, (gain / sqrt(fan_in))^2), gain 8: ~5-8% fire at init
            for b in self.blocks:
                for lin in (b.att.output, b.ffn.value):
                    nn.init.normal_(lin.weight, std=cfg.branch_init_gain / math.sqrt(lin.in_features))
        if cfg.spiking and cfg.spike_inputs:
            # LIFs read LayerNorm'd inputs here: a gain of 2 lets a standardised input of 1 reach the threshold at
            # its first step (about 16% of the inputs fire at init instead of about 2%)
            for ln in [self.ln_out] + [b.ln1 for b in self.blocks] + [b.ln2 for b in self.blocks]:
                nn.init.constant_(ln.weight, cfg.ln_gain_spike_inputs)

    def forward_with_state(
        self, ids: torch.Tensor, state: State | None = None, recurrent: bool = False
    ) -> tuple[torch.Tensor, State]:
        """ids [B, T] with an optional carried state -> (logits [B, T, V], state after the last position).

        ``recurrent=True`` runs the exact per-step WKV recurrence (generation; on CPU the compiled kernel is that
        recurrence); False the fastest parallel form (``wkv.wkv``).
        """
        state = state or {}
        x = self.emb(ids)  # [B, T, C]
        if self.config.spiking:
            x = heaviside_atan(x, self.config.surrogate_alpha)  # [B, T, C] binary embedding in {0, 1}
        blocks_st = state.get("blocks", [{}] * len(self.blocks))
        new_blocks = []
        for blk, st in zip(self.blocks, blocks_st):
            x, ns = blk(x, st, recurrent)  # [B, T, C]
            new_blocks.append(ns)
        x = self.ln_out(x)  # [B, T, C]
        new: State = {"blocks": new_blocks}
        if self.head_lif is not None:
            x, new["lif_head"] = self.head_lif(x, state.get("lif_head"), return_state=True)  # [B, T, C] spikes
        return self.head(x), new  # [B, T, V]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.forward_with_state(ids)[0]

    def step(self, ids_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Recurrent generation: ids_t [B] -> (logits [B, V], new state); state None = start of sequence."""
        logits, state = self.forward_with_state(ids_t[:, None], state, recurrent=True)  # [B, 1, V]
        return logits[:, 0], state
