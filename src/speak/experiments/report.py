"""Results tables (Markdown / HTML), significance tests and plots for the experiment commands.

Records are dicts with at least ``method``, ``corpus`` (or ``corpus_name``), ``seed``, ``bpc``, ``sf`` (one per run;
the rest of a run's metrics.json rides along). Statistics are over seeds: mean ± sample std (ddof 1). "Avg." over
corpora is, per seed, the mean over the corpora, then mean ± std over the seeds that have every corpus (the mean of
the corpus means, without std, when no seed has them all). Significance is a two-sample Welch t-test
(``scipy.stats.ttest_ind(a, b, equal_var=False)``), p < 0.05 marked ``*`` as in the paper's tables; with fewer than two
seeds per side there is no test ("n/a"). The significance table adds a paired t-test over seeds
(``scipy.stats.ttest_rel``): runs of one seed train on the same windows in the same order, whatever the method.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speak.errors import SpeakError
from speak.experiments.plots import plot_lines, plot_segmentation
from speak.experiments.runner import corpus_name, resolve_method
from speak.experiments.variants import EFFICIENCY_METHODS, SPEAK

__all__ = [
    "Stat",
    "Table",
    "ablation_table",
    "efficiency_table",
    "group_values",
    "read_train_log",
    "render_html",
    "render_markdown",
    "paired_ttest",
    "significance_vs_best_baseline",
    "verdict_table",
    "verdicts",
    "table1",
    "welch_ttest",
    "write_json",
    "write_report",
]

ALPHA = 0.05


# ---------------------------------------------------------------------------------------------- statistics
@dataclass
class Stat:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def _cname(rec: dict[str, Any]) -> str:
    return str(rec.get("corpus_name") or corpus_name(str(rec.get("corpus", ""))))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def group_values(records: Iterable[dict[str, Any]], metric: str) -> dict[tuple[str, str], dict[int, float]]:
    """{(method, corpus_name): {seed: value}} for records with a finite ``metric``."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for rec in records:
        v = rec.get(metric)
        if not _finite(v):
            continue
        out.setdefault((str(rec["method"]), _cname(rec)), {})[int(rec.get("seed", 0))] = float(v)
    return out


def _stat(groups: dict[tuple[str, str], dict[int, float]], method: str, corpus: str) -> Stat:
    by_seed = groups.get((method, corpus), {})
    return Stat([by_seed[k] for k in sorted(by_seed)])


def _avg_by_seed(groups: dict[tuple[str, str], dict[int, float]], method: str,
                 corpora: Sequence[str]) -> dict[int, float]:
    """{seed: mean over corpora} for the seeds that have every corpus."""
    per = [groups.get((method, c), {}) for c in corpora]
    if not per or any(not p for p in per):
        return {}
    seeds = sorted(set.intersection(*(set(p) for p in per)))
    return {s: float(np.mean([p[s] for p in per])) for s in seeds}


def _avg_over_corpora(groups: dict[tuple[str, str], dict[int, float]], method: str,
                      corpora: Sequence[str]) -> tuple[Stat, bool]:
    """(per-seed averages over corpora, True) when some seeds have every corpus, else (corpus means, False)."""
    by_seed = _avg_by_seed(groups, method, corpora)
    if by_seed:
        return Stat([by_seed[s] for s in sorted(by_seed)]), True
    per = [groups.get((method, c), {}) for c in corpora]
    if not per or any(not p for p in per):
        return Stat([]), False
    return Stat([float(np.mean([np.mean(list(p.values())) for p in per]))]), False


def _scipy_test(name: str, *args: Sequence[float], **kwargs: Any) -> Any:
    """``scipy.stats.<name>(*args)``; identical values warn about precision there, and p is nan or valid anyway."""
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return getattr(stats, name)(*args, **kwargs)


def welch_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(t, p) of a two-sided Welch two-sample t-test; (nan, nan) with fewer than 2 values on a side."""
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    res = _scipy_test("ttest_ind", a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def paired_ttest(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int]:
    """(t, p, n) of a two-sided paired t-test over the seeds both sides have; (nan, nan, n) with fewer than 2.

    Runs of one seed train on the same windows in the same order, whatever the method, so they share part of
    their noise, and pairing by seed removes it."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return math.nan, math.nan, len(seeds)
    res = _scipy_test("ttest_rel", [a[s] for s in seeds], [b[s] for s in seeds])
    return float(res.statistic), float(res.pvalue), len(seeds)


def _fmt_num(v: float, digits: int) -> str:
    return "-" if not _finite(v) else f"{v:.{digits}f}"


def _fmt_stat(st: Stat, digits: int = 3, suffix: str = "", star: bool = False) -> str:
    if st.n == 0:
        return "-"
    text = f"{st.mean:.{digits}f}{suffix}"
    if st.n > 1 and _finite(st.std):
        text += f" ± {st.std:.{digits}f}"
    return text + ("*" if star else "")


def _fmt_p(p: float) -> str:
    if not _finite(p):
        return "n/a"
    text = "<0.01" if p < 0.01 else f"{p:.2f}"
    return text + ("*" if p < ALPHA else "")


def _label(method: str) -> str:
    try:
        return resolve_method(method).label or method
    except Exception:
        return method


# ---------------------------------------------------------------------------------------------- tables
def significance_vs_best_baseline(records: Sequence[dict[str, Any]], methods: Sequence[str], corpora: Sequence[str],
                                  *, target: str = SPEAK, metric: str = "bpc") -> list[dict[str, Any]]:
    """Per corpus (and "Avg."): Welch t-test of ``target``'s metric against the baseline with the lowest mean.

    Baselines are the other methods of ``methods`` except SPEAK's own variants (``speak-*``). Each row: corpus,
    target, baseline, means, n, delta_pct, t, p.
    """
    groups = group_values(records, metric)
    baselines = _baselines(methods, target)
    rows = []
    for corpus in list(corpora) + ["Avg."]:
        by_seed = {m: _avg_by_seed(groups, m, corpora) if corpus == "Avg." else groups.get((m, corpus), {})
                   for m in [target, *baselines]}  # method -> {seed: value}
        mine = list(by_seed[target].values())
        cands = [(float(np.mean(list(by_seed[b].values()))), b) for b in baselines if by_seed[b]]
        if not mine or not cands:
            continue
        best_mean, best = min(cands)
        theirs = list(by_seed[best].values())
        t, p = welch_ttest(mine, theirs)
        t_paired, p_paired, n_paired = paired_ttest(by_seed[target], by_seed[best])
        mean = float(np.mean(mine))
        rows.append({
            "corpus": corpus, "target": target, "baseline": best, "metric": metric,
            "target_mean": mean, "baseline_mean": best_mean, "n_target": len(mine), "n_baseline": len(theirs),
            "delta_pct": 100.0 * (mean - best_mean) / best_mean if best_mean else math.nan,
            "t": t, "p": p, "significant": bool(_finite(p) and p < ALPHA),
            "t_paired": t_paired, "p_paired": p_paired, "n_paired": n_paired,
        })
    return rows


def table1(records: Sequence[dict[str, Any]], methods: Sequence[str], corpora: Sequence[str], *,
           target: str = SPEAK, significant: dict[str, bool] | None = None, star_note: str = "") -> Table:
    """Table 1: test BPC and SF per corpus and their average, mean ± std over seeds; ``*`` on the target's BPC
    where its Welch t-test against the best baseline gives p < 0.05 (or where ``significant[corpus]`` says so,
    with ``star_note`` saying what it means)."""
    bpc = group_values(records, "bpc")
    sf = group_values(records, "sf")
    if significant is None:
        sig = {r["corpus"]: r["significant"] for r in significance_vs_best_baseline(records, methods, corpora,
                                                                                      target=target)}
    else:
        sig = dict(significant)
    headers = ["Method"] + [f"BPC {c}" for c in corpora] + ["BPC Avg."] + [f"SF {c}" for c in corpora] + ["SF Avg."]
    rows = []
    for m in methods:
        row = [_label(m)]
        for c in corpora:
            row.append(_fmt_stat(_stat(bpc, m, c), 3, star=(m == target and sig.get(c, False))))
        row.append(_fmt_stat(_avg_over_corpora(bpc, m, corpora)[0], 3, star=(m == target and sig.get("Avg.", False))))
        for c in corpora:
            row.append(_fmt_stat(_stat(sf, m, c), 2, "x"))
        row.append(_fmt_stat(_avg_over_corpora(sf, m, corpora)[0], 2, "x"))
        rows.append(row)
    return Table("Table 1: test BPC (lower is better) and shortening factor SF (higher is shorter), mean ± std "
                 "over seeds", headers, rows,
                 note=star_note or f"* = {target}'s BPC differs from the best baseline's with p < 0.05 (Welch "
                                   "two-sample t-test).")


def _source_of(method: str) -> str | None:
    try:
        return resolve_method(method).boundary
    except SpeakError:  # a name from someone else's results
        return None


def _baselines(methods: Sequence[str], target: str) -> list[str]:
    """Every method but the target and the target's own variants (same boundary source)."""
    source = _source_of(target)
    return [m for m in methods if m != target and (source is None or _source_of(m) != source)]


def verdicts(records: Sequence[dict[str, Any]], methods: Sequence[str], corpora: Sequence[str], *,
             target: str = SPEAK, sf_tolerance: float = 0.05) -> list[dict[str, Any]]:
    """Per corpus: does ``target``'s mean BPC reach the best baseline's (lowest mean BPC) at a mean SF no lower
    than that baseline's minus ``sf_tolerance`` (relative)? A BPC win at a much shorter SF is not a win."""
    bpc, sf = group_values(records, "bpc"), group_values(records, "sf")
    rows = []
    for corpus in corpora:
        mine_bpc, mine_sf = _stat(bpc, target, corpus), _stat(sf, target, corpus)
        cands = [(st.mean, b) for b in _baselines(methods, target) if (st := _stat(bpc, b, corpus)).n]
        if not mine_bpc.n or not mine_sf.n or not cands:
            continue
        best_bpc, best = min(cands)
        best_sf = _stat(sf, best, corpus).mean
        bpc_ok = mine_bpc.mean <= best_bpc
        sf_ok = mine_sf.mean >= (1.0 - sf_tolerance) * best_sf
        rows.append({"corpus": corpus, "baseline": best, "bpc": mine_bpc.mean, "baseline_bpc": best_bpc,
                     "sf": mine_sf.mean, "baseline_sf": best_sf, "bpc_ok": bpc_ok, "sf_ok": sf_ok,
                     "win": bool(bpc_ok and sf_ok)})
    return rows


def verdict_table(rows: Sequence[dict[str, Any]], sf_tolerance: float = 0.05) -> Table:
    headers = ["Corpus", "Best baseline", "SPEAK BPC", "Baseline BPC", "SPEAK SF", "Baseline SF", "BPC <=",
               f"SF >= {1 - sf_tolerance:g} x", "Verdict"]
    body = [[r["corpus"], _label(r["baseline"]), _fmt_num(r["bpc"], 3), _fmt_num(r["baseline_bpc"], 3),
             _fmt_num(r["sf"], 2), _fmt_num(r["baseline_sf"], 2), "yes" if r["bpc_ok"] else "no",
             "yes" if r["sf_ok"] else "no", "win" if r["win"] else "loss"] for r in rows]
    wins = sum(r["win"] for r in rows)
    return Table("SPEAK vs the best baseline at a comparable shortening factor", headers, body,
                 note=f"{wins} of {len(rows)} corpora: SPEAK's mean BPC at most the best baseline's, at a mean SF "
                      f"no lower than the baseline's minus {100 * sf_tolerance:g}%.")


def significance_table(rows: Sequence[dict[str, Any]]) -> Table:
    headers = ["Corpus", "Target", "Best baseline", "Target BPC", "Baseline BPC", "Δ %", "n", "t", "p",
               "p paired"]
    body = [[r["corpus"], _label(r["target"]), _label(r["baseline"]), _fmt_num(r["target_mean"], 4),
             _fmt_num(r["baseline_mean"], 4), _fmt_num(r["delta_pct"], 2), f"{r['n_target']}/{r['n_baseline']}",
             _fmt_num(r["t"], 3), _fmt_p(r["p"]), _fmt_p(r.get("p_paired", math.nan))] for r in rows]
    return Table("Significance: SPEAK vs the best baseline per corpus (Welch t-test on BPC over seeds)", headers, body,
                 note="p paired: paired t-test over the seeds both have (runs of one seed train on the same "
                      "windows in the same order).")


def ablation_tests(records: Sequence[dict[str, Any]], variants: Sequence[str], corpora: Sequence[str], *,
                   reference: str = SPEAK) -> list[dict[str, Any]]:
    """Welch t-tests of each variant against ``reference`` on BPC and SF, per corpus."""
    out = []
    for metric in ("bpc", "sf"):
        groups = group_values(records, metric)
        for v in variants:
            if v == reference:
                continue
            for c in corpora:
                a, b = _stat(groups, v, c), _stat(groups, reference, c)
                if not a.n or not b.n:
                    continue
                t, p = welch_ttest(a.values, b.values)
                out.append({"variant": v, "reference": reference, "corpus": c, "metric": metric, "mean": a.mean,
                            "reference_mean": b.mean, "n": a.n, "n_reference": b.n, "t": t, "p": p,
                            "significant": bool(_finite(p) and p < ALPHA)})
    return out


def ablation_table(records: Sequence[dict[str, Any]], variants: Sequence[str], corpora: Sequence[str], *,
                   reference: str = SPEAK, title: str = "Ablations", reset_columns: bool = True) -> Table:
    """Tables 3 / 5: per variant and corpus, BPC and SF (mean ± std) with the Welch p value against ``reference``."""
    tests = {(r["variant"], r["corpus"], r["metric"]): r for r in ablation_tests(records, variants, corpora,
                                                                                 reference=reference)}
    bpc = group_values(records, "bpc")
    sf = group_values(records, "sf")
    headers = ["Variant"] + (["High-entropy", "Low-entropy", "θ"] if reset_columns else [])
    for c in corpora:
        headers += [f"BPC {c}", "p", f"SF {c}", "p"]
    rows = []
    for v in variants:
        try:
            cols = resolve_method(v).columns
        except Exception:
            cols = {}
        row = [_label(v)] + ([cols.get("high", ""), cols.get("low", ""), cols.get("theta", "")] if reset_columns
                             else [])
        for c in corpora:
            tb, ts = tests.get((v, c, "bpc")), tests.get((v, c, "sf"))
            row += [_fmt_stat(_stat(bpc, v, c), 3), "–" if v == reference else _fmt_p(tb["p"] if tb else math.nan),
                    _fmt_stat(_stat(sf, v, c), 2, "x"), "–" if v == reference else _fmt_p(ts["p"] if ts else math.nan)]
        rows.append(row)
    return Table(title, headers, rows,
                 note=f"p: Welch two-sample t-test against the full model ({_label(reference)}); * = p < 0.05.")


def efficiency_table(records: Sequence[dict[str, Any]], corpora: Sequence[str],
                     methods: Sequence[str] = EFFICIENCY_METHODS, *, reference: str = EFFICIENCY_METHODS[0]) -> tuple[Table, list]:
    """Table 4: tokenization and inference ms per batch (with speedup vs ``reference``), LM and tokenizer
    parameters and the tokenizer's share, per corpus and averaged over corpora ("Avg.")."""
    keys = ("tokenize_ms_per_batch", "infer_ms_per_batch", "lm_params", "tokenizer_params")
    groups = {k: group_values(records, k) for k in keys}
    headers = ["Corpus", "Model", "Tokenization (ms/batch)", "Speedup", "Inference (ms/batch)", "Speedup",
               "LM params", "TK params", "Ratio"]
    rows: list[list[str]] = []
    data: list[dict[str, Any]] = []
    for corpus in list(corpora) + (["Avg."] if len(corpora) > 1 else []):
        def mean_of(key: str, method: str) -> float:
            if corpus == "Avg.":
                vals = [_stat(groups[key], method, c).mean for c in corpora]
                vals = [v for v in vals if _finite(v)]
                return float(np.mean(vals)) if vals else math.nan
            return _stat(groups[key], method, corpus).mean

        ref_tok, ref_inf = mean_of("tokenize_ms_per_batch", reference), mean_of("infer_ms_per_batch", reference)
        for m in methods:
            tok, inf = mean_of("tokenize_ms_per_batch", m), mean_of("infer_ms_per_batch", m)
            lm, tk = mean_of("lm_params", m), mean_of("tokenizer_params", m)
            if not any(_finite(v) for v in (tok, inf, lm, tk)):
                continue
            ratio = tk / (lm + tk) if _finite(lm) and _finite(tk) and (lm + tk) > 0 else math.nan
            sp_tok = (ref_tok - tok) / ref_tok if m != reference and _finite(ref_tok) and ref_tok > 0 else math.nan
            sp_inf = (ref_inf - inf) / ref_inf if m != reference and _finite(ref_inf) and ref_inf > 0 else math.nan
            data.append({"corpus": corpus, "method": m, "tokenize_ms_per_batch": tok, "infer_ms_per_batch": inf,
                         "tokenize_speedup": sp_tok, "infer_speedup": sp_inf, "lm_params": lm,
                         "tokenizer_params": tk, "tokenizer_ratio": ratio})
            rows.append([corpus, _label(m), _fmt_num(tok, 2), "–" if m == reference else _pct(sp_tok),
                         _fmt_num(inf, 2), "–" if m == reference else _pct(sp_inf), _params(lm), _params(tk),
                         _pct(ratio, signed=False)])
    return Table("Table 4: tokenization time, LM inference time and parameters", headers, rows,
                 note=f"Speedup = relative time reduction vs {_label(reference)}; Ratio = TK / (LM + TK). "
                      "Median ms per batch, mean over seeds."), data


def _pct(v: float, signed: bool = True) -> str:
    if not _finite(v):
        return "-"
    return f"{100 * v:+.1f}%" if signed else f"{100 * v:.1f}%"


def _params(v: float) -> str:
    if not _finite(v):
        return "-"
    v = float(v)
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}K"
    return f"{v:.0f}"


# ---------------------------------------------------------------------------------------------- rendering
def render_markdown(title: str, tables: Sequence[Table], plots: Sequence[tuple[str, Path]] = (),
                    notes: Sequence[str] = (), base: Path | None = None) -> str:
    lines = [f"# {title}", ""]
    for n in notes:
        lines += [n, ""]
    for t in tables:
        lines += [f"## {t.title}", "", "| " + " | ".join(t.headers) + " |",
                  "|" + "|".join("---" for _ in t.headers) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in t.rows]
        if t.note:
            lines += ["", t.note]
        lines.append("")
    for caption, path in plots:
        rel = path.relative_to(base) if base is not None and path.is_relative_to(base) else path
        lines += [f"## {caption}", "", f"![{caption}]({rel.as_posix()})", ""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:13px}img{max-width:100%;border:1px solid #eee}"""


def render_html(title: str, tables: Sequence[Table], plots: Sequence[tuple[str, Path]] = (),
                notes: Sequence[str] = ()) -> str:
    """A self-contained HTML page: tables and the PNGs embedded as data URIs."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    for n in notes:
        parts.append(f"<p class='note'>{esc(n)}</p>")
    for t in tables:
        parts.append(f"<h2>{esc(t.title)}</h2><table><thead><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in t.headers]
        parts.append("</tr></thead><tbody>")
        for row in t.rows:
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
        if t.note:
            parts.append(f"<p class='note'>{esc(t.note)}</p>")
    for caption, path in plots:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<h2>{esc(caption)}</h2><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _clean_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return _clean_json(float(obj))
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Strict JSON (NaN/inf -> null), written atomically."""
    from speak.atomic import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(_clean_json(obj), indent=2, allow_nan=False) + "\n")
    return path


# ---------------------------------------------------------------------------------------------- plots from runs
def read_train_log(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a train_log.csv as float arrays (empty cells -> NaN)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cols: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r.items():
            if k is None:
                continue
            try:
                x = float(v) if v not in (None, "") else math.nan
            except ValueError:
                x = math.nan
            cols.setdefault(k, []).append(x)
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


def curve_plots(records: Sequence[dict[str, Any]], plot_dir: Path, corpora: Sequence[str]) -> list[tuple[str, Path]]:
    """Training BPC and SF vs step per method (one panel per corpus; SPEAK's proxy SF too), and the proxy
    rejection rate where logged."""
    logs: dict[str, dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]]] = {"bpc": {}, "sf": {}, "rej": {}}
    for rec in sorted(records, key=lambda r: (str(r.get("method")), int(r.get("seed", 0)))):
        path = rec.get("train_log")
        if not path or not Path(path).is_file():
            continue
        try:
            cols = read_train_log(path)
        except (OSError, csv.Error):
            continue
        step = cols.get("step")
        if step is None or step.size == 0:
            continue
        label = _label(str(rec["method"]))
        c = _cname(rec)
        for key in ("bpc", "sf"):
            if key in cols:
                logs[key].setdefault(c, {}).setdefault(label, []).append((step, cols[key]))
        if "proxy_sf" in cols:  # where the proxy s_hat's own SF went (it starts at the exemplar's)
            logs["sf"].setdefault(c, {}).setdefault(f"{label} proxy", []).append((step, cols["proxy_sf"]))
        if "proxy_reject_rate" in cols:
            ok = np.isfinite(cols["proxy_reject_rate"])
            x = cols.get("proxy_epoch", step)
            logs["rej"].setdefault(c, {}).setdefault(label, []).append((x[ok], cols["proxy_reject_rate"][ok]))
    out: list[tuple[str, Path]] = []
    order = [c for c in corpora if c in logs["bpc"]] + [c for c in logs["bpc"] if c not in corpora]
    if logs["bpc"]:
        out.append(("Training curves: BPC vs step", plot_lines(
            {}, plot_dir / "train_bpc.png", xlabel="step", ylabel="training BPC",
            panels={c: logs["bpc"][c] for c in order})))
    if logs["sf"]:
        out.append(("Shortening factor (SF) trajectory", plot_lines(
            {}, plot_dir / "train_sf.png", xlabel="step", ylabel="training SF (log scale)", logy=True,
            panels={c: logs["sf"][c] for c in order if c in logs["sf"]})))
    if logs["rej"]:
        has_epoch = any("proxy_epoch" in read_train_log(r["train_log"]) for r in records
                        if r.get("train_log") and Path(r["train_log"]).is_file())
        out.append(("Proxy rejection rate (Metropolis-Hastings)", plot_lines(
            {}, plot_dir / "reject_rate.png", xlabel="epoch" if has_epoch else "step", ylabel="rejection rate",
            panels=logs["rej"])))
    return out


def segmentation_from_run(run_dir: str | Path, path: str | Path, *, text: str | None = None,
                          n_chars: int = 120) -> Path | None:
    """Plot a trained SPEAK run's segmentation of ``text`` (default: the start of its test split) with hard/soft
    resets; None when the run is not a SPEAK run or cannot be loaded."""
    import torch

    from speak.lm.boundaries import Targets, get_source
    from speak.train.runs import load_run_model, load_splits, read_run_files

    run_dir = Path(run_dir)
    cfg, _ = read_run_files(run_dir)
    if get_source(cfg.boundary).needs is not Targets.PROXY:  # a spiking tokenizer trained on the proxy
        return None
    cfg, vocab, model, ckpt = load_run_model(run_dir)
    model.eval()
    if text is None:
        text = load_splits(cfg.corpus, cfg.clean).test[: max(n_chars, 1)]
    text = text[: min(len(text), cfg.seq_len)]
    ids = torch.as_tensor(np.asarray(vocab.encode_array(text), dtype=np.int64))[None, :]  # [1, L]
    with torch.no_grad():
        out = model(ids)
    tok = out.boundary.tokenizer
    tcfg = model.boundary_source.net.cfg
    return plot_segmentation(text, tok.u[0].float().numpy(), tok.s[0].float().numpy(),
                             tok.mask[0].numpy() if tok.mask is not None else None,
                             float(tcfg.theta), float(tcfg.u_th), path, u_reset=float(tcfg.u_reset),
                             title=f"SPEAK segmentation ({run_dir.parent.name}, step {ckpt.step})")


# ---------------------------------------------------------------------------------------------- a whole report
def write_report(out_dir: str | Path, title: str, tables: Sequence[Table], records: Sequence[dict[str, Any]],
                 corpora: Sequence[str], *, notes: Sequence[str] = (), segmentation_runs: Sequence[str] = (),
                 plots: bool = True, figures: Sequence[tuple[str, Path]] = ()) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` (+ ``plots/*.png``) in ``out_dir``; returns their paths.
    ``figures``: (caption, PNG) drawn already, shown before the training curves."""
    out_dir = Path(out_dir)
    plot_dir = out_dir / "plots"
    figures = list(figures)
    notes = list(notes)
    if plots:
        figures += curve_plots(records, plot_dir, corpora)
        for run in segmentation_runs:
            try:
                p = segmentation_from_run(run, plot_dir / f"segmentation_{Path(run).parent.name}.png")
            except Exception as err:  # a report must not fail on an example figure
                notes.append(f"(segmentation example of {run} skipped: {err.__class__.__name__}: {err})")
                continue
            if p is not None:
                figures.append(("Example learned segmentation (hard resets: red, soft resets: blue dashed)", p))
    md = render_markdown(title, tables, figures, notes, base=out_dir)
    page = render_html(title, tables, figures, notes)
    from speak.atomic import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", page)
    return {"report_md": out_dir / "report.md", "report_html": out_dir / "report.html",
            **{f"plot_{p.stem}": p for _, p in figures}}
