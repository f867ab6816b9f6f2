"""Exemplar segmenters: boundaries land on the ORIGINAL text's positions (Eq. 5 convention), losslessly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speak.errors import SpeakError
from speak.text import (
    FixedExemplar,
    HFTokenizersExemplar,
    SentencePieceExemplar,
    WhitespaceExemplar,
    code_points,
    load_corpus,
    load_exemplar,
    read_text,
    segment,
    spikes_from_tokens,
)

TRICKY = "  Héllo  wörld’s — 😀 x\u0301 中文\t end \n\nשלום עולם\r\n  trailing  "
SHARED_CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


@pytest.fixture(scope="module")
def corpus_slice() -> str:
    return load_corpus("embedded")[:120_000]


@pytest.fixture(scope="module")
def sp(corpus_slice) -> SentencePieceExemplar:
    return SentencePieceExemplar.train(corpus_slice, vocab_size=300, num_threads=1)


def _check_lossless(ex, text):
    spikes = ex.segment_spikes(text)
    assert spikes.dtype == bool and spikes.shape == (len(text),)
    tokens = segment(text, spikes)
    assert "".join(tokens) == text
    assert ex.tokenize(text) == tokens
    for i in np.flatnonzero(code_points(text) == 10):
        assert spikes[i] and (i == 0 or spikes[i - 1])  # a newline is its own token
    return tokens


def test_sentencepiece_pieces_map_onto_raw_text(sp, corpus_slice):
    assert sp.vocab_size == 300
    for line in corpus_slice.split("\n")[:200]:
        if not line:
            continue
        tokens = _check_lossless(sp, line)
        assert tokens == [p.replace("▁", " ") for p in sp.pieces(line)]


def test_sentencepiece_on_tricky_unicode(sp):
    tokens = _check_lossless(sp, TRICKY)
    assert "😀" in tokens or any("😀" in t for t in tokens)
    line = "  Héllo  wörld’s — 😀 x\u0301 中文\t end "
    # unknown characters come back as their surface, spaces as "▁": the same strings as our tokens
    assert sp.tokenize(line) == [p.replace("▁", " ") for p in sp.pieces(line)]
    assert sp.segment_spikes("").shape == (0,)
    assert sp.tokenize("\n\n") == ["\n", "\n"]
    _check_lossless(sp, "lone \ud800 surrogate\n")


def test_sentencepiece_save_load_and_files(sp, tmp_path, corpus_slice):
    path = sp.save(tmp_path / "m.model")
    again = SentencePieceExemplar.load(path)
    text = corpus_slice[:5000]
    assert np.array_equal(again.segment_spikes(text), sp.segment_spikes(text))
    assert np.array_equal(load_exemplar(f"sentencepiece:{path}").segment_spikes(text), sp.segment_spikes(text))
    # training from a file path with an output prefix writes PREFIX.model
    src = tmp_path / "train.txt"
    src.write_text(corpus_slice[:30_000], encoding="utf-8")
    bpe = SentencePieceExemplar.train(src, vocab_size=200, model_type="bpe", out_prefix=tmp_path / "sp" / "bpe")
    assert (tmp_path / "sp" / "bpe.model").is_file()
    _check_lossless(bpe, TRICKY)
    with pytest.raises(SpeakError, match="does not exist"):
        SentencePieceExemplar.load(tmp_path / "missing.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(SpeakError, match="not a valid SentencePiece model"):
        SentencePieceExemplar.load(bad)


def test_sentencepiece_vocab_too_large_retries_or_fails():
    text = "the cat sat on the mat\nthe dog sat on the log\n" * 5
    with pytest.warns(UserWarning, match="shrunk from 8000"):
        small = SentencePieceExemplar.train(text, vocab_size=8000, num_threads=1)
    assert small.vocab_size < 8000 and small.note.startswith(f"vocabulary shrunk from 8000 to {small.vocab_size}")
    _check_lossless(small, text)
    with pytest.raises(SpeakError, match="SentencePiece training failed"):
        SentencePieceExemplar.train(text, vocab_size=8000, num_threads=1, shrink_vocab=False)
    with pytest.raises(SpeakError, match="empty text"):
        SentencePieceExemplar.train(["", "\n"], vocab_size=10)


def test_hf_bpe(corpus_slice, tmp_path):
    bpe = HFTokenizersExemplar.train_bpe(corpus_slice, vocab_size=400)
    n_ascii = 0
    for line in corpus_slice.split("\n")[:100]:
        tokens = _check_lossless(bpe, line)
        enc = bpe.tokenizer.encode(line, add_special_tokens=False)
        ends = {b for a, b in enc.offsets}
        assert set((np.flatnonzero(bpe.segment_spikes(line)) + 1).tolist()) == ends
        if line.isascii():  # one byte per character: the pieces are exactly our tokens
            n_ascii += 1
            assert tokens == [line[a:b] for a, b in enc.offsets]
    assert n_ascii > 10
    _check_lossless(bpe, TRICKY)  # byte-level pieces inside a character still close at the character's end
    path = bpe.save(tmp_path / "tokenizer.json")
    again = load_exemplar(f"hf:{path}")
    assert np.array_equal(again.segment_spikes(TRICKY), bpe.segment_spikes(TRICKY))
    with pytest.raises(SpeakError, match="does not exist"):
        HFTokenizersExemplar.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpeakError, match="not a valid tokenizers JSON"):
        HFTokenizersExemplar.load(tmp_path / "bad.json")


def test_hf_tokenizer_with_specials_and_whitespace_split(corpus_slice):
    """A loaded tokenizer may add specials (empty offsets) and drop whitespace (uncovered positions)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        corpus_slice.split("\n"), trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[UNK]", "[CLS]", "[SEP]"])
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    ex = HFTokenizersExemplar(tok)
    text = "In the beginning,   God created\tthe heavens."
    spikes = ex.segment_spikes(text)
    tokens = _check_lossless(ex, text)
    assert tokens[0] == "In" and tokens[1] == " the"  # the uncovered space joins the next token
    assert not spikes[text.index("   ") : text.index("   ") + 3].any()


def test_whitespace_and_fixed():
    ws = WhitespaceExemplar()
    assert ws.tokenize("a  b\n c\n\nd ") == ["a", "  b", "\n", " c", "\n", "\n", "d", " "]
    assert ws.tokenize("") == []
    assert FixedExemplar(3).tokenize("abcdefg\nabcd\n") == ["abc", "def", "g", "\n", "abc", "d", "\n"]
    for ex in (ws, FixedExemplar(1), FixedExemplar(4)):
        _check_lossless(ex, TRICKY)
        assert ex.segment_spikes(TRICKY)[-1]
        assert np.array_equal(spikes_from_tokens(ex.tokenize(TRICKY)), ex.segment_spikes(TRICKY))


def test_load_exemplar_specs(corpus_slice):
    assert isinstance(load_exemplar("whitespace"), WhitespaceExemplar)
    assert load_exemplar("fixed:4").k == 4
    trained = load_exemplar("sentencepiece:150", texts=corpus_slice[:20_000], num_threads=1)
    assert isinstance(trained, SentencePieceExemplar) and trained.vocab_size == 150
    assert isinstance(load_exemplar("hf-bpe:300", texts=corpus_slice[:20_000]), HFTokenizersExemplar)
    with pytest.raises(SpeakError, match="pass the training text"):
        load_exemplar("sentencepiece:8000")
    for bad in ("", "bogus", "fixed:x", "fixed:0", "hf:", "whitespace:3"):
        with pytest.raises(SpeakError):
            load_exemplar(bad)


def test_exemplars_on_shared_corpora(sp):
    """Every exemplar stays lossless and newline-aligned on real text in five languages (when present)."""
    if not SHARED_CORPORA.is_dir() or not list(SHARED_CORPORA.glob("*.txt.xz")):
        pytest.skip("no ../shared/corpora beside this checkout")
    for f in sorted(SHARED_CORPORA.glob("*.txt.xz")):
        text = read_text(f)[:200_000]
        for ex in (sp, WhitespaceExemplar(), FixedExemplar(5)):
            _check_lossless(ex, text)


def test_sentencepiece_fallback_for_byte_offset_protos(sp):
    """sentencepiece < 0.2.1 has no offset mapping; its immutable proto gives UTF-8 byte offsets."""
    from types import SimpleNamespace

    real = sp.processor

    class OldProcessor:
        def encode(self, inp, out_type=None):
            if out_type == "offset_mapping":
                raise ValueError("unknown out_type")
            assert out_type == "immutable_proto" and isinstance(inp, str)
            enc = real.encode(inp, out_type="offset_mapping")
            byte_at = np.concatenate(([0], np.cumsum([len(c.encode("utf-8")) for c in inp])))
            pieces = [SimpleNamespace(begin=int(byte_at[a]), end=int(byte_at[b])) for a, b in enc["offsets"]]
            return SimpleNamespace(pieces=pieces)

    text = TRICKY.replace("\ud800", "")
    expected = sp.segment_spikes(text)
    old = SentencePieceExemplar(sp.model_proto)
    old.processor = OldProcessor()
    assert np.array_equal(old.segment_spikes(text), expected)


def test_long_lines_are_chunked_without_changing_sentencepiece(sp, corpus_slice):
    """text8 is a single 100M-character line: it is cut before spaces, which SentencePiece splits at anyway."""
    from speak.text.exemplar import _chunks

    line = corpus_slice.replace("\n", " ")[:60_000]
    whole = sp.processor.encode(line, out_type="offset_mapping")["offsets"]
    expected = np.zeros(len(line), dtype=bool)
    expected[[e - 1 for b, e in whole if e > b]] = True
    assert np.array_equal(sp.segment_spikes(line), expected)
    chunks = _chunks(line, 1000)
    assert len(chunks) > 60 and "".join(c for _, c in chunks) == line
    assert all(len(c) <= 1000 for _, c in chunks)
    assert all(line[off] == " " for off, _ in chunks[1:])
    assert [off for off, _ in chunks] == np.cumsum([0] + [len(c) for _, c in chunks[:-1]]).tolist()
    hard = _chunks("字" * 2500, 1000)  # no spaces: hard cuts
    assert [len(c) for _, c in hard] == [1000, 1000, 500]
    # a small batch size exercises several tokenizer calls per text
    small = SentencePieceExemplar(sp.model_proto)
    small.batch_chars, small.max_chunk = 5000, 700
    text = corpus_slice[:50_000]
    assert np.array_equal(small.segment_spikes(text), sp.segment_spikes(text))
