"""Neuron benchmark: forward and forward+backward times of each scan at one shape, with ratios, in one run.

Compares the reference loop, the compiled kernel and (if importable) spikingjelly's multi-step IFNode with
hard and soft reset (gamma = 1 makes SPEAK's neuron an integrate-and-fire neuron; SPEC section 1).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from speak.neuron import available_backends, lif_scan


@dataclass
class BenchRow:
    name: str
    forward_ms: float
    forward_backward_ms: float


def _time(fn: Callable[[], None], repeats: int, budget_s: float) -> float:
    fn()  # warm-up (also compiles numba on first use)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (time.perf_counter() - start < budget_s or len(times) < 3):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _scan_case(backend: str, current: torch.Tensor, mask: torch.Tensor):
    def fwd():
        with torch.no_grad():
            lif_scan(current, mask, backend=backend)

    def fwd_bwd():
        x = current.detach().requires_grad_(True)
        u, s, v = lif_scan(x, mask, backend=backend)
        (u.sum() + s.sum() + v.sum()).backward()

    return fwd, fwd_bwd


def _spikingjelly_case(current: torch.Tensor, hard: bool):
    from spikingjelly.activation_based import functional, neuron, surrogate

    node = neuron.IFNode(v_threshold=1.0, v_reset=0.0 if hard else None, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                         detach_reset=False, step_mode="m", store_v_seq=True)
    seq = current.t().contiguous()  # [L, B]: spikingjelly scans the leading (time) axis

    def fwd():
        functional.reset_net(node)
        with torch.no_grad():
            node(seq)

    def fwd_bwd():
        functional.reset_net(node)
        x = seq.detach().requires_grad_(True)
        s = node(x)
        (s.sum() + node.v_seq.sum()).backward()

    return fwd, fwd_bwd


def run_neuron_benchmark(batch: int = 16, length: int = 2048, repeats: int = 20, budget_s: float = 3.0,
                         seed: int = 0) -> list[BenchRow]:
    """Time every available scan on the same random currents and masks; returns one row per implementation."""
    g = torch.Generator().manual_seed(seed)
    current = torch.randn(batch, length, generator=g) * 0.5 + 0.3  # [B, L]
    mask = torch.rand(batch, length, generator=g) < 0.2  # [B, L]
    cases: dict[str, tuple[Callable, Callable]] = {"reference loop": _scan_case("reference", current, mask)}
    if "cpu" in available_backends():
        cases["compiled (numba)"] = _scan_case("cpu", current, mask)
    if torch.cuda.is_available() and "gpu" in available_backends():
        cases["gpu (triton)"] = _scan_case("gpu", current.cuda(), mask.cuda())
    try:
        cases["spikingjelly IFNode hard"] = _spikingjelly_case(current, hard=True)
        cases["spikingjelly IFNode soft"] = _spikingjelly_case(current, hard=False)
    except ImportError:
        pass
    rows = []
    for name, (fwd, fwd_bwd) in cases.items():
        rows.append(BenchRow(name, _time(fwd, repeats, budget_s), _time(fwd_bwd, repeats, budget_s)))
    return rows


def ratios(rows: list[BenchRow], against: str = "compiled (numba)") -> dict[str, tuple[float, float]]:
    """Slowdown of each row relative to `against`: (forward ratio, forward+backward ratio)."""
    base = next((r for r in rows if r.name == against), None)
    if base is None:
        return {}
    return {r.name: (r.forward_ms / base.forward_ms, r.forward_backward_ms / base.forward_backward_ms) for r in rows}
