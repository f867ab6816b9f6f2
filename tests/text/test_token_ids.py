"""SegmentVocab's fallback (byte fallback, word cores) and the compiled ids path against the Python reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speak.errors import SpeakError
from speak.text.segment_vocab import BYTE_TOKENS, SegmentVocab
from speak.text.token_ids import IdTable, ends_from_spikes, ids_from_offsets
from speak.text.vocab import code_points

SEGMENTS = ["the ", "the ", "the ", "light ", "light ", "light:", "and ", "and ", "said, ", "x", "naïve ", "th"]


def _vocab(byte_fallback=True, max_size=300):
    return SegmentVocab.from_segments(SEGMENTS * 3, max_size=max_size, byte_fallback=byte_fallback)


def _compiled(vocab, texts, tokens):
    """ids_from_offsets on texts whose tokens are given as lists of strings."""
    lengths = [len(t) for t in texts]
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    ends, counts = [], []
    for toks in tokens:
        ends.extend(np.cumsum([len(x) for x in toks]).tolist())
        counts.append(len(toks))
    return ids_from_offsets(IdTable.from_vocab(vocab), code_points("".join(texts)), bounds,
                            np.asarray(ends, dtype=np.int64), np.asarray(counts, dtype=np.int64))


def test_layout_and_byte_fallback_round_trip():
    v = _vocab()
    assert v.tokens[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and v.tokens[-1] == "<mask>"
    assert v.tokens[4:260] == list(BYTE_TOKENS) and v.first_piece == 260
    text = "Café 😀 naïve \ud800!"  # unseen characters, an astral one and a lone surrogate
    pieces = v.pieces_of(text)
    ids = [p for p, _, _ in pieces]
    assert v.unk_id not in ids
    assert v.decode(ids) == text
    assert sum(k for _, k in v.split(text)) == len(text)
    emoji = [p for p, a, _ in pieces if a == text.index("😀")]
    assert [v.byte_of(i) for i in emoji] == list("😀".encode("utf-8"))
    plain = _vocab(byte_fallback=False)
    assert plain.decode([p for p, _, _ in plain.pieces_of("é")], skip_special_tokens=False) == "<unk>"


def test_word_at_the_end_keeps_its_entry():
    """SPEAK tokens carry their trailing space; the last word of a line has none. Its core must be an entry even
    when max_size leaves room for only a few segments."""
    size = 261 + 16 + 5  # specials and bytes, the 16 characters, 5 segments
    v = SegmentVocab.from_segments(SEGMENTS * 3, max_size=size, byte_fallback=True)
    assert len(v) == size and "light" in v and "the" in v and "light " not in v
    assert v.split_strings("light") == ["light"]
    assert v.split_strings("light ") == ["light", " "]
    assert v.split_strings("light.") == ["light", "."]  # the longest entry first, then the unseen "." as bytes
    without = SegmentVocab.from_segments(SEGMENTS * 3, max_size=size, byte_fallback=True, cores=False)
    assert without.split_strings("light") == list("light")  # the bug the cores fix


def test_serialisation_and_errors():
    v = _vocab()
    again = SegmentVocab.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again.tokens == v.tokens and again.byte_fallback
    old = v.to_dict()
    del old["byte_fallback"]
    assert not SegmentVocab.from_dict(old).byte_fallback  # files written before byte fallback still load
    with pytest.raises(SpeakError):
        SegmentVocab(["<0x41>"], byte_fallback=True)
    with pytest.raises(SpeakError):
        SegmentVocab.from_segments(["ab"], max_size=100, byte_fallback=True)


def test_ends_from_spikes():
    spikes = np.array([0, 1, 0, 0, 0, 1, 0], dtype=bool)  # texts "abc" | "" | "defg"
    ends, counts = ends_from_spikes(spikes, np.array([0, 3, 3, 7]))
    assert ends.tolist() == [2, 3, 3, 4] and counts.tolist() == [2, 0, 2]


@pytest.mark.parametrize("byte_fallback", [True, False])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_compiled_matches_reference(byte_fallback, data):
    v = _vocab(byte_fallback=byte_fallback)
    alphabet = st.sampled_from(list("thelig :and,sx") + ["é", "😀", "\ud800", "ï", "v"])
    texts, tokens = [], []
    for _ in range(data.draw(st.integers(0, 4))):
        toks = data.draw(st.lists(st.text(alphabet, min_size=1, max_size=9), max_size=6))
        texts.append("".join(toks))
        tokens.append(toks)
    got = _compiled(v, texts, tokens)
    want_ids, want_spans, want_counts = [], [], []
    for toks in tokens:
        n, pos = 0, 0
        for tok in toks:
            for pid, a, b in v.pieces_of(tok):
                want_ids.append(pid)
                want_spans.append((pos + a, pos + b))
                n += 1
            pos += len(tok)
        want_counts.append(n)
    assert got.ids.tolist() == want_ids
    assert list(zip(got.starts.tolist(), got.ends.tolist())) == want_spans
    assert got.counts.tolist() == want_counts
    if byte_fallback:
        for text, ids in zip(texts, got.split()):
            assert v.decode(ids) == text


def test_compiled_matches_reference_with_a_real_tokenizer():
    from speak.text.corpora import load_corpus
    from speak.text.token_ids import encode_texts
    from speak.tokenizer.fast import FastSpeakTokenizer

    tok = FastSpeakTokenizer.default()
    lines = [line for line in load_corpus("embedded")[:60_000].split("\n") if line]
    v = SegmentVocab.build(tok, lines, max_size=1200)
    lines = lines + ["Café 😀 naïve", "", "end of line", "And God said, Let there be light"]
    got = encode_texts(tok, IdTable.from_vocab(v), lines)
    assert v.tokens[got.split()[-1][-1]] == "light"  # the line's last word is one id, not five characters
    for line, ids in zip(lines, got.split()):
        assert ids.tolist() == v.encode(tok.tokenize(line))
        assert v.decode(ids) == line
