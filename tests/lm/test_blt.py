"""BLT entropy patching (speak.lm.boundaries.blt): the three modes on a hand-made entropy sequence."""

from __future__ import annotations

import pytest
import torch

from speak.lm.boundaries.blt import boundaries_from_next_entropy, patch_starts

# H(x_i) for i = 0..6 (nats)
H = torch.tensor([[0.2, 1.0, 3.0, 2.5, 2.6, 0.5, 2.0]])


@pytest.mark.parametrize(
    ("mode", "want"),
    [
        ("global", [1, 0, 1, 1, 1, 0, 0]),  # H_i > 2.2
        ("monotonic", [1, 1, 1, 0, 0, 0, 1]),  # H_i - H_{i-1} > 0.4: +0.8, +2.0, -0.5, +0.1, -2.1, +1.5
        ("global+monotonic", [1, 0, 1, 0, 0, 0, 0]),  # both
    ],
)
def test_three_modes_by_hand(mode, want):
    assert patch_starts(H, mode, threshold=2.2, rel_threshold=0.4).int().tolist() == [want]


@pytest.mark.parametrize(
    ("mode", "want"),
    [
        ("global", [0, 1, 1, 1, 0, 0]),  # start at i closes our group at i - 1
        ("monotonic", [0, 1, 0, 0, 0, 1]),  # no H(x_0) in a window: no monotonic start at i = 1
        ("global+monotonic", [0, 1, 0, 0, 0, 0]),
    ],
)
def test_boundaries_from_next_entropy(mode, want):
    next_entropy = H[:, 1:]  # logits at t give H(x_{t+1})
    hard = boundaries_from_next_entropy(next_entropy, mode, threshold=2.2, rel_threshold=0.4)
    assert hard.tolist() == [[float(x) for x in want]]


def test_first_position_always_starts_and_no_gradient():
    h = torch.zeros(2, 5, requires_grad=True)
    starts = patch_starts(h, "global", threshold=1.0, rel_threshold=1.0)
    assert starts[:, 0].all() and not starts[:, 1:].any()
    assert not boundaries_from_next_entropy(h, "global", 1.0, 1.0).requires_grad


def test_boundaries_are_causal():
    g = torch.Generator().manual_seed(0)
    h = 3.0 * torch.rand(2, 20, generator=g)
    for mode in ("global", "monotonic", "global+monotonic"):
        for t in (0, 7, 15):
            h2 = h.clone()
            h2[:, t + 1 :] = 3.0 * torch.rand(2, 20 - t - 1, generator=g)
            a = boundaries_from_next_entropy(h, mode, 1.5, 0.3)
            b = boundaries_from_next_entropy(h2, mode, 1.5, 0.3)
            assert torch.equal(a[:, : t + 1], b[:, : t + 1])


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown BLT patching mode"):
        patch_starts(H, "local", 1.0, 1.0)


# ---------------------------------------------------------------------------------------------- the source


def _vanilla_weights(tmp_path, vocab_size):
    from safetensors.torch import save_file

    from speak.lm.hourglass import BoundaryConfig, HourglassConfig, HourglassLM

    torch.manual_seed(3)
    lm = HourglassLM(HourglassConfig.from_preset("cpu-tiny", vocab_size, boundary=BoundaryConfig("none")))
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, str(path))
    return lm, path


def test_blt_source_trains_its_entropy_model_alongside():
    from ._helpers import encode, tiny_model

    model = tiny_model("blt").train()
    src = model.boundary_source
    chars = encode("the quick brown fox jumps over the lazy dog").unsqueeze(0)
    out = model(chars)
    losses = src.aux_losses(out.boundary, out.logits, None, torch.ones_like(chars, dtype=torch.bool))
    assert set(losses) == {"entropy_lm"}
    losses["entropy_lm"].backward()
    em = src.entropy_model
    assert float(em.head.weight.grad.abs().sum()) > 0 and float(em.embed.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("boundary_source."))
    model.eval()
    assert src.aux_losses(model(chars).boundary, out.logits, None, chars > 0) == {}  # no entropy loss at eval


def test_blt_from_a_finished_run_is_frozen_and_patches_by_its_entropy(tmp_path):
    from speak.lm.boundaries.losses import predictive_entropy

    from ._helpers import ALPHABET, encode, tiny_model

    lm, path = _vanilla_weights(tmp_path, len(ALPHABET))
    model = tiny_model("blt", entropy_weights=str(path), threshold=3.0, mode="global").train()
    src = model.boundary_source
    assert not any(p.requires_grad for p in src.entropy_model.parameters())
    chars = encode("the quick brown fox jumps over the lazy dog").unsqueeze(0)
    out = model(chars)
    with torch.no_grad():
        h_next = predictive_entropy(lm.eval()(chars).logits)  # [1, L]
    assert torch.equal(out.boundary.hard, (h_next > 3.0).float())  # global mode: hard[t] = 1(H(x_{t+1}) > theta)
    assert src.aux_losses(out.boundary, out.logits, None, chars > 0) == {}


def test_blt_options_fail_clearly(tmp_path):
    from speak.errors import SpeakError
    from speak.lm.boundaries import BoundaryConfig

    from ._helpers import tiny_model

    with pytest.raises(SpeakError, match="boundary.mode"):
        BoundaryConfig(name="blt", mode="local").validate()
    with pytest.raises(SpeakError, match="entropy_preset"):
        BoundaryConfig(name="blt", entropy_preset="huge").validate()
    with pytest.raises(SpeakError, match="no file"):
        BoundaryConfig(name="blt", entropy_weights=str(tmp_path / "missing.safetensors")).validate()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SpeakError, match="cannot read"):
        tiny_model("blt", entropy_weights=str(bad))
    _, path = _vanilla_weights(tmp_path, 7)  # another vocabulary
    with pytest.raises(SpeakError, match="vanilla character LM of this vocabulary"):
        tiny_model("blt", entropy_weights=str(path))
