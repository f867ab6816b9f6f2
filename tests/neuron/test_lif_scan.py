"""lif_scan: SPEC section 1 to the letter, parity of every backend with the reference, input validation."""

import pytest
import torch

from speak.neuron import LIFNeuron, ResetMode, available_backends, lif_scan

FAST = [b for b in available_backends() if b != "reference"]


def spec_scan(I, m, theta, u_th=1.0, u_reset=0.0, gamma=1.0, delta=1.0):
    """SPEC section 1 written out in plain Python floats: an independent check of the reference."""
    us, ss, vs = [], [], []
    for row_i, row_m in zip(I.tolist(), m.tolist()):
        v, ru, rs, rv = u_reset, [], [], []
        for i, mk in zip(row_i, row_m):
            u = gamma * v + delta * i
            s = 1.0 if u >= u_th else 0.0
            v = mk * (u * (1 - s) + u_reset * s) + (1 - mk) * (u - theta * u_th * s)
            ru.append(u), rs.append(s), rv.append(v)
        us.append(ru), ss.append(rs), vs.append(rv)
    return torch.tensor(us, dtype=torch.float64), torch.tensor(ss, dtype=torch.float64), torch.tensor(vs, dtype=torch.float64)


def random_case(seed, B=5, L=40, dtype=torch.float64, p_mask=0.3):
    g = torch.Generator().manual_seed(seed)
    I = (torch.randn(B, L, generator=g) * 0.6 + 0.35).to(dtype)
    m = torch.rand(B, L, generator=g) < p_mask
    return I, m


MODES = [
    ("entropy-aware", 0.8), ("entropy-aware", 0.4), ("all-hard", 0.8), ("all-soft", 0.8),
    ("no-reset", 0.8), ("hard-no-reset", 0.8),
]


def run_mode(mode, theta, I, m, backend):
    hard, th = ResetMode(mode).resolve(m, theta, tuple(I.shape))
    return lif_scan(I, hard, theta=th, backend=backend)


@pytest.mark.parametrize("mode,theta", MODES)
@pytest.mark.parametrize("seed", range(4))
def test_reference_matches_spec(mode, theta, seed):
    I, m = random_case(seed)
    hard, th = ResetMode(mode).resolve(m, theta, tuple(I.shape))
    ref = lif_scan(I, hard, theta=th, backend="reference")
    mask = hard if hard is not None else torch.zeros_like(m)
    spec = spec_scan(I, mask.double(), th)
    for a, b in zip(ref, spec):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _grads(I, m, mode, theta, backend, weights):
    x = I.clone().requires_grad_(True)
    u, s, v = run_mode(mode, theta, x, m, backend)
    wu, ws, wv = weights
    ((u * wu).sum() + (s * ws).sum() + (v * wv).sum()).backward()
    return (u, s, v), x.grad


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("mode,theta", MODES)
@pytest.mark.parametrize("seed", range(3))
def test_fast_backend_parity(backend, dtype, tol, mode, theta, seed):
    I, m = random_case(100 + seed, B=6, L=64, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    weights = tuple(torch.randn(I.shape, generator=g).to(dtype) for _ in range(3))
    ref_out, ref_grad = _grads(I, m, mode, theta, "reference", weights)
    out, grad = _grads(I, m, mode, theta, backend, weights)
    for a, b in zip(out, ref_out):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("backend", ["reference"] + FAST)
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (0, 7), (2, 0), (0, 0)])
def test_edge_shapes(backend, shape):
    I = torch.full(shape, 0.7, dtype=torch.float64, requires_grad=True)
    u, s, v = lif_scan(I, backend=backend)
    assert u.shape == s.shape == v.shape == torch.Size(shape)
    (u.sum() + v.sum()).backward()
    assert I.grad.shape == torch.Size(shape)


@pytest.mark.parametrize("backend", ["reference"] + FAST)
def test_exactly_at_threshold_fires(backend):
    I = torch.tensor([[1.0, 0.5, 0.5, 1.0]], dtype=torch.float64)
    u, s, v = lif_scan(I, torch.tensor([[True, True, False, False]]), theta=0.8, backend=backend)
    assert s.tolist() == [[1.0, 0.0, 1.0, 1.0]]  # 1.0 >= 1.0 fires; 0.5 + 0.5 = 1.0 fires
    torch.testing.assert_close(v, torch.tensor([[0.0, 0.5, 0.2, 0.4]], dtype=torch.float64))


def test_golden_soft_vs_hard():
    """Hand-computed traces (dyadic values, so the float arithmetic is exact)."""
    I = torch.tensor([[0.75, 0.5, 0.25, 0.5]], dtype=torch.float64)
    u, s, v = lif_scan(I, None, theta=0.75)  # theta-scaled soft reset: subtract 0.75 on a spike
    assert u.tolist() == [[0.75, 1.25, 0.75, 1.25]] and s.tolist() == [[0, 1, 0, 1]]
    assert v.tolist() == [[0.75, 0.5, 0.75, 0.5]]
    u, s, v = lif_scan(I, torch.ones(1, 4, dtype=torch.bool), theta=0.75)  # hard reset to 0
    assert u.tolist() == [[0.75, 1.25, 0.25, 0.75]] and s.tolist() == [[0, 1, 0, 0]]
    u, s, v = lif_scan(I, None, theta=0.0)  # no reset: u keeps integrating
    assert u.tolist() == [[0.75, 1.25, 1.5, 2.0]] and s.tolist() == [[0, 1, 1, 1]]
    u, s, v = lif_scan(I, torch.tensor([[False, True, False, False]]), theta=0.75)  # mixed, Eq. 11
    assert v.tolist() == [[0.75, 0.0, 0.25, 0.75]]


@pytest.mark.parametrize("backend", ["reference"] + FAST)
def test_huge_and_negative_currents(backend):
    I = torch.tensor([[1e6, -1e6, 3e5, -2.0, 5.0]], dtype=torch.float64)
    m = torch.tensor([[False, True, False, True, False]])
    out = lif_scan(I, m, backend=backend)
    ref = lif_scan(I, m, backend="reference")
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b)
        assert torch.isfinite(a).all()


def test_reset_is_not_detached():
    """Gradient flows through s inside the reset: d v_t / d I_t carries a surrogate term under hard reset."""
    I = torch.tensor([[1.05]], dtype=torch.float64, requires_grad=True)
    u, s, v = lif_scan(I, torch.ones(1, 1, dtype=torch.bool), backend="reference")
    v.sum().backward()
    sg = torch.sigmoid(torch.tensor(4 * 0.05, dtype=torch.float64))
    expected = (1 - 1.0) + (0.0 - 1.05) * 4 * sg * (1 - sg)  # direct + through s
    torch.testing.assert_close(I.grad, expected.reshape(1, 1))


def test_surrogate_is_sigmoid_derivative():
    I = torch.linspace(0.0, 2.0, 9, dtype=torch.float64).reshape(1, 9).requires_grad_(True)
    for backend in ["reference"] + FAST:
        x = I.detach().clone().requires_grad_(True)
        # one step per sequence: make each position its own sequence
        u, s, v = lif_scan(x.reshape(9, 1), backend=backend)
        s.sum().backward()
        sg = torch.sigmoid(4 * (I.detach().reshape(9, 1) - 1.0))
        torch.testing.assert_close(x.grad.reshape(9, 1), 4 * sg * (1 - sg))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(current=torch.zeros(3)), "shape \\[B, L\\]"),
        (dict(current=torch.zeros(2, 3, 4)), "shape \\[B, L\\]"),
        (dict(current=torch.zeros(2, 3, dtype=torch.long)), "floating-point"),
        (dict(current=torch.tensor([[0.1, float("nan")]])), "NaN or infinite"),
        (dict(current=torch.tensor([[0.1, float("inf")]])), "NaN or infinite"),
        (dict(current=torch.zeros(2, 3), hard_reset=torch.zeros(2, 4, dtype=torch.bool)), "does not match"),
        (dict(current=torch.zeros(2, 3), hard_reset=torch.full((2, 3), 2)), "bool mask"),
        (dict(current=torch.zeros(2, 3), theta=1.5), "theta must lie in \\[0, 1\\]"),
        (dict(current=torch.zeros(2, 3), theta=-0.1), "theta must lie in \\[0, 1\\]"),
        (dict(current=[[0.1, 0.2]]), "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lif_scan(**kwargs)


def test_float_mask_accepted_and_unknown_mode_rejected():
    I, m = random_case(7, B=2, L=10)
    a = lif_scan(I, m)
    b = lif_scan(I, m.double())
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    with pytest.raises(ValueError, match="unknown reset mode"):
        ResetMode.parse("sideways")


@pytest.mark.parametrize("mode,theta", MODES)
def test_module_matches_functional(mode, theta):
    I, m = random_case(3)
    neuron = LIFNeuron(theta=theta, reset_mode=mode)
    hard, th = ResetMode(mode).resolve(m, theta, tuple(I.shape))
    for a, b in zip(neuron(I, m), lif_scan(I, hard, theta=th)):
        torch.testing.assert_close(a, b)
    assert mode in repr(neuron)


def test_uniform_modes_ignore_mask():
    I, m = random_case(11)
    for mode in ("all-hard", "all-soft", "no-reset"):
        neuron = LIFNeuron(reset_mode=mode)
        for a, b in zip(neuron(I, m), neuron(I, ~m)):
            torch.testing.assert_close(a, b)
    assert LIFNeuron(reset_mode="all-hard")(I, m)[1].sum() < LIFNeuron(reset_mode="no-reset")(I, m)[1].sum()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mode,theta", MODES)
def test_gpu_parity(mode, theta):
    pytest.importorskip("triton")
    I, m = random_case(21, B=300, L=128, dtype=torch.float32)  # > one Triton block of sequences
    g = torch.Generator().manual_seed(0)
    weights = tuple(torch.randn(I.shape, generator=g) for _ in range(3))
    ref_out, ref_grad = _grads(I, m, mode, theta, "reference", weights)
    out, grad = _grads(I.cuda(), m.cuda(), mode, theta, "gpu", tuple(w.cuda() for w in weights))
    for a, b in zip(out, ref_out):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grad.cpu(), ref_grad, rtol=1e-4, atol=1e-3)


def test_large_finite_currents_are_not_mistaken_for_inf():
    """The sum of these overflows float32, yet every element is finite: no error."""
    I = torch.full((1, 4), 3e38, dtype=torch.float32)
    u, s, v = lif_scan(I, torch.ones(1, 4, dtype=torch.bool))  # hard reset keeps u finite
    assert torch.isfinite(u).all() and s.tolist() == [[1.0] * 4]
