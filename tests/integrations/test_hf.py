"""SpeakHFTokenizer and SegmentVocab: round trips, padding/truncation, masks, offsets, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speak.errors import SpeakError
from speak.integrations.hf import SpeakHFTokenizer, force_boundaries, word_starts
from speak.text.segment_vocab import SegmentVocab


def test_segment_vocab_keeps_every_char_and_falls_back():
    v = SegmentVocab.from_segments(["the ", "the ", "the ", "cat ", "ab"], max_size=7)
    assert [v.tokens[i] for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"] and v.tokens[-1] == "<mask>"
    for ch in "the cab":
        assert ch in v  # every character is kept even over the size limit
    assert "the " not in v or len(v) > 7  # no room for segments when characters fill the vocabulary
    v2 = SegmentVocab.from_segments(["the ", "the ", "th", "e"], max_size=20)
    assert v2.split_strings("the ") == ["the "]
    assert v2.split_strings("then") == ["th", "e", "n"] or v2.split("then")[-1] == (v2.unk_id, 1)
    assert v2.split("thex")[-1] == (v2.unk_id, 1)  # unseen character -> <unk>, one per character
    assert sum(k for _, k in v2.split("tthhee ")) == 7
    assert SegmentVocab.from_dict(json.loads(json.dumps(v2.to_dict()))).tokens == v2.tokens
    with pytest.raises(SpeakError):
        SegmentVocab.from_dict({"format": "nope"})


def test_force_boundaries():
    text = "ab cd  ef"
    starts = word_starts(text)
    assert starts.tolist() == [0, 3, 7]
    s = force_boundaries(np.zeros(len(text), bool), starts)
    assert np.flatnonzero(s).tolist() == [2, 6]  # the character before each word start closes a token


def test_round_trip_corpus(hf_tok, corpus_slice):
    lines = [line for line in corpus_slice.split("\n")[:200] if line]
    for line in lines:
        ids = hf_tok(line)["input_ids"]
        assert ids[0] == hf_tok.bos_token_id and ids[-1] == hf_tok.eos_token_id
        assert hf_tok.decode(ids, skip_special_tokens=True) == line
        assert hf_tok.decode(hf_tok.encode(line, add_special_tokens=False)) == line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_alphabet(hf_tok, data):
    alphabet = "".join(hf_tok.segment_vocab.alphabet).replace("<", "")
    text = data.draw(st.text(alphabet=alphabet, max_size=80))
    ids = hf_tok.encode(text, add_special_tokens=False)
    assert hf_tok.unk_token_id not in ids
    assert hf_tok.decode(ids) == text
    ids2, offs = hf_tok.encode_with_offsets(text)
    assert ids2 == ids and "".join(text[a:b] for a, b in offs) == text


def test_unknown_characters_decode_as_unk(hf_tok):
    ids = hf_tok.encode("a\u4e2d", add_special_tokens=False)
    assert ids[-1] == hf_tok.unk_token_id
    assert hf_tok.decode(ids) == "a<unk>"


def test_padding_truncation_masks(hf_tok):
    a, b = "In the beginning God created the heavens.", "And the earth"
    enc = hf_tok([a, b], padding=True)
    n = [len(x) for x in enc["input_ids"]]
    assert n[0] == n[1]
    short = enc["input_ids"][1]
    m = enc["attention_mask"][1]
    k = sum(m)
    assert m == [1] * k + [0] * (n[1] - k) and short[k:] == [hf_tok.pad_token_id] * (n[1] - k)
    left = hf_tok([a, b], padding="max_length", max_length=40, padding_side="left")
    assert all(len(x) == 40 for x in left["input_ids"])
    assert left["attention_mask"][1][-1] == 1 and left["attention_mask"][1][0] == 0
    tr = hf_tok(a, truncation=True, max_length=6)
    assert len(tr["input_ids"]) == 6 and tr["input_ids"][-1] == hf_tok.eos_token_id
    hf_tok.truncation_side = "left"
    try:
        trl = hf_tok(a, truncation=True, max_length=6)["input_ids"]
        full = hf_tok(a)["input_ids"]
        assert trl[1:-1] == full[-5:-1]
    finally:
        hf_tok.truncation_side = "right"


def test_pairs(hf_tok):
    a, b = "Jesus wept.", "He was sad."
    ids = hf_tok(a, b)["input_ids"]
    ia, ib = hf_tok.encode(a, add_special_tokens=False), hf_tok.encode(b, add_special_tokens=False)
    assert ids == [0, *ia, 2, 2, *ib, 2]  # XLM-R: <s> A </s></s> B </s>
    tr = hf_tok(a * 5, b, truncation="only_first", max_length=len(ib) + 8)["input_ids"]
    assert len(tr) == len(ib) + 8 and tr[-len(ib) - 1 : -1] == ib
    batch = hf_tok([a, a * 3], [b, b], padding=True, truncation=True, max_length=30, return_tensors="pt")
    assert tuple(batch["input_ids"].shape)[0] == 2 and batch["input_ids"].shape[1] <= 30


def test_offsets_map_back(hf_tok):
    a, b = "For God so loved the world.", "Amen"
    enc = hf_tok(a, b, return_offsets_mapping=True)
    toks = hf_tok.convert_ids_to_tokens(enc["input_ids"])
    offs = enc["offset_mapping"]
    sep = enc["input_ids"].index(2)
    for i, (tok, (s, e)) in enumerate(zip(toks, offs)):
        if tok in ("<s>", "</s>"):
            assert (s, e) == (0, 0)
        else:
            assert (a if i < sep else b)[s:e] == tok
    batch = hf_tok([a, b], padding="max_length", max_length=24, truncation=True, return_offsets_mapping=True,
                   padding_side="left")
    for text, ids, offs in zip([a, b], batch["input_ids"], batch["offset_mapping"]):
        assert len(offs) == len(ids) == 24
        pieces = [text[s:e] for (s, e), i in zip(offs, ids) if i not in hf_tok.all_special_ids]
        assert "".join(pieces) == text[: len("".join(pieces))]
    t = hf_tok([a], return_offsets_mapping=True, truncation=True, max_length=5, return_tensors="pt")
    assert tuple(t["offset_mapping"].shape) == (1, 5, 2)


def test_split_into_words_forces_boundaries(hf_tok):
    words = ["Moses", "said", "to", "Aaron", "."]
    ids, wids, text = hf_tok.encode_words(words)
    assert text == "Moses said to Aaron ."
    assert hf_tok.decode(ids) == text
    firsts = [i for i, w in enumerate(wids) if w is not None and (i == 0 or wids[i - 1] != w)]
    assert [wids[i] for i in firsts] == list(range(len(words)))
    pos = 0
    for i, pid in enumerate(ids):  # every word start is a token start
        piece = hf_tok.convert_ids_to_tokens(pid)
        if wids[i] is not None and (i == 0 or wids[i - 1] != wids[i]):
            assert text.startswith(words[wids[i]][: len(piece)], pos)
        pos += len(piece)
    enc = hf_tok([words], is_split_into_words=True)
    assert enc["input_ids"][0] == [0, *ids, 2]


def test_save_load(hf_tok, tmp_path):
    hf_tok.save_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "speak" / "speak_tokenizer.safetensors").is_file()
    again = SpeakHFTokenizer.from_pretrained(tmp_path / "tok")
    s = "Then the LORD said to Moses, Go."
    assert again(s, return_offsets_mapping=True) == hf_tok(s, return_offsets_mapping=True)
    assert again.get_vocab() == hf_tok.get_vocab() and len(again) == len(hf_tok)
    assert again.model_max_length == hf_tok.model_max_length
    with pytest.raises(SpeakError):
        SpeakHFTokenizer.from_pretrained(tmp_path / "missing")
    (tmp_path / "tok" / "segment_vocab.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(SpeakError):
        SpeakHFTokenizer.from_pretrained(tmp_path / "tok")
