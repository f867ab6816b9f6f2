"""The oracle: SPEAK's neuron as a plain PyTorch loop over positions (paper Eq. 1, 9-11; SPEC section 1).

Slow (one Python iteration per character) and obvious; autograd provides the backward. The compiled CPU and
GPU kernels are checked against it.
"""

from __future__ import annotations

import torch


class HeavisideSigmoid(torch.autograd.Function):
    """s = H(x) = 1(x >= 0) forward; sigmoid surrogate a * sig(a x) * (1 - sig(a x)) backward (spikingjelly's default)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad * ctx.alpha * sg * (1 - sg), None


def lif_scan_reference(
    current: torch.Tensor,
    hard_reset: torch.Tensor,
    theta: float,
    u_th: float,
    u_reset: float,
    gamma: float,
    delta: float,
    surrogate_alpha: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scan Eq. 1 (charge, fire) and Eq. 10 (mask-driven reset) over t; returns (u, s, v), each [B, L].

    u_t = gamma * v_{t-1} + delta * I_t                 (v_0 = u_reset)
    s_t = H(u_t - u_th)
    v_t = m_t (u_t (1 - s_t) + u_reset s_t) + (1 - m_t)(u_t - theta u_th s_t)
    The reset is not detached: gradients flow through s_t inside v_t.
    """
    B, L = current.shape
    m = hard_reset.to(current.dtype)  # [B, L]
    v = current.new_full((B,), u_reset)  # [B]
    us, ss, vs = [], [], []
    for t in range(L):
        u = gamma * v + delta * current[:, t]  # [B]
        s = HeavisideSigmoid.apply(u - u_th, surrogate_alpha)  # [B]
        v = m[:, t] * (u * (1 - s) + u_reset * s) + (1 - m[:, t]) * (u - theta * u_th * s)
        us.append(u)
        ss.append(s)
        vs.append(v)
    if L == 0:  # keep the (empty) outputs attached to the graph
        return current * 1.0, current * 0.0, current * 1.0
    return torch.stack(us, 1), torch.stack(ss, 1), torch.stack(vs, 1)
