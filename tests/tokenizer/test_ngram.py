"""The hashed causal n-gram encoder: its keys, the lookup scan's parity with the network, save/load."""

import numpy as np
import pytest
import torch

from speak.errors import SpeakError
from speak.text.vocab import CharVocab
from speak.tokenizer import SpeakTokenizer, SpeakTokenizerNet, TokenizerConfig
from speak.tokenizer.encoders import NGRAM_MASK, NGRAM_PRIME, ngram_keys
from speak.tokenizer.fast import FastSpeakTokenizer

TEXT = "In the beginning God created the heavens and the earth.\nThe earth was formless and empty.\n"


def _plain_key(ids: list[int], t: int, n: int, buckets: int, r: int = 0) -> int:
    """The key's definition, transcribed: the n characters ending at t + r, <pad> (0) outside the text."""
    h = n + 1000 * r
    for j in range(t + r - n + 1, t + r + 1):
        h = (h * NGRAM_PRIME + (ids[j] if 0 <= j < len(ids) else 0) + 1) & NGRAM_MASK
    return (h ^ (h >> 15)) % buckets


@pytest.mark.parametrize("n,r", [(2, 0), (3, 0), (5, 0), (2, 1), (3, 2)])
def test_ngram_keys_follow_their_definition(n, r):
    rng = np.random.default_rng(n)
    ids = rng.integers(1, 300, size=(3, 17))
    keys = ngram_keys(torch.from_numpy(ids), n, 128, r).numpy()
    for row in range(3):
        assert [_plain_key(ids[row].tolist(), t, n, 128, r) for t in range(17)] == keys[row].tolist()


def test_hash_constants_agree_between_torch_and_the_compiled_scan():
    from speak.tokenizer import lookup

    assert (lookup.NGRAM_PRIME, lookup.NGRAM_MASK) == (NGRAM_PRIME, NGRAM_MASK)


def test_ngram_keys_see_only_the_past():
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    changed = ids.clone()
    changed[0, 3] = 2
    a, b = ngram_keys(ids, 3, 1000), ngram_keys(changed, 3, 1000)
    assert torch.equal(a[0, :3], b[0, :3])  # positions before the change keep their keys
    assert not torch.equal(a[0, 3:], b[0, 3:])


def _ngram_tokenizer(mode: str = "entropy-aware", tanh: bool = True, lookahead: int = 0) -> SpeakTokenizer:
    torch.manual_seed(0)
    vocab = CharVocab.build([TEXT])
    cfg = TokenizerConfig(vocab_size=len(vocab), encoder="char-ngram", char_dim=16, ngram_order=4, ngram_buckets=128,
                          ngram_lookahead=lookahead, tanh=tanh, reset_mode=mode)
    net = SpeakTokenizerNet(cfg)
    with torch.no_grad():  # centre the currents so the random network fires every few characters
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
