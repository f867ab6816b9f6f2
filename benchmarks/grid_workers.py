"""Run an experiment grid with several worker processes sharing one output folder (a small job queue).

Each worker claims a (method, corpus, seed) run by creating `<run>/.claimed` exclusively, trains it with the same
runner as `speak experiment compare/ablate`, and moves on; finished runs (metrics.json) are skipped. Afterwards run
`speak experiment compare` (or `ablate`) with the same --out to write the report from the finished runs.

    OMP_NUM_THREADS=1 python benchmarks/grid_workers.py --workers 4 --out runs/compare --steps 300 \
        --methods dtp-unigram,magnet,speak --seeds 3 --corpus A --corpus B ...
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import sys
from pathlib import Path


def work(jobs, args, index: int) -> None:
    """Claim and train runs until none is left; a failed run is recorded in its folder (failed.json) and skipped,
    and the worker exits 1 at the end if any failed."""
    from speak.experiments.compare import FAILED_FILE, record_failure
    from speak.experiments.runner import METRICS_FILE, run_dir_for, run_training

    failures = 0
    for method, corpus, seed in jobs:
        run_dir = run_dir_for(args.out, method, corpus, seed)
        if (run_dir / METRICS_FILE).is_file():
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(run_dir / ".claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        try:
            record = run_training(method, corpus, args.preset, seed, args.steps, run_dir, args.set)
        except Exception as err:  # noqa: BLE001 - one failed run is recorded; the worker goes on
            note = record_failure(run_dir, method, corpus, seed, err)
            print(f"[worker {index}] {note} (recorded in {run_dir / FAILED_FILE}; delete it and .claimed to retry)",
                  flush=True)
            failures += 1
            continue
        (run_dir / FAILED_FILE).unlink(missing_ok=True)
        print(f"[worker {index}] {method} {Path(corpus).name} seed {seed}: bpc {record['bpc']:.4f} sf {record['sf']:.2f}",
              flush=True)
    sys.exit(1 if failures else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", action="append", required=True)
    ap.add_argument("--methods", required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from speak.errors import SpeakError
    from speak.experiments.runner import resolve_method

    methods = args.methods.split(",")
    try:
        for method in methods:  # an unknown name fails here, once, not in every worker
            resolve_method(method)
    except SpeakError as exc:
        sys.exit(f"grid_workers: {exc}")
    jobs = [(m, c, s) for s, c, m in itertools.product(range(args.seeds), args.corpus, methods)]
    procs = [mp.Process(target=work, args=(jobs, args, i)) for i in range(args.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    sys.exit(max(p.exitcode or 0 for p in procs))


if __name__ == "__main__":
    main()
