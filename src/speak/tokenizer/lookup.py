"""Table-lookup inference for per-character encoders (SPEC section 3): I_t and e_t depend on c_t alone, so they are
precomputed once per vocabulary entry and the compiled scan runs over the id stream.

`scan_spikes_reference` is the slow twin (the torch network itself); `LookupScanner.spikes` must agree with it.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from speak.neuron.modes import ResetMode
from speak.tokenizer.model import SpeakTokenizerNet


@njit(cache=True, nogil=True)
def _scan_kernel(ids, starts, table_current, table_hard, out, theta, u_th, u_reset, gamma, delta):
    """Eq. 1 + 10 over a flat id stream; the state restarts at every `starts[t]` (a new text)."""
    soft = theta * u_th
    v = u_reset
    for t in range(ids.shape[0]):
        if starts[t]:
            v = u_reset
        c = ids[t]
        u = gamma * v + delta * table_current[c]
        if u >= u_th:
            out[t] = True
            v = u_reset if table_hard[c] else u - soft
        else:
            out[t] = False
            v = u


class LookupScanner:
    """Per-vocabulary tables of currents and hard-reset masks plus the compiled scan (no torch at run time)."""

    def __init__(self, net: SpeakTokenizerNet):
        cfg = net.cfg
        if not cfg.per_character:
            raise ValueError("table lookup needs a per-character encoder (char-mlp*)")
        ids = torch.arange(cfg.vocab_size)
        with torch.no_grad():
            current, e = net.heads(net.encode(ids[None]))  # [1, V] each
        self.table_current = current[0].float().numpy().copy()  # [V] float32, as the torch scan computes
        mask = torch.from_numpy((e[0] > 0).numpy())  # [V] bool: m of Eq. 9 per character
        hard, theta = ResetMode.parse(cfg.reset_mode).resolve(mask, cfg.theta, tuple(mask.shape))
        self.table_hard = (hard if hard is not None else torch.zeros_like(mask)).numpy().copy()  # [V] bool
        f32 = np.float32
        self.params = (f32(theta), f32(cfg.u_th), f32(cfg.u_reset), f32(cfg.gamma), f32(cfg.delta))

    def spikes(self, ids: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """Spikes (bool [N]) for a flat id stream; `starts` (bool [N]) marks where a new text begins (default: 0)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if starts is None:
            starts = np.zeros(ids.shape[0], dtype=bool)
            if ids.size:
                starts[0] = True
        out = np.empty(ids.shape[0], dtype=bool)
        _scan_kernel(ids, np.ascontiguousarray(starts, dtype=bool), self.table_current, self.table_hard, out,
                     *self.params)
        return out


def scan_spikes_reference(net: SpeakTokenizerNet, ids: np.ndarray) -> np.ndarray:
    """The slow twin: the network's own forward on one text."""
    with torch.no_grad():
        out = net(torch.as_tensor(ids, dtype=torch.long)[None])
    return out.s[0].numpy() > 0.5
