"""SDLLM: spike sums == quantised integers, spike matmul == integer matmul, gamma-SQP fit, conversion."""

import pytest
import torch

from speak.lm.spiking.sdllm import (
    SDLLMConfig,
    SpikeDrivenLinear,
    bidirectional_spike_encode,
    convert,
    fit_step,
    quant_mse,
    quantize_symmetric,
)
from speak.lm.transformer import TransformerConfig, TransformerLM


@pytest.mark.parametrize("Q", [1, 2, 4, 7])
def test_spike_train_sums_equal_quantised_integers(Q):
    g = torch.Generator().manual_seed(Q)
    u = torch.cat([
        torch.randn(5000, generator=g, dtype=torch.float64) * Q,
        torch.tensor([0.0, 0.5, -0.5, 1.5, -2.5, Q + 0.4, -Q - 3.0, 0.49999999999, 1e-300], dtype=torch.float64),
    ]).float()
    s = bidirectional_spike_encode(u, Q)  # [Q, N]
    assert s.shape == (Q, u.numel())
    assert set(s.unique().tolist()) <= {-1.0, 0.0, 1.0}
    n = quantize_symmetric(u, Q)
    assert torch.equal(s.sum(0), n)
    assert (n == torch.round(n)).all() and n.abs().max() <= Q
    assert ((s * torch.sign(u)) >= 0).all()  # one direction per neuron
    # front-loaded: the |n| spikes come first, then silence
    k = torch.arange(Q)[:, None]
    assert torch.equal(s.abs(), (k < n.abs()[None]).float())
    # round half away from zero inside the clip range
    inside = u.abs() <= Q
    ref = torch.sign(u.double()) * torch.floor(u.double().abs() + 0.5)
    close_to_tie = ((u.double().abs() % 1) - 0.5).abs() < 1e-6
    assert torch.equal(n[inside & ~close_to_tie].double(), ref[inside & ~close_to_tie])
    assert n[-8].item() == 1 and n[-7].item() == -1 and n[-6].item() == min(2, Q) and n[-5].item() == -min(3, Q)
    assert n[-4].item() == Q and n[-3].item() == -Q and n[-1].item() == 0


def test_spike_matmul_equals_integer_matmul_exactly():
    g = torch.Generator().manual_seed(0)
    Q = 5
    x = torch.randn(7, 33, generator=g) * 2.0
    step = 0.4
    W_int = torch.randint(-8, 9, (11, 33), generator=g)  # integer (e.g. int4) weights
    spikes = bidirectional_spike_encode(x / step, Q)  # [Q, 7, 33]
    n = quantize_symmetric(x / step, Q).to(torch.int64)  # [7, 33]
    acc = sum(spikes[t].to(torch.int64) @ W_int.T for t in range(Q))  # additions of weight columns per spike
    assert torch.equal(acc, n @ W_int.T)
    # with float weights the two agree up to summation order
    W = torch.randn(11, 33, generator=g, dtype=torch.float64)
    torch.testing.assert_close((spikes.double() @ W.T).sum(0), n.double() @ W.T, rtol=1e-12, atol=1e-12)
    # the SpikeDrivenLinear computes step * sum_t W s_t + b
    lin = torch.nn.Linear(33, 11).double()
    sdl = SpikeDrivenLinear(lin, step, Q)
    st = sdl.step.double()  # the step is stored as a float32 buffer
    n64 = quantize_symmetric(x.double() / st, Q)
    expected = st * (n64 @ lin.weight.T) + lin.bias
    torch.testing.assert_close(sdl(x.double()), expected, rtol=1e-12, atol=1e-12)


def test_gamma_sqp_fine_step_not_worse_than_coarse():
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(20000, generator=g), torch.randn(20, generator=g) * 30]).double()  # outliers
    for Q in (2, 4, 8):
        fit = fit_step(x, Q)
        assert fit.step > 0 and fit.mse <= fit.coarse_mse
        assert fit.coarse_step == pytest.approx(fit.gamma * x.abs().max().item() / Q)
        # the coarse grid search beats no clipping (gamma = 1) with these outliers
        assert fit.coarse_mse <= quant_mse(x, x.abs().max().item() / Q, Q)
    z = fit_step(torch.zeros(10), 4)
    assert z.mse == 0.0


def _lm(**kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=21, d_model=32, n_layers=2, n_heads=2, max_len=32)
    cfg.update(kw)
    return TransformerLM(TransformerConfig(**cfg)).double().eval()


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_convert_replaces_linears_and_approximates_the_model(positions):
    m = _lm(positions=positions)
    calib = torch.randint(0, 21, (4, 24), generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, 21, (2, 24), generator=torch.Generator().manual_seed(1))
    ref = m(ids)
    errs = []
    for Q in (2, 16):
        c = convert(m, calib, SDLLMConfig(time_steps=Q)).eval()
        n_lin = sum(isinstance(x, torch.nn.Linear) and not isinstance(p, SpikeDrivenLinear)
                    for p in c.modules() for x in p.children())
        assert n_lin == 0  # every Linear is wrapped (the inner synapse of a SpikeDrivenLinear excepted)
        assert len(c.sdllm_report.fits) == 2 * 4 + 1
        seen = []
        hooks = [x.synapse.register_forward_pre_hook(lambda mod, a: seen.append(a[0].detach()))
                 for x in c.modules() if isinstance(x, SpikeDrivenLinear)]
        out = c(ids)
        for h in hooks:
            h.remove()
        assert all(set(s.unique().tolist()) <= {-1.0, 0.0, 1.0} and s.shape[0] == Q for s in seen)
        errs.append(((out - ref).norm() / ref.norm()).item())
    assert errs[1] < errs[0] and errs[1] < 0.15
    assert torch.equal(m(ids), ref)  # the original model is untouched


def test_converted_model_is_causal_and_sparse():
    m = _lm()
    calib = torch.randint(0, 21, (4, 20), generator=torch.Generator().manual_seed(0))
    c = convert(m, calib, SDLLMConfig(time_steps=4, exclude=("head",)))
    assert isinstance(c.head, torch.nn.Linear) and not isinstance(c.head, SpikeDrivenLinear)
    ids = torch.randint(0, 21, (2, 16), generator=torch.Generator().manual_seed(2))
    base = c(ids)
    pert = ids.clone()
    pert[:, 9:] = (pert[:, 9:] + 3) % 21
    out = c(pert)
    assert torch.equal(out[:, :9], base[:, :9])
    # low firing: most activations fire 0 or 1 spike
    rates = []
    hooks = [x.synapse.register_forward_pre_hook(lambda mod, a: rates.append((a[0] != 0).double().mean().item()))
             for x in c.modules() if isinstance(x, SpikeDrivenLinear)]
    c(ids)
    for h in hooks:
        h.remove()
    assert 0 < sum(rates) / len(rates) < 0.5
