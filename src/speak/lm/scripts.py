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
# Upper bound of a per-character boundary rate converted from a per-byte one: a token of fewer than two characters
# on average is no shortening a prior should ask for (0.1 per byte x 3-byte characters asks for 0.3, kept; 0.2 x 3
# = 0.6 is capped).
MAX_CHAR_PRIOR = 0.5
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


def utf8_widths(alphabet: Sequence[str]) -> Tensor:
    """Vocabulary id -> UTF-8 bytes of the character: [V] float32 (1 for multi-character entries like ``<pad>``)."""
    return torch.tensor([len(ch.encode("utf-8")) if len(ch) == 1 else 1 for ch in alphabet], dtype=torch.float32)


def char_priors(byte_priors: Tensor, widths: Tensor, script_ids: Tensor, mask: Tensor | None = None,
                cap: float = MAX_CHAR_PRIOR) -> Tensor:
    """MAGNET's per-byte boundary rates as per-character rates, per sequence and script: [B, S].

        p_char(b, s) = min(cap, p_byte(s) * (UTF-8 bytes of b's positions of script s) / (number of those positions))

    MAGNET (Ahia et al. 2024) is a byte-level model: its prior p asks for p boundaries per byte. Over characters the
    same tokens are p * k per character for a script whose characters average k bytes (Hebrew letters 2, Devanagari
    3; the inherited spaces and punctuation of a script's spans count with their own 1 byte). The mean is over the
    sequence's own characters, so it is frequency-weighted. ``byte_priors`` [S]; ``widths`` [B, L] UTF-8 bytes of
    each position (:func:`utf8_widths` indexed by the characters); ``script_ids`` [B, L]; ``mask`` [B, L] (1 =
    counts). Scripts absent from a sequence keep their byte prior (they contribute nothing to the loss).
    """
    S = byte_priors.shape[0]
    m = torch.ones_like(widths, dtype=torch.float32) if mask is None else mask.float()  # [B, L]
    onehot = torch.nn.functional.one_hot(script_ids, S).float() * m.unsqueeze(-1)  # [B, L, S]
    nbytes = torch.einsum("bl,bls->bs", widths.float(), onehot)  # [B, S]
    nchars = onehot.sum(dim=1)  # [B, S]
    mean_width = torch.where(nchars > 0, nbytes / nchars.clamp_min(1.0), torch.ones_like(nbytes))  # [B, S]
    return (byte_priors.float().unsqueeze(0) * mean_width).clamp(max=cap)  # [B, S]


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
