"""`speak tokenize`, `speak info`, `speak fit-tokenizer`: the tokenizer as a command-line tool."""

from __future__ import annotations

import json
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator, Optional

import typer

from speak.errors import SpeakError

FORMATS = ("text", "json", "jsonl", "ids")
CHUNK_LINES = 4096

_worker_tokenizer = None  # per worker process


def _load(model: Optional[Path], fast: bool = False):
    """The tokenizer in `model` (default: the embedded one). `fast`: the torch-free lookup tokenizer when the
    directory has lookup tables (per-character and n-gram encoders), which keeps streaming memory small."""
    from speak.tokenizer.fast import FastSpeakTokenizer, default_tokenizer_dir, read_tokenizer_dir

    directory = model or default_tokenizer_dir()
    if fast and "lookup" in read_tokenizer_dir(directory)[0]:
        return FastSpeakTokenizer.from_pretrained(directory)
    from speak.tokenizer import SpeakTokenizer

    return SpeakTokenizer.from_pretrained(directory)


def _open_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(byte length, raw line) pairs from a file (plain, .xz, .gz, .bz2) or '-' for stdin, streamed."""
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
        suffix = p.suffix.lower()
        if suffix == ".xz":
            import lzma
            stream = lzma.open(p, "rb")
        elif suffix == ".gz":
            import gzip
            stream = gzip.open(p, "rb")
        elif suffix == ".bz2":
            import bz2
            stream = bz2.open(p, "rb")
        else:
            stream = open(p, "rb")
    empty = True
    offset = 0
    for number, raw in enumerate(stream, start=1):
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


def _format_chunk(tokenizer, lines: list[str], fmt: str, sep: str, first_line: int) -> str:
    """Render the tokens of a chunk of lines in one output format."""
    from speak.text.segment import segment, token_offsets

    spikes = tokenizer.spikes_many(lines)
    out = []
    for i, (line, s) in enumerate(zip(lines, spikes)):
        if fmt == "ids":  # token end offsets: what a pipeline needs to pool characters, compact
            out.append(" ".join(str(e) for _, e in token_offsets(s, len(line))))
        elif fmt == "text":
            out.append(sep.join(segment(line, s)))
        elif fmt == "json":
            out.append(json.dumps(segment(line, s), ensure_ascii=False))
        else:
            out.append(json.dumps({"line": first_line + i, "tokens": segment(line, s),
                                   "offsets": token_offsets(s, len(line))}, ensure_ascii=False))
    return "\n".join(out) + "\n" if out else ""


def _init_worker(model: Optional[str]) -> None:
    global _worker_tokenizer
    _worker_tokenizer = _load(Path(model) if model else None, fast=True)


def _work(args) -> str:
    lines, fmt, sep, first = args
    return _format_chunk(_worker_tokenizer, lines, fmt, sep, first)


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
    if workers <= 1:
        tokenizer = _load(model, fast=True)
        for lines, first in _chunks(path, progress):
            out.write(_format_chunk(tokenizer, lines, fmt, sep, first))
        return
    _load(model, fast=True)  # fail fast, in this process, on an unreadable model
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(str(model) if model else None,)) as pool:
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


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("tokenize")
    def tokenize(
        file: str = typer.Argument("-", help="UTF-8 text file (plain, .xz, .gz, .bz2), or - for standard input"),
        model: Optional[Path] = typer.Option(None, "--model", "-m", help="tokenizer directory (default: the embedded one)"),
        fmt: str = typer.Option("text", "--format", "-f", help="text | json (an array per line) | jsonl | ids (token end offsets)"),
        sep: str = typer.Option("|", help="separator between tokens in --format text"),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here (atomically) instead of stdout"),
        workers: int = typer.Option(1, help="processes tokenizing chunks of lines in parallel"),
        show: bool = typer.Option(False, "--show", help="render each line with membrane potential, spikes and resets"),
        plot: Optional[Path] = typer.Option(None, "--plot", help="draw the first line's potential, spikes and resets to a PNG"),
    ) -> None:
        """Stream a text through the SPEAK tokenizer, one input line at a time (each line scanned from rest)."""
        if fmt not in FORMATS:
            raise SpeakError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
        if workers < 1:
            raise SpeakError("--workers must be >= 1")
        if show or plot:
            tokenizer = _load(model)
            shown = 0
            for lines, _ in _chunks(file, None):
                for line in lines:
                    if plot is not None and shown == 0:
                        from speak.experiments.plots import plot_segmentation

                        tr = tokenizer.trace(line)
                        plot_segmentation(line, tr.u[0].numpy(), tr.s[0].numpy(), tr.mask[0].numpy(),
                                          tokenizer.config.theta, tokenizer.config.u_th, plot)
                        print(f"wrote {plot}", file=sys.stderr)
                    if show:
                        show_line(tokenizer, line)
                    shown += 1
                if not show:
                    return
            return
        if output is None:
            tokenize_stream(file, sys.stdout, model, fmt, sep, workers, _progress_callback(file))
            return
        from speak.atomic import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                tokenize_stream(file, fh, model, fmt, sep, workers, _progress_callback(file))

        atomic_write(output, write)

    @app.command("info")
    def info(model: Path = typer.Argument(..., help="tokenizer directory")) -> None:
        """Print a tokenizer's config, parameter count, vocabulary size and provenance."""
        from rich.console import Console
        from rich.table import Table

        from speak.tokenizer import SpeakTokenizer

        tk = SpeakTokenizer.from_pretrained(model)
        table = Table(title=f"SPEAK tokenizer {model}", show_header=False)
        table.add_row("parameters", f"{tk.num_parameters():,}")
        table.add_row("character vocabulary", f"{len(tk.vocab):,} (incl. <pad>, <unk>)")
        for key, value in tk.config.to_dict().items():
            table.add_row(key, str(value))
        for key, value in tk.meta.items():
            if key != "mimic_config":
                table.add_row(key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value))
        Console().print(table)

    @app.command("fit-tokenizer")
    def fit_tokenizer_cmd(
        corpus: str = typer.Option("embedded", help="corpus: a text file (.txt/.xz/.gz) or 'embedded'"),
        exemplar: str = typer.Option("sentencepiece:8000", help="sentencepiece:N | sentencepiece:FILE.model | hf:tokenizer.json | whitespace | fixed:K"),
        out: Path = typer.Option(..., help="output tokenizer directory"),
        steps: int = typer.Option(400), batch_size: int = typer.Option(32), seq_len: int = typer.Option(256),
        lr: float = typer.Option(3e-3), alpha: float = typer.Option(1.2), beta: float = typer.Option(0.6),
        char_dim: int = typer.Option(8),
        encoder: str = typer.Option("char-ngram", help="char-ngram (hashed n-grams, the standalone default) | char-mlp (the paper's) | char-mlp-2"),
        ngram_order: int = typer.Option(3, help="char-ngram: longest n-gram"),
        ngram_buckets: int = typer.Option(16384, help="char-ngram: hash buckets per order"),
        ngram_lookahead: int = typer.Option(2, help="char-ngram: also read n-grams ending up to K characters ahead"),
        balanced: bool = typer.Option(True, "--balanced/--no-balanced",
                                      help="weigh L_mem's spiking and silent positions equally"),
        tanh: bool = typer.Option(False, "--tanh/--no-tanh"), theta: float = typer.Option(0.8),
        reset_mode: str = typer.Option("entropy-aware"),
        anchor: str = typer.Option("start", help="where exemplar boundaries sit: start (causally observable) | end"),
        seed: int = typer.Option(0), quiet: bool = typer.Option(False, "--quiet"),
    ) -> None:
        """Stage-1 mimic training (App. C.2): learn to reproduce an exemplar segmentation with L_mem (Eq. 14)."""
        from dataclasses import asdict

        from speak.atomic import atomic_write_json
        from speak.text.corpora import load_corpus
        from speak.train.mimic import MimicConfig, fit_tokenizer

        cfg = MimicConfig(exemplar=exemplar, steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr,
                          alpha=alpha, beta=beta, char_dim=char_dim, encoder=encoder, tanh=tanh, theta=theta,
                          reset_mode=reset_mode, anchor=anchor, seed=seed, ngram_order=ngram_order,
                          ngram_buckets=ngram_buckets, ngram_lookahead=ngram_lookahead, balanced=balanced)
        text = load_corpus(corpus)
        with _step_progress(steps, quiet) as advance:
            tokenizer, metrics, _ = fit_tokenizer(text, cfg, progress=advance)
        tokenizer.meta["corpus"] = corpus
        tokenizer.save_pretrained(out)
        record = {**asdict(metrics), "corpus": corpus, "exemplar": exemplar, "steps": steps,
                  "tokenizer_params": tokenizer.num_parameters()}
        atomic_write_json(out / "metrics.json", record)
        print(json.dumps(record, indent=2))


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
    """Context manager yielding `advance(step, stats)` that drives a rich progress bar (or nothing if quiet)."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.progress = total, quiet, None

    def __enter__(self):
        if self.quiet:
            return lambda step, stats: None
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
