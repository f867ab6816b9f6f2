"""A generic trainer over (model, objective, data stream): Adam(W) with linear warm-up then cosine to 0, gradient
clipping, AMP on CUDA, periodic evaluation, a CSV training curve, atomic checkpoints with exact resume, data
parallelism under ``torchrun`` and plug-ins that see every step and keep their own state in checkpoints.

- ``objective(model, batch, step=step) -> (loss, metrics)`` (or ``(loss, metrics, out)``); metrics are floats and
  should include ``lm_loss``/``bpc``/``sf`` (``bpc`` falls back to loss / ln 2, ``sf`` to 1).
- ``train_stream.next_batch() -> Batch`` with ``state_dict()`` / ``load_state_dict()`` (see ``CharStream``).
- ``valid_fn(model) -> dict[str, float]`` (or None): called on rank 0 under ``torch.no_grad`` in eval mode, with
  the torch RNG forked so evaluation never changes the training run.
- Plug-ins (``plugins=[...]``): any object with some of ``attach(trainer)`` (called once, at construction),
  ``on_step_end(step, batch, out, metrics)``,
  ``extra_state() -> dict`` and ``load_extra_state(dict)``; ``out`` is the model's first forward output of the step,
  ``metrics`` may be extended in place (the new keys are logged). Rank 0's plug-in state is checkpointed
  (tensors and arrays inside it are stored in safetensors); plug-ins with per-rank state must sync it themselves.

Data parallelism: gradients are averaged across ranks with one flat all-reduce per dtype after ``backward`` (the
model is not wrapped, so objectives and plug-ins see the plain module); initial parameters are broadcast from rank 0;
each rank draws its own shard of windows (the stream is seeded with ``(seed, rank)``). Only rank 0 writes files and
shows progress.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speak.atomic import atomic_write_text, ensure_dir
from speak.errors import SpeakError
from speak.train.checkpoint import (
    find_checkpoint,
    load_checkpoint,
    load_model_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from speak.train.config import TrainConfig, resume_mismatches
from speak.train.console import InterruptFlag, PlainProgress
from speak.train.data import Batch
from speak.units import LN2

BASE_COLUMNS = ("step", "lr", "loss", "bpc", "sf", "chars_per_s")
CHECKPOINT_DIR = "checkpoints"
TRAIN_LOG = "train_log.csv"
EVAL_LOG = "eval_log.csv"


# ---------------------------------------------------------------------------------------------- small helpers
def lr_at(step: int, *, base: float, warmup: int, total: int) -> float:
    """Learning rate for the optimizer step that follows ``step`` completed steps: linear warm-up over ``warmup``
    steps (from base/warmup to base), then cosine from base to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the local CUDA device when available (``LOCAL_RANK`` picks it), else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SpeakError(f"device '{name}' requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return dev


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` = bf16 (or fp16 where bf16 is unsupported) on CUDA, off elsewhere."""
    if device.type != "cuda" or mode == "off":
        if mode in ("bf16", "fp16") and device.type != "cuda":
            return None  # AMP is a CUDA feature here; CPU runs stay in float32 (documented)
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global generator and torch (CPU and CUDA)."""
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class DistInfo:
    """Rank / world size of this process (1 process when not launched by torchrun)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.enabled = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.enabled else 0
        self.world_size = dist.get_world_size() if self.enabled else 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available() and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo()


class CsvLog:
    """A CSV file whose header grows when new metric keys appear (the file is rewritten then; it is small)."""

    def __init__(self, path: Path, base: Iterable[str]) -> None:
        self.path = path
        self.columns = list(base)
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
            if header:
                self.columns = header + [c for c in self.columns if c not in header]

    def _rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        lines: list[str] = []
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        lines.append(buf.getvalue())
        atomic_write_text(self.path, "".join(lines))

    def append(self, row: dict[str, Any]) -> None:
        row = {k: _fmt(v) for k, v in row.items()}
        new = [k for k in row if k not in self.columns]
        if new or not self.path.is_file():
            self.columns += new
            self._rewrite(self._rows() + [row])
            return
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore").writerow(row)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (they are redone when a run resumes from ``step``)."""
        if not self.path.is_file():
            return
        rows = [r for r in self._rows() if _int_or(r.get("step"), -1) <= step]
        self._rewrite(rows)


def _int_or(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return v


# ---------------------------------------------------------------------------------------------- progress display
def _make_progress(total: int, enabled: bool, start: int):
    """A rich progress bar with loss / BPC / SF / chars/s columns, or None when disabled."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class MetricColumn(ProgressColumn):
        def __init__(self, key: str, label: str, fmt: str) -> None:
            super().__init__()
            self.key, self.label, self.fmt = key, label, fmt

        def render(self, task) -> Text:  # type: ignore[override]
            v = task.fields.get(self.key)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                return Text(f"{self.label} -", style="dim")
            return Text(f"{self.label} {format(v, self.fmt)}", style="cyan")

    console = Console(stderr=True)
    if not console.is_terminal:
        return None, None
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        MetricColumn("loss", "loss", ".4f"),
        MetricColumn("bpc", "bpc", ".4f"),
        MetricColumn("sf", "sf", ".2f"),
        MetricColumn("chars_per_s", "chars/s", ",.0f"),
        MetricColumn("valid_bpc", "valid", ".4f"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("train", total=total, completed=start)
    return progress, task


# ---------------------------------------------------------------------------------------------- the trainer
Objective = Callable[..., Any]


class Trainer:
    """Train ``model`` on ``train_stream`` with ``objective``; see the module docstring for the contracts."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        train_stream: Any,
        valid_fn: Callable[[nn.Module], dict[str, float]] | None,
        cfg: TrainConfig,
        *,
        plugins: Iterable[Any] = (),
        out_dir: str | Path | None | bool = True,
        quiet: bool | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        self.cfg = cfg
        self.dist = dist_info or DistInfo()
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.objective = objective
        self.stream = train_stream
        self.valid_fn = valid_fn
        self.plugins = list(plugins)
        self.quiet = cfg.quiet if quiet is None else quiet
        if out_dir is True:
            out_dir = cfg.out
        self.out_dir = Path(out_dir) if out_dir else None
        self.write_files = self.out_dir is not None and self.dist.is_main
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        decay = cfg.weight_decay
        if decay > 0:
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=decay)
        else:
            self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)
        self.step = 0
        self.best: dict[str, Any] = {"valid_bpc": None, "step": None}
        self.history: list[dict[str, float]] = []  # per-step metrics of this process (rank-local)
        self.eval_history: list[dict[str, float]] = []
        self.step_times: list[float] = []  # seconds per optimizer step (this process)
        self._first_out: Any = None
        self._capture = False
        self._hook = None
        if any(hasattr(p, "on_step_end") for p in self.plugins):
            self._hook = self.model.register_forward_hook(self._capture_output)
        if self.dist.enabled:
            self._broadcast_parameters()
            if self.dist.rank > 0:  # distinct dropout noise per rank; rank 0 keeps the single-process stream
                torch.manual_seed(cfg.seed + 7919 * self.dist.rank)
        self._train_log: CsvLog | None = None
        self._eval_log: CsvLog | None = None
        for plugin in self.plugins:  # plug-ins that need the model / optimizer / config get the trainer once
            attach = getattr(plugin, "attach", None)
            if attach is not None:
                attach(self)

    # ------------------------------------------------------------------ plumbing
    def _capture_output(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._capture and self._first_out is None:
            self._first_out = output

    def _broadcast_parameters(self) -> None:
        import torch.distributed as dist

        with torch.no_grad():
            for t in list(self.model.parameters()) + list(self.model.buffers()):
                dist.broadcast(t.data, src=0)

    def _average_buffers(self) -> None:
        """Average the floating-point buffers over ranks after a step: a buffer a source updates from its own batch
        (SPEAK's calibrated threshold) stays one value on every rank, as the parameters do."""
        import torch.distributed as dist

        bufs = [b for b in self.model.buffers() if b.is_floating_point()]
        if not bufs:
            return
        flat = torch.cat([b.detach().reshape(-1).double() for b in bufs])  # [sum numel]
        dist.all_reduce(flat)
        flat.div_(self.dist.world_size)
        offset = 0
        for b in bufs:
            b.copy_(flat[offset : offset + b.numel()].view_as(b))
            offset += b.numel()

    def _allreduce_gradients(self) -> None:
        """Average gradients over ranks: presence mask first (params without grads on every rank stay None)."""
        import torch.distributed as dist

        world = self.dist.world_size
        has = torch.tensor([p.grad is not None for p in self.params], dtype=torch.float32, device=self.device)
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
        for p, flag in zip(self.params, has.tolist()):
            if flag > 0:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                by_dtype.setdefault(p.grad.dtype, []).append(p)
        for ps in by_dtype.values():
            flat = torch.cat([p.grad.reshape(-1) for p in ps])  # [sum numel]
            dist.all_reduce(flat)
            flat.div_(world)
            offset = 0
            for p in ps:
                n = p.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n

    def _all_true(self, flag: bool) -> bool:
        if not self.dist.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item() > 0)

    def _autocast(self):
        if self.amp_dtype is None:
            import contextlib

            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @property
    def checkpoint_root(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT_DIR

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        """Draw a batch, run forward/backward/update; returns the step's metrics (step, lr, loss, bpc, sf, ...)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        self.model.train()
        batch: Batch = self.stream.next_batch()
        batch = batch.to(self.device, non_blocking=True)
        self._first_out, self._capture = None, self._hook is not None
        step = self.step + 1
        with self._autocast():
            result = self.objective(self.model, batch, step=step)
        self._capture = False
        if not isinstance(result, tuple) or len(result) not in (2, 3):
            raise SpeakError("the objective must return (loss, metrics) or (loss, metrics, out)")
        loss, metrics = result[0], dict(result[1])
        out = result[2] if len(result) == 3 else self._first_out
        loss_value = float(loss.detach().float())
        if not self._all_true(math.isfinite(loss_value)):
            self._stop_non_finite(f"non-finite loss ({loss_value}) at step {step}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.dist.enabled:
            self._allreduce_gradients()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p for p in self.params if p.grad is not None]
        if cfg.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(grads, cfg.grad_clip))
        elif grads:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([g.grad.detach().float().norm() for g in grads])))
        else:
            grad_norm = 0.0
        if self.scaler is None and not math.isfinite(grad_norm):
            self._stop_non_finite(f"non-finite gradient norm ({grad_norm}) at step {step}")
        lr = lr_at(self.step, base=cfg.lr, warmup=cfg.warmup, total=cfg.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.dist.enabled:
            self._average_buffers()
        self.step = step
        lm_loss = metrics.get("lm_loss", loss_value)
        metrics.setdefault("loss", loss_value)
        metrics.setdefault("bpc", lm_loss / LN2)
        metrics.setdefault("sf", 1.0)
        metrics["grad_norm"] = grad_norm
        for plugin in self.plugins:
            fn = getattr(plugin, "on_step_end", None)
            if fn is not None:
                fn(step, batch, out, metrics)
        self._first_out = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        self.step_times.append(dt)
        chars = batch.chars.shape[0] * (batch.chars.shape[1] - 1) * self.dist.world_size
        row = {"step": step, "lr": lr, **{k: float(v) for k, v in metrics.items()}, "chars_per_s": chars / dt,
               "step_s": dt}
        self.history.append(row)
        return row

    def _stop_non_finite(self, what: str) -> None:
        root = self.checkpoint_root
        where = find_checkpoint(root) if root is not None else None
        keep = f"; the last good checkpoint ({where}) is untouched" if where else "; no checkpoint was written"
        raise SpeakError(f"{what}: training stopped{keep}")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Run ``valid_fn`` (rank 0; other ranks wait) with the RNG forked; returns {'valid_<k>': v}."""
        result: dict[str, float] = {}
        if self.valid_fn is not None and self.dist.is_main:
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.random.fork_rng(devices=devices), torch.no_grad(), self._autocast():
                    raw = self.valid_fn(self.model)
            finally:
                self.model.train(was_training)
            result = {f"valid_{k}": float(v) for k, v in (raw or {}).items()}
            vb = result.get("valid_bpc")
            if vb is not None and math.isfinite(vb) and (self.best["valid_bpc"] is None or vb < self.best["valid_bpc"]):
                self.best = {"valid_bpc": vb, "step": self.step}
        if self.dist.enabled:
            import torch.distributed as dist

            dist.barrier()
        return result

    # ------------------------------------------------------------------ checkpoints
    def _gather(self, obj: Any) -> list[Any]:
        if not self.dist.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.dist.world_size
        dist.all_gather_object(out, obj)
        return out

    def state(self) -> dict[str, Any]:
        """Everything but the model weights, for a checkpoint (collective under DDP: every rank must call it)."""
        rng_all = self._gather(rng_state())
        data_all = self._gather(self.stream.state_dict())
        extra = {}
        for i, plugin in enumerate(self.plugins):
            fn = getattr(plugin, "extra_state", None)
            if fn is not None:
                extra[_plugin_name(plugin, i)] = fn()
        return {
            "step": self.step,
            "config": self.cfg.to_dict(),
            "world_size": self.dist.world_size,
            "rng": rng_all,
            "data": data_all,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "scheduler": {"kind": "warmup-cosine", "step": self.step, "base_lr": self.cfg.lr,
                          "warmup": self.cfg.warmup, "total": self.cfg.steps},
            "best": dict(self.best),
            "extra": extra,
            "torch_version": torch.__version__,
        }

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 writes; every rank must call it)."""
        state = self.state()
        if not self.write_files:
            return None
        return save_checkpoint(self.checkpoint_root, self.model, state)

    def load(self, path: str | Path | None = None) -> int:
        """Restore from a checkpoint (default: this run's last); returns the restored step."""
        root = Path(path) if path is not None else self.checkpoint_root
        if root is None:
            raise SpeakError("nothing to resume from: this trainer has no output folder")
        ckpt = load_checkpoint(root)
        st = ckpt.state
        bad = resume_mismatches(st.get("config") or {}, self.cfg)
        if bad:
            saved = st.get("config") or {}
            k = bad[0]
            raise SpeakError(
                f"cannot resume {ckpt.path}: config key '{k}' differs (checkpoint {saved.get(k)!r}, now "
                f"{getattr(self.cfg, k)!r})" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
            )
        if int(st.get("world_size", 1)) != self.dist.world_size:
            raise SpeakError(
                f"cannot resume {ckpt.path}: it was written by {st.get('world_size')} processes, this run has "
                f"{self.dist.world_size}"
            )
        load_model_weights(self.model, ckpt.model, where=f"checkpoint {ckpt.path}")
        try:
            self.optimizer.load_state_dict(st["optimizer"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise SpeakError(f"checkpoint {ckpt.path}: optimizer state does not fit ({err})") from None
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.stream.load_state_dict(st["data"][self.dist.rank])
        set_rng_state(st["rng"][self.dist.rank])
        self.step = int(st["step"])
        self.best = dict(st.get("best") or self.best)
        extra = st.get("extra") or {}
        for i, plugin in enumerate(self.plugins):
            fn = getattr(plugin, "load_extra_state", None)
            name = _plugin_name(plugin, i)
            if fn is not None and name in extra:
                fn(extra[name])
        return self.step

    # ------------------------------------------------------------------ the loop
    def _open_logs(self, resumed_at: int | None) -> None:
        if not self.write_files:
            return
        assert self.out_dir is not None
        ensure_dir(self.out_dir, 'run folder')
        self._train_log = CsvLog(self.out_dir / TRAIN_LOG, BASE_COLUMNS)
        self._eval_log = CsvLog(self.out_dir / EVAL_LOG, ("step",))
        if resumed_at is None:
            for log in (self._train_log, self._eval_log):
                if log.path.exists():
                    log.path.unlink()
                log.columns = list(BASE_COLUMNS) if log is self._train_log else ["step"]
        else:
            self._train_log.truncate_after(resumed_at)
            self._eval_log.truncate_after(resumed_at)

    def _stop_interrupted(self) -> None:
        """Ctrl-C: checkpoint the current (whole) step, say how to resume, and end like an interrupt (exit 130)."""
        path = self.save()
        if self.dist.is_main and path is not None:
            print(f"speak: interrupted at step {self.step}/{self.cfg.steps}; checkpoint saved in {path}. Resume with "
                  f"the same command plus --resume (--out {self.out_dir} --resume).", file=sys.stderr, flush=True)
        raise KeyboardInterrupt

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train until ``cfg.steps``; with ``resume`` continue from the run's last checkpoint (fresh start, with a
        warning, when there is none). Returns a summary (final step, last metrics, last evaluation, best)."""
        cfg = self.cfg
        root = self.checkpoint_root
        existing = find_checkpoint(root) if root is not None else None
        resumed_at = None
        if resume and existing is not None:
            resumed_at = self.load()
        elif resume and self.dist.is_main and not self.quiet:
            print(f"speak: note: nothing to resume in {self.out_dir}; starting a fresh run", file=sys.stderr)
        elif existing is not None and self.dist.is_main:
            raise SpeakError(
                f"{self.out_dir} already holds a checkpoint ({existing}); pass --resume to continue it or choose "
                f"another --out"
            )
        self._open_logs(resumed_at)
        show = self.dist.is_main and not self.quiet and sys.stderr.isatty()
        progress, task = _make_progress(cfg.steps, show, self.step)
        plain = PlainProgress(cfg.steps, self.step) if self.dist.is_main and not self.quiet and progress is None else None
        last_eval: dict[str, float] = {}
        window: list[dict[str, float]] = []
        interrupt = InterruptFlag()
        try:
            if progress is not None:
                progress.start()
            while self.step < cfg.steps:
                if not self._all_true(not interrupt.raised):  # every rank stops at the same step
                    self._stop_interrupted()
                row = self.train_step()
                window.append(row)
                step = self.step
                if step % cfg.log_every == 0 or step == cfg.steps:
                    agg = _aggregate(window)
                    window = []
                    if self._train_log is not None:
                        self._train_log.append(agg)
                    if progress is not None:
                        progress.update(task, completed=step, **{k: agg.get(k) for k in ("loss", "bpc", "sf",
                                                                                         "chars_per_s")})
                    elif plain is not None:
                        plain.line(step, f"loss {agg['loss']:.4f} bpc {agg['bpc']:.4f} sf {agg['sf']:.2f} "
                                         f"lr {agg['lr']:.3g} chars/s {agg['chars_per_s']:,.0f}")
                elif progress is not None:
                    progress.update(task, completed=step)
                elif plain is not None:
                    plain.tick(step)
                if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
                    last_eval = self.evaluate()
                    if last_eval:
                        self.eval_history.append({"step": step, **last_eval})
                        if self._eval_log is not None:
                            self._eval_log.append({"step": step, **last_eval})
                        if progress is not None:
                            progress.update(task, valid_bpc=last_eval.get("valid_bpc"))
                        elif plain is not None:
                            plain.line(step, " ".join(f"{k} {v:.4f}" for k, v in last_eval.items()))
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
                    self.save()
            if not last_eval and resumed_at is not None and self.step >= cfg.steps:
                last_eval = self.evaluate()  # resumed at its last step: the summary still has the final validation
        finally:
            interrupt.restore()
            if progress is not None:
                progress.stop()
            if self._hook is not None:
                self._hook.remove()
                self._hook = None
        return {
            "step": self.step,
            "last": self.history[-1] if self.history else {},
            "eval": last_eval,
            "best": dict(self.best),
            "resumed_at": resumed_at,
        }


def _plugin_name(plugin: Any, index: int) -> str:
    return str(getattr(plugin, "name", None) or f"{type(plugin).__name__}{index}")


def _aggregate(rows: list[dict[str, float]]) -> dict[str, Any]:
    """One CSV row for a logging interval: the last step's step/lr, means of the other metrics, chars/s over the
    interval's step times (evaluation and checkpoint time excluded)."""
    last = rows[-1]
    out: dict[str, Any] = {"step": int(last["step"]), "lr": last["lr"]}
    for k in last:
        if k in ("step", "lr", "chars_per_s", "step_s"):
            continue
        vals = [r[k] for r in rows if k in r]
        out[k] = float(sum(vals) / len(vals))
    seconds = sum(r["step_s"] for r in rows)
    chars = sum(r["chars_per_s"] * r["step_s"] for r in rows)
    out["chars_per_s"] = float(chars / seconds) if seconds > 0 else 0.0
    out["step_s"] = float(seconds / len(rows))
    return out
