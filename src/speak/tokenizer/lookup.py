"""Table-lookup inference for per-character encoders (SPEC section 3): I_t and e_t depend on c_t alone, so they are
computed once per vocabulary entry and the compiled scan (Eq. 1 + 10) runs over the id stream.

Torch-free on purpose: `speak tokenize` streams large files through `LookupTables` with numpy and numba only, in a
fraction of the memory torch needs. The tables are derived from the network (`SpeakTokenizerNet.lookup_tables`)
and saved next to its weights; the network's own forward is the slow twin that parity tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit


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


@dataclass
class LookupTables:
    """Per-vocabulary currents (float32 [V]) and hard-reset flags (bool [V], the mode already applied) + constants."""

    current: np.ndarray
    hard: np.ndarray
    theta: float
    u_th: float
    u_reset: float
    gamma: float
    delta: float

    def spikes(self, ids: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """Spikes (bool [N]) for a flat id stream; `starts` (bool [N]) marks where a new text begins (default: 0)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if starts is None:
            starts = np.zeros(ids.shape[0], dtype=bool)
            if ids.size:
                starts[0] = True
        out = np.empty(ids.shape[0], dtype=bool)
        f32 = np.float32  # the torch scan runs in float32: same arithmetic, same spikes
        _scan_kernel(ids, np.ascontiguousarray(starts, dtype=bool), self.current, self.hard, out, f32(self.theta),
                     f32(self.u_th), f32(self.u_reset), f32(self.gamma), f32(self.delta))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (exact: float32 values are written as their float64 expansion)."""
        return {"current": self.current.astype(np.float64).tolist(), "hard": self.hard.astype(int).tolist(),
                "theta": self.theta, "u_th": self.u_th, "u_reset": self.u_reset, "gamma": self.gamma,
                "delta": self.delta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LookupTables":
        current = np.asarray(data["current"], dtype=np.float32)
        hard = np.asarray(data["hard"], dtype=bool)
        if current.ndim != 1 or hard.shape != current.shape:
            raise ValueError("lookup tables: current and hard must be 1-D and of equal length")
        return cls(current, hard, *(float(data[k]) for k in ("theta", "u_th", "u_reset", "gamma", "delta")))
