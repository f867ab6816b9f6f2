"""downsample / upsample: hand example, parity with the loop twins, causality, gradients."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speak.lm.pooling import (
    count_groups,
    downsample,
    downsample_reference,
    upsample,
    upsample_reference,
)


def test_hand_example_group_means():
    x = torch.tensor([[1.0, 3.0, 10.0, 20.0, 30.0, 7.0]]).unsqueeze(-1)  # [1, 6, 1]
    hard = torch.tensor([[0, 1, 0, 0, 1, 0]], dtype=torch.float32)  # groups {0,1} {2,3,4} {5 (trailing)}
    null = torch.tensor([-5.0])
    groups, mask = downsample(x, hard, null)
    assert groups.shape == (1, 4, 1)
    assert groups[0, :, 0].tolist() == [-5.0, 2.0, 20.0, 7.0]
    assert mask.tolist() == [[True, True, True, True]]
    assert count_groups(hard).tolist() == [3]


def test_hand_example_upsample_reads_last_completed_group():
    hard = torch.tensor([[0, 1, 0, 0, 1, 0]], dtype=torch.float32)
    groups = torch.tensor([[100.0, 101.0, 102.0, 103.0]]).unsqueeze(-1)  # slot 0 null, 1.. real
    up = upsample(groups, hard)
    # t=0,1: nothing closed before -> null; the group closing at t=1 is visible from t=2; the one at 4 from 5.
    assert up[0, :, 0].tolist() == [100.0, 100.0, 101.0, 101.0, 101.0, 102.0]


def test_padding_and_trailing_groups():
    x = torch.arange(8, dtype=torch.float32).view(2, 4, 1)
    hard = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.float32)
    groups, mask = downsample(x, hard, torch.zeros(1))
    assert groups.shape == (2, 5, 1)
    assert mask.tolist() == [[True] * 5, [True, True, False, False, False]]
    assert groups[1, 1, 0].item() == (4 + 5 + 6 + 7) / 4
    assert groups[1, 2:].abs().sum() == 0
    assert count_groups(hard).tolist() == [4, 1]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 17),
    st.integers(1, 4),
    st.floats(0.0, 1.0),
    st.integers(0, 10_000),
)
def test_fast_matches_loop(B, L, D, rate, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D, generator=g)
    hard = (torch.rand(B, L, generator=g) < rate).float()
    null = torch.randn(D, generator=g)
    fast, fmask = downsample(x, hard, null)
    slow, smask = downsample_reference(x, hard, null)
    assert fast.shape == slow.shape
    torch.testing.assert_close(fast, slow)
    assert torch.equal(fmask, smask)
    y = torch.randn(fast.shape, generator=g)
    torch.testing.assert_close(upsample(y, hard), upsample_reference(y, hard))


def test_gradients_reach_x_like_the_loop():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3, requires_grad=True)
    hard = (torch.rand(2, 9) < 0.4).float()
    null = torch.randn(3)
    w = torch.randn(2, 9, 3)
    (upsample(torch.cumsum(downsample(x, hard, null)[0], 1), hard) * w).sum().backward()
    g_fast = x.grad.clone()
    x.grad = None
    (upsample_reference(torch.cumsum(downsample_reference(x, hard, null)[0], 1), hard) * w).sum().backward()
    torch.testing.assert_close(g_fast, x.grad)


def test_gradients_reach_hard_for_straight_through():
    torch.manual_seed(0)
    x = torch.randn(2, 10, 4)
    logits = torch.randn(2, 10, requires_grad=True)
    soft = torch.sigmoid(logits)
    hard = (soft > 0.5).float() + soft - soft.detach()  # straight-through
    groups, _ = downsample(x, hard, torch.zeros(4))
    out = upsample(torch.cumsum(groups, 1), hard)
    out.pow(2).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # values are unaffected by the straight-through construction
    groups2, _ = downsample(x, hard.detach(), torch.zeros(4))
    torch.testing.assert_close(groups, groups2)


def test_pooling_path_is_causal():
    """A causal op over slots between downsample and upsample never lets x[> t] reach position <= t."""
    torch.manual_seed(1)
    B, L, D = 2, 16, 3
    hard = (torch.rand(B, L) < 0.35).float()
    x = torch.randn(B, L, D)
    null = torch.randn(D)

    def run(inp):
        groups, _ = downsample(inp, hard, null)
        return upsample(torch.cumsum(groups, dim=1), hard)  # causal mixing over slots

    base = run(x)
    for t in range(L - 1):
        y = x.clone()
        y[:, t + 1 :] += torch.randn(B, L - t - 1, D)
        torch.testing.assert_close(run(y)[:, : t + 1], base[:, : t + 1])
        # Stronger: position t must not see its own character through the pooled path either.
        z = x.clone()
        z[:, t:] += 1.0
        torch.testing.assert_close(run(z)[:, : t + 1], base[:, : t + 1])
