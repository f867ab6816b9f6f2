"""Compare two experiment grids run by ``speak experiment compare`` (e.g. before / after a refactor): BPC and SF
per method side by side and the largest absolute difference.

    python benchmarks/compare_grids.py /work/grid/before /work/grid/after [--tol 1e-6]

Exit code 1 when a difference exceeds ``--tol`` or a method is missing from one grid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_grid(root: Path) -> dict[str, dict[str, float]]:
    """{run (corpus/method/seed): metrics.json} of every finished run under ROOT/runs."""
    out = {}
    for path in sorted((root / "runs").glob("*/*/*/metrics.json")):
        out[str(path.parent.relative_to(root / "runs"))] = json.loads(path.read_text(encoding="utf-8"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args(argv)
    a, b = read_grid(args.before), read_grid(args.after)
    runs = sorted(set(a) | set(b))
    print(f"{'run':<34} {'BPC before':>12} {'BPC after':>12} {'SF before':>11} {'SF after':>11} {'max |diff|':>11}")
    worst, missing = 0.0, []
    for run in runs:
        if run not in a or run not in b:
            missing.append(run)
            print(f"{run:<34} missing in {'before' if run not in a else 'after'}")
            continue
        d = max(abs(a[run]["bpc"] - b[run]["bpc"]), abs(a[run]["sf"] - b[run]["sf"]))
        worst = max(worst, d)
        print(f"{run:<34} {a[run]['bpc']:12.7f} {b[run]['bpc']:12.7f} {a[run]['sf']:11.6f} {b[run]['sf']:11.6f} "
              f"{d:11.3g}")
    print(f"max abs diff over {len(runs) - len(missing)} runs (BPC and SF): {worst:.3g} (tolerance {args.tol:g})")
    return 1 if worst > args.tol or missing else 0


if __name__ == "__main__":
    sys.exit(main())
