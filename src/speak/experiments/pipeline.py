"""The run pipeline of ``speak train`` and of every experiment grid: build a run (``speak.train.runs``), train it
(``speak.train.trainer``), evaluate it on the test split (``speak.eval.metrics``), write ``metrics.json``
atomically. Also ``speak bench boundaries``: two sources trained side by side, seconds per step.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from speak.eval.metrics import final_metrics, make_valid_fn
from speak.lm.boundaries.registry import BENCH_PAIR
from speak.train import runs as R
from speak.train import trainer as T
from speak.train.objective import compute_objective

__all__ = ["bench_boundaries", "train_and_evaluate"]


def train_and_evaluate(cfg, *, resume: bool = False, plugins=()) -> dict[str, Any]:
    """What ``speak train`` does: prepare data and model, train (DDP under torchrun), evaluate on the test split,
    write ``OUT/metrics.json`` (rank 0, atomically). Returns the metrics (rank 0) or {} (other ranks)."""
    from speak.atomic import atomic_write_json

    dist_info = T.init_distributed(cfg.device)
    out_dir = Path(cfg.out)
    vocab = None
    if resume and (out_dir / "vocab.json").is_file():
        _, vocab = R.read_run_files(out_dir)
    data = R.prepare_data(cfg, vocab)
    R.check_splits(data)
    stream, extra_plugins = R.build_training_stream(cfg, data, dist_info, out_dir / "cache")  # checks batch size
    T.seed_everything(cfg.seed)
    model = R.build_hourglass(cfg, data.vocab)
    if dist_info.is_main:
        R.write_run_files(cfg, data.vocab, out_dir)
    t0 = time.perf_counter()
    trainer = T.Trainer(model, compute_objective, stream, make_valid_fn(cfg, data.valid_ids), cfg,
                        plugins=[*extra_plugins, *plugins], dist_info=dist_info)
    summary = trainer.fit(resume=resume)
    train_seconds = time.perf_counter() - t0
    if not dist_info.is_main:
        _finish_distributed(dist_info)
        return {}
    try:
        metrics = final_metrics(trainer.model, cfg, data, train_summary=summary)
    finally:
        _finish_distributed(dist_info)
    times = trainer.step_times[1:] or trainer.step_times
    metrics["train_seconds"] = train_seconds
    metrics["ms_per_step"] = 1e3 * statistics.median(times) if times else None
    metrics["world_size"] = dist_info.world_size
    metrics["resumed_at"] = summary.get("resumed_at")
    for plugin in trainer.plugins:  # e.g. the proxy's per-epoch MH rejection rates
        if hasattr(plugin, "final_metrics"):
            metrics.update(plugin.final_metrics())
    if data.notes:
        metrics["exemplar_note"] = "; ".join(data.notes)
    atomic_write_json(out_dir / R.METRICS_FILE, metrics)
    return metrics


def _finish_distributed(dist_info) -> None:
    """Wait for rank 0's final evaluation, then leave the process group."""
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def bench_boundaries(
    corpus: str = "embedded",
    a: str = BENCH_PAIR[0],
    b: str = BENCH_PAIR[1],
    *,
    steps: int = 20,
    preset: str = "cpu-small",
    batch_size: int | None = None,
    seq_len: int | None = None,
    seed: int = 0,
    device: str = "auto",
    sets: tuple[str, ...] = (),
    warmup_steps: int = 2,
    out=sys.stdout,
) -> dict[str, Any]:
    """Train the same model with boundary sources ``a`` and ``b`` side by side (their steps interleaved, so both
    see the same machine load) for ``steps`` steps each; report the median seconds per training step of each and
    the ratio a / b (``BENCH_PAIR``'s target: <= 1.10)."""
    from speak.train.config import load_config

    results: dict[str, Any] = {"a": a, "b": b, "steps": steps, "preset": preset, "corpus": corpus}
    trainers = {}
    data = None
    for name in (a, b):
        flags = {"corpus": corpus, "boundary": name, "preset": preset, "steps": steps + warmup_steps, "seed": seed,
                 "device": device, "batch_size": batch_size, "seq_len": seq_len, "quiet": True,
                 "eval_every": 0, "checkpoint_every": 0, "out": "bench-unused"}
        cfg = load_config(flags=flags, sets=list(sets))
        if data is None:
            data = R.prepare_data(cfg)
        dist_info = T.DistInfo()
        stream, plugins = R.build_training_stream(cfg, data, dist_info, None)
        T.seed_everything(seed)
        model = R.build_hourglass(cfg, data.vocab)
        trainers[name] = T.Trainer(model, compute_objective, stream, None, cfg, out_dir=None, quiet=True,
                                   dist_info=dist_info, plugins=plugins)
    for _ in range(steps + warmup_steps):
        for name in (a, b):
            trainers[name].train_step()
    for name in (a, b):
        times = trainers[name].step_times[warmup_steps:]
        results[f"{name}_s_per_step"] = float(statistics.median(times))
        results[f"{name}_mean_s_per_step"] = float(sum(times) / len(times))
        results[f"{name}_final_loss"] = trainers[name].history[-1]["loss"]
        results[f"{name}_sf"] = trainers[name].history[-1].get("sf")
    ratio = results[f"{a}_s_per_step"] / results[f"{b}_s_per_step"]
    results["ratio"] = ratio
    if out is not None:
        print(f"{a:>12}: {1e3 * results[f'{a}_s_per_step']:.1f} ms/step (median of {steps})", file=out)
        print(f"{b:>12}: {1e3 * results[f'{b}_s_per_step']:.1f} ms/step (median of {steps})", file=out)
        print(f"ratio {a}/{b}: {ratio:.3f}x", file=out)
    return results
