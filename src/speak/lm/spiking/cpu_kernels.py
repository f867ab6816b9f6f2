"""Compiled CPU scans of the spiking LMs' units (numba) with hand-written backward passes.

Each kernel has a readable reference beside it (``neurons.MultiStepLIF.reference``, ``neurons.signed_if_encode`` +
``ElasticBiSpike.reference``, ``wkv.wkv_loop``); tests compare values and gradients. Constants are cast to the data's
dtype and no FMA contraction is allowed, so the LIF forward is bit-exact with its reference loop.

Multi-step LIF (``neurons`` module doc), per channel, reverse-mode through the non-detached hard reset:

    forward   h_t = v_{t-1} + (x_t - (v_{t-1} - v_r)) / tau;  s_t = H(h_t - v_th);  v_t = h_t (1 - s_t) + v_r s_t
    backward  Gv_{T-1} = gv_last;  Gs_t = gs_t + Gv_t (v_r - h_t)   (no second term with detach_reset)
              Gh_t = Gs_t sg'(h_t - v_th) + Gv_t (1 - s_t);  gx_t = Gh_t / tau;  Gv_{t-1} = Gh_t - Gh_t / tau

WKV (``wkv`` module doc: y_t = (A_t + e^{u+k_t} v_t) / (B_t + e^{u+k_t}), A_{t+1} = e^w A_t + e^{k_t} v_t, B alike):

    direct    dy_t/dv_t = e^{u+k_t} / D_t;  dy_t/dk_t = dy_t/du = e^{u+k_t} (v_t - y_t) / D_t   (D_t = B_t + e^{u+k_t})
    carried   GA_t = g_t / D_t + e^w GA_{t+1};  GB_t = -g_t y_t / D_t + e^w GB_{t+1}
              gv_t += GA_{t+1} e^{k_t};  gk_t += e^{k_t} (GA_{t+1} v_t + GB_{t+1});  gw += e^w (GA_{t+1} A_t + GB_{t+1} B_t)
GA, GB are kept as (ga, gb) * e^r with a running maximum exponent r (as the forward keeps A, B as (a, b) * e^p), so
every exp() argument is <= 0 and nothing overflows. The incoming state gets no gradient (training starts from rest;
generation runs without gradients).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

NEG = -1e38  # the WKV state's stand-in for -inf (wkv.NEG_INF_STATE)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


# ---------------------------------------------------------------------------------------------- multi-step LIF
@njit(cache=True, nogil=True, parallel=True)
def _lif_forward(x, v0, h_out, s_out, v_last, tau, v_th, v_r):  # x, h, s [B, T, C]; v0, v_last [B, C]
    B, T, C = x.shape
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for b in prange(B):
        v = v0[b].copy()
        for t in range(T):
            for c in range(C):
                h = v[c] + (x[b, t, c] - (v[c] - v_r)) / tau
                s = one if h - v_th >= zero else zero
                h_out[b, t, c] = h
                s_out[b, t, c] = s
                v[c] = h * (one - s) + v_r * s
        v_last[b] = v


@njit(cache=True, nogil=True, parallel=True)
def _lif_backward(h, s, gs, gv_last, gx, gv0, tau, v_th, v_r, alpha, detach_reset):
    B, T, C = h.shape
    one = h.dtype.type(1.0)
    half_a = h.dtype.type(alpha / 2.0)
    k = h.dtype.type(math.pi / 2.0 * alpha)
    for b in prange(B):
        Gv = gv_last[b].copy()
        for i in range(T):
            t = T - 1 - i
            for c in range(C):
                ht = h[b, t, c]
                z = k * (ht - v_th)
                sg = half_a / (one + z * z)
                Gs = gs[b, t, c]
                if not detach_reset:
                    Gs = Gs + Gv[c] * (v_r - ht)
                Gh = Gs * sg + Gv[c] * (one - s[b, t, c])
                gx[b, t, c] = Gh / tau
                Gv[c] = Gh - Gh / tau
        gv0[b] = Gv


class LIFScanCPU(torch.autograd.Function):
    """x [B, T, C], v0 [B, C] -> (spikes [B, T, C], last membrane [B, C]); gradients to x and v0."""

    @staticmethod
    def forward(ctx, x, v0, tau, v_th, v_r, alpha, detach_reset):
        work = _work_dtype(x)
        sc = np.float32 if work == torch.float32 else np.float64
        xs, v0s = _np(x.to(work)), _np(v0.to(work))
        h, s = np.empty_like(xs), np.empty_like(xs)
        v_last = np.empty_like(v0s)
        _lif_forward(xs, v0s, h, s, v_last, sc(tau), sc(v_th), sc(v_r))
        h_t, s_t = torch.from_numpy(h), torch.from_numpy(s)
        ctx.save_for_backward(h_t, s_t)
        ctx.consts = (sc(tau), sc(v_th), sc(v_r), float(alpha), bool(detach_reset))
        ctx.dtypes = (x.dtype, v0.dtype)
        return s_t.to(x.dtype), torch.from_numpy(v_last).to(x.dtype)

    @staticmethod
    def backward(ctx, gs, gv_last):
        h, s = ctx.saved_tensors
        tau, v_th, v_r, alpha, detach = ctx.consts
        gs_np = _np(gs.to(h.dtype)) if gs is not None else np.zeros_like(h.numpy())
        B, _, C = h.shape
        gv_np = _np(gv_last.to(h.dtype)) if gv_last is not None else np.zeros((B, C), dtype=h.numpy().dtype)
        gx, gv0 = np.empty_like(gs_np), np.empty_like(gv_np)
        _lif_backward(h.numpy(), s.numpy(), gs_np, gv_np, gx, gv0, tau, v_th, v_r, alpha, detach)
        return (torch.from_numpy(gx).to(ctx.dtypes[0]), torch.from_numpy(gv0).to(ctx.dtypes[1]),
                None, None, None, None, None)


# ---------------------------------------------------------------------------------------------- elastic bi-spike
@njit(cache=True, nogil=True)
def _signed_if(u, frames):  # u [N]; frames [T, N] in {-1, 0, 1}
    T = frames.shape[0]
    one = u.dtype.type(1.0)
    zero = u.dtype.type(0.0)
    half = u.dtype.type(0.5)
    for n in range(u.shape[0]):
        a = abs(u[n])
        sign = one if u[n] > zero else (-one if u[n] < zero else zero)
        m = zero
        for t in range(T):
            m = m + a
            fire = one if m >= half else zero
            m = m - fire
            frames[t, n] = sign * fire


def signed_if_encode_cpu(u: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Compiled ``neurons.signed_if_encode``: u [...] -> frames [time_steps, ...] in {-1, 0, 1} (no gradient)."""
    flat = _np(u.reshape(-1).to(_work_dtype(u)))
    frames = np.empty((time_steps, flat.size), dtype=flat.dtype)
    _signed_if(flat, frames)
    return torch.from_numpy(frames).to(u.dtype).view(time_steps, *u.shape)


@njit(cache=True, nogil=True)
def _bispike_forward(x, alpha, out, spikes):  # x [N]; out [T, N] = alpha * s_t; spikes [T, N] int8
    T = out.shape[0]
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    half = x.dtype.type(0.5)
    for n in range(x.shape[0]):
        u = x[n] / alpha
        a = abs(u)
        sign = one if u > zero else (-one if u < zero else zero)
        m = zero
        for t in range(T):
            m = m + a
            fire = one if m >= half else zero
            m = m - fire
            s = sign * fire
            out[t, n] = alpha * s
            spikes[t, n] = np.int8(s)


@njit(cache=True, nogil=True)
def _bispike_backward(x, alpha, spikes, g, gx):  # x [N]; spikes, g [T, N] -> gx [N]; returns the alpha sum
    T, N = spikes.shape
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    g_alpha = 0.0
    for n in range(N):
        u = x[n] / alpha
        inside = one if (u >= -one and u <= one) else zero
        gsum = zero
        gs = zero
        for t in range(T):
            gsum += g[t, n]
            gs += g[t, n] * spikes[t, n]
        gx[n] = gsum * inside
        g_alpha += gs - gsum * u * inside
    return g_alpha


class ElasticBiSpikeCPU(torch.autograd.Function):
    """x [...], alpha (0-d) -> frames alpha * s_t [T, ...] (``ElasticBiSpike``'s forward and LSQ backward, fused).

    d frames_t / d x = 1 inside |x / alpha| <= 1, else 0 (straight-through);
    d frames_t / d alpha = s_t - (x / alpha) * inside, times the LSQ gradient scale ``scale``.
    """

    @staticmethod
    def forward(ctx, x, alpha, time_steps, scale):
        work = _work_dtype(x)
        xs = _np(x.reshape(-1).to(work))  # [N]
        a = xs.dtype.type(float(alpha.to(work)))
        out = np.empty((time_steps, xs.size), dtype=xs.dtype)
        spikes = np.empty((time_steps, xs.size), dtype=np.int8)
        _bispike_forward(xs, a, out, spikes)
        ctx.save_for_backward(x, alpha)
        ctx.spikes, ctx.scale, ctx.work = spikes, scale, work
        return torch.from_numpy(out).to(x.dtype).view(time_steps, *x.shape)

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        xs = _np(x.reshape(-1).to(ctx.work))
        a = xs.dtype.type(float(alpha.to(ctx.work)))
        gx = np.empty_like(xs)
        g_alpha = _bispike_backward(xs, a, ctx.spikes, _np(g.reshape(ctx.spikes.shape[0], -1).to(ctx.work)), gx)
        return (torch.from_numpy(gx).view(x.shape).to(x.dtype), torch.tensor(g_alpha * ctx.scale, dtype=alpha.dtype),
                None, None)


# ---------------------------------------------------------------------------------------------- WKV
@njit(cache=True, nogil=True, parallel=True)
def _wkv_forward(w, u, k, v, a0, b0, p0, y, sa, sb, sp, a1, b1, p1, save):
    # w, u [C]; k, v, y, sa, sb, sp [B, T, C] (sa/sb/sp: the state before position t, written if save); a0.. a1.. [B, C]
    B, T, C = k.shape
    for b in prange(B):
        a = a0[b].copy()
        bb = b0[b].copy()
        p = p0[b].copy()
        for t in range(T):
            for c in range(C):
                kt = k[b, t, c]
                vt = v[b, t, c]
                if save:
                    sa[b, t, c] = a[c]
                    sb[b, t, c] = bb[c]
                    sp[b, t, c] = p[c]
                ww = u[c] + kt
                q = max(p[c], ww)
                e1 = math.exp(p[c] - q)
                e2 = math.exp(ww - q)
                y[b, t, c] = (e1 * a[c] + e2 * vt) / (e1 * bb[c] + e2)
                ww = p[c] + w[c]
                q = max(ww, kt)
                e1 = math.exp(ww - q)
                e2 = math.exp(kt - q)
                a[c] = e1 * a[c] + e2 * vt
                bb[c] = e1 * bb[c] + e2
                p[c] = q
        a1[b] = a
        b1[b] = bb
        p1[b] = p


@njit(cache=True, nogil=True, parallel=True)
def _wkv_backward(w, u, k, v, sa, sb, sp, g, gk, gv, gw, gu):
    # gk, gv [B, T, C]; gw, gu [B, C] (summed over B by the caller)
    B, T, C = k.shape
    zero = k.dtype.type(0.0)
    neg = k.dtype.type(NEG)
    for b in prange(B):
        ga = np.zeros(C, dtype=k.dtype)  # GA_{t+1} = ga * e^r
        gb = np.zeros(C, dtype=k.dtype)
        r = np.full(C, neg, dtype=k.dtype)
        for c in range(C):
            gw[b, c] = zero
            gu[b, c] = zero
        for i in range(T):
            t = T - 1 - i
            for c in range(C):
                kt = k[b, t, c]
                vt = v[b, t, c]
                at = sa[b, t, c]
                bt = sb[b, t, c]
                pt = sp[b, t, c]
                gt = g[b, t, c]
                ww = u[c] + kt
                q = max(pt, ww)
                e1 = math.exp(pt - q)
                e2 = math.exp(ww - q)
                d = e1 * bt + e2
                yt = (e1 * at + e2 * vt) / d
                # direct terms
                gdir = gt * e2 / d
                gvt = gdir
                gkt = gdir * (vt - yt)
                gu[b, c] += gkt
                # through the state after position t
                ek = math.exp(r[c] + kt)
                gvt += ga[c] * ek
                gkt += ek * (ga[c] * vt + gb[c])
                gw[b, c] += math.exp(w[c] + r[c] + pt) * (ga[c] * at + gb[c] * bt)
                gk[b, t, c] = gkt
                gv[b, t, c] = gvt
                # GA_t, GB_t
                rw = r[c] + w[c]
                rn = max(rw, -q)
                f1 = math.exp(rw - rn)
                f2 = math.exp(-q - rn) * gt / d
                ga[c] = f1 * ga[c] + f2
                gb[c] = f1 * gb[c] - f2 * yt
                r[c] = rn


class WKVCPU(torch.autograd.Function):
    """(w [C], u [C], k [B, T, C], v [B, T, C], a0, b0, p0 [B, C]) -> (y [B, T, C], a, b, p [B, C]).

    Gradients to w, u, k, v; the incoming state gets none and the outgoing state carries none. ``save=False``
    (no gradient wanted: evaluation, generation) skips storing the per-position states the backward reads.
    """

    @staticmethod
    def forward(ctx, w, u, k, v, a0, b0, p0, save=True):
        work = _work_dtype(k)
        arrs = [_np(x.to(work)) for x in (w, u, k, v, a0, b0, p0)]
        kk = arrs[2]
        y = np.empty_like(kk)
        sa, sb, sp = (np.empty_like(kk) if save else np.empty((0, 0, 0), kk.dtype) for _ in range(3))
        a1, b1, p1 = (np.empty_like(arrs[4]) for _ in range(3))
        _wkv_forward(*arrs, y, sa, sb, sp, a1, b1, p1, save)
        ctx.save_for_backward(*(torch.from_numpy(x) for x in (arrs[0], arrs[1], arrs[2], arrs[3], sa, sb, sp)))
        ctx.dtypes = (w.dtype, u.dtype, k.dtype, v.dtype)
        outs = tuple(torch.from_numpy(x).to(k.dtype) for x in (y, a1, b1, p1))
        ctx.mark_non_differentiable(*outs[1:])
        return outs

    @staticmethod
    def backward(ctx, gy, *_state_grads):
        w, u, k, v, sa, sb, sp = ctx.saved_tensors
        kn = k.numpy()
        g = _np(gy.to(k.dtype)) if gy is not None else np.zeros_like(kn)
        gk, gv = np.empty_like(kn), np.empty_like(kn)
        B, _, C = kn.shape
        gw, gu = np.empty((B, C), dtype=kn.dtype), np.empty((B, C), dtype=kn.dtype)
        _wkv_backward(w.numpy(), u.numpy(), kn, v.numpy(), sa.numpy(), sb.numpy(), sp.numpy(), g, gk, gv, gw, gu)
        dw, du, dk, dv = ctx.dtypes
        return (torch.from_numpy(gw).sum(0).to(dw), torch.from_numpy(gu).sum(0).to(du),
                torch.from_numpy(gk).to(dk), torch.from_numpy(gv).to(dv), None, None, None, None)
