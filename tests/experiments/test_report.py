"""Tables, t-tests and report files from synthetic records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from speak.experiments import report as R
from speak.experiments.ablate import write_ablation_outputs
from speak.experiments.compare import write_compare_outputs
from speak.experiments.efficiency import write_efficiency_outputs

from ._helpers import BPC, SF

METHODS = ["vanilla", "magnet", "speak"]
CORPORA = ["a", "b"]


def _cell(table, method_label, header):
    row = next(r for r in table.rows if r[0] == method_label)
    return row[table.headers.index(header)]


def test_table1_means_and_stds(records):
    t = R.table1(records, METHODS, CORPORA)
    for m, label in (("vanilla", "Vanilla"), ("magnet", "MAGNET"), ("speak", "SPEAK")):
        for c in CORPORA:
            vals = BPC[(m, c)]
            cell = _cell(t, label, f"BPC {c}")
            assert cell.startswith(f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}")
            assert _cell(t, label, f"SF {c}").startswith(f"{np.mean(SF[(m, c)]):.2f}x")
        # Avg.: per-seed means over corpora, then mean over seeds
        per_seed = [(BPC[(m, 'a')][s] + BPC[(m, 'b')][s]) / 2 for s in range(3)]
        assert _cell(t, label, "BPC Avg.").startswith(f"{np.mean(per_seed):.3f} ± {np.std(per_seed, ddof=1):.3f}")
    # speak beats magnet clearly on corpus a -> starred; not on b
    assert _cell(t, "SPEAK", "BPC a").endswith("*")
    assert not _cell(t, "SPEAK", "BPC b").endswith("*")


def test_ttest_matches_scipy(records):
    rows = R.significance_vs_best_baseline(records, METHODS, CORPORA)
    by = {r["corpus"]: r for r in rows}
    for c in CORPORA:
        assert by[c]["baseline"] == "magnet"  # the best baseline by mean BPC
        ref = stats.ttest_ind(BPC[("speak", c)], BPC[("magnet", c)], equal_var=False)
        assert by[c]["p"] == pytest.approx(ref.pvalue, rel=1e-12)
        assert by[c]["t"] == pytest.approx(ref.statistic, rel=1e-12)
    avg_s = [(BPC[("speak", "a")][s] + BPC[("speak", "b")][s]) / 2 for s in range(3)]
    avg_m = [(BPC[("magnet", "a")][s] + BPC[("magnet", "b")][s]) / 2 for s in range(3)]
    assert by["Avg."]["p"] == pytest.approx(stats.ttest_ind(avg_s, avg_m, equal_var=False).pvalue, rel=1e-12)
    assert by["a"]["significant"] and not by["b"]["significant"]
    for c in CORPORA:  # paired by seed
        ref = stats.ttest_rel(BPC[("speak", c)], BPC[("magnet", c)])
        assert by[c]["p_paired"] == pytest.approx(ref.pvalue, rel=1e-12) and by[c]["n_paired"] == 3
    assert by["Avg."]["p_paired"] == pytest.approx(stats.ttest_rel(avg_s, avg_m).pvalue, rel=1e-12)


def test_paired_ttest_uses_common_seeds_only():
    a, b = {0: 1.0, 1: 2.0, 2: 4.0, 7: 9.0}, {0: 1.5, 1: 2.25, 2: 4.75, 3: 0.0}
    t, p, n = R.paired_ttest(a, b)
    ref = stats.ttest_rel([1.0, 2.0, 4.0], [1.5, 2.25, 4.75])
    assert n == 3 and p == pytest.approx(ref.pvalue) and t == pytest.approx(ref.statistic)
    t, p, n = R.paired_ttest({0: 1.0, 1: 2.0}, {1: 3.0})
    assert n == 1 and np.isnan(t) and np.isnan(p)


def test_ttest_needs_two_seeds():
    t, p = R.welch_ttest([1.0], [2.0, 3.0])
    assert np.isnan(t) and np.isnan(p)


def test_ablation_table_and_tests(records):
    # relabel: magnet plays "speak-all-hard", vanilla "speak-wo-mh"
    recs = [dict(r, method={"magnet": "speak-all-hard", "vanilla": "speak-wo-mh"}.get(r["method"], r["method"]))
            for r in records]
    tests = R.ablation_tests(recs, ["speak", "speak-all-hard", "speak-wo-mh"], CORPORA)
    t = next(x for x in tests if x["variant"] == "speak-all-hard" and x["corpus"] == "a" and x["metric"] == "sf")
    assert t["p"] == pytest.approx(stats.ttest_ind(SF[("magnet", "a")], SF[("speak", "a")], equal_var=False).pvalue)
    table = R.ablation_table(recs, ["speak", "speak-all-hard"], CORPORA)
    row = next(r for r in table.rows if r[0] == "All hard reset")
    assert row[1:4] == ["Hard reset", "Hard reset", "-"]
    assert row[4].startswith(f"{np.mean(BPC[('magnet', 'a')]):.3f}")
    assert row[5].endswith("*")  # 1.21 vs 1.11: significant


def test_compare_outputs_written(records, tmp_path):
    out = tmp_path / "cmp"
    res = write_compare_outputs(out, records, METHODS, CORPORA)
    data = json.loads((out / "results.json").read_text())
    assert len(data) == 18 and {"method", "corpus", "seed", "bpc", "sf"} <= set(data[0])
    md = (out / "report.md").read_text()
    assert "Table 1" in md and "| SPEAK |" in md and "MAGNET" in md
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # BPC, SF, rejection-rate plots embedded
    for name in ("train_bpc.png", "train_sf.png", "reject_rate.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sig = json.loads((out / "significance.json").read_text())
    assert {r["corpus"] for r in sig["one_point"]} == {"a", "b", "Avg."}
    assert res["report_html"] == out / "report.html"


def test_ablation_outputs_written(records, tmp_path):
    recs = [dict(r, method={"magnet": "speak-theta-0.6", "vanilla": "speak-wo-mh"}.get(r["method"], r["method"]))
            for r in records]
    write_ablation_outputs(tmp_path / "abl", recs, ["speak", "speak-theta-0.6", "speak-wo-mh"], CORPORA, plots=False)
    md = (tmp_path / "abl" / "report.md").read_text()
    assert "Table 3" in md and "Table 5" in md and "theta 0.6" in md and "w/o MH sampling" in md


def test_efficiency_table(records, tmp_path):
    res = write_efficiency_outputs(tmp_path / "eff", records, CORPORA)
    rows = {(d["corpus"], d["method"]): d for d in res["efficiency"]}
    sp = rows[("a", "speak")]
    assert sp["tokenize_speedup"] == pytest.approx((8.0 - 6.0) / 8.0)
    assert sp["infer_speedup"] == pytest.approx(0.1)
    assert sp["tokenizer_ratio"] == pytest.approx(50_000 / 1_050_000)
    assert ("Avg.", "speak") in rows and ("a", "vanilla") not in rows
    md = (tmp_path / "eff" / "report.md").read_text()
    assert "+25.0%" in md and "4.8%" in md and "1.0M" in md


def test_nan_metrics_make_strict_json(tmp_path):
    R.write_json(tmp_path / "x.json", [{"bpc": float("nan"), "v": np.float32(1.5)}])
    assert json.loads((tmp_path / "x.json").read_text()) == [{"bpc": None, "v": 1.5}]


def test_verdicts_need_bpc_and_sf(records):
    rows = {r["corpus"]: r for r in R.verdicts(records, METHODS, CORPORA)}
    for c in CORPORA:
        r = rows[c]
        best = min(("vanilla", "magnet"), key=lambda m: np.mean(BPC[(m, c)]))
        assert r["baseline"] == best
        assert r["bpc_ok"] == (np.mean(BPC[("speak", c)]) <= np.mean(BPC[(best, c)]))
        assert r["sf_ok"] == (np.mean(SF[("speak", c)]) >= 0.95 * np.mean(SF[(best, c)]))
        assert r["win"] == (r["bpc_ok"] and r["sf_ok"])
    # SPEAK's own variants are never the baseline, and a shorter SF turns a BPC win into a loss
    recs = [dict(r, method="speak-mean-lmem") for r in records if r["method"] == "speak"]
    recs += [dict(r, bpc=r["bpc"] - 1.0) for r in records if r["method"] == "speak"]
    recs += [dict(r, sf=0.5 * r["sf"]) for r in records if r["method"] == "magnet"]
    recs += [r for r in records if r["method"] == "vanilla"]
    rows = R.verdicts(recs, ["vanilla", "magnet", "speak-mean-lmem", "speak"], CORPORA)
    assert all(r["baseline"] in ("vanilla", "magnet") and r["bpc_ok"] for r in rows)
    table = R.verdict_table(rows)
    assert table.rows and table.note.startswith(f"{sum(r['win'] for r in rows)} of {len(rows)}")


def test_sf_plot_draws_speak_proxy_sf(tmp_path, monkeypatch):
    log = tmp_path / "train_log.csv"
    log.write_text("step,bpc,sf,proxy_sf\n1,3.0,4.0,3.0\n2,2.5,4.5,3.5\n", encoding="utf-8")
    drawn = {}
    monkeypatch.setattr(R, "plot_lines", lambda series, path, **kw: drawn.setdefault(path.name, kw) and path)
    R.curve_plots([{"method": "speak", "corpus_name": "c", "seed": 0, "train_log": str(log)}], tmp_path, ["c"])
    (steps, proxy_sf), = drawn["train_sf.png"]["panels"]["c"]["SPEAK proxy"]
    assert steps.tolist() == [1, 2] and proxy_sf.tolist() == [3.0, 3.5]
    assert drawn["train_sf.png"]["logy"] and not drawn["train_bpc.png"].get("logy")
    assert "SPEAK proxy" not in drawn["train_bpc.png"]["panels"]["c"]
