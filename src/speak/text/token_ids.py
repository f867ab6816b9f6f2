"""Token spans -> vocabulary ids, compiled: the fast twin of :meth:`SegmentVocab.pieces_of`.

A SPEAK token is a span of code points (Eq. 5). Its id comes from an open-addressing hash table keyed by a 64-bit
FNV-1a hash of its code points (a hit is confirmed by comparing the code points, so collisions cannot give a wrong
id). A span that is not an entry takes the vocabulary's fallback (greedy longest-prefix entries, then one id per
UTF-8 byte of a character without an entry, or ``<unk>`` without byte fallback), exactly as the reference.

Entry points: :func:`ids_from_offsets` (code points + text bounds + token end offsets -> ids and the character span
of each id, one compiled pass over a whole batch) and :func:`encode_texts` (texts -> ids with any SPEAK segmenter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numba import njit

from speak.text.segment_vocab import SegmentVocab
from speak.text.vocab import code_points

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)


@njit(inline="always")
def token_hash_step(h, cp):
    """One FNV-1a step over a code point (uint64 arithmetic, wraps)."""
    return (h ^ np.uint64(cp)) * FNV_PRIME


@njit(cache=True, nogil=True, inline="always")
def span_hash(cps, a, b):
    """The table key of the code points ``cps[a:b]``."""
    h = FNV_OFFSET
    for t in range(a, b):
        h = token_hash_step(h, cps[t])
    return h


@njit(cache=True, nogil=True, inline="always")
def lookup_id(h, cps, a, b, entries, piece_off, piece_cps):
    """The id of the entry equal to ``cps[a:b]`` (key ``h``), -1 when none: confirmed by comparing code points."""
    mask = entries.shape[0] - 1
    key = np.int64(h)  # the key's bits, as stored
    s = np.int64(h & np.uint64(mask))
    n = b - a
    while True:
        pid = entries[s, 1]
        if pid == -1:
            return -1
        if entries[s, 0] == key:
            if piece_off[pid + 1] - piece_off[pid] == n:
                o = piece_off[pid]
                same = True
                for j in range(n):
                    if piece_cps[o + j] != cps[a + j]:
                        same = False
                        break
                if same:
                    return pid
        s = (s + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def utf8_length(cp):
    """Bytes of code point ``cp`` in UTF-8 (surrogates as ``surrogatepass`` writes them: 3)."""
    if cp < 0x80:
        return 1
    if cp < 0x800:
        return 2
    if cp < 0x10000:
        return 3
    return 4


@njit(cache=True, nogil=True, inline="always")
def utf8_byte(cp, n, j):
    """Byte ``j`` of the ``n``-byte UTF-8 form of code point ``cp``."""
    if n == 1:
        return cp
    if j == 0:
        lead = 0xC0 if n == 2 else (0xE0 if n == 3 else 0xF0)
        return lead | (cp >> (6 * (n - 1)))
    return 0x80 | ((cp >> (6 * (n - 1 - j))) & 0x3F)


@njit(cache=True, nogil=True)
def fallback_ids(cps, a, b, stop, origin, entries, piece_off, piece_cps, max_len, byte_base, unk, out_ids, out_starts,
                 out_ends, k):
    """The fallback for the span ``cps[a:b]`` that is not an entry: greedy longest-prefix entries, else the UTF-8
    bytes of a character (``<unk>`` without byte fallback). Every prefix of up to ``max_len`` characters is probed
    in the small entries table (a table of all prefixes, to stop early, is 8x larger: its probes miss the cache).
    Emits ids while the next piece starts before ``stop`` (``b`` for the whole span; less when the span continues
    beyond ``b`` and only pieces whose choice cannot depend on what follows may go). Spans are relative to ``origin``. Returns (ids written so far, where it stopped).
    Not inlined: callers reach it for the few tokens that are not entries, and their hot loops stay small."""
    i = a
    while i < stop:
        h = FNV_OFFSET
        found, n = -1, 1
        for j in range(min(max_len, b - i)):
            h = token_hash_step(h, cps[i + j])
            r = lookup_id(h, cps, i, i + j + 1, entries, piece_off, piece_cps)
            if r >= 0:
                found, n = r, j + 1
        if found < 0 and byte_base >= 0:  # the UTF-8 bytes of the character, each spanning it
            cp = np.int64(cps[i])
            m = utf8_length(cp)
            for j in range(m):
                out_ids[k] = byte_base + utf8_byte(cp, m, j)
                out_starts[k] = i - origin
                out_ends[k] = i + 1 - origin
                k += 1
        else:
            out_ids[k] = found if found >= 0 else unk
            out_starts[k] = i - origin
            out_ends[k] = i + n - origin
            k += 1
        i += n
    return k, i


@njit(cache=True, nogil=True)
def _ids_kernel(cps, bounds, ends, counts, entries, piece_off, piece_cps, max_len, byte_base, unk, out_ids,
                out_starts, out_ends, out_counts):
    """Every token of every text: text ``i`` is ``cps[bounds[i]:bounds[i + 1]]``, its tokens end at the next
    ``counts[i]`` entries of ``ends`` (relative to the text). The outputs hold at least as many entries as the
    texts' UTF-8 bytes (an id covers a character or more, or one byte). Returns the number of ids."""
    k = 0
    e = 0
    for t in range(bounds.shape[0] - 1):
        origin = bounds[t]
        first = k
        a = origin
        for _ in range(counts[t]):
            b = origin + ends[e]
            e += 1
            pid = -1
            if b - a <= max_len:  # the common case: the whole token is an entry
                pid = lookup_id(span_hash(cps, a, b), cps, a, b, entries, piece_off, piece_cps)
            if pid >= 0:
                out_ids[k] = pid
                out_starts[k] = a - origin
                out_ends[k] = b - origin
                k += 1
            else:
                k, _ = fallback_ids(cps, a, b, b, origin, entries, piece_off, piece_cps, max_len, byte_base, unk,
                                    out_ids, out_starts, out_ends, k)
            a = b
        out_counts[t] = k - first
    return k


@njit(cache=True)
def _fill_slots(piece_off, piece_cps, first, last, slots):
    """Insert every entry (its id)."""
    mask = slots.shape[0] - 1
    for pid in range(first, last):
        a, b = piece_off[pid], piece_off[pid + 1]
        h = FNV_OFFSET
        for t in range(a, b):
            h = token_hash_step(h, piece_cps[t])
            if t + 1 < b:
                continue
            key = np.int64(h)
            s = np.int64(h & np.uint64(mask))
            while slots[s, 1] != -1 and slots[s, 0] != key:
                s = (s + 1) & mask
            if slots[s, 1] == -1:
                slots[s, 0] = key
                slots[s, 1] = pid


@dataclass
class IdTable:
    """The compiled form of a :class:`SegmentVocab` (build with :meth:`from_vocab`)."""

    vocab: SegmentVocab | None
    # (entries int64 [S, 2]: open addressing, each slot the key's bits and the id (-1 empty), load <= 1/2;
    # piece_off int64 [V + 1] and piece_cps int64 [P]: each id's code points; max_len; byte_base (-1: no byte
    # fallback); unk_id)
    arrays: tuple

    @classmethod
    def from_vocab(cls, vocab: SegmentVocab) -> "IdTable":
        lengths = np.zeros(len(vocab), dtype=np.int64)
        lo, hi = vocab.first_piece, vocab.mask_id
        lengths[lo:hi] = [len(p) for p in vocab.pieces]
        piece_off = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        piece_cps = code_points("".join(vocab.pieces)).astype(np.int64)
        entries = np.zeros((1 << max(4, int(2 * (hi - lo) + 1).bit_length()), 2), dtype=np.int64)
        entries[:, 1] = -1
        _fill_slots(piece_off, piece_cps, lo, hi, entries)
        arrays = (entries, piece_off, piece_cps, np.int64(vocab.max_len),
                  np.int64(vocab.byte_base if vocab.byte_fallback else -1), np.int64(vocab.unk_id))
        return cls(vocab, arrays)

    @property
    def max_len(self) -> int:
        return int(self.arrays[3])

    @classmethod
    def empty(cls) -> "IdTable":
        """No vocabulary: compiled scans report one entry (id -1) per token instead of ids."""
        slots = np.zeros((0, 2), dtype=np.int64)
        none = np.zeros(1, dtype=np.int64)
        return cls(None, (slots, none, none, np.int64(1), np.int64(-1), np.int64(-1)))


@dataclass
class TokenIds:
    """Ids of a batch of texts, flat: ``ids[j]`` covers characters ``[starts[j], ends[j])`` of its text (all the
    bytes of a byte-fallback character share its span); ``counts[i]`` ids belong to text ``i``."""

    ids: np.ndarray  # [M] int64
    starts: np.ndarray  # [M] int64, relative to the text's start
    ends: np.ndarray  # [M] int64
    counts: np.ndarray  # [T] int64

    def split(self) -> list[np.ndarray]:
        """The ids of each text."""
        return np.split(self.ids, np.cumsum(self.counts)[:-1]) if self.counts.size else []


def ids_from_offsets(table: IdTable, cps: np.ndarray, bounds: np.ndarray, ends: np.ndarray,
                     counts: np.ndarray) -> TokenIds:
    """Vocabulary ids of SPEAK tokens, compiled.

    Args: ``table`` (:meth:`IdTable.from_vocab`); ``cps`` the code points of all texts concatenated ([N], any
    integer dtype, e.g. :func:`speak.text.vocab.code_points`); ``bounds`` int64 [T + 1] where each text starts
    (``bounds[-1] == N``); ``ends`` int64 [K] the exclusive end offset of every token relative to its text's start,
    texts in order (each text's last end is its length; Eq. 5); ``counts`` int64 [T] the tokens of each text.
    Returns :class:`TokenIds`. The same ids as ``vocab.pieces_of`` on each token (parity test).
    """
    bounds = np.ascontiguousarray(bounds, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if bounds.ndim != 1 or bounds.size != counts.size + 1 or int(counts.sum()) != ends.size:
        raise ValueError("ids_from_offsets: need bounds [T + 1], counts [T] and sum(counts) == len(ends)")
    out_counts = np.empty(counts.size, dtype=np.int64)
    cap = int(cps.shape[0])
    if table.vocab.byte_fallback:  # at most one id per UTF-8 byte
        cap += int(np.count_nonzero(cps >= 0x80) + np.count_nonzero(cps >= 0x800) + np.count_nonzero(cps >= 0x10000))
    out = [np.empty(cap, dtype=np.int64) for _ in range(3)]
    k = _ids_kernel(cps, bounds, ends, counts, *table.arrays, *out, out_counts)
    return TokenIds(out[0][:k], out[1][:k], out[2][:k], out_counts)


def ends_from_spikes(spikes: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(token end offsets relative to each text, tokens per text) from the flat spikes of texts ``bounds``;
    each non-empty text's last character closes its token (Eq. 5)."""
    bounds = np.asarray(bounds, dtype=np.int64)
    lengths = np.diff(bounds)
    s = np.array(spikes, dtype=bool, copy=True)
    nonempty = lengths > 0
    s[bounds[1:][nonempty] - 1] = True
    last = np.flatnonzero(s)  # [K] global index of each token's last character
    text_of = np.searchsorted(bounds[1:], last, side="right")
    counts = np.bincount(text_of, minlength=lengths.size).astype(np.int64)
    return last + 1 - bounds[text_of], counts


def ids_from_spikes(table: IdTable, texts: Sequence[str], spikes: Sequence[np.ndarray]) -> TokenIds:
    """Ids of ``texts`` given each text's hard boundaries (``spikes_many``'s output)."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    flat = np.concatenate(spikes) if len(spikes) else np.zeros(0, dtype=bool)
    ends, counts = ends_from_spikes(flat, bounds)
    return ids_from_offsets(table, code_points("".join(texts)), bounds, ends, counts)


def encode_texts(segmenter, table: IdTable, texts: Sequence[str]) -> TokenIds:
    """Ids of each text (each scanned from rest) with any SPEAK segmenter (its ``spikes_many``)."""
    return ids_from_spikes(table, texts, segmenter.spikes_many(texts))


__all__ = ["IdTable", "TokenIds", "encode_texts", "ends_from_spikes", "fallback_ids", "ids_from_offsets",
           "ids_from_spikes", "span_hash", "token_hash_step", "lookup_id", "FNV_OFFSET"]
