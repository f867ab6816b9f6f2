"""Table-lookup inference (SPEC section 3). Per-character encoders: I_t and e_t depend on c_t alone, so they are
computed once per vocabulary entry and the compiled scan (Eq. 1 + 10) runs over the id stream. Hashed n-gram
encoders: I_t (before tanh) and e_t are sums of one number per table key (the character and each n-gram ending at
t), so the scan sums a few table entries per character.

Torch-free on purpose: `speak tokenize` streams large files through `LookupTables` with numpy and numba only, in a
fraction of the memory torch needs. The tables are derived from the network (`SpeakTokenizerNet.lookup_tables`)
and saved next to its weights; the network's own forward is the slow twin that parity tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit


@njit(inline="always")
def _lif_step(v, current, hard, soft, u_th, u_reset, gamma, delta):
    """One step of Eq. 1 with the reset of Eq. 10-11: (spiked, the membrane after the reset). The compiled scans'
    one copy of the neuron; `soft` = theta u_th."""
    u = gamma * v + delta * current
    if u >= u_th:
        return True, (u_reset if hard else u - soft)
    return False, u


@njit(cache=True, nogil=True)
def _scan_kernel(ids, starts, table_current, table_hard, out, theta, u_th, u_reset, gamma, delta):
    """Eq. 1 + 10 over a flat id stream; the state restarts at every `starts[t]` (a new text)."""
    soft = theta * u_th
    v = u_reset
    for t in range(ids.shape[0]):
        if starts[t]:
            v = u_reset
        c = ids[t]
        out[t], v = _lif_step(v, table_current[c], table_hard[c], soft, u_th, u_reset, gamma, delta)


@njit(cache=True, nogil=True)
def _token_ends_kernel(cps, bounds, id_table, unk, table_current, table_hard, ends, counts, theta, u_th, u_reset,
                       gamma, delta):
    """Code points -> ids -> Eq. 1 + 10 -> token end offsets, fused: per text [bounds[i], bounds[i + 1]) from rest,
    each text's last character closing its token (Eq. 5). Returns the number of ends written."""
    soft = theta * u_th
    k = 0
    for i in range(bounds.shape[0] - 1):
        a, b = bounds[i], bounds[i + 1]
        first = k
        v = u_reset
        for t in range(a, b):
            cp = cps[t]
            c = id_table[cp] if cp < id_table.shape[0] else unk
            spiked, v = _lif_step(v, table_current[c], table_hard[c], soft, u_th, u_reset, gamma, delta)
            if spiked or t == b - 1:
                ends[k] = t + 1 - a
                k += 1
        counts[i] = k - first
    return k


def _stream(ids: np.ndarray, starts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids int64, starts bool, an output buffer) for a scan; without `starts` the stream is one text."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if starts is None:
        starts = np.zeros(ids.shape[0], dtype=bool)
        if ids.size:
            starts[0] = True
    return ids, np.ascontiguousarray(starts, dtype=bool), np.empty(ids.shape[0], dtype=bool)


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
        ids, starts, out = _stream(ids, starts)
        f32 = np.float32  # the torch scan runs in float32: same arithmetic, same spikes
        _scan_kernel(ids, starts, self.current, self.hard, out, f32(self.theta), f32(self.u_th), f32(self.u_reset),
                     f32(self.gamma), f32(self.delta))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (exact: float32 values are written as their float64 expansion)."""
        return {"current": self.current.astype(np.float64).tolist(), "hard": self.hard.astype(int).tolist(),
                "theta": self.theta, "u_th": self.u_th, "u_reset": self.u_reset, "gamma": self.gamma,
                "delta": self.delta}

    @property
    def vocab_size(self) -> int:
        return int(self.current.shape[0])

    def token_ends(self, cps: np.ndarray, bounds: np.ndarray, id_table: np.ndarray,
                   unk: int) -> tuple[np.ndarray, np.ndarray]:
        """(token end offsets within each text, tokens per text) for the code points `cps` of texts delimited by
        `bounds` [T + 1]; `id_table` maps code points to ids (`unk` beyond it). The fast path of `speak bench
        tokenize`; the same spikes as :meth:`spikes` (parity test)."""
        bounds = np.ascontiguousarray(bounds, dtype=np.int64)
        ends = np.empty(cps.shape[0], dtype=np.int64)
        counts = np.empty(bounds.shape[0] - 1, dtype=np.int64)
        f32 = np.float32
        k = _token_ends_kernel(cps, bounds, id_table, unk, self.current, self.hard, ends, counts, f32(self.theta),
                               f32(self.u_th), f32(self.u_reset), f32(self.gamma), f32(self.delta))
        return ends[:k], counts

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LookupTables | NGramLookupTables":
        if data.get("kind") == NGramLookupTables.KIND:
            return NGramLookupTables.from_dict(data)
        current = np.asarray(data["current"], dtype=np.float32)
        hard = np.asarray(data["hard"], dtype=bool)
        if current.ndim != 1 or hard.shape != current.shape:
            raise ValueError("lookup tables: current and hard must be 1-D and of equal length")
        return cls(current, hard, *(float(data[k]) for k in ("theta", "u_th", "u_reset", "gamma", "delta")))


# Must equal speak.tokenizer.encoders.ngram_keys (kept torch-free here; the parity tests compare them).
NGRAM_PRIME = 1_000_003
NGRAM_MASK = 2**31 - 1
HARD_FROM_MASK, HARD_ALWAYS, HARD_NEVER = 0, 1, 2


@njit(cache=True, nogil=True)
def _ngram_scan_kernel(ids, starts, table, vocab, order, lookahead, buckets, use_tanh, hard_mode, out,
                       theta, u_th, u_reset, gamma, delta):
    """Eq. 1 + 10 with I_t = [tanh](sum of the keys' currents), m_t = 1(sum of the keys' mask logits > 0)."""
    soft = theta * u_th
    v = u_reset
    text_start, text_end = 0, 0
    N = ids.shape[0]
    for t in range(N):
        if starts[t]:
            v = u_reset
            text_start, text_end = t, t + 1
            while text_end < N and not starts[text_end]:
                text_end += 1
        c = ids[t]
        pre = table[c, 0]
        e = table[c, 1]
        base = vocab
        for r in range(lookahead + 1):  # the table order of speak.tokenizer.encoders.ngram_specs
            for n in range(2, order + 1):
                h = np.int64(n + 1000 * r)
                for j in range(t + r - n + 1, t + r + 1):  # oldest character first; <pad> (0) outside the text
                    x = ids[j] if text_start <= j < text_end else 0
                    h = (h * NGRAM_PRIME + x + 1) & NGRAM_MASK
                k = base + ((h ^ (h >> 15)) & (buckets - 1))
                pre += table[k, 0]
                e += table[k, 1]
                base += buckets
        i_t = np.tanh(pre) if use_tanh else pre
        hard = hard_mode == HARD_ALWAYS or (hard_mode == HARD_FROM_MASK and e > 0)
        out[t], v = _lif_step(v, i_t, hard, soft, u_th, u_reset, gamma, delta)


@dataclass
class NGramLookupTables:
    """Per-key current and mask-logit terms (float32 [V + S * buckets]: the characters, then the buckets of each of
    the S = (order - 1)(lookahead + 1) n-gram kinds; Linear1's and Linear2's biases sit in the character rows) + how
    to combine them + the neuron's constants.
    ``hard_mode``: 0 = hard reset where the summed mask logit > 0, 1 = always, 2 = never (the reset mode applied)."""

    KIND = "ngram"

    current: np.ndarray
    mask: np.ndarray
    vocab: int
    order: int
    lookahead: int
    buckets: int
    tanh: bool
    hard_mode: int
    theta: float
    u_th: float
    u_reset: float
    gamma: float
    delta: float

    def __post_init__(self) -> None:
        size = self.vocab + (self.order - 1) * (self.lookahead + 1) * self.buckets
        if self.current.shape != (size,) or self.mask.shape != (size,):
            raise ValueError(f"n-gram lookup tables must have {size} entries, got {self.current.shape} and "
                             f"{self.mask.shape}")
        if self.hard_mode not in (HARD_FROM_MASK, HARD_ALWAYS, HARD_NEVER):
            raise ValueError(f"n-gram lookup tables: unknown hard_mode {self.hard_mode}")
        if self.buckets & (self.buckets - 1):
            raise ValueError(f"n-gram lookup tables: buckets must be a power of two, got {self.buckets}")
        self._table = np.ascontiguousarray(np.stack([self.current, self.mask], 1))  # [K, 2]: one cache line per key

    @property
    def vocab_size(self) -> int:
        return self.vocab

    def spikes(self, ids: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """Spikes (bool [N]) for a flat id stream; `starts` (bool [N]) marks where a new text begins (default: 0)."""
        ids, starts, out = _stream(ids, starts)
        f32 = np.float32
        _ngram_scan_kernel(ids, starts, self._table, self.vocab, self.order, self.lookahead, self.buckets,
                           bool(self.tanh), int(self.hard_mode), out, f32(self.theta), f32(self.u_th),
                           f32(self.u_reset), f32(self.gamma), f32(self.delta))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, "current": self.current.astype(np.float64).tolist(),
                "mask": self.mask.astype(np.float64).tolist(),
                **{k: getattr(self, k) for k in ("vocab", "order", "lookahead", "buckets", "tanh", "hard_mode",
                                                 "theta", "u_th", "u_reset", "gamma", "delta")}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NGramLookupTables":
        return cls(np.asarray(data["current"], dtype=np.float32), np.asarray(data["mask"], dtype=np.float32),
                   int(data["vocab"]), int(data["order"]), int(data["lookahead"]), int(data["buckets"]),
                   bool(data["tanh"]),
                   int(data["hard_mode"]), *(float(data[k]) for k in ("theta", "u_th", "u_reset", "gamma", "delta")))
