"""Tokenize(c, s) of the paper (Eq. 5): cut a character sequence where the neuron spikes.

Convention (SPEC section 2): ``spikes[t] = 1`` means position ``t`` is the **last** character of its token, and the
end of the text closes the last token whether or not the neuron fired there. Tokens are slices of the original
string, so ``"".join(segment(text, spikes)) == text`` always holds and no token is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def as_spike_array(spikes: Any) -> np.ndarray:
    """Turn a list, numpy array or torch tensor of 0/1 (or bool / float) values into a 1-D bool array.

    Any non-zero value counts as a spike. torch tensors are converted via numpy (no torch import here).
    """
    if hasattr(spikes, "detach") and hasattr(spikes, "cpu"):  # torch.Tensor
        spikes = spikes.detach().cpu().numpy()
    arr = np.asarray(spikes)
    if arr.ndim != 1:
        raise ValueError(f"spikes must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.size == 0:
        return np.zeros(0, dtype=bool)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"spikes must be numeric or boolean, got dtype {arr.dtype}")
    return arr != 0


def _ends(spikes: np.ndarray, n: int) -> np.ndarray:
    """Exclusive end offsets of the tokens of an ``n``-character text (Eq. 5), the text's end included."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(spikes[: n - 1]) + 1  # a spike at t closes the token at t, i.e. ends it at t + 1
    return np.append(ends, n).astype(np.int64, copy=False)


def token_offsets(spikes: Any, n: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` (end exclusive) of each token of an ``n``-character text under Eq. 5.

    Only the first ``n`` spike entries count (so a padded row can be passed); ``n`` defaults to ``len(spikes)``.
    The offsets tile ``[0, n)`` exactly, without gaps or empty spans.
    """
    s = as_spike_array(spikes)
    if n is None:
        n = s.size
    if n < 0:
        raise ValueError("n must be >= 0")
    if s.size < n:
        raise ValueError(f"spikes has {s.size} entries, fewer than the {n} characters to segment")
    ends = _ends(s, n)
    starts = np.concatenate(([0], ends[:-1])) if ends.size else ends
    return list(zip(starts.tolist(), ends.tolist()))


def segment(text: str, spikes: Any) -> list[str]:
    """Eq. 5 ``Tokenize(c, s)``: split ``text`` after each position whose spike is 1; the end closes the last token.

    Lossless (``"".join(tokens) == text``), no empty tokens, ``[]`` for the empty text. ``spikes`` must have exactly
    ``len(text)`` entries (list, numpy array or torch tensor); a length mismatch raises ``ValueError``.
    """
    s = as_spike_array(spikes)
    if s.size != len(text):
        raise ValueError(f"spikes has {s.size} entries but the text has {len(text)} characters")
    ends = _ends(s, len(text)).tolist()
    starts = [0] + ends[:-1]
    return [text[a:b] for a, b in zip(starts, ends)]


def segment_batch(texts: Sequence[str], spikes_batch: Any) -> list[list[str]]:
    """:func:`segment` for a batch. ``spikes_batch`` is a sequence of rows or a padded ``[B, L]`` array/tensor;
    only the first ``len(texts[b])`` entries of row ``b`` count (padding is ignored)."""
    if hasattr(spikes_batch, "detach") and hasattr(spikes_batch, "cpu"):
        spikes_batch = spikes_batch.detach().cpu().numpy()
    if len(spikes_batch) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(spikes_batch)} spike rows")
    out = []
    for b, text in enumerate(texts):
        row = as_spike_array(spikes_batch[b])
        if row.size < len(text):
            raise ValueError(f"spike row {b} has {row.size} entries, fewer than its text's {len(text)} characters")
        out.append(segment(text, row[: len(text)]))
    return out


def join_tokens(tokens: Sequence[str], sep: str = "|") -> str:
    """One line of the text format: tokens joined by `sep`. Inside a token, a backslash and every character of `sep`
    get a backslash before them, so any text round-trips through :func:`split_tokens`. `sep` must be non-empty and
    hold no backslash or newline."""
    if not sep or "\\" in sep or "\n" in sep:
        raise ValueError(f"separator {sep!r} must be non-empty, without a backslash or a newline")
    special = set(sep) | {"\\"}
    return sep.join("".join("\\" + c if c in special else c for c in t) for t in tokens)


def split_tokens(row: str, sep: str = "|") -> list[str]:
    """The tokens of a line written by :func:`join_tokens` (its inverse; an empty row has no tokens)."""
    if not row:
        return []
    tokens, cur, i = [], [], 0
    while i < len(row):
        if row[i] == "\\" and i + 1 < len(row):
            cur.append(row[i + 1])
            i += 2
        elif row.startswith(sep, i):
            tokens.append("".join(cur))
            cur, i = [], i + len(sep)
        else:
            cur.append(row[i])
            i += 1
    tokens.append("".join(cur))
    return tokens


def spikes_from_tokens(tokens: Sequence[str]) -> np.ndarray:
    """Inverse of :func:`segment`: a bool array over ``"".join(tokens)`` that is True at each token's last character
    (so the last entry is True when there is any text). Empty tokens cannot be expressed and raise ``ValueError``."""
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    if lengths.size and lengths.min() == 0:
        raise ValueError("empty tokens have no position to spike at; Eq. 5 never produces them")
    ends = np.cumsum(lengths)
    n = int(ends[-1]) if ends.size else 0
    spikes = np.zeros(n, dtype=bool)
    spikes[ends - 1] = True
    return spikes


def shortening_factor(n_chars: int, n_tokens: int) -> float:
    """SF = characters / tokens (SPEC section 2), reported with every BPC. ``nan`` for an empty evaluation."""
    if n_chars < 0 or n_tokens < 0:
        raise ValueError("counts must be non-negative")
    if n_tokens == 0:
        if n_chars == 0:
            return float("nan")
        raise ValueError(f"{n_chars} characters but 0 tokens: Eq. 5 always closes at least one token")
    return n_chars / n_tokens


ANCHORS = ("start", "end")


def anchor_boundaries(spikes: Any, anchor: str = "start") -> np.ndarray:
    """Place a segmenter's boundaries for a causal tokenizer (the convention of speak.train.mimic).

    `spikes` mark each piece's last character (Eq. 5). A causal tokenizer cannot know at the "e" of "the" that a
    space follows; the boundary between two pieces becomes observable at the first character of the next piece.
    `anchor="start"` moves every boundary there (" the| beginning" -> "the |beginning": same number of tokens);
    `anchor="end"` keeps them where they are.
    """
    s = as_spike_array(spikes)
    if anchor == "end":
        return s
    if anchor != "start":
        raise ValueError(f"unknown anchor {anchor!r}; valid: {', '.join(ANCHORS)}")
    out = np.zeros_like(s)
    out[1:] = s[:-1]  # a piece that ends at t - 1 means the next one starts (is observable) at t
    return out
