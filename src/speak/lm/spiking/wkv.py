"""The RWKV-4 WKV operator used by SpikeGPT: a per-step reference loop, a chunked parallel form, the recurrent step.

Per channel c (w = -exp(time_decay) < 0, u = time_first), for positions t = 0..T-1:

    wkv_t = ( sum_{i<t} e^{(t-1-i) w + k_i} v_i  +  e^{u + k_t} v_t ) / ( sum_{i<t} e^{(t-1-i) w + k_i}  +  e^{u + k_t} )

Log-space stable state (a, b, p): the running sums are stored as a * e^p (numerator) and b * e^p (denominator),
p being the running maximum exponent, so no exp() ever overflows:

    output:  q = max(p, u + k_t);  wkv_t = (e^{p-q} a + e^{u+k_t-q} v_t) / (e^{p-q} b + e^{u+k_t-q})
    update:  q = max(p + w, k_t);  a = e^{p+w-q} a + e^{k_t-q} v_t;  b = e^{p+w-q} b + e^{k_t-q};  p = q

Initial state: a = b = 0, p = -1e38 (a stand-in for -inf that keeps p - q finite).

``wkv_chunked`` (training): the sequence is cut into chunks of ``chunk`` positions; inside a chunk the weights are a
[B, C, L, L] matrix of exponents (j-1-i) w + k_i (i < j), u + k_j (i = j), -inf (i > j), plus the carried state's
exponent j w + p; each row is shifted by its (detached) maximum before exp(), so the computation is stable and the
gradient is exact (the shift cancels between numerator and denominator). Only the T / L chunk boundaries are a Python
loop. Autograd provides the backward; tests compare values and gradients with ``wkv_loop``.
"""

from __future__ import annotations

import torch

NEG_INF_STATE = -1e38


def wkv_initial_state(B: int, C: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = torch.zeros(B, C, dtype=like.dtype, device=like.device)  # [B, C]
    b = torch.zeros(B, C, dtype=like.dtype, device=like.device)  # [B, C]
    p = torch.full((B, C), NEG_INF_STATE, dtype=like.dtype, device=like.device)  # [B, C]
    return a, b, p


def wkv_step(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One position. w, u: [C]; k, v: [B, C]; state (a, b, p) each [B, C] -> (wkv [B, C], new state)."""
    a, b, p = state
    ww = u + k  # [B, C]
    q = torch.maximum(p, ww)  # [B, C]
    e1, e2 = torch.exp(p - q), torch.exp(ww - q)
    out = (e1 * a + e2 * v) / (e1 * b + e2)  # [B, C]
    ww = p + w  # [B, C]
    q = torch.maximum(ww, k)
    e1, e2 = torch.exp(ww - q), torch.exp(k - q)
    return out, (e1 * a + e2 * v, e1 * b + e2, q)


def wkv_loop(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Reference: the recurrence, one Python step per position. k, v: [B, T, C] -> (wkv [B, T, C], final state)."""
    B, T, C = k.shape
    st = wkv_initial_state(B, C, k) if state is None else state
    outs = []
    for t in range(T):
        o, st = wkv_step(w, u, k[:, t], v[:, t], st)
        outs.append(o)
    return torch.stack(outs, dim=1), st


def wkv_chunked(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: tuple[torch.Tensor, ...] | None = None,
    chunk: int = 32,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Chunked parallel WKV. w, u: [C]; k, v: [B, T, C]; state (a, b, p) [B, C] -> (wkv [B, T, C], final state)."""
    B, T, C = k.shape
    a, b, p = wkv_initial_state(B, C, k) if state is None else state
    kt = k.transpose(1, 2)  # [B, C, T]
    vt = v.transpose(1, 2)  # [B, C, T]
    outs = []
    for s0 in range(0, T, chunk):
        L = min(chunk, T - s0)
        kc, vc = kt[:, :, s0 : s0 + L], vt[:, :, s0 : s0 + L]  # [B, C, L]
        j = torch.arange(L, device=k.device, dtype=k.dtype)
        diff = j[:, None] - 1 - j[None, :]  # [L, L]: (j - 1 - i)
        lw = diff[None, None] * w[None, :, None, None] + kc[:, :, None, :]  # [B, C, L(j), L(i)]
        diag = (u[None, :, None] + kc)  # [B, C, L]: u + k_j
        lw = torch.where(torch.eye(L, dtype=torch.bool, device=k.device), diag[..., None].expand_as(lw), lw)
        lw = lw.masked_fill(torch.triu(torch.ones(L, L, dtype=torch.bool, device=k.device), 1), float("-inf"))
        ls = j[None, None, :] * w[None, :, None] + p[:, :, None]  # [B, C, L]: exponent of the carried state
        m = torch.maximum(lw.amax(dim=-1), ls).detach()  # [B, C, L] row shift
        e = torch.exp(lw - m[..., None])  # [B, C, L, L]
        es = torch.exp(ls - m)  # [B, C, L]
        num = (e * vc[:, :, None, :]).sum(-1) + es * a[:, :, None]  # [B, C, L]
        den = e.sum(-1) + es * b[:, :, None]  # [B, C, L]
        outs.append(num / den)
        # carry: state after the chunk's last position = sum_i e^{(L-1-i) w + k_i} v_i + e^{L w} * state
        le = (L - 1 - j)[None, None, :] * w[None, :, None] + kc  # [B, C, L]
        lsc = L * w[None, :] + p  # [B, C]
        pn = torch.maximum(le.amax(-1), lsc).detach()  # [B, C]
        ee, esc = torch.exp(le - pn[..., None]), torch.exp(lsc - pn)
        a = (ee * vc).sum(-1) + esc * a
        b = ee.sum(-1) + esc * b
        p = pn
    return torch.cat(outs, dim=-1).transpose(1, 2), (a, b, p)  # [B, T, C]


def wkv(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: tuple[torch.Tensor, ...] | None = None,
    chunk: int = 32,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The WKV of SpikeGPT's TimeMix, on the fastest exact path: the compiled recurrence with its hand-written
    backward on CPU (``cpu_kernels.WKVCPU``), the chunked form elsewhere or when a carried state needs a gradient.
    w, u: [C]; k, v: [B, T, C]; state (a, b, p) [B, C] -> (wkv [B, T, C], final state)."""
    B, T, C = k.shape
    needs_state_grad = state is not None and any(s.requires_grad for s in state)
    if k.device.type == "cpu" and T > 0 and not needs_state_grad:
        try:
            from speak.lm.spiking.cpu_kernels import WKVCPU
        except ImportError:
            WKVCPU = None
        if WKVCPU is not None:
            st = wkv_initial_state(B, C, k) if state is None else state
            save = torch.is_grad_enabled() and any(x.requires_grad for x in (w, u, k, v))
            y, a, b, p = WKVCPU.apply(w, u, k, v, *st, save)
            return y, (a, b, p)
    return wkv_chunked(w, u, k, v, state, chunk=chunk)
