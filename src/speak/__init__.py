"""SPEAK: spiking neurons as an entropy-aware tokenizer, and the spiking language models around it.

Rooms follow the paper's data flow (a lower room never imports a higher one):
neuron -> text -> tokenizer -> lm -> train -> eval -> experiments / integrations -> cli.

The top-level API is small and lazy (``import speak`` loads neither torch nor numba)::

    import speak
    tok = speak.load_tokenizer()          # the embedded default, or load_tokenizer("my_tokenizer/")
    tok.tokenize("In the beginning")      # a list of strings that join back to the text
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# The compiled kernels' parallel loops must not fight torch's OpenMP pool: numba's workqueue layer (a user may
# choose another by setting the variable first).
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

__version__ = "0.1.0"
__all__ = ["SpeakError", "SpeakTokenizer", "__version__", "load_corpus", "load_tokenizer"]

if TYPE_CHECKING:
    from os import PathLike

    from speak.errors import SpeakError
    from speak.text.corpora import load_corpus
    from speak.tokenizer import SpeakTokenizer

_LAZY = {
    "SpeakError": ("speak.errors", "SpeakError"),
    "SpeakTokenizer": ("speak.tokenizer", "SpeakTokenizer"),
    "load_corpus": ("speak.text.corpora", "load_corpus"),
}


def load_tokenizer(path: "str | PathLike[str] | None" = None) -> "SpeakTokenizer":
    """The SPEAK tokenizer in folder `path` (written by `speak fit-tokenizer` or `save_pretrained`), or the embedded
    default when `path` is None."""
    from speak.tokenizer import SpeakTokenizer

    return SpeakTokenizer.default() if path is None else SpeakTokenizer.from_pretrained(path)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'speak' has no attribute {name!r}")
