"""GPU check (`make gpu-check`), ready to run unchanged on a one-GPU machine in at most 10 minutes.

On CUDA: parity of every kernel's CUDA path with its CPU reference (SPEAK's neuron scan in every reset mode, the
spiking LMs' multi-step LIF, elastic bi-spike and WKV) and the Triton tests, `speak bench neuron` on CUDA, 200 steps
of the `paper` preset hourglass with the speak and dtp-unigram boundaries under AMP, and a one-GPU torchrun run;
one summary table at the end, exit 1 if a check failed.

Without CUDA: the CPU-side checks (the compiled CPU kernels against their references, the same training command
lines at cpu-tiny size for two steps, torchrun with one CPU process), one line saying there is no CUDA, exit 0
(exit 1 if a CPU-side check failed).

    python benchmarks/gpu_check.py [--corpus embedded] [--steps 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

TOTAL_BUDGET_S = 600.0


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: str


# ---------------------------------------------------------------------------------------------- kernel parity
def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max()) if a.numel() else 0.0


def _leaf(x: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    return x.detach().clone().to(device).requires_grad_(True)


def kernel_parity(device: str) -> list[Check]:
    """Each kernel's path on ``device`` (compiled on CPU, Triton / torch on CUDA) against its CPU reference."""
    from speak.lm.spiking.neurons import ElasticBiSpike, MultiStepLIF
    from speak.lm.spiking.wkv import wkv, wkv_loop
    from speak.neuron import ResetMode, lif_scan, lif_scan_reference

    checks = []
    g = torch.Generator().manual_seed(0)

    def check(name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            value_err, grad_err, tol = fn()
            ok = value_err <= tol[0] and grad_err <= tol[1]
            detail = f"max |value err| {value_err:.1e}, max |grad err| {grad_err:.1e}"
        except Exception as err:  # a check reports, the script goes on
            ok, detail = False, f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
        checks.append(Check(f"parity {name} ({device})", ok, time.perf_counter() - t0, detail))

    def speak_scan(mode: ResetMode):
        def run():
            B, L = 130, 65  # a ragged block of sequences
            cur = torch.randn(B, L, generator=g) * 0.6 + 0.4
            hard, th = mode.resolve(torch.rand(B, L, generator=g) < 0.3, 0.8, (B, L))
            x1, x2 = _leaf(cur, device), _leaf(cur)
            h1 = None if hard is None else hard.to(device)
            o1 = lif_scan(x1, h1, theta=th, gamma=0.9)
            o2 = lif_scan_reference(x2, torch.zeros(B, L, dtype=torch.bool) if hard is None else hard, th, 1.0, 0.0,
                                    0.9, 1.0, 4.0)
            (sum(o.sum() for o in o1)).backward()
            (sum(o.sum() for o in o2)).backward()
            return max(_max_err(a, b) for a, b in zip(o1, o2)), _max_err(x1.grad, x2.grad), (0.0, 1e-4)
        return run

    for mode in ResetMode:
        check(f"lif_scan {mode.value}", speak_scan(mode))

    def multistep_lif():
        x = torch.randn(3, 200, 67, generator=g) * 1.5 + 0.8  # [B, T, C]
        x1, x2 = _leaf(x, device), _leaf(x)
        s1, v1 = MultiStepLIF()(x1, return_state=True)
        s2, v2 = MultiStepLIF(backend="reference")(x2, return_state=True)
        (s1.sum() + v1.sum()).backward()
        (s2.sum() + v2.sum()).backward()
        return max(_max_err(s1, s2), _max_err(v1, v2)), _max_err(x1.grad, x2.grad), (0.0, 1e-4)

    def bispike():
        x = torch.randn(4, 100, 33, generator=g)
        fast, ref = ElasticBiSpike(4).to(device), ElasticBiSpike(4, backend="reference")
        x1, x2 = _leaf(x, device), _leaf(x)
        f1, f2 = fast(x1), ref(x2)
        w = torch.randn(f2.shape, generator=g)
        (f1 * w.to(device)).sum().backward()
        (f2 * w).sum().backward()
        grad_err = max(_max_err(x1.grad, x2.grad), _max_err(fast.alpha.grad, ref.alpha.grad))
        return _max_err(f1, f2), grad_err, (1e-6, 1e-4)

    def wkv_check():
        B, T, C = 2, 300, 40
        td, u = torch.randn(C, generator=g), torch.randn(C, generator=g)
        k, v = torch.randn(B, T, C, generator=g) * 3, torch.randn(B, T, C, generator=g)
        leaves1 = [_leaf(t, device) for t in (td, u, k, v)]
        leaves2 = [_leaf(t.double()) for t in (td, u, k, v)]
        y1, _ = wkv(-torch.exp(leaves1[0]), *leaves1[1:])
        y2, _ = wkv_loop(-torch.exp(leaves2[0]), *leaves2[1:])
        w = torch.randn(B, T, C, generator=g)
        (y1 * w.to(device)).sum().backward()
        (y2 * w.double()).sum().backward()
        grad_err = max(_max_err(a.grad, b.grad) / max(float(b.grad.abs().max()), 1.0) for a, b in zip(leaves1, leaves2))
        return _max_err(y1, y2), grad_err, (1e-4, 1e-4)

    check("MultiStepLIF", multistep_lif)
    check("ElasticBiSpike T=4", bispike)
    check("WKV", wkv_check)
    return checks


# ---------------------------------------------------------------------------------------------- subprocesses
def run_cmd(name: str, cmd: list[str], timeout: float, cwd: Path, parse=None, env=None) -> Check:
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=max(timeout, 1.0),
                             env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return Check(name, False, time.perf_counter() - t0, f"timed out after {timeout:.0f}s")
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return Check(name, False, dt, f"exit {res.returncode}: {tail[0][:140]}")
    try:
        detail = parse(res.stdout) if parse else "ok"
    except Exception as err:
        return Check(name, False, dt, f"unreadable output ({type(err).__name__}: {err})")
    return Check(name, True, dt, detail)


def _metrics_detail(out_dir: Path):
    def parse(_stdout: str) -> str:
        m = json.loads((out_dir / "metrics.json").read_text())
        keys = ("bpc", "sf", "steps", "tokenize_ms_per_batch", "infer_ms_per_batch", "tokens_per_s")
        return ", ".join(f"{k} {m[k]:.4g}" if isinstance(m.get(k), float) else f"{k} {m[k]}" for k in keys if k in m)
    return parse


def _bench_detail(stdout: str) -> str:
    rows = json.loads(stdout[stdout.index("["):])  # anything a library printed before the JSON is skipped
    return "; ".join(f"{r['name']}: fwd {r['forward_ms']:.3g} ms, fwd+bwd {r['forward_backward_ms']:.3g} ms"
                     for r in rows if r["name"] in ("compiled (numba)", "gpu (triton)"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="embedded")
    ap.add_argument("--steps", type=int, default=200, help="training steps of each paper-preset run on CUDA")
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary one, removed after)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    root = Path(__file__).resolve().parents[1]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="speak-gpu-check-"))
    cuda = torch.cuda.is_available()
    py = sys.executable
    speak = [py, "-m", "speak.cli"]
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "speak.cli"]

    def left() -> float:
        return TOTAL_BUDGET_S - (time.perf_counter() - start)

    checks = kernel_parity("cpu")
    if cuda:
        checks += kernel_parity("cuda")
        checks.append(run_cmd("Triton tests on CUDA", [py, "-m", "pytest", "-q", "-x", "tests/neuron/test_triton_interpret.py"],
                              min(120, left()), root, env={"SPEAK_REQUIRE_TRITON": "1"}))
        checks.append(run_cmd("speak bench neuron (CUDA)", speak + ["bench", "neuron", "--json", "--repeats", "10"],
                              min(90, left()), root, parse=_bench_detail))
        for boundary in ("speak", "dtp-unigram"):
            d = out / f"paper-{boundary}"
            cmd = speak + ["train", "--boundary", boundary, "--preset", "paper", "--steps", str(args.steps),
                           "--corpus", args.corpus, "--device", "cuda", "--out", str(d), "--quiet",
                           "--set", "amp=auto", "--set", "test_windows=64", "--set", "eval_windows=16"]
            checks.append(run_cmd(f"paper hourglass {boundary}, AMP, {args.steps} steps", cmd, min(200, left() - 60),
                                  root, parse=_metrics_detail(d)))
        d = out / "torchrun"
        checks.append(run_cmd("torchrun, 1 GPU, cpu-small 30 steps", torchrun + [
            "train", "--boundary", "speak", "--preset", "cpu-small", "--steps", "30", "--corpus", args.corpus,
            "--device", "cuda", "--out", str(d), "--quiet", "--set", "test_windows=16"], min(120, left()), root,
            parse=_metrics_detail(d)))
    else:
        # the same command lines, at cpu-tiny size for two steps, so a typo cannot wait for the GPU to show up
        for boundary in ("speak", "dtp-unigram"):
            d = out / f"cpu-{boundary}"
            cmd = speak + ["train", "--boundary", boundary, "--preset", "cpu-tiny", "--steps", "2", "--corpus",
                           args.corpus, "--device", "cpu", "--out", str(d), "--quiet", "--set", "amp=auto",
                           "--set", "test_windows=4", "--set", "eval_windows=2"]
            checks.append(run_cmd(f"cpu-tiny hourglass {boundary}, 2 steps", cmd, min(240, left()), root,
                                  parse=_metrics_detail(d)))
        d = out / "torchrun"
        checks.append(run_cmd("torchrun, 1 CPU process, cpu-tiny 2 steps", torchrun + [
            "train", "--boundary", "speak", "--preset", "cpu-tiny", "--steps", "2", "--corpus", args.corpus,
            "--device", "cpu", "--out", str(d), "--quiet", "--set", "test_windows=4"], min(240, left()), root,
            parse=_metrics_detail(d)))
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)

    from rich.console import Console
    from rich.table import Table

    device = torch.cuda.get_device_name(0) if cuda else "no CUDA"
    table = Table(title=f"GPU check: {device}, torch {torch.__version__}, {time.perf_counter() - start:.0f}s")
    for col in ("check", "result", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left", overflow="fold")
    for c in checks:
        table.add_row(c.name, "ok" if c.ok else "FAIL", f"{c.seconds:.1f}", c.detail)
    Console(width=160).print(table)
    failed = [c.name for c in checks if not c.ok]
    if not cuda:
        print("no CUDA device: ran the CPU-side checks only" + (f"; {len(failed)} failed" if failed else ""))
    elif failed:
        print(f"{len(failed)} check(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
