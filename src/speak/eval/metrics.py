"""Metrics of a trained character LM (paper Table 1 and Table 4 columns).

- BPC: mean next-character cross-entropy (nats) / ln 2 over a split, with DTP's windowed protocol
  (``speak.train.data.eval_windows``: each character scored once, with up to ``context`` characters of context).
- SF (shortening factor): characters / tokens over the scored characters; a token closes where ``hard = 1`` and the
  text's end closes the last one.
- Parameter counts: LM and tokenizer separately (``speak.lm.hourglass.count_parameters``).
- Timing: tokenization time = the boundary source's forward alone (timed by hooks inside the full forward);
  inference time = the whole forward. Median milliseconds over N batches, ``torch.no_grad``, eval mode, after
  warm-up, CUDA synchronised.

Also :func:`evaluate_run` (``speak eval``): re-evaluate a saved run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speak.train.data import EvalWindow, count_eval_windows, eval_windows
from speak.units import LN2

REQUIRED_KEYS = (
    "bpc", "sf", "lm_params", "tokenizer_params", "tokenize_ms_per_batch", "infer_ms_per_batch", "steps", "boundary",
    "corpus", "seed",
)


RESET_KEYS = ("hard_reset_share", "c_precision", "c_recall", "c_target_rate")


def _logits_and_hard(out: Any) -> tuple[Tensor, Tensor | None]:
    """(logits [B, L, V], hard [B, L] or None) from a model output (HourglassOutput, tuple or plain logits)."""
    if isinstance(out, Tensor):
        return out, None
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, (tuple, list)):
        logits = out[0]
    boundary = getattr(out, "boundary", None)
    hard = getattr(boundary, "hard", None) if boundary is not None else None
    return logits, hard


def _shortens(model: nn.Module) -> bool:
    source = getattr(getattr(model, "module", model), "boundary_source", None)
    return bool(getattr(source, "shortens", source is not None))


def _select(windows: list[EvalWindow], max_windows: int | None) -> list[EvalWindow]:
    """All windows, or ``max_windows`` of them evenly spread over the split (deterministic)."""
    if not max_windows or max_windows >= len(windows):
        return windows
    idx = np.unique(np.linspace(0, len(windows) - 1, max_windows).round().astype(np.int64))
    return [windows[i] for i in idx]


@torch.no_grad()
def evaluate_bpc(
    model: nn.Module,
    ids: np.ndarray,
    *,
    scored: int = 512,
    context: int = 1536,
    batch_size: int = 8,
    max_windows: int | None = None,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Windowed BPC and SF of ``model`` on an encoded split. Returns bpc, sf, nats, chars, tokens, windows."""
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    windows = _select(list(eval_windows(ids, scored=scored, context=context)), max_windows)
    n_total = int(np.asarray(ids).size)
    shortens = _shortens(model)
    source = getattr(getattr(model, "module", model), "boundary_source", None)
    counting = callable(getattr(source, "reset_counts", None))
    counts: dict[str, float] = {}
    nats = 0.0
    chars = 0
    tokens = 0.0
    try:
        for i in range(0, len(windows), batch_size):
            chunk = windows[i : i + batch_size]
            x = torch.from_numpy(np.stack([w.ids for w in chunk])).to(device)  # [b, W]
            if amp_dtype is not None and device.type == "cuda":
                with torch.autocast(device_type="cuda", dtype=amp_dtype):
                    out = model(x[:, :-1])
            else:
                out = model(x[:, :-1])
            logits, hard = _logits_and_hard(out)  # [b, W-1, V], [b, W-1]
            V = logits.shape[-1]
            ce = F.cross_entropy(logits.float().reshape(-1, V), x[:, 1:].reshape(-1), reduction="none")
            ce = ce.view(x.shape[0], -1)  # [b, W-1]
            if counting:
                keep = torch.zeros(ce.shape, dtype=torch.bool, device=ce.device)  # [b, W-1] the scored positions
                for j, w in enumerate(chunk):
                    keep[j, -w.n_scored:] = True
                for key, value in source.reset_counts(out.boundary, logits, keep).items():
                    counts[key] = counts.get(key, 0.0) + value
            for j, w in enumerate(chunk):
                n = w.n_scored
                nats += float(ce[j, -n:].double().sum())
                chars += n
                if hard is not None and shortens:
                    h = hard[j, -n:].detach().float()  # [n] boundaries at the scored input positions
                    closed = float(h.sum())
                    if w.start + w.ids.size >= n_total and float(h[-1]) < 0.5:
                        closed += 1.0  # the text's end closes its last token
                    tokens += closed
                else:
                    tokens += n
    finally:
        model.train(was_training)
    bpc = nats / max(chars, 1) / LN2
    return {
        "bpc": bpc,
        "sf": chars / max(tokens, 1.0),
        "nats": nats,
        "chars": float(chars),
        "tokens": float(tokens),
        "windows": float(len(windows)),
        **reset_metrics(counts),
    }


def reset_metrics(counts: dict[str, float]) -> dict[str, float]:
    """SPEAK's entropy-aware reset from summed ``reset_counts`` (empty for other sources): the share of spikes that
    hard-reset, and the contextual-boundary predictor C's precision and recall against its high-entropy targets
    (e_hat, Eq. 12) at the spikes, with the targets' base rate (precision of marking spikes at random)."""
    if not counts:
        return {}
    spikes = max(counts["spikes"], 1.0)
    return {
        "hard_reset_share": counts["hard_resets"] / spikes,
        "c_precision": counts["c_hits"] / max(counts["c_marked"], 1.0),
        "c_recall": counts["c_hits"] / max(counts["c_targets"], 1.0),
        "c_target_rate": counts["c_targets"] / spikes,
    }


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(lm_params, tokenizer_params): ``speak.lm.hourglass.count_parameters`` for models with a boundary source,
    else every parameter counts for the LM."""
    core = getattr(model, "module", model)
    if hasattr(core, "boundary_source"):
        from speak.lm.hourglass import count_parameters

        lm, tok = count_parameters(core)
        return int(lm), int(tok)
    return int(sum(p.numel() for p in core.parameters())), 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_forward(
    model: nn.Module,
    chars: Tensor,
    *,
    batches: int = 10,
    warmup: int = 2,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Median ms per batch of the boundary source's forward (tokenize) and of the whole forward (infer).

    Inference is timed without hooks; tokenization with pre/post forward hooks on ``model.boundary_source``
    (0 when the model has none). ``chars`` [B, L] int64 on the model's device.
    """
    core = getattr(model, "module", model)
    device = chars.device
    was_training = model.training
    model.eval()

    def run() -> None:
        if amp_dtype is not None and device.type == "cuda":
            with torch.autocast(device_type="cuda", dtype=amp_dtype):
                model(chars)
        else:
            model(chars)

    try:
        for _ in range(max(0, warmup)):
            run()
        _sync(device)
        infer: list[float] = []
        for _ in range(max(1, batches)):
            _sync(device)
            t0 = time.perf_counter()
            run()
            _sync(device)
            infer.append((time.perf_counter() - t0) * 1e3)
        tok: list[float] = []
        source = getattr(core, "boundary_source", None)
        if isinstance(source, nn.Module):
            starts: list[float] = []

            def pre(_m, _a):
                _sync(device)
                starts.append(time.perf_counter())

            def post(_m, _a, _o):
                _sync(device)
                tok.append((time.perf_counter() - starts[-1]) * 1e3)

            h1 = source.register_forward_pre_hook(pre)
            h2 = source.register_forward_hook(post)
            try:
                for _ in range(max(1, batches)):
                    run()
            finally:
                h1.remove()
                h2.remove()
    finally:
        model.train(was_training)
    return {
        "tokenize_ms_per_batch": float(statistics.median(tok)) if tok else 0.0,
        "infer_ms_per_batch": float(statistics.median(infer)),
    }


# ---------------------------------------------------------------------------------------------- run pipeline
def make_valid_fn(cfg, ids: np.ndarray) -> Callable[[nn.Module], dict[str, float]]:
    """Periodic validation for the trainer: windowed BPC/SF on ``cfg.eval_windows`` windows of the valid split."""
    from speak.train.trainer import resolve_amp, resolve_device

    amp = resolve_amp(cfg.amp, resolve_device(cfg.device))

    def valid_fn(model: nn.Module) -> dict[str, float]:
        r = evaluate_bpc(model, ids, scored=cfg.scored, context=cfg.context, batch_size=cfg.eval_batch_size,
                         max_windows=cfg.eval_windows or None, amp_dtype=amp)
        return {k: r[k] for k in ("bpc", "sf", *RESET_KEYS) if k in r}

    return valid_fn


def final_metrics(model: nn.Module, cfg, data, *, train_summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """metrics.json content: test BPC / SF (windowed), parameter counts, Table 4 timings and the run's identity."""
    from speak.train.trainer import resolve_amp

    device = next(model.parameters()).device
    amp = resolve_amp(cfg.amp, device)
    test = evaluate_bpc(model, data.test_ids, scored=cfg.scored, context=cfg.context, batch_size=cfg.eval_batch_size,
                        max_windows=cfg.test_windows or None, device=device, amp_dtype=amp)
    lm_params, tok_params = parameter_counts(model)
    windows = list(eval_windows(data.test_ids, scored=cfg.scored, context=cfg.context))
    sample = windows[: cfg.eval_batch_size]
    chars = torch.from_numpy(np.stack([w.ids[:-1] for w in sample])).to(device)  # [b, W-1]
    timing = time_forward(model, chars, batches=max(1, cfg.timing_batches), amp_dtype=amp)
    metrics: dict[str, Any] = {
        "bpc": test["bpc"],
        "sf": test["sf"],
        "lm_params": lm_params,
        "tokenizer_params": tok_params,
        "tokenize_ms_per_batch": timing["tokenize_ms_per_batch"],
        "infer_ms_per_batch": timing["infer_ms_per_batch"],
        "timing_batch_shape": list(chars.shape),
        "steps": int(train_summary["step"]) if train_summary else None,
        "boundary": cfg.boundary,
        "corpus": cfg.corpus,
        "preset": cfg.preset,
        "seed": cfg.seed,
        "test_chars": int(test["chars"]),
        "test_windows": int(test["windows"]),
        "test_windows_total": count_eval_windows(int(data.test_ids.size), cfg.scored, cfg.context),
        "eval_scored": cfg.scored,
        "eval_context": cfg.context,
        "device": str(device),
        "torch": torch.__version__,
        **{k: test[k] for k in RESET_KEYS if k in test},
    }
    if train_summary:
        last = train_summary.get("last") or {}
        metrics["final_train_loss"] = last.get("loss")
        metrics["final_train_bpc"] = last.get("bpc")
        ev = train_summary.get("eval") or {}
        metrics["valid_bpc"] = ev.get("valid_bpc")
        metrics["valid_sf"] = ev.get("valid_sf")
        metrics.update({f"valid_{k}": ev[f"valid_{k}"] for k in RESET_KEYS if f"valid_{k}" in ev})
        metrics["best_valid_bpc"] = (train_summary.get("best") or {}).get("valid_bpc")
    return metrics


def evaluate_run(run_dir: str | Path, *, corpus: str | None = None, write: bool = True) -> dict[str, Any]:
    """Re-evaluate a run's last checkpoint on the test split of its corpus (or of ``corpus``, encoded with the run's
    vocabulary). Writes ``RUN/eval.json`` (or ``eval-<corpus>.json``) atomically and returns the metrics."""
    from speak.atomic import atomic_write_json
    from speak.train.runs import load_run_model, prepare_data
    from speak.train.trainer import resolve_device

    run_dir = Path(run_dir)
    cfg, vocab, model, ckpt = load_run_model(run_dir)
    if corpus is not None:
        cfg = cfg.replace(corpus=corpus)
    else:  # from any directory; says when the corpus moved or changed
        from speak.train.provenance import check_run_corpus

        cfg = cfg.replace(corpus=check_run_corpus(run_dir, cfg.corpus, strict=False))
    data = prepare_data(cfg, vocab)
    model.to(resolve_device(cfg.device))
    metrics = final_metrics(model, cfg, data, train_summary={"step": ckpt.step})
    metrics["checkpoint"] = str(ckpt.path)
    if write:
        name = "eval.json" if corpus is None else f"eval-{_safe(corpus)}.json"
        atomic_write_json(run_dir / name, metrics)
    return metrics


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))[-60:]
