"""The fair comparison (SPEC section 6): selection on validation only, controls, the frontier, Holm."""

from __future__ import annotations

import json
import math

import pytest

from speak.errors import SpeakError
from speak.experiments import compare as C
from speak.experiments import frontier as F
from speak.experiments import protocol as P
from speak.experiments import selection as S

# ---------------------------------------------------------------------------------------------- selection


def _rec(method, corpus, seed, bpc, valid_bpc, sf=3.0):
    return {"method": method, "corpus": f"/x/{corpus}.txt", "corpus_name": corpus, "seed": seed, "bpc": bpc,
            "sf": sf, "valid_bpc": valid_bpc, "valid_sf": sf, "tokenize_ms_per_batch": 1.0, "ms_per_step": 5.0}


def test_the_chooser_sees_no_test_field():
    view = S.ValidationView(_rec("speak", "en", 0, 1.2345, 1.5))
    assert set(view) <= S.VALIDATION_FIELDS and "bpc" not in view and "sf" not in view
    assert view["valid_bpc"] == 1.5
    for key in ("bpc", "sf", "ms_per_step", "tokenize_ms_per_batch"):
        with pytest.raises(S.TestFieldError):
            view[key]
        with pytest.raises(S.TestFieldError):
            view.get(key)


def test_selection_follows_validation_even_where_test_disagrees():
    # on test, a is better; on validation, b is: b must be chosen
    records = [_rec(m, c, s, bpc, vb) for c in ("en", "de") for s in range(2)
               for m, bpc, vb in (("speak-a", 1.0, 1.6), ("speak-b", 1.4, 1.5))]
    seen = []

    def spy(group, candidates, views):
        seen.extend(views)
        with pytest.raises(S.TestFieldError):
            views[0]["bpc"]
        return S.choose_lowest_valid_bpc(group, candidates, views)

    (choice,) = S.select(records, {"g": ["speak-a", "speak-b"]}, chooser=spy)
    assert choice.chosen == "speak-b"
    assert choice.scores == pytest.approx({"speak-a": 1.6, "speak-b": 1.5})
    assert choice.runs == {"speak-a": 4, "speak-b": 4}
    assert len(seen) == 8 and all(isinstance(v, S.ValidationView) for v in seen)


def test_a_candidate_without_validation_bpc_is_excluded():
    records = [_rec("speak-a", "en", 0, 1.0, None), _rec("speak-b", "en", 0, 1.1, 1.7)]
    (choice,) = S.select(records, {"g": ["speak-a", "speak-b"]})
    assert choice.chosen == "speak-b" and "no validation BPC" in choice.excluded["speak-a"]


def _fake_runner(values):
    """A runner writing metrics.json from ``values[(method, corpus name)] = (bpc, valid_bpc, sf)`` (+ 0.01 / seed)."""
    def run(method, corpus, preset, seed, steps, out_dir, sets, **kw):
        from speak.experiments.runner import corpus_name, load_record

        bpc, vb, sf = values[(method, corpus_name(corpus))]
        out_dir.mkdir(parents=True, exist_ok=True)
        m = {"bpc": bpc + 0.01 * seed, "sf": sf + 0.05 * seed, "valid_bpc": vb + 0.01 * seed, "valid_sf": sf,
             "steps": steps, "boundary": method, "corpus": corpus, "seed": seed}
        (out_dir / "metrics.json").write_text(json.dumps(m), encoding="utf-8")
        return load_record(out_dir, method=method, corpus=corpus, seed=seed)
    return run


def test_compare_reports_test_of_the_chosen_only(tmp_path):
    values = {}
    for c in ("en", "de"):
        values.update({("dtp-unigram", c): (1.30, 1.32, 3.0), ("speak", c): (1.35, 1.36, 3.2),
                       ("speak-bounded-mem-scales", c): (1.2345, 1.40, 3.1),  # best on test, worse on valid
                       ("speak-encoder-bce", c): (1.31, 1.33, 3.3),
                       ("dtp-unigram+bce-proxy", c): (1.29, 1.31, 3.0)})
    out = tmp_path / "cmp"
    res = C.compare(["/x/en.txt", "/x/de.txt"], "dtp-unigram,dtp-unigram+bce-proxy,speak", seeds=2, steps=1, out=out,
                    runner=_fake_runner(values), quiet=True, plots=False,
                    select=["speak-bounded-mem-scales,speak-encoder-bce"])
    (choice,) = res["choices"]
    assert choice.chosen == "speak-encoder-bce"
    saved = json.loads((out / "results.json").read_text())
    withheld = [r for r in saved if r["method"] == "speak-bounded-mem-scales"]
    assert len(withheld) == 4 and all(r["test_withheld"] and "bpc" not in r and "sf" not in r for r in withheld)
    md = (out / "report.md").read_text()
    assert "1.2345" not in md and "1.235" not in md and "1.239" not in md  # its test BPC is nowhere
    assert "Validation selection" in md and "chosen" in md
    # the chosen variant has the encoder-BCE head: its only baseline is DTP-Unigram with the same head
    by = {t.method: t for t in res["targets"]}
    assert by["speak-encoder-bce"].baselines == ["dtp-unigram+bce-proxy"]
    assert by["speak"].baselines == ["dtp-unigram"]
    assert {(r["target"], r["baseline"]) for r in res["significance"]} == {
        ("speak", "dtp-unigram"), ("speak-encoder-bce", "dtp-unigram+bce-proxy")}


def test_a_target_without_its_control_is_not_controlled_and_has_no_verdict(tmp_path):
    values = {("dtp-unigram", "en"): (1.30, 1.3, 3.0), ("speak-both-bce", "en"): (1.10, 1.1, 3.0),
              ("magnet", "en"): (1.4, 1.4, 3.0)}
    out = tmp_path / "cmp"
    res = C.compare(["/x/en.txt"], "dtp-unigram,magnet,speak-both-bce", seeds=2, steps=1, out=out,
                    runner=_fake_runner(values), quiet=True, plots=False, target="speak-both-bce")
    (t,) = res["targets"]
    assert not t.controlled and t.signals == ("bce-both",)
    assert res["significance"] == []
    md = (out / "report.md").read_text()
    assert "NOT CONTROLLED" in md and "(not controlled)" in md and "One-point verdict" not in md
    targets = P.plan_targets(["vanilla", "dtp-unigram", "dtp-unigram+bce-both", "magnet", "dtp-entropy+bce-entropy"],
                             [("speak-both-bce", "x"), ("speak", "y")], set())
    assert targets[0].baselines == ["dtp-unigram+bce-both"]
    assert targets[1].baselines == ["dtp-unigram", "magnet"]  # vanilla never; signals must match


# ---------------------------------------------------------------------------------------------- statistics


def test_holm_on_known_p_values():
    assert F.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adj = F.holm([0.02, math.nan, 0.04])
    assert adj[0] == pytest.approx(0.04) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.04)
    assert F.holm([0.6, 0.7]) == [1.0, 1.0]
    assert F.holm([]) == []


def test_interpolation_on_a_hand_made_curve():
    sf, bpc = [6.0, 2.0, 4.0], [1.2, 1.5, 1.3]  # any order
    assert F.interpolate(sf, bpc, 3.0) == pytest.approx(1.4)
    assert F.interpolate(sf, bpc, 5.0) == pytest.approx(1.25)
    assert F.interpolate(sf, bpc, 4.0) == pytest.approx(1.3)
    assert F.interpolate(sf, bpc, 2.0) == pytest.approx(1.5)
    assert math.isnan(F.interpolate(sf, bpc, 1.9)) and math.isnan(F.interpolate(sf, bpc, 6.1))
    assert F.interpolate([2.0, 2.0, 4.0], [1.4, 1.6, 1.0], 3.0) == pytest.approx(1.25)  # equal SFs averaged


def _curve(method, offset, sfs=(2.0, 4.0, 6.0), seeds=3, default=None):
    pts = {}
    for i, sf in enumerate(sfs):
        label = "default" if i == default else str(sf)
        pts[label] = {s: (sf + 0.1 * s, 2.0 - 0.1 * sf + offset + 0.03 * s) for s in range(seeds)}
    return F.Curve(method, "en", pts)


def test_matched_sf_and_its_paired_bootstrap():
    target, baseline = _curve("speak", -0.05), _curve("dtp-unigram", 0.0, sfs=(3.0, 5.0, 7.0), default=1)
    assert F.matched_sf(target, baseline) == pytest.approx(5.1)  # the baseline's default point (mean over seeds)
    r = F.bootstrap_matched(target, baseline)
    # per seed s both curves are BPC = 2.01 - 0.1 SF + 0.04 s + offset: the difference is -0.05 in every resample
    assert r.delta == pytest.approx(-0.05)
    assert (r.ci_low, r.ci_high) == pytest.approx((-0.05, -0.05)) and r.p == 0.0  # every seed: exactly -0.05
    assert r.seeds == 3 and r.resamples == F.BOOTSTRAP
    edge = F.bootstrap_matched(target, _curve("dtp-unigram", 0.0, sfs=(3.0, 5.0, 7.0), default=0))
    assert edge.sf == pytest.approx(3.1) and 0 < edge.resamples < F.BOOTSTRAP  # resamples whose curve misses 3.1
    far = _curve("magnet", 0.0, sfs=(10.0, 12.0))
    assert math.isnan(F.matched_sf(target, far)) and math.isnan(F.bootstrap_matched(target, far).delta)
    no_default = _curve("magnet", 0.0, sfs=(4.0, 8.0))
    assert F.matched_sf(target, no_default) == pytest.approx(math.sqrt(4.1 * 6.1))  # middle of the overlap


def test_the_matched_p_is_a_paired_t_test_of_the_seeds_own_differences():
    from scipy import stats

    target, baseline = _curve("speak", 0.0), _curve("dtp-unigram", 0.0, default=1)
    noise = {0: -0.03, 1: 0.01, 2: -0.05}  # target's BPC moved per seed: per-seed differences are exactly these
    for runs in target.points.values():
        for s, (sf, bpc) in runs.items():
            runs[s] = (sf, bpc + noise[s])
    r = F.bootstrap_matched(target, baseline)
    assert r.p == pytest.approx(stats.ttest_1samp(list(noise.values()), 0.0).pvalue)
    assert r.delta == pytest.approx(sum(noise.values()) / 3)
    assert r.ci_low == pytest.approx(-0.05) and r.ci_high == pytest.approx(0.01)  # the extreme resamples
    assert F.paired_p([0.1]) != F.paired_p([0.1])  # NaN with one seed
    assert F.paired_p([0.0, 0.0]) == 1.0


def test_frontier_from_a_sweep(tmp_path):
    values = {}
    for c in ("en", "de"):
        for name, sf in (("dtp-unigram@250", 2.5), ("dtp-unigram", 3.0), ("dtp-unigram@2000", 4.0)):
            values[(name, c)] = (2.0 - 0.1 * sf, 2.0 - 0.1 * sf, sf)
        for name, sf in (("speak@250", 2.6), ("speak", 3.5), ("speak@2000", 4.5)):
            values[(name, c)] = (1.97 - 0.1 * sf, 1.97 - 0.1 * sf, sf)
    out = tmp_path / "cmp"
    res = C.compare(["/x/en.txt", "/x/de.txt"], "dtp-unigram,speak", seeds=2, steps=1, out=out, preset="cpu-small",
                    runner=_fake_runner(values), quiet=True,
                    sweeps={"dtp-unigram": [250, 1000, 2000], "speak": [250, 2000]})
    assert not (out / "runs" / "en" / "speak@1000").exists()  # the default value is the plain method's run
    rows = {(r.corpus, r.target, r.baseline): r for r in res["matched"]}
    r = rows[("en", "speak", "dtp-unigram")]
    assert r.delta == pytest.approx(-0.03) and r.target_points == 3 and r.baseline_points == 3
    assert r.p_holm >= r.p
    assert (out / "plots" / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "BPC at matched SF" in md and "frontier.png" in md and "Frontier points" in md


def test_sweep_arguments_fail_clearly():
    assert C.parse_sweep("speak=500, 1000,2000") == ("speak", [500.0, 1000.0, 2000.0])
    for bad in ("speak", "speak=", "speak=a,b", "=1,2"):
        with pytest.raises(SpeakError, match="--sweep"):
            C.parse_sweep(bad)
    with pytest.raises(SpeakError, match="no SF knob"):
        C.expand_sweeps({"vanilla": [1, 2]}, preset="cpu-tiny", sets=())
    with pytest.raises(SpeakError, match="--select"):
        C.compare(["/x/en.txt"], "speak", seeds=1, out="unused", select=["speak"], quiet=True)


def test_cli_bad_sweep_is_one_line_and_exit_2(tmp_path, capsys):
    from speak.cli import run

    code = run(["experiment", "compare", "--corpus", "a.txt", "--sweep", "speak", "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--sweep" in err
    assert not (tmp_path / "o").exists()


def test_report_only_rewrites_the_same_files(tmp_path):
    values = {(m, c): (1.3 + 0.01 * i, 1.3 + 0.01 * i, 3.0 + i) for c in ("en",)
              for i, m in enumerate(("dtp-unigram", "dtp-unigram@2000", "dtp-unigram@250", "speak", "speak@2000",
                                     "speak@250"))}
    out = tmp_path / "cmp"
    kw = dict(seeds=2, steps=1, out=out, runner=_fake_runner(values), quiet=True,
              sweeps={"dtp-unigram": [250, 2000], "speak": [250, 2000]})
    C.compare(["/x/en.txt"], "dtp-unigram,speak", **kw)
    files = sorted(p for p in out.rglob("*") if p.is_file() and "runs" not in p.parts)
    first = {p: p.read_bytes() for p in files}
    C.compare(["/x/en.txt"], "dtp-unigram,speak", report_only=True, **kw)
    assert {p: p.read_bytes() for p in files} == first
    assert any(p.name == "frontier.png" for p in files)


def test_committed_records_restore_to_the_same_report(tmp_path):
    """results.json (with the withheld candidates' validation fields) put back by benchmarks/restore_runs.py gives
    the same choice and the same report."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "restore_runs.py"
    spec = importlib.util.spec_from_file_location("restore_runs", script)
    restore_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(restore_runs)
    values = {("dtp-unigram", "en"): (1.30, 1.32, 3.0), ("speak-wo-mh", "en"): (1.2, 1.41, 3.1),
              ("speak-all-hard", "en"): (1.31, 1.33, 3.3)}
    kw = dict(seeds=2, steps=1, quiet=True, plots=False, select=["speak-wo-mh,speak-all-hard"])
    first = C.compare(["/x/en.txt"], "dtp-unigram", out=tmp_path / "old", runner=_fake_runner(values), **kw)
    assert restore_runs.restore(tmp_path / "old" / "results.json", tmp_path / "new", None) == 6
    again = C.compare(["/x/en.txt"], "dtp-unigram", out=tmp_path / "new", report_only=True, **kw)
    assert again["choices"][0].chosen == first["choices"][0].chosen == "speak-all-hard"
    assert (tmp_path / "new" / "report.md").read_text() == (tmp_path / "old" / "report.md").read_text()


def test_table1_stars_only_against_the_controlled_baseline(tmp_path):
    """vanilla (SF 1) has by far the lowest BPC; SPEAK's star must come from its test against DTP-Unigram (no
    difference here), not from one against vanilla."""
    values = {("vanilla", "en"): (1.00, 1.0, 1.0), ("dtp-unigram", "en"): (1.30, 1.3, 3.0),
              ("speak", "en"): (1.30, 1.3, 3.0)}
    out = tmp_path / "cmp"
    C.compare(["/x/en.txt"], "vanilla,dtp-unigram,speak", seeds=3, steps=1, out=out, runner=_fake_runner(values),
              quiet=True, plots=False)
    md = (out / "report.md").read_text()
    speak_row = next(line for line in md.splitlines() if line.startswith("| SPEAK |"))
    assert "*" not in speak_row and "best controlled baseline" in md
