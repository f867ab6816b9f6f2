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
import math
import sys
from pathlib import Path

from speak.experiments.report import Stat, welch_ttest
from speak.errors import SpeakError
from speak.experiments.runner import METRICS_FILE, load_record

METRICS = (("bpc", 3), ("sf", 2))  # reported metric, decimals


def read_group(pattern: str) -> dict[str, Stat]:
    """bpc and sf over the run folders matching ``pattern`` that finished (have a metrics.json)."""
    records = [load_record(run) for run in sorted(glob.glob(pattern)) if (Path(run) / METRICS_FILE).is_file()]
    return {key: Stat([float(r[key]) for r in records]) for key, _ in METRICS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("groups", nargs="+", metavar="LABEL=GLOB")
    args = ap.parse_args()
    groups = []
    for arg in args.groups:
        label, sep, pattern = arg.partition("=")
        if not sep:
            sys.exit(f"error: expected LABEL=GLOB, got {arg!r}")
        try:
            stats = read_group(pattern)
        except SpeakError as err:  # an unreadable metrics.json
            sys.exit(f"error: {err}")
        if not stats["bpc"].n:
            sys.exit(f"error: no finished run ({METRICS_FILE}) matches {pattern!r}")
        groups.append((label, stats))
    ref_label, ref = groups[0]
    print(f"| group | runs | BPC | SF | p BPC vs {ref_label} | p SF |")
    print("|---|---|---|---|---|---|")
    for i, (label, stats) in enumerate(groups):
        cells = [label, str(stats["bpc"].n)]
        for key, digits in METRICS:
            st = stats[key]
            cells.append(f"{st.mean:.{digits}f} ± {st.std if st.n > 1 else 0:.{digits}f}")
        for key, _ in METRICS:
            p = welch_ttest(stats[key].values, ref[key].values)[1] if i else float("nan")
            cells.append("–" if math.isnan(p) else f"{p:.2f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
