"""text8-style cleaning (the preprocessing DTP applies to wiki40b, SPEC section 4), as an option.

Steps, in order:

1. Unicode NFC, then lower-case (then NFC again: lower-casing can decompose, e.g. "İ" -> "i" + U+0307).
2. Drop the combining marks (category Mn) that remain after composition: they are diacritics riding on a letter
   (Hebrew points, a stray accent), so deleting them keeps the word whole where turning them into a space would not.
3. Spell out ASCII digits in the language, each as its own word: "1984" -> " one nine eight four ".
4. Every character outside the language's alphabet becomes a space; runs of spaces collapse to one.

The result contains only the alphabet and single spaces (plus ``\\n`` with ``keep_newlines=True``), as text8 does.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from speak.errors import SpeakError

_LATIN = "abcdefghijklmnopqrstuvwxyz"


def _vietnamese_letters() -> str:
    """Vietnamese letters: a-z, đ, and each vowel (a ă â e ê i o ô ơ u ư y) with each of the six tones, NFC."""
    tones = ["", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"]  # level, huyền, sắc, hỏi, ngã, nặng
    vowels = "aăâeêioôơuưy"
    composed = {unicodedata.normalize("NFC", v + t) for v in vowels for t in tones}
    return _LATIN + "đ" + "".join(sorted(composed - set(_LATIN)))


#: Per language: the alphabet kept (after lower-casing) and the words for the digits 0-9.
LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "en": (
        _LATIN,
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ),
    "fi": (
        _LATIN + "åäöšž",
        ("nolla", "yksi", "kaksi", "kolme", "neljä", "viisi", "kuusi", "seitsemän", "kahdeksan", "yhdeksän"),
    ),
    "de": (
        _LATIN + "äöüß",
        ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
    ),
    "vi": (
        _vietnamese_letters(),
        ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"),
    ),
    "he": (
        "".join(chr(c) for c in range(0x05D0, 0x05EB)),  # alef .. tav, final forms included
        ("אפס", "אחת", "שתיים", "שלוש", "ארבע", "חמש", "שש", "שבע", "שמונה", "תשע"),
    ),
}


def supported_languages() -> list[str]:
    """Language codes :func:`clean_text` knows."""
    return sorted(LANGUAGES)


@lru_cache(maxsize=None)
def _compiled(lang: str, keep_newlines: bool) -> tuple[dict[int, str], re.Pattern[str]]:
    """The digit translation table and the 'not in the alphabet' pattern for one language."""
    alphabet, digits = LANGUAGES[lang]
    table = {ord(str(d)): f" {word} " for d, word in enumerate(digits)}
    keep = re.escape(alphabet) + ("\n" if keep_newlines else "")
    # Everything outside the alphabet (spaces included) is a separator; each run of separators becomes one space.
    pattern = re.compile(f"[^{keep}]+")
    return table, pattern


def clean_text(text: str, lang: str = "en", keep_newlines: bool = False) -> str:
    """Clean ``text`` the text8 way for ``lang`` (see the module docstring); unknown ``lang`` -> SpeakError.

    ``keep_newlines=True`` keeps line breaks (one paragraph per line) instead of turning them into spaces;
    spaces next to a newline are removed then.
    """
    if lang not in LANGUAGES:
        raise SpeakError(f"no text cleaner for language {lang!r}; supported: {', '.join(supported_languages())}")
    table, pattern = _compiled(lang, keep_newlines)
    text = unicodedata.normalize("NFC", text).lower()
    text = unicodedata.normalize("NFC", text)
    marks = {c for c in set(text) if unicodedata.category(c) == "Mn"}
    if marks:
        text = text.translate({ord(c): None for c in marks})
    text = text.translate(table)
    text = pattern.sub(" ", text)
    if keep_newlines:
        text = re.sub(r" *\n[ \n]*", "\n", text)  # one newline per break, no spaces around it, no blank lines
    return text
