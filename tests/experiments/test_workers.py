"""`speak experiment compare --workers N`: the grid in N processes, claims, failures, resuming."""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from speak.errors import SpeakError
from speak.experiments import compare as C
from speak.experiments import workers as W
from speak.experiments.runner import corpus_name, load_record, run_dir_for

from ._helpers import fake_metrics

CORPORA = ["/x/en.txt", "/x/de.txt"]


class SlowRunner:
    """Writes fake metrics (its pid in them). The first run waits until another run is claimed, which only a second
    process can do while this one is busy: two runs were in flight at once. ``fail``: (method, corpus name, seed)
    raising a run error."""

    def __init__(self, out, fail=()):
        self.out, self.fail = out, set(fail)

    def __call__(self, method, corpus, preset, seed, steps, out_dir, sets, **kw):
        if (method, corpus_name(corpus), seed) in self.fail:
            raise RuntimeError("out of memory (simulated)")
        if (method, corpus, seed) == ("vanilla", CORPORA[0], 0):
            deadline = time.monotonic() + 60
            while len(list(self.out.rglob(W.CLAIM_FILE))) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        m = fake_metrics(out_dir, method, corpus, seed, bpc=1.0 + 0.01 * seed)
        m["pid"] = os.getpid()
        (out_dir / "metrics.json").write_text(json.dumps(m), encoding="utf-8")
        return load_record(out_dir, method=method, corpus=corpus, seed=seed)


def test_two_workers_share_the_grid_record_a_failure_and_resume(tmp_path):
    out = tmp_path / "cmp"
    runner = SlowRunner(out, fail={("speak", "de", 1)})
    res = C.compare(CORPORA, "vanilla,speak", seeds=2, steps=1, out=out, runner=runner, workers=2, quiet=True,
                    plots=False)
    recs = json.loads((out / "results.json").read_text())
    assert len(recs) == 7 and len(res["records"]) == 7
    pids = {r["pid"] for r in recs}
    assert len(pids) == 2 and os.getpid() not in pids  # trained in two other processes
    failed = run_dir_for(out, "speak", "/x/de.txt", 1)
    assert "out of memory" in json.loads((failed / C.FAILED_FILE).read_text())["error"]
    assert "speak on de seed 1 failed: RuntimeError: out of memory" in (out / "report.md").read_text()
    assert not list(out.rglob(W.CLAIM_FILE))  # claims are released when the workers are done
    # again: only the failed run is tried (and now works); the finished ones are kept
    again = SlowRunner(out)
    C.compare(CORPORA, "vanilla,speak", seeds=2, steps=1, out=out, runner=again, workers=2, quiet=True, plots=False)
    recs2 = {(r["method"], r["corpus_name"], r["seed"]): r for r in json.loads((out / "results.json").read_text())}
    assert len(recs2) == 8 and not (failed / C.FAILED_FILE).exists()
    assert {r["pid"] for k, r in recs2.items() if k != ("speak", "de", 1)} == pids


def test_claims_of_dead_processes_are_released_live_ones_kept(tmp_path):
    jobs = [W.Job("speak", "/x/en.txt", s, tmp_path / f"run{s}") for s in range(3)]
    assert W.claim(jobs[0].run_dir) and not W.claim(jobs[0].run_dir)  # held by this (live) process
    import multiprocessing as mp

    p = mp.get_context("fork").Process(target=W.claim, args=(jobs[1].run_dir,))
    p.start()
    p.join()
    assert (jobs[1].run_dir / W.CLAIM_FILE).is_file()
    jobs[2].run_dir.mkdir()
    (jobs[2].run_dir / W.CLAIM_FILE).write_text("", encoding="utf-8")  # half-written
    assert W.release_claims(jobs) == 2
    assert (jobs[0].run_dir / W.CLAIM_FILE).is_file()
    assert not (jobs[1].run_dir / W.CLAIM_FILE).exists() and not (jobs[2].run_dir / W.CLAIM_FILE).exists()


def test_a_worker_bug_stops_the_command_loudly(tmp_path, capfd):
    def buggy(method, corpus, preset, seed, steps, out_dir, sets, **kw):
        raise KeyError("a bug")

    with pytest.raises(SpeakError, match="unexpected error"):
        C.compare(["/x/en.txt"], "speak", seeds=2, steps=1, out=tmp_path, runner=buggy, workers=2, quiet=True,
                  plots=False)
    assert "KeyError: 'a bug'" in capfd.readouterr().err
    with pytest.raises(SpeakError, match="--workers"):
        C.compare(["/x/en.txt"], "speak", seeds=1, steps=1, out=tmp_path, runner=buggy, workers=0, quiet=True)


def test_tiny_real_grid_in_two_workers_resumes_and_reports_validation(tmp_path):
    """The real trainer, 2 methods x 2 seeds x 3 steps in 2 processes; runs end with a validation BPC; a second
    command trains nothing; --report-only rewrites the same report."""
    from speak.text.corpora import load_corpus

    corpus = tmp_path / "slice.txt"
    corpus.write_text(load_corpus("embedded")[:20_000], encoding="utf-8")
    kw = dict(preset="cpu-tiny", seeds=2, steps=3, out=tmp_path / "cmp", quiet=True, plots=False,
              sets=["test_windows=2", "eval_windows=1", "timing_batches=1", "batch_size=4", "seq_len=64"])
    C.compare([str(corpus)], "vanilla,dtp-unigram", workers=2, **kw)
    recs = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in recs) == [("dtp-unigram", 0), ("dtp-unigram", 1),
                                                              ("vanilla", 0), ("vanilla", 1)]
    for r in recs:
        assert r["steps"] == 3 and math.isfinite(r["valid_bpc"]) and r["valid_bpc"] > 0
    report = (tmp_path / "cmp" / "report.md").read_bytes()
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cmp" / "runs").rglob("metrics.json")}

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    C.compare([str(corpus)], "vanilla,dtp-unigram", workers=2, runner=no_training, **kw)
    C.compare([str(corpus)], "vanilla,dtp-unigram", report_only=True, **kw)
    assert (tmp_path / "cmp" / "report.md").read_bytes() == report
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_a_run_resumed_at_its_last_step_still_reports_validation(tmp_path):
    """Killed after its last checkpoint but before metrics.json: the resumed run trains nothing and still records
    the validation BPC that selection reads."""
    from speak.experiments.runner import run_training
    from speak.text.corpora import load_corpus

    corpus = tmp_path / "slice.txt"
    corpus.write_text(load_corpus("embedded")[:20_000], encoding="utf-8")
    sets = ["test_windows=2", "eval_windows=1", "timing_batches=1", "batch_size=4", "seq_len=64"]
    run = tmp_path / "run"
    first = run_training("vanilla", str(corpus), "cpu-tiny", 0, 2, run, sets)
    (run / "metrics.json").unlink()
    again = run_training("vanilla", str(corpus), "cpu-tiny", 0, 2, run, sets)
    assert again["resumed_at"] == 2 and again["valid_bpc"] == pytest.approx(first["valid_bpc"])
