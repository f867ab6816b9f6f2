"""Boundary sources: registry, rule-based patterns, DTP predictors, Gumbel eval determinism, MAGNET scripts."""

from __future__ import annotations

import pytest
import torch

from speak.errors import SpeakError
from speak.lm.boundaries import BoundaryConfig, gumbel_sigmoid_hard, make_boundary_source, source_names
from speak.lm.boundaries.learned import dither_boundaries
from speak.lm.scripts import (
    MAX_CHAR_PRIOR,
    SCRIPT_INDEX,
    char_priors,
    char_script,
    script_table,
    sequence_scripts,
    text_scripts,
    utf8_widths,
)

from ._helpers import ALPHABET, SOURCES, encode, tiny_model

D = 8


def _source(name, **opts):
    return make_boundary_source(BoundaryConfig(name=name, **opts), D, len(ALPHABET), ALPHABET)


def test_registry_has_every_source():
    assert set(SOURCES) | {"speak"} == set(source_names())


def test_unknown_source_lists_valid_names():
    with pytest.raises(SpeakError, match="unknown boundary source 'bpe'.*dtp-gumbel.*whitespace"):
        make_boundary_source(BoundaryConfig(name="bpe"), D, 5)


def test_none_fixed_whitespace_patterns():
    chars = encode("ab cd ef").unsqueeze(0)  # [1, 8]
    feats = torch.zeros(1, 8, D)
    assert _source("none")(chars, feats).hard.tolist() == [[1.0] * 8]
    assert _source("fixed", fixed_k=3)(chars, feats).hard.tolist() == [[0, 0, 1, 0, 0, 1, 0, 0]]
    assert _source("whitespace")(chars, feats).hard.tolist() == [[0, 0, 1, 0, 0, 1, 0, 0]]


def test_whitespace_needs_alphabet():
    with pytest.raises(SpeakError, match="alphabet"):
        make_boundary_source(BoundaryConfig(name="whitespace"), D, len(ALPHABET))


@pytest.mark.parametrize("name", ["dtp-entropy", "dtp-unigram"])
def test_dtp_supervised_hard_is_thresholded_logits_without_grad(name):
    torch.manual_seed(0)
    src = _source(name)
    feats = torch.randn(2, 12, D, requires_grad=True)
    out = src(torch.zeros(2, 12, dtype=torch.long), feats)
    assert out.logits.shape == (2, 12)
    assert torch.equal(out.hard, (torch.sigmoid(out.logits) > 0.5).float())
    assert not out.hard.requires_grad
    assert out.logits.requires_grad


def test_gumbel_eval_is_deterministic_and_noise_free():
    torch.manual_seed(0)
    src = _source("dtp-gumbel").eval()
    feats = torch.randn(3, 20, D)
    chars = torch.zeros(3, 20, dtype=torch.long)
    a = src(chars, feats)
    b = src(chars, feats)
    assert torch.equal(a.hard, b.hard)
    assert torch.equal(a.hard, dither_boundaries(torch.sigmoid(a.logits)))  # the default: at the predicted rate
    mode = _source("dtp-gumbel", eval_sampling="mode").eval()
    mode.load_state_dict(src.state_dict())
    assert torch.equal(mode(chars, feats).hard, (torch.sigmoid(a.logits) > 0.5).float())


def test_gumbel_eval_model_forward_is_deterministic():
    model = tiny_model("dtp-gumbel").eval()
    chars = encode("the quick brown fox jumps over").unsqueeze(0)
    with torch.no_grad():
        a, b = model(chars), model(chars)
    assert torch.equal(a.boundary.hard, b.boundary.hard)
    assert torch.equal(a.logits, b.logits)


def test_gumbel_training_is_straight_through():
    torch.manual_seed(0)
    logits = torch.zeros(4, 200, requires_grad=True)
    hard = gumbel_sigmoid_hard(logits, 0.5, training=True)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    assert 0.3 < hard.detach().mean().item() < 0.7  # p = 0.5 with noise
    hard.sum().backward()
    assert logits.grad.abs().sum() > 0


def test_magnet_script_detection_samples():
    samples = {
        "latin": "hello Straße é",
        "cyrillic": "привет",
        "hebrew": "שלום",
        "arabic": "مرحبا",
        "devanagari": "नमस्ते",  # includes vowel signs and virama (combining marks)
        "han": "你好世界",
    }
    for script, text in samples.items():
        letters = [c for c in text if not c.isspace()]
        assert {char_script(c) for c in letters} == {script}, script
    assert char_script("α") == "other"
    for c in "0123 .,!?-\n":
        assert char_script(c) is None
    assert char_script("<unk>") is None


def test_magnet_inheritance_is_backward():
    assert text_scripts("12 ab, 3 пр. 5") == (
        ["common"] * 3 + ["latin"] * 6 + ["cyrillic"] * 5
    )
    table = script_table(ALPHABET)
    text = ", ab 1 пр. ש 你."
    chars = encode(text).unsqueeze(0)
    got = sequence_scripts(chars, table)[0].tolist()
    assert got == [SCRIPT_INDEX[s] for s in text_scripts(text)]


def test_magnet_one_predictor_per_present_script_and_priors():
    src = _source("magnet")
    assert set(src.scripts) == {"common", "latin", "cyrillic", "hebrew", "arabic", "devanagari", "han"}
    latin_only = ("<pad>", "<unk>", " ", "a", "b", ".")
    src2 = make_boundary_source(BoundaryConfig(name="magnet"), D, len(latin_only), latin_only)
    assert src2.scripts == ("common", "latin")
    assert src.priors[SCRIPT_INDEX["latin"]].item() == pytest.approx(0.2)
    assert src.priors[SCRIPT_INDEX["cyrillic"]].item() == pytest.approx(0.1)
    assert src.priors[SCRIPT_INDEX["devanagari"]].item() == pytest.approx(0.08)


def test_magnet_uses_the_positions_script_predictor():
    torch.manual_seed(0)
    src = _source("magnet").eval()
    text = "ab пр"
    chars = encode(text).unsqueeze(0)
    feats = torch.randn(1, len(text), D)
    out = src(chars, feats)
    assert out.script_ids[0].tolist() == [SCRIPT_INDEX[s] for s in text_scripts(text)]
    want_latin = src.predictors["latin"](feats[0, :3])
    want_cyr = src.predictors["cyrillic"](feats[0, 3:])
    torch.testing.assert_close(out.logits[0], torch.cat([want_latin, want_cyr]))


def test_config_rejects_bad_options():
    with pytest.raises(SpeakError, match="fixed_k"):
        BoundaryConfig(name="fixed", fixed_k=0).validate()
    with pytest.raises(SpeakError, match="prior"):
        BoundaryConfig(name="dtp-gumbel", prior=1.5).validate()
    with pytest.raises(SpeakError, match="unknown scripts"):
        BoundaryConfig(name="magnet", script_priors={"klingon": 0.1}).validate()


def test_speak_source_hard_is_spikes():
    model = tiny_model("speak").eval()
    chars = encode("the quick brown fox").unsqueeze(0)
    out = model(chars)
    tok = out.boundary.tokenizer
    assert tok is not None
    assert torch.equal(out.boundary.hard, tok.s.to(out.boundary.hard.dtype))


def test_gtok_linear1_is_dtps_mlp_without_tanh():
    """App. C.1: GTok's Linear1 is DTP's predictor MLP with no tanh, so a current above u_th fires at once, also on
    the character right after a hard reset; with tanh (the standalone Linear + tanh, App. C.2) it never can."""
    chars = encode("the quick brown fox").unsqueeze(0)
    for tanh, fires in ((None, True), (True, False)):
        opts = {"reset_mode": "all-hard"} if tanh is None else {"reset_mode": "all-hard", "tanh": tanh}
        model = tiny_model("speak", speak=opts).eval()
        net = model.boundary_source.net
        assert net.cfg.linear1 == "mlp" and net.cfg.tanh is (tanh is True)
        with torch.no_grad():
            net.linear1[-1].bias.fill_(3.0)
            net.linear1[-1].weight.zero_()
            tok = model(chars).boundary.tokenizer
        assert bool(tok.s.all()) is fires  # every position: u_t = u_reset + I_t = 3 > u_th (no tanh)
        assert (tok.current.max().item() > 1.0) is fires


def test_speak_source_parameter_split_and_own_encoder_option():
    from speak.lm.hourglass import count_parameters

    gtok = tiny_model("speak")
    _, tok = count_parameters(gtok)
    net = gtok.boundary_source.net
    scales = 2  # L_mem's learnable alpha and beta (GTok, App. C.1) count as tokenizer parameters
    assert tok == scales + sum(p.numel() for n, p in net.named_parameters() if not n.startswith("encoder"))
    own = tiny_model("speak", speak={"encoder": "char-mlp", "char_dim": 16})
    _, tok_own = count_parameters(own)
    assert tok_own == scales + sum(p.numel() for p in own.boundary_source.net.parameters())
    out = own(encode("ab cd").unsqueeze(0))
    assert out.boundary.hard.shape == (1, 5)


def test_magnet_priors_are_per_byte_converted_per_character():
    """MAGNET's priors count boundaries per UTF-8 byte: per character they are p x the mean bytes per character of
    the script's positions in the sequence (Hebrew letters are 2 bytes, their inherited spaces 1), capped."""
    alphabet = ("<pad>", "<unk>", " ", "a", "b", "ש", "ל", "ו", "म", "न")
    widths = utf8_widths(alphabet)
    assert widths.tolist() == [1, 1, 1, 1, 1, 2, 2, 2, 3, 3]
    table = script_table(alphabet)
    idx = {c: i for i, c in enumerate(alphabet)}
    chars = torch.tensor([[idx[c] for c in "ab שלו שלו"], [idx[c] for c in "ab ab ab a"]])  # [2, 10]
    scripts = sequence_scripts(chars, table)
    byte_priors = torch.full((len(SCRIPT_INDEX),), 0.1)
    got = char_priors(byte_priors, widths[chars], scripts)  # [2, S]
    he, la = SCRIPT_INDEX["hebrew"], SCRIPT_INDEX["latin"]
    # row 0: Hebrew spans "שלו שלו" = 6 letters x 2 bytes + 1 inherited space = 13 bytes over 7 characters
    assert got[0, he].item() == pytest.approx(0.1 * 13 / 7)
    assert got[0, la].item() == pytest.approx(0.1) and got[1, la].item() == pytest.approx(0.1)
    assert got[1, he].item() == pytest.approx(0.1)  # absent script: its byte prior (contributes nothing)
    deva = torch.tensor([[idx[c] for c in "मनमन"]])
    capped = char_priors(torch.full((len(SCRIPT_INDEX),), 0.3), widths[deva], sequence_scripts(deva, table))
    assert capped[0, SCRIPT_INDEX["devanagari"]].item() == pytest.approx(MAX_CHAR_PRIOR)  # 0.3 x 3 bytes = 0.9
    # the source's own priors (per byte: Hebrew 0.1, Latin 0.2) go through the same conversion in its loss
    src = make_boundary_source(BoundaryConfig(name="magnet"), D, len(alphabet), alphabet)
    out = src(chars, torch.randn(2, 10, D))
    mine = src.char_priors(out)
    assert mine[0, he].item() == pytest.approx(0.1 * 13 / 7) and mine[0, la].item() == pytest.approx(0.2)


def test_dither_boundaries_keep_the_predicted_rate_causally():
    torch.manual_seed(0)
    p = torch.sigmoid(torch.randn(3, 200) - 1.5)  # mostly below 0.5: "mode" would give (almost) nothing
    hard = dither_boundaries(p)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    csum = torch.cumsum(p.double(), 1)
    assert (torch.cumsum(hard.double(), 1) - csum).abs().max() < 1.0  # every prefix within one of sum p
    q = p.clone()
    q[:, 120:] = torch.rand(3, 80)
    assert torch.equal(dither_boundaries(q)[:, :120], hard[:, :120])  # causal
    assert torch.equal(dither_boundaries(torch.full((1, 6), 0.5)), torch.tensor([[0.0, 1, 0, 1, 0, 1]]))


@pytest.mark.parametrize("name", ["dtp-gumbel", "magnet"])
def test_eval_sampling_dither_matches_the_predicted_rate(name):
    model = tiny_model(name, eval_sampling="dither").eval()
    chars = encode("the quick brown fox jumps over the lazy dog").unsqueeze(0)
    with torch.no_grad():
        pred = model.boundary_source.predictors["latin"] if name == "magnet" else model.boundary_source.predictor
        pred.net[-1].bias.fill_(-1.4)  # p about 0.2 everywhere
        pred.net[-1].weight.mul_(0.01)
        b = model(chars).boundary
    expected = torch.sigmoid(b.logits).sum().item()
    assert abs(b.hard.sum().item() - expected) < 1.0 and b.hard.sum() > 0
    mode = tiny_model(name, eval_sampling="mode").eval()
    mode.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert mode(chars).boundary.hard.sum() == 0  # the mode: no boundary below p = 0.5
    with pytest.raises(SpeakError, match="eval_sampling"):
        BoundaryConfig(name=name, eval_sampling="noise").validate()
    assert BoundaryConfig(name=name).options.eval_sampling == "dither"  # the default (docs/decisions.md)
