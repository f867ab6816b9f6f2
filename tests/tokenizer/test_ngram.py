"""The hashed causal n-gram encoder: its keys, the lookup scan's parity with the network, save/load."""

import numpy as np
import pytest
import torch

from speak.errors import SpeakError
from speak.text.vocab import CharVocab
from speak.tokenizer import SpeakTokenizer, SpeakTokenizerNet, TokenizerConfig
from speak.tokenizer.encoders import NGRAM_MASK, NGRAM_PRIME, NGRAM_SEED, HashedNGramEncoder, ngram_keys
from speak.tokenizer.fast import FastSpeakTokenizer

TEXT = "In the beginning God created the heavens and the earth.\nThe earth was formless and empty.\n"


def _plain_key(ids: list[int], p: int, n: int, buckets: int) -> int:
    """The key's definition, transcribed: the n characters ending at p, newest first, <pad> (0) outside the text."""
    if n == 1:
        return ids[p] if 0 <= p < len(ids) else 0
    h = NGRAM_SEED
    for j in range(p, p - n, -1):
        h = (h * NGRAM_PRIME + (ids[j] if 0 <= j < len(ids) else 0) + 1) & NGRAM_MASK
    return (h ^ (h >> 15)) % buckets


@pytest.mark.parametrize("order,ahead", [(2, 0), (3, 0), (5, 0), (2, 1), (3, 2)])
def test_ngram_keys_follow_their_definition(order, ahead):
    rng = np.random.default_rng(order)
    ids = rng.integers(1, 300, size=(3, 17))
    keys = ngram_keys(torch.from_numpy(ids), order, 128, ahead)
    assert len(keys) == order
    for n, k in enumerate(keys, start=1):
        assert k.shape == (3, 17 + ahead)
        for row in range(3):
            want = [_plain_key(ids[row].tolist(), p, n, 128) for p in range(17 + ahead)]
            assert k[row].tolist() == want


def test_hash_constants_agree_between_torch_and_the_compiled_scan():
    from speak.tokenizer import lookup

    assert (lookup.NGRAM_SEED, lookup.NGRAM_PRIME, lookup.NGRAM_MASK) == (NGRAM_SEED, NGRAM_PRIME, NGRAM_MASK)


def test_ngram_keys_see_only_the_past_and_the_lookahead():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    changed = ids.clone()
    changed[0, 4] = 2
    enc = HashedNGramEncoder(20, 4, 3, 64, 0)
    a, b = enc(ids), enc(changed)
    assert torch.equal(a[0, :4], b[0, :4]) and not torch.equal(a[0, 4:], b[0, 4:])
    enc = HashedNGramEncoder(20, 4, 3, 64, 2)
    a, b = enc(ids), enc(changed)
    assert torch.equal(a[0, :2], b[0, :2]) and not torch.equal(a[0, 2:], b[0, 2:])  # t = 2, 3 see position 4


def _ngram_tokenizer(mode: str = "entropy-aware", tanh: bool = True, lookahead: int = 0) -> SpeakTokenizer:
    torch.manual_seed(0)
    vocab = CharVocab.build([TEXT])
    cfg = TokenizerConfig(vocab_size=len(vocab), encoder="char-ngram", char_dim=16, ngram_order=3, ngram_buckets=128,
                          ngram_lookahead=lookahead, tanh=tanh, reset_mode=mode)
    net = SpeakTokenizerNet(cfg)
    with torch.no_grad():  # centre the currents so the random network fires every few characters
        net.encoder.table.weight.normal_(0, 0.3)
        pre = net.encoder(torch.as_tensor(vocab.encode_array(TEXT))[None]) @ net.linear1.weight[0]  # [1, L]
        net.linear1.bias.fill_(0.6 - float(pre.median()))
    return SpeakTokenizer(net, vocab)


@pytest.mark.parametrize("lookahead", [0, 2])
@pytest.mark.parametrize("tanh", [True, False])
@pytest.mark.parametrize("mode", ["entropy-aware", "all-hard", "all-soft", "no-reset", "hard-no-reset"])
def test_ngram_lookup_scan_matches_network(mode, tanh, lookahead):
    tok = _ngram_tokenizer(mode, tanh, lookahead)
    tables = tok.net.lookup_tables()
    fired = []
    for line in TEXT.splitlines():
        ids = tok.vocab.encode_array(line)
        with torch.no_grad():  # the slow twin: the network's own forward
            ref = tok.net(torch.as_tensor(ids)[None]).s[0].numpy() > 0.5
        np.testing.assert_array_equal(tables.spikes(ids), ref)
        fired.append(ref.mean())
    assert 0 < np.mean(fired) < 1


@pytest.mark.parametrize("lookahead", [0, 1])
def test_ngram_tokenizer_saves_loads_and_streams_without_torch(tmp_path, lookahead):
    tok = _ngram_tokenizer(lookahead=lookahead)
    tok.save_pretrained(tmp_path / "tk")
    fast = FastSpeakTokenizer.from_pretrained(tmp_path / "tk")
    again = SpeakTokenizer.from_pretrained(tmp_path / "tk")
    lines = TEXT.splitlines() + ["", "x"]
    for a, b, c in zip(tok.spikes_many(lines), fast.spikes_many(lines), again.spikes_many(lines)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert "".join(fast.tokenize(TEXT)) == TEXT


def test_ngram_config_errors():
    with pytest.raises(SpeakError, match="ngram_order >= 2"):
        TokenizerConfig(vocab_size=10, encoder="char-ngram", ngram_order=1)
    with pytest.raises(SpeakError, match="linear1 'linear'"):
        TokenizerConfig(vocab_size=10, encoder="char-ngram", linear1="mlp")
    with pytest.raises(SpeakError, match="ngram_lookahead >= 0"):
        TokenizerConfig(vocab_size=10, encoder="char-ngram", ngram_lookahead=-1)
    with pytest.raises(SpeakError, match="power of two"):
        TokenizerConfig(vocab_size=10, encoder="char-ngram", ngram_buckets=1000)


def test_lookahead_is_refused_as_the_lms_boundary_source():
    from speak.lm.boundaries import BoundaryConfig, make_boundary_source

    cfg = BoundaryConfig(name="speak", speak={"encoder": "char-ngram", "linear1": "linear", "ngram_lookahead": 1})
    with pytest.raises(SpeakError, match="must not see"):
        make_boundary_source(cfg, 16, 10, None)


def test_inference_loads_only_the_small_tables_file(tmp_path):
    from speak.tokenizer.fast import TABLES_FILE, WEIGHTS_FILE

    tok = _ngram_tokenizer(lookahead=2)
    tok.save_pretrained(tmp_path / "tk")
    (tmp_path / "tk" / WEIGHTS_FILE).unlink()  # the training network is not needed to tokenize
    fast = FastSpeakTokenizer.from_pretrained(tmp_path / "tk")
    np.testing.assert_array_equal(fast.spikes(TEXT), tok.spikes(TEXT))
    tables = (tmp_path / "tk" / TABLES_FILE).read_bytes()
    (tmp_path / "tk" / TABLES_FILE).write_bytes(tables[:-8] + bytes(8))
    with pytest.raises(SpeakError, match="checksum mismatch"):
        FastSpeakTokenizer.from_pretrained(tmp_path / "tk")


def _python_ids(tok, lines, vocab):
    """The slow twin of the fused ids: the network's spikes, each token through SegmentVocab.pieces_of."""
    from speak.text.segment import segment

    out = []
    for line in lines:
        ids = []
        for piece in segment(line, tok.trace(line).s[0].numpy() > 0.5) if line else []:
            ids.extend(pid for pid, _, _ in vocab.pieces_of(piece))
        out.append(ids)
    return out


@pytest.mark.parametrize("byte_fallback", [True, False])
@pytest.mark.parametrize("lookahead,mode,tanh", [(0, "entropy-aware", True), (2, "all-hard", False)])
def test_fused_ids_match_the_network_and_cover_every_character(lookahead, mode, tanh, byte_fallback):
    from speak.text.segment_vocab import SegmentVocab
    from speak.text.token_ids import IdTable

    tok = _ngram_tokenizer(mode, tanh, lookahead)
    fast = tok._lookup()
    lines = TEXT.splitlines() + ["", "x", "Zebra ünïcode ☃ earth"]
    vocab = SegmentVocab.from_segments([t for ts in fast.tokenize_batch(lines[:1]) for t in ts], 290,
                                       byte_fallback=byte_fallback)
    got = fast.encode_ids(lines, IdTable.from_vocab(vocab))
    assert [g.tolist() for g in got.split()] == _python_ids(tok, lines, vocab)
    assert (got.counts > 0).sum() == sum(1 for line in lines if line)
    for line, row_ids, s, e in zip(lines, got.split(), *(np.split(x, np.cumsum(got.counts)[:-1])
                                                         for x in (got.starts, got.ends))):
        if byte_fallback:  # lossless: decode gives the line back
            assert vocab.decode(row_ids.tolist()) == line
        assert (s.size == 0 and not line) or (e[-1] == len(line) and s[0] == 0 and (s < e).all())
    spans = fast.encode_ids(lines, IdTable.empty())  # no vocabulary: one entry per token
    assert (spans.ids == -1).all()
    assert spans.counts.tolist() == [len(fast.tokenize(line)) if line else 0 for line in lines]


def test_tokens_longer_than_the_buffer_take_the_same_fallback_as_the_reference():
    from speak.text.segment_vocab import SegmentVocab
    from speak.text.token_ids import IdTable
    from speak.tokenizer.lookup import TOKEN_BUFFER

    tok = _ngram_tokenizer()
    with torch.no_grad():  # a network that never fires: one token per line
        tok.net.linear1.bias.fill_(-100.0)
    tok.refresh()
    fast = tok._lookup()
    line = "the earth was formless " * 40
    assert len(line) > 3 * TOKEN_BUFFER
    vocab = SegmentVocab(["the ", "earth", "th", "e", "a", "r", "w", "s", " ", "f", "o", "m", "l", "n", "t", "h",
                          "was formless the earth"], byte_fallback=True)
    got = fast.encode_ids([line[:10], line, line + "☃"], IdTable.from_vocab(vocab))
    want = [[pid for pid, _, _ in vocab.pieces_of(x)] for x in (line[:10], line, line + "☃")]
    assert [g.tolist() for g in got.split()] == want
    assert vocab.decode(got.split()[2].tolist()) == line + "☃"


@pytest.mark.parametrize("piece", [1, 7, 1000])
def test_streaming_across_pieces_matches_whole_lines(piece):
    from speak.text.segment_vocab import SegmentVocab
    from speak.text.token_ids import IdTable

    fast = _ngram_tokenizer(lookahead=2)._lookup()
    text = TEXT * 3 + "a last line without newline"
    lines = text.split("\n")
    table = IdTable.from_vocab(SegmentVocab.from_segments([t for ts in fast.tokenize_batch(lines) for t in ts], 300,
                                                          byte_fallback=True))
    whole = fast.encode_ids(lines, table)
    pieces = [text[i : i + piece] for i in range(0, len(text), piece)]
    got = list(fast.stream_ids(pieces, table))
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), whole.ids)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), whole.ends)
    np.testing.assert_array_equal(np.concatenate([g[2] for g in got]), np.repeat(np.arange(len(lines)), whole.counts))


def test_generated_scan_is_written_once_for_numbas_disk_cache_and_compiles_without_a_writable_cache(tmp_path,
                                                                                                   monkeypatch):
    from speak.tokenizer.lookup import _load_kernel, kernel_source

    source = kernel_source(2, 1, True, False)
    monkeypatch.setenv("SPEAK_CACHE", str(tmp_path / "cache"))
    kernel = _load_kernel(source)
    files = list((tmp_path / "cache" / "kernels").glob("fused_scan_*.py"))
    assert len(files) == 1 and "cache=True" in files[0].read_text()
    assert kernel.py_func.__module__ == f"speak_{files[0].stem}"  # importable by name: numba reloads its cache
    assert _load_kernel(source).py_func.__module__ == kernel.py_func.__module__  # the same file, not rewritten
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("SPEAK_CACHE", str(blocker))
    assert _load_kernel(source).py_func.__module__ is None  # compiled in memory, no cache
