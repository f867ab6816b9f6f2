"""SDLLM (seed 003): convert a trained non-spiking LM into a spike-driven one. The paper's code is unreleased; this is
our reading of its description ("gamma-SQP two-step spike encoding aligned with the semantic space, bidirectional
encoding under symmetric quantisation, membrane-potential clipping, spike trains with no or low firing counts
dominating, halving the number of time steps").

Per converted ``nn.Linear`` (every Linear of the model unless excluded), for its input activation x:

1. gamma-SQP, step 1 (coarse, aligned with the activation scale): on calibration activations, the step is
   Delta_c = gamma * max|x| / Q, with the clipping ratio gamma chosen from a grid (1.0 ... 0.3) to minimise the
   quantisation MSE E[(x - Delta * n(x / Delta))^2].  Q = ``time_steps``, the longest spike train.
2. gamma-SQP, step 2 (fine): starting from Delta_c, alternate n = n(x / Delta) and the least-squares step
   Delta = <x, n> / <n, n> (Lloyd iterations for a uniform symmetric grid); each half-step cannot increase the
   MSE, so the fine step is at least as good as the coarse one.
3. Symmetric quantisation: n(u) = sign(u) * (floor(|u|) + 1[frac(|u|) >= 1/2]) clipped to [-Q, Q]
   (round half away from zero; the grid is symmetric and 0 is exact: 2Q + 1 levels with Q time steps, which is the
   "halving": an unsigned spike count would need 2Q steps for as many levels).
4. Bidirectional spike-count coding with membrane-potential clipping: the membrane is charged once with u = x / Delta
   and clipped to [-Q, Q]; its polarity sign(u) is fixed at charge time. At each of the Q steps it fires a spike of
   that polarity when the polarity-aligned membrane |m| >= 1/2 and subtracts it (|m| <- |m| - 1). It fires exactly
   |n(u)| times in the first |n| steps: the spike train's sum equals the quantised integer, and small activations
   (the majority) fire 0 or 1 spikes. (Without the polarity lock, a membrane left at exactly -1/2 after a +1
   spike would fire -1 and oscillate; the tests caught this at ties such as u = 0.5.)
5. Spike-driven Linear: y = Delta * sum_t W s_t + b.  Each W s_t adds or subtracts weight columns (ACs); by
   linearity sum_t W s_t = W n, the integer matmul (exactly, for integer-valued W; up to float summation order else).

Weights stay in floating point (the seed quantises activations into spikes; weight quantisation is orthogonal).
Calibration is a single pass of the float model over ``calibration_ids`` (not layer-sequential). The attention score /
value products, LayerNorm, softmax and nonlinearities are not converted (they are not Linear layers).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass
class SDLLMConfig:
    time_steps: int = 4  # Q: spikes per activation at most; integer levels -Q..Q
    gammas: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
    refine_iters: int = 20
    max_calib_samples: int = 1 << 16  # per layer, random subsample of the calibration activations
    exclude: tuple[str, ...] = ()  # module-name substrings left unconverted
    seed: int = 0


def quantize_symmetric(u: torch.Tensor, Q: int) -> torch.Tensor:
    """Integer level of u (in step units): sign(u) * round_half_away(|u|), clipped to [-Q, Q]; float dtype of u."""
    a = u.abs().clamp(max=float(Q))  # membrane clipping first: |u| <= Q
    f = torch.floor(a)
    n = f + ((a - f) >= 0.5).to(u.dtype)
    return torch.sign(u) * n


def bidirectional_spike_encode(u: torch.Tensor, Q: int) -> torch.Tensor:
    """Signed spike-count train of u (step units): [Q, *u.shape], values in {-1, 0, +1}, sum over Q = quantize(u)."""
    sign = torch.sign(u)  # the neuron's polarity, fixed when it is charged
    m = u.abs().clamp(max=float(Q))  # membrane-potential clipping, |m| <= Q
    frames = []
    for _ in range(Q):
        fire = (m >= 0.5).to(u.dtype)  # threshold 1/2 on the polarity-aligned membrane
        m = m - fire  # subtract the emitted spike (exact: m and 1 are on the same float grid)
        frames.append(sign * fire)  # +1 / -1 spikes
    return torch.stack(frames, dim=0)


def quant_mse(x: torch.Tensor, step: float, Q: int) -> float:
    return float(((x - step * quantize_symmetric(x / step, Q)) ** 2).mean())


@dataclass
class StepFit:
    gamma: float
    coarse_step: float
    step: float
    coarse_mse: float
    mse: float


def fit_step(x: torch.Tensor, Q: int, gammas=SDLLMConfig.gammas, refine_iters: int = 20) -> StepFit:
    """gamma-SQP on calibration values x (1-D): coarse grid over gamma, then least-squares refinement."""
    x = x.detach().double().flatten()
    amax = float(x.abs().max())
    if amax == 0.0:
        return StepFit(1.0, 1.0, 1.0, 0.0, 0.0)
    best = min(((quant_mse(x, g * amax / Q, Q), g) for g in gammas))
    coarse_mse, gamma = best
    step = gamma * amax / Q
    mse = coarse_mse
    coarse = step
    for _ in range(refine_iters):
        n = quantize_symmetric(x / step, Q)
        nn_ = float((n * n).sum())
        if nn_ == 0.0:
            break
        new = float((x * n).sum()) / nn_
        new_mse = quant_mse(x, new, Q)
        if not new_mse < mse or new <= 0:
            break
        step, mse = new, new_mse
    return StepFit(gamma, coarse, step, coarse_mse, mse)


class SpikeDrivenLinear(nn.Module):
    """y = Delta * sum_t W s_t + b with s = bidirectional_spike_encode(x / Delta, Q). Wraps a trained nn.Linear."""

    def __init__(self, linear: nn.Linear, step: float, time_steps: int) -> None:
        super().__init__()
        self.synapse = nn.Linear(linear.in_features, linear.out_features, bias=False)
        self.synapse.weight = linear.weight  # shared parameter
        self.bias = linear.bias
        self.time_steps = time_steps
        self.register_buffer("step", torch.tensor(float(step)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return bidirectional_spike_encode(x / self.step.to(x.dtype), self.time_steps)  # [Q, ..., C_in]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.encode(x)  # [Q, ..., C_in] in {-1, 0, 1}
        y = self.synapse(spikes).sum(dim=0) * self.step.to(x.dtype)  # [..., C_out]
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"step={float(self.step):.4g}, time_steps={self.time_steps}"


@dataclass
class ConversionReport:
    fits: dict[str, StepFit] = field(default_factory=dict)


@torch.no_grad()
def collect_linear_inputs(model: nn.Module, ids: torch.Tensor, max_samples: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Run ``model(ids)`` once and keep, per nn.Linear, a random subsample (<= max_samples) of its input values."""
    gen = torch.Generator().manual_seed(seed)
    store: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            def pre(m, args, name=name):
                v = args[0].detach().flatten().double()
                if v.numel() > max_samples:
                    v = v[torch.randperm(v.numel(), generator=gen)[:max_samples]]
                store.setdefault(name, []).append(v)
            hooks.append(mod.register_forward_pre_hook(pre))
    was_training = model.training
    model.eval()
    try:
        model(ids)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out = {}
    for k, vs in store.items():
        v = torch.cat(vs)
        if v.numel() > max_samples:
            v = v[torch.randperm(v.numel(), generator=gen)[:max_samples]]
        out[k] = v
    return out


def convert(model: nn.Module, calibration_ids: torch.Tensor, config: SDLLMConfig | None = None) -> nn.Module:
    """Return a spike-driven copy of ``model``: every nn.Linear (not excluded) becomes a SpikeDrivenLinear whose step
    is fitted by gamma-SQP on the calibration activations. The copy carries ``sdllm_report`` (per-layer fits)."""
    cfg = config or SDLLMConfig()
    samples = collect_linear_inputs(model, calibration_ids, cfg.max_calib_samples, cfg.seed)
    new = copy.deepcopy(model)
    report = ConversionReport()
    for name, x in samples.items():
        if any(e in name for e in cfg.exclude):
            continue
        fit = fit_step(x, cfg.time_steps, cfg.gammas, cfg.refine_iters)
        report.fits[name] = fit
        parent_name, _, attr = name.rpartition(".")
        parent = new.get_submodule(parent_name) if parent_name else new
        setattr(parent, attr, SpikeDrivenLinear(getattr(parent, attr), fit.step, cfg.time_steps))
    new.sdllm_report = report
    return new
