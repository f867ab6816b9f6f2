"""``speak experiment efficiency``: paper Table 4 for the hourglass setting: tokenization time and LM inference time
per batch (median ms, from each run's metrics.json) with the speedup of SPEAK over MAGNET, and the LM / tokenizer
parameter counts with the tokenizer's share. Averaged over seeds, per corpus and over corpora ("cross-lingual
average").

The records come from an earlier ``compare`` (``--from DIR`` reads DIR/results.json) or from runs this command trains
itself (same grid machinery and resumability as ``compare``, methods magnet and speak).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speak.errors import SpeakError
from speak.experiments import report as R
from speak.experiments.compare import Runner, parse_list, run_grid
from speak.experiments.runner import corpus_name
from speak.experiments.variants import EFFICIENCY_METHODS

__all__ = ["efficiency", "load_results", "write_efficiency_outputs"]

METHODS = EFFICIENCY_METHODS


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """Records of a results.json (a file, or a folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpeakError(f"no results file at {p}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise SpeakError(f"{p}: unreadable results ({err.__class__.__name__})") from None
    if isinstance(data, dict):
        data = data.get("records", [])
    if not isinstance(data, list):
        raise SpeakError(f"{p}: expected a list of records")
    return data


def efficiency(*, corpora: Sequence[str] = (), from_results: Sequence[str | Path] = (),
               methods: Sequence[str] = METHODS, reference: str = METHODS[0], preset: str = "cpu-small",
               seeds: int | Sequence[int] = 1, steps: int = 2000, out: str | Path = "experiments/efficiency",
               sets: Sequence[str] = (), runner: Runner | None = None, device: str | None = None,
               quiet: bool = False) -> dict[str, Any]:
    """Table 4 from existing results (``from_results``) and/or fresh runs on ``corpora``."""
    methods = parse_list(methods)
    if reference not in methods:
        methods = [reference] + methods
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    for src in from_results:
        records += [r for r in load_results(src) if r.get("method") in methods]
    if corpora:
        seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
        recs, notes = run_grid(methods, corpora, preset=preset, seeds=seed_list, steps=steps, out=out, sets=sets,
                               runner=runner, device=device, quiet=quiet)
        records += recs
    if not records:
        raise SpeakError("efficiency needs records: pass --from DIR (a compare output) or --corpus to train")
    names = list(dict.fromkeys(str(r.get("corpus_name") or corpus_name(str(r.get("corpus", "")))) for r in records))
    return write_efficiency_outputs(Path(out), records, names, methods, reference=reference, notes=notes)


def write_efficiency_outputs(out: Path, records: list[dict[str, Any]], corpora: Sequence[str],
                             methods: Sequence[str] = METHODS, *, reference: str = METHODS[0],
                             notes: Sequence[str] = ()) -> dict[str, Any]:
    out = Path(out)
    table, data = R.efficiency_table(records, corpora, methods, reference=reference)
    R.write_json(out / "results.json", records)
    R.write_json(out / "efficiency.json", data)
    shapes = sorted({str(r.get("timing_batch_shape")) for r in records if r.get("timing_batch_shape")})
    devices = sorted({str(r.get("device")) for r in records if r.get("device")})
    info = [f"timed batch shape(s) {', '.join(shapes)}; device(s) {', '.join(devices)}"] if shapes else []
    paths = R.write_report(out, "Efficiency (Table 4)", [table], records, corpora, notes=[*info, *notes],
                           plots=False)
    return {"results": out / "results.json", "efficiency": data, "records": records, **paths}
