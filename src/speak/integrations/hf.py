"""SpeakHFTokenizer: SPEAK as a Hugging Face tokenizer (docs/hf.md).

Text -> SPEAK spans (Eq. 5, lossless) -> token-vocabulary ids (``speak.text.segment_vocab``: an entry, else greedy
longest-prefix entries, else one id per UTF-8 byte, so decode gives the text back). Specials follow XLM-R:
``<s> A </s>`` and ``<s> A </s></s> B </s>``; ids 0-3 = ``<s> <pad> </s> <unk>``, ``<mask>`` is the last id.

- ``save_pretrained(dir)`` writes a folder ``AutoTokenizer.from_pretrained(dir, trust_remote_code=True)`` loads in
  a fresh process: ``tokenizer_config.json`` (with ``auto_map``), this module copied as ``hf.py``, the SPEAK
  tokenizer files (``speak_tokenizer.json`` + ``.safetensors``, which also make the folder a SPEAK tokenizer
  directory) and ``segment_vocab.json``. Nothing is unpickled.
- ``__call__`` on strings (single, batch, pairs, ``is_split_into_words``) runs one compiled pass per call (spikes,
  then :func:`speak.text.token_ids.ids_from_offsets`, or for an n-gram tokenizer the fused scan straight to ids,
  then a compiled truncate/specials/pad assembly) and returns a
  ``BatchEncoding`` whose per-row encodings give ``word_ids()``, ``tokens()``, ``sequence_ids()``, ``char_to_token``
  and friends, as a fast tokenizer's do; ``return_offsets_mapping=True`` works. Overflowing tokens (``stride``)
  and pre-tokenized ids take transformers' own Python path (:meth:`reference_encode` is that path for any input).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from itertools import repeat
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit
from transformers import PreTrainedTokenizer
from transformers.tokenization_utils_base import AddedToken, BatchEncoding, PaddingStrategy, TruncationStrategy

from speak.atomic import ensure_dir
from speak.errors import SpeakError
from speak.text.segment_vocab import BOS, EOS, MASK, PAD, UNK, VOCAB_FILE, SegmentVocab, join_pieces
from speak.text.token_ids import IdTable, ends_from_spikes, ids_from_offsets
from speak.text.vocab import code_points
from speak.tokenizer.lookup import NGramLookupTables

SPEAK_CONFIG_FILE = "speak_tokenizer.json"
SPEAK_WEIGHTS_FILE = "speak_tokenizer.safetensors"
_SPACE = np.array([chr(c).isspace() for c in range(0x3001)], dtype=bool)  # U+3000 is the last whitespace


def _special(tok: str) -> AddedToken:
    return AddedToken(tok, lstrip=False, rstrip=False, normalized=False, special=True)


def word_starts(text: str) -> np.ndarray:
    """Positions where a word begins: a non-space character at the start or after whitespace."""
    space = _is_space(code_points(text))
    prev = np.concatenate(([True], space[:-1]))
    return np.flatnonzero(~space & prev)


def force_boundaries(spikes: np.ndarray, starts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Force a token boundary before every position in ``starts``: spike at ``start - 1`` (a spike closes its
    token, SPEC section 2), so each start opens a new token. Position 0 always opens one. Returns a copy."""
    out = np.array(spikes, dtype=bool, copy=True)
    idx = np.asarray(starts, dtype=np.int64)
    idx = idx[(idx > 0) & (idx <= out.size)]
    out[idx - 1] = True
    return out


def _is_space(cps: np.ndarray) -> np.ndarray:
    inside = cps < _SPACE.size
    out = np.zeros(cps.shape, dtype=bool)
    out[inside] = _SPACE[cps[inside]]
    return out


def _word_of_chars(text: str, word_lengths: Sequence[int] | None) -> np.ndarray:
    """Word index of each character (-1 for whitespace between words): words are whitespace-separated runs, or the
    given words (joined by single spaces) for ``is_split_into_words`` input."""
    if word_lengths is not None:
        out = np.full(len(text), -1, dtype=np.int64)
        pos = 0
        for i, n in enumerate(word_lengths):
            out[pos : pos + n] = i
            pos += n + 1
        return out
    space = _is_space(code_points(text))
    prev = np.concatenate(([True], space[:-1]))
    index = np.cumsum(~space & prev) - 1
    return np.where(space, -1, index)


# ---------------------------------------------------------------------------------------------- compiled assembly
@njit(cache=True, nogil=True)
def _assemble(ids, first, kept, pair_first, pair_kept, lengths, prefix, mid, suffix, pad_left, pad_id, out_ids,
              out_pos, out_seq):
    """Rows = [pad] prefix A mid B suffix [pad] (B, mid absent where ``pair_first < 0``): ids, the flat piece index
    of each entry (-1 for specials and padding) and its sequence (0 / 1, -1 special, -2 padding). ``ids``: the
    flat piece ids; ``first`` / ``kept``: each sequence's first kept piece and kept count; ``lengths``: each row's
    length after padding (cells beyond it, up to the matrices' width, are written as padding too)."""
    for r in range(first.shape[0]):
        pair = pair_first[r] >= 0
        n = prefix.shape[0] + kept[r] + suffix.shape[0]
        if pair:
            n += mid.shape[0] + pair_kept[r]
        pad = lengths[r] - n
        k = 0
        if pad_left:
            for _ in range(pad):
                out_ids[r, k] = pad_id
                out_pos[r, k] = -1
                out_seq[r, k] = -2
                k += 1
        for j in range(prefix.shape[0]):
            out_ids[r, k], out_pos[r, k], out_seq[r, k] = prefix[j], -1, -1
            k += 1
        for j in range(kept[r]):
            out_ids[r, k], out_pos[r, k], out_seq[r, k] = ids[first[r] + j], first[r] + j, 0
            k += 1
        if pair:
            for j in range(mid.shape[0]):
                out_ids[r, k], out_pos[r, k], out_seq[r, k] = mid[j], -1, -1
                k += 1
            for j in range(pair_kept[r]):
                out_ids[r, k], out_pos[r, k], out_seq[r, k] = ids[pair_first[r] + j], pair_first[r] + j, 1
                k += 1
        for j in range(suffix.shape[0]):
            out_ids[r, k], out_pos[r, k], out_seq[r, k] = suffix[j], -1, -1
            k += 1
        while k < out_ids.shape[1]:  # right padding, and the unused width of a row
            out_ids[r, k], out_pos[r, k], out_seq[r, k] = pad_id, -1, -2
            k += 1


def _kept(n1: np.ndarray, n2: np.ndarray | None, num_special: int, strategy: TruncationStrategy,
          max_length: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Tokens kept of each sequence under transformers' truncation rules (``truncate_sequences``), vectorised."""
    k1 = n1.copy()
    k2 = None if n2 is None else n2.copy()
    if strategy == TruncationStrategy.DO_NOT_TRUNCATE or not max_length:
        return k1, k2
    total = n1 + (0 if n2 is None else n2) + num_special
    rm = np.maximum(total - max_length, 0)
    if strategy == TruncationStrategy.ONLY_FIRST or (strategy == TruncationStrategy.LONGEST_FIRST and n2 is None):
        return np.maximum(n1 - rm, 0), k2
    if strategy == TruncationStrategy.ONLY_SECOND:
        return k1, (None if n2 is None else np.maximum(n2 - rm, 0))
    first_remove = np.minimum(np.abs(n2 - n1), rm)  # LONGEST_FIRST with a pair
    second_remove = rm - first_remove
    longer = n1 > n2
    ids_move = np.where(longer, first_remove + second_remove // 2, second_remove // 2)
    pair_move = np.where(longer, second_remove - second_remove // 2, first_remove + second_remove - second_remove // 2)
    return np.maximum(n1 - ids_move, 0), np.maximum(n2 - pair_move, 0)


def _as_tensor(m: np.ndarray, kind) -> Any:
    """A padded matrix as the requested tensor type without a copy where possible (torch: ``from_numpy``)."""
    if str(getattr(kind, "value", kind)) == "pt":
        import torch

        return torch.from_numpy(np.ascontiguousarray(m))
    return m


# ---------------------------------------------------------------------------------------------- encodings
class _Batch:
    """What the per-row encodings read: the assembled matrices and each sequence's pieces and text."""

    def __init__(self, ids, pos, seq, lengths, starts, ends, seqs, words, paired, tokens, added):
        self.ids, self.pos, self.seq, self.lengths = ids, pos, seq, lengths  # [B, W] x 3, [B]
        self.starts, self.ends = starts, ends  # [P] character span of each flat piece, within its sequence's text
        self.seqs, self.words, self.paired = seqs, words, paired  # texts (rows, then pairs), word lengths or None
        self.tokens, self.added = tokens, added  # vocabulary strings, added-token id -> string

    def text(self, row: int, s: int) -> tuple[str, list[int] | None]:
        """(text, word lengths) of sequence ``s`` (0 / 1) of ``row``."""
        i = row + s * self.lengths.shape[0]
        return self.seqs[i], self.words[i]


class _Encodings(Sequence):
    """The rows' :class:`SpeakEncoding`, made when read (a batch of 1000 rows costs nothing until then)."""

    def __init__(self, batch: _Batch):
        self._b = batch

    def __len__(self) -> int:
        return int(self._b.lengths.shape[0])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return SpeakEncoding(self._b, i)


class SpeakEncoding:
    """One row of a :class:`BatchEncoding`, with the interface of ``tokenizers.Encoding`` that ``BatchEncoding``
    and transformers' examples use (``word_ids``, ``sequence_ids``, ``tokens``, ``offsets``, ``char_to_token``,
    ``word_to_tokens``, ...). Word = a whitespace-separated run of the sequence's text, or one of the given words
    with ``is_split_into_words``; a token belongs to the word of its first non-space character (a whitespace-only
    token, a special and padding have none)."""

    __slots__ = ("_b", "_r", "_words")

    def __init__(self, batch: _Batch, row: int):
        self._b, self._r, self._words = batch, row, None

    def _cut(self, a: np.ndarray) -> np.ndarray:
        return a[self._r, : self._b.lengths[self._r]]

    def __len__(self) -> int:
        return int(self._b.lengths[self._r])

    @property
    def n_sequences(self) -> int:
        return 2 if self._b.paired else 1

    @property
    def ids(self) -> list[int]:
        return self._cut(self._b.ids).tolist()

    @property
    def type_ids(self) -> list[int]:
        return [0] * len(self)

    @property
    def attention_mask(self) -> list[int]:
        return (self._cut(self._b.seq) != -2).astype(np.int64).tolist()

    @property
    def special_tokens_mask(self) -> list[int]:
        return (self._cut(self._b.seq) < 0).astype(np.int64).tolist()

    @property
    def overflowing(self) -> list:
        return []

    @property
    def sequence_ids(self) -> list[int | None]:
        return [int(s) if s >= 0 else None for s in self._cut(self._b.seq).tolist()]

    @property
    def offsets(self) -> list[tuple[int, int]]:
        pos = self._cut(self._b.pos)
        ok = pos >= 0
        s = np.where(ok, self._b.starts[np.where(ok, pos, 0)], 0)
        e = np.where(ok, self._b.ends[np.where(ok, pos, 0)], 0)
        return list(zip(s.tolist(), e.tolist()))

    @property
    def tokens(self) -> list[str]:
        toks, added = self._b.tokens, self._b.added
        return [added[i] if i in added else toks[i] for i in self.ids]

    @property
    def word_ids(self) -> list[int | None]:
        if self._words is None:
            seq, offs = self._cut(self._b.seq), self.offsets
            per_seq = {}
            out: list[int | None] = []
            for s, (a, b) in zip(seq.tolist(), offs):
                if s < 0:
                    out.append(None)
                    continue
                if s not in per_seq:
                    per_seq[s] = _word_of_chars(*self._b.text(self._r, s))
                w = per_seq[s][a:b]
                w = w[w >= 0]
                out.append(int(w[0]) if w.size else None)
            self._words = out
        return self._words

    @property
    def words(self) -> list[int | None]:
        return self.word_ids

    def token_to_sequence(self, token_index: int) -> int | None:
        return self.sequence_ids[token_index]

    def token_to_word(self, token_index: int) -> int | None:
        return self.word_ids[token_index]

    def token_to_chars(self, token_index: int) -> tuple[int, int] | None:
        if self.sequence_ids[token_index] is None:
            return None
        return self.offsets[token_index]

    def char_to_token(self, char_pos: int, sequence_index: int = 0) -> int | None:
        for i, (s, (a, b)) in enumerate(zip(self.sequence_ids, self.offsets)):
            if s == sequence_index and a <= char_pos < b:
                return i
        return None

    def word_to_tokens(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        hits = [i for i, (s, w) in enumerate(zip(self.sequence_ids, self.word_ids))
                if s == sequence_index and w == word_index]
        return (hits[0], hits[-1] + 1) if hits else None

    def word_to_chars(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        span = self.word_to_tokens(word_index, sequence_index)
        if span is None:
            return None
        offs = self.offsets
        return offs[span[0]][0], offs[span[1] - 1][1]

    def char_to_word(self, char_pos: int, sequence_index: int = 0) -> int | None:
        t = self.char_to_token(char_pos, sequence_index)
        return None if t is None else self.word_ids[t]


# ---------------------------------------------------------------------------------------------- the tokenizer
class SpeakHFTokenizer(PreTrainedTokenizer):
    """A ``PreTrainedTokenizer`` whose tokens are SPEAK spans mapped through a :class:`SegmentVocab`.

    Build from a SPEAK tokenizer (``SpeakHFTokenizer(speak_tokenizer=tok)`` uses the vocabulary it ships;
    :meth:`build` makes one from texts) or load a saved folder with ``from_pretrained`` / ``AutoTokenizer``.
    """

    vocab_files_names = {"speak_config_file": SPEAK_CONFIG_FILE, "speak_weights_file": SPEAK_WEIGHTS_FILE,
                         "segment_vocab_file": VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, speak_config_file: str | None = None, speak_weights_file: str | None = None,
                 segment_vocab_file: str | None = None, *, speak_tokenizer=None,
                 segment_vocab: SegmentVocab | None = None, model_max_length: int = 512, **kwargs):
        from speak.tokenizer import SpeakTokenizer

        if speak_tokenizer is None:
            if speak_config_file is None:
                raise SpeakError("SpeakHFTokenizer needs a SPEAK tokenizer (speak_tokenizer=...) or its files")
            directory = Path(speak_config_file).parent
            if speak_weights_file is not None and Path(speak_weights_file).parent != directory:
                raise SpeakError(f"{speak_weights_file}: the SPEAK weights must sit beside {speak_config_file}")
            speak_tokenizer = SpeakTokenizer.from_pretrained(directory)
        if segment_vocab is None:
            segment_vocab = (SegmentVocab.load(segment_vocab_file) if segment_vocab_file is not None
                             else speak_tokenizer.segment_vocab)
        if segment_vocab is None:
            raise SpeakError("this SPEAK tokenizer ships no token vocabulary: build one with SpeakHFTokenizer.build "
                             "or refit with `speak fit-tokenizer`")
        self.speak = speak_tokenizer
        self.segment_vocab = segment_vocab
        self._table = IdTable.from_vocab(segment_vocab)
        self.compiled = True  # False: every call takes transformers' Python path (the reference)
        for name, tok in (("bos_token", BOS), ("eos_token", EOS), ("sep_token", EOS), ("cls_token", BOS),
                          ("unk_token", UNK), ("pad_token", PAD), ("mask_token", MASK)):
            kwargs.setdefault(name, _special(tok))
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        kwargs.setdefault("special_tokens_pattern", "cls_double_sep")
        kwargs.setdefault("token_type_ids_pattern", "all_zeros")
        super().__init__(model_max_length=model_max_length, **kwargs)
        self._added_re: tuple[Any, re.Pattern | None] | None = None

    @classmethod
    def build(cls, speak_tokenizer, texts, max_size: int = 8000, **kwargs) -> "SpeakHFTokenizer":
        """Build the token vocabulary from ``texts`` with ``speak_tokenizer`` (byte fallback on) and wrap both."""
        return cls(speak_tokenizer=speak_tokenizer,
                   segment_vocab=SegmentVocab.build(speak_tokenizer, texts, max_size=max_size), **kwargs)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.segment_vocab)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.segment_vocab.index)
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _convert_token_to_id(self, token: str) -> int:
        return self.segment_vocab.id_of(token)

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < len(self.segment_vocab):
            return self.segment_vocab.tokens[index]
        return UNK

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Pieces as themselves; runs of byte-fallback tokens (``<0xC3>``) as the UTF-8 text they spell."""
        index, byte_of = self.segment_vocab.index, self.segment_vocab.byte_of

        def part(token: str) -> str | int:
            b = byte_of(index[token]) if token in index else None
            return token if b is None else b

        return join_pieces(map(part, tokens))

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        """The reference path: SPEAK spans (Python) -> :meth:`SegmentVocab.pieces_of` -> token strings."""
        tokens = self.segment_vocab.tokens
        return [tokens[pid] for span in self.speak.tokenize(text) for pid, _, _ in self.segment_vocab.pieces_of(span)]

    # ------------------------------------------------------------------ the compiled path
    def _added_pattern(self) -> re.Pattern | None:
        """A regex finding added tokens in text (None when only specials that never appear are there)."""
        key = tuple(sorted(self._added_tokens_encoder))
        if self._added_re is None or self._added_re[0] != key:
            contents = sorted(key, key=len, reverse=True)
            self._added_re = (key, re.compile("|".join(map(re.escape, contents))) if contents else None)
        return self._added_re[1]

    def _fast_ok(self, text, text_pair, is_split: bool, overflowing: bool) -> bool:
        if not self.compiled or overflowing:
            return False
        if any(t.lstrip or t.rstrip or t.single_word for t in self._added_tokens_decoder.values()):
            return False

        def ok(x, batched):
            if x is None:
                return True
            if is_split:
                rows = x if batched else [x]
                return all(isinstance(r, (list, tuple)) and all(isinstance(w, str) for w in r) for r in rows)
            return all(map(isinstance, x, repeat(str))) if batched else isinstance(x, str)

        batched = self._is_batched(text, is_split)
        return ok(text, batched) and ok(text_pair, batched)

    @staticmethod
    def _is_batched(text, is_split: bool) -> bool:
        if not isinstance(text, (list, tuple)):
            return False
        if is_split:
            return bool(text) and isinstance(text[0], (list, tuple))
        return True

    def _sequence_pieces(self, seqs: list[str], words: list[list[int] | None], is_split: bool, split_special: bool):
        """Flat ids and spans of each sequence (chunks between added tokens go through SPEAK and the table)."""
        pattern = None if split_special else self._added_pattern()
        if not is_split and (pattern is None or not any(map(pattern.search, seqs))):
            res = self._chunk_ids(seqs, None)  # the common case: each sequence is one chunk
            off = np.concatenate(([0], np.cumsum(res.counts))).astype(np.int64)
            return res.ids, res.starts, res.ends, off[:-1], res.counts
        chunks: list[str] = []
        chunk_origin: list[int] = []
        forced: list[tuple[list[tuple], np.ndarray]] = []
        layout: list[list[tuple]] = []  # per sequence: ("c", chunk) | ("t", id, start, end)
        for text, wl in zip(seqs, words):
            parts: list[tuple] = []
            pos = 0
            if pattern is not None and pattern.search(text):
                for m in pattern.finditer(text):
                    if m.start() > pos:
                        parts.append(("c", len(chunks)))
                        chunks.append(text[pos : m.start()])
                        chunk_origin.append(pos)
                    parts.append(("t", self._added_tokens_encoder[m.group()], m.start(), m.end()))
                    pos = m.end()
            if pos < len(text) or not parts:
                parts.append(("c", len(chunks)))
                chunks.append(text[pos:])
                chunk_origin.append(pos)
            if wl is not None:  # word starts open tokens (is_split_into_words)
                forced.append((parts, np.cumsum([0] + [n + 1 for n in wl[:-1]]).astype(np.int64)))
            layout.append(parts)
        force = [(p[1], chunk_origin[p[1]], starts) for parts, starts in forced for p in parts if p[0] == "c"]
        res = self._chunk_ids(chunks, force)
        c_off = np.concatenate(([0], np.cumsum(res.counts))).astype(np.int64)
        ids, st, en, first, count = [], [], [], [], []
        total = 0
        for parts in layout:
            first.append(total)
            for p in parts:
                if p[0] == "t":
                    ids.append(np.array([p[1]]))
                    st.append(np.array([p[2]]))
                    en.append(np.array([p[3]]))
                    total += 1
                else:
                    a, b = c_off[p[1]], c_off[p[1] + 1]
                    ids.append(res.ids[a:b])
                    st.append(res.starts[a:b] + chunk_origin[p[1]])
                    en.append(res.ends[a:b] + chunk_origin[p[1]])
                    total += b - a
            count.append(total - first[-1])
        cat = lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)  # noqa: E731
        return cat(ids), cat(st), cat(en), np.asarray(first, np.int64), np.asarray(count, np.int64)

    def _chunk_ids(self, chunks: list[str], force: list[tuple[int, int, np.ndarray]] | None):
        """Compiled: SPEAK spikes of each chunk (scanned from rest), boundaries forced before the word starts in
        ``force`` ((chunk, its origin in the text, word starts in the text)), token ends, ids. Without forced
        boundaries an n-gram tokenizer runs its fused scan (code points -> ids in one pass)."""
        fast = self.speak._lookup()
        if not force and fast is not None and isinstance(fast.tables, NGramLookupTables):
            return fast.encode_ids(chunks, self._table)
        lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
        bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        spikes = self.speak.spikes_many(chunks)
        flat = np.concatenate(spikes) if spikes else np.zeros(0, dtype=bool)
        for c, o, starts in force or ():  # a spike closes the token before each word start
            idx = starts[(starts > o) & (starts < o + lengths[c])] - o
            flat[bounds[c] + idx - 1] = True
        ends, counts = ends_from_spikes(flat, bounds)
        return ids_from_offsets(self._table, code_points("".join(chunks)), bounds, ends, counts)

    def _templates(self, add_special_tokens: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(prefix, suffix) of a single sequence and (prefix, mid, suffix) of a pair, from the tokenizer's own
        ``build_inputs_with_special_tokens``."""
        empty = np.zeros(0, np.int64)
        if not add_special_tokens:
            return empty, empty, empty, empty, empty
        one = self.build_inputs_with_special_tokens([-7])
        two = self.build_inputs_with_special_tokens([-7], [-8])
        a, i, j = one.index(-7), two.index(-7), two.index(-8)
        arr = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
        return arr(one[:a]), arr(one[a + 1 :]), arr(two[:i]), arr(two[i + 1 : j]), arr(two[j + 1 :])

    def _encode_compiled(self, text, text_pair, add_special_tokens: bool, padding_strategy: PaddingStrategy,
                         truncation_strategy: TruncationStrategy, max_length: int | None, is_split: bool,
                         pad_to_multiple_of: int | None, padding_side: str | None, return_tensors,
                         return_token_type_ids: bool | None, return_attention_mask: bool | None,
                         return_special_tokens_mask: bool, return_offsets_mapping: bool, return_length: bool,
                         split_special_tokens: bool) -> BatchEncoding:
        batched = self._is_batched(text, is_split)
        rows = list(text) if batched else [text]
        pairs = None if text_pair is None else (list(text_pair) if batched else [text_pair])
        if pairs is not None and len(pairs) != len(rows):
            raise ValueError("If `text` is a batch, `text_pair` must also be a batch of the same length.")
        B = len(rows)

        seqs = rows + (pairs or [])
        words: list = [None] * len(seqs)
        if is_split:
            words = [[len(w) for w in x] for x in seqs]
            seqs = [" ".join(x) for x in seqs]
        ids, starts, ends, first, count = self._sequence_pieces(seqs, words, is_split, split_special_tokens)
        n1 = count[:B]
        n2 = None if pairs is None else count[B:]
        pre1, suf1, pre2, mid, suf2 = self._templates(add_special_tokens)
        prefix, suffix = (pre1, suf1) if pairs is None else (pre2, suf2)
        num_special = prefix.size + suffix.size + (mid.size if pairs is not None else 0)
        k1, k2 = _kept(n1, n2, num_special, truncation_strategy, max_length)
        left = self.truncation_side == "left"
        f1 = first[:B] + (n1 - k1 if left else 0)
        f2 = np.full(B, -1, np.int64) if pairs is None else first[B:] + (n2 - k2 if left else 0)
        k2a = np.zeros(B, np.int64) if k2 is None else k2
        raw = k1 + k2a + num_special  # [B] lengths before padding
        target = 0
        if padding_strategy == PaddingStrategy.LONGEST:
            target = int(raw.max()) if B else 0
        elif padding_strategy == PaddingStrategy.MAX_LENGTH and max_length is not None:
            target = max_length
        if padding_strategy != PaddingStrategy.DO_NOT_PAD and pad_to_multiple_of and target % pad_to_multiple_of:
            target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of
        lengths = np.maximum(raw, target) if padding_strategy != PaddingStrategy.DO_NOT_PAD else raw
        W = int(lengths.max()) if B else 0
        out_ids, out_pos, out_seq = (np.empty((B, W), np.int64) for _ in range(3))
        side = padding_side or self.padding_side
        _assemble(ids, f1, k1, f2, k2a, lengths, prefix, mid, suffix, side == "left", int(self.pad_token_id),
                  out_ids, out_pos, out_seq)

        uniform = B > 0 and bool((lengths == W).all())
        if uniform:
            as_rows = (lambda m: _as_tensor(m, return_tensors)) if return_tensors else (lambda m: m.tolist())
        else:
            as_rows = lambda m: [row[:n] for row, n in zip(m.tolist(), lengths.tolist())]  # noqa: E731
        data: dict[str, Any] = {"input_ids": as_rows(out_ids)}
        if return_token_type_ids or (return_token_type_ids is None and "token_type_ids" in self.model_input_names):
            data["token_type_ids"] = as_rows(np.zeros((B, W), np.int64))
        if return_attention_mask or (return_attention_mask is None and "attention_mask" in self.model_input_names):
            data["attention_mask"] = as_rows((out_seq != -2).astype(np.int64))
        if return_special_tokens_mask:
            data["special_tokens_mask"] = as_rows((out_seq < 0).astype(np.int64))
        if return_offsets_mapping:
            has = out_pos >= 0
            pos = np.where(has, out_pos, 0)
            s_mat, e_mat = np.where(has, starts[pos], 0), np.where(has, ends[pos], 0)  # [B, W] each
            if uniform and return_tensors:
                data["offset_mapping"] = _as_tensor(np.stack([s_mat, e_mat], -1), return_tensors)  # [B, W, 2]
            else:  # lists of (start, end) tuples, as fast tokenizers give
                data["offset_mapping"] = [list(zip(s[:n], e[:n])) for s, e, n in
                                          zip(s_mat.tolist(), e_mat.tolist(), lengths.tolist())]
        if return_length:
            data["length"] = (raw if batched else lengths).tolist()
        batch = _Batch(out_ids, out_pos, out_seq, lengths, starts, ends, seqs, words, pairs is not None,
                       self.segment_vocab.tokens, {v: k for k, v in self._added_tokens_encoder.items()})
        encodings = _Encodings(batch)
        if not batched:
            data = {k: (v[:1] if return_tensors else v[0]) for k, v in data.items()}
        return BatchEncoding(data, encoding=encodings, tensor_type=return_tensors,
                             n_sequences=1 if pairs is None else 2)

    def _encode_plus(self, text, text_pair=None, add_special_tokens: bool = True,
                     padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
                     truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
                     max_length: int | None = None, stride: int = 0, is_split_into_words: bool = False,
                     pad_to_multiple_of: int | None = None, padding_side: str | None = None, return_tensors=None,
                     return_token_type_ids: bool | None = None, return_attention_mask: bool | None = None,
                     return_overflowing_tokens: bool = False, return_special_tokens_mask: bool = False,
                     return_offsets_mapping: bool = False, return_length: bool = False, verbose: bool = True,
                     split_special_tokens: bool = False, **kwargs) -> BatchEncoding:
        if self._fast_ok(text, text_pair, is_split_into_words, return_overflowing_tokens):
            return self._encode_compiled(
                text, text_pair, add_special_tokens, padding_strategy, truncation_strategy, max_length,
                is_split_into_words, pad_to_multiple_of, padding_side, return_tensors, return_token_type_ids,
                return_attention_mask, return_special_tokens_mask, return_offsets_mapping, return_length,
                split_special_tokens)
        if return_offsets_mapping:
            raise NotImplementedError("return_offsets_mapping needs string input and no overflowing tokens")
        if is_split_into_words:  # the reference for split words: one string with a boundary before each word
            text = self._words_to_ids(text)
            text_pair = None if text_pair is None else self._words_to_ids(text_pair)
            is_split_into_words = False
        return super()._encode_plus(
            text, text_pair, add_special_tokens=add_special_tokens, padding_strategy=padding_strategy,
            truncation_strategy=truncation_strategy, max_length=max_length, stride=stride,
            is_split_into_words=is_split_into_words, pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side, return_tensors=return_tensors, return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask, return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask, return_length=return_length, verbose=verbose,
            split_special_tokens=split_special_tokens, **kwargs)

    def reference_encode(self, *args, **kwargs) -> BatchEncoding:
        """``__call__`` through transformers' Python path (per-text SPEAK spans, ``SegmentVocab.pieces_of``,
        ``prepare_for_model``, ``pad``): the slow twin the compiled path is tested against."""
        compiled, self.compiled = self.compiled, False
        try:
            return self(*args, **kwargs)
        finally:
            self.compiled = compiled

    # ------------------------------------------------------------------ words
    def _words_to_ids(self, item):
        if self._is_batched(item, True):
            return [self.encode_words(list(x))[0] for x in item]
        return self.encode_words(list(item))[0]

    def encode_words(self, words: Sequence[str], force: bool = True) -> tuple[list[int], list[int | None], str]:
        """Encode pre-split words joined by single spaces, with a boundary forced before each word start (so
        word-level labels align; Python reference path). Returns ids, the word index of each token (None for a
        token that starts on a space) and the joined text."""
        text = " ".join(words)
        starts, pos = [], 0
        for w in words:
            starts.append(pos)
            pos += len(w) + 1
        spikes = self.speak.spikes(text) if text else np.zeros(0, bool)
        if force:
            spikes = force_boundaries(spikes, starts)
        word_of = _word_of_chars(text, [len(w) for w in words])
        ids, wids = [], []
        from speak.text.segment import token_offsets

        for a, b in token_offsets(spikes, len(text)):
            for pid, x, _ in self.segment_vocab.pieces_of(text[a:b]):
                ids.append(pid)
                wids.append(int(word_of[a + x]) if word_of[a + x] >= 0 else None)
        return ids, wids, text

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and (start, end) character offsets of ``text`` without added specials."""
        enc = self(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], enc["offset_mapping"]

    # ------------------------------------------------------------------ persistence (no pickle anywhere)
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """The SPEAK tokenizer files and the token vocabulary, under their fixed names (a SPEAK tokenizer directory
        needs them; ``filename_prefix`` is not supported)."""
        if filename_prefix:
            raise SpeakError("SpeakHFTokenizer: filename_prefix is not supported (SPEAK's file names are fixed)")
        directory = Path(save_directory)
        self.speak.save_pretrained(directory)
        self.segment_vocab.save(directory / VOCAB_FILE)
        return tuple(str(directory / f) for f in (SPEAK_CONFIG_FILE, SPEAK_WEIGHTS_FILE, VOCAB_FILE))

    def save_pretrained(self, save_directory, *args, **kwargs) -> tuple[str, ...]:
        """transformers' ``save_pretrained`` (config with ``auto_map``, this module as ``hf.py``, the vocabulary
        files), written in a scratch folder first and moved in file by file (each file appears whole)."""
        directory = Path(save_directory)
        ensure_dir(directory, "tokenizer folder")
        scratch = Path(tempfile.mkdtemp(prefix=".speak-hf-", dir=directory))
        try:
            super().save_pretrained(scratch, *args, **kwargs)
            moved = []
            for path in sorted(scratch.rglob("*")):
                if path.is_file():
                    target = directory / path.relative_to(scratch)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
                    moved.append(str(target))
            return tuple(moved)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs) -> "SpeakHFTokenizer":
        """transformers' loader; a local folder that is not a saved SpeakHFTokenizer is one SpeakError."""
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir() and (path.exists() or str(path).startswith((".", "/", "~"))):
            raise SpeakError(f"{path}: no such tokenizer folder")
        if path.is_dir():
            names = ("tokenizer_config.json", *cls.vocab_files_names.values())
            missing = [f for f in names if not (path / f).is_file()]
            if missing:
                raise SpeakError(f"{path}: not a saved SpeakHFTokenizer (missing {', '.join(missing)})")
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


SpeakHFTokenizer.register_for_auto_class("AutoTokenizer")
