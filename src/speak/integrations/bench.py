"""`speak bench tokenize`: tokenizer throughput (MB/s of UTF-8 input) and memory, SPEAK vs SentencePiece vs HF BPE.

All three run in one process on the same lines of the same text (the corpus is split on newlines, empty lines
dropped). What each side outputs, so the comparison is fair:

- SPEAK: the fast path. Code points -> ids through a numpy table, the compiled LIF scan over the flat id stream
  (one fresh neuron per line), the token end offsets (:func:`speak_token_ends`), then the **vocabulary ids** of
  every line in one compiled pass (:func:`speak_token_ids`: ``ids_from_offsets`` over the tokenizer's token
  vocabulary; built from the benchmark text when the tokenizer ships none, outside the timing). No Python work
  per token.
- SentencePiece (Unigram, vocab 8000, trained here on the same text): ``encode(lines, out_type=int)``, the ids of
  every line (lists of ints).
- HF ``tokenizers`` byte-level BPE (vocab 8000, trained here): ``encode_batch(lines)``, Encoding objects (ids and
  offsets; the library always computes both).

Throughput = UTF-8 bytes of the lines / best wall time of ``repeats`` runs, after one warm-up run. Memory = the
largest RSS growth over the process's resident size before the run, sampled by a psutil thread every 2 ms, plus
the process's peak RSS (``ru_maxrss``) at the end.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from speak.errors import SpeakError
from speak.text.vocab import UNK_ID, code_points

SHARED_CORPORA = Path(os.environ.get("SPEAK_SHARED_CORPORA", "../shared/corpora"))  # beside a checkout


@dataclass
class TokenizerRun:
    name: str
    output: str
    mb_s: float
    seconds: float
    tokens: int
    chars_per_token: float
    rss_growth_mb: float


@dataclass
class TokenizeBenchmark:
    corpus: str
    mb: float
    lines: int
    runs: list[TokenizerRun]
    peak_rss_mb: float
    train_mb: float

    def by_name(self, name: str) -> TokenizerRun:
        return next(r for r in self.runs if r.name == name)

    def summary(self) -> dict:
        sp, hf, spk = (self.by_name(n).mb_s for n in ("sentencepiece", "hf_bpe", "speak"))
        return {"corpus": self.corpus, "mb": self.mb, "lines": self.lines, "speak_mb_s": spk,
                "sentencepiece_mb_s": sp, "hf_bpe_mb_s": hf, "speak_vs_sentencepiece": spk / sp,
                "speak_vs_hf_bpe": spk / hf, "peak_rss_mb": self.peak_rss_mb, "train_mb": self.train_mb,
                "runs": [asdict(r) for r in self.runs]}


def default_corpus() -> Path:
    """The shared English corpus when present, else the embedded one."""
    p = SHARED_CORPORA / "en-bible.txt.xz"
    if p.is_file():
        return p
    from speak.text.corpora import embedded_corpus_path

    return embedded_corpus_path()


def speak_token_ends(tokenizer, lines: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """SPEAK's fast path: exclusive token end offsets (int64, relative to each line's start, all lines flat) and
    the number of tokens of each line. Each line's end closes its last token (Eq. 5)."""
    lookup = tokenizer._lookup()
    if lookup is None:
        raise SpeakError("the fast path needs a table-lookup tokenizer (encoder char-mlp*, char-ngram)")
    lengths = np.fromiter((len(t) for t in lines), dtype=np.int64, count=len(lines))
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    if hasattr(lookup.tables, "token_ends"):  # per-character tables: code points to token ends in one compiled pass
        return lookup.tables.token_ends(code_points("".join(lines)), bounds, tokenizer.vocab.code_point_table(), UNK_ID)
    ids = tokenizer.vocab.encode_array("".join(lines))  # [N]
    starts = np.zeros(ids.shape[0], dtype=bool)
    nonempty = lengths > 0
    starts[bounds[:-1][nonempty]] = True
    spikes = lookup.tables.spikes(ids, starts)  # [N] bool
    spikes[bounds[1:][nonempty] - 1] = True  # the end of a line closes its token
    ends = np.flatnonzero(spikes)  # global index of each token's last character
    line_of = np.searchsorted(bounds[1:], ends, side="right")
    counts = np.bincount(line_of, minlength=len(lines))
    return ends + 1 - bounds[line_of], counts


def speak_token_ids(tokenizer, lines: Sequence[str], table) -> tuple[np.ndarray, np.ndarray]:
    """SPEAK's fast path to vocabulary ids: (ids, ids per line), through :func:`speak_token_ends` and
    ``speak.text.token_ids.ids_from_offsets`` with ``table`` (an ``IdTable``)."""
    from speak.text.token_ids import ids_from_offsets

    ends, counts = speak_token_ends(tokenizer, lines)
    lengths = np.fromiter((len(t) for t in lines), dtype=np.int64, count=len(lines))
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    res = ids_from_offsets(table, code_points("".join(lines)), bounds, ends, counts)
    return res.ids, res.counts


class _RSSWatch:
    """Samples this process's RSS in a thread; ``growth`` is the largest increase over the value at start."""

    def __init__(self, interval: float = 0.002):
        import psutil

        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, object, float]:
    fn()  # warm-up (numba compile, caches)
    best, out = float("inf"), None
    with _RSSWatch() as watch:
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
    return best, out, watch.growth_mb


def _read(path: Path, max_mb: float | None) -> str:
    from speak.text.corpora import read_text

    text = read_text(path)  # .xz / .gz / .bz2 decompressed; damaged or non-UTF-8 -> one SpeakError
    if max_mb is not None:
        text = text[: int(max_mb * 2**20)]
    return text


def run_tokenize_benchmark(corpus_path: str | os.PathLike | None = None, *, tokenizer=None, vocab_size: int = 8000,
                           repeats: int = 3, max_mb: float | None = None, train_mb: float = 2.0,
                           fit_steps: int = 100) -> TokenizeBenchmark:
    """Measure the three tokenizers on the lines of ``corpus_path`` (default: :func:`default_corpus`).

    ``tokenizer``: a SpeakTokenizer (default: the embedded one, else a quick Stage-1 fit on the text). The
    SentencePiece and BPE models are trained on the first ``train_mb`` MB of the text.
    """
    import resource

    import sentencepiece as spm

    from speak.text.exemplar import HFTokenizersExemplar, SentencePieceExemplar

    path = Path(corpus_path) if corpus_path is not None else default_corpus()
    if not path.is_file():
        raise SpeakError(f"{path}: no such corpus file")
    text = _read(path, max_mb)
    lines = [line for line in text.split("\n") if line]
    if not lines:
        raise SpeakError(f"{path}: no text")
    n_bytes = sum(len(line.encode("utf-8")) for line in lines)
    train_lines = lines[: max(2, np.searchsorted(np.cumsum([len(x) for x in lines]), train_mb * 2**20) + 1)]

    if tokenizer is None:
        tokenizer = _speak_tokenizer(text, fit_steps)
    sp_model = SentencePieceExemplar.train(train_lines, vocab_size=vocab_size)
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(sp_model.model_proto)
    bpe = HFTokenizersExemplar.train_bpe(train_lines, vocab_size=vocab_size).tokenizer

    from speak.text.segment_vocab import SegmentVocab
    from speak.text.token_ids import IdTable

    vocab = getattr(tokenizer, "segment_vocab", None) or SegmentVocab.build(tokenizer, train_lines, vocab_size)
    table = IdTable.from_vocab(vocab)
    runs = []
    t, (ids, counts), mem = _time(lambda: speak_token_ids(tokenizer, lines, table), repeats)
    runs.append(TokenizerRun("speak", "ids (int64 numpy) + ids per line", n_bytes / t / 1e6, t,
                             int(ids.size), sum(map(len, lines)) / max(int(ids.size), 1), mem))
    t, ids, mem = _time(lambda: sp.encode(lines, out_type=int), repeats)
    n = sum(len(x) for x in ids)
    runs.append(TokenizerRun("sentencepiece", "ids per line (list[list[int]])", n_bytes / t / 1e6, t, n,
                             sum(map(len, lines)) / max(n, 1), mem))
    del ids
    t, encs, mem = _time(lambda: bpe.encode_batch(lines, add_special_tokens=False), repeats)
    n = sum(len(e.ids) for e in encs)
    runs.append(TokenizerRun("hf_bpe", "Encoding per line (ids + offsets)", n_bytes / t / 1e6, t, n,
                             sum(map(len, lines)) / max(n, 1), mem))
    del encs
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return TokenizeBenchmark(str(path), n_bytes / 1e6, len(lines), runs, peak,
                             sum(len(x.encode("utf-8")) for x in train_lines) / 1e6)


def _speak_tokenizer(text: str, fit_steps: int):
    from speak.tokenizer import SpeakTokenizer

    try:
        return SpeakTokenizer.default()
    except SpeakError:
        from speak.train.mimic import MimicConfig, fit_tokenizer

        tok, _, _ = fit_tokenizer(text[:300_000], MimicConfig(steps=fit_steps, exemplar="sentencepiece:500",
                                                              batch_size=16, seq_len=128))
        return tok
