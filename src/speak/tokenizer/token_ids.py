"""Token strings -> ids inside the compiled scan: a hashed table of code-point sequences with a per-character fallback.

The fused scan (speak.tokenizer.lookup) hashes each token's code points as it emits them (FNV-1a, 64 bit) and asks
:func:`token_id` for its id when the token closes. A token missing from the table, or longer than ``MAX_TOKEN``
characters, is emitted as one fallback id per character (the character's id, ``unk`` when unknown), so every
character is covered. Any vocabulary that maps strings to ids builds this table (:meth:`TokenIdTable.from_vocab`);
the scan only sees its arrays.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
MAX_TOKEN = 64  # longer tokens always take the per-character fallback


@njit(inline="always")
def token_hash_step(h, cp):
    """FNV-1a over code points: the hash after one more character."""
    return (h ^ np.uint64(cp)) * FNV_PRIME


@njit(inline="always")
def token_id(h, length, slots):
    """The id of the token with hash `h` and `length` characters, or -1 (open addressing, linear probing over
    `slots` [C, 2] uint64: the hash, then (length << 32) | (id + 1), 0 when empty; one cache line per probe)."""
    if slots.shape[0] == 0:
        return -1
    mask = slots.shape[0] - 1
    slot = np.int64(h & np.uint64(mask))
    while slots[slot, 1] != 0:
        if slots[slot, 0] == h and np.int64(slots[slot, 1] >> np.uint64(32)) == length:
            return np.int64(slots[slot, 1] & np.uint64(0xFFFFFFFF)) - 1
        slot = (slot + 1) & mask
    return -1


def _hash(token: str) -> np.uint64:
    h = FNV_OFFSET
    with np.errstate(over="ignore"):
        for ch in token:
            h = (h ^ np.uint64(ord(ch))) * FNV_PRIME
    return np.uint64(h)


@dataclass
class TokenIdTable:
    """``slots`` (uint64 [C, 2], C a power of two; see :func:`token_id`); ``char_ids`` (int64, indexed by code
    point) and ``unk``: the per-character fallback ids."""

    slots: np.ndarray
    char_ids: np.ndarray
    unk: int

    @classmethod
    def from_vocab(cls, token_to_id: Mapping[str, int], char_to_id: Mapping[str, int], unk: int) -> "TokenIdTable":
        """A table for any string -> id vocabulary plus its per-character fallback ids."""
        tokens = [t for t in token_to_id if 0 < len(t) <= MAX_TOKEN]
        cap = 1 << max(4, (2 * len(tokens)).bit_length())
        slots = np.zeros((cap, 2), dtype=np.uint64)
        for tok in tokens:
            h = _hash(tok)
            slot = int(h & np.uint64(cap - 1))
            while slots[slot, 1] != 0:
                slot = (slot + 1) & (cap - 1)
            slots[slot] = h, (len(tok) << 32) | (int(token_to_id[tok]) + 1)
        top = max((ord(c) for c in char_to_id), default=0) + 1
        char_ids = np.full(top, unk, dtype=np.int64)
        for ch, i in char_to_id.items():
            char_ids[ord(ch)] = i
        return cls(slots, char_ids, int(unk))

    @classmethod
    def from_tokens(cls, tokens: Iterable[str], size: int) -> tuple["TokenIdTable", list[str]]:
        """The ``size`` most frequent multi-character ``tokens`` get ids 0.., then every character seen; returns
        the table and the id -> string list (a simple vocabulary for measurements, ties broken by string)."""
        counts = Counter(tokens)
        chars = sorted({ch for tok in counts for ch in tok})
        multi = sorted((t for t in counts if 1 < len(t) <= MAX_TOKEN), key=lambda t: (-counts[t], t))
        strings = multi[: max(size - len(chars) - 1, 0)] + chars + ["<unk>"]
        index = {s: i for i, s in enumerate(strings[:-1])}
        return cls.from_vocab(index, {c: index[c] for c in chars}, len(strings) - 1), strings

    @classmethod
    def empty(cls) -> "TokenIdTable":
        """No token ids: the scan reports one entry per token (id -1) with its end."""
        return cls(np.zeros((0, 2), np.uint64), np.zeros(0, np.int64), -1)
