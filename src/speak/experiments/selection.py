"""Validation selects, test reports (SPEC section 6): choosing among candidate methods on validation BPC only.

The chooser gets each run as a :class:`ValidationView`: a read-only mapping that holds the run's identity and its
validation metrics and raises :class:`TestFieldError` for anything else (test BPC, test SF, timings). Only the chosen
candidate's test numbers enter the report; the others' are withheld (:func:`withhold_test`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speak.errors import SpeakError
from speak.experiments.report import _finite

__all__ = ["VALIDATION_FIELDS", "Choice", "TestFieldError", "ValidationView", "choose_lowest_valid_bpc",
           "select", "withhold_test"]

#: What a chooser may read of a run: who it is, and what it scored on the validation split at the end of training.
VALIDATION_FIELDS = frozenset({"method", "corpus", "corpus_name", "seed", "boundary", "preset", "steps",
                               "valid_bpc", "valid_sf", "best_valid_bpc"})


class TestFieldError(KeyError):
    """A chooser asked for a field that is not a validation field."""

    __test__ = False  # not a pytest class


class ValidationView(Mapping[str, Any]):
    """A run record seen through :data:`VALIDATION_FIELDS` only."""

    __slots__ = ("_data",)

    def __init__(self, record: Mapping[str, Any]):
        self._data = {k: record[k] for k in VALIDATION_FIELDS if k in record}

    def __getitem__(self, key: str) -> Any:
        if key not in VALIDATION_FIELDS:
            raise TestFieldError(f"selection reads validation only; {key!r} is not a validation field")
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        if key not in VALIDATION_FIELDS:
            raise TestFieldError(f"selection reads validation only; {key!r} is not a validation field")
        return self._data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ValidationView({self._data!r})"


@dataclass
class Choice:
    """One selection: the candidates, the chosen one, each candidate's score and how it was computed."""

    group: str
    candidates: list[str]
    chosen: str | None
    scores: dict[str, float] = field(default_factory=dict)  # candidate -> score (lower is better)
    runs: dict[str, int] = field(default_factory=dict)  # candidate -> runs scored
    rule: str = ""
    excluded: dict[str, str] = field(default_factory=dict)  # candidate -> why it could not be scored


Chooser = Callable[[str, Sequence[str], Sequence[ValidationView]], Choice]


def choose_lowest_valid_bpc(group: str, candidates: Sequence[str], views: Sequence[ValidationView]) -> Choice:
    """The candidate with the lowest mean validation BPC: per seed the mean over corpora, then the mean over the
    seeds every candidate has on every corpus (so all are scored on the same runs). A candidate with a run
    lacking ``valid_bpc`` is excluded."""
    corpora = sorted({str(v["corpus_name"]) for v in views})
    table: dict[str, dict[tuple[str, int], float]] = {c: {} for c in candidates}
    excluded: dict[str, str] = {}
    for v in views:
        m = str(v["method"])
        if m not in table:
            continue
        val = v.get("valid_bpc")
        if not _finite(val):
            excluded[m] = f"seed {v['seed']} on {v['corpus_name']} has no validation BPC"
            continue
        table[m][(str(v["corpus_name"]), int(v["seed"]))] = float(val)
    scored = [c for c in candidates if c not in excluded and table[c]]
    for c in candidates:
        if c not in excluded and not table[c]:
            excluded[c] = "no finished run"
    seed_sets = [{s for (cn, s) in table[c]} for c in scored]
    seeds = sorted(set.intersection(*seed_sets)) if seed_sets else []
    seeds = [s for s in seeds if all((cn, s) in table[c] for c in scored for cn in corpora)]
    if not scored or not seeds:
        return Choice(group, list(candidates), None, rule="no seed has every candidate on every corpus",
                      excluded=excluded)
    scores = {c: float(np.mean([np.mean([table[c][(cn, s)] for cn in corpora]) for s in seeds])) for c in scored}
    chosen = min(scored, key=lambda c: (scores[c], candidates.index(c)))
    rule = (f"lowest mean validation BPC over {len(corpora)} corpora x seeds {seeds} (each run's valid_bpc at its "
            f"last step)")
    return Choice(group, list(candidates), chosen, scores, {c: len(seeds) * len(corpora) for c in scored}, rule,
                  excluded)


def select(records: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]],
           chooser: Chooser = choose_lowest_valid_bpc) -> list[Choice]:
    """One :class:`Choice` per group of candidate methods; the chooser sees :class:`ValidationView` s only."""
    out = []
    for group, candidates in groups.items():
        if not candidates:
            raise SpeakError(f"selection {group!r} has no candidates")
        views = [ValidationView(r) for r in records if r.get("method") in candidates]
        out.append(chooser(group, list(candidates), views))
    return out


def withhold_test(record: Mapping[str, Any]) -> dict[str, Any]:
    """A candidate that was not chosen: its record without test fields (what results.json keeps of it)."""
    keep = {k: record[k] for k in record if k in VALIDATION_FIELDS or k in ("run_dir", "train_log")}
    keep["test_withheld"] = True
    return keep
