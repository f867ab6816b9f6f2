"""Put the finished runs of a committed results.json back as run folders, so a report can combine them with new runs.

Training logs and checkpoints are not committed (docs/results keeps only each run's record), so a new checkout has
no `runs/`. This writes `OUT/runs/<corpus>/<method>/seed<k>/metrics.json` for every record that is not there yet;
`speak experiment compare ... --out OUT --report-only` then reports them next to the runs trained into OUT. A
candidate that was not chosen on validation has its test numbers withheld in results.json (`test_withheld`); it comes
back with its validation fields, which is all the selection reads.

    python benchmarks/restore_runs.py docs/results/compare2000/results.json --out runs/encbce2000 \
        --methods dtp-entropy,dtp-unigram,speak-bounded-mem-scales
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speak.atomic import atomic_write_json, read_json
from speak.errors import SpeakError
from speak.experiments.runner import METRICS_FILE, run_dir_for

DERIVED = ("method", "corpus_name", "run_dir", "train_log", "reused", "wall_seconds")  # added by load_record / grid


def restore(results: Path, out: Path, methods: set[str] | None) -> int:
    """Write the missing metrics.json files; returns how many were written."""
    records = read_json(results, missing=f"{results}: no such file", what="results")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SpeakError(f"{results}: expected a list of run records")
    written = 0
    for rec in records:
        if methods is not None and rec.get("method") not in methods:
            continue
        try:
            run_dir = run_dir_for(out, rec["method"], rec["corpus"], int(rec["seed"]))
        except KeyError as key:
            raise SpeakError(f"{results}: a record has no {key}") from None
        if (run_dir / METRICS_FILE).is_file():
            continue
        atomic_write_json(run_dir / METRICS_FILE, {k: v for k, v in rec.items() if k not in DERIVED})
        written += 1
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--methods", help="comma-separated; default: every method in the file")
    args = ap.parse_args()
    methods = set(args.methods.split(",")) if args.methods else None
    try:
        n = restore(args.results, args.out, methods)
    except SpeakError as exc:
        sys.exit(f"restore_runs: {exc}")
    print(f"restored {n} run(s) into {args.out}")


if __name__ == "__main__":
    main()
