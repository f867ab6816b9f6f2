"""Compiled CPU scan of SPEAK's neuron (paper Eq. 1, 10) with a hand-written backward (numba).

The recurrence is sequential in t but independent across sequences, so the kernels work on [L, B] arrays and
update all B sequences of one position together: the inner loop is branch-free and vectorises (SIMD across
sequences). Constants are cast to the data's dtype and no FMA contraction is allowed, so the forward is bit-exact
with the reference loop in float32 and float64.

Backward, by reverse-mode differentiation of Eq. 1 and 10 with the sigmoid surrogate sg'(x):

    dv_t/ds_t = m_t (u_reset - u_t) - (1 - m_t) theta u_th       dv_t/du_t (direct) = 1 - m_t s_t
    Gv_t = gv_t + gamma Gu_{t+1}                                  (gradient reaching v_t; Gu_{L+1} = 0)
    Gs_t = gs_t + Gv_t dv_t/ds_t
    Gu_t = gu_t + Gs_t sg'(u_t - u_th) + Gv_t (1 - m_t s_t)
    dL/dI_t = delta Gu_t
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit


@njit(cache=True, nogil=True)
def _forward_kernel(current, mask, u_out, s_out, v_out, theta, u_th, u_reset, gamma, delta):  # arrays [L, B]
    L, B = current.shape
    one = current.dtype.type(1.0)
    zero = current.dtype.type(0.0)
    soft = theta * u_th
    v = np.full(B, u_reset, dtype=current.dtype)
    for t in range(L):
        for b in range(B):
            u = gamma * v[b] + delta * current[t, b]
            s = one if u >= u_th else zero
            m = one if mask[t, b] else zero
            vb = m * (u * (one - s) + u_reset * s) + (one - m) * (u - soft * s)
            u_out[t, b] = u
            s_out[t, b] = s
            v_out[t, b] = vb
            v[b] = vb


@njit(cache=True, nogil=True)
def _backward_kernel(u, s, mask, surrogate, gu, gs, gv, grad_current, theta, u_th, u_reset, gamma, delta):
    L, B = u.shape  # all arrays [L, B]; surrogate = sg'(u - u_th)
    one = u.dtype.type(1.0)
    zero = u.dtype.type(0.0)
    soft = theta * u_th
    g_next = np.zeros(B, dtype=u.dtype)  # Gu_{t+1}
    for k in range(L):
        t = L - 1 - k
        for b in range(B):
            m = one if mask[t, b] else zero
            Gv = gv[t, b] + gamma * g_next[b]
            dv_ds = m * (u_reset - u[t, b]) - (one - m) * soft
            Gs = gs[t, b] + Gv * dv_ds
            Gu = gu[t, b] + Gs * surrogate[t, b] + Gv * (one - m * s[t, b])
            grad_current[t, b] = delta * Gu
            g_next[b] = Gu


def _lb(x: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """[B, L] tensor -> contiguous [L, B] numpy array of `dtype`."""
    return x.detach().to(dtype).t().contiguous().numpy()


class LIFScanCPU(torch.autograd.Function):
    """autograd wrapper: compiled forward, compiled hand-written backward (w.r.t. current only)."""

    @staticmethod
    def forward(ctx, current, mask, theta, u_th, u_reset, gamma, delta, alpha):
        work = current.dtype if current.dtype in (torch.float32, torch.float64) else torch.float32
        scalar = np.float32 if work == torch.float32 else np.float64
        params = tuple(scalar(p) for p in (theta, u_th, u_reset, gamma, delta))
        cur = _lb(current, work)  # [L, B]
        msk = mask.t().contiguous().numpy()  # [L, B] bool
        u, s, v = (np.empty_like(cur) for _ in range(3))
        _forward_kernel(cur, msk, u, s, v, *params)
        u_t, s_t, v_t = (torch.from_numpy(a) for a in (u, s, v))  # [L, B]
        ctx.save_for_backward(u_t, s_t)
        ctx.mask = msk
        ctx.params, ctx.alpha, ctx.out_dtype = params, alpha, current.dtype
        return tuple(x.t().to(current.dtype) for x in (u_t, s_t, v_t))  # [B, L] views

    @staticmethod
    def backward(ctx, gu, gs, gv):
        u, s = ctx.saved_tensors  # [L, B]
        sg = torch.sigmoid(ctx.alpha * (u - float(ctx.params[1])))
        surrogate = (ctx.alpha * sg * (1 - sg)).numpy()  # sg'(u - u_th), [L, B]
        grad = np.empty_like(surrogate)
        g = tuple(_lb(x, u.dtype) for x in (gu, gs, gv))
        _backward_kernel(u.numpy(), s.numpy(), ctx.mask, surrogate, *g, grad, *ctx.params)
        return torch.from_numpy(grad).t().to(ctx.out_dtype), None, None, None, None, None, None, None


def lif_scan_cpu(current, hard_reset, theta, u_th, u_reset, gamma, delta, surrogate_alpha):
    """Compiled scan; same contract as `lif_scan_reference` (outputs are [B, L] views of [L, B] buffers)."""
    return LIFScanCPU.apply(current, hard_reset, theta, u_th, u_reset, gamma, delta, surrogate_alpha)
