"""Exemplar segmenters: existing tokenizers used as teachers for the spiking tokenizer.

SPEAK's proxy targets start from an exemplar's segmentation (SentencePiece Unigram trained on the training split,
SPEC section 2), and the standalone tokenizer can be trained to mimic one (Table 7). Every exemplar answers
``segment_spikes(text) -> bool array``, in the Eq. 5 convention: True at the **last character of each piece**, at
positions of the ORIGINAL string. Piece offsets (SentencePiece's offset mapping, HF ``tokenizers`` offsets) give
those positions directly, so the whitespace marker ``▁`` or byte-level ``Ġ`` never shifts anything; characters no
piece covers get no boundary.

Texts are processed line by line (the corpora hold one paragraph per line): each ``\\n`` is its own position and
closes a token, and the last character before it closes one too.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from speak.errors import SpeakError
from speak.text.segment import segment
from speak.text.vocab import code_points

_SURROGATES = re.compile("[\ud800-\udfff]")

#: Code points for which ``str.isspace()`` is true (none lies above U+3000).
WHITESPACE_CODE_POINTS = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)
_NEWLINE = ord("\n")


def _without_surrogates(line: str) -> str:
    """Replace lone surrogates (which cannot be UTF-8 encoded for the C++ libraries) by U+FFFD, one for one,
    so character offsets are unchanged."""
    return _SURROGATES.sub("\ufffd", line)


def _line_starts(lines: Sequence[str]) -> np.ndarray:
    """Start offset of each line of ``"\\n".join(lines)``."""
    lengths = np.fromiter((len(line) for line in lines), dtype=np.int64, count=len(lines))
    return np.concatenate(([0], np.cumsum(lengths[:-1] + 1))).astype(np.int64)


def _chunks(line: str, max_len: int) -> list[tuple[int, str]]:
    """Cut a long line into pieces of at most ``max_len`` characters, each cut placed just before a space.

    SentencePiece (``split_by_whitespace``) and GPT-2-style pre-tokenisers already start a new piece at a space,
    so such cuts do not change their segmentation; text without spaces (e.g. CJK) is cut hard at ``max_len``.
    This keeps text8 (one 100M-character line) and very long paragraphs tractable.
    """
    if len(line) <= max_len:
        return [(0, line)]
    out, start = [], 0
    while len(line) - start > max_len:
        cut = line.rfind(" ", start + 1, start + max_len)
        if cut <= start:
            cut = start + max_len
        out.append((start, line[start:cut]))
        start = cut
    out.append((start, line[start:]))
    return out


class Exemplar(ABC):
    """A segmenter that marks token ends on the original text (Eq. 5 convention)."""

    name: str = "exemplar"
    #: How training departed from the spec (e.g. a vocabulary grown to a large alphabet); empty when it did not.
    note: str = ""
    #: Longest stretch handed to the underlying tokenizer at once (see :func:`_chunks`).
    max_chunk: int = 4096
    #: Characters per call to the underlying tokenizer (bounds memory on 100 MB texts).
    batch_chars: int = 1 << 20

    def segment_spikes(self, text: str) -> np.ndarray:
        """Bool array of ``len(text)``: True at the last character of each piece; each newline is True as well."""
        n = len(text)
        spikes = np.zeros(n, dtype=bool)
        if n == 0:
            return spikes
        lines = text.split("\n")
        starts = _line_starts(lines)
        spikes[starts[1:] - 1] = True  # the newlines
        batch: list[str] = []
        offsets: list[int] = []
        size = 0

        def flush() -> None:
            if batch:
                ends = self._piece_ends(batch)
                pos = [off + e - 1 for off, e in zip(offsets, ends) if len(e)]
                if pos:
                    spikes[np.concatenate(pos)] = True
                batch.clear()
                offsets.clear()

        for start, line in zip(starts.tolist(), lines):
            if not line:
                continue
            for off, chunk in _chunks(line, self.max_chunk):
                batch.append(chunk)
                offsets.append(start + off)
                size += len(chunk)
                if size >= self.batch_chars:
                    flush()
                    size = 0
        flush()
        return spikes

    @abstractmethod
    def _piece_ends(self, lines: list[str]) -> list[np.ndarray]:
        """For each non-empty, newline-free line: the exclusive character end offsets of its pieces."""

    def tokenize(self, text: str) -> list[str]:
        """The exemplar's tokens as slices of ``text`` (so ``"".join(tokens) == text``), via Eq. 5."""
        return segment(text, self.segment_spikes(text))

    def __repr__(self) -> str:
        """Class and spec-like name, e.g. ``SentencePieceExemplar('sentencepiece-unigram:8000')``."""
        return f"{type(self).__name__}({self.name!r})"


# ---------------------------------------------------------------------------------------------- rule-based
class WhitespaceExemplar(Exemplar):
    """Whitespace pooling: a token is a run of whitespace followed by a word (``"a  b"`` -> ``"a"``, ``"  b"``),
    the SentencePiece convention of attaching the space to the next word; newlines are their own tokens."""

    name = "whitespace"

    def segment_spikes(self, text: str) -> np.ndarray:
        """Vectorised over the whole text: spike where a non-space is followed by a space, and around newlines."""
        cps = code_points(text)
        n = cps.size
        if n == 0:
            return np.zeros(0, dtype=bool)
        ws = np.isin(cps, WHITESPACE_CODE_POINTS)
        nl = cps == _NEWLINE
        spikes = nl.copy()
        spikes[:-1] |= (~ws[:-1] & ws[1:]) | nl[1:]
        spikes[-1] = True
        return spikes

    def _piece_ends(self, lines: list[str]) -> list[np.ndarray]:  # pragma: no cover - segment_spikes overrides
        """Per-line piece ends (unused: :meth:`segment_spikes` works on the whole text at once)."""
        return [np.flatnonzero(self.segment_spikes(line)) + 1 for line in lines]


class FixedExemplar(Exemplar):
    """Fixed-length pooling: a token every ``k`` characters, counted from the start of each line."""

    def __init__(self, k: int) -> None:
        """``k`` >= 1 is the token length."""
        if k < 1:
            raise SpeakError(f"fixed-length segmentation needs k >= 1, got {k}")
        self.k = int(k)
        self.name = f"fixed:{self.k}"

    def segment_spikes(self, text: str) -> np.ndarray:
        """Vectorised: position-in-line from a running maximum of newline indices."""
        cps = code_points(text)
        n = cps.size
        if n == 0:
            return np.zeros(0, dtype=bool)
        idx = np.arange(n)
        nl = cps == _NEWLINE
        last_nl = np.maximum.accumulate(np.where(nl, idx, -1))
        prev_nl = np.concatenate(([-1], last_nl[:-1]))  # newline strictly before t
        pos_in_line = idx - prev_nl - 1
        spikes = ((pos_in_line + 1) % self.k == 0) | nl
        spikes[:-1] |= nl[1:]
        spikes[-1] = True
        return spikes

    def _piece_ends(self, lines: list[str]) -> list[np.ndarray]:  # pragma: no cover - segment_spikes overrides
        """Per-line piece ends (unused: :meth:`segment_spikes` works on the whole text at once)."""
        return [np.flatnonzero(self.segment_spikes(line)) + 1 for line in lines]


# ---------------------------------------------------------------------------------------------- SentencePiece
def _training_lines(texts: str | os.PathLike | Iterable[str], max_chunk: int = Exemplar.max_chunk) -> list[str]:
    """Non-empty lines of the training input (long lines cut as in :func:`_chunks`): a path (``os.PathLike``, or a
    ``str`` naming an existing file), one text, or an iterable of texts."""
    from speak.text.corpora import read_text  # local: corpora is not needed by most exemplar users

    if isinstance(texts, os.PathLike) or (
        isinstance(texts, str) and "\n" not in texts and len(texts) < 4096 and os.path.isfile(texts)
    ):
        texts = [read_text(texts)]
    elif isinstance(texts, str):
        texts = [texts]
    lines = [chunk for t in texts for line in t.split("\n") if line for _, chunk in _chunks(line, max_chunk)]
    if not lines:
        raise SpeakError("cannot train an exemplar tokenizer on empty text")
    return [_without_surrogates(line) for line in lines]


class SentencePieceExemplar(Exemplar):
    """A SentencePiece model (Unigram by default, as DTP-unigram and SPEAK's initial proxy use)."""

    def __init__(self, model_proto: bytes, name: str = "sentencepiece") -> None:
        """Wrap a serialised SentencePiece ``ModelProto``."""
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(self.model_proto)
        except Exception as exc:
            raise SpeakError(f"not a valid SentencePiece model: {exc}") from exc
        self.name = name

    @property
    def vocab_size(self) -> int:
        """Number of pieces in the model (specials included)."""
        return int(self.processor.GetPieceSize())

    @classmethod
    def train(
        cls,
        texts: str | os.PathLike | Iterable[str],
        vocab_size: int = 8000,
        model_type: str = "unigram",
        out_prefix: str | os.PathLike | None = None,
        *,
        character_coverage: float = 1.0,
        max_sentence_length: int = 1 << 16,
        num_threads: int = 2,
        shrink_vocab: bool = True,
        **options,
    ) -> "SentencePieceExemplar":
        """Train SentencePiece so that its pieces map back onto the raw text.

        Identity normalisation, no dummy prefix, extra whitespace kept, whitespace split as usual, full character
        coverage by default. ``out_prefix`` writes ``PREFIX.model`` / ``PREFIX.vocab``; otherwise the model stays in
        memory. When ``vocab_size`` is more than the text supports, SentencePiece names the largest possible size:
        with ``shrink_vocab`` we retry with it (and warn), else raise :class:`SpeakError`. When the alphabet alone
        needs more pieces than ``vocab_size`` (a CJK text has thousands of characters), the vocabulary grows to the
        alphabet plus ``vocab_size`` multi-character pieces, so that any script works and the exemplar still merges
        characters. Either change is said in ``note`` (and warned). ``options`` are passed to the trainer as they are.
        """
        import sentencepiece as spm

        lines = _training_lines(texts)
        params = dict(
            model_type=model_type,
            character_coverage=character_coverage,
            normalization_rule_name="identity",
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            split_by_whitespace=True,
            max_sentence_length=max_sentence_length,
            num_threads=max(1, int(num_threads)),
            minloglevel=2,
        )
        params.update(options)
        size = requested = int(vocab_size)
        notes = []
        for attempt in range(3):
            writer = io.BytesIO()
            kwargs = dict(params, vocab_size=size, sentence_iterator=iter(lines))
            if out_prefix is not None:
                Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
                kwargs["model_prefix"] = str(out_prefix)
            else:
                kwargs["model_writer"] = writer
            try:
                spm.SentencePieceTrainer.train(**kwargs)
                break
            except RuntimeError as exc:
                msg = str(exc)
                most = re.search(r"value <= (\d+)", msg)
                alphabet = re.search(r"smaller than required_chars\. \d+ vs (\d+)", msg)
                if most and shrink_vocab and attempt < 2 and 0 < int(most.group(1)) < size:
                    new = int(most.group(1))
                    notes.append(f"vocabulary shrunk from {size} to {new}, the most this text supports")
                elif alphabet and attempt == 0:
                    new = int(alphabet.group(1)) + requested
                    notes.append(f"vocabulary grown from {size} to {new}: the alphabet and special pieces need "
                                 f"{alphabet.group(1)}, plus {requested} for longer pieces")
                else:
                    raise SpeakError(f"SentencePiece training failed (vocab_size={size}): {msg}") from exc
                warnings.warn(f"SentencePiece: {notes[-1]}", stacklevel=2)
                size = new
        if out_prefix is not None:
            proto = Path(f"{out_prefix}.model").read_bytes()
        else:
            proto = writer.getvalue()
        model = cls(proto, name=f"sentencepiece-{model_type}:{size}")
        model.note = "; ".join(notes)
        return model

    @classmethod
    def load(cls, model_file: str | os.PathLike) -> "SentencePieceExemplar":
        """Load a ``.model`` file; missing or invalid -> SpeakError."""
        p = Path(model_file).expanduser()
        if not p.is_file():
            raise SpeakError(f"SentencePiece model {p} does not exist")
        return cls(p.read_bytes(), name=f"sentencepiece:{p.name}")

    def save(self, model_file: str | os.PathLike) -> Path:
        """Write the model (the serialised proto) to ``model_file``."""
        p = Path(model_file)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self.model_proto)
        return p

    def pieces(self, line: str) -> list[str]:
        """SentencePiece's own pieces for one line (``▁`` marks spaces), for inspection and tests."""
        return list(self.processor.encode(_without_surrogates(line), out_type=str))

    def _piece_ends(self, lines: list[str]) -> list[np.ndarray]:
        """Character end offsets from SentencePiece's offset mapping (byte offsets converted on old versions)."""
        lines = [_without_surrogates(line) for line in lines]
        try:
            encoded = self.processor.encode(lines, out_type="offset_mapping")
        except ValueError:  # sentencepiece < 0.2.1 has no offset mapping: use the proto's byte offsets
            return [self._ends_from_proto(line) for line in lines]
        return [
            np.fromiter((e for b, e in enc["offsets"] if e > b), dtype=np.int64) for enc in encoded
        ]

    def _ends_from_proto(self, line: str) -> np.ndarray:
        """Piece ends from ``immutable_proto`` (UTF-8 byte offsets), mapped to character offsets."""
        proto = self.processor.encode(line, out_type="immutable_proto")
        raw = np.frombuffer(line.encode("utf-8"), dtype=np.uint8)
        char_of_byte = np.cumsum((raw & 0xC0) != 0x80) - 1  # index of the character each byte belongs to
        ends = [int(char_of_byte[p.end - 1]) + 1 for p in proto.pieces if p.end > p.begin]
        return np.asarray(ends, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- HF tokenizers
class HFTokenizersExemplar(Exemplar):
    """A Hugging Face ``tokenizers`` tokenizer (e.g. a model's ``tokenizer.json``, or a BPE trained here)."""

    def __init__(self, tokenizer, name: str = "hf") -> None:
        """Wrap a ``tokenizers.Tokenizer``."""
        self.tokenizer = tokenizer
        self.name = name

    @classmethod
    def load(cls, path: str | os.PathLike) -> "HFTokenizersExemplar":
        """Load a ``tokenizer.json``; missing or invalid -> SpeakError."""
        from tokenizers import Tokenizer

        p = Path(path).expanduser()
        if not p.is_file():
            raise SpeakError(f"tokenizer file {p} does not exist")
        try:
            tok = Tokenizer.from_file(str(p))
        except Exception as exc:
            raise SpeakError(f"{p} is not a valid tokenizers JSON file: {exc}") from exc
        return cls(tok, name=f"hf:{p.name}")

    @classmethod
    def train_bpe(
        cls, texts: str | os.PathLike | Iterable[str], vocab_size: int = 8000, min_frequency: int = 2
    ) -> "HFTokenizersExemplar":
        """Train a byte-level BPE (GPT-2 style pre-tokenisation, no prefix space, no normalisation) so every
        string is covered and offsets refer to the raw text."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        lines = _training_lines(texts)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=int(vocab_size),
            min_frequency=int(min_frequency),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(lines, trainer)
        return cls(tok, name=f"hf-bpe:{tok.get_vocab_size()}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``tokenizer.json``."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(p))
        return p

    def _piece_ends(self, lines: list[str]) -> list[np.ndarray]:
        """Character end offsets of the pieces; special tokens (empty offsets) are skipped."""
        lines = [_without_surrogates(line) for line in lines]
        encs = self.tokenizer.encode_batch(lines, add_special_tokens=False)
        return [np.fromiter((e for b, e in enc.offsets if e > b), dtype=np.int64) for enc in encs]


# ---------------------------------------------------------------------------------------------- factory
_EXEMPLAR_SPECS = (
    "'sentencepiece:VOCAB[:unigram|bpe|char|word]' (trains on `texts`), 'sentencepiece:/path/m.model', "
    "'hf:/path/tokenizer.json', 'hf-bpe:VOCAB' (trains on `texts`), 'whitespace', 'fixed:K'"
)


def load_exemplar(spec: str, texts: str | os.PathLike | Iterable[str] | None = None, **train_options) -> Exemplar:
    """Build an exemplar from a spec string (see ``_EXEMPLAR_SPECS``); specs that train need ``texts``
    (the training split). Bad specs raise :class:`SpeakError` listing the accepted forms."""
    if not isinstance(spec, str) or not spec:
        raise SpeakError(f"exemplar spec must be a non-empty string: {_EXEMPLAR_SPECS}")
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind == "whitespace" and not arg:
        return WhitespaceExemplar()
    if kind == "fixed":
        if not arg.isdigit():
            raise SpeakError(f"fixed needs a length: 'fixed:K', e.g. fixed:4 (got {spec!r})")
        return FixedExemplar(int(arg))
    if kind == "sentencepiece" and arg:
        size, _, model_type = arg.partition(":")
        if size.isdigit():
            if texts is None:
                raise SpeakError(f"{spec!r} trains a SentencePiece model: pass the training text (texts=...)")
            return SentencePieceExemplar.train(texts, int(size), model_type or "unigram", **train_options)
        return SentencePieceExemplar.load(arg)
    if kind == "hf" and arg:
        return HFTokenizersExemplar.load(arg)
    if kind == "hf-bpe" and arg.isdigit():
        if texts is None:
            raise SpeakError(f"{spec!r} trains a BPE tokenizer: pass the training text (texts=...)")
        return HFTokenizersExemplar.train_bpe(texts, int(arg), **train_options)
    raise SpeakError(f"unknown exemplar {spec!r}; expected one of: {_EXEMPLAR_SPECS}")
