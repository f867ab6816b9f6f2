"""Unicode script detection for MAGNET's per-script boundary predictors.

A character's script comes from the prefix of its Unicode name (``unicodedata.name``): ``LATIN ...``,
``CYRILLIC ...``, ``HEBREW ...``, ``ARABIC ...``, ``DEVANAGARI ...``, ``CJK UNIFIED/COMPATIBILITY IDEOGRAPH ...``
(Han). Only letters and combining marks (Unicode categories L* and M*) carry a script of their own; a letter of any
other script is ``other``. Everything else (digits, punctuation, spaces, symbols, multi-character vocabulary
entries such as ``<pad>``/``<unk>``) has no script of its own: in a sequence it inherits the script of the most
recent preceding letter, or is ``common`` before the first letter. The inheritance looks only backwards, so it is
causal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import torch
from torch import Tensor

SCRIPTS: tuple[str, ...] = ("common", "latin", "cyrillic", "hebrew", "arabic", "devanagari", "han", "other")
SCRIPT_INDEX: dict[str, int] = {name: i for i, name in enumerate(SCRIPTS)}
COMMON = SCRIPT_INDEX["common"]
NO_SCRIPT = -1  # vocabulary entries that inherit the preceding letter's script

_NAME_PREFIXES: tuple[tuple[str, str], ...] = (
    ("LATIN", "latin"),
    ("CYRILLIC", "cyrillic"),
    ("HEBREW", "hebrew"),
    ("ARABIC", "arabic"),
    ("DEVANAGARI", "devanagari"),
    ("CJK UNIFIED IDEOGRAPH", "han"),
    ("CJK COMPATIBILITY IDEOGRAPH", "han"),
)


def char_script(ch: str) -> str | None:
    """Script of one character, or None when it has none of its own (digit, punctuation, space, ...)."""
    if len(ch) != 1:
        return None
    if unicodedata.category(ch)[0] not in ("L", "M"):
        return None
    name = unicodedata.name(ch, "")
    for prefix, script in _NAME_PREFIXES:
        if name.startswith(prefix):
            return script
    if unicodedata.category(ch)[0] == "M":  # a generic combining mark (e.g. COMBINING ACUTE ACCENT) inherits
        return None
    return "other"


def script_table(alphabet: Sequence[str]) -> Tensor:
    """Vocabulary id -> script index (``NO_SCRIPT`` = inherits): [V] int64, built once at construction."""
    ids = [SCRIPT_INDEX[s] if (s := char_script(ch)) is not None else NO_SCRIPT for ch in alphabet]
    return torch.tensor(ids, dtype=torch.long)


def sequence_scripts(chars: Tensor, table: Tensor) -> Tensor:
    """Script index per position with backward inheritance: chars [B, L] -> [B, L] int64."""
    own = table[chars]  # [B, L]; NO_SCRIPT for non-letters
    L = chars.shape[1]
    pos = torch.arange(L, device=chars.device).expand_as(own)  # [B, L]
    last_letter = torch.where(own >= 0, pos, torch.full_like(pos, -1)).cummax(dim=1).values  # [B, L]
    inherited = own.gather(1, last_letter.clamp_min(0))  # [B, L]
    return torch.where(last_letter >= 0, inherited, torch.full_like(own, COMMON))  # [B, L]


def text_scripts(text: str) -> list[str]:
    """Script name per character of a string (same rules as :func:`sequence_scripts`); for inspection and tests."""
    out: list[str] = []
    current = "common"
    for ch in text:
        s = char_script(ch)
        if s is not None:
            current = s
        out.append(current)
    return out
