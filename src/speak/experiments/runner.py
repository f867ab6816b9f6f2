"""One training run of an experiment grid, through ``speak.experiments.pipeline.train_and_evaluate`` (what
``speak train`` runs). A method name maps to a boundary source plus named option patches
(``speak.experiments.variants``).

A run lives in its own folder; its ``metrics.json`` (written atomically at the end) marks it done, so a grid that is
interrupted and started again skips finished runs and resumes unfinished ones from their last checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from speak.errors import SpeakError
from speak.experiments.variants import (
    ABLATION_VARIANTS,
    BASE_METHODS,
    TABLE3_VARIANTS,
    TABLE5_VARIANTS,
    MethodSpec,
    _set_value,
    resolve_method,
)
from speak.train.runs import METRICS_FILE
from speak.train.trainer import TRAIN_LOG

__all__ = [
    "ABLATION_VARIANTS",
    "BASE_METHODS",
    "METRICS_FILE",
    "MethodSpec",
    "corpus_name",
    "load_record",
    "resolve_method",
    "run_dir_for",
    "run_training",
]

def corpus_name(corpus: str) -> str:
    """A short display / folder name for a corpus spec (a path's file name without .txt/.xz/.gz)."""
    text = str(corpus)
    if "/" in text or "\\" in text or text.endswith((".txt", ".xz", ".gz")):
        name = Path(text).name
        for ext in (".xz", ".gz", ".bz2", ".txt"):
            if name.endswith(ext):
                name = name[: -len(ext)]
        text = name or text
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "corpus"


def run_dir_for(out_dir: str | Path, method: str, corpus: str, seed: int) -> Path:
    """Where a grid keeps one run: ``OUT/runs/<corpus>/<method>/seed<seed>``."""
    return Path(out_dir) / "runs" / corpus_name(corpus) / method / f"seed{int(seed)}"


def _as_sets(extra: Iterable[str] | Mapping[str, Any] | None) -> list[str]:
    if extra is None:
        return []
    if isinstance(extra, Mapping):
        return [f"{k}={_set_value(v)}" for k, v in extra.items()]
    return [str(x) for x in extra]


def load_record(run_dir: str | Path, *, method: str | None = None, corpus: str | None = None,
                seed: int | None = None) -> dict[str, Any]:
    """The record of a finished run: its metrics.json plus method / corpus / seed / run_dir / train_log."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpeakError(f"{run_dir} has no {METRICS_FILE} (the run did not finish)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise SpeakError(f"{path}: unreadable ({err.__class__.__name__})") from None
    record = dict(metrics)
    if method is not None:
        record["method"] = method
    record.setdefault("method", metrics.get("boundary"))
    if corpus is not None:
        record["corpus"] = corpus
    if seed is not None:
        record["seed"] = int(seed)
    record["corpus_name"] = corpus_name(record.get("corpus", ""))
    record["run_dir"] = str(run_dir)
    log = run_dir / TRAIN_LOG
    record["train_log"] = str(log) if log.is_file() else None
    return record


def run_training(
    method: str,
    corpus: str,
    preset: str,
    seed: int,
    steps: int,
    out_dir: str | Path,
    extra_overrides: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    device: str | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Train and evaluate ONE (method, corpus, seed) in ``out_dir`` (the run's own folder); returns its record.

    A run whose ``metrics.json`` exists is not trained again (its record is returned with ``reused = True``); an
    unfinished one continues from its last checkpoint. ``extra_overrides`` are ``key=value`` strings (or a mapping)
    applied after the method's own overrides (e.g. ``batch_size=4``, ``model.d_model=64``).
    """
    spec = resolve_method(method)
    out_dir = Path(out_dir)
    if (out_dir / METRICS_FILE).is_file():
        record = load_record(out_dir, method=spec.name, corpus=corpus, seed=seed)
        record["reused"] = True
        return record
    from speak.experiments.pipeline import train_and_evaluate
    from speak.train.config import load_config

    flags = {"boundary": spec.boundary, "corpus": corpus, "preset": preset, "steps": int(steps),
             "seed": int(seed), "out": str(out_dir), "quiet": True if quiet else None, "device": device}
    sets = list(spec.sets) + _as_sets(extra_overrides)
    cfg = load_config(flags=flags, sets=sets)
    train_and_evaluate(cfg, resume=True)  # resume=True: continue an interrupted run, else start fresh
    record = load_record(out_dir, method=spec.name, corpus=corpus, seed=seed)
    record["overrides"] = sets
    record["reused"] = False
    return record
