"""`speak tokenize`, `speak info`, `speak fit-tokenizer`: the tokenizer as a command-line tool."""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator, Optional

import typer

from speak.errors import SpeakError
from speak.train.standalone import STANDALONE

FORMATS = ("text", "json", "jsonl", "ids", "offsets")
CHUNK_LINES = 4096

_worker_tokenizer = None  # per worker process
_worker_ids = None


def _load(model: Optional[Path], fast: bool = False):
    """The tokenizer in `model` (default: the embedded one). `fast`: the torch-free lookup tokenizer when the
    directory has lookup tables (per-character and n-gram encoders), which keeps streaming memory small."""
    from speak.tokenizer.fast import FastSpeakTokenizer, default_tokenizer_dir, read_tokenizer_dir

    directory = model or default_tokenizer_dir()
    if fast and "lookup" in read_tokenizer_dir(directory)[0]:
        return FastSpeakTokenizer.from_pretrained(directory)
    from speak.tokenizer import SpeakTokenizer

    return SpeakTokenizer.from_pretrained(directory)


def _open_lines(path: str) -> Iterator[tuple[int, bytes, int, int]]:
    """(byte length, raw line, line number, byte offset) from a file (plain, .xz, .gz, .bz2) or '-' for stdin,
    streamed."""
    from speak.text.corpora import CODEC_ERRORS, open_binary, unreadable

    if path == "-":
        stream = sys.stdin.buffer
    else:
        p = Path(path)
        if not p.exists():
            raise SpeakError(f"{path}: no such file")
        if p.is_dir():
            raise SpeakError(f"{path}: is a directory")
        if p.stat().st_size == 0:
            raise SpeakError(f"{path} is empty")
        stream = open_binary(p)
    empty = True
    offset = 0
    lines = enumerate(stream, start=1)
    while True:
        try:
            number, raw = next(lines)
        except StopIteration:
            break
        except CODEC_ERRORS as exc:  # damaged, truncated or misnamed .xz / .gz / .bz2
            raise unreadable(path, exc) from None
        empty = False
        yield len(raw), raw, number, offset
        offset += len(raw)
    if empty:
        raise SpeakError(f"{'standard input' if path == '-' else path} is empty")


def _decode(raw: bytes, number: int, offset: int, path: str) -> str:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpeakError(f"{path} is not valid UTF-8 (line {number}, byte offset {offset + err.start})") from None
    return line[:-1] if line.endswith("\n") else line


def _id_table(model: Optional[Path], fmt: str):
    """The compiled token vocabulary of `model` for --format ids (None for other formats)."""
    if fmt != "ids":
        return None
    from speak.text.segment_vocab import VOCAB_FILE, SegmentVocab
    from speak.text.token_ids import IdTable
    from speak.tokenizer.fast import default_tokenizer_dir

    path = (model or default_tokenizer_dir()) / VOCAB_FILE
    if not path.is_file():
        raise SpeakError(f"{path.parent}: no token vocabulary ({VOCAB_FILE}); refit with `speak fit-tokenizer`")
    return IdTable.from_vocab(SegmentVocab.load(path))


def _format_chunk(tokenizer, lines: list[str], fmt: str, sep: str, first_line: int, table=None) -> str:
    """Render the tokens of a chunk of lines in one output format."""
    from speak.text.segment import join_tokens, segment, token_offsets

    if fmt == "ids":  # vocabulary ids: the fused scan (n-gram tables), else spikes then one compiled pass
        if getattr(getattr(tokenizer, "tables", None), "KIND", None) == "ngram":
            ids = tokenizer.encode_ids(lines, table).split()
        else:
            from speak.text.token_ids import ids_from_spikes

            ids = ids_from_spikes(table, lines, tokenizer.spikes_many(lines)).split()
        return "".join(" ".join(map(str, row.tolist())) + "\n" for row in ids)
    spikes = tokenizer.spikes_many(lines)
    out = []
    for i, (line, s) in enumerate(zip(lines, spikes)):
        if fmt == "offsets":  # token end offsets: what a pipeline needs to pool characters, compact
            out.append(" ".join(str(e) for _, e in token_offsets(s, len(line))))
        elif fmt == "text":  # a backslash or the separator inside a token is escaped with a backslash
            out.append(join_tokens(segment(line, s), sep))
        elif fmt == "json":
            out.append(json.dumps(segment(line, s), ensure_ascii=False))
        else:
            out.append(json.dumps({"line": first_line + i, "tokens": segment(line, s),
                                   "offsets": token_offsets(s, len(line))}, ensure_ascii=False))
    return "\n".join(out) + "\n" if out else ""


def _init_worker(model: Optional[str], fmt: str) -> None:
    global _worker_tokenizer, _worker_ids
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    _worker_tokenizer = _load(Path(model) if model else None, fast=True)
    _worker_ids = _id_table(Path(model) if model else None, fmt)


def _work(args) -> str:
    lines, fmt, sep, first = args
    return _format_chunk(_worker_tokenizer, lines, fmt, sep, first, _worker_ids)


def _chunks(path: str, progress) -> Iterator[tuple[list[str], int]]:
    lines: list[str] = []
    first = 1
    for size, raw, number, offset in _open_lines(path):
        lines.append(_decode(raw, number, offset, path))
        if progress is not None:
            progress(size)
        if len(lines) >= CHUNK_LINES:
            yield lines, first
            first += len(lines)
            lines = []
    if lines:
        yield lines, first


def tokenize_stream(path: str, out, model: Optional[Path], fmt: str, sep: str, workers: int, progress=None) -> None:
    """Tokenize `path` line by line into the text stream `out`; memory stays bounded by a few chunks."""
    table = _id_table(model, fmt)
    if workers <= 1:
        tokenizer = _load(model, fast=True)
        for lines, first in _chunks(path, progress):
            out.write(_format_chunk(tokenizer, lines, fmt, sep, first, table))
        return
    _load(model, fast=True)  # fail fast, in this process, on an unreadable model
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(str(model) if model else None, fmt)) as pool:
        pending: deque = deque()
        for lines, first in _chunks(path, progress):
            pending.append(pool.submit(_work, (lines, fmt, sep, first)))
            while len(pending) >= 2 * workers:  # bounded in-flight work, output in input order
                out.write(pending.popleft().result())
        while pending:
            out.write(pending.popleft().result())


def show_line(tokenizer, line: str) -> None:
    """Terminal rendering of one line: tokens, membrane potential, spikes, and the reset kind at each spike."""
    from rich.console import Console
    from rich.text import Text

    out = tokenizer.trace(line)
    u = out.u[0].numpy()
    s = out.s[0].numpy() > 0.5
    hard = out.mask[0].numpy()
    cfg = tokenizer.config
    bars = " ▁▂▃▄▅▆▇█"
    lo = min(float(u.min()), 0.0) if len(u) else 0.0
    hi = max(float(u.max()), cfg.u_th) if len(u) else 1.0
    console = Console()
    chars, pot, spk = Text(), Text(), Text()
    colour = 0
    for i, ch in enumerate(line):
        visible = ch if ch.isprintable() and ch != " " else "·"
        chars.append(visible, style="bold cyan" if colour == 0 else "bold magenta")
        level = int(round((u[i] - lo) / max(hi - lo, 1e-9) * (len(bars) - 1)))
        pot.append(bars[level], style="red" if u[i] >= cfg.u_th else "white")
        if s[i]:
            spk.append("H" if hard[i] else "s", style="bold red" if hard[i] else "bold green")
            colour ^= 1
        else:
            spk.append(" ")
    console.print(chars)
    console.print(pot)
    console.print(spk)
    console.print(f"[dim]u in [{lo:.2f}, {hi:.2f}], threshold {cfg.u_th}; H = spike + hard reset (contextual "
                  f"boundary), s = spike + soft reset (theta {cfg.theta}); {int(s.sum())} spikes[/dim]")


def _plot_line(tokenizer, line: str, number: int, path: Path, max_chars: int) -> None:
    """Draw one line to `path` and say which characters the picture shows."""
    from speak.experiments.plots import plot_segmentation

    ahead = int(getattr(tokenizer.config, "ngram_lookahead", 0) or 0)
    tr = tokenizer.trace(line[: max_chars + ahead])  # causal scan: the drawn prefix needs only its own characters
    plot_segmentation(line, tr.u[0].numpy(), tr.s[0].numpy(), tr.mask[0].numpy(), tokenizer.config.theta,
                      tokenizer.config.u_th, path, max_chars=max_chars)
    shown = min(len(line), max_chars)
    what = (f"all {shown} characters" if shown == len(line) else
            f"only its first {shown} of {len(line)} characters (--plot-chars N draws more)")
    print(f"wrote {path}: line {number}, {what}", file=sys.stderr)


def tokenize(
    file: str = typer.Argument("-", help="UTF-8 text file (plain, .xz, .gz, .bz2), or - for standard input"),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="tokenizer directory (default: the embedded one)"),
    fmt: str = typer.Option("text", "--format", "-f", help="text | json (an array per line) | jsonl | ids (vocabulary ids) | offsets (token end offsets)"),
    sep: str = typer.Option("|", help="separator between tokens in --format text; a backslash or the separator "
                                      "inside a token is written with a backslash before it (speak.text.segment."
                                      "split_tokens reads it back)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here (atomically) instead of stdout"),
    workers: int = typer.Option(1, help="processes tokenizing chunks of lines in parallel"),
    show: bool = typer.Option(False, "--show", help="render each line with membrane potential, spikes and resets"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="draw the first non-empty line's potential, spikes and "
                                                            "resets to a PNG"),
    plot_chars: int = typer.Option(160, "--plot-chars", help="--plot draws at most this many characters of the line"),
) -> None:
    """Stream a text through the SPEAK tokenizer, one input line at a time (each line scanned from rest)."""
    if fmt not in FORMATS:
        raise SpeakError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if workers < 1:
        raise SpeakError("--workers must be >= 1")
    if fmt == "text" and (not sep or "\\" in sep or "\n" in sep):
        raise SpeakError(f"--sep {sep!r} must be non-empty, without a backslash or a newline")
    if plot_chars < 1:
        raise SpeakError("--plot-chars must be >= 1")
    if show or plot:
        tokenizer = _load(model)
        plotted = plot is None
        for lines, first in _chunks(file, None):
            for number, line in enumerate(lines, start=first):
                if not plotted and line:
                    _plot_line(tokenizer, line, number, plot, plot_chars)
                    plotted = True
                if show:
                    show_line(tokenizer, line)
            if plotted and not show:
                return
        if not plotted:
            raise SpeakError(f"{file}: no non-empty line to plot")
        return
    if output is None:
        try:
            tokenize_stream(file, sys.stdout, model, fmt, sep, workers, _progress_callback(file))
            sys.stdout.flush()
        except BrokenPipeError:  # the reader left (`speak tokenize big | head -1`): stop quietly, as `cat` does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        return
    from speak.atomic import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            tokenize_stream(file, fh, model, fmt, sep, workers, _progress_callback(file))

    atomic_write(output, write)

def info(model: Optional[Path] = typer.Argument(None, help="tokenizer directory (default: the embedded one)")) -> None:
    """Print a tokenizer's config, parameter count, vocabulary size and provenance."""
    from rich.console import Console
    from rich.table import Table

    from speak.tokenizer import SpeakTokenizer
    from speak.tokenizer.fast import default_tokenizer_dir

    tk = SpeakTokenizer.from_pretrained(model or default_tokenizer_dir())
    table = Table(title=f"SPEAK tokenizer {model or '(embedded default)'}", show_header=False)
    table.add_row("parameters", f"{tk.num_parameters():,}")
    table.add_row("character vocabulary", f"{len(tk.vocab):,} (incl. <pad>, <unk>)")
    for key, value in tk.config.to_dict().items():
        table.add_row(key, str(value))
    for key, value in tk.meta.items():
        if key != "mimic_config":
            table.add_row(key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value))
    Console().print(table)

def fit_tokenizer_cmd(
    corpus: str = typer.Option("embedded", help="corpus: a text file (.txt/.xz/.gz) or 'embedded'"),
    exemplar: str = typer.Option("sentencepiece:8000", help="sentencepiece:N | sentencepiece:FILE.model | hf:tokenizer.json | whitespace | fixed:K"),
    out: Path = typer.Option(..., help="output tokenizer directory"),
    steps: int = typer.Option(STANDALONE["steps"]), batch_size: int = typer.Option(32),
    seq_len: int = typer.Option(256), lr: float = typer.Option(3e-3),
    alpha: float = typer.Option(1.2, help="L_mem's alpha (objective membrane)"),
    beta: float = typer.Option(0.6, help="L_mem's beta (objective membrane)"),
    char_dim: int = typer.Option(STANDALONE["char_dim"]),
    encoder: str = typer.Option(STANDALONE["encoder"], help="char-ngram (hashed n-grams, the standalone default) | char-mlp (the paper's) | char-mlp-2"),
    ngram_order: int = typer.Option(STANDALONE["ngram_order"], help="char-ngram: longest n-gram"),
    ngram_buckets: int = typer.Option(STANDALONE["ngram_buckets"], help="char-ngram: hash buckets per order"),
    ngram_lookahead: int = typer.Option(STANDALONE["ngram_lookahead"],
                                        help="char-ngram: also read n-grams ending up to K characters ahead"),
    balanced: bool = typer.Option(STANDALONE["mem_balanced"], "--balanced/--no-balanced",
                                  help="weigh L_mem's spiking and silent positions equally"),
    tanh: bool = typer.Option(STANDALONE["tanh"], "--tanh/--no-tanh"), theta: float = typer.Option(0.8),
    reset_mode: str = typer.Option(STANDALONE["reset_mode"]),
    objective: str = typer.Option(STANDALONE["objective"], help="forced (teacher-forced membrane loss) | membrane "
                                                               "(L_mem, Eq. 14, the paper's)"),
    anchor: str = typer.Option("start", help="where exemplar boundaries sit: start (causally observable) | end"),
    seed: int = typer.Option(0), quiet: bool = typer.Option(False, "--quiet"),
    force: bool = typer.Option(False, "--force", help="overwrite a tokenizer already in --out"),
    vocab_size: int = typer.Option(8000, help="token vocabulary built from the corpus: ids in all, the 5 specials "
                                              "and 256 byte-fallback ids included"),
) -> None:
    """Stage-1 mimic training (App. C.2): learn to reproduce an exemplar segmentation (by default the standalone
    configuration, speak.train.mimic.STANDALONE)."""
    from dataclasses import asdict

    from speak.atomic import atomic_write_json, check_output_dir
    from speak.text.corpora import load_corpus
    from speak.train.mimic import MimicConfig, fit_tokenizer

    cfg = MimicConfig(exemplar=exemplar, steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr,
                      mem_alpha=alpha, mem_beta=beta, char_dim=char_dim, encoder=encoder, tanh=tanh, theta=theta,
                      reset_mode=reset_mode, anchor=anchor, seed=seed, ngram_order=ngram_order,
                      ngram_buckets=ngram_buckets, ngram_lookahead=ngram_lookahead, mem_balanced=balanced,
                      objective=objective, forced_scale=STANDALONE["forced_scale"], token_vocab=vocab_size)
    check_output_dir(out, force=force, what="tokenizer folder")
    text = load_corpus(corpus)
    with _step_progress(steps, quiet) as advance, naming_corpus(corpus):
        tokenizer, metrics, used = fit_tokenizer(text, cfg, progress=advance)
    tokenizer.meta["corpus"] = corpus
    tokenizer.meta["exemplar_used"] = used.name
    tokenizer.save_pretrained(out)
    record = {**asdict(metrics), "corpus": corpus, "exemplar": exemplar, "exemplar_used": used.name,
              "steps": steps, "tokenizer_params": tokenizer.num_parameters()}
    if hasattr(used, "vocab_size"):
        record["exemplar_vocab_size"] = used.vocab_size
    if used.note:
        record["exemplar_note"] = used.note
    atomic_write_json(out / "metrics.json", record)
    print(json.dumps(record, indent=2))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the `speak` app."""
    app.command("tokenize")(tokenize)
    app.command("info")(info)
    app.command("fit-tokenizer")(fit_tokenizer_cmd)


@contextmanager
def naming_corpus(corpus: str):
    """A 'corpus too small' error names the user's corpus."""
    try:
        yield
    except SpeakError as err:
        if str(err).startswith("corpus too small"):
            raise SpeakError(f"{corpus}: {err}") from None
        raise


def _progress_callback(path: str):
    """A rich progress bar over the input's bytes (stderr, only for a terminal and a regular file)."""
    if path == "-" or not sys.stderr.isatty() or not Path(path).is_file():
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), transient=True)
    progress.start()
    task = progress.add_task("tokenizing", total=Path(path).stat().st_size)
    return lambda n: progress.advance(task, n)


class _step_progress:
    """Context manager yielding `advance(step, stats)` that drives a rich progress bar on a terminal, plain lines
    with an ETA (every tenth of the run or 30 s) on a pipe or log file, or nothing if quiet."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.progress = total, quiet, None

    def __enter__(self):
        if self.quiet:
            return lambda step, stats: None
        if not sys.stderr.isatty():
            from speak.train.console import PlainProgress

            plain, every = PlainProgress(self.total, 0), max(1, self.total // 10)

            def line(step, stats):
                if (step + 1) % every == 0 or step + 1 == self.total:
                    plain.line(step + 1, " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
                else:
                    plain.tick(step + 1)

            return line
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), "{task.fields[stats]}")
        self.progress.start()
        task = self.progress.add_task("fitting", total=self.total, stats="")

        def advance(step, stats):
            text = " ".join(f"{k} {v:.3f}" for k, v in stats.items())
            self.progress.update(task, completed=step + 1, stats=text)

        return advance

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
