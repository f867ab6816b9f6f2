"""Token-level LMs on SPEAK tokens / characters / SentencePiece (speak.train.token_lm) and their CLI: tiny runs per
model write metrics.json, resume reproduces the uninterrupted losses, `speak generate --run` samples text, and the
bits-per-character accounting is exact on hand examples."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from speak.errors import SpeakError
from speak.train import token_lm
from speak.train.config import load_config
from speak.train.token_lm import (
    EncodedSplit,
    TextSegmenter,
    TokenBatch,
    build_vocab,
    decode_ids,
    encode_text,
    evaluate_token_bpc,
    token_objective,
)

KEYS = ("bpc", "firing_rate", "energy_pj_per_char", "model", "tokenizer", "steps", "params", "tokens_per_s", "sf")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from speak.text.corpora import load_corpus

    text = load_corpus("embedded")[:40_000]
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _cfg(corpus, out, steps=3, **extra):
    sets = [f"{k}={v}" for k, v in {
        "eval_every": 0, "eval_windows": 2, "test_windows": 4, "eval_batch_size": 4, "log_every": 1, "warmup": 1,
        "model.d_model": 16, "model.n_layers": 1, "model.n_heads": 2, "model.vocab_size": 200, **extra}.items()]
    flags = dict(corpus=str(corpus), preset="cpu-tiny", steps=steps, out=str(out), batch_size=2, seq_len=16,
                 device="cpu", quiet=True)
    return load_config(None, flags=flags, sets=sets, validate_model=False)


def _losses(run_dir):
    with open(run_dir / "train_log.csv", newline="") as fh:
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(fh)]


# ---------------------------------------------------------------------------------------------- accounting
class Uniform(torch.nn.Module):
    def __init__(self, V):
        super().__init__()
        self.V = V
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, ids):
        return torch.zeros(*ids.shape, self.V) + 0 * self.w  # [B, T, V]


def test_uniform_model_bpc_is_log2V_tokens_over_chars():
    V = 37
    rng = np.random.default_rng(0)
    ids = np.concatenate(([0], rng.integers(4, V, 300))).astype(np.int64)
    lengths = np.concatenate(([0], rng.integers(1, 6, 300))).astype(np.int64)
    split = EncodedSplit(ids=ids, lengths=lengths, n_chars=int(lengths.sum()), n_segments=300)
    r = evaluate_token_bpc(Uniform(V), split, scored=16, context=8, batch_size=5)
    assert r["tokens"] == 300 and r["chars"] == lengths.sum()  # every token after <s> scored once
    assert r["bpc"] == pytest.approx(math.log2(V) * 300 / lengths.sum(), rel=1e-6)  # float32 CE
    # the training objective uses the same accounting on a batch
    batch = TokenBatch(chars=torch.from_numpy(ids[:21].reshape(1, 21)), offsets=torch.zeros(1, dtype=torch.long),
                       lengths=torch.from_numpy(lengths[:21].reshape(1, 21)))
    _, m = token_objective(Uniform(V), batch)
    assert m["bpc"] == pytest.approx(math.log2(V) * 20 / lengths[1:21].sum(), rel=1e-6)
    assert m["sf"] == pytest.approx(lengths[1:21].sum() / 20)


@pytest.mark.parametrize("spec", ["chars", "speak"])
def test_encoding_is_lossless_with_fallback(spec):
    train = "the cat sat on the mat.\nthe dog sat on the log.\n" * 20
    seg = TextSegmenter.build(spec, train)
    assert "".join(seg.segments(train)) == train
    vocab = build_vocab(seg.segments(train), max_size=12)  # tiny: most segments fall back to pieces
    text = "the cat sat.\nthe ox!"  # 'x', '!' never seen -> <unk>, one id per character
    enc = encode_text(vocab, seg, text)
    assert enc.ids[0] == vocab.bos_id and enc.lengths[0] == 0
    assert int(enc.lengths.sum()) == len(text) == enc.n_chars
    assert (enc.lengths[1:] >= 1).all()
    assert int((enc.ids == vocab.unk_id).sum()) == 2
    assert decode_ids(vocab, enc.ids.tolist()) == text.replace("x", "\ufffd").replace("!", "\ufffd")


def test_bad_tokenizer_and_model_names(corpus, tmp_path):
    with pytest.raises(SpeakError, match="unknown tokenizer"):
        token_lm.parse_tokenizer("bpe")
    with pytest.raises(SpeakError, match="unknown model"):
        token_lm.run(_cfg(corpus, tmp_path / "x"), model="lstm", tokenizer="chars")
    with pytest.raises(SpeakError, match="unknown model config key"):
        token_lm.run(_cfg(corpus, tmp_path / "y", **{"model.bogus": 1}), model="transformer", tokenizer="chars")


# ---------------------------------------------------------------------------------------------- tiny runs
@pytest.mark.parametrize("model,tokenizer", [("spikegpt", "speak"), ("spikelm", "sentencepiece:120"),
                                             ("transformer", "chars")])
def test_tiny_run_writes_metrics_and_generates(corpus, tmp_path, model, tokenizer):
    out = tmp_path / "run"
    m = token_lm.run(_cfg(corpus, out), model=model, tokenizer=tokenizer)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(m))
    for k in KEYS:
        assert k in saved, k
    assert saved["model"] == model and saved["tokenizer"] == tokenizer and saved["steps"] == 3
    assert math.isfinite(saved["bpc"]) and saved["bpc"] > 0
    assert saved["params"] > 0 and saved["tokens_per_s"] > 0 and saved["energy_pj_per_char"] > 0
    if model == "transformer":
        assert saved["firing_rate"] == 0 and saved["sf"] == 1.0
    else:
        assert 0 < saved["firing_rate"] < 1
    if tokenizer == "speak":
        assert saved["tokenizer_energy_pj_per_char"] > 0 and saved["sf"] > 1
    text = token_lm.generate_from_run(out, "And God said", max_tokens=8, temperature=1.0, seed=1)
    assert text.startswith("And God said") and len(text) > len("And God said")


@pytest.mark.parametrize("model,tokenizer", [("transformer", "speak"), ("spikelm", "sentencepiece:120"),
                                             ("spikegpt", "chars")])
def test_resume_reproduces_uninterrupted_losses(corpus, tmp_path, model, tokenizer):
    full, part = tmp_path / "full", tmp_path / "part"
    token_lm.run(_cfg(corpus, full, steps=4, checkpoint_every=2), model=model, tokenizer=tokenizer)
    token_lm.run(_cfg(corpus, part, steps=2, checkpoint_every=2), model=model, tokenizer=tokenizer)
    with pytest.raises(SpeakError, match="already holds a checkpoint"):
        token_lm.run(_cfg(corpus, part, steps=4, checkpoint_every=2), model=model, tokenizer=tokenizer)
    other = "spikelm" if model != "spikelm" else "transformer"
    with pytest.raises(SpeakError, match="cannot resume"):
        token_lm.run(_cfg(corpus, part, steps=4, checkpoint_every=2), model=other, tokenizer=tokenizer, resume=True)
    m = token_lm.run(_cfg(corpus, part, steps=4, checkpoint_every=2), model=model, tokenizer=tokenizer, resume=True)
    assert m["resumed_at"] == 2 and m["steps"] == 4
    assert _losses(part) == _losses(full) and len(_losses(full)) == 4
    ref = json.loads((full / "metrics.json").read_text())
    assert m["bpc"] == ref["bpc"]


def test_cli_train_and_generate(corpus, tmp_path):
    from speak.cli import app

    out = tmp_path / "cli"
    runner = CliRunner()
    args = ["train", "--model", "spikegpt", "--tokenizer", "chars", "--corpus", str(corpus), "--preset", "cpu-tiny",
            "--steps", "2", "--seq-len", "16", "--batch-size", "2", "--device", "cpu", "--out", str(out),
            "--set", "model.d_model=16", "--set", "model.n_layers=1", "--set", "test_windows=2",
            "--set", "eval_windows=1", "--set", "eval_batch_size=2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and (out / "metrics.json").is_file()
    res = runner.invoke(app, ["generate", "--run", str(out), "--prompt", "In the", "--max-tokens", "10"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("In the") and len(res.output.strip()) > len("In the")
    res2 = runner.invoke(app, ["generate", str(out), "--prompt", "In the", "--max-tokens", "10"])  # positional works
    assert res2.output == res.output
    res = runner.invoke(app, ["train", "--tokenizer", "chars", "--corpus", str(corpus), "--out", str(tmp_path / "h")])
    assert isinstance(res.exception, SpeakError) and "--tokenizer applies" in str(res.exception)


def test_sdllm_converts_a_trained_run(corpus, tmp_path):
    """`speak sdllm RUN`: the spike-driven copy of a trained transformer is evaluated on the same test windows."""
    from speak.cli import app

    out = tmp_path / "tf"
    token_lm.run(_cfg(corpus, out, steps=3), model="transformer", tokenizer="chars")
    res = CliRunner().invoke(app, ["sdllm", str(out), "--time-steps", "8", "--windows", "4"])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "sdllm.json").read_text())
    assert math.isfinite(rec["bpc_float"]) and math.isfinite(rec["bpc_sdllm"])
    assert abs(rec["bpc_change"]) < 1.0  # 8 levels keep a tiny model close to its float twin
    assert 0.0 < rec["firing_rate"] <= 1.0
