"""A grid's runs in N worker processes sharing one output folder: a job queue on the file system.

A worker claims a run by creating ``RUN/.claimed`` exclusively (it holds the worker's pid and host), trains it with
the grid's runner and takes the next unclaimed one. A finished run (``metrics.json``) is never claimed again; a
failed one is recorded in ``RUN/failed.json`` and skipped for the rest of the grid. When the workers are done the
claims of this grid are removed, and at the start the claims of processes that no longer exist (a grid that was
killed) are too, so the same command resumes: unfinished runs continue from their checkpoints, failed ones are
tried again.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speak.errors import SpeakError

__all__ = ["CLAIM_FILE", "Job", "claim", "release_claims", "run_parallel"]

CLAIM_FILE = ".claimed"


@dataclass(frozen=True)
class Job:
    """One run of a grid and its folder."""

    method: str
    corpus: str
    seed: int
    run_dir: Path


def claim(run_dir: Path) -> bool:
    """Create ``run_dir/.claimed`` exclusively (with this process's pid and host); False when another holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(run_dir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
    return True


def _holder(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / CLAIM_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half-written or foreign: treated as stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_claims(jobs: Sequence[Job], *, pids: set[int] | None = None) -> int:
    """Remove the claims of ``jobs`` held by ``pids`` (None: by processes of this host that no longer exist, or
    unreadable ones); returns how many were removed. Claims of live processes elsewhere stay."""
    host = socket.gethostname()
    removed = 0
    for job in jobs:
        holder = _holder(job.run_dir)
        if holder is None:
            continue
        pid = holder.get("pid")
        if pids is not None:
            stale = isinstance(pid, int) and pid in pids
        else:
            stale = not isinstance(pid, int) or (holder.get("host") == host and not _alive(pid))
        if stale:
            (job.run_dir / CLAIM_FILE).unlink(missing_ok=True)
            removed += 1
    return removed


RunOne = Callable[[Job], str | None]  # trains one job; returns a failure note or None


def _work(jobs: Sequence[Job], run_one: RunOne, done: Callable[[Job], bool], threads: int, index: int,
          quiet: bool) -> None:
    """A worker: claim and run jobs until none is left. Exit 0, or 3 when it stopped on an unexpected error."""
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    for job in jobs:
        if done(job) or not claim(job.run_dir):
            continue
        try:
            note = run_one(job)
        except Exception:  # run_one records a failed run itself; anything else is a bug: stop this worker loudly
            traceback.print_exc()
            print(f"[worker {index}] stopped on an unexpected error in {job.method} {job.corpus} seed {job.seed}",
                  file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(3)
        if note and not quiet:
            print(f"[worker {index}] {note}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_parallel(jobs: Sequence[Job], run_one: RunOne, done: Callable[[Job], bool], *, workers: int,
                 quiet: bool = False) -> None:
    """Run ``jobs`` in ``workers`` processes (forked: ``run_one`` may be any callable); each process gets
    ``cpu_count // workers`` torch threads. Raises SpeakError when a worker stopped on an unexpected error."""
    if workers < 1:
        raise SpeakError(f"--workers must be at least 1, got {workers}")
    release_claims(jobs)  # claims of a grid that was killed
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_work, args=(list(jobs), run_one, done, threads, i, quiet), daemon=False)
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:
        for p in procs:  # Ctrl-C: the workers got the signal too; wait for them, then free their claims
            if p.is_alive():
                p.join()
        release_claims(jobs, pids={p.pid for p in procs if p.pid is not None})
    broken = [i for i, p in enumerate(procs) if p.exitcode not in (0, None)]
    if broken:
        raise SpeakError(f"worker(s) {', '.join(map(str, broken))} stopped on an unexpected error (traceback "
                         f"above); finished runs are kept, run the command again to resume")
