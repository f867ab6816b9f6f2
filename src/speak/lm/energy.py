"""Energy estimate of a forward pass, counted at run time by hooks (the convention of SpikeGPT / SpikeLM / SDLLM):

    E = E_MAC * (#multiply-accumulates with dense inputs) + E_AC * (#additions triggered by non-zero spikes)

What is counted (forward hooks on every nn.Linear, nn.Embedding and nn.Conv1d/2d call):
- nn.Linear, input x [..., C_in]: the input is a *spike tensor* when its non-zero entries all share one magnitude
  (values in {0, a} or {-a, 0, a}: {0, 1} LIF spikes, alpha * {-1, 0, 1} bi-spikes, SDLLM {-1, 0, 1} trains); this is
  checked on the tensor's values at every call, not taken from a flag. Spike input: ACs = nnz(x) * C_out (each
  non-zero spike adds or subtracts one weight column; the common scale a is one multiply per output, ignored).
  Dense input: MACs = numel(x) * C_out. The bias add is ignored (one add per output, negligible).
- nn.Embedding: a lookup is a one-hot (spike) input times the table, so ACs = #ids * embedding_dim.
- nn.Conv1d/2d: MACs = numel(out) * C_in / groups * prod(kernel); spike input: ACs ~= nnz(x) * C_out / groups *
  prod(kernel) (an upper bound that ignores borders and strides).
- Not counted: LayerNorm, softmax, nonlinearities, elementwise gates, token-shift mixes, the WKV recurrence, and
  activation-activation matmuls (attention scores / values); this is the usual synaptic-operation convention.
- Firing rate of a layer = nnz / numel of its inputs over all spike-input calls.

``tokenizer_scan_energy(n_chars, ...)`` prices the standalone SPEAK tokenizer's scan without importing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

# (E_MAC, E_AC) in picojoules per operation, 45 nm CMOS, Horowitz, "Computing's energy problem (and what we can do
# about it)", ISSCC 2014: MAC = multiply + add of the format, AC = add of the format.
#   fp32: mult 3.7 + add 0.9 = 4.6 | add 0.9      (the constants SpikeGPT / SpikeLM / spiking-transformer papers use)
#   fp16: mult 1.1 + add 0.4 = 1.5 | add 0.4
#   int32: mult 3.1 + add 0.1 = 3.2 | add 0.1
#   int8: mult 0.2 + add 0.03 = 0.23 | add 0.03
ENERGY_CONSTANTS: dict[str, tuple[float, float]] = {
    "45nm-fp32": (4.6, 0.9),
    "45nm-fp16": (1.5, 0.4),
    "45nm-int32": (3.2, 0.1),
    "45nm-int8": (0.23, 0.03),
}


@dataclass
class LayerEnergy:
    name: str
    kind: str  # "linear" | "embedding" | "conv" | "scan"
    calls: int = 0
    input_numel: int = 0  # over spike-input calls (the firing-rate denominator)
    nnz: int = 0  # non-zero spikes over spike-input calls
    spike_calls: int = 0
    macs: int = 0
    acs: int = 0
    energy_pj: float = 0.0

    @property
    def firing_rate(self) -> float:
        return self.nnz / self.input_numel if self.input_numel else float("nan")

    @property
    def spiking(self) -> bool:
        return self.calls > 0 and self.spike_calls == self.calls


@dataclass
class EnergyReport:
    layers: list[LayerEnergy] = field(default_factory=list)
    total_pj: float = 0.0
    pj_per_token: float = 0.0
    mean_firing_rate: float = float("nan")  # nnz / numel over every spike-input Linear/conv call
    n_tokens: int = 0
    constants: str = "45nm-fp32"

    @property
    def total_macs(self) -> int:
        return sum(l.macs for l in self.layers)

    @property
    def total_acs(self) -> int:
        return sum(l.acs for l in self.layers)


def is_spike_tensor(x: torch.Tensor) -> bool:
    """True when every non-zero entry of x has the same magnitude ({0, a} or {-a, 0, a}); all-zero counts as spikes."""
    if x.is_floating_point():
        nz = x[x != 0]
    else:
        nz = x[x != 0].to(torch.float64)
    if nz.numel() == 0:
        return True
    mags = nz.abs()
    return bool(mags.max() == mags.min())


def _constants(name: str) -> tuple[float, float]:
    if name not in ENERGY_CONSTANTS:
        raise KeyError(f"unknown energy constants {name!r}; known: {', '.join(ENERGY_CONSTANTS)}")
    return ENERGY_CONSTANTS[name]


def _finish(report: EnergyReport, n_tokens: int) -> EnergyReport:
    e_mac, e_ac = _constants(report.constants)
    for l in report.layers:
        l.energy_pj = l.macs * e_mac + l.acs * e_ac
    report.total_pj = sum(l.energy_pj for l in report.layers)
    report.n_tokens = n_tokens
    report.pj_per_token = report.total_pj / n_tokens if n_tokens else float("nan")
    spk = [l for l in report.layers if l.kind in ("linear", "conv") and l.input_numel]
    num, den = sum(l.nnz for l in spk), sum(l.input_numel for l in spk)
    report.mean_firing_rate = num / den if den else float("nan")
    return report


class EnergyMeter:
    """Context manager that hooks a model and accumulates per-layer counts across forward calls."""

    def __init__(self, model: nn.Module, constants: str = "45nm-fp32") -> None:
        _constants(constants)
        self.model, self.constants = model, constants
        self.layers: dict[str, LayerEnergy] = {}
        self._hooks: list = []

    def _hook(self, name: str, kind: str):
        def fn(mod, args, out):
            rec = self.layers.setdefault(name, LayerEnergy(name, kind))
            rec.calls += 1
            if kind == "embedding":
                rec.acs += args[0].numel() * mod.embedding_dim
                rec.spike_calls += 1
                return
            x = args[0]
            if kind == "linear":
                dense_ops = x.numel() * mod.out_features
                fan_out = mod.out_features
            else:  # conv
                k = math.prod(mod.kernel_size)
                dense_ops = out.numel() * (mod.in_channels // mod.groups) * k
                fan_out = mod.out_channels // mod.groups * k
            if is_spike_tensor(x):
                nnz = int((x != 0).sum())
                rec.spike_calls += 1
                rec.nnz += nnz
                rec.input_numel += x.numel()
                rec.acs += nnz * fan_out
            else:
                rec.macs += dense_ops

        return fn

    def __enter__(self) -> "EnergyMeter":
        for name, mod in self.model.named_modules():
            kind = None
            if isinstance(mod, nn.Linear):
                kind = "linear"
            elif isinstance(mod, nn.Embedding):
                kind = "embedding"
            elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
                kind = "conv"
            if kind:
                self._hooks.append(mod.register_forward_hook(self._hook(name or "<root>", kind)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def report(self, n_tokens: int) -> EnergyReport:
        return _finish(EnergyReport(layers=list(self.layers.values()), constants=self.constants), n_tokens)


@torch.no_grad()
def measure_energy(model: nn.Module, ids: torch.Tensor, constants: str = "45nm-fp32") -> EnergyReport:
    """Run ``model(ids)`` (ids [B, T]) once under hooks; pj_per_token divides by B * T."""
    with EnergyMeter(model, constants) as meter:
        model(ids)
    return meter.report(ids.numel())


def tokenizer_scan_energy(
    n_chars: int,
    n_spikes: int = 0,
    constants: str = "45nm-fp32",
    with_mask_lookup: bool = True,
    count_threshold_compare: bool = False,
) -> EnergyReport:
    """Energy of the standalone SPEAK tokenizer's inference scan over ``n_chars`` characters (paper Eq. 1, 9-11,
    gamma = delta = 1, per-character current table).

    Per character: one current lookup I_t = table[c_t] (a one-hot row of a [V, 1] table: 1 AC, same convention as
    nn.Embedding), optionally one mask-logit lookup (1 AC; the entropy-aware reset), and the integration
    u_t = v_{t-1} + I_t (1 AC; gamma = delta = 1 so no multiply). Per spike: the soft reset v = u - theta * u_th
    (1 AC with the constant theta * u_th precomputed; a hard reset is an assignment, counted as a soft one here as an
    upper bound). ``count_threshold_compare`` adds the comparison u_t >= u_th as 1 AC per character.
    No MACs. Returns an EnergyReport whose layers are the scan's rows; pj_per_token is per character.
    """
    rows = [LayerEnergy("scan.current_lookup", "scan", calls=1, acs=n_chars)]
    if with_mask_lookup:
        rows.append(LayerEnergy("scan.mask_lookup", "scan", calls=1, acs=n_chars))
    rows.append(LayerEnergy("scan.integration", "scan", calls=1, acs=n_chars))
    if count_threshold_compare:
        rows.append(LayerEnergy("scan.threshold_compare", "scan", calls=1, acs=n_chars))
    rows.append(LayerEnergy("scan.reset", "scan", calls=1, acs=n_spikes, nnz=n_spikes, input_numel=n_chars))
    rep = _finish(EnergyReport(layers=rows, constants=constants), n_chars)
    rep.mean_firing_rate = n_spikes / n_chars if n_chars else float("nan")
    return rep
