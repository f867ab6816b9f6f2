"""One training run of an experiment grid, through the trainer's Python API (``speak.eval.metrics.train_and_evaluate``,
what ``speak train`` runs), and the names of the paper's methods and SPEAK's ablation variants.

A method name maps to a boundary source plus ``--set``-style overrides (``key=value`` with dotted paths into
``model`` / ``proxy``; the option names are those of ``speak.lm.boundaries.BoundaryConfig`` (``model.boundary.*``),
``speak.tokenizer.TokenizerConfig`` (``model.boundary.speak.*``) and ``speak.train.proxy.ProxyConfig`` (``proxy.*``)).

A run lives in its own folder; its ``metrics.json`` (written atomically at the end) marks it done, so a grid that is
interrupted and started again skips finished runs and resumes unfinished ones from their last checkpoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speak.errors import SpeakError

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

METRICS_FILE = "metrics.json"
TRAIN_LOG = "train_log.csv"


@dataclass(frozen=True)
class MethodSpec:
    """A method of the grid: its boundary source and config overrides."""

    name: str
    boundary: str
    sets: tuple[str, ...] = ()
    label: str = ""
    note: str = ""
    available: bool = True  # False when the option it needs does not exist yet (the variant is skipped)
    columns: dict[str, str] = field(default_factory=dict)  # Table 3 columns: high-entropy, low-entropy, theta


# Table 1 methods (SPEC section 4) and the floors.
BASE_METHODS: dict[str, MethodSpec] = {
    "vanilla": MethodSpec("vanilla", "none", label="Vanilla"),
    "fixed": MethodSpec("fixed", "fixed", label="Fixed-length pooling"),
    "whitespace": MethodSpec("whitespace", "whitespace", label="Whitespace pooling"),
    "dtp-entropy": MethodSpec("dtp-entropy", "dtp-entropy", label="DTP (Entropy)"),
    "dtp-unigram": MethodSpec("dtp-unigram", "dtp-unigram", label="DTP (Unigram)"),
    "dtp-gumbel": MethodSpec("dtp-gumbel", "dtp-gumbel", label="DTP (Gumbel)"),
    "magnet": MethodSpec("magnet", "magnet", label="MAGNET"),
    "speak": MethodSpec("speak", "speak", label="SPEAK",
                        columns={"high": "Hard reset", "low": "Soft reset", "theta": "0.8"}),
}

_RESET = "model.boundary.speak.reset_mode"
_THETA = "model.boundary.speak.theta"
_ENCODER_BCE = ("model.boundary.bound_mem_scales=true", "model.boundary.encoder_bce=1.0")  # the bounded variant + head

# Table 3 (reset modes, theta) and Table 5 (optimisation) variants of SPEAK; the full model is "speak".
ABLATION_VARIANTS: dict[str, MethodSpec] = {
    "speak": BASE_METHODS["speak"],
    "speak-all-hard": MethodSpec("speak-all-hard", "speak", (f"{_RESET}=all-hard",), "All hard reset",
                                 columns={"high": "Hard reset", "low": "Hard reset", "theta": "-"}),
    "speak-all-soft": MethodSpec("speak-all-soft", "speak", (f"{_RESET}=all-soft",), "All soft reset",
                                 columns={"high": "Soft reset", "low": "Soft reset", "theta": "1.0"}),
    "speak-no-reset": MethodSpec("speak-no-reset", "speak", (f"{_RESET}=no-reset",), "No reset",
                                 columns={"high": "No reset", "low": "No reset", "theta": "0.0"}),
    "speak-theta-1.0": MethodSpec("speak-theta-1.0", "speak", (f"{_THETA}=1.0",), "theta 1.0",
                                  columns={"high": "Hard reset", "low": "Soft reset", "theta": "1.0"}),
    "speak-theta-0.6": MethodSpec("speak-theta-0.6", "speak", (f"{_THETA}=0.6",), "theta 0.6",
                                  columns={"high": "Hard reset", "low": "Soft reset", "theta": "0.6"}),
    "speak-theta-0.4": MethodSpec("speak-theta-0.4", "speak", (f"{_THETA}=0.4",), "theta 0.4",
                                  columns={"high": "Hard reset", "low": "Soft reset", "theta": "0.4"}),
    "speak-hard-no-reset": MethodSpec("speak-hard-no-reset", "speak", (f"{_RESET}=hard-no-reset",),
                                      "Hard / no reset",
                                      columns={"high": "Hard reset", "low": "No reset", "theta": "0.0"}),
    # Table 5: Cao et al.'s original L_mem (no non-target term) and greedy acceptance instead of MH.
    "speak-wo-lmem2": MethodSpec("speak-wo-lmem2", "speak", ("model.boundary.mem_second_term=false",),
                                 "w/o L_mem 2nd term"),
    "speak-wo-mh": MethodSpec("speak-wo-mh", "speak", ("proxy.greedy=true",), "w/o MH sampling"),
    # Not in the paper: the proxy never changes (the exemplar is L_mem's target throughout, like DTP-Unigram's).
    "speak-fixed-proxy": MethodSpec("speak-fixed-proxy", "speak", ("proxy.acceptance=frozen",), "proxy fixed"),
    # Not in the paper: L_mem's alpha and beta fixed at 1.2 / 0.6 (the standalone setting) instead of learned (GTok).
    "speak-fixed-mem-scales": MethodSpec("speak-fixed-mem-scales", "speak", ("model.boundary.learn_mem_scales=false",),
                                         "alpha, beta fixed"),
    # Not in the paper: alpha, beta learned (App. C.1) but kept inside the grid the paper searched (MEM_SCALE_GRID).
    "speak-bounded-mem-scales": MethodSpec("speak-bounded-mem-scales", "speak",
                                           ("model.boundary.bound_mem_scales=true",), "alpha, beta bounded"),
    # Not in the paper: the bounded variant plus a BCE that trains the shared pre-layers on the proxy's boundaries
    # through a head of its own (boundary.encoder_bce; docs/decisions.md, "An encoder BCE for SPEAK").
    "speak-encoder-bce": MethodSpec("speak-encoder-bce", "speak", _ENCODER_BCE, "bounded + encoder BCE"),
    # Not in the paper: the same head learns DTP-Entropy's entropy-spike targets instead of the proxy's boundaries.
    "speak-entropy-bce": MethodSpec("speak-entropy-bce", "speak",
                                    (*_ENCODER_BCE, "model.boundary.encoder_bce_targets=entropy"),
                                    "bounded + entropy BCE"),
    # Not in the paper: the head has two outputs, one for the proxy's boundaries and one for the entropy spikes.
    "speak-both-bce": MethodSpec("speak-both-bce", "speak",
                                 (*_ENCODER_BCE, "model.boundary.encoder_bce_targets=proxy+entropy"),
                                 "bounded + proxy and entropy BCE"),
    # Not in the paper: L_mem as one mean over all positions (session 1's default) instead of the balanced mean.
    "speak-mean-lmem": MethodSpec("speak-mean-lmem", "speak", ("model.boundary.mem_balanced=false",),
                                  "L_mem unbalanced (one mean)"),
}

TABLE3_VARIANTS = ("speak", "speak-all-hard", "speak-all-soft", "speak-no-reset", "speak-theta-1.0",
                   "speak-theta-0.6", "speak-theta-0.4", "speak-hard-no-reset")
TABLE5_VARIANTS = ("speak", "speak-wo-lmem2", "speak-wo-mh")

_THETA_RE = re.compile(r"^speak-theta-([0-9]*\.?[0-9]+)$")


def resolve_method(name: str) -> MethodSpec:
    """The spec of a method or ablation variant (``speak-theta-X`` accepts any theta in [0, 1])."""
    name = name.strip()
    if name in BASE_METHODS:
        return BASE_METHODS[name]
    if name in ABLATION_VARIANTS:
        return ABLATION_VARIANTS[name]
    m = _THETA_RE.match(name)
    if m:
        theta = float(m.group(1))
        if not 0.0 <= theta <= 1.0:
            raise SpeakError(f"method {name!r}: theta must lie in [0, 1]")
        return MethodSpec(name, "speak", (f"{_THETA}={theta}",), f"theta {theta}",
                          columns={"high": "Hard reset", "low": "Soft reset", "theta": f"{theta}"})
    known = ", ".join(list(BASE_METHODS) + [k for k in ABLATION_VARIANTS if k not in BASE_METHODS])
    raise SpeakError(f"unknown method {name!r} (known: {known}, speak-theta-X)")


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


def _set_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


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
    if not spec.available:
        raise SpeakError(f"method {method!r} is not available: {spec.note}")
    out_dir = Path(out_dir)
    if (out_dir / METRICS_FILE).is_file():
        record = load_record(out_dir, method=spec.name, corpus=corpus, seed=seed)
        record["reused"] = True
        return record
    from speak.eval.metrics import train_and_evaluate
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
