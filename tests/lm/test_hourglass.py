"""HourglassLM: config validation, presets, shapes, parameter counts, causality for every boundary source."""

from __future__ import annotations

import pytest
import torch

from speak.errors import SpeakError
from speak.lm.hourglass import PRESETS, BoundaryConfig, HourglassConfig, HourglassLM, count_parameters

from ._helpers import ALPHABET, all_sources, encode, tiny_config, tiny_model


def test_presets():
    assert PRESETS["paper"]["layers"] == (2, 8, 2)
    assert PRESETS["paper"]["d_model"] == 512 and PRESETS["paper"]["n_heads"] == 8
    assert PRESETS["paper"]["d_ff"] == 2048 and PRESETS["paper"]["dropout"] == 0.1
    for name in PRESETS:
        HourglassConfig.from_preset(name, 30)
    with pytest.raises(SpeakError, match="unknown hourglass preset 'huge'"):
        HourglassConfig.from_preset("huge", 30)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(boundary={"name": "bpe"}), "unknown boundary source 'bpe'; valid: .*dtp-entropy"),
        (dict(d_model=30, n_heads=4), "divisible by n_heads"),
        (dict(d_model=0), "d_model must be a positive integer"),
        (dict(n_heads=-1), "n_heads must be a positive integer"),
        (dict(d_ff=0), "d_ff must be a positive integer"),
        (dict(layers=(1, -1, 1)), "layers must be three non-negative"),
        (dict(layers=(0, 0, 0)), "at least one layer"),
        (dict(dropout=1.0), "dropout"),
        (dict(boundary=BoundaryConfig(name="whitespace")), "needs HourglassConfig.alphabet"),
        (dict(alphabet=("a", "b")), "alphabet has 2 entries"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(SpeakError, match=match):
        HourglassConfig(vocab_size=10, **kwargs)


def test_boundary_dict_is_accepted():
    cfg = HourglassConfig(vocab_size=10, d_model=32, n_heads=2, boundary={"name": "fixed", "fixed_k": 3})
    assert cfg.boundary.name == "fixed" and cfg.boundary.options.fixed_k == 3


def test_paper_preset_size():
    torch.manual_seed(0)
    model = HourglassLM(HourglassConfig.from_preset("paper", 27, boundary=BoundaryConfig(name="dtp-gumbel")))
    lm, tok = count_parameters(model)
    assert 35e6 < lm < 45e6  # ~41M in DTP
    assert tok == 512 * 2048 + 2048 + 2048 + 1  # d -> 4d -> 1


def test_parameter_split():
    assert count_parameters(tiny_model("none"))[1] == 0
    assert count_parameters(tiny_model("fixed"))[1] == 0
    lm_none, _ = count_parameters(tiny_model("none"))
    lm_g, tok_g = count_parameters(tiny_model("dtp-gumbel"))
    assert lm_g == lm_none and tok_g > 0
    _, tok_m = count_parameters(tiny_model("magnet"))
    assert tok_m == 7 * tok_g  # common + 6 scripts in the test alphabet


@pytest.mark.parametrize("name", all_sources())
def test_shapes_and_max_len(name):
    model = tiny_model(name)
    chars = encode("the quick brown fox").unsqueeze(0).repeat(2, 1)
    out = model(chars)
    assert out.logits.shape == (2, chars.shape[1], len(ALPHABET))
    assert out.boundary.hard.shape == chars.shape
    with pytest.raises(SpeakError, match="max_len"):
        model(torch.zeros(1, model.config.max_len + 1, dtype=torch.long))


def _assert_causal(model, train: bool, L: int = 40, ts=(0, 5, 17, 30)):
    model.train(train)
    g = torch.Generator().manual_seed(123)
    V = len(ALPHABET)
    x = torch.randint(2, V, (2, L), generator=g)
    changed_after = False
    for t in ts:
        y = x.clone()
        y[:, t + 1 :] = torch.randint(2, V, (2, L - t - 1), generator=g)
        torch.manual_seed(7)
        a = model(x).logits
        torch.manual_seed(7)
        b = model(y).logits
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=1e-5, rtol=1e-5, msg=f"leak at t={t}")
        changed_after |= not torch.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-5)
    assert changed_after  # the test is not vacuous


@pytest.mark.parametrize("name", all_sources())
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_causality_every_source(name, train):
    """Logits at positions <= t do not change when characters > t change (dropout 0 in cpu-tiny; Gumbel noise
    in train mode is reproduced by the fixed seed)."""
    _assert_causal(tiny_model(name), train)


def test_causality_with_many_groups_and_no_groups():
    # every char its own group, and a single trailing group per sequence
    _assert_causal(tiny_model("fixed", fixed_k=1), False)
    _assert_causal(tiny_model("fixed", fixed_k=64), False)


def test_vanilla_runs_all_layers_at_char_level():
    model = tiny_model("none")
    assert not model.shortens
    assert tiny_model("fixed").shortens
    assert len(model.pre) + len(model.short) + len(model.post) == sum(tiny_config("none").layers)


def test_pre_ln_option_runs():
    cfg = HourglassConfig.from_preset("cpu-tiny", len(ALPHABET), norm_first=True, boundary=BoundaryConfig(name="fixed"))
    out = HourglassLM(cfg)(encode("hello world").unsqueeze(0))
    assert torch.isfinite(out.logits).all()
