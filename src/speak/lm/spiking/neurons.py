"""Spiking units shared by the spiking LMs: arctan-surrogate Heaviside, multi-step LIF, elastic bi-spiking.

Conventions (written here once; docs/spiking_lms.md repeats them):

Heaviside with arctan surrogate (spikingjelly's ``surrogate.ATan`` convention)
    forward   s = H(x) = 1[x >= 0]                     (x = 0 fires, as spikingjelly's ``heaviside``)
    backward  ds/dx = (alpha / 2) / (1 + (pi / 2 * alpha * x)^2),  alpha = 2
    i.e. the derivative of g(x) = arctan(pi / 2 * alpha * x) / pi + 1 / 2.

LIF neuron (spikingjelly ``LIFNode(tau=2, decay_input=True, v_threshold=1, v_reset=0)``), per channel, time = the
sequence axis (position t = 0..T-1):
    charge   h_t = v_{t-1} + (x_t - (v_{t-1} - v_reset)) / tau       (v_{-1} = v_reset = 0)
    fire     s_t = H(h_t - v_threshold)                              (arctan surrogate)
    reset    v_t = h_t * (1 - s_t) + v_reset * s_t                   (hard reset; not detached by default)
With tau = 2: constant input 1.0 gives h = 0.5, 0.75, 0.875, ... -> 1 from below, never fires; input 2.0 gives
h_t = 1.0 at every step, so it fires every step (threshold test is ``>=``).

Elastic bi-spiking (SpikeLM reading, see ``ElasticBiSpike``): ternary spikes alpha * {-1, 0, +1} with a learned step
alpha (LSQ gradient), optionally spread over ``time_steps`` frames by a signed integrate-and-fire encoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


# ----------------------------------------------------------------------------------------------------------------------
# Heaviside with arctan surrogate


class _ATanHeaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        sg = (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)
        return grad * sg, None


def atan_surrogate_grad(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Closed form of the arctan surrogate derivative ds/dx (used by the tests against autograd)."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


def heaviside_atan(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """H(x) = 1[x >= 0] forward, arctan surrogate backward. Output has x's dtype, values exactly {0, 1}."""
    return _ATanHeaviside.apply(x, alpha)


class BinarySpike(nn.Module):
    """Module form of ``heaviside_atan`` (SpikeGPT's binary embedding: spikes = H(embedding))."""

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return heaviside_atan(x, self.alpha)


# ----------------------------------------------------------------------------------------------------------------------
# Multi-step LIF over the sequence axis


Backend = str  # "auto" (compiled: numba on CPU, Triton on CUDA when installed) | "reference" (the Python loop)


def _cpu_kernels():
    """The numba kernels module, or None when numba is missing."""
    try:
        from speak.lm.spiking import cpu_kernels
    except ImportError:
        return None
    return cpu_kernels


def _gpu_kernels():
    """The Triton kernels module, or None when Triton is missing."""
    try:
        from speak.lm.spiking import gpu_kernels
    except ImportError:
        return None
    return gpu_kernels


class MultiStepLIF(nn.Module):
    """Multi-step LIF (tau = 2, threshold 1, hard reset to 0, arctan surrogate) scanned over the sequence axis.

    ``forward(x [B, T, C], v0=None)`` scans all T positions and returns spikes [B, T, C] (``return_state=True`` also
    returns the last membrane [B, C], the recurrent-generation state); ``step(x [B, C], v [B, C]) -> (s, v)`` advances
    one position. ``backend="auto"`` runs the compiled scan (``cpu_kernels.LIFScanCPU`` on CPU, the Triton scan of
    ``gpu_kernels`` on CUDA) with its hand-written backward; ``"reference"`` the Python loop over ``step`` (autograd
    backward), which the tests hold the compiled scans to. The reset is not detached by default
    (``detach_reset=False``, spikingjelly's default).
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        surrogate_alpha: float = 2.0,
        detach_reset: bool = False,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if backend not in ("auto", "reference"):
            raise ValueError(f"unknown backend {backend!r}; valid: auto, reference")
        self.tau = tau
        self.v_threshold = v_threshold
        self.v_reset = v_reset
        self.surrogate_alpha = surrogate_alpha
        self.detach_reset = detach_reset
        self.backend = backend

    def step(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One position: x [B, C], v [B, C] -> (s [B, C] in {0, 1}, v_next [B, C])."""
        h = v + (x - (v - self.v_reset)) / self.tau  # [B, C] charge (decay_input=True)
        s = heaviside_atan(h - self.v_threshold, self.surrogate_alpha)  # [B, C] fire
        s_r = s.detach() if self.detach_reset else s
        v_next = h * (1.0 - s_r) + self.v_reset * s_r  # [B, C] hard reset
        return s, v_next

    def reference(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The oracle: a Python loop over ``step``. x [B, T, C], v [B, C] -> (spikes [B, T, C], last membrane)."""
        out = []
        for t in range(x.shape[1]):
            s, v = self.step(x[:, t], v)  # [B, C], [B, C]
            out.append(s)
        return torch.stack(out, dim=1), v

    def _scan(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        consts = (float(self.tau), float(self.v_threshold), float(self.v_reset), float(self.surrogate_alpha),
                  bool(self.detach_reset))
        if self.backend == "auto" and x.shape[1] > 0:
            if x.device.type == "cpu" and (kernels := _cpu_kernels()) is not None:
                return kernels.LIFScanCPU.apply(x, v, *consts)
            if x.is_cuda and (kernels := _gpu_kernels()) is not None:
                return kernels.LIFScanGPU.apply(x, v, *consts)
        return self.reference(x, v)  # other devices, CUDA without Triton, numba missing

    def forward(
        self, x: torch.Tensor, v0: torch.Tensor | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # x: [B, T, C]
        v = x.new_full((x.shape[0], x.shape[2]), self.v_reset) if v0 is None else v0  # [B, C] at rest
        s_all, v = self._scan(x, v)  # [B, T, C], [B, C]
        return (s_all, v) if return_state else s_all

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
                f"alpha={self.surrogate_alpha}, backend={self.backend}")


# ----------------------------------------------------------------------------------------------------------------------
# Elastic bi-spiking (SpikeLM)


def signed_if_encode(u: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Frequency-encode u (in units of alpha, i.e. u = x / alpha) into ``time_steps`` ternary spike frames.

    Signed integrate-and-fire with soft reset, membrane m_0 = 0, the same input u at every step, polarity sign(u)
    fixed by the input (a bidirectional neuron that integrates |u| and emits spikes of u's sign):
        m <- m + |u|;  s_t = sign(u) * 1[m >= 1/2];  m <- m - |s_t|
    (threshold 1/2 in units of alpha, i.e. alpha / 2 on the alpha-scaled membrane; the polarity lock rules out
    -1/+1 oscillation at exact ties where the membrane sits at -1/2 after a +1 spike).
    For constant u this fires n = sign(u) * min(T, floor(T * |u| + 1/2)) times, all of the same sign, so the mean
    of the frames is n / T: u rounded (half away from zero) to the grid 1/T and clipped to [-1, 1], i.e.
    |mean - clip(u, -1, 1)| <= 1 / (2T). With T = 1 this is clamp(round(u), -1, 1).
    Returns [time_steps, *u.shape] with values exactly {-1, 0, +1}; no gradient (the caller attaches one).
    """
    u = u.detach()
    sign, a = torch.sign(u), u.abs()  # polarity-locked: the neuron only emits spikes of its input's sign
    m = torch.zeros_like(u)
    frames = []
    for _ in range(time_steps):
        m = m + a
        fire = (m >= 0.5).to(u.dtype)
        m = m - fire
        frames.append(sign * fire)
    return torch.stack(frames, dim=0)


def _grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Forward x, backward grad * scale (LSQ's step-size gradient scaling)."""
    y = x * scale
    return x.detach() + (y - y.detach())  # forward value exactly x


class ElasticBiSpike(nn.Module):
    """SpikeLM's elastic bi-spiking activation: ternary spikes alpha * {-1, 0, +1} with a learned step alpha.

    Forward with ``time_steps = T``: frames f_t = alpha * s_t, s_t from ``signed_if_encode(x / alpha, T)``; their mean
    is alpha * n / T with n = round_half_away(T * clip(x / alpha, -1, 1)) (T = 1: alpha * clamp(round(x / alpha), -1, 1)).

    Backward (LSQ, Esser et al. 2020, applied to the equivalent quantiser q(x) = alpha * n(x) / T):
        d q / d x     = 1 inside the clip range |x| <= alpha (straight-through), 0 outside
        d q / d alpha = (n / T - x / alpha) inside, sign(x) outside, times g = 1 / sqrt(numel(x) * T)
    alpha is a scalar per module, initialised from the first batch it sees as 2 * mean|x| (SpikeLM's
    initialisation; ``initialized`` is a buffer so checkpoints keep it).

    ``forward(x)`` returns the spike frames [T, *x.shape] (values exactly alpha * {-1, 0, 1}); ``mean(x)`` returns
    their mean over T (the value a downstream linear layer sees on average).
    """

    def __init__(self, time_steps: int = 1, grad_scale: bool = True, backend: Backend = "auto") -> None:
        super().__init__()
        if time_steps < 1:
            raise ValueError("time_steps must be >= 1")
        if backend not in ("auto", "reference"):
            raise ValueError(f"unknown backend {backend!r}; valid: auto, reference")
        self.time_steps = time_steps
        self.use_grad_scale = grad_scale
        self.backend = backend
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _maybe_init(self, x: torch.Tensor) -> None:
        if not bool(self.initialized):
            self.alpha.copy_((2 * x.abs().mean()).clamp_min(1e-6))
            self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [..., C] dense
        self._maybe_init(x)
        kernels = _cpu_kernels() if self.backend == "auto" and x.device.type == "cpu" else None
        if kernels is None:
            return self.reference(x)
        scale = 1.0 / math.sqrt(x.numel() * self.time_steps) if self.use_grad_scale else 1.0
        return kernels.ElasticBiSpikeCPU.apply(x, self.alpha.to(x.dtype), self.time_steps, scale)  # [T, ..., C]

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The oracle: the encoder loop of ``signed_if_encode`` and an autograd graph for the STE / LSQ gradient."""
        T = self.time_steps
        alpha = self.alpha.to(x.dtype)
        if self.use_grad_scale:
            alpha = _grad_scale(alpha, 1.0 / math.sqrt(x.numel() * T))
        spikes = signed_if_encode(x / alpha, T)  # [T, ..., C] in {-1, 0, 1}, no grad
        level = spikes.mean(dim=0)  # [..., C] = n / T exactly
        u = torch.clamp(x / alpha, -1.0, 1.0)  # [..., C] STE path
        ste = (level - u).detach() + u  # forward: n / T; backward: d u
        delta = ste - ste.detach()  # forward exactly 0; carries the STE/LSQ gradient
        return alpha * (spikes + delta.unsqueeze(0))  # [T, ..., C] = alpha * s_t exactly

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).mean(dim=0)

    def extra_repr(self) -> str:
        return f"time_steps={self.time_steps}, backend={self.backend}"
