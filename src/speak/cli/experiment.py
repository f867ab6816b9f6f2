"""`speak experiment compare | ablate | efficiency`: the paper's tables (1, 3/5, 4) as resumable run grids with
Markdown / JSON / HTML reports (speak.experiments)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from speak.experiments.variants import COMPARE_METHODS
from speak.lm.boundaries.registry import source_names


def compare_cmd(
    corpus: list[str] = typer.Option(..., "--corpus", help="Corpus spec; repeat for several corpora."),
    methods: str = typer.Option(",".join(COMPARE_METHODS), "--methods",
                                help="Comma-separated: vanilla (boundary none), "
                                     + ", ".join(n for n in source_names() if n != "none")
                                     + " (every registered boundary source), and speak ablation variants."),
    preset: str = typer.Option("cpu-small", "--preset", help="Scale preset: cpu-tiny, cpu-small, paper."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per (method, corpus): 0 .. N-1."),
    steps: int = typer.Option(2000, "--steps", help="Training steps per run."),
    out: Path = typer.Option(Path("experiments/compare"), "--out", help="Output folder (resumable)."),
    set_: list[str] = typer.Option([], "--set", help="Config override for every run: key=value."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Tables only."),
    report_only: bool = typer.Option(False, "--report-only",
                                     help="Train nothing: report the finished runs in --out, list the missing."),
    target: Optional[str] = typer.Option(None, "--target",
                                         help="A method tested against its baselines besides speak and the ones "
                                              "chosen by --select (e.g. a speak-* variant in --methods)."),
    workers: int = typer.Option(1, "--workers", "-j",
                                help="Train the grid in N worker processes (each gets cpu_count / N threads)."),
    sweep: list[str] = typer.Option([], "--sweep",
                                    help="METHOD=V1,V2,...: the method's SF knob at these values too (its "
                                         "BPC-vs-SF frontier), e.g. speak=500,1000,2000; repeatable."),
    select: list[str] = typer.Option([], "--select",
                                     help="A,B,...: candidates of which ONE is reported, chosen on validation BPC "
                                          "(test is read for the chosen only); repeatable."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Table 1 the fair way: a one-point table, each learned method's BPC-vs-SF frontier and BPC at matched SF,
    candidates chosen on validation, controls for training-only signals, Holm-corrected tests."""
    from speak.experiments.compare import compare, parse_sweep

    sweeps = dict(parse_sweep(s) for s in sweep)
    res = compare(corpus, methods, preset=preset, seeds=seeds, steps=steps, out=out, sets=set_, target=target,
                  device=device, quiet=quiet, plots=not no_plots, report_only=report_only, workers=workers,
                  sweeps=sweeps, select=select)
    _done(res, quiet)

def ablate_cmd(
    corpus: list[str] = typer.Option(..., "--corpus", help="Corpus spec; repeat for several corpora."),
    variants: Optional[str] = typer.Option(None, "--variants",
                                           help="Comma-separated SPEAK variants (default: all of Tables 3 and 5):"
                                                " speak, speak-all-hard, speak-all-soft, speak-no-reset, "
                                                "speak-hard-no-reset, speak-theta-X, speak-wo-lmem2, speak-wo-mh."),
    preset: str = typer.Option("cpu-small", "--preset"),
    seeds: int = typer.Option(3, "--seeds"),
    steps: int = typer.Option(2000, "--steps"),
    out: Path = typer.Option(Path("experiments/ablate"), "--out"),
    set_: list[str] = typer.Option([], "--set", help="Config override for every run: key=value."),
    device: Optional[str] = typer.Option(None, "--device"),
    no_plots: bool = typer.Option(False, "--no-plots"),
    report_only: bool = typer.Option(False, "--report-only",
                                     help="Train nothing: report the finished runs in --out, list the missing."),
    workers: int = typer.Option(1, "--workers", "-j", help="Train the grid in N worker processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Tables 3 and 5: SPEAK's reset-mode / theta / optimisation ablations with t-tests vs the full model."""
    from speak.experiments.ablate import DEFAULT_VARIANTS, ablate

    res = ablate(corpus, variants or DEFAULT_VARIANTS, preset=preset, seeds=seeds, steps=steps, out=out,
                 sets=set_, device=device, quiet=quiet, plots=not no_plots, report_only=report_only,
                 workers=workers)
    _done(res, quiet)

def efficiency_cmd(
    from_: list[Path] = typer.Option([], "--from", help="A compare output folder (or results.json) to read."),
    corpus: list[str] = typer.Option([], "--corpus", help="Train magnet and speak on this corpus too."),
    preset: str = typer.Option("cpu-small", "--preset"),
    seeds: int = typer.Option(1, "--seeds"),
    steps: int = typer.Option(2000, "--steps"),
    out: Path = typer.Option(Path("experiments/efficiency"), "--out"),
    set_: list[str] = typer.Option([], "--set"),
    device: Optional[str] = typer.Option(None, "--device"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Table 4: tokenization / inference ms per batch and parameters, SPEAK vs MAGNET."""
    from speak.experiments.efficiency import efficiency

    res = efficiency(corpora=corpus, from_results=from_, preset=preset, seeds=seeds, steps=steps, out=out,
                     sets=set_, device=device, quiet=quiet)
    _done(res, quiet)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the `speak` app, under `speak experiment`."""
    exp = typer.Typer(help="The paper's experiments: compare (Table 1), ablate (Tables 3, 5), efficiency (Table 4).",
                      no_args_is_help=True)
    exp.command("compare")(compare_cmd)
    exp.command("ablate")(ablate_cmd)
    exp.command("efficiency")(efficiency_cmd)
    app.add_typer(exp, name="experiment")


def _done(res: dict, quiet: bool) -> None:
    if quiet:
        return
    md = res.get("report_md")
    if md is not None:
        print(Path(md).read_text(encoding="utf-8"))
    for key in ("results", "report_md", "report_html"):
        if res.get(key) is not None:
            print(f"wrote {res[key]}")
