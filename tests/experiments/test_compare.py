"""The run grid: resumability, method names, the CLI; one tiny real end-to-end compare."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from speak.errors import SpeakError
from speak.experiments import compare as C
from speak.experiments.ablate import ablate
from speak.experiments.runner import ABLATION_VARIANTS, corpus_name, resolve_method, run_dir_for

from ._helpers import fake_metrics


class FakeRunner:
    def __init__(self):
        self.calls = []

    def __call__(self, method, corpus, preset, seed, steps, out_dir, sets, **kw):
        self.calls.append((method, corpus, seed))
        fake_metrics(out_dir, method, corpus, seed, bpc=1.0 + 0.01 * seed + (0.0 if method == "speak" else 0.1))
        from speak.experiments.runner import load_record

        return load_record(out_dir, method=method, corpus=corpus, seed=seed)


def test_finished_runs_are_not_rerun(tmp_path):
    out = tmp_path / "cmp"
    fake_metrics(run_dir_for(out, "speak", "/x/en.txt", 1), "speak", "/x/en.txt", 1, bpc=0.5)
    runner = FakeRunner()
    res = C.compare(["/x/en.txt"], "vanilla,speak", preset="cpu-tiny", seeds=2, steps=3, out=out, runner=runner,
                    quiet=True, plots=False)
    assert len(res["records"]) == 4
    assert ("speak", "/x/en.txt", 1) not in runner.calls
    assert len(runner.calls) == 3
    recs = json.loads((out / "results.json").read_text())
    assert len(recs) == 4
    reused = next(r for r in recs if r["method"] == "speak" and r["seed"] == 1)
    assert reused["bpc"] == 0.5
    # a second invocation trains nothing
    again = FakeRunner()
    C.compare(["/x/en.txt"], "vanilla,speak", preset="cpu-tiny", seeds=2, steps=3, out=out, runner=again,
              quiet=True, plots=False)
    assert again.calls == []


def test_report_only_trains_nothing_and_names_the_missing_runs(tmp_path):
    out = tmp_path / "cmp"
    for method in ("vanilla", "speak"):
        fake_metrics(run_dir_for(out, method, "/x/en.txt", 0), method, "/x/en.txt", 0)
    runner = FakeRunner()
    res = C.compare(["/x/en.txt"], "vanilla,speak", seeds=3, steps=3, out=out, runner=runner, quiet=True,
                    plots=False, report_only=True)
    assert runner.calls == [] and len(res["records"]) == 2
    report = (out / "report.md").read_text()
    assert "vanilla on en seeds 1, 2: not trained (report only)" in report
    assert "speak on en seeds 1, 2: not trained (report only)" in report


def test_compare_tests_a_chosen_speak_variant_against_the_baselines(tmp_path):
    out = tmp_path / "cmp"
    methods = ("dtp-unigram", "speak", "speak-bounded-mem-scales")
    for seed in range(2):
        for method, bpc in zip(methods, (1.10, 1.05, 1.00)):
            fake_metrics(run_dir_for(out, method, "/x/en.txt", seed), method, "/x/en.txt", seed, bpc=bpc + 0.01 * seed)
    res = C.compare(["/x/en.txt"], ",".join(methods), seeds=2, out=out, target="speak-bounded-mem-scales",
                    quiet=True, plots=False, report_only=True)
    row = next(t for t in res["significance"] if t["corpus"] == "en" and t["target"] != "speak")
    assert (row["target"], row["baseline"]) == ("speak-bounded-mem-scales", "dtp-unigram")  # speak is no baseline
    assert row["target_mean"] == pytest.approx(1.005)
    with pytest.raises(SpeakError, match="--target"):
        C.compare(["/x/en.txt"], "dtp-unigram,speak", seeds=2, out=out, target="speak-all-hard", quiet=True,
                  plots=False, report_only=True)


def test_cli_compare_uses_the_runner(tmp_path, monkeypatch):
    from speak.cli import app

    runner = FakeRunner()
    monkeypatch.setattr(C, "run_training", runner)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["experiment", "compare", "--corpus", "a.txt", "--corpus", "b.txt", "--methods",
                                   "magnet,speak", "--seeds", "2", "--steps", "2", "--out", str(out), "-q",
                                   "--no-plots"])
    assert res.exit_code == 0, res.output
    assert len(runner.calls) == 8
    assert "Table 1" in (out / "report.md").read_text()
    res = CliRunner().invoke(app, ["experiment", "efficiency", "--from", str(out), "--out", str(tmp_path / "e"),
                                   "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "e" / "efficiency.json").is_file()


def test_ablate_runs_full_model_and_variants(tmp_path):
    runner = FakeRunner()
    res = ablate(["c.txt"], "speak-all-hard,speak-wo-mh", seeds=1, steps=1, out=tmp_path, runner=runner,
                 quiet=True, plots=False)
    assert [c[0] for c in runner.calls] == ["speak", "speak-all-hard", "speak-wo-mh"]
    with pytest.raises(SpeakError):
        ablate(["c.txt"], "magnet", seeds=1, steps=1, out=tmp_path, runner=runner, quiet=True)
    assert res["report_md"].is_file()


def test_method_names_map_to_options():
    from speak.train.config import load_config

    assert resolve_method("vanilla").boundary == "none"
    assert resolve_method("hnet").boundary == "hnet" and resolve_method("blt").boundary == "blt"
    # their SF knobs are plain --set keys (H-Net's target ratio N, BLT's global threshold)
    assert load_config(flags={"boundary": "hnet"}, sets=["model.boundary.target_ratio=3"]).model == {
        "boundary": {"target_ratio": 3.0}}
    with pytest.raises(SpeakError, match="target_ratio"):
        load_config(flags={"boundary": "hnet"}, sets=["model.boundary.target_ratio=1"])
    with pytest.raises(SpeakError, match="boundary.mode"):
        load_config(flags={"boundary": "blt"}, sets=["model.boundary.mode=local"])
    assert resolve_method("speak-theta-0.3").sets == ("model.boundary.speak.theta=0.3",)
    with pytest.raises(SpeakError):
        resolve_method("nope")
    for spec in ABLATION_VARIANTS.values():  # every patch names a real option of its source, with a valid value
        cfg = load_config(flags={"boundary": spec.boundary, "preset": "cpu-tiny"}, sets=list(spec.sets))
        assert cfg.boundary == spec.boundary
    assert corpus_name("/a/b/en-bible.txt.xz") == "en-bible" and corpus_name("text8") == "text8"


def test_tiny_real_compare(tmp_path):
    """Two methods x one seed x a few steps of the real trainer on a small slice of the embedded corpus."""
    from speak.text.corpora import load_corpus

    corpus = tmp_path / "slice.txt"
    corpus.write_text(load_corpus("embedded")[:30_000], encoding="utf-8")
    res = C.compare([str(corpus)], "vanilla,speak", preset="cpu-tiny", seeds=1, steps=4, out=tmp_path / "cmp",
                    sets=["test_windows=2", "eval_windows=1", "timing_batches=1", "batch_size=4", "seq_len=64"],
                    quiet=True)
    recs = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert sorted(r["method"] for r in recs) == ["speak", "vanilla"]
    for r in recs:
        assert r["steps"] == 4 and r["bpc"] > 0 and r["sf"] >= 1.0
    speak = next(r for r in recs if r["method"] == "speak")
    assert speak["boundary"] == "speak" and speak["tokenizer_params"] > 0
    md = res["report_md"].read_text()
    assert "SPEAK" in md and "Vanilla" in md
    assert (tmp_path / "cmp" / "plots" / "train_bpc.png").is_file()


def test_restored_records_report_like_the_runs_they_came_from(tmp_path):
    """benchmarks/restore_runs.py: a committed results.json put back as run folders reports the same numbers."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "restore_runs.py"
    spec = importlib.util.spec_from_file_location("restore_runs", script)
    restore_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(restore_runs)

    old = tmp_path / "old"
    for seed in range(2):
        for method, bpc in (("dtp-unigram", 1.10), ("speak", 1.05)):
            fake_metrics(run_dir_for(old, method, "/x/en.txt", seed), method, "/x/en.txt", seed, bpc=bpc + 0.01 * seed)
    first = C.compare(["/x/en.txt"], "dtp-unigram,speak", seeds=2, out=old, quiet=True, plots=False, report_only=True)

    new = tmp_path / "new"
    assert restore_runs.restore(old / "results.json", new, {"dtp-unigram"}) == 2
    assert restore_runs.restore(old / "results.json", new, None) == 2  # only speak's runs were missing
    assert restore_runs.restore(old / "results.json", new, None) == 0
    again = C.compare(["/x/en.txt"], "dtp-unigram,speak", seeds=2, out=new, quiet=True, plots=False, report_only=True)
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    assert [(key(r), r["bpc"], r["sf"]) for r in sorted(again["records"], key=key)] == \
        [(key(r), r["bpc"], r["sf"]) for r in sorted(first["records"], key=key)]
    assert again["significance"][0]["p"] == pytest.approx(first["significance"][0]["p"])

    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SpeakError, match="corrupted"):
        restore_runs.restore(tmp_path / "bad.json", new, None)


def test_vanilla_is_in_the_default_comparison():
    """Table 1's Vanilla row (no shortening) is trained by default, by the API and by the CLI alike."""
    import inspect

    from speak.cli.experiment import compare_cmd

    assert C.DEFAULT_METHODS[0] == "vanilla" and "speak" in C.DEFAULT_METHODS
    assert inspect.signature(compare_cmd).parameters["methods"].default.default == ",".join(C.DEFAULT_METHODS)
