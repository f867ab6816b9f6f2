"""downsample / upsample: hand example, parity with the loop twins and with a plain-Python transcription of DTP's
pooling (Nawrot et al. 2023, written from the paper's description), causality, gradients."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from speak.lm.hourglass import HourglassConfig, HourglassLM
from speak.lm.pooling import (
    count_groups,
    downsample,
    downsample_reference,
    groups_closed,
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


def test_hand_example_upsample_reads_groups_closed_at_or_before_t():
    hard = torch.tensor([[0, 1, 0, 0, 1, 0]], dtype=torch.float32)
    groups = torch.tensor([[100.0, 101.0, 102.0, 103.0]]).unsqueeze(-1)  # slot 0 null, 1.. real
    up = upsample(groups, hard)
    # t=0: nothing closed -> null; the group closing at t=1 is read from t=1 on; the one closing at 4 from t=4.
    assert up[0, :, 0].tolist() == [100.0, 101.0, 101.0, 101.0, 102.0, 102.0]
    assert groups_closed(hard)[0].tolist() == [0.0, 1.0, 1.0, 1.0, 2.0, 2.0]


def test_issue_example_slots():
    """Boundaries [0,0,1,0,1,0] read slots [0,0,1,1,2,2] (DTP), not [0,0,0,1,1,2]."""
    hard = torch.tensor([[0, 0, 1, 0, 1, 0]], dtype=torch.float32)
    slots = torch.arange(4, dtype=torch.float32).view(1, 4, 1)
    assert upsample(slots, hard)[0, :, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    assert dtp_slots([0, 0, 1, 0, 1, 0]) == [0, 0, 1, 1, 2, 2]


# ---------------------------------------------------------------------------------------------------------------
# DTP's pooling, transcribed in plain Python from the paper's description (Nawrot et al. 2023, Sec. 2 and Fig. 1):
# a boundary closes a segment; each segment is averaged; a null group is prepended so the intermediate (causal)
# layers never hand a position its own, still open segment; after the intermediate layers every position gets, by
# duplication, the output at the slot of the last segment that has been closed by then (its own, if it closes one).
# Lists of floats only, no torch, so it shares no code with speak.lm.pooling.


def dtp_slots(boundaries: list[int]) -> list[int]:
    """Slot read by each position: 1 + index of the last segment closed at or before it (0 = null group)."""
    out, closed = [], 0
    for b in boundaries:
        closed += int(b)
        out.append(closed)
    return out


def dtp_segments(x: list[list[float]], boundaries: list[int]) -> list[list[float]]:
    """Means of the closed segments (the unfinished tail is never read, so it is not a slot)."""
    segs, current = [], []
    for vec, b in zip(x, boundaries):
        current.append(vec)
        if b:
            segs.append([sum(col) / len(current) for col in zip(*current)])
            current = []
    return segs


def plain_layer_norm(v: list[float], eps: float = 1e-5) -> list[float]:
    mu = sum(v) / len(v)
    var = sum((a - mu) ** 2 for a in v) / len(v)
    return [(a - mu) / math.sqrt(var + eps) for a in v]


def plain_prefix_mix(seq: list[list[float]]) -> list[list[float]]:
    """A causal op over slots: slot j = sum over i <= j of (i + 1) * seq[i]."""
    out, acc = [], [0.0] * len(seq[0])
    for i, v in enumerate(seq):
        acc = [a + (i + 1) * b for a, b in zip(acc, v)]
        out.append(list(acc))
    return out


def dtp_pool(x, boundaries, null, norm=plain_layer_norm, mix=plain_prefix_mix):
    """x [L][D] -> [L][D]: segment, prepend null, down-LN, causal mix, duplicate back by slot."""
    short = [null] + dtp_segments(x, boundaries)
    short = mix([norm(v) for v in short])
    return [short[j] for j in dtp_slots(boundaries)]


def _torch_path(x: torch.Tensor, hard: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    groups, _ = downsample(x, hard, null)  # [B, 1 + G, D]
    groups = F.layer_norm(groups, groups.shape[-1:])
    weights = torch.arange(1, groups.shape[1] + 1, dtype=groups.dtype).view(1, -1, 1)
    return upsample(torch.cumsum(groups * weights, dim=1), hard)  # [B, L, D]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 19), st.integers(2, 5), st.floats(0.0, 1.0), st.integers(0, 10_000))
def test_matches_plain_python_dtp(B, L, D, rate, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    hard = (torch.rand(B, L, generator=g) < rate).double()
    null = torch.randn(D, generator=g, dtype=torch.float64)
    fast = _torch_path(x, hard, null)
    for b in range(B):
        want = dtp_pool(x[b].tolist(), [int(v) for v in hard[b].tolist()], null.tolist())
        torch.testing.assert_close(fast[b], torch.tensor(want, dtype=torch.float64))


def test_hourglass_forward_matches_plain_python_dtp():
    """The whole shortened path of HourglassLM (down-LN included) equals the transcription with the model's layers."""
    torch.manual_seed(0)
    cfg = HourglassConfig.from_preset("cpu-tiny", vocab_size=12).with_boundary("fixed")
    model = HourglassLM(cfg).eval()
    chars = torch.randint(1, 12, (2, 23))
    hard = (torch.rand(2, 23) < 0.3).float()
    with torch.no_grad():
        got = model(chars, boundaries=hard).logits
        h = model.embed(chars)
        for layer in model.pre:
            h = layer(h)

        def norm(v):
            return model.down_norm(torch.tensor(v)).tolist()

        def mix(seq):
            y = torch.tensor(seq).unsqueeze(0)
            for layer in model.short:
                y = layer(y)
            return y[0].tolist()

        rows = []
        for b in range(2):
            pooled = dtp_pool(h[b].tolist(), [int(v) for v in hard[b].tolist()], model.null_group.tolist(), norm, mix)
            rows.append(torch.tensor(pooled))
        y = torch.stack(rows) + h
        for layer in model.post:
            y = layer(y)
        want = model.head(model.norm(y))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


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


def test_gradient_to_hard_vanishes_when_moving_a_boundary_changes_nothing():
    """DTP's gradients: when every slot holds the same vector the upsampled output does not depend on the boundaries,
    and when every character is alike neither do the group means: the gradient to ``hard`` must then be exactly 0.
    (The old upsample device sent sum_t <g_t, y> to every boundary here: one sign for all, the MAGNET collapse.)"""
    torch.manual_seed(0)
    logits = torch.randn(2, 12, requires_grad=True)
    soft = torch.sigmoid(logits)
    hard = (soft > 0.5).float() + soft - soft.detach()  # straight-through
    slot = torch.randn(1, 1, 4, requires_grad=True)
    groups = slot.expand(2, 13, 4)  # [B, 1 + G, D], every slot the same vector
    (upsample(groups, hard) * torch.randn(2, 12, 4)).sum().backward()
    assert slot.grad is not None and logits.grad is None  # the read carries gradient to the groups only
    x = torch.randn(1, 1, 4).expand(2, 12, 4)  # every character alike
    down, _ = downsample(x, hard, torch.zeros(4))
    (down * torch.randn_like(down)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().max() < 1e-6


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
        # Position t sees its own character through the pooled path only when it closes a group.
        z = x.clone()
        z[:, t:] += 1.0
        torch.testing.assert_close(run(z)[:, :t], base[:, :t])
        same = torch.isclose(run(z)[:, t], base[:, t]).all(-1)  # [B]
        assert torch.equal(same, hard[:, t] == 0)
