"""``speak experiment compare``: the paper's Table 1 on our corpora: every (method, corpus, seed) trained and
evaluated once, then a results table (BPC and SF per corpus and their average, mean ± std over seeds) and a Welch
t-test of SPEAK's BPC against the best baseline per corpus.

Outputs in OUT: ``results.json`` (a list, one record per method, corpus and seed: method, corpus, corpus_name, seed,
bpc, sf and the rest of the run's metrics.json), ``report.md``, ``report.html`` (plots embedded), ``plots/*.png``,
``significance.json``, and the runs under ``runs/<corpus>/<method>/seed<k>/``. Resumable: a run whose metrics.json
exists is not trained again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from speak.errors import SpeakError
from speak.experiments import report as R
from speak.experiments.variants import COMPARE_METHODS, SPEAK
from speak.experiments.runner import METRICS_FILE, corpus_name, load_record, resolve_method, run_dir_for, run_training

__all__ = ["DEFAULT_METHODS", "compare", "parse_list", "run_grid"]

DEFAULT_METHODS = COMPARE_METHODS

Runner = Callable[..., dict[str, Any]]


def parse_list(text: str | Sequence[str]) -> list[str]:
    """``a,b , c`` (or a list of such strings) -> ['a', 'b', 'c'] without duplicates, in order."""
    items = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


FAILED_FILE = "failed.json"

#: What one failed run of a grid raises without ending the grid: user-facing errors and torch's run-time errors
#: (out of memory, a kernel that rejects a shape). Other exceptions are bugs and stop the grid.
RUN_ERRORS = (SpeakError, RuntimeError)


def record_failure(run_dir: str | Path, method: str, corpus: str, seed: int, err: BaseException) -> str:
    """Write ``RUN/failed.json`` (what failed and why) and return the one-line note for the report."""
    from speak.atomic import atomic_write_json

    reason = " ".join(str(err).split()) or type(err).__name__
    atomic_write_json(Path(run_dir) / FAILED_FILE, {"method": method, "corpus": corpus, "seed": int(seed),
                                                    "error": f"{type(err).__name__}: {reason}"})
    return f"{method} on {corpus_name(corpus)} seed {seed} failed: {reason}"


def _check_inputs(specs, corpora: Sequence[str], preset: str, sets: Sequence[str], out: Path) -> None:
    """Fail before any training (one error line, nothing written) on an unwritable output folder, an unreadable
    corpus or a bad --set, which would otherwise fail every run of the grid."""
    from speak.atomic import check_output_dir
    from speak.text.corpora import load_corpus
    from speak.train.config import load_config

    check_output_dir(out, force=True, what="output folder")
    for corpus in corpora:
        load_corpus(corpus)
    for spec in specs:
        load_config(flags={"boundary": spec.boundary, "preset": preset, "corpus": corpora[0]},
                    sets=list(spec.sets) + list(sets))


def run_grid(methods: Sequence[str], corpora: Sequence[str], *, preset: str, seeds: Sequence[int], steps: int,
             out: str | Path, sets: Sequence[str] = (), runner: Runner | None = None, device: str | None = None,
             quiet: bool = False, report_only: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Train every (method, corpus, seed) not yet done; returns (records, notes). ``runner`` defaults to
    :func:`speak.experiments.runner.run_training` (tests pass a stand-in). ``report_only``: train nothing, take
    the finished runs and name the missing ones in the notes (e.g. a grid trained by several workers)."""
    runner = runner or run_training
    out = Path(out)
    names = [corpus_name(c) for c in corpora]
    if len(set(names)) != len(names):
        raise SpeakError(f"corpora must have distinct names, got {names}")
    specs = [resolve_method(m) for m in methods]  # unknown names fail before any training
    from speak.experiments import runner as real

    if runner is real.run_training and not report_only:  # a stand-in runner (tests) needs no real inputs
        _check_inputs(specs, corpora, preset, sets, out)
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    failed = 0
    missing: dict[tuple[str, str], list[int]] = {}  # (method, corpus name) -> seeds not trained (report only)
    todo = [(s, c, seed) for c in corpora for s in specs for seed in seeds]
    for i, (spec, corpus, seed) in enumerate(todo, 1):
        run_dir = run_dir_for(out, spec.name, corpus, seed)
        tag = f"[{i}/{len(todo)}] {spec.name} on {corpus_name(corpus)} seed {seed}"
        if (run_dir / METRICS_FILE).is_file():
            rec = load_record(run_dir, method=spec.name, corpus=corpus, seed=seed)
            rec["reused"] = True
            _log(f"{tag}: done already (bpc {rec.get('bpc', float('nan')):.4f})", quiet)
        elif report_only:
            missing.setdefault((spec.name, corpus_name(corpus)), []).append(seed)
            continue
        else:
            _log(f"{tag}: training {steps} steps ({preset})", quiet)
            t0 = time.perf_counter()
            try:
                rec = runner(spec.name, corpus, preset, seed, steps, run_dir, list(sets), device=device)
            except RUN_ERRORS as err:  # one failed run is recorded; the grid goes on
                notes.append(record_failure(run_dir, spec.name, corpus, seed, err))
                failed += 1
                _log(f"{tag}: FAILED ({notes[-1]}); recorded in {run_dir / FAILED_FILE}", quiet)
                continue
            (run_dir / FAILED_FILE).unlink(missing_ok=True)
            rec.setdefault("method", spec.name)
            rec.setdefault("corpus", corpus)
            rec.setdefault("seed", seed)
            rec.setdefault("corpus_name", corpus_name(corpus))
            rec["wall_seconds"] = time.perf_counter() - t0
            _log(f"{tag}: bpc {rec.get('bpc', float('nan')):.4f} sf {rec.get('sf', float('nan')):.2f}", quiet)
        records.append(rec)
    if failed and not records:  # nothing worked: a bad option or corpus, not one unlucky run
        raise SpeakError(f"every run failed; the first: {notes[-failed]}")
    for (method, name), missed in missing.items():
        label = "seed" if len(missed) == 1 else "seeds"
        notes.append(f"{method} on {name} {label} {', '.join(map(str, missed))}: not trained (report only)")
    return records, notes


def compare(corpora: Sequence[str], methods: Sequence[str] = DEFAULT_METHODS, *, preset: str = "cpu-small",
            seeds: int | Sequence[int] = 3, steps: int = 2000, out: str | Path = "experiments/compare",
            sets: Sequence[str] = (), target: str | None = None, runner: Runner | None = None,
            device: str | None = None, quiet: bool = False, plots: bool = True,
            report_only: bool = False) -> dict[str, Any]:
    """Run the Table 1 grid and write results.json, report.md, report.html; returns the paths and tests.

    ``target`` is the method tested against the best baseline: None = speak, when it is among the methods.
    """
    if not corpora:
        raise SpeakError("compare needs at least one --corpus")
    methods = parse_list(methods)
    if not methods:
        raise SpeakError("compare needs at least one method")
    seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise SpeakError("compare needs at least one seed")
    if target is not None and target not in methods:
        raise SpeakError(f"compare --target {target!r} is not among --methods {','.join(methods)}")
    out = Path(out)
    records, notes = run_grid(methods, corpora, preset=preset, seeds=seed_list, steps=steps, out=out, sets=sets,
                              runner=runner, device=device, quiet=quiet, report_only=report_only)
    names = [corpus_name(c) for c in corpora]
    return write_compare_outputs(out, records, methods, names, target=target or SPEAK, notes=notes, plots=plots,
                                 header=f"preset {preset}, {steps} steps, seeds {seed_list}"
                                        + (f", overrides {list(sets)}" if sets else ""))


def write_compare_outputs(out: Path, records: list[dict[str, Any]], methods: Sequence[str], corpora: Sequence[str],
                          *, target: str = SPEAK, notes: Sequence[str] = (), plots: bool = True,
                          header: str = "") -> dict[str, Any]:
    """results.json, significance.json, report.md / report.html from records (no training)."""
    out = Path(out)
    R.write_json(out / "results.json", records)
    tests = R.significance_vs_best_baseline(records, methods, corpora, target=target) if target in methods else []
    R.write_json(out / "significance.json", tests)
    tables = [R.table1(records, methods, corpora, target=target)]
    if tests:
        tables.append(R.significance_table(tests))
        tables.append(R.verdict_table(R.verdicts(records, methods, corpora, target=target)))
    seg = [r["run_dir"] for r in records if r.get("method") == target and r.get("run_dir")][:1]
    paths = R.write_report(out, "SPEAK vs gradient-based tokenizers (Table 1)", tables, records, corpora,
                           notes=[n for n in [header, *notes] if n], segmentation_runs=seg, plots=plots)
    return {"results": out / "results.json", "significance": tests, "records": records, **paths}
