"""The segment vocabulary: SPEAK tokens (character spans) -> integer ids for a downstream model.

SPEAK cuts text into spans of the original string (Eq. 5); a model needs ids. The vocabulary holds:

- the XLM-R-style specials, ids 0-3 = ``<s>``, ``<pad>``, ``</s>``, ``<unk>``, and ``<mask>`` as the last id;
- **every character seen** in the corpus (so any text made of seen characters can be spelled), whatever the size
  limit says;
- then the most frequent SPEAK segments of the corpus (length >= 2) until ``max_size`` entries are reached.

Entries are ordered by descending corpus count, ties by the string, so one corpus + one tokenizer always give the
same ids.

Mapping a segment that is not an entry (the fallback policy, docs/hf.md): greedy longest-prefix match over the
vocabulary (the longest entry that is a prefix of what remains, then the rest), which ends in single characters;
a character that is not an entry becomes ``<unk>`` (one id per unknown character, so offsets stay exact).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from speak.atomic import atomic_write_json, read_json
from speak.errors import SpeakError

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
SPECIALS_HEAD = (BOS, PAD, EOS, UNK)  # ids 0..3, as XLM-R; <mask> is the last id
FORMAT = "speak.SegmentVocab"
VERSION = 1


class SegmentVocab:
    """A frozen segment -> id table with greedy longest-prefix fallback (see the module doc)."""

    def __init__(self, pieces: Sequence[str], counts: Sequence[int] | None = None) -> None:
        pieces = list(pieces)
        for p in pieces:
            if not isinstance(p, str) or not p:
                raise SpeakError(f"segment vocabulary: entries must be non-empty strings, got {p!r}")
            if p in SPECIALS_HEAD or p == MASK:
                raise SpeakError(f"segment vocabulary: {p!r} is reserved for a special token")
        if len(set(pieces)) != len(pieces):
            raise SpeakError("segment vocabulary: entries must be unique")
        self.pieces = pieces
        self.counts = None if counts is None else [int(c) for c in counts]
        self.tokens: list[str] = [*SPECIALS_HEAD, *pieces, MASK]
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.max_len = max((len(p) for p in pieces), default=1)
        self._cache: dict[str, tuple[tuple[int, int], ...]] = {}

    # ------------------------------------------------------------------ ids
    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, piece: object) -> bool:
        return isinstance(piece, str) and piece in self.index

    bos_id, pad_id, eos_id, unk_id = 0, 1, 2, 3  # the specials' fixed ids (XLM-R layout)

    @property
    def mask_id(self) -> int:
        return len(self.tokens) - 1

    @property
    def alphabet(self) -> list[str]:
        """The single characters that have their own id."""
        return [p for p in self.pieces if len(p) == 1]

    def id_of(self, piece: str) -> int:
        return self.index.get(piece, self.unk_id)

    # ------------------------------------------------------------------ fallback
    def split(self, segment: str) -> tuple[tuple[int, int], ...]:
        """``(id, length)`` of each piece of ``segment``: itself when it is an entry, else greedy longest prefix.

        The lengths sum to ``len(segment)``; an unknown character is ``(<unk>, 1)``.
        """
        hit = self._cache.get(segment)
        if hit is not None:
            return hit
        index, out, i, n = self.index, [], 0, len(segment)
        while i < n:
            for k in range(min(self.max_len, n - i), 0, -1):
                pid = index.get(segment[i : i + k])
                if pid is not None and pid > 3 and pid != self.mask_id:
                    out.append((pid, k))
                    i += k
                    break
            else:
                out.append((self.unk_id, 1))
                i += 1
        res = tuple(out)
        if len(self._cache) < 1_000_000:
            self._cache[segment] = res
        return res

    def split_strings(self, segment: str) -> list[str]:
        """The pieces of ``segment`` as strings (unknown characters stay themselves; they map to ``<unk>``)."""
        out, pos = [], 0
        for _, k in self.split(segment):
            out.append(segment[pos : pos + k])
            pos += k
        return out

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_segments(cls, segments: Iterable[str], max_size: int = 8000) -> "SegmentVocab":
        """Count ``segments`` (SPEAK tokens of a corpus) and keep every character plus the most frequent segments.

        ``max_size`` counts all ids (the 5 specials included). When the characters alone exceed it they are all kept
        anyway (the vocabulary is then larger than ``max_size``).
        """
        if max_size < 6:
            raise SpeakError("segment vocabulary: max_size must be >= 6 (5 specials + at least one entry)")
        seg_counts: Counter[str] = Counter(segments)
        char_counts: Counter[str] = Counter()
        for seg, c in seg_counts.items():
            for ch in seg:
                char_counts[ch] += c
        for special in (*SPECIALS_HEAD, MASK):
            seg_counts.pop(special, None)
        room = max(0, max_size - 5 - len(char_counts))
        multi = sorted(((s, c) for s, c in seg_counts.items() if len(s) >= 2), key=lambda sc: (-sc[1], sc[0]))[:room]
        entries = dict(char_counts)
        for s, c in multi:
            entries[s] = c
        ordered = sorted(entries.items(), key=lambda sc: (-sc[1], sc[0]))
        return cls([s for s, _ in ordered], [c for _, c in ordered])

    @classmethod
    def build(cls, tokenizer, texts: Iterable[str] | str, max_size: int = 8000) -> "SegmentVocab":
        """Segment ``texts`` (lines; a single string is split on newlines) with a SpeakTokenizer and count."""
        if isinstance(texts, str):
            texts = texts.split("\n")
        lines = [t for t in texts if t]

        def gen():
            for start in range(0, len(lines), 4096):
                for toks in tokenizer.tokenize_batch(lines[start : start + 4096]):
                    yield from toks

        return cls.from_segments(gen(), max_size=max_size)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT, "version": VERSION, "specials": [*SPECIALS_HEAD, MASK],
                             "pieces": list(self.pieces)}
        if self.counts is not None:
            d["counts"] = list(self.counts)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> "SegmentVocab":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SpeakError(f"segment vocabulary: not a {FORMAT} document")
        if data.get("version") != VERSION:
            raise SpeakError(f"segment vocabulary: unsupported version {data.get('version')!r}")
        if data.get("specials") != [*SPECIALS_HEAD, MASK]:
            raise SpeakError(f"segment vocabulary: specials must be {[*SPECIALS_HEAD, MASK]}")
        pieces = data.get("pieces")
        if not isinstance(pieces, list):
            raise SpeakError("segment vocabulary: 'pieces' is missing or not a list")
        counts = data.get("counts")
        if counts is not None and (not isinstance(counts, list) or len(counts) != len(pieces)):
            raise SpeakError("segment vocabulary: 'counts' must have one entry per piece")
        return cls(pieces, counts)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SegmentVocab":
        return cls.from_dict(read_json(path, missing=f"{path}: no segment vocabulary file", what="segment vocabulary"))
