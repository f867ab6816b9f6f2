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
