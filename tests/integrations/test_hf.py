"""SpeakHFTokenizer: lossless round trips, the compiled path against transformers' Python path, offsets, word ids,
special tokens after reload, AutoTokenizer in a fresh process, datasets.map with worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speak.errors import SpeakError
from speak.integrations.hf import SpeakHFTokenizer, force_boundaries, word_starts

UNSEEN = "Café 😀 naïve"


def test_force_boundaries():
    text = "ab cd  ef"
    starts = word_starts(text)
    assert starts.tolist() == [0, 3, 7]
    s = force_boundaries(np.zeros(len(text), bool), starts)
    assert np.flatnonzero(s).tolist() == [2, 6]  # the character before each word start closes a token


def test_round_trip_corpus(hf_tok, corpus_slice):
    lines = [line for line in corpus_slice.split("\n")[:200] if line]
    batch = hf_tok(lines)["input_ids"]
    for line, ids in zip(lines, batch):
        assert ids[0] == hf_tok.bos_token_id and ids[-1] == hf_tok.eos_token_id
        assert hf_tok.decode(ids, skip_special_tokens=True) == line
        assert ids == hf_tok.reference_encode(line)["input_ids"]


def test_unknown_characters_survive_decode(hf_tok):
    for text in (UNSEEN, "\u4e2d文 – ∑ 🇫🇮", "a\u0301 \x00 \U0010ffff"):
        ids = hf_tok(text)["input_ids"]
        assert hf_tok.unk_token_id not in ids
        assert hf_tok.decode(ids, skip_special_tokens=True) == text
        assert hf_tok.convert_tokens_to_string(hf_tok.convert_ids_to_tokens(ids[1:-1])) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_text_round_trips(hf_tok, text):
    enc = hf_tok(text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True)
    assert hf_tok.decode(enc["input_ids"]) == text
    spans = sorted(set(enc["offset_mapping"]))
    assert "".join(text[a:b] for a, b in spans) == text  # offsets tile the text (bytes of a character share one)


OPTIONS = [
    {},
    {"padding": True},
    {"padding": "max_length", "max_length": 24},
    {"padding": True, "truncation": True, "max_length": 7},
    {"padding": True, "truncation": "only_first", "max_length": 12, "padding_side": "left"},
    {"truncation": "only_second", "max_length": 12},
    {"truncation": "longest_first", "max_length": 9},
    {"truncation": "longest_first", "max_length": 16, "padding": True, "pad_to_multiple_of": 8},
    {"padding": True, "pad_to_multiple_of": 8},
    {"add_special_tokens": False, "padding": True, "return_special_tokens_mask": True, "return_length": True},
    {"return_special_tokens_mask": True, "return_length": True, "truncation": True, "max_length": 6},
    {"return_token_type_ids": True, "padding": True, "return_attention_mask": False},
    {"padding": True, "return_tensors": "pt", "truncation": True, "max_length": 10},
    {"padding": "longest", "return_tensors": "np"},
]


def _same(a, b):
    assert set(a.keys()) == set(b.keys())
    for k in a.keys():
        x, y = a[k], b[k]
        if hasattr(x, "tolist"):
            assert type(x) is type(y) and x.tolist() == y.tolist(), k
        else:
            assert x == y, k


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("truncation_side", ["right", "left"])
def test_compiled_path_matches_transformers_python_path(hf_tok, opts, truncation_side):
    a = ["In the beginning God created the heaven and the earth.", "Jesus wept.", "", UNSEEN + " and <mask> too"]
    b = ["And the earth was without form, and void; and darkness was upon the face of the deep.", "Amen", "x", "y"]
    hf_tok.truncation_side = truncation_side
    try:
        for args in ((a,), (a, b), (a[0],), (a[0], b[0])):
            if "only_second" in str(opts.get("truncation")) and len(args) == 1:
                continue
            if opts.get("return_tensors") and not opts.get("padding") and len(args[0]) != 1 and \
                    not isinstance(args[0], str):
                continue
            _same(hf_tok(*args, **opts), hf_tok.reference_encode(*args, **opts))
    finally:
        hf_tok.truncation_side = "right"


def test_split_words_match_the_reference_and_give_word_ids(hf_tok):
    words = [["Moses", "said", "to", "Aaron", "."], ["Café", "😀"]]
    enc = hf_tok(words, is_split_into_words=True, truncation=True, max_length=12)
    _same(enc, hf_tok.reference_encode(words, is_split_into_words=True, truncation=True, max_length=12))
    assert hf_tok([[]], is_split_into_words=True)["input_ids"] == [[0, 2]]
    for i, row in enumerate(words):
        ids, wids, text = hf_tok.encode_words(row)
        assert enc["input_ids"][i][1:-1] == ids[:10] and enc.word_ids(i)[1:-1] == wids[:10]
        seen = [w for w in enc.word_ids(i) if w is not None]
        assert seen == sorted(seen) and set(seen) <= set(range(len(row)))
        for t, w in enumerate(enc.word_ids(i)):  # the first token of each word starts exactly at that word
            if w is not None and (t == 0 or enc.word_ids(i)[t - 1] != w):
                assert text[enc[i].offsets[t][0]:].startswith(row[w][:1])
    assert hf_tok.decode(hf_tok(words[0], is_split_into_words=True)["input_ids"], skip_special_tokens=True) == \
        "Moses said to Aaron ."


def test_word_ids_and_offsets_on_text(hf_tok):
    a, b = "For God so loved the world.", "Amen, amen"
    enc = hf_tok([a], [b], return_offsets_mapping=True)
    ids, offs, seq, wids = enc["input_ids"][0], enc["offset_mapping"][0], enc.sequence_ids(0), enc.word_ids(0)
    for tok, (s, e), q, w in zip(hf_tok.convert_ids_to_tokens(ids), offs, seq, wids):
        if q is None:
            assert (s, e) == (0, 0) and w is None and tok in ("<s>", "</s>")
            continue
        text = a if q == 0 else b
        assert text[s:e] == tok
        if text[s:e].strip():
            first = s + len(text[s:e]) - len(text[s:e].lstrip())
            assert w == len(text[:first + 1].split()) - 1  # the whitespace word of its first visible character
    assert enc.tokens(0)[0] == "<s>" and enc.n_sequences == 2
    assert enc.char_to_token(0, 4) == 2 and enc.token_to_chars(0, 1) == (0, 4)
    assert enc.word_to_tokens(0, 1, sequence_index=1) is not None
    left = hf_tok([a, b], padding="max_length", max_length=24, return_offsets_mapping=True, padding_side="left")
    for text, row, offs in zip([a, b], left["input_ids"], left["offset_mapping"]):
        assert len(offs) == len(row) == 24
        assert "".join(text[s:e] for (s, e), i in zip(offs, row) if i not in hf_tok.all_special_ids) == text
    pt = hf_tok([a], return_offsets_mapping=True, truncation=True, max_length=5, return_tensors="pt")
    assert tuple(pt["offset_mapping"].shape) == (1, 5, 2)


def test_batches_of_pairs_as_tuples_and_errors(hf_tok):
    with pytest.raises(ValueError):
        hf_tok(["a", "b"], ["c"])
    with pytest.raises(NotImplementedError):
        hf_tok("a b c d", return_offsets_mapping=True, return_overflowing_tokens=True, truncation=True,
               max_length=4, stride=1)
    over = hf_tok("In the beginning God created", truncation=True, max_length=4, stride=1,
                  return_overflowing_tokens=True)  # transformers' own path
    assert len(over["input_ids"]) == 4 and over["overflowing_tokens"]


@pytest.fixture()
def saved(hf_tok, tmp_path):
    from speak.integrations.hf import SpeakHFTokenizer

    tok = SpeakHFTokenizer(speak_tokenizer=hf_tok.speak, segment_vocab=hf_tok.segment_vocab, model_max_length=64)
    tok.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    tok.add_tokens(["<new>"])
    tok.save_pretrained(tmp_path / "tok")
    return tok, tmp_path / "tok"


def test_save_writes_what_auto_tokenizer_needs(saved):
    tok, d = saved
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    assert cfg["auto_map"]["AutoTokenizer"][0] == "hf.SpeakHFTokenizer" and (d / "hf.py").is_file()
    for f in ("speak_tokenizer.json", "speak_tokenizer.safetensors", "segment_vocab.json"):
        assert (d / f).is_file()
    assert not [p for p in d.iterdir() if p.name.startswith(".speak-hf-")]
    again = SpeakHFTokenizer.from_pretrained(d)
    s = "Then the LORD said to <ent> Moses, <new> Go. " + UNSEEN
    assert again(s, return_offsets_mapping=True) == tok(s, return_offsets_mapping=True)
    assert again.get_vocab() == tok.get_vocab() and len(again) == len(tok)
    assert "<ent>" in again.all_special_tokens and "<new>" not in again.all_special_tokens
    ids = again(s)["input_ids"]
    assert again.convert_tokens_to_ids("<ent>") in ids and again.convert_tokens_to_ids("<new>") in ids
    assert again.decode(ids, skip_special_tokens=True) == s.replace("<ent>", "")


def test_load_errors(saved, tmp_path):
    _, d = saved
    with pytest.raises(SpeakError):
        SpeakHFTokenizer.from_pretrained(tmp_path / "missing")
    (d / "segment_vocab.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(SpeakError):
        SpeakHFTokenizer.from_pretrained(d)
    (d / "segment_vocab.json").unlink()
    with pytest.raises(SpeakError, match="missing segment_vocab.json"):
        SpeakHFTokenizer.from_pretrained(d)


def test_auto_tokenizer_in_a_fresh_process(saved, tmp_path):
    tok, d = saved
    texts = ["In the beginning <ent> God", UNSEEN, "Amen, amen"]
    expected = tok(texts, padding=True)["input_ids"]
    script = textwrap.dedent(f"""
        import json
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(d)!r}, trust_remote_code=True)
        enc = tok({texts!r}, padding=True)
        print(json.dumps({{"cls": type(tok).__name__, "ids": enc["input_ids"], "words": enc.word_ids(1),
                          "special": tok.all_special_tokens,
                          "decoded": [tok.decode(x, skip_special_tokens=True) for x in enc["input_ids"]]}}))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["cls"] == "SpeakHFTokenizer" and got["ids"] == expected
    assert "<ent>" in got["special"]
    assert got["decoded"] == [t.replace("<ent>", "") for t in texts]
    assert got["words"] == tok(texts, padding=True).word_ids(1)


def test_datasets_map_with_two_processes(hf_tok):
    from datasets import Dataset

    lines = ["In the beginning God created the heaven and the earth.", UNSEEN, "Jesus wept.", "Amen"] * 8
    ds = Dataset.from_dict({"text": lines})

    def encode(batch):
        return hf_tok(batch["text"], truncation=True, max_length=32, padding="max_length")

    mapped = ds.map(encode, batched=True, batch_size=4, num_proc=2, remove_columns=["text"])
    direct = hf_tok(lines, truncation=True, max_length=32, padding="max_length")
    assert mapped["input_ids"] == direct["input_ids"] and mapped["attention_mask"] == direct["attention_mask"]
    assert hf_tok.decode(mapped["input_ids"][1], skip_special_tokens=True) == UNSEEN
