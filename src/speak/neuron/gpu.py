"""Triton scan of SPEAK's neuron for CUDA tensors (paper Eq. 1, 10); same backward as `cpu.py`.

Each program owns a block of sequences and walks the positions in order (the recurrence is sequential in t);
tensors are laid out [L, B] so a step reads BLOCK consecutive sequences at once (coalesced).
Imported lazily: only when a CUDA tensor reaches `lif_scan` and Triton is installed.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _forward_kernel(I, M, U, S, V, B, L, theta, u_th, u_reset, gamma, delta, BLOCK: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = rows < B
    v = tl.zeros([BLOCK], dtype=tl.float32) + u_reset
    for t in range(0, L):
        off = t * B + rows
        i = tl.load(I + off, mask=ok, other=0.0).to(tl.float32)
        m = tl.load(M + off, mask=ok, other=0).to(tl.float32)
        u = gamma * v + delta * i
        s = tl.where(u >= u_th, 1.0, 0.0)
        v = m * (u * (1.0 - s) + u_reset * s) + (1.0 - m) * (u - theta * u_th * s)
        tl.store(U + off, u, mask=ok)
        tl.store(S + off, s, mask=ok)
        tl.store(V + off, v, mask=ok)


@triton.jit
def _backward_kernel(U, S, M, GU, GS, GV, GI, B, L, theta, u_th, u_reset, gamma, delta, alpha,
                     BLOCK: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = rows < B
    g_next = tl.zeros([BLOCK], dtype=tl.float32)
    for k in range(0, L):
        t = L - 1 - k
        off = t * B + rows
        u = tl.load(U + off, mask=ok, other=0.0)
        s = tl.load(S + off, mask=ok, other=0.0)
        m = tl.load(M + off, mask=ok, other=0).to(tl.float32)
        gv = gamma * g_next + tl.load(GV + off, mask=ok, other=0.0).to(tl.float32)
        dv_ds = m * (u_reset - u) - (1.0 - m) * theta * u_th
        dv_du = 1.0 - m * s
        gs = tl.load(GS + off, mask=ok, other=0.0).to(tl.float32) + gv * dv_ds
        sg = tl.sigmoid(alpha * (u - u_th))
        gu = tl.load(GU + off, mask=ok, other=0.0).to(tl.float32) + gs * alpha * sg * (1.0 - sg) + gv * dv_du
        tl.store(GI + off, delta * gu, mask=ok)
        g_next = gu


_BLOCK = 128


class LIFScanGPU(torch.autograd.Function):
    """autograd wrapper around the Triton kernels (float32 compute)."""

    @staticmethod
    def forward(ctx, current, mask, theta, u_th, u_reset, gamma, delta, alpha):
        B, L = current.shape
        cur = current.float().t().contiguous()  # [L, B]
        msk = mask.to(torch.uint8).t().contiguous()  # [L, B]
        u, s, v = (torch.empty_like(cur) for _ in range(3))
        grid = (triton.cdiv(B, _BLOCK),)
        if B > 0 and L > 0:
            _forward_kernel[grid](cur, msk, u, s, v, B, L, theta, u_th, u_reset, gamma, delta, BLOCK=_BLOCK)
        ctx.save_for_backward(u, s, msk)
        ctx.params = (theta, u_th, u_reset, gamma, delta, alpha)
        ctx.out_dtype = current.dtype
        return tuple(x.t().to(current.dtype) for x in (u, s, v))

    @staticmethod
    def backward(ctx, gu, gs, gv):
        u, s, msk = ctx.saved_tensors
        L, B = u.shape
        g = [x.float().t().contiguous() for x in (gu, gs, gv)]  # [L, B] each
        gi = torch.empty_like(u)
        if B > 0 and L > 0:
            _backward_kernel[(triton.cdiv(B, _BLOCK),)](u, s, msk, *g, gi, B, L, *ctx.params, BLOCK=_BLOCK)
        return gi.t().to(ctx.out_dtype), None, None, None, None, None, None, None


def lif_scan_gpu(current, hard_reset, theta, u_th, u_reset, gamma, delta, surrogate_alpha):
    """Triton scan; same contract as `lif_scan_reference`."""
    return LIFScanGPU.apply(current, hard_reset, theta, u_th, u_reset, gamma, delta, surrogate_alpha)
