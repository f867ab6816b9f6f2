"""The BPC-vs-SF frontier (SPEC section 6): each learned method's own SF knob swept over several values gives a
curve per corpus; two methods are compared at a matched SF, each method's BPC interpolated on its own curve.

- A curve: one point per knob value (the method ``M`` and its ``M@VALUE`` runs), at (mean SF, mean BPC) over seeds.
- :func:`interpolate`: BPC at an SF by linear interpolation between the two neighbouring points in SF; outside the
  curve's SF range there is no value (no extrapolation).
- The matched SF of a pair on a corpus: the baseline's default point's SF when both curves reach it, else the
  geometric middle of the SF range both curves cover; none when they do not overlap.
- Uncertainty: a bootstrap over seeds, paired (runs of one seed see the same windows, whatever the method): each
  resample draws seeds with replacement, rebuilds both curves from those seeds and interpolates both at the matched
  SF; the interval is the 2.5 / 97.5 percentiles of the BPC difference. With a handful of seeds a bootstrap p is
  far too small (2 seeds give 3 distinct resamples), so p comes from a paired t-test over seeds instead: per seed,
  both methods' curves from that seed's runs, interpolated at the matched SF, differenced
  (``scipy.stats.ttest_1samp`` of the differences against 0).
- :func:`holm`: Holm's step-down adjustment of the corpora's p values of one comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speak.experiments.report import _finite
from speak.experiments.variants import base_method

__all__ = ["Curve", "MatchedResult", "bootstrap_matched", "curves", "holm", "interpolate", "matched_sf",
           "matched_table_rows", "paired_p"]

BOOTSTRAP = 2000  # resamples
BOOTSTRAP_SEED = 0  # fixed: a report regenerated from the same runs is identical


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p values (same order as given; NaN stays NaN and does not count as a test).

    Sorted ascending p_(1) <= ... <= p_(m): adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(float(p))]
    out = [math.nan] * len(pvalues)
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: float(pvalues[i]))):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def interpolate(sf: Sequence[float], bpc: Sequence[float], at: float) -> float:
    """BPC at SF ``at`` on the curve through (sf, bpc) points, linear between neighbours in SF (points of equal SF
    averaged); NaN outside [min SF, max SF] or with no point."""
    pts: dict[float, list[float]] = {}
    for x, y in zip(sf, bpc):
        if math.isfinite(x) and math.isfinite(y):
            pts.setdefault(float(x), []).append(float(y))
    if not pts or not math.isfinite(at):
        return math.nan
    xs = np.array(sorted(pts))
    ys = np.array([np.mean(pts[x]) for x in xs])
    if at < xs[0] - 1e-12 or at > xs[-1] + 1e-12:
        return math.nan
    return float(np.interp(at, xs, ys))


@dataclass
class Curve:
    """One method's points on one corpus: knob label -> {seed: (sf, bpc)}."""

    method: str
    corpus: str
    points: dict[str, dict[int, tuple[float, float]]]

    def seeds(self) -> set[int]:
        """The seeds every point has."""
        sets = [set(p) for p in self.points.values()]
        return set.intersection(*sets) if sets else set()

    def means(self, seeds: Sequence[int] | None = None) -> tuple[list[float], list[float]]:
        """(SF, BPC) per point, means over ``seeds`` (default: each point's own seeds)."""
        sf, bpc = [], []
        for runs in self.points.values():
            use = list(runs) if seeds is None else list(seeds)
            sf.append(float(np.mean([runs[s][0] for s in use])))
            bpc.append(float(np.mean([runs[s][1] for s in use])))
        return sf, bpc

    def sf_range(self) -> tuple[float, float]:
        sf, _ = self.means()
        return min(sf), max(sf)


def curves(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Curve]:
    """{(base method, corpus name): Curve} from the records with finite test BPC and SF; a point per method name
    (``M`` is the default knob point, ``M@V`` the others)."""
    out: dict[tuple[str, str], Curve] = {}
    for r in records:
        if not (_finite(r.get("bpc")) and _finite(r.get("sf"))):
            continue
        name = str(r["method"])
        base = base_method(name)
        corpus = str(r.get("corpus_name"))
        label = name.partition("@")[2] or "default"
        cur = out.setdefault((base, corpus), Curve(base, corpus, {}))
        cur.points.setdefault(label, {})[int(r.get("seed", 0))] = (float(r["sf"]), float(r["bpc"]))
    return out


def matched_sf(target: Curve, baseline: Curve) -> float:
    """The SF at which two curves are compared (module docstring); NaN when their SF ranges do not overlap."""
    (a_lo, a_hi), (b_lo, b_hi) = target.sf_range(), baseline.sf_range()
    lo, hi = max(a_lo, b_lo), min(a_hi, b_hi)
    if lo > hi:
        return math.nan
    default = baseline.points.get("default")
    if default:
        s = float(np.mean([v[0] for v in default.values()]))
        if lo <= s <= hi:
            return s
    return float(math.sqrt(lo * hi))


@dataclass
class MatchedResult:
    corpus: str
    target: str
    baseline: str
    sf: float
    target_bpc: float
    baseline_bpc: float
    delta: float  # target - baseline (negative: the target is better at this SF)
    ci_low: float  # bootstrap percentile interval of delta
    ci_high: float
    p: float  # paired t-test over the seeds' own differences
    seeds: int  # seeds with a difference (each seed's curves reach the SF)
    resamples: int  # bootstrap resamples where both curves reached the SF
    target_points: int
    baseline_points: int
    p_holm: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def bootstrap_matched(target: Curve, baseline: Curve, *, resamples: int = BOOTSTRAP,
                      seed: int = BOOTSTRAP_SEED) -> MatchedResult:
    """Both curves' BPC at their matched SF, the difference and its paired bootstrap over seeds."""
    s = matched_sf(target, baseline)
    t_bpc = interpolate(*target.means(), s)
    b_bpc = interpolate(*baseline.means(), s)
    seeds = sorted(target.seeds() & baseline.seeds())
    deltas: list[float] = []
    if math.isfinite(s) and len(seeds) >= 2:
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            draw = [seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]
            d = interpolate(*target.means(draw), s) - interpolate(*baseline.means(draw), s)
            if math.isfinite(d):
                deltas.append(d)
    lo, hi = (float(x) for x in np.percentile(deltas, [2.5, 97.5])) if deltas else (math.nan, math.nan)
    per_seed = [interpolate(*target.means([k]), s) - interpolate(*baseline.means([k]), s) for k in seeds]
    per_seed = [d for d in per_seed if math.isfinite(d)]
    return MatchedResult(target.corpus, target.method, baseline.method, s, t_bpc, b_bpc, t_bpc - b_bpc, lo, hi,
                         paired_p(per_seed), len(per_seed), len(deltas), len(target.points), len(baseline.points))


def paired_p(differences: Sequence[float]) -> float:
    """Two-sided p of a one-sample t-test of per-seed differences against 0; NaN with fewer than 2, 0.0 when all
    differences are equal and non-zero, 1.0 when all are 0."""
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return math.nan
    if np.ptp(d) == 0.0:
        return 1.0 if d[0] == 0.0 else 0.0
    from scipy import stats

    return float(stats.ttest_1samp(d, 0.0).pvalue)


def matched_table_rows(all_curves: Mapping[tuple[str, str], Curve], pairs: Sequence[tuple[str, str]],
                       corpora: Sequence[str], *, min_points: int = 2) -> list[MatchedResult]:
    """A :class:`MatchedResult` per (target, baseline) pair and corpus where both have a curve of at least
    ``min_points`` points; p values Holm-adjusted over the corpora of each pair."""
    out: list[MatchedResult] = []
    for target, baseline in pairs:
        rows = []
        for corpus in corpora:
            t, b = all_curves.get((target, corpus)), all_curves.get((baseline, corpus))
            if t is None or b is None or len(t.points) < min_points or len(b.points) < min_points:
                continue
            rows.append(bootstrap_matched(t, b))
        for r, adj in zip(rows, holm([r.p for r in rows])):
            r.p_holm = adj
        out += rows
    return out
