"""`speak generate --run DIR` on an hourglass run (speak train --boundary ...): samples from its last checkpoint."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from speak.cli import app

TINY = ["--preset", "cpu-tiny", "--steps", "2", "--seed", "0", "--seq-len", "32", "--batch-size", "2", "--device",
        "cpu", "--quiet", "--set", "eval_every=0", "--set", "eval_windows=1", "--set", "test_windows=2",
        "--set", "timing_batches=1", "--set", "model.d_model=32"]


@pytest.fixture(scope="module")
def hourglass_run(tmp_path_factory):
    from speak.text.corpora import load_corpus

    root = tmp_path_factory.mktemp("hg")
    corpus = root / "c.txt"
    corpus.write_text(load_corpus("embedded")[:20_000], encoding="utf-8")
    out = root / "run"
    res = CliRunner().invoke(app, ["train", "--boundary", "speak", "--corpus", str(corpus), "--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    return out


def _generate(run, *extra):
    return CliRunner().invoke(app, ["generate", "--run", str(run), "--max-tokens", "20", *extra])


def test_generate_from_hourglass_run(hourglass_run):
    res = _generate(hourglass_run, "--prompt", "And God said", "--seed", "1")
    assert res.exit_code == 0, res.output
    text = res.output.rstrip("\n")
    assert text.startswith("And God said") and len(text) == len("And God said") + 20
    again = _generate(hourglass_run, "--prompt", "And God said", "--seed", "1")
    assert again.output == res.output  # seeded
    other = _generate(hourglass_run, "--prompt", "And God said", "--seed", "2")
    assert other.output != res.output


def test_generate_from_hourglass_run_greedy_and_empty_prompt(hourglass_run):
    res = _generate(hourglass_run, "--temperature", "0")
    assert res.exit_code == 0, res.output
    assert 1 <= len(res.output) <= 21  # 20 sampled ids (a <pad> id prints nothing) and the newline
    from speak.train.runs import read_run_files

    _, vocab = read_run_files(hourglass_run)
    assert set(res.output) <= set(vocab.chars) | {"\n", "\ufffd"}  # characters of the run's vocabulary only


def test_generate_from_a_folder_that_is_no_run(tmp_path):
    from speak.errors import SpeakError

    res = _generate(tmp_path)
    assert isinstance(res.exception, SpeakError) and "not a speak run folder" in str(res.exception)
