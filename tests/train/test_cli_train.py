import json
import os
import subprocess
import sys

import pytest

from speak.eval.metrics import REQUIRED_KEYS


def speak(*args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", "from speak.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


TINY = ["--preset", "cpu-tiny", "--steps", "4", "--seed", "3", "--seq-len", "32", "--batch-size", "4", "--device",
        "cpu", "--quiet", "--set", "eval_every=2", "--set", "eval_windows=2", "--set", "test_windows=4",
        "--set", "timing_batches=2", "--set", "checkpoint_every=2"]


def test_train_eval_resume(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    r = speak("train", "--boundary", "fixed", "--corpus", str(tiny_corpus), "--out", str(out), *TINY)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert all(k in m for k in REQUIRED_KEYS), sorted(set(REQUIRED_KEYS) - set(m))
    assert m["steps"] == 4 and m["boundary"] == "fixed" and m["seed"] == 3 and m["sf"] > 1.0
    assert 0 < m["bpc"] < 10 and m["lm_params"] > 0 and m["infer_ms_per_batch"] > 0
    for f in ("config.yaml", "config.json", "vocab.json", "train_log.csv", "eval_log.csv", "checkpoints/last/meta.json"):
        assert (out / f).is_file(), f
    # same command again without --resume refuses to overwrite
    r = speak("train", "--boundary", "fixed", "--corpus", str(tiny_corpus), "--out", str(out), *TINY)
    assert r.returncode == 2 and "--resume" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # --resume with more steps continues
    more = list(TINY)
    more[more.index("--steps") + 1] = "6"
    r = speak("train", "--boundary", "fixed", "--corpus", str(tiny_corpus), "--out", str(out), "--resume", *more)
    assert r.returncode == 0, r.stderr
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["steps"] == 6 and m2["resumed_at"] == 4
    r = speak("eval", "--run", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 6 and (out / "eval.json").is_file()


def test_corpus_smaller_than_one_batch(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("hello world " * 8)
    r = speak("train", "--boundary", "none", "--corpus", str(small), "--out", str(tmp_path / "o"), *TINY)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "smaller than one batch" in lines[0], r.stderr


@pytest.mark.parametrize("extra, needle", [
    (["--set", "bogus=1"], "bogus"), (["--boundary", "nope"], "nope"), (["--set", "model.d_model=33"], "divisible"),
    # --set walks the typed tree: an unknown key lists the valid keys of its level; a value must fit the field's type
    (["--boundary", "speak", "--set", "model.boundary.speak.thta=0.5"],
     "unknown config key 'model.boundary.speak.thta' (in --set) (did you mean 'theta'? valid model.boundary.speak.* "
     "keys: char_dim, delta, encoder,"),
    (["--boundary", "fixed", "--set", "model.boundary.mem_alpha=1"], "valid model.boundary.* keys: fixed_k)"),
    (["--boundary", "speak", "--set", "model.boundary.speak.theta=high"],
     "config key 'model.boundary.speak.theta' must be a number, got 'high'"),
    (["--set", "proxy.greedy=maybe"], "config key 'proxy.greedy' must be a boolean"),
    (["--set", "model.layers=[1,2]"], "config key 'model.layers' must have 3 items"),
])
def test_bad_config_exit_2(tmp_path, tiny_corpus, extra, needle):
    r = speak("train", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "o"), *TINY, *extra)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_eval_missing_run(tmp_path):
    r = speak("eval", "--run", str(tmp_path))
    assert r.returncode == 2 and "not a speak run folder" in r.stderr


def test_bench_boundaries(tiny_corpus):
    r = speak("bench", "boundaries", "--corpus", str(tiny_corpus), "--a", "fixed", "--b", "none", "--steps", "2",
              "--preset", "cpu-tiny", "--seq-len", "32", "--batch-size", "2", "--device", "cpu", "--json")
    assert r.returncode == 0, r.stderr
    assert "ratio fixed/none" in r.stdout
    res = json.loads(r.stdout[r.stdout.index("{"):])
    assert res["ratio"] > 0 and res["fixed_s_per_step"] > 0
