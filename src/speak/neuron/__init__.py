"""SPEAK's spiking neuron (paper Eq. 1, 9-11; SPEC section 1).

`lif_scan` is the one entry point; it validates its input and dispatches to the Triton kernel for CUDA
tensors, the compiled numba kernel on CPU, or the readable reference loop (the oracle).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from speak.neuron.modes import ResetMode
from speak.neuron.reference import HeavisideSigmoid, lif_scan_reference

Backend = Literal["auto", "reference", "cpu", "gpu"]

__all__ = ["lif_scan", "LIFNeuron", "ResetMode", "HeavisideSigmoid", "lif_scan_reference", "available_backends"]


def _validate(current, hard_reset, theta, u_th, u_reset, gamma, delta, surrogate_alpha) -> torch.Tensor:
    if not isinstance(current, torch.Tensor) or not current.is_floating_point():
        raise ValueError(f"current must be a floating-point torch.Tensor of shape [B, L], got {type(current).__name__}"
                         + (f" of dtype {current.dtype}" if isinstance(current, torch.Tensor) else ""))
    if current.dim() != 2:
        raise ValueError(f"current must have shape [B, L], got shape {tuple(current.shape)}")
    # A finite sum proves every element finite (cheap); only otherwise check elementwise (the sum may overflow).
    if current.numel() and not bool(torch.isfinite(current.sum())) and not bool(torch.isfinite(current).all()):
        raise ValueError("current contains NaN or infinite values")
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta must lie in [0, 1], got {theta}")
    for name, value in (("u_th", u_th), ("u_reset", u_reset), ("gamma", gamma), ("delta", delta),
                        ("surrogate_alpha", surrogate_alpha)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if hard_reset is None:
        return torch.zeros(current.shape, dtype=torch.bool, device=current.device)
    if not isinstance(hard_reset, torch.Tensor):
        raise ValueError(f"hard_reset must be a bool torch.Tensor or None, got {type(hard_reset).__name__}")
    if tuple(hard_reset.shape) != tuple(current.shape):
        raise ValueError(f"hard_reset shape {tuple(hard_reset.shape)} does not match current shape "
                         f"{tuple(current.shape)}")
    if hard_reset.dtype != torch.bool:
        if hard_reset.numel() and not bool(((hard_reset == 0) | (hard_reset == 1)).all()):
            raise ValueError("hard_reset must be a bool mask (or hold only 0 and 1)")
        hard_reset = hard_reset != 0
    return hard_reset.to(current.device)


def available_backends() -> list[str]:
    """Backends importable here (the reference is always available)."""
    found = ["reference"]
    try:
        import speak.neuron.cpu  # noqa: F401
        found.append("cpu")
    except ImportError:
        pass
    if torch.cuda.is_available():
        try:
            import speak.neuron.gpu  # noqa: F401
            found.append("gpu")
        except ImportError:
            pass
    return found


def _pick(current: torch.Tensor, backend: Backend):
    if backend == "reference":
        return lif_scan_reference
    if backend == "gpu" or (backend == "auto" and current.is_cuda):
        if not current.is_cuda:
            raise ValueError("backend 'gpu' needs CUDA tensors")
        try:
            from speak.neuron.gpu import lif_scan_gpu
        except ImportError:
            if backend == "gpu":
                raise
            return lif_scan_reference  # CUDA without Triton: correct, slow
        return lif_scan_gpu
    if backend in ("cpu", "auto"):
        if current.is_cuda:
            raise ValueError("backend 'cpu' needs CPU tensors")
        try:
            from speak.neuron.cpu import lif_scan_cpu
        except ImportError:
            if backend == "cpu":
                raise
            return lif_scan_reference
        return lif_scan_cpu
    raise ValueError(f"unknown backend {backend!r}; valid: auto, reference, cpu, gpu")


def lif_scan(
    current: torch.Tensor,
    hard_reset: torch.Tensor | None = None,
    *,
    theta: float = 0.8,
    u_th: float = 1.0,
    u_reset: float = 0.0,
    gamma: float = 1.0,
    delta: float = 1.0,
    surrogate_alpha: float = 4.0,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scan the SPEAK neuron over positions (Eq. 1 charge/fire, Eq. 10 mask-driven reset).

    current [B, L] float: input currents I_t.  hard_reset [B, L] bool: the masks m_t of Eq. 9 (None = all False,
    i.e. theta-scaled soft reset everywhere). Returns (u, s, v), each [B, L]: the pre-reset potential u (the soft
    boundaries, what L_mem supervises), the spikes s in {0, 1} (hard boundaries), the post-reset potential v.
    Differentiable w.r.t. current: Heaviside forward, sigmoid surrogate backward, reset not detached.
    """
    mask = _validate(current, hard_reset, theta, u_th, u_reset, gamma, delta, surrogate_alpha)
    fn = _pick(current, backend)
    return fn(current, mask, float(theta), float(u_th), float(u_reset), float(gamma), float(delta),
              float(surrogate_alpha))


class LIFNeuron(nn.Module):
    """The SPEAK neuron as a module: holds the constants and the reset mode; `forward(current, mask) -> (u, s, v)`."""

    def __init__(self, theta: float = 0.8, u_th: float = 1.0, u_reset: float = 0.0, gamma: float = 1.0,
                 delta: float = 1.0, surrogate_alpha: float = 4.0,
                 reset_mode: ResetMode | str = ResetMode.ENTROPY_AWARE):
        super().__init__()
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta must lie in [0, 1], got {theta}")
        self.theta, self.u_th, self.u_reset = theta, u_th, u_reset
        self.gamma, self.delta, self.surrogate_alpha = gamma, delta, surrogate_alpha
        self.reset_mode = ResetMode.parse(reset_mode)

    def forward(self, current: torch.Tensor, mask: torch.Tensor | None = None):
        hard, theta = self.reset_mode.resolve(mask, self.theta, tuple(current.shape), current.device)
        return lif_scan(current, hard, theta=theta, u_th=self.u_th, u_reset=self.u_reset, gamma=self.gamma,
                        delta=self.delta, surrogate_alpha=self.surrogate_alpha)

    def extra_repr(self) -> str:
        return (f"reset_mode={self.reset_mode.value}, theta={self.theta}, u_th={self.u_th}, "
                f"u_reset={self.u_reset}, gamma={self.gamma}, delta={self.delta}")
