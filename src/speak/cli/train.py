"""`speak train`, `speak eval` and `speak bench boundaries`: thin wrappers over speak.train / speak.eval.

Plain flags cover a run (no config file needed); ``--config FILE`` (YAML/TOML) and ``--set key=value`` (dotted
paths, e.g. ``--set model.d_model=256``) layer on top: defaults < preset < file < flags < --set.
Under ``torchrun`` the same command trains data-parallel (only rank 0 writes files and prints).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from speak.lm.boundaries.registry import BENCH_PAIR, source_names


def _print_metrics(metrics: dict, keys: tuple[str, ...]) -> None:
    parts = []
    for k in keys:
        v = metrics.get(k)
        if isinstance(v, float):
            parts.append(f"{k} {v:.4f}" if abs(v) < 1e4 else f"{k} {v:.4g}")
        elif v is not None:
            parts.append(f"{k} {v}")
    print("  ".join(parts))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("train")
    def train(
        boundary: Optional[str] = typer.Option(None, "--boundary", help=f"Boundary source: {', '.join(source_names())}."),
        corpus: Optional[str] = typer.Option(None, "--corpus", help="Corpus spec: a path (.txt/.xz/.gz), embedded, text8, enwik8, wiki40b:LANG, ..."),
        preset: Optional[str] = typer.Option(None, "--preset", help="Scale preset: cpu-tiny, cpu-small, paper."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps."),
        seed: Optional[int] = typer.Option(None, "--seed"),
        out: Optional[str] = typer.Option(None, "--out", help="Run folder (checkpoints, logs, metrics.json)."),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML or TOML config file."),
        set_: list[str] = typer.Option([], "--set", help="Override a config key: --set key=value (dotted paths into model/proxy)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size"),
        seq_len: Optional[int] = typer.Option(None, "--seq-len"),
        device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
        lr: Optional[float] = typer.Option(None, "--lr"),
        clean: Optional[str] = typer.Option(None, "--clean", help="Apply DTP's text cleaner for this language (e.g. en)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        model: str = typer.Option("hourglass", "--model", help="hourglass (character LM with --boundary), or a token LM: spikegpt, spikelm, transformer."),
        tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Token LMs only: speak[:DIR] (default), chars, sentencepiece[:N]."),
    ) -> None:
        """Train an hourglass LM with a boundary source, or a token LM (--model) over a tokenization (--tokenizer);
        writes OUT/metrics.json."""
        from speak.experiments.pipeline import train_and_evaluate
        from speak.train.config import load_config

        flags = dict(boundary=boundary, corpus=corpus, preset=preset, steps=steps, seed=seed, out=out,
                     batch_size=batch_size, seq_len=seq_len, device=device, lr=lr, clean=clean,
                     quiet=True if quiet else None)
        if model != "hourglass":
            from speak.train import token_lm

            cfg = load_config(config, flags=flags, sets=set_, validate_model=False)
            metrics = token_lm.run(cfg, model=model, tokenizer=tokenizer or "speak", resume=resume)
            if metrics and not cfg.quiet:
                _print_metrics(metrics, ("model", "tokenizer", "steps", "bpc", "sf", "params", "firing_rate",
                                         "energy_pj_per_char", "tokens_per_s"))
                print(f"wrote {Path(cfg.out) / 'metrics.json'}")
            return
        if tokenizer is not None:
            from speak.errors import SpeakError

            raise SpeakError("--tokenizer applies to token LMs (--model spikegpt, spikelm or transformer)")
        cfg = load_config(config, flags=flags, sets=set_)
        metrics = train_and_evaluate(cfg, resume=resume)
        if metrics and not cfg.quiet:
            _print_metrics(metrics, ("boundary", "steps", "bpc", "sf", "lm_params", "tokenizer_params",
                                     "tokenize_ms_per_batch", "infer_ms_per_batch"))
            print(f"wrote {Path(cfg.out) / 'metrics.json'}")

    @app.command("eval")
    def eval_(
        run: Path = typer.Option(..., "--run", help="A run folder written by `speak train`."),
        corpus: Optional[str] = typer.Option(None, "--corpus", help="Evaluate on this corpus's test split instead."),
        json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ) -> None:
        """Re-evaluate a run's last checkpoint (windowed test BPC, SF, params, timings); writes RUN/eval.json."""
        from speak.eval.metrics import evaluate_run

        metrics = evaluate_run(run, corpus=corpus)
        if json_out:
            print(json.dumps(metrics, indent=2))
        else:
            _print_metrics(metrics, ("boundary", "steps", "bpc", "sf", "lm_params", "tokenizer_params",
                                     "tokenize_ms_per_batch", "infer_ms_per_batch"))

    @bench_app.command("boundaries")
    def bench_boundaries_cmd(
        corpus: str = typer.Option("embedded", "--corpus"),
        a: str = typer.Option(BENCH_PAIR[0], "--a",
                              help="First boundary source (numerator of the ratio)."),
        b: str = typer.Option(BENCH_PAIR[1], "--b",
                              help="Second boundary source (denominator)."),
        steps: int = typer.Option(20, "--steps", help="Timed training steps per source (after 2 warm-up steps)."),
        preset: str = typer.Option("cpu-small", "--preset"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size"),
        seq_len: Optional[int] = typer.Option(None, "--seq-len"),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option("auto", "--device"),
        set_: list[str] = typer.Option([], "--set", help="Config overrides key=value (e.g. model.d_model=256)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON too."),
    ) -> None:
        """Time training steps of two boundary sources on the same model side by side; print the ratio a/b."""
        from speak.experiments.pipeline import bench_boundaries

        res = bench_boundaries(corpus, a, b, steps=steps, preset=preset, batch_size=batch_size, seq_len=seq_len,
                               seed=seed, device=device, sets=tuple(set_))
        if json_out:
            print(json.dumps(res, indent=2))
