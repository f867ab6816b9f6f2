"""The tokenizer network (Eq. 2-4, 7-11), lookup inference parity, lossless tokenization."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speak.errors import SpeakError
from speak.neuron import lif_scan
from speak.tokenizer import SpeakTokenizerNet, TokenizerConfig


def test_forward_shapes_and_mask_drives_reset(small_tokenizer):
    net = small_tokenizer.net
    ids = torch.as_tensor(small_tokenizer.vocab.encode_array("the earth was empty"))[None]  # [1, L]
    out = net(ids)
    for t in (out.current, out.u, out.s, out.v, out.mask_logits, out.mask):
        assert t.shape == ids.shape
    assert out.mask.dtype == torch.bool
    assert torch.equal(out.mask, out.mask_logits > 0)  # m = 1(sigmoid(e) > 0.5), Eq. 9
    assert set(out.s.unique().tolist()) <= {0.0, 1.0}
    assert (out.current.abs() < 1).all()  # Linear1 + tanh
    u, s, v = lif_scan(out.current, out.mask, theta=0.8)  # the same scan, Eq. 10
    torch.testing.assert_close(out.u, u)
    torch.testing.assert_close(out.v, v)


def test_gradients_reach_both_heads_and_encoder(small_tokenizer):
    net = small_tokenizer.net.train()
    ids = torch.as_tensor(small_tokenizer.vocab.encode_array("the earth was empty and formless"))[None]
    out = net(ids)
    (out.u.square().mean() + out.mask_logits.mean()).backward()
    assert net.linear1.weight.grad.abs().sum() > 0
    assert net.linear2.weight.grad.abs().sum() > 0
    assert net.encoder.embed.weight.grad.abs().sum() > 0


def test_features_encoder_uses_outer_features():
    net = SpeakTokenizerNet(TokenizerConfig(vocab_size=10, encoder="features", feature_dim=8, linear1="mlp"))
    feats = torch.randn(2, 5, 8)
    out = net(None, features=feats)
    assert out.u.shape == (2, 5)
    with pytest.raises(ValueError, match="pass features"):
        net(torch.zeros(2, 5, dtype=torch.long))


@pytest.mark.parametrize("mode", ["entropy-aware", "all-hard", "all-soft", "no-reset", "hard-no-reset"])
def test_lookup_scan_matches_network(small_tokenizer, sample_text, mode):
    small_tokenizer.net.cfg.reset_mode = mode
    small_tokenizer.net.neuron.reset_mode = small_tokenizer.net.neuron.reset_mode.parse(mode)
    tables = small_tokenizer.net.lookup_tables()
    for line in sample_text.splitlines():
        ids = small_tokenizer.vocab.encode_array(line)
        with torch.no_grad():  # the slow twin: the network's own forward
            ref = small_tokenizer.net(torch.as_tensor(ids)[None]).s[0].numpy() > 0.5
        assert ref.any() and not ref.all()
        np.testing.assert_array_equal(tables.spikes(ids), ref)


def test_spikes_many_restarts_state_per_text(small_tokenizer):
    texts = ["the earth", "", "was formless", "x"]
    many = small_tokenizer.spikes_many(texts)
    for text, s in zip(texts, many):
        assert len(s) == len(text)
        np.testing.assert_array_equal(s, small_tokenizer.spikes(text))


def test_tokenize_is_lossless_and_segments(small_tokenizer):
    text = "In the beginning God created the heavens and the earth."
    tokens = small_tokenizer.tokenize(text)
    assert "".join(tokens) == text
    assert 1 < len(tokens) < len(text)
    offsets = small_tokenizer.offsets(text)
    assert [text[a:b] for a, b in offsets] == tokens


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_any_unicode(small_tokenizer_session, text):
    assert "".join(small_tokenizer_session.tokenize(text)) == text


@pytest.fixture(scope="module")
def small_tokenizer_session():
    from speak.text.vocab import CharVocab
    from speak.tokenizer import SpeakTokenizer

    torch.manual_seed(1)
    vocab = CharVocab.build(["In the beginning God created the heavens and the earth."])
    net = SpeakTokenizerNet(TokenizerConfig(vocab_size=len(vocab), char_dim=8))
    with torch.no_grad():
        net.linear1.bias.fill_(0.6)
    return SpeakTokenizer(net, vocab)


@pytest.mark.parametrize("bad,match", [
    (dict(vocab_size=1), "vocab_size"),
    (dict(vocab_size=10, encoder="rnn"), "unknown encoder"),
    (dict(vocab_size=10, linear1="deep"), "unknown linear1"),
    (dict(vocab_size=10, theta=2.0), "theta"),
    (dict(vocab_size=10, reset_mode="sideways"), "unknown reset mode"),
    (dict(vocab_size=10, encoder="features"), "feature_dim"),
])
def test_config_validation(bad, match):
    with pytest.raises(SpeakError, match=match):
        TokenizerConfig(**bad)
