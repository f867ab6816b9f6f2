"""Every boundary source trains on every shared corpus at CPU scale and reports BPC and SF (slow; CI runs it small)."""

import math
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
CORPORA = sorted(SHARED.glob("*.txt.xz")) if SHARED.is_dir() else []
SOURCES = ["none", "fixed", "whitespace", "dtp-entropy", "dtp-unigram", "dtp-gumbel", "magnet", "speak"]


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    """The first 60k characters (x SPEAK_SLOW_SCALE) of each shared corpus, whole lines."""
    from speak.text.corpora import read_text

    size = int(60_000 * float(os.environ.get("SPEAK_SLOW_SCALE", "1")))
    out = {}
    folder = tmp_path_factory.mktemp("slices")
    for path in CORPORA:
        text = read_text(path)[:size]
        p = folder / (path.name.split(".")[0] + ".txt")
        p.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")
        out[path.name.split(".")[0]] = p
    return out


@pytest.mark.slow
@pytest.mark.skipif(not CORPORA, reason="../shared/corpora is not present")
@pytest.mark.parametrize("source", SOURCES)
def test_source_trains_on_every_shared_corpus(source, slices, tmp_path):
    from speak.experiments.pipeline import train_and_evaluate
    from speak.train.config import load_config

    for name, path in slices.items():
        cfg = load_config(flags=dict(preset="cpu-tiny", boundary=source, corpus=str(path), steps=15,
                                     out=str(tmp_path / name), quiet=True, device="cpu", seq_len=64, batch_size=4),
                          sets=["eval_every=0", "test_windows=16", "timing_batches=1", "checkpoint_every=0",
                                "exemplar_vocab=300"])
        m = train_and_evaluate(cfg)
        assert math.isfinite(m["bpc"]) and m["bpc"] > 0, (source, name, m["bpc"])
        assert m["sf"] >= 1.0 and (source == "none") == (m["sf"] == 1.0), (source, name, m["sf"])
