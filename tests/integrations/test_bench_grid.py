"""The tokenize benchmark (small), SPEAK's fast path against its slow twin, and the Table-7 grid."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from speak.errors import SpeakError
from speak.integrations.bench import run_tokenize_benchmark, speak_token_ends
from speak.integrations.grid import expand, grid_search, parse_values, table_markdown


def _ngram_tok(corpus_slice):
    import torch

    from speak.text.vocab import CharVocab
    from speak.tokenizer import SpeakTokenizer, SpeakTokenizerNet, TokenizerConfig

    torch.manual_seed(0)
    vocab = CharVocab.build([corpus_slice[:20_000]])
    net = SpeakTokenizerNet(TokenizerConfig(vocab_size=len(vocab), encoder="char-ngram", char_dim=8,
                                            ngram_buckets=64, ngram_lookahead=1))
    with torch.no_grad():
        net.linear1.bias.fill_(0.5)
    return SpeakTokenizer(net, vocab)


@pytest.mark.parametrize("kind", ["per-character", "ngram"])
def test_fast_path_matches_tokenize(speak_tok, corpus_slice, kind):
    tok = speak_tok if kind == "per-character" else _ngram_tok(corpus_slice)
    lines = [line for line in corpus_slice.split("\n")[:300]] + ["", "x", "\u2603 unseen \U0001f600 chars"]
    ends, counts = speak_token_ends(tok, lines)
    assert counts.sum() == ends.size
    pos = 0
    for line, c in zip(lines, counts):
        want = [e for _, e in tok.offsets(line)]
        assert ends[pos : pos + c].tolist() == want
        pos += c


def test_fast_ids_match_the_reference(speak_tok, corpus_slice):
    from speak.integrations.bench import speak_token_ids
    from speak.text.segment_vocab import SegmentVocab
    from speak.text.token_ids import IdTable

    lines = [line for line in corpus_slice.split("\n")[:300]] + ["", "x", "\u2603 unseen \U0001f600 chars"]
    vocab = SegmentVocab.build(speak_tok, lines[:200], max_size=1000)
    ids, counts = speak_token_ids(speak_tok, lines, IdTable.from_vocab(vocab))
    assert ids.tolist() == [i for line in lines for i in vocab.encode(speak_tok.tokenize(line))]
    assert counts.sum() == ids.size


def test_benchmark_small(speak_tok, corpus_slice, tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(corpus_slice[:120_000], encoding="utf-8")
    res = run_tokenize_benchmark(p, tokenizer=speak_tok, vocab_size=400, repeats=1)
    s = res.summary()
    for k in ("speak_mb_s", "sentencepiece_mb_s", "hf_bpe_mb_s", "speak_vs_sentencepiece", "speak_vs_hf_bpe"):
        assert s[k] > 0
    assert {r.name for r in res.runs} == {"speak", "sentencepiece", "hf_bpe"}
    with pytest.raises(SpeakError):
        run_tokenize_benchmark(tmp_path / "missing.txt", tokenizer=speak_tok)


def test_grid_expand_and_parse():
    assert expand({"alpha": [1.0, 1.2], "tanh": [True, False]}) == [
        {"tanh": True, "alpha": 1.0}, {"tanh": True, "alpha": 1.2},
        {"tanh": False, "alpha": 1.0}, {"tanh": False, "alpha": 1.2}]
    assert parse_values("true,no", bool) == [True, False] and parse_values("64, 128", int) == [64, 128]
    with pytest.raises(SpeakError):
        expand({"gamma": [1]})
    with pytest.raises(SpeakError):
        parse_values("x", float)


def test_grid_two_configs(corpus_slice, tmp_path):
    from speak.train.mimic import MimicConfig

    base = MimicConfig(exemplar="sentencepiece:300", batch_size=8, seq_len=64)
    rows = grid_search(corpus_slice[:60_000], {"encoder": ["char-mlp", "char-ngram"], "char_dim": [16, 32],
                                               "balanced": [True]}, steps=4, base=base)
    assert [(r.encoder, r.char_dim, r.balanced) for r in rows] == [
        ("char-mlp", 16, True), ("char-mlp", 32, True), ("char-ngram", 16, True), ("char-ngram", 32, True)]
    for r in rows:
        assert 0 <= r.spike_acc <= 100 and abs(r.acc_sum - r.spike_acc - r.nonspike_acc) < 1e-9
    md = table_markdown(rows)
    assert "| Linear1 | ContextEncoder |" in md and "| tanh | 1 layer | 1.2 | 0.6 | 16 | balanced |" in md
    assert "| tanh | hashed n-grams | 1.2 | 0.6 | 32 | balanced |" in md


def test_grid_cli_writes_files(corpus_slice, tmp_path):
    from speak.cli import app

    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_slice[:50_000], encoding="utf-8")
    r = CliRunner().invoke(app, ["fit-tokenizer-grid", "--corpus", str(corpus), "--steps", "3", "--exemplar",
                                 "sentencepiece:300", "--tanh", "true,false", "--char-dim", "16", "--batch-size", "8",
                                 "--seq-len", "64", "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert [row["tanh"] for row in doc["rows"]] == [True, False]
    assert "no tanh" in (tmp_path / "g" / "grid.md").read_text()
