"""Spiking units: exact spike values, LIF golden values, surrogate gradients vs closed forms, bi-spike encoding."""

import math

import pytest
import torch

from speak.lm.spiking.neurons import (
    ElasticBiSpike,
    MultiStepLIF,
    atan_surrogate_grad,
    heaviside_atan,
    signed_if_encode,
)


def test_heaviside_values_and_atan_surrogate_grad():
    x = (torch.arange(-30, 31, dtype=torch.float64) / 10).requires_grad_(True)
    s = heaviside_atan(x, 2.0)
    assert set(s.detach().unique().tolist()) <= {0.0, 1.0}
    assert s[30].item() == 1.0  # x = 0 fires
    s.sum().backward()
    closed = 1.0 / (1 + (math.pi / 2 * 2.0 * x.detach()) ** 2)  # alpha / 2 = 1
    torch.testing.assert_close(x.grad, closed, rtol=0, atol=1e-15)
    torch.testing.assert_close(atan_surrogate_grad(x.detach(), 2.0), closed)


def test_lif_constant_one_never_fires_and_approaches_one_from_below():
    lif = MultiStepLIF()
    # exact arithmetic: h_t = 1 - 2^-t < 1 forever. Floating point: h rounds to exactly 1.0 (the threshold) after
    # 25 steps in float32 / 54 in float64 and then fires (spikingjelly's LIFNode does the same); documented.
    assert lif(torch.ones(1, 24, 1, dtype=torch.float32)).sum().item() == 0.0
    assert lif(torch.ones(1, 53, 1, dtype=torch.float64)).sum().item() == 0.0
    x = torch.ones(1, 60, 1, dtype=torch.float64)
    v = torch.zeros(1, 1, dtype=torch.float64)
    for t in range(1, 30):
        s_t, v = lif.step(x[:, 0], v)
        assert v.item() == pytest.approx(1 - 0.5**t, abs=1e-15)
        assert v.item() < 1.0


def test_lif_constant_two_fires_every_step():
    lif = MultiStepLIF()
    s, v = lif(torch.full((2, 40, 3), 2.0), return_state=True)
    assert torch.equal(s, torch.ones_like(s))
    assert torch.equal(v, torch.zeros_like(v))  # hard reset to 0


def test_lif_golden_sequence():
    # h = v + (x - v) / 2; fire when h >= 1; hard reset to 0
    lif = MultiStepLIF()
    x = torch.tensor([[1.5, 1.5, 0.0, 3.0, -1.0, 2.0]], dtype=torch.float64)[..., None]
    expected_h = [0.75, 1.125, 0.0, 1.5, -0.5, 0.75]
    expected_s = [0, 1, 0, 1, 0, 0]
    v = torch.zeros(1, 1, dtype=torch.float64)
    for t in range(6):
        h = v + (x[:, t] - v) / 2
        assert h.item() == pytest.approx(expected_h[t])
        s, v = lif.step(x[:, t], v)
        assert s.item() == expected_s[t]
    assert lif(x)[0, :, 0].tolist() == expected_s


def test_lif_surrogate_grad_matches_closed_form():
    lif = MultiStepLIF()
    x = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    v0 = torch.randn(5, 7, dtype=torch.float64)
    s, _ = lif.step(x, v0)
    s.sum().backward()
    h = v0 + (x.detach() - v0) / 2
    torch.testing.assert_close(x.grad, atan_surrogate_grad(h - 1.0, 2.0) / 2)


def test_lif_multistep_equals_stepwise_and_spikingjelly():
    torch.manual_seed(0)
    x = torch.randn(3, 25, 4, dtype=torch.float64) * 2
    lif = MultiStepLIF()
    s_all, v_last = lif(x, return_state=True)
    v = torch.zeros(3, 4, dtype=torch.float64)
    for t in range(25):
        s, v = lif.step(x[:, t], v)
        assert torch.equal(s, s_all[:, t])
    assert torch.equal(v, v_last)
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except Exception:  # pragma: no cover - optional cross-check
        pytest.skip("spikingjelly not importable")
    node = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.ATan(alpha=2.0), step_mode="m")
    xs = x.transpose(0, 1).clone().requires_grad_(True)  # [T, B, C]
    ref = node(xs)
    assert torch.equal(ref.detach().transpose(0, 1), s_all)
    ref.sum().backward()
    x2 = x.clone().requires_grad_(True)
    lif(x2).sum().backward()
    torch.testing.assert_close(x2.grad, xs.grad.transpose(0, 1))


@pytest.mark.parametrize("T", [1, 2, 4, 7])
def test_signed_if_encode_counts(T):
    torch.manual_seed(T)
    u = torch.randn(4000, dtype=torch.float64) * 1.2
    s = signed_if_encode(u, T)
    assert s.shape == (T, 4000)
    assert set(s.unique().tolist()) <= {-1.0, 0.0, 1.0}
    n = s.sum(0)
    closed = torch.sign(u) * torch.minimum(torch.full_like(u, T), torch.floor(T * u.abs() + 0.5))
    assert torch.equal(n, closed)
    # all spikes of one neuron share u's sign
    assert ((s * torch.sign(u)) >= 0).all()
    inside = u.abs() <= 1
    assert ((n[inside] / T - u[inside]).abs() <= 1 / (2 * T) + 1e-12).all()


@pytest.mark.parametrize("T", [1, 3])
def test_elastic_bispike_values_init_and_lsq_grads(T):
    torch.manual_seed(0)
    x = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    ebs = ElasticBiSpike(time_steps=T).double()
    frames = ebs(x)
    alpha = ebs.alpha.detach()
    assert alpha.item() == pytest.approx(2 * x.detach().abs().mean().item())
    assert frames.shape == (T, 6, 9)
    vals = set((frames.detach() / alpha).unique().tolist())
    assert vals <= {-1.0, 0.0, 1.0}
    assert set(frames.detach().abs().unique().tolist()) <= {0.0, alpha.item()}
    if T == 1:
        expected = alpha * torch.clamp(torch.round(x.detach() / alpha), -1, 1)
        torch.testing.assert_close(frames[0].detach(), expected)
    g = torch.randn(6, 9, dtype=torch.float64)
    (frames.mean(0) * g).sum().backward()
    u = x.detach() / alpha
    inside = u.abs() <= 1
    level = frames.detach().mean(0) / alpha  # n / T
    torch.testing.assert_close(x.grad, g * inside.to(g.dtype))
    dalpha = torch.where(inside, level - u, torch.sign(u))
    scale = 1 / math.sqrt(x.numel() * T)
    torch.testing.assert_close(ebs.alpha.grad, (g * dalpha).sum() * scale)
    # alpha is initialised once
    ebs(x.detach() * 10)
    assert ebs.alpha.detach().item() == alpha.item()
