"""The boundary-source registry: name -> source class. The CLI help and the experiment method lists come from here.

Adding a source = one module with a :class:`~speak.lm.boundaries.base.BoundarySource` subclass + one line in
``BUILTIN`` (or :func:`register` from anywhere, e.g. a test or a plug-in). Built-in modules are imported on first use.
"""

from __future__ import annotations

import importlib

from speak.errors import SpeakError

# name -> "module:Class" (one line per source; the module owns everything about it)
BUILTIN: dict[str, str] = {
    "none": "speak.lm.boundaries.none:NoBoundaries",
    "fixed": "speak.lm.boundaries.fixed:FixedBoundaries",
    "whitespace": "speak.lm.boundaries.whitespace:WhitespaceBoundaries",
    "dtp-entropy": "speak.lm.boundaries.dtp:DTPEntropy",
    "dtp-unigram": "speak.lm.boundaries.dtp:DTPUnigram",
    "dtp-gumbel": "speak.lm.boundaries.dtp:DTPGumbel",
    "magnet": "speak.lm.boundaries.magnet:Magnet",
    "speak": "speak.lm.boundaries.speak:SpeakBoundaries",
    "hnet": "speak.lm.boundaries.hnet:HNetChunking",
    "blt": "speak.lm.boundaries.blt:BLTPatching",
}

DEFAULT = "none"  # a run's source when none is named

# Named groups of sources for the defaults of the experiments and benchmarks
REFERENCE = "speak"  # the method every experiment table tests the others against
COMPARE_DEFAULT = ("none", "dtp-entropy", "dtp-unigram", "magnet", "speak")  # Table 1's main comparison
EFFICIENCY_PAIR = ("magnet", "speak")  # Table 4: the reference's cost (first) against SPEAK's
BENCH_PAIR = ("speak", "dtp-unigram")  # `speak bench boundaries`: SPEAK's s/step against DTP-Unigram's (<= 1.10)

_LOADED: dict[str, type] = {}


def register(cls: type) -> type:
    """Register a source class under ``cls.name`` (usable as a decorator); a name may be registered once."""
    name = getattr(cls, "name", "")
    if not name:
        raise SpeakError(f"boundary source {cls.__name__} has no name")
    if name in BUILTIN or _LOADED.get(name, cls) is not cls:
        raise SpeakError(f"boundary source {name!r} is already registered")
    _LOADED[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a source registered with :func:`register` (built-ins stay)."""
    if name not in BUILTIN:
        _LOADED.pop(name, None)


def source_names() -> tuple[str, ...]:
    """Every registered name: the built-ins in their order, then the others in registration order."""
    return tuple(BUILTIN) + tuple(n for n in _LOADED if n not in BUILTIN)


def get_source(name: str) -> type:
    """The source class of ``name``; unknown -> SpeakError listing the valid names."""
    cls = _LOADED.get(name)
    if cls is not None:
        return cls
    if name not in BUILTIN:
        raise SpeakError(f"unknown boundary source {name!r}; valid: {', '.join(sorted(source_names()))}")
    module, _, attr = BUILTIN[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    _LOADED[name] = cls
    return cls


def all_sources() -> tuple[type, ...]:
    """Every source class, in :func:`source_names` order."""
    return tuple(get_source(n) for n in source_names())


def make_boundary_source(cfg, d_model: int, vocab_size: int, alphabet=None):
    """Build the source of a :class:`~speak.lm.boundaries.base.BoundaryConfig` (``alphabet``: id -> character)."""
    cfg.validate()
    cls = get_source(cfg.name)
    return cls(cfg.options, d_model, vocab_size, alphabet)
