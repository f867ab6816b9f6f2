"""Boundary sources for the hourglass LM: one module per source, a registry of names (``base`` holds the interface,
``registry`` the names; docs/adding-a-boundary-source.md walks through an example).

The registry is light (no torch), so the CLI can list the sources; everything else is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from speak.lm.boundaries.registry import get_source, make_boundary_source, register, source_names

_LAZY = {
    "BoundaryConfig": "base", "BoundaryOutput": "base", "BoundarySource": "base", "SourceOptions": "base",
    "Targets": "base", "BoundaryPredictor": "learned", "LearnedOptions": "learned", "LearnedSource": "learned",
    "gumbel_sigmoid_hard": "learned", "straight_through": "learned",
}

__all__ = [*_LAZY, "get_source", "make_boundary_source", "register", "source_names"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"speak.lm.boundaries.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'speak.lm.boundaries' has no attribute {name!r}")
