"""`speak bench models`: training and evaluation throughput of the spiking LMs next to the Transformer, in one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def bench_models(
    rounds: int = typer.Option(6, min=1, help="timed rounds (each: one training step + one eval batch per model)"),
    corpus: Optional[Path] = typer.Option(None, help="text file to train and evaluate on (default: the embedded corpus)"),
    d_model: int = typer.Option(128, min=8, help="model width (cpu-small: 128)"),
    n_layers: int = typer.Option(4, min=1, help="blocks (cpu-small: 4)"),
    batch_size: int = typer.Option(8, min=1, help="training windows per step (cpu-small: 8)"),
    seq_len: int = typer.Option(512, min=8, help="characters per window (cpu-small: 512)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Train SpikeGPT, SpikeLM and the Transformer in turns at one size; print chars/s and the ratios."""
    from speak.lm.spiking.bench import ModelBenchConfig, ratios, run_model_benchmark
    from speak.text.corpora import read_text

    cfg = ModelBenchConfig(d_model=d_model, n_layers=n_layers, batch_size=batch_size, seq_len=seq_len,
                           eval_batch=batch_size, rounds=rounds)
    try:
        rows = run_model_benchmark(cfg, read_text(corpus) if corpus is not None else None)
    except ValueError as err:
        from speak.errors import SpeakError

        raise SpeakError(str(err)) from None
    rel = ratios(rows)
    if as_json:
        print(json.dumps([{"model": r.model, "params": r.params, "train_chars_per_s": r.train_chars_per_s,
                           "eval_chars_per_s": r.eval_chars_per_s, "train_ratio": rel[r.model][0],
                           "eval_ratio": rel[r.model][1]} for r in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"models at d={d_model}, {n_layers} layers, {batch_size} x {seq_len} chars "
                        f"(median of {rounds} interleaved rounds)")
    for col in ("model", "params", "train chars/s", "eval chars/s", "train x transformer", "eval x transformer"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        tr, ev = rel[r.model]
        table.add_row(r.model, f"{r.params:,}", f"{r.train_chars_per_s:,.0f}", f"{r.eval_chars_per_s:,.0f}",
                      f"{tr:.2f}x", f"{ev:.2f}x")
    Console(width=max(Console().width, 110)).print(table)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the `speak` app."""
    bench_app.command("models")(bench_models)
