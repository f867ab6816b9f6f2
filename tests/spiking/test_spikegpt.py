"""SpikeGPT: WKV fast == loop (values, grads), parallel == recurrent, causality, exact binary spikes."""

import pytest
import torch

from speak.lm.spiking.neurons import MultiStepLIF
from speak.lm.spiking.spikegpt import SpikeGPT, SpikeGPTConfig
from speak.lm.spiking.wkv import wkv_chunked, wkv_initial_state, wkv_loop

VARIANTS = {
    "branch-lif": dict(spiking=True, spike_inputs=False),
    "spike-inputs": dict(spiking=True, spike_inputs=True),
    "non-spiking": dict(spiking=False),
}


def _model(variant, dtype=torch.float64, **kw):
    torch.manual_seed(0)
    cfg = SpikeGPTConfig(vocab_size=23, d_model=16, n_layers=2, wkv_chunk=8, **VARIANTS[variant], **kw)
    return SpikeGPT(cfg).to(dtype)


def _wkv_inputs(B=2, T=29, C=5, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = -torch.exp(torch.randn(C, generator=g, dtype=torch.float64))
    u = torch.randn(C, generator=g, dtype=torch.float64)
    k = torch.randn(B, T, C, generator=g, dtype=torch.float64) * scale
    v = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    return w, u, k, v


@pytest.mark.parametrize("chunk", [1, 7, 8, 64])
def test_wkv_chunked_matches_loop_values_and_grads(chunk):
    w, u, k, v = _wkv_inputs()
    leaves = [t.clone().requires_grad_(True) for t in (w, u, k, v)]
    leaves2 = [t.clone().requires_grad_(True) for t in (w, u, k, v)]
    y1, st1 = wkv_loop(*leaves)
    y2, st2 = wkv_chunked(*leaves2, chunk=chunk)
    torch.testing.assert_close(y2, y1, rtol=1e-10, atol=1e-10)
    for a, b in zip(st1[:2], st2[:2]):  # the state is (a, b) * e^p: compare a e^p
        torch.testing.assert_close(b * torch.exp(st2[2]), a * torch.exp(st1[2]), rtol=1e-10, atol=1e-10)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    for a, b in zip(leaves, leaves2):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-8, atol=1e-10)


def test_wkv_chunked_with_carried_state_and_extreme_exponents():
    w, u, k, v = _wkv_inputs(T=20, scale=60.0)  # e^{k} would overflow float32 without the max shift
    y_full, _ = wkv_loop(w, u, k, v)
    _, st = wkv_chunked(w, u, k[:, :11], v[:, :11], chunk=4)
    y_tail, _ = wkv_chunked(w, u, k[:, 11:], v[:, 11:], st, chunk=4)
    torch.testing.assert_close(y_tail, y_full[:, 11:], rtol=1e-10, atol=1e-10)
    y32, _ = wkv_chunked(*(t.float() for t in (w, u, k, v)), chunk=8)
    assert torch.isfinite(y32).all()
    torch.testing.assert_close(y32.double(), y_full, rtol=1e-4, atol=1e-4)
    a, b, p = wkv_initial_state(2, 5, k)
    assert (a == 0).all() and (b == 0).all() and (p < -1e37).all()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-4), (torch.float32, 1e-3)])
def test_parallel_equals_recurrent(variant, dtype, tol):
    m = _model(variant, dtype).eval()
    ids = torch.randint(0, 23, (2, 19), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        par = m(ids)  # [B, T, V]
        state, outs = None, []
        for t in range(ids.shape[1]):
            lt, state = m.step(ids[:, t], state)
            outs.append(lt)
        rec = torch.stack(outs, dim=1)
    assert par.shape == (2, 19, 23)
    assert (par - rec).abs().max().item() < tol


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_causality(variant):
    m = _model(variant).eval()
    ids = torch.randint(0, 23, (2, 17), generator=torch.Generator().manual_seed(2))
    base = m(ids)
    for t in (0, 5, 15):
        pert = ids.clone()
        pert[:, t + 1 :] = (pert[:, t + 1 :] + 7) % 23
        out = m(pert)
        assert torch.equal(out[:, : t + 1], base[:, : t + 1])
        assert not torch.equal(out[:, t + 1 :], base[:, t + 1 :])


@pytest.mark.parametrize("variant", ["branch-lif", "spike-inputs"])
def test_claimed_spikes_are_exactly_binary(variant):
    m = _model(variant)
    seen = {"lif": 0, "linear": 0, "nonzero": 0}

    def check(t):
        assert set(t.detach().unique().tolist()) <= {0.0, 1.0}

    hooks = []
    for mod in m.modules():
        if isinstance(mod, MultiStepLIF):
            def h(mod, args, out):
                out = out[0] if isinstance(out, tuple) else out
                check(out)
                seen["lif"] += 1
                seen["nonzero"] += int(out.detach().sum())
            hooks.append(mod.register_forward_hook(h))
        if variant == "spike-inputs" and isinstance(mod, torch.nn.Linear):
            def p(mod, args):
                check(args[0])
                seen["linear"] += 1
            hooks.append(mod.register_forward_pre_hook(p))
    emb_out = {}
    hooks.append(m.emb.register_forward_hook(lambda mod, a, out: emb_out.setdefault("e", out)))
    ids = torch.randint(0, 23, (2, 12), generator=torch.Generator().manual_seed(3))
    m(ids).sum().backward()
    assert seen["lif"] > 0 and seen["nonzero"] > 0
    if variant == "spike-inputs":
        assert seen["linear"] == 2 * 7 + 1  # 4 time-mix + 3 channel-mix Linears per block, + head
    # the binary embedding: H(E[ids]) in {0, 1} and gradient reaches the embedding table through the surrogate
    assert m.emb.weight.grad is not None and m.emb.weight.grad.abs().sum() > 0
    for h in hooks:
        h.remove()


def test_non_spiking_twin_has_no_lif_and_trains():
    m = _model("non-spiking", torch.float32)
    assert not any(isinstance(x, MultiStepLIF) for x in m.modules())
    ids = torch.randint(0, 23, (4, 16), generator=torch.Generator().manual_seed(4))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        logits = m(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 23), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
