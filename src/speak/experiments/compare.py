"""``speak experiment compare``: the paper's Table 1 on our corpora, made the way SPEC section 6 asks: every
(method, corpus, seed) trained and evaluated once (in N worker processes with ``workers``), candidates chosen on
validation BPC (:mod:`~speak.experiments.selection`), each target compared with the baselines that get the same
training-only signals (:mod:`~speak.experiments.protocol`), BPC at matched SF on each method's BPC-vs-SF frontier
(:mod:`~speak.experiments.frontier`) next to the one-point table, Holm-corrected tests.

Outputs in OUT: ``results.json`` (a list, one record per method, corpus and seed: method, corpus, corpus_name, seed,
bpc, sf and the rest of the run's metrics.json; the candidates not chosen without test fields), ``report.md``,
``report.html`` (plots embedded), ``plots/*.png``, ``significance.json``, and the runs under
``runs/<corpus>/<method>/seed<k>/``. Resumable: a run whose metrics.json exists is not trained again.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from speak.errors import SpeakError
from speak.experiments import report as R
from speak.experiments import variants as V
from speak.experiments import workers as W
from speak.experiments.variants import COMPARE_METHODS, SPEAK
from speak.experiments.runner import METRICS_FILE, corpus_name, load_record, resolve_method, run_dir_for, run_training

__all__ = ["DEFAULT_METHODS", "compare", "expand_sweeps", "parse_list", "parse_sweep", "run_grid"]

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


def _train_one(runner: Runner, job: W.Job, *, preset: str, steps: int, sets: Sequence[str],
               device: str | None) -> tuple[dict[str, Any] | None, str]:
    """Train one job: (its record, a log line), or (None, the failure note) after recording the failure."""
    t0 = time.perf_counter()
    try:
        rec = runner(job.method, job.corpus, preset, job.seed, steps, job.run_dir, list(sets), device=device)
    except RUN_ERRORS as err:  # one failed run is recorded; the grid goes on
        note = record_failure(job.run_dir, job.method, job.corpus, job.seed, err)
        return None, f"FAILED ({note}); recorded in {job.run_dir / FAILED_FILE}"
    (job.run_dir / FAILED_FILE).unlink(missing_ok=True)
    return rec, (f"bpc {rec.get('bpc', float('nan')):.4f} sf {rec.get('sf', float('nan')):.2f} "
                 f"({time.perf_counter() - t0:.0f} s)")


def _failure_note(run_dir: Path) -> str | None:
    """The note of a recorded failure (``RUN/failed.json``), if any."""
    try:
        data = json.loads((run_dir / FAILED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return f"{data.get('method')} on {corpus_name(str(data.get('corpus', '')))} seed {data.get('seed')} failed: " \
           f"{data.get('error')}"


def run_grid(methods: Sequence[str], corpora: Sequence[str], *, preset: str, seeds: Sequence[int], steps: int,
             out: str | Path, sets: Sequence[str] = (), runner: Runner | None = None, device: str | None = None,
             quiet: bool = False, report_only: bool = False,
             workers: int = 1) -> tuple[list[dict[str, Any]], list[str]]:
    """Train every (method, corpus, seed) not yet done; returns (records, notes). ``runner`` defaults to
    :func:`speak.experiments.runner.run_training` (tests pass a stand-in). ``workers`` > 1: the runs are trained
    in that many processes (:mod:`speak.experiments.workers`). ``report_only``: train nothing, take the finished
    runs and name the missing ones in the notes."""
    runner = runner or run_training
    out = Path(out)
    names = [corpus_name(c) for c in corpora]
    if len(set(names)) != len(names):
        raise SpeakError(f"corpora must have distinct names, got {names}")
    if workers < 1:
        raise SpeakError(f"--workers must be at least 1, got {workers}")
    specs = [resolve_method(m) for m in methods]  # unknown names fail before any training
    from speak.experiments import runner as real

    if runner is real.run_training and not report_only:  # a stand-in runner (tests) needs no real inputs
        _check_inputs(specs, corpora, preset, sets, out)
    jobs = [W.Job(s.name, c, seed, run_dir_for(out, s.name, c, seed)) for c in corpora for s in specs for seed in seeds]
    done = lambda job: (job.run_dir / METRICS_FILE).is_file()  # noqa: E731
    if workers > 1 and not report_only and not all(map(done, jobs)):
        _log(f"{sum(not done(j) for j in jobs)} of {len(jobs)} runs to train in {workers} worker processes", quiet)

        def run_one(job: W.Job) -> str:
            rec, line = _train_one(runner, job, preset=preset, steps=steps, sets=sets, device=device)
            return f"{job.method} on {corpus_name(job.corpus)} seed {job.seed}: {line}"

        W.run_parallel(jobs, run_one, done, workers=workers, quiet=quiet)
        trained = True  # every run is now finished, failed (failed.json) or held by another live grid
    else:
        trained = False
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    failed = 0
    missing: dict[tuple[str, str], list[int]] = {}  # (method, corpus name) -> seeds not trained
    for i, job in enumerate(jobs, 1):
        tag = f"[{i}/{len(jobs)}] {job.method} on {corpus_name(job.corpus)} seed {job.seed}"
        if done(job):
            rec = load_record(job.run_dir, method=job.method, corpus=job.corpus, seed=job.seed)
            _log(f"{tag}: done (bpc {rec.get('bpc', float('nan')):.4f})", quiet)
        elif report_only or trained:
            note = _failure_note(job.run_dir)
            if note:
                notes.append(note)
                failed += 1
            else:
                missing.setdefault((job.method, corpus_name(job.corpus)), []).append(job.seed)
            continue
        else:
            _log(f"{tag}: training {steps} steps ({preset})", quiet)
            rec, line = _train_one(runner, job, preset=preset, steps=steps, sets=sets, device=device)
            _log(f"{tag}: {line}", quiet)
            if rec is None:
                notes.append(_failure_note(job.run_dir) or line)
                failed += 1
                continue
            # the record as a later --report-only reads it, so both write the same results
            rec = load_record(job.run_dir, method=job.method, corpus=job.corpus, seed=job.seed)
        records.append(rec)
    if failed and not records:  # nothing worked: a bad option or corpus, not one unlucky run
        raise SpeakError(f"every run failed; the first: {notes[0]}")
    for (method, name), missed in missing.items():
        label = "seed" if len(missed) == 1 else "seeds"
        why = "report only" if report_only else "claimed by another grid that is still running"
        notes.append(f"{method} on {name} {label} {', '.join(map(str, missed))}: not trained ({why})")
    return records, notes


def expand_sweeps(sweeps: Mapping[str, Sequence[float]], *, preset: str, sets: Sequence[str]) -> list[str]:
    """The method names of ``--sweep METHOD=V1,V2,...``: the method itself (its default knob value) and
    ``METHOD@V`` for every other value."""
    from speak.train.config import load_config

    names: list[str] = []
    for method, values in sweeps.items():
        spec = resolve_method(method)
        cfg = load_config(flags={"boundary": spec.boundary, "preset": preset}, sets=list(spec.sets) + list(sets))
        default = V.knob_value(method, cfg)
        for name in [method, *V.sweep_names(method, list(values), default)]:
            if name not in names:
                names.append(name)
    return names


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``METHOD=V1,V2,...`` -> (METHOD, [V1, V2, ...])."""
    method, sep, values = text.partition("=")
    try:
        nums = [float(v) for v in parse_list(values)]
    except ValueError:
        nums = []
    if not sep or not method.strip() or not nums:
        raise SpeakError(f"--sweep expects METHOD=V1,V2,... (e.g. speak=500,1000,2000), got {text!r}")
    return method.strip(), nums


def compare(corpora: Sequence[str], methods: Sequence[str] = DEFAULT_METHODS, *, preset: str = "cpu-small",
            seeds: int | Sequence[int] = 3, steps: int = 2000, out: str | Path = "experiments/compare",
            sets: Sequence[str] = (), target: str | None = None, runner: Runner | None = None,
            device: str | None = None, quiet: bool = False, plots: bool = True, report_only: bool = False,
            workers: int = 1, sweeps: Mapping[str, Sequence[float]] | None = None,
            select: Sequence[Sequence[str]] = ()) -> dict[str, Any]:
    """Run the Table 1 grid and write results.json, significance.json, report.md, report.html; returns the paths
    and tests.

    ``sweeps``: {method: knob values} adds each method's frontier points (``METHOD@V``); ``select``: groups of
    candidate methods, one chosen per group on validation BPC (:mod:`speak.experiments.selection`); ``target``: a
    method tested against its baselines besides SPEAK and the chosen ones. ``workers`` > 1 trains in that many
    processes.
    """
    if not corpora:
        raise SpeakError("compare needs at least one --corpus")
    methods = parse_list(methods)
    if not methods:
        raise SpeakError("compare needs at least one method")
    seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise SpeakError("compare needs at least one seed")
    groups = {f"selection {i + 1}": parse_list(g) for i, g in enumerate(select)}
    for name, cands in groups.items():
        if len(cands) < 2:
            raise SpeakError(f"--select needs at least two candidates, got {','.join(cands) or 'none'}")
    all_methods = list(methods)
    for name in [*(m for g in groups.values() for m in g),
                 *expand_sweeps(dict(sweeps or {}), preset=preset, sets=sets)]:
        if name not in all_methods:
            all_methods.append(name)
    if target is not None and target not in all_methods:
        raise SpeakError(f"compare --target {target!r} is not among --methods {','.join(methods)}")
    out = Path(out)
    records, notes = run_grid(all_methods, corpora, preset=preset, seeds=seed_list, steps=steps, out=out, sets=sets,
                              runner=runner, device=device, quiet=quiet, report_only=report_only, workers=workers)
    names = [corpus_name(c) for c in corpora]
    return write_compare_outputs(out, records, all_methods, names, target=target, notes=notes, plots=plots,
                                 groups=groups,
                                 header=f"preset {preset}, {steps} steps, seeds {seed_list}"
                                        + (f", overrides {list(sets)}" if sets else ""))


TIMING_NOTE = ("Timing: no timing column. The runs of a grid are not timed side by side (workers and other jobs "
               "share the machine), so their ms/step cannot rank methods; `speak bench boundaries` times two "
               "sources side by side.")


def write_compare_outputs(out: Path, records: list[dict[str, Any]], methods: Sequence[str], corpora: Sequence[str],
                          *, target: str | None = None, notes: Sequence[str] = (), plots: bool = True,
                          header: str = "", groups: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Selection, controls, tables, plots and files from finished records (no training)."""
    from speak.experiments import frontier as F
    from speak.experiments import protocol as P
    from speak.experiments import selection as S

    out = Path(out)
    choices = S.select(records, dict(groups or {}))
    shown, withheld = P.reported_methods(methods, choices)
    reported = [r for r in records if r.get("method") in shown]
    R.write_json(out / "results.json", reported + [S.withhold_test(r) for r in records
                                                  if r.get("method") in withheld])
    candidates = {c for ch in choices for c in ch.candidates}
    wanted: list[tuple[str, str]] = []
    if SPEAK in shown:
        wanted.append((SPEAK, "the paper's method"))
    for ch in choices:
        if ch.chosen:
            wanted.append((ch.chosen, f"chosen on validation from {', '.join(ch.candidates)}"))
    if target is not None and target in shown and target not in [w[0] for w in wanted]:
        wanted.append((target, "--target"))
    one_point = [m for m in shown if "@" not in m]
    targets = P.plan_targets(one_point, wanted, candidates)
    controlled = [t for t in targets if t.controlled]
    tests = [row for t in controlled for row in P.significance_rows(reported, t, corpora)]
    verdicts = [{**row, "target": t.method} for t in controlled
                for row in R.verdicts(reported, [t.method, *t.baselines], corpora, target=t.method)]
    all_curves = F.curves(reported)
    matched = F.matched_table_rows(all_curves, [(t.method, b) for t in controlled for b in t.baselines], corpora)

    thin = sorted({f"{m} ({len(c.points)})" for (m, _), c in all_curves.items() if 2 <= len(c.points) < 3})
    if thin:
        notes = [*notes, f"Frontier curves with fewer than the 3 points SPEC section 6 asks for: {', '.join(thin)}."]
    star = controlled[0].method if controlled else (targets[0].method if targets else SPEAK)
    star_sig = {r["corpus"]: bool(R._finite(r.get("p_holm", r["p"])) and r.get("p_holm", r["p"]) < R.ALPHA)
                for r in tests if r["target"] == star}
    table1 = R.table1(reported, one_point, corpora, target=star, significant=star_sig,
                      star_note=f"* = {star}'s BPC differs from its best controlled baseline's with a Holm-adjusted "
                                "Welch p < 0.05 (Avg.: unadjusted); see the one-point tests below.")
    marks = {t.method: (" (not controlled)" if not t.controlled else "") for t in targets}
    for ch in choices:
        if ch.chosen:
            marks[ch.chosen] = " (chosen on validation)" + marks.get(ch.chosen, "")
    for row, m in zip(table1.rows, one_point):
        row[0] += marks.get(m, "")
    tables = []
    if choices:
        tables.append(P.selection_table(choices))
    if targets:
        tables.append(P.controls_table(targets))
    if matched:
        tables.append(P.matched_table(matched))
    tables.append(table1)
    if tests:
        tables.append(P.significance_table(tests))
    if verdicts:
        tables.append(P.verdict_table(verdicts))
    if any(len(c.points) >= 2 for c in all_curves.values()):
        tables.append(P.frontier_points_table(all_curves, corpora))
    R.write_json(out / "significance.json", {
        "one_point": tests, "verdicts": verdicts, "matched_sf": [r.as_dict() for r in matched],
        "selection": [ch.__dict__ for ch in choices],
        "controls": [{"target": t.method, "why": t.why, "signals": list(t.signals), "baselines": t.baselines,
                      "controlled": t.controlled} for t in targets]})
    figures = []
    if plots:
        panels = _frontier_panels(all_curves, corpora)
        if panels:
            at = {}
            for r in matched:
                at.setdefault(r.corpus, []).append(r.sf)
            from speak.experiments.plots import plot_frontier

            figures.append(("BPC vs SF: each method's frontier over its SF knob (dotted: matched SFs)",
                            plot_frontier(panels, out / "plots" / "frontier.png", matched=at)))
    seg = [r["run_dir"] for r in reported if r.get("method") == star and r.get("run_dir")][:1]
    paths = R.write_report(out, "SPEAK vs gradient-based tokenizers (Table 1): validation selects, test reports",
                           tables, reported, corpora, notes=[n for n in [header, *notes, TIMING_NOTE] if n],
                           segmentation_runs=seg, plots=plots, figures=figures)
    return {"results": out / "results.json", "significance": tests, "matched": matched, "choices": choices,
            "targets": targets, "records": reported, **paths}


def _frontier_panels(all_curves, corpora: Sequence[str]) -> dict[str, dict[str, list[tuple]]]:
    """plot_frontier's panels: per corpus, per method with 2+ points, (knob, sf, bpc, sf std, bpc std) per point."""
    panels: dict[str, dict[str, list[tuple]]] = {}
    for (method, corpus), cur in all_curves.items():
        if corpus not in corpora or len(cur.points) < 2:
            continue
        pts = []
        for knob, runs in cur.points.items():
            sf, bpc = R.Stat([v[0] for v in runs.values()]), R.Stat([v[1] for v in runs.values()])
            pts.append((knob, sf.mean, bpc.mean, sf.std, bpc.std))
        panels.setdefault(corpus, {})[R._label(method)] = pts
    return {c: panels[c] for c in corpora if c in panels}
