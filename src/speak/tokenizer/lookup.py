"""Table-lookup inference (SPEC section 3). Per-character encoders: I_t and e_t depend on c_t alone, so they are
computed once per vocabulary entry and the compiled scan (Eq. 1 + 10) runs over the id stream. Hashed n-gram
encoders: I_t (before tanh) and e_t are sums of one number per table key (the character and each n-gram ending at
t), so the scan sums a few table entries per character.

Torch-free on purpose: `speak tokenize` streams large files through `LookupTables` with numpy and numba only, in a
fraction of the memory torch needs. The tables are derived from the network (`SpeakTokenizerNet.lookup_tables`)
and saved next to its weights; the network's own forward is the slow twin that parity tests compare against.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from speak.atomic import atomic_write_text
from speak.text import token_ids as token_ids_module
from speak.text.corpora import cache_root
from speak.text.token_ids import FNV_OFFSET, IdTable, fallback_ids, lookup_id, token_hash_step


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
    def from_dict(cls, data: dict[str, Any]) -> "LookupTables":
        current = np.asarray(data["current"], dtype=np.float32)
        hard = np.asarray(data["hard"], dtype=bool)
        if current.ndim != 1 or hard.shape != current.shape:
            raise ValueError("lookup tables: current and hard must be 1-D and of equal length")
        return cls(current, hard, *(float(data[k]) for k in ("theta", "u_th", "u_reset", "gamma", "delta")))


# Must equal speak.tokenizer.encoders (kept torch-free here; the parity tests compare them).
NGRAM_SEED = 0x2545F491
NGRAM_PRIME = 1_000_003
NGRAM_MASK = 2**31 - 1
HARD_FROM_MASK, HARD_ALWAYS, HARD_NEVER = 0, 1, 2
# Integer scan state (ScanState.ints): characters consumed in the open text, where the open token's buffered
# characters start, how many are buffered, whether the token outgrew the buffer (its first pieces already emitted),
# then the last N character ids (newest first) and the code points of positions p, p - 1, ..., p - k.
# Float state (ScanState.floats): the pending current sums of positions p, ..., p - k, the same for the mask
# logit, the membrane.
_HIST = 4
TOKEN_BUFFER = 256  # code points of the open token kept at once (a longer token is emitted piece by piece)


@njit(cache=True, nogil=True)
def _close(th, buf, n, overflow, tok_start, entries, piece_off, piece_cps, max_len, byte_base, unk, out_ids,
           out_starts, out_ends, k_out):
    """Emit the ids of the open token (its last ``n`` characters, buffered, start at text offset ``tok_start``):
    its entry, else the vocabulary's fallback (speak.text.token_ids); with no vocabulary, one entry with id -1.
    A call (the end of a text); the scan writes the common case, a token that is an entry, out in its loop."""
    if entries.shape[0] == 0:
        out_ids[k_out] = -1
        out_starts[k_out] = tok_start
        out_ends[k_out] = tok_start + n
        return k_out + 1
    if not overflow and n <= max_len:
        pid = lookup_id(th, buf, 0, n, entries, piece_off, piece_cps)
        if pid >= 0:
            out_ids[k_out] = pid
            out_starts[k_out] = tok_start
            out_ends[k_out] = tok_start + n
            return k_out + 1
    k_out, _ = fallback_ids(buf, 0, n, n, -tok_start, entries, piece_off, piece_cps, max_len, byte_base, unk,
                            out_ids, out_starts, out_ends, k_out)
    return k_out


def fused_kernel(order: int, lookahead: int, use_mask: bool = True, use_tanh: bool = False):
    """The fused scan compiled for one (N, k, whether the mask logit decides the reset, tanh). Its source is
    written for these constants (:func:`kernel_source`): the last N character ids, the k + 1 pending sums and the
    last k + 1 code points are named scalars that the compiler keeps in registers (small arrays indexed modulo
    k + 1 live in memory), and the mask sums are left out when the reset mode does not read them. The source goes
    to a file named by its hash under ``$SPEAK_CACHE/kernels`` so that numba caches the compiled code on disk like
    the other kernels (compiling takes seconds); where that cannot be written it is compiled in memory."""
    key = (int(order), int(lookahead), bool(use_mask), bool(use_tanh))
    if key not in _KERNELS:
        _KERNELS[key] = _load_kernel(kernel_source(*key))
    return _KERNELS[key]


_KERNELS: dict = {}


def _load_kernel(source: str):
    """The ``kernel`` of a generated module: imported from its cached file, else executed in memory."""
    # the helpers it calls live in this module and token_ids: their code is part of the key, so that an edit there
    # never leaves a stale compiled kernel behind (numba's cache only checks the kernel file itself)
    helpers = (Path(__file__).read_bytes(), Path(token_ids_module.__file__).read_bytes())
    digest = hashlib.sha256(source.encode() + b"".join(helpers)).hexdigest()[:20]
    path = cache_root() / "kernels" / f"fused_scan_{digest}.py"
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, source.replace("CACHE", "True"))
        name = f"speak_fused_scan_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # numba's disk cache finds the kernel's globals by module name
        spec.loader.exec_module(module)
        return module.kernel
    except OSError:
        scope: dict = {}
        exec(compile(source.replace("CACHE", "False"), f"<fused scan {digest}>", "exec"), scope)
        return scope["kernel"]


def kernel_source(order: int, lookahead: int, use_mask: bool, use_tanh: bool) -> str:
    """Python source of the fused scan for one (N, k, mask, tanh) (the template's docstring says what it does).
    Position t's sums add, in this order, the terms of characters t, t + 1, ..., t + k, each the sum over its N
    keys: the float32 arithmetic of the network's forward, so the spikes are the same (parity tests)."""
    n, k = order, lookahead
    hist = [f"h{j}" for j in range(n)]  # the last N character ids, newest first
    ring = [f"r{r}" for r in range(k + 1)]  # code point of position p - r
    acc_c = [f"c{r}" for r in range(k + 1)]  # pending current sum of position p - r
    acc_m = [f"m{r}" for r in range(k + 1)]  # pending mask-logit sum of position p - r
    rows = [f"w{j}" for j in range(n)]  # this character's table rows: its id, then one hashed key per order 2..N
    col_c = (lambda r: 2 * r) if use_mask else (lambda r: r)

    keys = ["w0 = h0", "g = (np.int64(NGRAM_SEED) * NGRAM_PRIME + h0 + 1) & NGRAM_MASK"]
    for j in range(1, n):
        keys += [f"g = (g * NGRAM_PRIME + {hist[j]} + 1) & NGRAM_MASK",
                 f"w{j} = vocab + {j - 1} * buckets + ((g ^ (g >> 15)) & mask)"]
    sums = []  # oldest position first, so each reads the pending sum before this character's update
    for r in range(k, -1, -1):
        sums.append(f"{acc_c[r]} = {acc_c[r - 1] if r else 'zero'} + (zero + "
                    + " + ".join(f"table[{w}, {col_c(r)}]" for w in rows) + ")")
        if use_mask:
            sums.append(f"{acc_m[r]} = {acc_m[r - 1] if r else 'zero'} + (zero + "
                        + " + ".join(f"table[{w}, {2 * r + 1}]" for w in rows) + ")")
    shift = ([f"{hist[j]} = {hist[j - 1]}" for j in range(n - 1, 0, -1)] + ["h0 = x"]
             + [f"{ring[r]} = {ring[r - 1]}" for r in range(k, 0, -1)] + ["r0 = cp"])
    reset = [f"{v} = 0" for v in hist + ring] + [f"{v} = zero" for v in acc_c + acc_m]
    lo_h, lo_r, k1 = _HIST, _HIST + n, k + 1
    load = [f"{hist[j]} = ist[{lo_h + j}]" for j in range(n)] + [f"{ring[r]} = ist[{lo_r + r}]" for r in range(k1)]
    load += [f"{acc_c[r]} = fst[{r}]" for r in range(k1)] + [f"{acc_m[r]} = fst[{k1 + r}]" for r in range(k1)]
    save = [f"ist[{lo_h + j}] = {hist[j]}" for j in range(n)] + [f"ist[{lo_r + r}] = {ring[r]}" for r in range(k1)]
    save += [f"fst[{r}] = {acc_c[r]}" for r in range(k1)] + [f"fst[{k1 + r}] = {acc_m[r]}" for r in range(k1)]

    def block(lines, depth):
        return "\n".join(" " * (4 * depth) + line for line in lines)

    return _KERNEL_TEMPLATE.format(
        key=(n, k, use_mask, use_tanh), K=k, load=block(load, 1), shift=block(shift, 3), keys=block(keys, 3), sums=block(sums, 3),
        last_c=acc_c[k], last_m=acc_m[k] if use_mask else "zero", last_r=ring[k],
        tanh="np.tanh(pre)" if use_tanh else "pre", reset=block(reset, 3), save=block(save, 1))


_KERNEL_TEMPLATE = '''# Generated by speak.tokenizer.lookup.kernel_source for (N, k, mask, tanh) = {key}.
import numpy as np
from numba import njit

from speak.text.token_ids import FNV_OFFSET, fallback_ids, lookup_id, token_hash_step
from speak.tokenizer.lookup import HARD_ALWAYS, HARD_FROM_MASK, NGRAM_MASK, NGRAM_PRIME, NGRAM_SEED, _close, _lif_step


@njit(cache=CACHE, nogil=True)
def kernel(cps, bounds, final, id_table, unk, table, vocab, buckets, hard_mode, theta, u_th, u_reset, gamma, delta,
           entries, piece_off, piece_cps, max_len, byte_base, tk_unk, ist, fst, th_state, tok_buf, out_ids,
           out_starts, out_ends, counts, spikes):
    """Code points -> character ids -> n-gram keys -> summed table terms -> Eq. 1 + 10 -> token ids, in one pass.

    Segment i is cps[bounds[i]:bounds[i + 1]]: the next characters of the open text, which ends after the segment
    when final[i] (its last k positions are then completed with <pad>, its open token closes, the state resets).
    A lookahead of k characters is a k-character delay: position t is scanned once character t + k is in.
    Writes (id, start, end offset within its text) triples to out_*, their number per segment to counts, and
    returns their total; writes spikes[global position] when spikes is not empty. Token ids follow the
    vocabulary's arrays (speak.text.token_ids.IdTable; empty slots: one id -1 per token). The state arrays carry
    an open text from one call to the next."""
    zero = np.float32(0.0)
    soft = theta * u_th
    mask = buckets - 1
    has_vocab = entries.shape[0] > 0
    write_spikes = spikes.shape[0] > 0
    cap = tok_buf.shape[0]
    keep = cap - max_len + 1  # a full buffer emits the pieces starting before this (their choice is final)
{load}
    v = fst[fst.shape[0] - 1]
    p, tok_start, tok_len, overflow = ist[0], ist[1], ist[2], ist[3]
    th = th_state[0]
    k_out = 0
    for i in range(bounds.shape[0] - 1):
        a, b = bounds[i], bounds[i + 1]
        first = k_out
        base = a - p  # where the open text starts in cps (spikes only)
        stop = b + {K} if final[i] else b
        for q in range(a, stop):
            x = 0  # <pad> past the end
            cp = 0
            if q < b:
                cp = cps[q]
                x = id_table[cp] if cp < id_table.shape[0] else unk
{shift}
{keys}
{sums}
            if p >= {K}:  # position p - k is complete: Eq. 1 + 10, then the token
                pre = {last_c}
                e = {last_m}
                i_t = {tanh}
                hard = hard_mode == HARD_ALWAYS or (hard_mode == HARD_FROM_MASK and e > 0)
                spiked, v = _lif_step(v, i_t, hard, soft, u_th, u_reset, gamma, delta)
                if write_spikes:
                    spikes[base + p - {K}] = spiked
                if has_vocab:
                    if tok_len == cap:  # a token longer than the buffer: emit its settled first pieces
                        k_out, done = fallback_ids(tok_buf, 0, cap, keep, -tok_start, entries, piece_off, piece_cps,
                                                   max_len, byte_base, tk_unk, out_ids, out_starts, out_ends, k_out)
                        tok_buf[: cap - done] = tok_buf[done:cap].copy()
                        tok_start += done
                        tok_len = cap - done
                        overflow = 1
                    tok_buf[tok_len] = {last_r}
                    th = token_hash_step(th, {last_r})
                tok_len += 1
                if spiked:  # close the token (an entry written out here: a call per token costs as much as the scan)
                    pid = -1
                    if has_vocab and not overflow and tok_len <= max_len:
                        pid = lookup_id(th, tok_buf, 0, tok_len, entries, piece_off, piece_cps)
                    if pid >= 0 or not has_vocab:
                        out_ids[k_out] = pid
                        out_starts[k_out] = tok_start
                        out_ends[k_out] = tok_start + tok_len
                        k_out += 1
                    else:
                        k_out, _ = fallback_ids(tok_buf, 0, tok_len, tok_len, -tok_start, entries, piece_off, piece_cps,
                                                max_len, byte_base, tk_unk, out_ids, out_starts, out_ends, k_out)
                    tok_start += tok_len
                    tok_len = 0
                    overflow = 0
                    th = FNV_OFFSET
            p += 1
        if final[i]:
            if tok_len > 0:  # the end of a text closes its token (Eq. 5)
                k_out = _close(th, tok_buf, tok_len, overflow, tok_start, entries, piece_off, piece_cps, max_len,
                               byte_base, tk_unk, out_ids, out_starts, out_ends, k_out)
            p, tok_start, tok_len, overflow, th, v = 0, 0, 0, 0, FNV_OFFSET, u_reset
{reset}
        counts[i] = k_out - first
    ist[0], ist[1], ist[2], ist[3] = p, tok_start, tok_len, overflow
{save}
    fst[fst.shape[0] - 1] = v
    th_state[0] = th
    return k_out
'''


class ScanState:
    """What the fused scan carries between calls while a text is still open (a long line fed in pieces)."""

    def __init__(self, order: int, lookahead: int, u_reset: float):
        self.ints = np.zeros(_HIST + order + lookahead + 1, dtype=np.int64)
        self.floats = np.zeros(2 * (lookahead + 1) + 1, dtype=np.float32)
        self.floats[-1] = u_reset
        self.hash = np.array([FNV_OFFSET], dtype=np.uint64)
        self.token = np.zeros(TOKEN_BUFFER, dtype=np.int64)


@dataclass
class NGramLookupTables:
    """Per-key current and mask-logit terms (float32 [K], K = (k + 1)(V + (N - 1) buckets): for each offset
    r = 0..k, the V character rows, then ``buckets`` rows per order 2..N; Linear1's and Linear2's biases sit in the
    r = 0 character rows) + how to combine them + the neuron's constants.
    ``hard_mode``: 0 = hard reset where the summed mask logit > 0, 1 = always, 2 = never (the reset mode applied)."""

    KIND = "ngram"
    ARRAYS = ("current", "mask")

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
        size = (self.vocab + (self.order - 1) * self.buckets) * (self.lookahead + 1)
        if self.current.shape != (size,) or self.mask.shape != (size,):
            raise ValueError(f"n-gram lookup tables must have {size} entries, got {self.current.shape} and "
                             f"{self.mask.shape}")
        if self.hard_mode not in (HARD_FROM_MASK, HARD_ALWAYS, HARD_NEVER):
            raise ValueError(f"n-gram lookup tables: unknown hard_mode {self.hard_mode}")
        if self.buckets & (self.buckets - 1):
            raise ValueError(f"n-gram lookup tables: buckets must be a power of two, got {self.buckets}")
        rows = self.vocab + (self.order - 1) * self.buckets
        cur = self.current.reshape(self.lookahead + 1, rows)  # [k + 1, rows]
        if self.hard_mode == HARD_FROM_MASK:
            pairs = np.stack([cur, self.mask.reshape(self.lookahead + 1, rows)], -1)  # [k + 1, rows, 2]
            # [rows, 2 (k + 1)]: a key's current and mask terms for every offset r sit side by side (one cache line)
            self._table = np.ascontiguousarray(pairs.transpose(1, 0, 2).reshape(rows, -1), dtype=np.float32)
        else:  # the mask logit decides nothing: [rows, k + 1], currents only (half the memory the scan touches)
            self._table = np.ascontiguousarray(cur.T, dtype=np.float32)

    @property
    def vocab_size(self) -> int:
        return self.vocab

    def new_state(self) -> ScanState:
        return ScanState(self.order, self.lookahead, self.u_reset)

    def scan(self, cps: np.ndarray, bounds: np.ndarray, final: np.ndarray, id_table: np.ndarray, unk: int,
             ids: IdTable | None = None, state: ScanState | None = None,
             spikes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(token ids, their start and end offsets within their text, entries per segment) for the code points
        `cps` cut into segments by `bounds` [S + 1]; a segment with final[i] False leaves its text open in `state`
        (pass the same state to the next call). `ids` is the token vocabulary (speak.text.token_ids.IdTable: an
        entry, else greedy longest-prefix entries, else UTF-8 bytes); None gives one entry (id -1) per token.
        `id_table` maps code points to character ids (`unk` beyond it)."""
        ids = ids if ids is not None else IdTable.empty()
        state = state if state is not None else self.new_state()
        if ids.max_len > TOKEN_BUFFER // 2:
            raise ValueError(f"token vocabulary entries of up to {TOKEN_BUFFER // 2} characters are supported, "
                             f"got {ids.max_len}")
        bounds = np.ascontiguousarray(bounds, dtype=np.int64)
        cps = np.ascontiguousarray(cps)
        n_cps = int(bounds[-1] - bounds[0]) + int(state.ints[2]) + self.lookahead + 1
        bytes_per_char = 4 if ids.vocab is not None and ids.vocab.byte_fallback else 1  # byte fallback: an id a byte
        n = bytes_per_char * n_cps + 1
        out_ids = np.empty(n, dtype=np.int64)
        out_starts = np.empty(n, dtype=np.int64)
        out_ends = np.empty(n, dtype=np.int64)
        counts = np.empty(bounds.shape[0] - 1, dtype=np.int64)
        f32 = np.float32
        kernel = fused_kernel(self.order, self.lookahead, self.hard_mode == HARD_FROM_MASK, self.tanh)
        k = kernel(cps, bounds, np.ascontiguousarray(final, dtype=np.bool_), id_table, unk, self._table, self.vocab,
                   self.buckets, int(self.hard_mode), f32(self.theta), f32(self.u_th),
                   f32(self.u_reset), f32(self.gamma), f32(self.delta), *ids.arrays, state.ints, state.floats,
                   state.hash, state.token, out_ids, out_starts, out_ends, counts,
                   spikes if spikes is not None else np.zeros(0, dtype=np.bool_))
        return out_ids[:k], out_starts[:k], out_ends[:k], counts

    def spikes(self, ids: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """Spikes (bool [N]) for a flat id stream; `starts` (bool [N]) marks where a new text begins (default: 0)."""
        ids, starts, out = _stream(ids, starts)
        out[:] = False
        cut = np.flatnonzero(starts)
        bounds = np.concatenate((cut, [ids.shape[0]])) if cut.size and cut[0] == 0 else np.concatenate(([0], cut, [ids.shape[0]]))
        identity = np.arange(self.vocab, dtype=np.int64)
        self.scan(ids, bounds, np.ones(bounds.shape[0] - 1, dtype=bool), identity, 1, spikes=out)
        return out

    def token_ends(self, cps: np.ndarray, bounds: np.ndarray, id_table: np.ndarray,
                   unk: int) -> tuple[np.ndarray, np.ndarray]:
        """(token end offsets within each text, tokens per text): the fused scan without token ids."""
        _, _, ends, counts = self.scan(cps, bounds, np.ones(len(bounds) - 1, dtype=bool), id_table, unk)
        return ends, counts

    def params(self) -> dict[str, Any]:
        """The scalars (JSON); the arrays go to a safetensors file."""
        return {"kind": self.KIND, **{k: getattr(self, k) for k in ("vocab", "order", "lookahead", "buckets", "tanh",
                                                                      "hard_mode", "theta", "u_th", "u_reset",
                                                                      "gamma", "delta")}}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"current": self.current, "mask": self.mask}

    @classmethod
    def from_parts(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "NGramLookupTables":
        return cls(np.asarray(arrays["current"], dtype=np.float32), np.asarray(arrays["mask"], dtype=np.float32),
                   int(params["vocab"]), int(params["order"]), int(params["lookahead"]), int(params["buckets"]),
                   bool(params["tanh"]), int(params["hard_mode"]),
                   *(float(params[k]) for k in ("theta", "u_th", "u_reset", "gamma", "delta")))
