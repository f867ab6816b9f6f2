"""H-Net dynamic chunking (speak.lm.boundaries.hnet): hand-computed routing, EMA, confidence, ratio loss."""

from __future__ import annotations

import math

import pytest
import torch

from speak.lm.boundaries.hnet import (
    chunk_starts,
    confidence,
    dechunk,
    ema_smooth,
    ema_smooth_reference,
    ratio_loss,
    routing_boundaries,
    routing_probs,
    slot_probs,
    ste_ones,
)

# Five 2-d states at known angles: cos(h1, h0) = 1/sqrt2, cos(h2, h1) = 0, cos(h3, h2) = 1/sqrt2, cos(h4, h3) = -1
H = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, 0.0], [1.0, 0.0]]])  # [1, 5, 2]
Q = (1.0 - 1.0 / math.sqrt(2.0)) / 2.0  # 0.1464...
P_EXPECTED = [1.0, Q, 0.5, Q, 1.0]


def test_routing_hand_example():
    p = routing_probs(H, H)  # W_q = W_k = identity
    torch.testing.assert_close(p, torch.tensor([P_EXPECTED]))
    b = chunk_starts(p)
    assert b.tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0]]  # p >= 0.5 (0.5 itself starts a chunk); p_0 = 1
    # causal adaptation: t closes its group where b_t = 1 (decided from p_t, characters <= t), so H-Net's chunks
    # {0,1} {2,3} {4} become {0,1,2} {3,4}: each cut one character later; the forced start p_0 = 1 is no mark
    assert routing_boundaries(b).tolist() == [[0.0, 0.0, 1.0, 0.0, 1.0]]


def test_routing_uses_q_of_t_and_k_of_t_minus_1():
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    k = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    # cos(q_1, k_0) = cos([0, 1], [0, 1]) = 1 -> p_1 = 0 (cos(q_0, k_1) would give 0.5)
    assert routing_probs(q, k).tolist() == [[1.0, 0.0]]


def test_routing_is_causal():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 12, 4, generator=g)
    for t in (0, 4, 10):
        h2 = h.clone()
        h2[:, t + 1 :] = torch.randn(2, 12 - t - 1, 4, generator=g)
        a, b = routing_probs(h, h), routing_probs(h2, h2)
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
        assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


def test_ema_five_steps_by_hand():
    z = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]])  # [1, 5, 1]
    P = torch.tensor([[1.0, 0.5, 0.8, 0.6, 0.9]])
    # zbar = 1; 0.5*2 + 0.5*1 = 1.5; 0.8*3 + 0.2*1.5 = 2.7; 0.6*4 + 0.4*2.7 = 3.48; 0.9*5 + 0.1*3.48 = 4.848
    want = torch.tensor([[[1.0], [1.5], [2.7], [3.48], [4.848]]])
    torch.testing.assert_close(ema_smooth_reference(z, P), want)
    torch.testing.assert_close(ema_smooth(z, P), want)


def test_ema_matches_reference_and_gradients():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 9, 5, generator=g, requires_grad=True)
    P = (0.5 + 0.5 * torch.rand(3, 9, generator=g)).requires_grad_(True)
    fast, ref = ema_smooth(z, P), ema_smooth_reference(z, P)
    torch.testing.assert_close(fast, ref)
    w = torch.randn_like(fast)
    gz, gp = torch.autograd.grad((fast * w).sum(), (z, P))
    rz, rp = torch.autograd.grad((ref * w).sum(), (z, P))
    torch.testing.assert_close(gz, rz)
    torch.testing.assert_close(gp, rp)


def test_slot_probs_and_confidence_on_the_hand_example():
    p = torch.tensor([P_EXPECTED])
    hard = torch.tensor([[0.0, 0.0, 1.0, 0.0, 1.0]])  # groups {0,1,2} {3,4}; positions read slots 0, 0, 1, 1, 2
    # P = p at each slot's first reader: t = 0 (p_0 = 1), t = 2 (0.5, the decision that closed group 0), t = 4 (1);
    # slot 3 is unread
    assert slot_probs(p, hard, 4).tolist() == [[1.0, 0.5, 1.0, 1.0]]
    c = confidence(p, chunk_starts(p))
    torch.testing.assert_close(c, torch.tensor([[1.0, 1.0 - Q, 0.5, 1.0 - Q, 1.0]]))


def test_ste_is_one_with_the_gradient_of_c():
    c = torch.tensor([0.5, 0.75, 0.9, 1.0], requires_grad=True)
    out = ste_ones(c)
    assert out.tolist() == [1.0, 1.0, 1.0, 1.0]
    (out * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert c.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_dechunk_by_hand():
    p = torch.tensor([P_EXPECTED], requires_grad=True)
    hard = routing_boundaries(chunk_starts(p))  # [[0, 0, 1, 0, 1]]
    groups = torch.tensor([[[10.0], [20.0], [30.0], [40.0]]])  # shortened outputs at slots 0..3
    out = dechunk(groups, p, hard)
    # slots: zbar0 = 10, zbar1 = 0.5*20 + 0.5*10 = 15, zbar2 = 30 (P = 1); positions read 0, 0, 1, 1, 2 (t = 2 and
    # t = 4 read the group they close)
    assert out.squeeze().tolist() == pytest.approx([10.0, 10.0, 15.0, 15.0, 30.0])
    out.sum().backward()
    # dOut/dp_2 = d(zbar1)/dP_1 * 2 positions (t = 2, 3) + dSTE(c_2)/dp_2 * zbar1 = (20 - 10) * 2 + 15
    assert p.grad[0, 2].item() == pytest.approx(35.0)
    # p_1 does not start a chunk: c_1 = 1 - p_1, so dOut_1/dp_1 = -zbar0
    assert p.grad[0, 1].item() == pytest.approx(-10.0)


@pytest.mark.parametrize(
    ("b", "p", "n", "want"),
    [
        ([1, 0, 0, 0], [1.0, 0.0, 0.0, 0.0], 4.0, 1.0),  # F = G = 1/N: the minimum, 1
        ([1, 1, 0, 0], [1.0, 0.6, 0.0, 0.0], 4.0, 1.2),  # F = 0.5, G = 0.4: 4/3 * (3*0.2 + 0.5*0.6)
        ([1, 1, 1, 1], [1.0, 1.0, 1.0, 1.0], 2.0, 2.0),  # every position: N/(N-1) * (N-1) = N
    ],
)
def test_ratio_loss_values(b, p, n, want):
    value = ratio_loss(torch.tensor([b], dtype=torch.float32), torch.tensor([p]), n)
    assert value.item() == pytest.approx(want)


def test_ratio_loss_gradient_pushes_the_rate_toward_the_target():
    b = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # F = 0.5 > 1/N: the loss lowers every p
    p = torch.tensor([[1.0, 0.6, 0.0, 0.0]], requires_grad=True)
    ratio_loss(b, p, 4.0).backward()
    # dL/dG = N/(N-1) * ((N-1) F - (1 - F)) = 4/3 * (1.5 - 0.5) = 4/3; dG/dp_t = 1/4
    torch.testing.assert_close(p.grad, torch.full((1, 4), 1.0 / 3.0))


def test_ratio_loss_masks_padding():
    b = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]])
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]])
    valid = torch.tensor([[True, True, True, True, False, False]])
    assert ratio_loss(b, p, 4.0, valid).item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- the source


def test_hnet_source_in_the_hourglass():
    from speak.lm.boundaries.hnet import HNetChunking

    from ._helpers import encode, tiny_model

    model = tiny_model("hnet").train()
    src = model.boundary_source
    assert isinstance(src, HNetChunking)
    d = model.config.d_model
    assert torch.equal(src.w_q.weight, torch.eye(d)) and torch.equal(src.w_k.weight, torch.eye(d))
    chars = encode("the quick brown fox jumps over the lazy dog").unsqueeze(0)
    out = model(chars)
    p = out.boundary.extras["probs"]  # [1, L]
    assert p[0, 0].item() == 1.0
    b = chunk_starts(p)
    assert torch.equal(out.boundary.hard, routing_boundaries(b))  # hard[t] = b[t] (t >= 1), hard[0] = 0
    assert out.boundary.hard[0, 0].item() == 0.0
    assert not out.boundary.hard.requires_grad
    losses = src.aux_losses(out.boundary, out.logits, None, torch.ones_like(chars, dtype=torch.bool))
    assert set(losses) == {"ratio"}
    # the router learns from the LM loss alone (through the EMA's P and the confidence STE)
    out.logits.logsumexp(-1).sum().backward()
    assert float(src.w_q.weight.grad.abs().sum()) > 0 and float(src.w_k.weight.grad.abs().sum()) > 0


def test_hnet_options():
    from speak.errors import SpeakError
    from speak.lm.boundaries import BoundaryConfig

    cfg = BoundaryConfig(name="hnet")
    assert cfg.options.loss_weight == 0.03 and cfg.options.target_ratio == 4.5
    with pytest.raises(SpeakError, match="target_ratio"):
        BoundaryConfig(name="hnet", target_ratio=1.0).validate()


def test_hnet_with_given_boundaries_upsamples_plainly():
    from ._helpers import encode, tiny_model

    model = tiny_model("hnet").eval()
    chars = encode("ab cd ef").unsqueeze(0)
    hard = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    out = model(chars, boundaries=hard)  # e.g. scoring a proxy segmentation: no router decision to smooth with
    assert torch.equal(out.boundary.hard, hard) and out.logits.shape[:2] == chars.shape
