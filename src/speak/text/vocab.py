"""Character vocabulary (the alphabet the SPEAK tokenizer reads, one id per character position).

A "character" here is one Python code point. A user-perceived character (a grapheme cluster: a letter plus
combining marks, an emoji with modifiers or ZWJ sequences, a Hangul jamo sequence) may span several positions.
That is deliberate: segmentation (Eq. 5) works on positions of the original string, so it stays lossless whatever
the script, and the neuron simply learns not to fire inside a cluster.

Id layout: 0 = ``<pad>``, 1 = ``<unk>``, then the characters by descending corpus frequency, ties broken by
ascending code point, so the same corpus always gives the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from speak.errors import SpeakError

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
_FORMAT = "speak.CharVocab"
_VERSION = 1
_MAX_CODE_POINT = 0x10FFFF


def code_points(text: str) -> np.ndarray:
    """The code points of ``text`` as a uint32 array, without a Python loop.

    Lone surrogates (legal in a Python ``str``) are kept as their own code points (``surrogatepass``), so every
    string maps to exactly ``len(text)`` values.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharVocab:
    """A frozen character -> id table with ``<pad>`` = 0 and ``<unk>`` = 1.

    Build it with :meth:`build`; serialise with :meth:`to_dict` / :meth:`from_dict` (JSON-safe).
    """

    def __init__(self, chars: Sequence[str], counts: Sequence[int] | None = None) -> None:
        """Create a vocabulary whose id ``i + 2`` is ``chars[i]``; ``counts`` (optional) are their corpus counts."""
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be unique")
        if counts is not None:
            counts = [int(x) for x in counts]
            if len(counts) != len(chars):
                raise ValueError("counts must have one entry per character")
        self._chars: list[str] = chars
        self._counts: list[int] | None = counts
        self._index: dict[str, int] = {c: i + 2 for i, c in enumerate(chars)}
        self._table: np.ndarray | None = None  # code point -> id lookup, built lazily

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, texts: Iterable[str] | str, min_count: int = 1, max_size: int | None = None) -> "CharVocab":
        """Count the characters of ``texts`` and order them by descending count (ties by code point).

        ``min_count`` drops rarer characters (they will encode as ``<unk>``); ``max_size`` caps the total size
        **including** the two special ids (so ``len(vocab) <= max_size``). A single ``str`` is treated as one text.
        Counting is vectorised (``np.bincount`` over code points), so MBs of text take milliseconds.
        """
        if isinstance(texts, str):
            texts = [texts]
        if min_count < 1:
            raise ValueError("min_count must be >= 1")
        if max_size is not None and max_size < 2:
            raise ValueError("max_size counts <pad> and <unk>, so it must be >= 2")
        counts = np.zeros(0, dtype=np.int64)
        for text in texts:
            cps = code_points(text)
            if cps.size == 0:
                continue
            c = np.bincount(cps)
            if c.size > counts.size:
                c[: counts.size] += counts
                counts = c
            else:
                counts[: c.size] += c
        present = np.flatnonzero(counts >= min_count)
        freq = counts[present]
        order = np.lexsort((present, -freq))  # primary: -count, secondary: code point
        present, freq = present[order], freq[order]
        if max_size is not None:
            present, freq = present[: max_size - 2], freq[: max_size - 2]
        return cls([chr(int(cp)) for cp in present], [int(f) for f in freq])

    # ------------------------------------------------------------------ lookup
    def __len__(self) -> int:
        """Number of ids, the two specials included."""
        return len(self._chars) + 2

    def __contains__(self, char: object) -> bool:
        """Whether ``char`` (a single character) has its own id."""
        return isinstance(char, str) and char in self._index

    def __eq__(self, other: object) -> bool:
        """Two vocabularies are equal when they give every character the same id."""
        return isinstance(other, CharVocab) and self._chars == other._chars

    def __repr__(self) -> str:
        """``CharVocab(size=N)``."""
        return f"CharVocab(size={len(self)})"

    @property
    def chars(self) -> list[str]:
        """The characters in id order (ids 2, 3, ...)."""
        return list(self._chars)

    @property
    def counts(self) -> list[int] | None:
        """Corpus counts of :attr:`chars` when the vocabulary was built from text, else ``None``."""
        return None if self._counts is None else list(self._counts)

    def id_of(self, char: str) -> int:
        """The id of one character (``<unk>`` = 1 when unseen)."""
        return self._index.get(char, UNK_ID)

    def char_of(self, idx: int) -> str:
        """The string for one id: the character, or ``<pad>`` / ``<unk>`` for the specials."""
        idx = int(idx)
        if idx == PAD_ID:
            return PAD_TOKEN
        if idx == UNK_ID:
            return UNK_TOKEN
        if 2 <= idx < len(self):
            return self._chars[idx - 2]
        raise ValueError(f"id {idx} is outside the vocabulary (size {len(self)})")

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text: str) -> list[int]:
        """Ids of each code point of ``text`` (unseen characters -> ``<unk>`` = 1); ``len(result) == len(text)``."""
        get = self._index.get
        return [get(c, UNK_ID) for c in text]

    def code_point_table(self) -> np.ndarray:
        """A dense code point -> id table up to the largest code point in the vocabulary."""
        if self._table is None:
            if self._chars:
                cps = np.fromiter((ord(c) for c in self._chars), dtype=np.int64, count=len(self._chars))
                table = np.full(int(cps.max()) + 1, UNK_ID, dtype=np.int64)
                table[cps] = np.arange(2, len(self._chars) + 2, dtype=np.int64)
            else:
                table = np.full(1, UNK_ID, dtype=np.int64)
            self._table = table
        return self._table

    def encode_array(self, text: str) -> np.ndarray:
        """Vectorised :meth:`encode`: an int64 array of ids, fast enough for MBs of text (a numpy table lookup)."""
        cps = code_points(text).astype(np.int64)
        table = self.code_point_table()
        inside = cps < table.size
        out = np.full(cps.shape, UNK_ID, dtype=np.int64)
        out[inside] = table[cps[inside]]
        return out

    def decode(self, ids: Iterable[int], unk: str = "\ufffd", skip_pad: bool = True) -> str:
        """Characters for ``ids`` (for debugging): ``<unk>`` becomes ``unk``, ``<pad>`` is dropped unless
        ``skip_pad=False`` (then it is written as ``<pad>``)."""
        if hasattr(ids, "detach"):  # a torch tensor, without importing torch here
            ids = ids.detach().cpu().numpy()
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = ids[(ids < 0) | (ids >= len(self))][0]
            raise ValueError(f"id {int(bad)} is outside the vocabulary (size {len(self)})")
        lut = [PAD_TOKEN if not skip_pad else "", unk] + self._chars
        return "".join([lut[i] for i in ids.tolist()])

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description: format tag, version, the characters in id order and (if known) their counts."""
        d: dict[str, Any] = {
            "format": _FORMAT,
            "version": _VERSION,
            "specials": [PAD_TOKEN, UNK_TOKEN],
            "chars": list(self._chars),
        }
        if self._counts is not None:
            d["counts"] = list(self._counts)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> "CharVocab":
        """Rebuild a vocabulary from :meth:`to_dict` output; malformed data raises :class:`SpeakError`."""
        if not isinstance(data, dict):
            raise SpeakError(f"character vocabulary: expected a JSON object, got {type(data).__name__}")
        if data.get("format", _FORMAT) != _FORMAT:
            raise SpeakError(f"character vocabulary: unknown format {data.get('format')!r} (expected {_FORMAT!r})")
        version = data.get("version", _VERSION)
        if version != _VERSION:
            raise SpeakError(f"character vocabulary: unsupported version {version!r} (this speak reads {_VERSION})")
        if data.get("specials", [PAD_TOKEN, UNK_TOKEN]) != [PAD_TOKEN, UNK_TOKEN]:
            raise SpeakError(f"character vocabulary: specials must be {[PAD_TOKEN, UNK_TOKEN]}")
        chars = data.get("chars")
        if not isinstance(chars, list):
            raise SpeakError("character vocabulary: 'chars' is missing or not a list")
        seen: set[str] = set()
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise SpeakError(f"character vocabulary: entry {i} ({c!r}) is not a single character")
            if c in seen:
                raise SpeakError(f"character vocabulary: character {c!r} appears twice")
            seen.add(c)
        counts = data.get("counts")
        if counts is not None:
            if not isinstance(counts, list) or len(counts) != len(chars):
                raise SpeakError("character vocabulary: 'counts' must be a list with one entry per character")
            if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in counts):
                raise SpeakError("character vocabulary: 'counts' must be non-negative integers")
        return cls(chars, counts)
