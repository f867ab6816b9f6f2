"""Triton scan of the spiking LMs' multi-step LIF for CUDA tensors; same equations and backward as ``cpu_kernels``.

x [B, T, C] is scanned as N = B * C independent sequences: each program owns a block of consecutive (b, c) pairs
and walks t in order, reading element (b, t, c) at b * T * C + t * C + c (consecutive c are consecutive in memory).
Compute is float32. Imported lazily by ``neurons.MultiStepLIF`` when a CUDA tensor arrives and Triton is installed;
``make test-triton`` runs it under Triton's interpreter (CPU tensors) against the reference loop.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

_BLOCK = 128


@triton.jit
def _lif_forward_kernel(X, V0, H, S, VL, N, T, C, tau, v_th, v_r, BLOCK: tl.constexpr):
    n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = n < N
    base = (n // C) * T * C + n % C
    v = tl.load(V0 + n, mask=ok, other=0.0).to(tl.float32)
    for t in range(0, T):
        off = base + t * C
        x = tl.load(X + off, mask=ok, other=0.0).to(tl.float32)
        h = v + (x - (v - v_r)) / tau
        s = tl.where(h - v_th >= 0.0, 1.0, 0.0)
        tl.store(H + off, h, mask=ok)
        tl.store(S + off, s, mask=ok)
        v = h * (1.0 - s) + v_r * s
    tl.store(VL + n, v, mask=ok)


@triton.jit
def _lif_backward_kernel(H, S, GS, GVL, GX, GV0, N, T, C, tau, v_th, v_r, half_a, k, detach, BLOCK: tl.constexpr):
    n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = n < N
    base = (n // C) * T * C + n % C
    gv = tl.load(GVL + n, mask=ok, other=0.0).to(tl.float32)
    for i in range(0, T):
        off = base + (T - 1 - i) * C
        h = tl.load(H + off, mask=ok, other=0.0)
        s = tl.load(S + off, mask=ok, other=0.0)
        z = k * (h - v_th)
        sg = half_a / (1.0 + z * z)
        gs = tl.load(GS + off, mask=ok, other=0.0).to(tl.float32) + (1.0 - detach) * gv * (v_r - h)
        gh = gs * sg + gv * (1.0 - s)
        tl.store(GX + off, gh / tau, mask=ok)
        gv = gh - gh / tau
    tl.store(GV0 + n, gv, mask=ok)


class LIFScanGPU(torch.autograd.Function):
    """x [B, T, C], v0 [B, C] -> (spikes [B, T, C], last membrane [B, C]); gradients to x and v0 (float32 compute)."""

    @staticmethod
    def forward(ctx, x, v0, tau, v_th, v_r, alpha, detach_reset):
        B, T, C = x.shape
        xs = x.float().contiguous()
        v0s = v0.float().contiguous()
        h, s = torch.empty_like(xs), torch.empty_like(xs)
        v_last = torch.empty_like(v0s)
        N = B * C
        if N > 0:
            _lif_forward_kernel[(triton.cdiv(N, _BLOCK),)](xs, v0s, h, s, v_last, N, T, C, tau, v_th, v_r,
                                                           BLOCK=_BLOCK)
        ctx.save_for_backward(h, s)
        ctx.consts = (tau, v_th, v_r, alpha / 2.0, math.pi / 2.0 * alpha, 1.0 if detach_reset else 0.0)
        ctx.dtypes = (x.dtype, v0.dtype)
        return s.to(x.dtype), v_last.to(x.dtype)

    @staticmethod
    def backward(ctx, gs, gv_last):
        h, s = ctx.saved_tensors
        B, T, C = h.shape
        gs = torch.zeros_like(h) if gs is None else gs.float().contiguous()
        gv_last = h.new_zeros(B, C) if gv_last is None else gv_last.float().contiguous()
        gx, gv0 = torch.empty_like(h), torch.empty_like(gv_last)
        N = B * C
        if N > 0:
            _lif_backward_kernel[(triton.cdiv(N, _BLOCK),)](h, s, gs, gv_last, gx, gv0, N, T, C, *ctx.consts,
                                                            BLOCK=_BLOCK)
        return gx.to(ctx.dtypes[0]), gv0.to(ctx.dtypes[1]), None, None, None, None, None
