"""The text8-style cleaner (DTP's preprocessing for wiki40b), per language."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speak.errors import SpeakError
from speak.text import clean_text, supported_languages
from speak.text.clean import LANGUAGES


def test_english_is_text8_like():
    assert clean_text("Hello, World! In 1984 (aged 7)...", "en") == "hello world in one nine eight four aged seven "
    assert clean_text("  Anarchism\toriginated\n", "en") == " anarchism originated "
    assert clean_text("café naïve", "en") == "caf na ve"  # accented letters are outside the English alphabet


@pytest.mark.parametrize(
    "lang, text, expected",
    [
        ("de", "Größe: 3 Äpfel, ÜBER 0!", "größe drei äpfel über null "),
        ("fi", "Hyvää päivää, 4 kertaa Šakki", "hyvää päivää neljä kertaa šakki"),
        ("vi", "Xin chào 2 thế giới. Đường 5", "xin chào hai thế giới đường năm "),
        ("he", "בְּרֵאשִׁית בָּרָא 3 (Genesis)", "בראשית ברא שלוש "),
    ],
)
def test_languages(lang, text, expected):
    assert clean_text(text, lang) == expected


def test_decomposed_input_is_composed_first():
    # "ü" as u + combining diaeresis, Vietnamese tone marks as combining characters
    assert clean_text("u\u0308ber", "de") == "über"
    assert clean_text("Vie\u0302\u0323t", "vi") == "việt"


def test_keep_newlines():
    assert clean_text("One, two.\n\n Three!  \nfour", "en", keep_newlines=True) == "one two\nthree\nfour"


def test_unknown_language():
    with pytest.raises(SpeakError, match="supported: de, en, fi, he, vi"):
        clean_text("x", "xx")
    assert supported_languages() == ["de", "en", "fi", "he", "vi"]


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_digit_words_survive_their_own_whitelist(lang):
    alphabet, digits = LANGUAGES[lang]
    assert len(digits) == 10
    for word in digits:
        assert set(word) <= set(alphabet), (lang, word)
    assert clean_text("0123456789", lang) == " " + " ".join(digits) + " "


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(sorted(LANGUAGES)))
def test_output_alphabet_and_idempotence(text, lang):
    alphabet = set(LANGUAGES[lang][0]) | {" "}
    out = clean_text(text, lang)
    assert set(out) <= alphabet
    assert "  " not in out
    assert clean_text(out, lang) == out
