"""`speak demo`: the main job. Tokenize with the embedded tokenizer, train SPEAK and the two strongest baselines of
the paper's Table 1 (DTP-Unigram, MAGNET) on the embedded corpus, print the comparison, segment with the result."""

from __future__ import annotations

from pathlib import Path

import typer

SENTENCES = [
    "In the beginning God created the heavens and the earth.",
    "Since germanium is a chemical element, the German chemist named it.",
]


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _number(x: float | None, digits: int) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{digits}f}"


def results_table(records: list[dict], seeds: int):
    """The comparison as a compact table that reads in an 80-column terminal (names are never cut)."""
    from rich import box
    from rich.table import Table

    table = Table(title="Test bits per character (lower is better) and shortening factor", box=box.SIMPLE_HEAD,
                  show_edge=False, padding=(0, 1, 0, 0),
                  caption="params: LM / tokenizer; ms per batch: tokenize / infer")
    table.add_column("method", no_wrap=True, min_width=max((len(r["method"]) for r in records), default=6))
    columns = (["seed"] if seeds > 1 else []) + ["BPC", "SF", "LM\nparams", "tok.\nparams", "tok.\nms", "infer\nms"]
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    for r in sorted(records, key=lambda r: (r["method"], r["seed"])):
        row = [r["method"]] + ([str(r["seed"])] if seeds > 1 else [])
        table.add_row(*row, _number(r.get("bpc"), 3), _number(r.get("sf"), 2), _count(r.get("lm_params", 0)),
                      _count(r.get("tokenizer_params", 0)), _number(r.get("tokenize_ms_per_batch"), 1),
                      _number(r.get("infer_ms_per_batch"), 1))
    return table


def demo(
    steps: int = typer.Option(300, help="training steps per method"),
    methods: str = typer.Option("dtp-unigram,magnet,speak", help="comma-separated methods to compare"),
    seeds: int = typer.Option(1, help="seeds per method"),
    corpus: str = typer.Option("embedded", help="corpus to train on"),
    preset: str = typer.Option("cpu-small", help="model/training scale"),
    out: Path = typer.Option(Path("runs/demo"), help="where runs and the report go (finished runs are reused)"),
) -> None:
    """Tokenize with the embedded SPEAK tokenizer, train SPEAK vs baselines, print the table, segment."""
    from rich.console import Console
    from rich.table import Table

    from speak.cli.tokenize import show_line
    from speak.experiments.compare import compare, parse_list
    from speak.experiments.runner import corpus_name, run_dir_for
    from speak.experiments.segment_run import load_run_model, segment_with_run
    from speak.experiments.variants import SPEAK
    from speak.tokenizer import SpeakTokenizer

    console = Console()
    console.rule("1. The embedded SPEAK tokenizer (Stage-1 mimic of SentencePiece Unigram)")
    tokenizer = SpeakTokenizer.default()
    for sentence in SENTENCES:
        show_line(tokenizer, sentence)
        console.print("|".join(tokenizer.tokenize(sentence)), markup=False)
    method_list = parse_list(methods)
    seeds_text = f", {seeds} seeds" if seeds > 1 else ""
    console.rule(f"2. Training {', '.join(method_list)} ({corpus_name(corpus)}, {preset}, {steps} steps{seeds_text})")
    result = compare([corpus], method_list, preset=preset, seeds=seeds, steps=steps, out=out)
    console.print(results_table(result["records"], seeds))
    console.print(f"full report: {out / 'report.md'} and {out / 'report.html'}")
    if SPEAK in method_list:
        console.rule("3. The SPEAK tokenizer trained with the language model (GTok)")
        model, vocab = load_run_model(run_dir_for(out, SPEAK, corpus, 0))
        for sentence, tokens in zip(SENTENCES, segment_with_run(model, vocab, SENTENCES)):
            console.print("|".join(tokens), markup=False)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the `speak` app."""
    app.command("demo")(demo)
