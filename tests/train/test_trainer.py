import csv
import math
import os

import numpy as np
import pytest
import torch

from speak.errors import SpeakError
from speak.train import trainer as T
from speak.train.checkpoint import load_checkpoint
from speak.train.data import CharStream

from .conftest import TinyLM, tiny_cfg, tiny_ids, tiny_objective


def _trainer(cfg, plugins=(), objective=tiny_objective):
    T.seed_everything(cfg.seed)
    model = TinyLM()
    stream = CharStream(tiny_ids(), cfg.batch_size, cfg.seq_len, seed=cfg.seed)
    return T.Trainer(model, objective, stream, None, cfg, plugins=plugins)


def test_lr_schedule():
    kw = dict(base=1.0, warmup=4, total=20)
    assert [T.lr_at(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    vals = [T.lr_at(s, **kw) for s in range(4, 20)]
    assert all(a >= b for a, b in zip(vals, vals[1:])) and vals[-1] < 0.02
    assert T.lr_at(20, **kw) == 0.0


def test_resume_reproduces_losses_exactly(tmp_path):
    straight = _trainer(tiny_cfg(tmp_path / "a"))
    straight.fit()
    first = _trainer(tiny_cfg(tmp_path / "b", steps=3))
    first.fit()
    second = _trainer(tiny_cfg(tmp_path / "b", steps=6))
    assert second.fit(resume=True)["resumed_at"] == 3
    losses_a = [r["loss"] for r in straight.history]
    losses_b = [r["loss"] for r in first.history + second.history]
    assert losses_a == losses_b  # bit-exact on CPU
    for (k, v), w in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(v, w), k
    with open(tmp_path / "b" / T.TRAIN_LOG) as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert list(rows[0])[:6] == list(T.BASE_COLUMNS)


def test_resume_hourglass_exact(tmp_path):
    from speak.lm.hourglass import HourglassConfig, HourglassLM
    from speak.train.objective import compute_objective

    def run(out, steps, resume):
        cfg = tiny_cfg(out, steps=steps, seq_len=32)
        T.seed_everything(0)
        hc = HourglassConfig.from_preset("cpu-tiny", vocab_size=16, dropout=0.1).with_boundary("fixed", fixed_k=3)
        model = HourglassLM(hc)
        stream = CharStream(tiny_ids(), cfg.batch_size, cfg.seq_len, seed=cfg.seed)
        tr = T.Trainer(model, compute_objective, stream, None, cfg)
        tr.fit(resume=resume)
        return tr

    a = run(tmp_path / "a", 6, False)
    run(tmp_path / "b", 3, False)
    b = run(tmp_path / "b", 6, True)
    assert [r["loss"] for r in a.history[3:]] == [r["loss"] for r in b.history]


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    def objective(model, batch, *, step):
        loss, m = tiny_objective(model, batch, step=step)
        return (loss * float("nan") if step == 5 else loss), m

    cfg = tiny_cfg(tmp_path, steps=8, checkpoint_every=2)
    tr = _trainer(cfg, objective=objective)
    with pytest.raises(SpeakError, match="non-finite loss") as err:
        tr.fit()
    assert "\n" not in str(err.value) and "untouched" in str(err.value)
    root = tmp_path / T.CHECKPOINT_DIR
    assert load_checkpoint(root / "last").step == 4 and load_checkpoint(root / "prev").step == 2
    ck = load_checkpoint(root)
    assert all(torch.isfinite(v).all() for v in ck.model.values())


class Counter:
    name = "counter"

    def __init__(self):
        self.calls, self.total, self.attached = [], 0.0, None

    def attach(self, trainer):
        self.attached = trainer

    def on_step_end(self, step, batch, out, metrics):
        assert out is not None and out.shape[:2] == batch.chars[:, :-1].shape
        self.calls.append(step)
        self.total += float(batch.offsets.sum())
        metrics["plugin_total"] = self.total

    def extra_state(self):
        return {"total": self.total, "bits": np.array([1, 0, 1], dtype=bool), "t": torch.arange(3)}

    def load_extra_state(self, state):
        self.total = state["total"]
        assert state["bits"].tolist() == [True, False, True] and state["t"].tolist() == [0, 1, 2]


def test_plugin_hooks_and_state(tmp_path):
    p = Counter()
    tr = _trainer(tiny_cfg(tmp_path, steps=3), plugins=[p])
    tr.fit()
    assert p.calls == [1, 2, 3] and p.attached is tr
    assert "plugin_total" in (tmp_path / T.TRAIN_LOG).read_text().splitlines()[0]
    q = Counter()
    tr2 = _trainer(tiny_cfg(tmp_path, steps=4), plugins=[q])
    tr2.fit(resume=True)
    assert q.calls == [4] and math.isclose(q.total, p.total + float(tr2.history[-1]["plugin_total"] - p.total))


def test_guards(tmp_path):
    _trainer(tiny_cfg(tmp_path, steps=2)).fit()
    with pytest.raises(SpeakError, match="--resume"):
        _trainer(tiny_cfg(tmp_path, steps=2)).fit()
    with pytest.raises(SpeakError, match="'lr' differs"):
        _trainer(tiny_cfg(tmp_path, steps=4, lr=0.5)).fit(resume=True)


def test_valid_fn_does_not_change_training(tmp_path):
    def valid_fn(model):
        torch.rand(10)  # consumes RNG: must be invisible to training (forked)
        return {"bpc": 1.0, "sf": 2.0}

    a = _trainer(tiny_cfg(tmp_path / "a", steps=4))
    a.fit()
    cfg = tiny_cfg(tmp_path / "b", steps=4, eval_every=1)
    T.seed_everything(0)
    b = T.Trainer(TinyLM(), tiny_objective, CharStream(tiny_ids(), 4, 16, seed=0), valid_fn, cfg)
    b.fit()
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert (tmp_path / "b" / T.EVAL_LOG).read_text().splitlines()[0] == "step,valid_bpc,valid_sf"


@pytest.mark.slow
def test_vanilla_beats_fixed4(tmp_path):
    """At equal steps, no shortening (vanilla) reaches a lower BPC than fixed-4 pooling (tiny scale)."""
    from speak.experiments.pipeline import train_and_evaluate
    from speak.train.config import load_config

    scale = float(os.environ.get("SPEAK_SLOW_SCALE", "1"))
    steps = max(50, int(300 * scale))
    bpc = {}
    for name in ("none", "fixed"):
        cfg = load_config(flags=dict(preset="cpu-tiny", boundary=name, steps=steps, out=str(tmp_path / name),
                                     quiet=True, device="cpu", seq_len=64),
                          sets=["eval_every=0", "test_windows=64", "timing_batches=1", "checkpoint_every=0",
                                "lr=5e-3", *(["model.boundary.fixed_k=4"] if name == "fixed" else [])])
        bpc[name] = train_and_evaluate(cfg)["bpc"]
    assert bpc["none"] < bpc["fixed"], bpc
