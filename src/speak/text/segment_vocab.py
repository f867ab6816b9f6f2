"""The segment vocabulary: SPEAK tokens (character spans) -> integer ids for a downstream model.

SPEAK cuts text into spans of the original string (Eq. 5); a model needs ids. The vocabulary holds:

- the XLM-R-style specials, ids 0-3 = ``<s>``, ``<pad>``, ``</s>``, ``<unk>``, and ``<mask>`` as the last id;
- with ``byte_fallback`` (what a saved tokenizer ships), ids 4-259 = the 256 UTF-8 bytes ``<0x00>`` .. ``<0xFF>``;
- **every character seen** in the corpus (so any text made of seen characters can be spelled), whatever the size
  limit says;
- then the most frequent multi-character candidates until ``max_size`` ids are used. The candidates are the SPEAK
  segments **and their whitespace-stripped cores** (``"light "`` also counts for ``"light"``): SPEAK's tokens
  carry their trailing space, so without the cores a word at the end of a line (no space after it) would have no
  entry under a small ``max_size`` and fall back to single characters.

Entries are ordered by descending corpus count, ties by the string, so one corpus + one tokenizer always give the
same ids.

Mapping a segment that is not an entry (the fallback policy, docs/hf.md): greedy longest-prefix match over the
vocabulary (the longest entry that is a prefix of what remains, then the rest), which ends in single characters;
a character that is not an entry becomes its UTF-8 bytes (one id per byte) with ``byte_fallback``, else ``<unk>``
(one id per character). With byte fallback no character is ever lost: decode gives back the exact text.
:meth:`SegmentVocab.pieces` is the reference implementation; ``speak.text.token_ids`` is its compiled twin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from speak.atomic import atomic_write_json, read_json
from speak.errors import SpeakError

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
SPECIALS_HEAD = (BOS, PAD, EOS, UNK)  # ids 0..3, as XLM-R; <mask> is the last id
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))  # ids 4..259 with byte fallback
_BYTE_VALUE = {t: b for b, t in enumerate(BYTE_TOKENS)}
VOCAB_FILE = "segment_vocab.json"  # its name in a tokenizer directory
FORMAT = "speak.SegmentVocab"
VERSION = 1


class SegmentVocab:
    """A frozen segment -> id table with greedy longest-prefix fallback (see the module doc)."""

    def __init__(self, pieces: Sequence[str], counts: Sequence[int] | None = None, byte_fallback: bool = False) -> None:
        pieces = list(pieces)
        for p in pieces:
            if not isinstance(p, str) or not p:
                raise SpeakError(f"segment vocabulary: entries must be non-empty strings, got {p!r}")
            if p in SPECIALS_HEAD or p == MASK:
                raise SpeakError(f"segment vocabulary: {p!r} is reserved for a special token")
            if byte_fallback and p in _BYTE_VALUE:
                raise SpeakError(f"segment vocabulary: {p!r} is reserved for a byte-fallback token")
        if len(set(pieces)) != len(pieces):
            raise SpeakError("segment vocabulary: entries must be unique")
        self.pieces = pieces
        self.counts = None if counts is None else [int(c) for c in counts]
        self.byte_fallback = bool(byte_fallback)
        self.first_piece = len(SPECIALS_HEAD) + (len(BYTE_TOKENS) if byte_fallback else 0)
        self.tokens: list[str] = [*SPECIALS_HEAD, *(BYTE_TOKENS if byte_fallback else ()), *pieces, MASK]
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.max_len = max((len(p) for p in pieces), default=1)
        self._cache: dict[str, tuple[tuple[int, int, int], ...]] = {}

    # ------------------------------------------------------------------ ids
    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, piece: object) -> bool:
        return isinstance(piece, str) and piece in self.index

    bos_id, pad_id, eos_id, unk_id = 0, 1, 2, 3  # the specials' fixed ids (XLM-R layout)
    byte_base = len(SPECIALS_HEAD)  # the id of <0x00> when byte_fallback is on

    @property
    def mask_id(self) -> int:
        return len(self.tokens) - 1

    @property
    def alphabet(self) -> list[str]:
        """The single characters that have their own id."""
        return [p for p in self.pieces if len(p) == 1]

    def id_of(self, piece: str) -> int:
        return self.index.get(piece, self.unk_id)

    def is_piece_id(self, i: int) -> bool:
        """Whether id ``i`` is an entry (not a special, not a byte)."""
        return self.first_piece <= i < self.mask_id

    def byte_of(self, i: int) -> int | None:
        """The byte value of a byte-fallback id, else None."""
        if self.byte_fallback and self.byte_base <= i < self.byte_base + 256:
            return i - self.byte_base
        return None

    # ------------------------------------------------------------------ fallback (the reference implementation)
    def pieces_of(self, segment: str) -> tuple[tuple[int, int, int], ...]:
        """``(id, start, end)`` of each piece of ``segment`` (offsets within it): the segment itself when it is an
        entry, else greedy longest-prefix entries; a character without an entry gives one ``<unk>``, or with byte
        fallback one id per UTF-8 byte, each spanning the whole character. The compiled twin is
        ``speak.text.token_ids.ids_from_offsets`` (parity-tested)."""
        hit = self._cache.get(segment)
        if hit is not None:
            return hit
        index, out, i, n = self.index, [], 0, len(segment)
        lo, hi = self.first_piece, self.mask_id
        while i < n:
            for k in range(min(self.max_len, n - i), 0, -1):
                pid = index.get(segment[i : i + k])
                if pid is not None and lo <= pid < hi:
                    out.append((pid, i, i + k))
                    i += k
                    break
            else:
                if self.byte_fallback:
                    for b in segment[i].encode("utf-8", "surrogatepass"):
                        out.append((self.byte_base + b, i, i + 1))
                else:
                    out.append((self.unk_id, i, i + 1))
                i += 1
        res = tuple(out)
        if len(self._cache) < 1_000_000:
            self._cache[segment] = res
        return res

    def split(self, segment: str) -> tuple[tuple[int, int], ...]:
        """``(id, length)`` of each piece of ``segment``; the lengths sum to ``len(segment)`` (the bytes of one
        byte-fallback character: the first has length 1, the others 0)."""
        out, last = [], 0
        for pid, _, b in self.pieces_of(segment):
            out.append((pid, b - last))
            last = b
        return tuple(out)

    def encode(self, segments: Iterable[str]) -> list[int]:
        """The ids of a sequence of segments (reference path)."""
        return [pid for seg in segments for pid, _, _ in self.pieces_of(seg)]

    def split_strings(self, segment: str) -> list[str]:
        """The pieces of ``segment`` as strings (a fallback character appears once, whatever its id count)."""
        out, last = [], -1
        for _, a, b in self.pieces_of(segment):
            if a != last:
                out.append(segment[a:b])
            last = a
        return out

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``: entries as themselves, runs of byte ids as their UTF-8 text (lossless), specials
        dropped (``skip_special_tokens``) or written as their names."""
        def parts() -> Iterator[str | int]:
            for i in map(int, ids):
                b = self.byte_of(i)
                if b is not None:
                    yield b
                elif self.is_piece_id(i) or (not skip_special_tokens and 0 <= i < len(self.tokens)):
                    yield self.tokens[i]

        return join_pieces(parts())

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_segments(cls, segments: Iterable[str], max_size: int = 8000, byte_fallback: bool = False,
                      cores: bool = True) -> "SegmentVocab":
        """Count ``segments`` (SPEAK tokens of a corpus) and keep every character plus the most frequent
        multi-character candidates: the segments and (``cores``) their whitespace-stripped cores.

        ``max_size`` counts all ids (the 5 specials and the 256 bytes included). When the characters alone exceed
        it they are all kept anyway (the vocabulary is then larger than ``max_size``).
        """
        fixed = len(SPECIALS_HEAD) + 1 + (len(BYTE_TOKENS) if byte_fallback else 0)
        if max_size < fixed + 1:
            raise SpeakError(f"segment vocabulary: max_size must be >= {fixed + 1} ({fixed} specials and bytes + "
                             "at least one entry)")
        seg_counts: Counter[str] = Counter(segments)
        char_counts: Counter[str] = Counter()
        multi: Counter[str] = Counter()
        for seg, c in seg_counts.items():
            for ch in seg:
                char_counts[ch] += c
            if len(seg) >= 2:
                multi[seg] += c
            core = seg.strip() if cores else seg
            if core != seg and len(core) >= 2:
                multi[core] += c
        reserved = {*SPECIALS_HEAD, MASK, *(BYTE_TOKENS if byte_fallback else ())}
        for special in reserved:
            multi.pop(special, None)
            char_counts.pop(special, None)
        room = max(0, max_size - fixed - len(char_counts))
        top = sorted(multi.items(), key=lambda sc: (-sc[1], sc[0]))[:room]
        entries = dict(char_counts)
        entries.update(top)
        ordered = sorted(entries.items(), key=lambda sc: (-sc[1], sc[0]))
        return cls([s for s, _ in ordered], [c for _, c in ordered], byte_fallback=byte_fallback)

    @classmethod
    def build(cls, tokenizer, texts: Iterable[str] | str, max_size: int = 8000,
              byte_fallback: bool = True) -> "SegmentVocab":
        """Segment ``texts`` (lines; a single string is split on newlines) with a SPEAK tokenizer and count.
        The vocabulary a saved tokenizer ships (byte fallback on: lossless on any text)."""
        if isinstance(texts, str):
            texts = texts.split("\n")
        lines = [t for t in texts if t]

        def gen():
            for start in range(0, len(lines), 4096):
                for toks in tokenizer.tokenize_batch(lines[start : start + 4096]):
                    yield from toks

        return cls.from_segments(gen(), max_size=max_size, byte_fallback=byte_fallback)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT, "version": VERSION, "specials": [*SPECIALS_HEAD, MASK],
                             "byte_fallback": self.byte_fallback, "pieces": list(self.pieces)}
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
        byte_fallback = data.get("byte_fallback", False)
        if not isinstance(byte_fallback, bool):
            raise SpeakError("segment vocabulary: 'byte_fallback' must be true or false")
        return cls(pieces, counts, byte_fallback=byte_fallback)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SegmentVocab":
        return cls.from_dict(read_json(path, missing=f"{path}: no segment vocabulary file", what="segment vocabulary"))


def join_pieces(parts: Iterable[str | int]) -> str:
    """Text of pieces (str) and byte-fallback bytes (int): each run of bytes as the UTF-8 text it spells."""
    out: list[str] = []
    buf = bytearray()
    for part in parts:
        if isinstance(part, int):
            buf.append(part)
            continue
        if buf:
            out.append(utf8_text(buf))
            buf = bytearray()
        out.append(part)
    if buf:
        out.append(utf8_text(buf))
    return "".join(out)


def utf8_text(buf: bytes | bytearray) -> str:
    """The text of fallback bytes: exact when they are whole characters (lone surrogates included, as the encoder
    writes them with ``surrogatepass``); a truncated or invalid run decodes with U+FFFD."""
    try:
        return bytes(buf).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return bytes(buf).decode("utf-8", "replace")
