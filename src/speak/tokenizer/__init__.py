"""The SPEAK tokenizer (paper Eq. 2-11): heads T and C around the neuron, lookup inference, the artifact.

Names are imported lazily so that `speak.tokenizer.fast` (numpy + numba only) can be used without loading torch.
"""

from importlib import import_module

_EXPORTS = {
    "TokenizerConfig": "speak.tokenizer.config",
    "SpeakTokenizerNet": "speak.tokenizer.model",
    "TokenizerOutput": "speak.tokenizer.model",
    "SpeakTokenizer": "speak.tokenizer.pretrained",
    "default_tokenizer_dir": "speak.tokenizer.fast",
    "FastSpeakTokenizer": "speak.tokenizer.fast",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'speak.tokenizer' has no attribute {name!r}")
