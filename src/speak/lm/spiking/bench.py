"""Model benchmark: training and test-split evaluation throughput of SpikeGPT, SpikeLM and the Transformer, side by
side in one run, with each spiking LM's ratio to the Transformer (`speak bench models`).

All models get the same size (the ``cpu-small`` protocol by default: d_model 128, 4 layers, 4 heads, batches of 8
windows of 512 characters), the same character vocabulary and the same windows of a corpus (the embedded one by
default). The models take turns: round r times one training step of every model, then one evaluation batch of every
model, so a machine shared with other work slows all of them alike and the ratios stay fair. Reported throughput is
the median over rounds (the first round, which compiles the kernels, is dropped).

Training step = forward, cross-entropy over every position, backward, gradient clipping, AdamW step.
Evaluation batch = ``eval_batch`` windows of ``seq_len`` characters under ``torch.no_grad``, each scoring its last
``seq_len // 4`` characters (the cpu-small protocol's scored/context split), counted as scored characters per second.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("transformer", "spikegpt", "spikelm")


@dataclass
class ModelBenchConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    batch_size: int = 8
    seq_len: int = 512
    eval_batch: int = 8
    rounds: int = 6  # timed rounds after one warm-up round
    models: tuple[str, ...] = MODELS
    seed: int = 0
    threads: int = 0  # torch intra-op threads (0 = leave torch's default)


@dataclass
class ModelBenchRow:
    model: str
    params: int
    train_chars_per_s: float
    eval_chars_per_s: float
    train_times: list[float] = field(default_factory=list)
    eval_times: list[float] = field(default_factory=list)


def _char_ids(text: str) -> tuple[np.ndarray, int]:
    """Characters -> ids by first occurrence; returns ([N] int64, vocabulary size)."""
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(ch, len(vocab)) for ch in text), dtype=np.int64, count=len(text))
    return ids, len(vocab)


def build_models(cfg: ModelBenchConfig, vocab_size: int) -> dict[str, nn.Module]:
    from speak.lm.spiking.io import build_model

    size = dict(vocab_size=vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers)
    heads = dict(n_heads=cfg.n_heads, max_len=cfg.seq_len)
    out = {}
    for name in cfg.models:
        torch.manual_seed(cfg.seed)
        out[name] = build_model(name, size if name == "spikegpt" else {**size, **heads})
    return out


def run_model_benchmark(cfg: ModelBenchConfig | None = None, text: str | None = None) -> list[ModelBenchRow]:
    """Train and evaluate every model of ``cfg.models`` in turns (module doc); one row per model."""
    cfg = cfg or ModelBenchConfig()
    if text is None:
        from speak.text.corpora import embedded_corpus_path, read_text

        text = read_text(embedded_corpus_path())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data, V = _char_ids(text)
    W = cfg.seq_len + 1
    if data.size < 2 * W:
        raise ValueError(f"the text has {data.size} characters; the benchmark needs at least {2 * W}")
    n_train = int(data.size * 0.9)
    train, test = data[:n_train], data[n_train - W :] if data.size - n_train < W else data[n_train:]
    rng = np.random.default_rng(cfg.seed)
    models = build_models(cfg, V)
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-3) for n, m in models.items()}
    scored = max(1, cfg.seq_len // 4)
    starts = np.arange(0, max(test.size - W, 0) + 1, scored)  # evaluation windows advance by the scored length
    times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in models}
    for r in range(cfg.rounds + 1):
        offsets = rng.integers(0, train.size - W, cfg.batch_size)
        batch = torch.from_numpy(np.stack([train[o : o + W] for o in offsets]))  # [B, T + 1]
        ev = starts[(r * cfg.eval_batch + np.arange(cfg.eval_batch)) % starts.size]
        ev_batch = torch.from_numpy(np.stack([test[s : s + W] for s in ev]))  # [b, T + 1]
        for name, model in models.items():
            model.train()
            t0 = time.perf_counter()
            logits = model(batch[:, :-1])  # [B, T, V]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opts[name].step()
            t1 = time.perf_counter()
            model.eval()
            with torch.no_grad():
                logits = model(ev_batch[:, :-1])  # [b, T, V]
                F.cross_entropy(logits[:, -scored:].reshape(-1, logits.shape[-1]), ev_batch[:, -scored:].reshape(-1))
            t2 = time.perf_counter()
            if r > 0:
                times[name][0].append(t1 - t0)
                times[name][1].append(t2 - t1)
    rows = []
    for name, model in models.items():
        tr, evt = times[name]
        rows.append(ModelBenchRow(
            model=name, params=sum(p.numel() for p in model.parameters()),
            train_chars_per_s=cfg.batch_size * cfg.seq_len / statistics.median(tr),
            eval_chars_per_s=cfg.eval_batch * scored / statistics.median(evt),
            train_times=tr, eval_times=evt,
        ))
    return rows


def ratios(rows: list[ModelBenchRow], against: str = "transformer") -> dict[str, tuple[float, float]]:
    """Each model's (training, evaluation) throughput divided by ``against``'s."""
    base = next((r for r in rows if r.model == against), None)
    if base is None:
        return {}
    return {r.model: (r.train_chars_per_s / base.train_chars_per_s, r.eval_chars_per_s / base.eval_chars_per_s)
            for r in rows}
