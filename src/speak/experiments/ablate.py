"""``speak experiment ablate``: SPEAK's ablations (paper Table 3 and Table 5) on our corpora.

Table 3 (reset mechanism): entropy-aware hard/soft with theta 0.8 (the full model), all-hard, all-soft (theta 1),
no reset (theta 0), hard/no-reset, and theta in {1.0, 0.6, 0.4} (0.8 is the full model). Table 5 (optimisation):
w/o the 2nd term of L_mem, w/o Metropolis-Hastings (greedy acceptance). Every variant is a Welch t-test against the
full model, on BPC and on SF. Same outputs and resumability as ``compare``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speak.errors import SpeakError
from speak.experiments import report as R
from speak.experiments.compare import Runner, parse_list, run_grid
from speak.experiments.runner import corpus_name
from speak.experiments.variants import SPEAK, TABLE3_VARIANTS, TABLE5_VARIANTS, resolve_method

__all__ = ["DEFAULT_VARIANTS", "ablate", "write_ablation_outputs"]

DEFAULT_VARIANTS = tuple(dict.fromkeys(TABLE3_VARIANTS + TABLE5_VARIANTS))
REFERENCE = SPEAK


def ablate(corpora: Sequence[str], variants: Sequence[str] = DEFAULT_VARIANTS, *, preset: str = "cpu-small",
           seeds: int | Sequence[int] = 3, steps: int = 2000, out: str | Path = "experiments/ablate",
           sets: Sequence[str] = (), runner: Runner | None = None, device: str | None = None, quiet: bool = False,
           plots: bool = True, report_only: bool = False, workers: int = 1) -> dict[str, Any]:
    """Train the full model and each variant on every corpus and seed (in ``workers`` processes); write
    results.json, report.md/.html."""
    if not corpora:
        raise SpeakError("ablate needs at least one --corpus")
    variants = parse_list(variants)
    for v in variants:
        if resolve_method(v).boundary != resolve_method(REFERENCE).boundary:
            raise SpeakError(f"ablation variant {v!r} is not a SPEAK variant")
    if REFERENCE not in variants:
        variants = [REFERENCE] + variants  # the t-tests need the full model
    seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise SpeakError("ablate needs at least one seed")
    out = Path(out)
    records, notes = run_grid(variants, corpora, preset=preset, seeds=seed_list, steps=steps, out=out, sets=sets,
                              runner=runner, device=device, quiet=quiet, report_only=report_only, workers=workers)
    header = f"preset {preset}, {steps} steps, seeds {seed_list}" + (f", overrides {list(sets)}" if sets else "")
    return write_ablation_outputs(out, records, variants, [corpus_name(c) for c in corpora],
                                  notes=[header, *notes], plots=plots)


def write_ablation_outputs(out: Path, records: list[dict[str, Any]], variants: Sequence[str],
                           corpora: Sequence[str], *, notes: Sequence[str] = (), plots: bool = True) -> dict[str, Any]:
    out = Path(out)
    R.write_json(out / "results.json", records)
    tests = R.ablation_tests(records, variants, corpora, reference=REFERENCE)
    R.write_json(out / "significance.json", tests)
    t3 = [v for v in variants if v in TABLE3_VARIANTS or v.startswith("speak-theta-")]
    t5 = [REFERENCE] + [v for v in variants if v != REFERENCE and v not in t3]  # Table 5 and other optimisation variants
    tables = []
    if len(t3) > 1 or len(t5) <= 1:
        tables.append(R.ablation_table(records, t3, corpora, reference=REFERENCE,
                                       title="Table 3: reset mechanism and θ (BPC, SF; p vs the full model)"))
    if len(t5) > 1:
        tables.append(R.ablation_table(records, t5, corpora, reference=REFERENCE,
                                       title="Table 5: optimisation algorithm (BPC, SF; p vs the full model)",
                                       reset_columns=False))
    seg = [r["run_dir"] for r in records if r.get("method") == REFERENCE and r.get("run_dir")][:1]
    paths = R.write_report(out, "SPEAK ablations (Tables 3 and 5)", tables, records, corpora,
                           notes=[n for n in notes if n], segmentation_runs=seg, plots=plots)
    return {"results": out / "results.json", "significance": tests, "records": records, **paths}
