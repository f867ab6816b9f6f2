"""The worked example of docs/adding-a-boundary-source.md: a source registered from this file trains 3 steps through
the real trainer and pipeline, with its typed option set by ``--set`` and its auxiliary loss in the training log."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.boundaries import BoundaryOutput, BoundarySource, SourceOptions, register, source_names
from speak.lm.boundaries.learned import straight_through
from speak.lm.boundaries.losses import binomial_prior_loss
from speak.lm.boundaries.registry import unregister


@dataclass
class ToyOptions(SourceOptions):
    rate: float = 0.25  # the boundary rate the prior pulls toward

    def validate(self) -> None:
        if not 0.0 < self.rate < 1.0:
            raise SpeakError(f"boundary.rate must be in (0, 1), got {self.rate}")


class ToyBoundaries(BoundarySource):
    """One linear layer on the pre-layer features; a boundary where its logit is positive."""

    name = "toy-linear"
    label = "Toy (linear)"
    Options = ToyOptions
    opts: ToyOptions

    def __init__(self, opts, d_model, vocab_size, alphabet):
        super().__init__(opts, d_model, vocab_size, alphabet)
        self.proj = nn.Linear(d_model, 1)

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        logits = self.proj(features.detach()).squeeze(-1)  # [B, L]
        hard = straight_through(torch.sigmoid(logits), (logits > 0).to(logits.dtype))  # [B, L]
        return BoundaryOutput(hard=hard, logits=logits)

    def aux_losses(self, out, lm_logits, targets, valid):
        return {"toy_prior": binomial_prior_loss(out.hard, self.opts.rate, valid.to(out.hard.dtype))}


@pytest.fixture
def toy_source():
    register(ToyBoundaries)
    yield ToyBoundaries
    unregister(ToyBoundaries.name)


def test_toy_source_trains_three_steps_through_the_real_trainer(tmp_path, toy_source):
    from speak.experiments.pipeline import train_and_evaluate
    from speak.train.config import load_config

    assert "toy-linear" in source_names()
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    cfg = load_config(flags={"boundary": "toy-linear", "corpus": str(corpus), "preset": "cpu-tiny", "steps": 3,
                             "out": str(tmp_path / "run"), "quiet": True, "device": "cpu"},
                      sets=["model.boundary.rate=0.3", "batch_size=2", "seq_len=32", "eval_every=0",
                            "test_windows=2", "timing_batches=1", "checkpoint_every=0", "log_every=1"])
    assert cfg.model == {"boundary": {"rate": 0.3}}
    metrics = train_and_evaluate(cfg)
    assert metrics["steps"] == 3 and metrics["boundary"] == "toy-linear" and metrics["tokenizer_params"] == 32 + 1
    with open(tmp_path / "run" / "train_log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(float(r["toy_prior"]) > 0 for r in rows)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["boundary"] == "toy-linear" and saved["model"]["boundary"]["rate"] == 0.3


def test_toy_source_options_are_typed(toy_source):
    from speak.train.config import load_config

    with pytest.raises(SpeakError, match=r"unknown config key 'model.boundary.speed'.*valid model.boundary.\* keys: rate"):
        load_config(flags={"boundary": "toy-linear"}, sets=["model.boundary.speed=2"])
    with pytest.raises(SpeakError, match="model.boundary.rate' must be a number"):
        load_config(flags={"boundary": "toy-linear"}, sets=["model.boundary.rate=fast"])
    with pytest.raises(SpeakError, match="boundary.rate must be in"):
        load_config(flags={"boundary": "toy-linear"}, sets=["model.boundary.rate=2"])


def test_a_name_is_registered_once(toy_source):
    class Other(ToyBoundaries):
        pass

    with pytest.raises(SpeakError, match="already registered"):
        register(Other)
    with pytest.raises(SpeakError, match="already registered"):
        register(type("Fake", (ToyBoundaries,), {"name": "fixed"}))
