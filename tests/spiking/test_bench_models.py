"""`speak bench models`: every model trains and evaluates in turns; ratios are relative to the Transformer."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from speak.cli import app
from speak.lm.spiking.bench import ModelBenchConfig, ratios, run_model_benchmark

TEXT = "In the beginning was the word, and the word was with the spikes. " * 40


def test_model_benchmark_rows_and_ratios():
    cfg = ModelBenchConfig(d_model=16, n_layers=1, n_heads=2, batch_size=2, seq_len=32, eval_batch=2, rounds=2)
    rows = run_model_benchmark(cfg, TEXT)
    assert [r.model for r in rows] == ["transformer", "spikegpt", "spikelm"]
    for r in rows:
        assert len(r.train_times) == 2 and len(r.eval_times) == 2  # the warm-up round is not timed
        assert r.train_chars_per_s > 0 and r.eval_chars_per_s > 0 and r.params > 0
    rel = ratios(rows)
    assert rel["transformer"] == (1.0, 1.0)
    base = rows[0]
    assert rel["spikegpt"][0] == pytest.approx(rows[1].train_chars_per_s / base.train_chars_per_s)


def test_model_benchmark_rejects_short_text():
    with pytest.raises(ValueError, match="at least"):
        run_model_benchmark(ModelBenchConfig(seq_len=32, rounds=1), "too short")


def test_bench_models_cli_json(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    res = CliRunner().invoke(app, ["bench", "models", "--rounds", "1", "--corpus", str(corpus), "--d-model", "16",
                                   "--n-layers", "1", "--seq-len", "32", "--batch-size", "2", "--json"])
    assert res.exit_code == 0, res.output
    out = {r["model"]: r for r in json.loads(res.output)}
    assert set(out) == {"transformer", "spikegpt", "spikelm"} and out["transformer"]["train_ratio"] == 1.0
