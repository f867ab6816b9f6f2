"""Named option patches: a method of an experiment grid is a boundary source plus a dict of config overrides
(``--set`` paths into the typed tree of ``speak.train.config``). The base methods come from the boundary-source
registry (one per source, with its defaults); the variants below are SPEAK's ablations (paper Table 3, Table 5)
and the research variants that a committed result table reports (docs/results/). ``speak-theta-X`` is a variant
for any theta in [0, 1].

Two suffixes compose with any of these names (SPEC section 6, the fair comparison):

- ``NAME+SIGNAL``: a training-only signal (:data:`SIGNALS`, e.g. ``+bce-both``: the encoder-BCE head on the
  proxy's / exemplar's boundaries and on DTP-Entropy's entropy targets) given to any learned source, so a SPEAK
  variant that uses one has controls: ``dtp-unigram+bce-both`` next to ``speak-both-bce``.
- ``NAME@VALUE``: the source's own shortening knob (:data:`SF_KNOBS`: exemplar vocabulary, prior, threshold, target
  ratio) set to VALUE, one point of the method's BPC-vs-SF frontier: ``speak@2000``, ``dtp-entropy@0.4``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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
    "SF_KNOBS",
    "SIGNALS",
    "Knob",
    "MethodSpec",
    "base_method",
    "knob_value",
    "resolve_method",
    "sweep_names",
    "training_signals",
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
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
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

# ---------------------------------------------------------------------------------------------- training signals
_BCE = "model.boundary.encoder_bce"
_BCE_TARGETS = "model.boundary.encoder_bce_targets"

#: Training-only signals a learned source's shared layers may get (``NAME+SIGNAL``): the encoder-BCE head
#: (speak.lm.boundaries.learned) on each of its target kinds.
SIGNALS: dict[str, dict[str, Any]] = {
    "bce-proxy": {_BCE: 1.0, _BCE_TARGETS: "proxy"},
    "bce-entropy": {_BCE: 1.0, _BCE_TARGETS: "entropy"},
    "bce-both": {_BCE: 1.0, _BCE_TARGETS: "proxy+entropy"},
}
_SIGNAL_OF_TARGETS = {patch[_BCE_TARGETS]: name for name, patch in SIGNALS.items()}


def training_signals(spec: MethodSpec) -> tuple[str, ...]:
    """The training-only signals (names of :data:`SIGNALS`) that ``spec``'s patch turns on; () for none."""
    if float(spec.patch.get(_BCE, 0.0) or 0.0) <= 0.0:
        return ()
    return (_SIGNAL_OF_TARGETS.get(str(spec.patch.get(_BCE_TARGETS, "proxy")), "bce-other"),)


# ---------------------------------------------------------------------------------------------- SF knobs
@dataclass(frozen=True)
class Knob:
    """A source's own shortening knob: its name, the value's type, the patch setting it, and where its default is
    read from a built config (``TrainConfig``)."""

    name: str
    patch: Callable[[float], dict[str, Any]]
    default: Callable[[Any], float]
    integer: bool = False


def _boundary_option(source: str, key: str) -> Callable[[Any], float]:
    def read(cfg: Any) -> float:
        given = (cfg.model or {}).get("boundary", {}) if isinstance(cfg.model, dict) else {}
        return float(given.get(key, getattr(get_source(source).Options(), key)))
    return read


def _magnet_priors(latin: float) -> dict[str, float]:
    """MAGNET's per-script priors scaled so that Latin's is ``latin`` (the others keep their ratio to it)."""
    from speak.lm.boundaries.magnet import DEFAULT_SCRIPT_PRIORS

    scale = latin / DEFAULT_SCRIPT_PRIORS["latin"]
    return {k: round(min(0.95, v * scale), 6) for k, v in DEFAULT_SCRIPT_PRIORS.items()}


def _magnet_default(cfg: Any) -> float:
    from speak.lm.boundaries.magnet import DEFAULT_SCRIPT_PRIORS

    given = (cfg.model or {}).get("boundary", {}) if isinstance(cfg.model, dict) else {}
    return float(given.get("script_priors", DEFAULT_SCRIPT_PRIORS).get("latin", DEFAULT_SCRIPT_PRIORS["latin"]))


def _exemplar_vocab(v: float) -> dict[str, Any]:
    return {"exemplar_vocab": int(v)}


#: Each learned source's own SF knob (``NAME@VALUE``): exemplar vocabulary (the sources trained on an exemplar),
#: the Binomial prior (MAGNET: Latin's, the other scripts scaled with it), the boundary threshold (DTP-Entropy, BLT),
#: the target ratio (H-Net).
SF_KNOBS: dict[str, Knob] = {
    "dtp-unigram": Knob("exemplar_vocab", _exemplar_vocab, lambda cfg: float(cfg.exemplar_vocab), integer=True),
    "speak": Knob("exemplar_vocab", _exemplar_vocab, lambda cfg: float(cfg.exemplar_vocab), integer=True),
    "dtp-entropy": Knob("threshold", lambda v: {"model.boundary.threshold": float(v)},
                        _boundary_option("dtp-entropy", "threshold")),
    "dtp-gumbel": Knob("prior", lambda v: {"model.boundary.prior": float(v)}, _boundary_option("dtp-gumbel", "prior")),
    "magnet": Knob("prior", lambda v: {"model.boundary.script_priors": _magnet_priors(float(v))}, _magnet_default),
    "hnet": Knob("target_ratio", lambda v: {"model.boundary.target_ratio": float(v)},
                 _boundary_option("hnet", "target_ratio")),
    "blt": Knob("threshold", lambda v: {"model.boundary.threshold": float(v)}, _boundary_option("blt", "threshold")),
}


def _fmt_value(v: float, integer: bool) -> str:
    return str(int(v)) if integer else f"{v:g}"


def base_method(name: str) -> str:
    """The name without its ``@VALUE`` knob suffix (the method whose curve the point lies on)."""
    return name.strip().split("@", 1)[0]


def knob_value(name: str, cfg: Any | None = None) -> float | None:
    """The knob value of a method name: its ``@VALUE``, else the knob's default in ``cfg`` (a built TrainConfig),
    else None."""
    base, sep, value = name.strip().partition("@")
    if sep:
        return float(value)
    knob = SF_KNOBS.get(resolve_method(base).boundary)
    return knob.default(cfg) if knob is not None and cfg is not None else None


def sweep_names(method: str, values: list[float], default: float | None = None) -> list[str]:
    """``method@v`` for each value; the value equal to ``default`` (the knob's value without a suffix) keeps the
    plain name, so its existing runs are reused."""
    knob = SF_KNOBS.get(resolve_method(method).boundary)
    if knob is None:
        raise SpeakError(f"method {method!r} has no SF knob to sweep (sources with one: {', '.join(SF_KNOBS)})")
    out = []
    for v in values:
        name = method if default is not None and float(v) == float(default) else \
            f"{method}@{_fmt_value(float(v), knob.integer)}"
        if name not in out:
            out.append(name)
    return out


def resolve_method(name: str) -> MethodSpec:
    """The spec of a method or variant: a base method, a variant (``speak-theta-X`` accepts any theta in [0, 1]),
    either with ``+SIGNAL`` (a training-only signal) and / or ``@VALUE`` (its SF knob's value)."""
    name = name.strip()
    base, sep, value = name.partition("@")
    if sep:
        spec = resolve_method(base)
        knob = SF_KNOBS.get(spec.boundary)
        if knob is None:
            raise SpeakError(f"method {name!r}: {spec.boundary!r} has no SF knob (sources with one: "
                             f"{', '.join(SF_KNOBS)})")
        try:
            v = float(value)
        except ValueError:
            raise SpeakError(f"method {name!r}: the {knob.name} value {value!r} is not a number") from None
        if not (v > 0 and v == v and v != float("inf")) or (knob.integer and v != int(v)):
            raise SpeakError(f"method {name!r}: {knob.name} must be a positive {'integer' if knob.integer else 'number'}")
        return MethodSpec(name, spec.boundary, {**spec.patch, **knob.patch(v)},
                          f"{spec.label or base} ({knob.name} {_fmt_value(v, knob.integer)})", spec.columns)
    if "+" in name:
        head, _, signal = name.rpartition("+")
        if signal not in SIGNALS:
            raise SpeakError(f"method {name!r}: unknown training signal {signal!r} (known: {', '.join(SIGNALS)})")
        spec = resolve_method(head)
        from speak.lm.boundaries.base import Targets
        from speak.lm.boundaries.learned import LearnedOptions

        cls = get_source(spec.boundary)
        if not issubclass(cls.Options, LearnedOptions):
            raise SpeakError(f"method {name!r}: {spec.boundary!r} is not a learned source with an encoder head")
        if signal != "bce-entropy" and cls.needs is Targets.NONE:
            raise SpeakError(f"method {name!r}: {spec.boundary!r} has no boundary targets for {signal!r}; "
                             f"use +bce-entropy")
        return MethodSpec(name, spec.boundary, {**spec.patch, **SIGNALS[signal]},
                          f"{spec.label or head} + {signal}", spec.columns)
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
    raise SpeakError(f"unknown method {name!r} (known: {known}, speak-theta-X; +SIGNAL, @VALUE)")
