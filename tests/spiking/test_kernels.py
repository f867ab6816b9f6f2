"""Compiled CPU kernels of the spiking LMs against their reference loops: values and gradients."""

from __future__ import annotations

import pytest
import torch

from speak.lm.spiking import cpu_kernels
from speak.lm.spiking.neurons import ElasticBiSpike, MultiStepLIF, signed_if_encode
from speak.lm.spiking.wkv import wkv, wkv_chunked, wkv_initial_state, wkv_loop

DTYPES = [torch.float32, torch.float64]


def _grads(out, weights, leaves):
    loss = sum((o * g).sum() for o, g in zip(out, weights))
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)  # w is unused by a one-position reference
    return [torch.zeros_like(x) if gr is None else gr for gr, x in zip(grads, leaves)]


# ---------------------------------------------------------------------------------------------- multi-step LIF
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("shape", [(3, 37, 5), (1, 1, 1), (2, 64, 17)])
def test_lif_compiled_matches_reference_values_and_grads(dtype, detach_reset, shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=g, dtype=dtype) * 1.5 + 0.8).requires_grad_(True)  # [B, T, C]
    v0 = (torch.randn(shape[0], shape[2], generator=g, dtype=dtype) * 0.5).requires_grad_(True)  # [B, C]
    fast = MultiStepLIF(detach_reset=detach_reset)
    slow = MultiStepLIF(detach_reset=detach_reset, backend="reference")
    s1, v1 = fast(x, v0, return_state=True)
    s2, v2 = slow(x, v0, return_state=True)
    assert s1.grad_fn is not None and "LIFScanCPU" in type(s1.grad_fn).__name__
    assert torch.equal(s1, s2) and torch.equal(v1, v2)  # bit-exact forward
    if s1.numel() > 10:
        assert 0.05 < float(s1.detach().mean()) < 0.95  # the case exercises both firing and silence
    w = (torch.randn(s1.shape, generator=g, dtype=dtype), torch.randn(v1.shape, generator=g, dtype=dtype))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, b in zip(_grads((s1, v1), w, (x, v0)), _grads((s2, v2), w, (x, v0))):
        torch.testing.assert_close(a, b, **tol)


def test_lif_compiled_without_v0_and_only_spike_loss():
    x = torch.randn(2, 30, 4, dtype=torch.float64, requires_grad=True) * 2
    xl = x.detach().requires_grad_(True)
    s1 = MultiStepLIF()(xl)
    s1.sum().backward()
    xr = x.detach().requires_grad_(True)
    MultiStepLIF(backend="reference")(xr).sum().backward()
    torch.testing.assert_close(xl.grad, xr.grad, rtol=1e-12, atol=1e-13)


def test_lif_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        MultiStepLIF(backend="fast")


# ---------------------------------------------------------------------------------------------- elastic bi-spike
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1, 2, 4, 7])
def test_signed_if_encode_compiled_matches_reference(dtype, T):
    g = torch.Generator().manual_seed(T)
    u = torch.cat([torch.randn(200, generator=g, dtype=dtype) * 1.5,
                   torch.tensor([0.0, 0.5, -0.5, 1.0, -1.0, 0.25, -0.75, 1.5], dtype=dtype)]).view(8, 26)
    assert torch.equal(cpu_kernels.signed_if_encode_cpu(u, T), signed_if_encode(u, T))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("grad_scale", [True, False])
def test_elastic_bispike_compiled_matches_reference(dtype, T, grad_scale):
    g = torch.Generator().manual_seed(10 * T + grad_scale)
    fast = ElasticBiSpike(T, grad_scale=grad_scale).to(dtype)
    slow = ElasticBiSpike(T, grad_scale=grad_scale, backend="reference").to(dtype)
    x = torch.randn(3, 5, 9, generator=g, dtype=dtype, requires_grad=True)  # [B, L, C]
    f1, f2 = fast(x), slow(x)  # [T, B, L, C]; both initialise alpha from x
    assert "ElasticBiSpikeCPU" in type(f1.grad_fn).__name__
    assert torch.equal(f1, f2)
    assert bool((f1 == 0).any()) and bool((f1 != 0).any())
    w = torch.randn(f1.shape, generator=g, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, b in zip(_grads((f1,), (w,), (x, fast.alpha)), _grads((f2,), (w,), (x, slow.alpha))):
        torch.testing.assert_close(a, b, **tol)


# ---------------------------------------------------------------------------------------------- WKV
def _wkv_inputs(B, T, C, dtype, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    td = torch.randn(C, generator=g, dtype=dtype).requires_grad_(True)  # time_decay
    u = torch.randn(C, generator=g, dtype=dtype).requires_grad_(True)
    k = (torch.randn(B, T, C, generator=g, dtype=dtype) * scale).requires_grad_(True)
    v = torch.randn(B, T, C, generator=g, dtype=dtype).requires_grad_(True)
    return td, u, k, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 40, 6), (1, 1, 3), (3, 9, 1)])
def test_wkv_compiled_matches_loop_values_and_grads(dtype, shape):
    td, u, k, v = _wkv_inputs(*shape, dtype)
    y1, st1 = wkv(-torch.exp(td), u, k, v)
    y2, st2 = wkv_loop(-torch.exp(td), u, k, v)
    assert "WKVCPU" in type(y1.grad_fn).__name__
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(y1, y2, **tol)
    for a, b in zip(st1, st2):
        torch.testing.assert_close(a, b, **tol)
    w = torch.randn(y1.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    for a, b in zip(_grads((y1,), (w,), (td, u, k, v)), _grads((y2,), (w,), (td, u, k, v))):
        torch.testing.assert_close(a, b, **tol)


def test_wkv_compiled_gradcheck():
    td, u, k, v = _wkv_inputs(2, 7, 3, torch.float64, seed=3)
    a, b, p = wkv_initial_state(2, 3, k)

    def f(w_, u_, k_, v_):
        return cpu_kernels.WKVCPU.apply(w_, u_, k_, v_, a, b, p)[0]

    assert torch.autograd.gradcheck(f, (-torch.exp(td.detach()).requires_grad_(True), u, k, v))


def test_wkv_compiled_carried_state_and_extreme_exponents():
    td, u, k, v = _wkv_inputs(2, 30, 4, torch.float64, scale=40.0, seed=5)  # e^k far outside float32's range
    w = -torch.exp(td)
    y_full, st_full = wkv_loop(w, u, k, v)
    _, st = wkv(w, u, k[:, :13], v[:, :13])
    y_tail, st_end = wkv(w, u, k[:, 13:], v[:, 13:], tuple(s.detach() for s in st))
    torch.testing.assert_close(y_tail, y_full[:, 13:], rtol=1e-11, atol=1e-12)
    for a, b in zip(st_end, st_full):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)
    y32, _ = wkv(*(t.detach().float() for t in (w, u, k, v)))
    gk = torch.autograd.grad(wkv(w.float(), u.float(), k.float(), v.float())[0].sum(), k)[0]
    assert torch.isfinite(y32).all() and torch.isfinite(gk).all()
    torch.testing.assert_close(y32.double(), y_full.detach(), rtol=1e-4, atol=1e-4)


def test_wkv_state_with_grad_falls_back_to_chunked():
    td, u, k, v = _wkv_inputs(1, 6, 2, torch.float64)
    st = tuple(s.clone().requires_grad_(True) for s in wkv_initial_state(1, 2, k))
    y, _ = wkv(-torch.exp(td), u, k, v, st)
    assert "WKVCPU" not in type(y.grad_fn).__name__
    torch.testing.assert_close(y, wkv_chunked(-torch.exp(td), u, k, v, st)[0])


def _use_reference(model, kind) -> None:
    for m in model.modules():
        if isinstance(m, kind):
            m.backend = "reference"


def _assert_paths_agree(model, ids, to_reference) -> None:
    """The model's output and parameter gradients on its compiled paths equal those after ``to_reference()``."""
    fast = model(ids)
    gf = torch.autograd.grad(fast.square().mean(), list(model.parameters()))
    to_reference()
    slow = model(ids)
    gs = torch.autograd.grad(slow.square().mean(), list(model.parameters()))
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-10)
    for a, b in zip(gf, gs):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------------------------- whole models
@pytest.mark.parametrize("spike_inputs", [False, True])
def test_spikegpt_compiled_paths_match_reference_paths(monkeypatch, spike_inputs):
    from speak.lm.spiking import spikegpt
    from speak.lm.spiking.spikegpt import SpikeGPT, SpikeGPTConfig

    torch.manual_seed(0)
    model = SpikeGPT(SpikeGPTConfig(vocab_size=20, d_model=16, n_layers=2, spike_inputs=spike_inputs)).double()
    ids = torch.randint(0, 20, (2, 24))

    def to_reference():
        monkeypatch.setattr(spikegpt, "wkv", wkv_chunked)
        _use_reference(model, MultiStepLIF)

    _assert_paths_agree(model, ids, to_reference)


def test_spikelm_compiled_paths_match_reference_paths():
    from speak.lm.spiking.spikelm import SpikeLM, SpikeLMConfig

    torch.manual_seed(0)
    model = SpikeLM(SpikeLMConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, time_steps=3)).double()
    ids = torch.randint(0, 20, (2, 12))
    _assert_paths_agree(model, ids, lambda: _use_reference(model, ElasticBiSpike))


def test_wkv_compiled_without_grad_skips_saving_and_matches():
    td, u, k, v = _wkv_inputs(2, 25, 5, torch.float64, seed=7)
    w = -torch.exp(td)
    with torch.no_grad():
        y, st = wkv(w, u, k, v)
    y_ref, st_ref = wkv_loop(w, u, k, v)
    assert not y.requires_grad
    torch.testing.assert_close(y, y_ref.detach(), rtol=1e-11, atol=1e-12)
    for a, b in zip(st, st_ref):
        torch.testing.assert_close(a, b.detach(), rtol=1e-11, atol=1e-12)
