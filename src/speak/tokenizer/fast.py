"""A torch-free SPEAK tokenizer for per-character and hashed n-gram models: the vocabulary, the lookup tables and the compiled scan.

`speak tokenize` streams through it, so tokenizing a large file needs numpy and numba only (no torch in memory).
It reads the same tokenizer directory as `SpeakTokenizer` and validates it with the same checks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from speak.atomic import read_json
from speak.errors import SpeakError
from speak.text.segment import segment, token_offsets
from speak.text.vocab import UNK_ID, CharVocab, code_points
from speak.tokenizer.lookup import LookupTables, NGramLookupTables
from speak.text.segment_vocab import VOCAB_FILE, SegmentVocab
from speak.text.token_ids import IdTable, TokenIds

CONFIG_FILE = "speak_tokenizer.json"
WEIGHTS_FILE = "speak_tokenizer.safetensors"
TABLES_FILE = "speak_tokenizer_tables.safetensors"  # n-gram lookup tables: all that inference loads
FORMAT = "speak-tokenizer"
VERSION = 1
_PICKLED = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt", "weights.pkl")


def default_tokenizer_dir() -> Path:
    """The small pretrained tokenizer shipped in the package (see README, "The embedded default")."""
    return Path(__file__).resolve().parent.parent / "data" / "default_tokenizer"


def read_tokenizer_dir(directory: str | Path, weights: bool = True) -> tuple[dict[str, Any], bytes]:
    """(the validated JSON document, the weights' bytes, checksum verified) of a tokenizer directory. With
    `weights` False the network's weights are neither read nor required (b"" is returned): table-lookup inference
    reads the lookup tables only."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SpeakError(f"{directory}: no such tokenizer directory")
    cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not cfg_path.is_file():
        pickled = [p for p in _PICKLED if (directory / p).exists()]
        if pickled:
            raise SpeakError(f"{directory}: refusing to load pickled weights ({pickled[0]}); SPEAK loads safetensors only")
        raise SpeakError(f"{directory}: not a SPEAK tokenizer directory (missing {CONFIG_FILE})")
    doc = read_json(cfg_path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SpeakError(f"{cfg_path}: not a SPEAK tokenizer file (format is not {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise SpeakError(f"{cfg_path}: unsupported version {doc.get('version')!r} (this speak reads {VERSION})")
    for key in ("config", "vocab", "weights_sha256"):
        if key not in doc:
            raise SpeakError(f"{cfg_path}: missing {key!r}")
    if not weights:
        return doc, b""
    if not w_path.is_file():
        raise SpeakError(f"{directory}: missing weights file {WEIGHTS_FILE}")
    blob = w_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != doc["weights_sha256"]:
        raise SpeakError(f"{w_path}: checksum mismatch with {CONFIG_FILE} (corrupted, truncated or tampered)")
    return doc, blob


def read_lookup_tables(directory: Path, params: dict[str, Any]) -> LookupTables | NGramLookupTables:
    """The lookup tables a tokenizer directory names: inline (per-character) or in TABLES_FILE (n-gram; its
    SHA-256 checked against the JSON)."""
    if params.get("kind") != NGramLookupTables.KIND:
        return LookupTables.from_dict(params)
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = directory / TABLES_FILE
    if not path.is_file():
        raise SpeakError(f"{directory}: missing lookup tables file {TABLES_FILE}")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != params.get("sha256"):
        raise SpeakError(f"{path}: checksum mismatch with {CONFIG_FILE} (corrupted, truncated or tampered)")
    try:
        arrays = load(blob)
    except (SafetensorError, ValueError) as err:
        raise SpeakError(f"{path}: unreadable safetensors ({err})") from None
    return NGramLookupTables.from_parts(params, arrays)


class Segmenter:
    """Tokenize(c, s) (Eq. 5) on top of `spikes_many`: every SPEAK tokenizer class implements that one method."""

    def spikes_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        raise NotImplementedError

    def spikes(self, text: str) -> np.ndarray:
        """Hard boundaries s (bool [len(text)]) of one text."""
        return self.spikes_many([text])[0]

    def tokenize(self, text: str) -> list[str]:
        """Tokens of `text`; `"".join(tokens) == text`."""
        return segment(text, self.spikes(text))

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        return [segment(t, s) for t, s in zip(texts, self.spikes_many(texts))]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token."""
        return token_offsets(self.spikes(text), len(text))


class FastSpeakTokenizer(Segmenter):
    """Table-lookup SPEAK tokenizer without torch (same results as `SpeakTokenizer`). Each text is one sequence:
    the neuron starts at u_reset."""

    def __init__(self, vocab: CharVocab, tables: LookupTables | NGramLookupTables,
                 segment_vocab: SegmentVocab | None = None):
        if tables.vocab_size != len(vocab):
            raise SpeakError(f"lookup tables cover {tables.vocab_size} characters but the vocabulary {len(vocab)}")
        self.vocab, self.tables = vocab, tables
        self._segment_vocab = segment_vocab
        self._ids: IdTable | None = None

    @property
    def segment_vocab(self) -> SegmentVocab | None:
        """The token vocabulary (ids) saved beside the tables, if any."""
        return self._segment_vocab

    @segment_vocab.setter
    def segment_vocab(self, vocab: SegmentVocab | None) -> None:
        self._segment_vocab, self._ids = vocab, None

    @property
    def id_table(self) -> IdTable:
        """The compiled token vocabulary (speak.text.token_ids.IdTable) of :attr:`segment_vocab`."""
        if self.segment_vocab is None:
            raise SpeakError("this tokenizer ships no token vocabulary; refit with `speak fit-tokenizer`")
        if self._ids is None:
            self._ids = IdTable.from_vocab(self.segment_vocab)
        return self._ids

    @classmethod
    def default(cls) -> "FastSpeakTokenizer":
        return cls.from_pretrained(default_tokenizer_dir())

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "FastSpeakTokenizer":
        doc, _ = read_tokenizer_dir(directory, weights=False)
        if "lookup" not in doc:
            raise SpeakError(f"{directory}: no lookup tables (not a table-lookup tokenizer); use SpeakTokenizer")
        try:
            tables = read_lookup_tables(Path(directory), doc["lookup"])
        except (KeyError, TypeError, ValueError) as err:
            raise SpeakError(f"{directory}: malformed lookup tables ({err})") from None
        vocab_path = Path(directory) / VOCAB_FILE
        segment_vocab = SegmentVocab.load(vocab_path) if vocab_path.is_file() else None
        return cls(CharVocab.from_dict(doc["vocab"]), tables, segment_vocab)

    def spikes_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Hard boundaries (bool arrays) for several texts, each scanned from rest, in one compiled pass."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        bounds = np.concatenate(([0], np.cumsum(lengths)))
        if isinstance(self.tables, NGramLookupTables):  # fused: code points in, spikes out
            flat = np.zeros(int(bounds[-1]), dtype=bool)
            self.tables.scan(code_points("".join(texts)), bounds, np.ones(len(texts), dtype=bool),
                             self.vocab.code_point_table(), UNK_ID, spikes=flat)
            return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        ids = self.vocab.encode_array("".join(texts))  # [N]
        starts = np.zeros(ids.shape[0], dtype=bool)
        starts[bounds[:-1][lengths > 0]] = True
        flat = self.tables.spikes(ids, starts)
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def encode_ids(self, texts: Sequence[str], ids: IdTable | None = None) -> TokenIds:
        """Token-vocabulary ids of several texts in one compiled pass (code points -> n-gram table sums -> LIF ->
        ids; n-gram tables only). `ids`: the vocabulary (default: the one the tokenizer ships);
        ``IdTable.empty()`` gives one entry per token with id -1 (token spans only)."""
        if not isinstance(self.tables, NGramLookupTables):
            raise SpeakError("encode_ids needs n-gram lookup tables (encoder char-ngram)")
        ids = self.id_table if ids is None else ids
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        bounds = np.concatenate(([0], np.cumsum(lengths)))
        return TokenIds(*self.tables.scan(code_points("".join(texts)), bounds, np.ones(len(texts), dtype=bool),
                                          self.vocab.code_point_table(), UNK_ID, ids))

    def stream_ids(self, chunks: Iterable[str], ids: IdTable | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Streaming `encode_ids` over text pieces that may cut lines anywhere (a line is a text; a 50 MB line
        is scanned piece by piece in bounded memory): yields (ids, end offsets within their line, the index of
        each entry's line counted from 0) per piece. A final line without a newline closes at the end."""
        if not isinstance(self.tables, NGramLookupTables):
            raise SpeakError("stream_ids needs n-gram lookup tables (encoder char-ngram)")
        ids = self.id_table if ids is None else ids
        state = self.tables.new_state()
        table = self.vocab.code_point_table()
        line = 0
        for piece in chunks:
            cps = code_points(piece)
            cuts = np.flatnonzero(cps == 10)  # a newline ends a text and belongs to none
            keep = np.ones(cps.shape[0], dtype=bool)
            keep[cuts] = False
            lengths = np.diff(np.concatenate(([-1], cuts, [cps.shape[0]]))) - 1  # [m + 1]: m lines end here
            bounds = np.concatenate(([0], np.cumsum(lengths)))
            final = np.arange(lengths.shape[0]) < cuts.shape[0]  # the last segment stays open
            out_ids, _, ends, counts = self.tables.scan(cps[keep], bounds, final, table, UNK_ID, ids, state)
            yield out_ids, ends, np.repeat(np.arange(line, line + lengths.shape[0]), counts)
            line += cuts.shape[0]
        if state.ints[0] > 0:  # a last line without a newline
            out_ids, _, ends, counts = self.tables.scan(np.zeros(0, np.uint32), np.zeros(2, np.int64),
                                                        np.ones(1, dtype=bool), table, UNK_ID, ids, state)
            yield out_ids, ends, np.full(out_ids.shape[0], line, dtype=np.int64)
