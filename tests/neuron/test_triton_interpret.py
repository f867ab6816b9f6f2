"""Every Triton kernel of the project against its reference: SPEAK's neuron scan (speak.neuron.gpu) and the spiking
LMs' multi-step LIF (speak.lm.spiking.gpu_kernels). On CUDA when there is one, else under Triton's interpreter
(`make test-triton` sets TRITON_INTERPRET=1 and runs them on CPU tensors)."""

from __future__ import annotations

import os

import pytest
import torch

from speak.lm.spiking.neurons import MultiStepLIF
from speak.neuron import ResetMode, lif_scan_reference


def triton_device() -> str:
    """'cuda', or 'cpu' under TRITON_INTERPRET=1; skips otherwise (a failure when SPEAK_REQUIRE_TRITON=1)."""
    required = os.environ.get("SPEAK_REQUIRE_TRITON") == "1"
    try:
        import triton  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("SPEAK_REQUIRE_TRITON=1 but triton is not installed")
        pytest.skip("triton is not installed (make test-triton installs it)")
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "cpu"
    if required:
        pytest.fail("SPEAK_REQUIRE_TRITON=1 but there is neither CUDA nor TRITON_INTERPRET=1")
    pytest.skip("no CUDA and TRITON_INTERPRET is not 1")


@pytest.mark.parametrize("mode", list(ResetMode))
@pytest.mark.parametrize("theta", [0.4, 0.8, 1.0])
@pytest.mark.parametrize("B,L", [(1, 1), (7, 23), (130, 9)])  # 130 sequences: a full block of 128 plus a ragged one
def test_triton_scan_matches_reference(mode, theta, B, L):
    device = triton_device()
    from speak.neuron.gpu import lif_scan_gpu

    g = torch.Generator().manual_seed(B * 100 + L)
    current = (torch.randn(B, L, generator=g) * 0.6 + 0.4).to(device)  # [B, L]
    context_mask = (torch.rand(B, L, generator=g) < 0.3).to(device)  # [B, L]
    hard, th = mode.resolve(context_mask, theta, (B, L), device)
    hard = torch.zeros(B, L, dtype=torch.bool, device=device) if hard is None else hard
    consts = (th, 1.0, 0.0, 0.9, 1.0, 4.0)  # theta, u_th, u_reset, gamma, delta, surrogate alpha
    x1 = current.clone().requires_grad_(True)
    x2 = current.clone().requires_grad_(True)
    out1 = lif_scan_gpu(x1, hard, *consts)
    out2 = lif_scan_reference(x2, hard, *consts)
    for a, b in zip(out1, out2):
        assert torch.equal(a, b)  # forward: bit-exact in float32
    w = [torch.randn(B, L, generator=g).to(device) for _ in range(3)]
    g1 = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(out1, w)), x1)[0]
    g2 = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(out2, w)), x2)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def test_triton_scan_nonzero_reset_potential():
    device = triton_device()
    from speak.neuron.gpu import lif_scan_gpu

    g = torch.Generator().manual_seed(3)
    current = (torch.randn(9, 31, generator=g) * 0.8 + 0.3).to(device)
    hard = (torch.rand(9, 31, generator=g) < 0.5).to(device)
    consts = (0.8, 0.7, -0.2, 1.0, 1.3, 4.0)
    x1, x2 = current.clone().requires_grad_(True), current.clone().requires_grad_(True)
    u1, s1, v1 = lif_scan_gpu(x1, hard, *consts)
    u2, s2, v2 = lif_scan_reference(x2, hard, *consts)
    torch.testing.assert_close((u1, s1, v1), (u2, s2, v2), rtol=1e-6, atol=1e-6)
    (u1.sum() + 2 * s1.sum() - v1.sum()).backward()
    (u2.sum() + 2 * s2.sum() - v2.sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 19, 67), (3, 6, 128)])  # 134 sequences: one ragged block
def test_triton_multistep_lif_matches_reference(detach_reset, shape):
    device = triton_device()
    from speak.lm.spiking.gpu_kernels import LIFScanGPU

    g = torch.Generator().manual_seed(sum(shape) + detach_reset)
    x = (torch.randn(shape, generator=g) * 1.5 + 0.8).to(device)  # [B, T, C]
    v0 = (torch.randn(shape[0], shape[2], generator=g) * 0.5).to(device)  # [B, C]
    lif = MultiStepLIF(detach_reset=detach_reset, backend="reference")
    x1, v1 = x.clone().requires_grad_(True), v0.clone().requires_grad_(True)
    x2, v2 = x.clone().requires_grad_(True), v0.clone().requires_grad_(True)
    s_a, vl_a = LIFScanGPU.apply(x1, v1, lif.tau, lif.v_threshold, lif.v_reset, lif.surrogate_alpha, detach_reset)
    s_b, vl_b = lif.reference(x2, v2)
    assert torch.equal(s_a, s_b) and torch.equal(vl_a, vl_b)
    ws = torch.randn(shape, generator=g).to(device)
    wv = torch.randn(shape[0], shape[2], generator=g).to(device)
    ga = torch.autograd.grad((s_a * ws).sum() + (vl_a * wv).sum(), (x1, v1))
    gb = torch.autograd.grad((s_b * ws).sum() + (vl_b * wv).sum(), (x2, v2))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_module_dispatches_to_triton_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (the module picks the Triton scan only for CUDA tensors)")
    triton_device()
    s = MultiStepLIF()(torch.randn(2, 5, 3, device="cuda", requires_grad=True))
    assert "LIFScanGPU" in type(s.grad_fn).__name__
