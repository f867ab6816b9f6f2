"""CharVocab: deterministic ids, fast encoding, JSON round trip and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speak.errors import SpeakError
from speak.text import PAD_ID, UNK_ID, CharVocab, code_points

ANY_TEXT = st.text(
    alphabet=st.one_of(st.characters(), st.characters(codec=None, categories=["Cc", "Cs", "Mn"])), max_size=40
)


def test_ids_by_frequency_then_code_point():
    v = CharVocab.build(["bbbaac", "cd"])
    # b:3, a:2, c:2, d:1 -> ties (a, c) by code point
    assert v.chars == ["b", "a", "c", "d"]
    assert v.counts == [3, 2, 2, 1]
    assert len(v) == 6
    assert v.encode("abcdz") == [3, 2, 4, 5, UNK_ID]
    assert v.id_of("b") == 2 and v.char_of(0) == "<pad>" and v.char_of(1) == "<unk>"
    assert "a" in v and "z" not in v and "ab" not in v and 3 not in v


def test_build_is_deterministic_and_order_independent():
    texts = ["the quick brown fox", "jumps over", "the lazy dog ✓"]
    assert CharVocab.build(texts) == CharVocab.build(list(reversed(texts)))
    assert CharVocab.build("".join(texts)) == CharVocab.build(texts)


def test_min_count_and_max_size():
    v = CharVocab.build(["aaabbc"], min_count=2)
    assert v.chars == ["a", "b"] and v.encode("c") == [UNK_ID]
    v = CharVocab.build(["aaabbc"], max_size=3)
    assert len(v) == 3 and v.chars == ["a"]
    with pytest.raises(ValueError):
        CharVocab.build(["a"], max_size=1)
    with pytest.raises(ValueError):
        CharVocab.build(["a"], min_count=0)


def test_empty_corpus_and_empty_text():
    v = CharVocab.build([])
    assert len(v) == 2
    assert v.encode("") == [] and v.encode_array("").shape == (0,)
    assert v.encode_array("xy").tolist() == [UNK_ID, UNK_ID]
    assert v.decode([]) == ""


@pytest.mark.parametrize(
    "text",
    [
        "e\u0301 n\u0303",  # combining marks: a grapheme spans two positions
        "👍🏽 👨‍👩‍👧 🇫🇮",  # astral plane, modifiers, ZWJ sequences, flags
        "中文字符 한국어",
        "שלום עולם مرحبا",  # RTL
        "\x00\x07\t\r\n\x7f\u200b\ufeff",  # controls and invisibles
        "lone \ud800 surrogate",
    ],
)
def test_every_unicode_string(text):
    v = CharVocab.build([text])
    ids = v.encode(text)
    assert len(ids) == len(text) and UNK_ID not in ids and PAD_ID not in ids
    assert v.encode_array(text).tolist() == ids
    assert v.decode(ids) == text


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, ANY_TEXT)
def test_encode_decode_property(corpus, text):
    v = CharVocab.build([corpus])
    ids = v.encode(text)
    assert v.encode_array(text).dtype == np.int64
    assert v.encode_array(text).tolist() == ids
    assert len(ids) == len(text)
    assert v.decode(ids, unk="\x00") == "".join(c if c in v else "\x00" for c in text)
    assert v.decode(v.encode(corpus)) == corpus


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_json_round_trip(corpus):
    v = CharVocab.build([corpus])
    data = json.loads(json.dumps(v.to_dict()))
    w = CharVocab.from_dict(data)
    assert w == v and w.counts == v.counts
    assert w.encode(corpus) == v.encode(corpus)


def test_decode_specials_and_range():
    v = CharVocab.build(["ab"])
    assert v.decode([2, 0, 1, 3]) == "a\ufffdb"
    assert v.decode([2, 0, 1, 3], skip_pad=False, unk="?") == "a<pad>?b"
    with pytest.raises(ValueError):
        v.decode([99])
    torch = pytest.importorskip("torch")
    assert v.decode(torch.tensor([2, 3])) == "ab"


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "expected a JSON object"),
        ({"format": "other", "chars": []}, "unknown format"),
        ({"version": 9, "chars": []}, "unsupported version"),
        ({"specials": ["<unk>", "<pad>"], "chars": []}, "specials"),
        ({}, "'chars' is missing"),
        ({"chars": "abc"}, "not a list"),
        ({"chars": ["ab"]}, "not a single character"),
        ({"chars": [1]}, "not a single character"),
        ({"chars": ["a", "a"]}, "appears twice"),
        ({"chars": ["a"], "counts": [1, 2]}, "one entry per character"),
        ({"chars": ["a"], "counts": [-1]}, "non-negative"),
    ],
)
def test_from_dict_validates(bad, message):
    with pytest.raises(SpeakError, match=message):
        CharVocab.from_dict(bad)


def test_encode_array_matches_encode_on_large_text():
    text = ("The quick brown fox jumps over the lazy dog. Ünïcödé 中文 👍\n" * 4_000)
    v = CharVocab.build([text[:5000]], max_size=20)  # some characters unknown
    ids = v.encode_array(text)
    assert ids.shape == (len(text),)
    assert np.array_equal(ids, np.asarray(v.encode(text)))
    assert np.array_equal(code_points("a😀"), np.array([97, 0x1F600], dtype=np.uint32))
