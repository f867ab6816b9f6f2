"""Named option patches: a method of an experiment grid is a boundary source plus a dict of config overrides
(``--set`` paths into the typed tree of ``speak.train.config``). The base methods come from the boundary-source
registry (one per source, with its defaults); the variants below are SPEAK's ablations (paper Table 3, Table 5)
and the research variants that a committed result table reports (docs/results/). ``speak-theta-X`` is a variant
for any theta in [0, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from speak.errors import SpeakError
from speak.lm.boundaries.registry import COMPARE_DEFAULT, EFFICIENCY_PAIR, REFERENCE, get_source, source_names
from speak.tokenizer import TokenizerConfig

__all__ = [
    "ABLATION_VARIANTS",
    "BASE_METHODS",
    "COMPARE_METHODS",
    "EFFICIENCY_METHODS",
    "SPEAK",
    "TABLE3_VARIANTS",
    "TABLE5_VARIANTS",
    "MethodSpec",
    "resolve_method",
]


@dataclass(frozen=True)
class MethodSpec:
    """A method of the grid: its boundary source and config overrides (a named option patch)."""

    name: str
    boundary: str
    patch: dict[str, Any] = field(default_factory=dict)  # --set path -> value
    label: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # Table 3 columns: high-entropy, low-entropy, theta

    @property
    def sets(self) -> tuple[str, ...]:
        """The patch as ``--set key=value`` strings."""
        return tuple(f"{k}={_set_value(v)}" for k, v in self.patch.items())


def _set_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


SPEAK = get_source(REFERENCE).method_name()  # the full SPEAK model: the reference of every table and variant
COMPARE_METHODS = tuple(get_source(n).method_name() for n in COMPARE_DEFAULT)  # `experiment compare`'s default
EFFICIENCY_METHODS = tuple(get_source(n).method_name() for n in EFFICIENCY_PAIR)  # `experiment efficiency`'s
_RESET = "model.boundary.speak.reset_mode"
_THETA = "model.boundary.speak.theta"
_BOUNDED = {"model.boundary.bound_mem_scales": True}
_ENCODER_BCE = {**_BOUNDED, "model.boundary.encoder_bce": 1.0}  # the bounded variant + the encoder-BCE head


def _columns(high: str, low: str, theta: str) -> dict[str, str]:
    return {"high": high, "low": low, "theta": theta}


# One method per registered source, trained with its defaults (Table 1 methods, SPEC section 4, and the floors).
BASE_METHODS: dict[str, MethodSpec] = {
    get_source(n).method_name(): MethodSpec(get_source(n).method_name(), n, label=get_source(n).label)
    for n in source_names()
}
BASE_METHODS[SPEAK] = MethodSpec(SPEAK, REFERENCE, label=get_source(REFERENCE).label,
                                 columns=_columns("Hard reset", "Soft reset", str(TokenizerConfig.theta)))


def _variant(name: str, patch: dict[str, Any], label: str, columns: dict[str, str] | None = None) -> MethodSpec:
    return MethodSpec(name, REFERENCE, dict(patch), label, columns or {})


ABLATION_VARIANTS: dict[str, MethodSpec] = {v.name: v for v in (
    BASE_METHODS[SPEAK],
    # Table 3: reset modes and theta
    _variant("speak-all-hard", {_RESET: "all-hard"}, "All hard reset", _columns("Hard reset", "Hard reset", "-")),
    _variant("speak-all-soft", {_RESET: "all-soft"}, "All soft reset", _columns("Soft reset", "Soft reset", "1.0")),
    _variant("speak-no-reset", {_RESET: "no-reset"}, "No reset", _columns("No reset", "No reset", "0.0")),
    _variant("speak-theta-1.0", {_THETA: 1.0}, "theta 1.0", _columns("Hard reset", "Soft reset", "1.0")),
    _variant("speak-theta-0.6", {_THETA: 0.6}, "theta 0.6", _columns("Hard reset", "Soft reset", "0.6")),
    _variant("speak-theta-0.4", {_THETA: 0.4}, "theta 0.4", _columns("Hard reset", "Soft reset", "0.4")),
    _variant("speak-hard-no-reset", {_RESET: "hard-no-reset"}, "Hard / no reset",
             _columns("Hard reset", "No reset", "0.0")),
    # Table 5: Cao et al.'s original L_mem (no non-target term) and greedy acceptance instead of MH
    _variant("speak-wo-lmem2", {"model.boundary.mem_second_term": False}, "w/o L_mem 2nd term"),
    _variant("speak-wo-mh", {"proxy.greedy": True}, "w/o MH sampling"),
    # Not in the paper (reported in docs/results): the proxy never changes (the exemplar is L_mem's target throughout)
    _variant("speak-fixed-proxy", {"proxy.acceptance": "frozen"}, "proxy fixed"),
    # alpha, beta fixed at their initial values (the standalone setting) instead of learned (GTok)
    _variant("speak-fixed-mem-scales", {"model.boundary.learn_mem_scales": False}, "alpha, beta fixed"),
    # alpha, beta learned (App. C.1) but kept inside the grid the paper searched (MEM_SCALE_GRID)
    _variant("speak-bounded-mem-scales", _BOUNDED, "alpha, beta bounded"),
    # the bounded variant plus the encoder-BCE head on the proxy's boundaries, on DTP-Entropy's targets, or on both
    _variant("speak-encoder-bce", _ENCODER_BCE, "bounded + encoder BCE"),
    _variant("speak-entropy-bce", {**_ENCODER_BCE, "model.boundary.encoder_bce_targets": "entropy"},
             "bounded + entropy BCE"),
    _variant("speak-both-bce", {**_ENCODER_BCE, "model.boundary.encoder_bce_targets": "proxy+entropy"},
             "bounded + proxy and entropy BCE"),
    # L_mem as one mean over all positions instead of the balanced mean
    _variant("speak-mean-lmem", {"model.boundary.mem_balanced": False}, "L_mem unbalanced (one mean)"),
)}

TABLE3_VARIANTS = (SPEAK, "speak-all-hard", "speak-all-soft", "speak-no-reset", "speak-theta-1.0",
                   "speak-theta-0.6", "speak-theta-0.4", "speak-hard-no-reset")
TABLE5_VARIANTS = (SPEAK, "speak-wo-lmem2", "speak-wo-mh")

_THETA_RE = re.compile(r"^speak-theta-([0-9]*\.?[0-9]+)$")


def resolve_method(name: str) -> MethodSpec:
    """The spec of a method or variant (``speak-theta-X`` accepts any theta in [0, 1])."""
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
        return _variant(name, {_THETA: theta}, f"theta {theta}", _columns("Hard reset", "Soft reset", f"{theta}"))
    known = ", ".join(list(BASE_METHODS) + [k for k in ABLATION_VARIANTS if k not in BASE_METHODS])
    raise SpeakError(f"unknown method {name!r} (known: {known}, speak-theta-X)")
