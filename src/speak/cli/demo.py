"""`speak demo`: the main job. Tokenize with the embedded tokenizer, train SPEAK and the two strongest baselines of
the paper's Table 1 (DTP-Unigram, MAGNET) on the embedded corpus, print the comparison, segment with the result."""

from __future__ import annotations

from pathlib import Path

import typer

SENTENCES = [
    "In the beginning God created the heavens and the earth.",
    "Since germanium is a chemical element, the German chemist named it.",
]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("demo")
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
        from speak.experiments.runner import run_dir_for
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
        console.rule(f"2. Training {', '.join(method_list)} ({preset}, {steps} steps, {seeds} seed(s), {corpus})")
        result = compare([corpus], method_list, preset=preset, seeds=seeds, steps=steps, out=out)
        table = Table(title="Test bits per character (lower is better) and shortening factor")
        for col in ("method", "BPC", "SF", "LM params", "tokenizer params", "tokenize ms/batch", "infer ms/batch"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for r in sorted(result["records"], key=lambda r: (r["method"], r["seed"])):
            table.add_row(r["method"] + (f" (seed {r['seed']})" if seeds > 1 else ""), f"{r['bpc']:.3f}",
                          f"{r['sf']:.2f}", f"{r.get('lm_params', 0):,}", f"{r.get('tokenizer_params', 0):,}",
                          f"{r.get('tokenize_ms_per_batch', float('nan')):.1f}",
                          f"{r.get('infer_ms_per_batch', float('nan')):.1f}")
        console.print(table)
        console.print(f"full report: {out / 'report.md'} and {out / 'report.html'}")
        if SPEAK in method_list:
            console.rule("3. The SPEAK tokenizer trained with the language model (GTok)")
            model, vocab = load_run_model(run_dir_for(out, SPEAK, corpus, 0))
            for sentence, tokens in zip(SENTENCES, segment_with_run(model, vocab, SENTENCES)):
                console.print("|".join(tokens), markup=False)
