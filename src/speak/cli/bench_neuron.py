"""`speak bench neuron`: time the neuron scans (reference, compiled, spikingjelly) and print the ratios."""

from __future__ import annotations

import json

import typer


def bench_neuron(
    batch: int = typer.Option(16, help="sequences per batch (B)"),
    length: int = typer.Option(2048, help="characters per sequence (L)"),
    repeats: int = typer.Option(20, help="timed repetitions per case (median reported)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Forward and forward+backward times at B x L, and each scan's slowdown vs the compiled kernel."""
    from rich.console import Console
    from rich.table import Table

    from speak.neuron.bench import ratios, run_neuron_benchmark

    rows = run_neuron_benchmark(batch, length, repeats)
    rel = ratios(rows)
    if as_json:
        print(json.dumps([{"name": r.name, "forward_ms": r.forward_ms, "forward_backward_ms": r.forward_backward_ms,
                           "forward_ratio": rel.get(r.name, (None,))[0],
                           "forward_backward_ratio": rel.get(r.name, (None, None))[1]} for r in rows], indent=2))
        return
    table = Table(title=f"SPEAK neuron scan, B={batch}, L={length} (median of up to {repeats} runs)")
    for col in ("implementation", "forward ms", "fwd+bwd ms", "fwd x compiled", "fwd+bwd x compiled"):
        table.add_column(col, justify="right" if col != "implementation" else "left")
    for r in rows:
        f, fb = rel.get(r.name, (float("nan"), float("nan")))
        table.add_row(r.name, f"{r.forward_ms:.3f}", f"{r.forward_backward_ms:.3f}", f"{f:.0f}x", f"{fb:.0f}x")
    Console().print(table)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the `speak` app."""
    bench_app.command("neuron")(bench_neuron)
