"""Eq. 5 Tokenize(c, s): losslessness and the boundary convention, over arbitrary Unicode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speak.text import segment, segment_batch, shortening_factor, spikes_from_tokens, token_offsets

# Arbitrary code points: astral plane, combining marks, controls, RTL, lone surrogates are all fair game for a
# Python str; st.characters() excludes surrogates by default, so add them explicitly via a second alphabet.
ANY_CHAR = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0x0300, max_codepoint=0x036F),  # combining marks
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),  # emoji (astral)
    st.characters(min_codepoint=0x0590, max_codepoint=0x06FF),  # Hebrew / Arabic (RTL)
    st.characters(codec=None, categories=["Cc", "Cs"]),  # controls and lone surrogates
)
TEXT = st.text(alphabet=ANY_CHAR, max_size=64)


@st.composite
def text_and_spikes(draw):
    text = draw(TEXT)
    bits = draw(st.integers(min_value=0, max_value=(1 << len(text)) - 1))  # cheaper to draw than a list of bools
    return text, [bool(bits >> i & 1) for i in range(len(text))]


@settings(max_examples=10000, deadline=None)
@given(text_and_spikes())
def test_round_trip_any_unicode(case):
    text, spikes = case
    tokens = segment(text, spikes)
    assert "".join(tokens) == text
    assert all(tokens)
    if text:
        # a spike at t closes the token at t; the end closes the last token
        expected = spikes[:-1].count(True) + 1
        assert len(tokens) == expected
        assert spikes_from_tokens(tokens)[:-1].tolist() == spikes[:-1]
    else:
        assert tokens == []


@settings(max_examples=500, deadline=None)
@given(text_and_spikes())
def test_offsets_consistent_with_segment(case):
    text, spikes = case
    offs = token_offsets(spikes, len(text))
    assert [text[a:b] for a, b in offs] == segment(text, spikes)
    if offs:
        assert offs[0][0] == 0 and offs[-1][1] == len(text)
        assert all(b > a for a, b in offs)
        assert all(offs[i][1] == offs[i + 1][0] for i in range(len(offs) - 1))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet=ANY_CHAR, min_size=1, max_size=8), max_size=12))
def test_spikes_from_tokens_inverts_segment(tokens):
    text = "".join(tokens)
    spikes = spikes_from_tokens(tokens)
    assert spikes.dtype == bool and spikes.shape == (len(text),)
    assert segment(text, spikes) == tokens
    if tokens:
        assert spikes[-1]


def test_convention_spike_is_last_char():
    assert segment("abcde", [0, 1, 0, 0, 1]) == ["ab", "cde"]
    assert segment("abcde", [0, 1, 0, 0, 0]) == ["ab", "cde"]  # the end closes the last token anyway
    assert segment("abc", [1, 1, 1]) == ["a", "b", "c"]
    assert segment("abc", [0, 0, 0]) == ["abc"]
    assert segment("", []) == []
    assert token_offsets([0, 1, 0, 0, 1], 5) == [(0, 2), (2, 5)]
    assert token_offsets([], 0) == []


def test_input_types():
    text = "héllo wörld"
    s = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    want = ["héllo", " wörld"]
    assert segment(text, np.array(s)) == want
    assert segment(text, np.array(s, dtype=bool)) == want
    assert segment(text, np.array(s, dtype=np.float32)) == want
    torch = pytest.importorskip("torch")
    assert segment(text, torch.tensor(s)) == want
    assert segment(text, torch.tensor(s, dtype=torch.float32, requires_grad=True)) == want


def test_length_mismatch_and_bad_shapes():
    with pytest.raises(ValueError, match="3 entries but the text has 2"):
        segment("ab", [0, 1, 0])
    with pytest.raises(ValueError):
        segment("ab", [[0, 1]])
    with pytest.raises(ValueError, match="fewer than"):
        token_offsets([0, 1], 3)
    with pytest.raises(ValueError):
        spikes_from_tokens(["a", "", "b"])


def test_padded_offsets_ignore_padding():
    assert token_offsets([0, 1, 0, 1, 1, 1], 3) == [(0, 2), (2, 3)]


def test_segment_batch_padded():
    texts = ["abcd", "xy", ""]
    batch = np.array([[0, 1, 0, 0, 1, 1], [1, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    assert segment_batch(texts, batch) == [["ab", "cd"], ["x", "y"], []]
    torch = pytest.importorskip("torch")
    assert segment_batch(texts, torch.tensor(batch)) == [["ab", "cd"], ["x", "y"], []]
    assert segment_batch(texts, [[0, 1, 0, 0], [1, 0], []]) == [["ab", "cd"], ["x", "y"], []]
    with pytest.raises(ValueError):
        segment_batch(texts, batch[:2])
    with pytest.raises(ValueError, match="fewer than"):
        segment_batch(["abcdefgh"], batch[:1])


def test_shortening_factor():
    assert shortening_factor(10, 4) == 2.5
    assert np.isnan(shortening_factor(0, 0))
    with pytest.raises(ValueError):
        shortening_factor(3, 0)
    with pytest.raises(ValueError):
        shortening_factor(-1, 1)


def test_large_text_is_fast():
    rng = np.random.default_rng(0)
    text = "abc def " * 250_000  # 2M characters
    spikes = rng.random(len(text)) < 0.25
    tokens = segment(text, spikes)
    assert "".join(tokens) == text
    assert len(tokens) == int(spikes[:-1].sum()) + 1


def test_anchor_boundaries_moves_piece_ends_to_next_piece_starts():
    from speak.text.segment import anchor_boundaries

    text = "the cat sat"
    ends = spikes_from_tokens(["the", " cat", " sat"])  # SentencePiece-style pieces
    start = anchor_boundaries(ends, "start")
    assert segment(text, start) == ["the ", "cat ", "sat"]  # same number of tokens, cut where observable
    assert anchor_boundaries(ends, "end").tolist() == ends.tolist()
    with pytest.raises(ValueError):
        anchor_boundaries(ends, "middle")
