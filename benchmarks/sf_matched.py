"""BPC and SF of groups of finished runs, each tested against the first group (an SF-matched comparison).

Table 1 compares every method at one exemplar vocabulary, so the methods land at different shortening factors.
This puts runs from any folders side by side, e.g. SPEAK against DTP-Unigram trained towards a larger exemplar
vocabulary, so that the two land at about the same SF. Each group is `LABEL=GLOB` over run folders that hold a
`metrics.json`; the table gives mean +- sd over the group's runs and a Welch t-test against the first group.

    python benchmarks/sf_matched.py "SPEAK, vocab 1000=runs/compare1000/runs/en-bible/speak/seed*" \
        "DTP-Unigram, vocab 2000=runs/sfmatch/vocab2000/runs/en-bible/dtp-unigram/seed*"
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

from speak.experiments.report import welch_ttest


def read_group(pattern: str) -> dict[str, list[float]]:
    """bpc and sf of every run folder matching ``pattern`` that has finished (has a metrics.json)."""
    values: dict[str, list[float]] = {"bpc": [], "sf": []}
    for run in sorted(glob.glob(pattern)):
        path = Path(run) / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text())
            for key in values:
                values[key].append(float(metrics[key]))
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("groups", nargs="+", metavar="LABEL=GLOB")
    args = ap.parse_args()
    groups = []
    for arg in args.groups:
        label, sep, pattern = arg.partition("=")
        if not sep:
            sys.exit(f"error: expected LABEL=GLOB, got {arg!r}")
        values = read_group(pattern)
        if not values["bpc"]:
            sys.exit(f"error: no finished run (metrics.json) matches {pattern!r}")
        groups.append((label, values))
    ref_label, ref = groups[0]
    print(f"| group | runs | BPC | SF | p BPC vs {ref_label} | p SF |")
    print("|---|---|---|---|---|---|")
    for label, values in groups:
        cells = [label, str(len(values["bpc"]))]
        for key, digits in (("bpc", 3), ("sf", 2)):
            v = np.asarray(values[key])
            cells.append(f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{digits}f}")
        for key in ("bpc", "sf"):
            p = welch_ttest(values[key], ref[key])[1] if label != ref_label else float("nan")
            cells.append("–" if np.isnan(p) else f"{p:.2f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
