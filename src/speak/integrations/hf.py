"""SpeakHFTokenizer: a transformers-compatible tokenizer around a SpeakTokenizer and a SegmentVocab (docs/hf.md).

Text -> SPEAK spans (Eq. 5, lossless) -> segment-vocabulary ids (an entry, else greedy longest-prefix pieces, else
``<unk>`` per character). Specials follow XLM-R: ``<s> A </s>`` and ``<s> A </s></s> B </s>``; ids 0-3 are
``<s> <pad> </s> <unk>``, ``<mask>`` is the last id. ``return_offsets_mapping=True`` is supported (slow tokenizers do
not have it natively): the offsets are computed here and go through the same truncation and padding as the ids.

``decode(ids, skip_special_tokens=True)`` gives back the text exactly when every character of it is in the
vocabulary; an unknown character decodes as the literal string ``<unk>`` (one per character).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from transformers import PreTrainedTokenizer
from transformers.tokenization_utils_base import AddedToken, BatchEncoding, PaddingStrategy, TruncationStrategy

from speak.atomic import atomic_write_json, ensure_dir, read_json
from speak.errors import SpeakError
from speak.text.segment_vocab import BOS, EOS, MASK, PAD, UNK, SegmentVocab
from speak.text.segment import token_offsets

HF_CONFIG_FILE = "speak_hf_tokenizer.json"
SEGMENT_VOCAB_FILE = "segment_vocab.json"
SPEAK_SUBDIR = "speak"
FORMAT = "speak-hf-tokenizer"
VERSION = 1
_OFFSET_BASE = 1 << 40  # index ids for the offset pass: far above any real id


def word_starts(text: str) -> np.ndarray:
    """Positions where a word begins: a non-space character at the start or after whitespace."""
    if not text:
        return np.zeros(0, dtype=np.int64)
    space = np.fromiter((c.isspace() for c in text), dtype=bool, count=len(text))
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


def _special(tok: str) -> AddedToken:
    return AddedToken(tok, lstrip=False, rstrip=False, normalized=False, special=True)


class SpeakHFTokenizer(PreTrainedTokenizer):
    """A `PreTrainedTokenizer` whose tokens are SPEAK spans mapped through a :class:`SegmentVocab`."""

    vocab_files_names = {"segment_vocab_file": SEGMENT_VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, speak_tokenizer, segment_vocab: SegmentVocab, *, model_max_length: int = 512, **kwargs):
        self.speak = speak_tokenizer
        self.segment_vocab = segment_vocab
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            bos_token=_special(BOS), eos_token=_special(EOS), sep_token=_special(EOS), cls_token=_special(BOS),
            unk_token=_special(UNK), pad_token=_special(PAD), mask_token=_special(MASK),
            special_tokens_pattern="cls_double_sep", token_type_ids_pattern="all_zeros",
            model_max_length=model_max_length, **kwargs)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.segment_vocab)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.segment_vocab.index)
        vocab.update(getattr(self, "_added_tokens_encoder", {}))
        return vocab

    def _convert_token_to_id(self, token: str) -> int:
        return self.segment_vocab.id_of(token)

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < len(self.segment_vocab):
            return self.segment_vocab.tokens[index]
        return UNK

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)

    # ------------------------------------------------------------------ segmentation
    def _chunk_pieces(self, text: str, base: int = 0, spikes: np.ndarray | None = None):
        """(id, start, end) of every piece of a special-free chunk; ``spikes`` overrides SPEAK's own."""
        if not text:
            return []
        if spikes is None:
            spikes = self.speak.spikes(text)
        out = []
        for a, b in token_offsets(spikes, len(text)):
            pos = a
            for pid, k in self.segment_vocab.split(text[a:b]):
                out.append((pid, base + pos, base + pos + k))
                pos += k
        return out

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return [text[a:b] for _, a, b in self._chunk_pieces(text)]

    def encode_with_offsets(self, text: str, split_special_tokens: bool | None = None) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and (start, end) character offsets of ``text`` without added specials (matches ``tokenize``)."""
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        chunks = [text] if split else self.tokens_trie.split(text)
        ids, offs, pos = [], [], 0
        specials = self._added_tokens_encoder
        for chunk in chunks:
            if not chunk:
                continue
            if not split and chunk in specials:
                ids.append(specials[chunk])
                offs.append((pos, pos + len(chunk)))
            else:
                for pid, a, b in self._chunk_pieces(chunk, pos):
                    ids.append(pid)
                    offs.append((a, b))
            pos += len(chunk)
        return ids, offs

    def encode_words(self, words: Sequence[str], force: bool = True) -> tuple[list[int], list[int | None], str]:
        """Encode pre-split words joined by single spaces, with a boundary forced before each word start (so
        word-level labels align). Returns ids, the word index of each token (None for a token that starts on a
        space) and the joined text."""
        text = " ".join(words)
        starts, pos = [], 0
        for w in words:
            starts.append(pos)
            pos += len(w) + 1
        spikes = self.speak.spikes(text) if text else np.zeros(0, bool)
        if force:
            spikes = force_boundaries(spikes, starts)
        word_of = np.full(len(text), -1, dtype=np.int64)
        for i, (s, w) in enumerate(zip(starts, words)):
            word_of[s : s + len(w)] = i
        ids, wids = [], []
        for pid, a, _ in self._chunk_pieces(text, 0, spikes):
            ids.append(pid)
            wids.append(int(word_of[a]) if word_of[a] >= 0 else None)
        return ids, wids, text

    # ------------------------------------------------------------------ __call__ plumbing
    def truncate_sequences(self, *args, **kwargs):
        """As the base class, minus its warning on every longest_first pair truncation (offsets are not lost here)."""
        import logging

        log = logging.getLogger("transformers.tokenization_python")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            return super().truncate_sequences(*args, **kwargs)
        finally:
            log.setLevel(level)

    def _words_to_ids(self, item):
        if isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
            return self.encode_words(list(item))[0]
        return item

    def _encode_plus(self, text, text_pair=None, add_special_tokens: bool = True,
                     padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
                     truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
                     max_length: int | None = None, return_offsets_mapping: bool = False, **kwargs) -> BatchEncoding:
        is_split = kwargs.get("is_split_into_words", False)
        batched = isinstance(text, (list, tuple)) and (
            (not is_split and (not text or isinstance(text[0], (str, list, tuple))))
            or (is_split and bool(text) and isinstance(text[0], (list, tuple))))
        if is_split:  # words joined by spaces with forced word-start boundaries (see encode_words)
            if batched:
                text = [self._words_to_ids(t) for t in text]
                text_pair = None if text_pair is None else [self._words_to_ids(t) for t in text_pair]
            else:
                text = self._words_to_ids(text)
                text_pair = None if text_pair is None else self._words_to_ids(text_pair)
            kwargs["is_split_into_words"] = False
        common = dict(add_special_tokens=add_special_tokens, padding_strategy=padding_strategy,
                      truncation_strategy=truncation_strategy, max_length=max_length)
        if not return_offsets_mapping:
            return super()._encode_plus(text, text_pair, **common, **kwargs)
        if batched:
            return self._batch_with_offsets(text, text_pair, common, kwargs)
        return self._single_with_offsets(text, text_pair, common, kwargs)

    def _single_with_offsets(self, text, text_pair, common, kwargs) -> BatchEncoding:
        if not isinstance(text, str) or (text_pair is not None and not isinstance(text_pair, str)):
            raise NotImplementedError("return_offsets_mapping needs raw strings (not pre-tokenised input)")
        split = kwargs.get("split_special_tokens")
        ids0, offs0 = self.encode_with_offsets(text, split)
        ids1, offs1 = self.encode_with_offsets(text_pair, split) if text_pair is not None else (None, [])
        kw = {k: v for k, v in kwargs.items() if k not in ("split_special_tokens", "is_split_into_words")}
        enc = self.prepare_for_model(
            ids0, pair_ids=ids1, add_special_tokens=common["add_special_tokens"],
            padding=common["padding_strategy"].value, truncation=common["truncation_strategy"].value,
            max_length=common["max_length"], prepend_batch_axis=True, **kw)
        # The same truncation / specials / padding applied to position markers tells where each offset went.
        marks0 = [_OFFSET_BASE + i for i in range(len(ids0))]
        marks1 = None if ids1 is None else [_OFFSET_BASE + len(ids0) + i for i in range(len(ids1))]
        kw_marks = {k: v for k, v in kw.items() if k in ("stride", "pad_to_multiple_of", "padding_side")}
        marked = self.prepare_for_model(
            marks0, pair_ids=marks1, add_special_tokens=common["add_special_tokens"],
            padding=common["padding_strategy"].value, truncation=common["truncation_strategy"].value,
            max_length=common["max_length"], return_attention_mask=False, return_token_type_ids=False,
            verbose=False, **kw_marks)["input_ids"]
        all_offs = offs0 + offs1
        mapping = [all_offs[m - _OFFSET_BASE] if m >= _OFFSET_BASE else (0, 0) for m in marked]
        tensor_type = kw.get("return_tensors")
        data = dict(enc.data)
        if tensor_type is not None:
            data = {k: (v[0].tolist() if hasattr(v, "tolist") else v) for k, v in data.items()}
            data["offset_mapping"] = mapping
            return BatchEncoding({k: [v] for k, v in data.items()}, tensor_type=tensor_type)
        data["offset_mapping"] = mapping
        return BatchEncoding(data)

    def _batch_with_offsets(self, texts, pairs, common, kwargs) -> BatchEncoding:
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError("If `text` is a batch, `text_pair` must also be a batch of the same length.")
        pairs = pairs if pairs is not None else [None] * len(texts)
        tensor_type = kwargs.pop("return_tensors", None)
        return_mask = kwargs.pop("return_attention_mask", None)
        pad_side = kwargs.pop("padding_side", None)
        multiple = kwargs.pop("pad_to_multiple_of", None)
        rows: dict[str, list] = {}
        for t, p in zip(texts, pairs):
            if isinstance(t, (list, tuple)) and p is None and len(t) == 2:
                t, p = t
            enc = self._single_with_offsets(
                t, p, dict(common, padding_strategy=PaddingStrategy.DO_NOT_PAD),
                dict(kwargs, return_attention_mask=False))
            for k, v in enc.items():
                rows.setdefault(k, []).append(v)
        offsets = rows.pop("offset_mapping")
        lengths = [len(x) for x in rows["input_ids"]]
        padded = self.pad(rows, padding=common["padding_strategy"].value, max_length=common["max_length"],
                          pad_to_multiple_of=multiple, padding_side=pad_side, return_attention_mask=return_mask)
        side = pad_side or self.padding_side
        out = dict(padded.data)
        new_offsets = []
        for off, n, row in zip(offsets, lengths, out["input_ids"]):
            fill = [(0, 0)] * (len(row) - n)
            new_offsets.append(fill + off if side == "left" else off + fill)
        out["offset_mapping"] = new_offsets
        return BatchEncoding(out, tensor_type=tensor_type)

    # ------------------------------------------------------------------ persistence (no pickle anywhere)
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        path = Path(save_directory) / ((f"{filename_prefix}-" if filename_prefix else "") + SEGMENT_VOCAB_FILE)
        self.segment_vocab.save(path)
        return (str(path),)

    def save_pretrained(self, save_directory, *args, **kwargs) -> tuple[str, ...]:
        """Write ``segment_vocab.json``, the SPEAK tokenizer under ``speak/`` and ``speak_hf_tokenizer.json``."""
        directory = Path(save_directory)
        ensure_dir(directory, 'tokenizer folder')
        self.speak.save_pretrained(directory / SPEAK_SUBDIR)
        vocab_path = self.save_vocabulary(str(directory))[0]
        added = {str(i): t.content for i, t in self._added_tokens_decoder.items()
                 if t.content not in self.segment_vocab.index}
        atomic_write_json(directory / HF_CONFIG_FILE, {
            "format": FORMAT, "version": VERSION, "tokenizer_class": type(self).__name__,
            "model_max_length": int(self.model_max_length), "padding_side": self.padding_side,
            "truncation_side": self.truncation_side, "added_tokens": added,
        })
        return (str(directory / HF_CONFIG_FILE), vocab_path, str(directory / SPEAK_SUBDIR))

    @classmethod
    def from_pretrained(cls, directory, *args, **kwargs) -> "SpeakHFTokenizer":
        """Load a directory written by :meth:`save_pretrained` (local only; JSON + safetensors, nothing unpickled)."""
        from speak.tokenizer import SpeakTokenizer

        directory = Path(directory)
        cfg_path = directory / HF_CONFIG_FILE
        cfg = read_json(cfg_path, missing=f"{directory}: not a SPEAK HF tokenizer directory (missing {HF_CONFIG_FILE})")
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or cfg.get("version") != VERSION:
            raise SpeakError(f"{cfg_path}: not a {FORMAT} v{VERSION} file")
        speak = SpeakTokenizer.from_pretrained(directory / SPEAK_SUBDIR)
        vocab = SegmentVocab.load(directory / SEGMENT_VOCAB_FILE)
        opts: dict[str, Any] = {k: cfg[k] for k in ("model_max_length", "padding_side", "truncation_side") if k in cfg}
        opts.update(kwargs)
        tok = cls(speak, vocab, **opts)
        added = cfg.get("added_tokens") or {}
        for idx in sorted(added, key=int):
            tok.add_tokens([added[idx]])
        return tok

    @classmethod
    def build(cls, speak_tokenizer, texts, max_size: int = 8000, **kwargs) -> "SpeakHFTokenizer":
        """Build the segment vocabulary from ``texts`` with ``speak_tokenizer`` and wrap both."""
        return cls(speak_tokenizer, SegmentVocab.build(speak_tokenizer, texts, max_size=max_size), **kwargs)
