"""Who is compared with whom in ``speak experiment compare`` (SPEC section 6): the targets, their controls and the
tables of the report (the one-point table, significance with Holm's correction, the verdict, the matched-SF
comparison on the frontier, the validation-selection record, the controls).

- A target is the paper's SPEAK (when in the grid), each method chosen on validation and ``--target``.
- A target's baselines are the grid's methods of other shortening sources at their default knob value that get
  exactly the target's training-only signals (:func:`speak.experiments.variants.training_signals`), selection
  candidates excluded. A target with a signal and no such baseline is "not controlled": it stays in the one-point
  table, marked, and is left out of the tests and the verdict.
- ``vanilla`` (no shortening, SF 1) is never the "best baseline": the comparison is between tokenizers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speak.experiments import frontier as F
from speak.experiments import report as R
from speak.experiments.selection import Choice
from speak.experiments.variants import base_method, resolve_method, training_signals

__all__ = ["Target", "controls_table", "frontier_points_table", "matched_table", "plan_targets",
           "reported_methods", "selection_table", "significance_rows", "significance_table", "verdict_table"]

_NO_SHORTENING = ("none",)


@dataclass
class Target:
    method: str
    signals: tuple[str, ...]
    baselines: list[str] = field(default_factory=list)
    why: str = ""  # how it became a target

    @property
    def controlled(self) -> bool:
        return bool(self.baselines)


def plan_targets(methods: Sequence[str], targets: Sequence[tuple[str, str]], candidates: set[str]) -> list[Target]:
    """A :class:`Target` per (method, why) with its baselines among ``methods`` (module docstring)."""
    out = []
    for method, why in targets:
        spec = resolve_method(method)
        signals = training_signals(spec)
        baselines = []
        for m in methods:
            if "@" in m or m in candidates or m == method:
                continue
            other = resolve_method(m)
            if other.boundary in (spec.boundary, *_NO_SHORTENING):
                continue
            if training_signals(other) == signals:
                baselines.append(m)
        out.append(Target(method, signals, baselines, why))
    return out


def significance_rows(records: Sequence[dict[str, Any]], target: Target,
                      corpora: Sequence[str]) -> list[dict[str, Any]]:
    """The target against its best baseline per corpus (Welch and paired t-tests), with Holm-adjusted p values over
    the corpora ("Avg." is not one of the tests corrected)."""
    rows = R.significance_vs_best_baseline(records, [target.method, *target.baselines], corpora,
                                           target=target.method)
    per = [r for r in rows if r["corpus"] != "Avg."]
    for key in ("p", "p_paired"):
        for r, adj in zip(per, F.holm([r[key] for r in per])):
            r[f"{key}_holm"] = adj
    return rows


def significance_table(rows: Sequence[dict[str, Any]]) -> R.Table:
    headers = ["Corpus", "Target", "Best baseline", "Target BPC", "Baseline BPC", "Δ %", "n", "p Welch",
               "p Welch (Holm)", "p paired", "p paired (Holm)"]
    body = [[r["corpus"], R._label(r["target"]), R._label(r["baseline"]), R._fmt_num(r["target_mean"], 4),
             R._fmt_num(r["baseline_mean"], 4), R._fmt_num(r["delta_pct"], 2), f"{r['n_target']}/{r['n_baseline']}",
             R._fmt_p(r["p"]), R._fmt_p(r.get("p_holm", math.nan)), R._fmt_p(r.get("p_paired", math.nan)),
             R._fmt_p(r.get("p_paired_holm", math.nan))] for r in rows]
    return R.Table("One point per method: each target vs its best controlled baseline (test BPC)", headers, body,
                   note="Best baseline: the lowest mean test BPC among the target's baselines (same training "
                        "signals, another shortening source). Welch: two-sample t-test over seeds; paired: over the "
                        "seeds both have (one seed = the same training windows). Holm: adjusted over the corpora "
                        "of each target (Avg. is not corrected). * = p < 0.05.")


def selection_table(choices: Sequence[Choice]) -> R.Table:
    rows = []
    for ch in choices:
        for c in ch.candidates:
            score = ch.scores.get(c, math.nan)
            rows.append([ch.group, R._label(c) + f" ({c})", R._fmt_num(score, 4), str(ch.runs.get(c, 0)),
                         "chosen" if c == ch.chosen else ch.excluded.get(c, "")])
    rules = "; ".join(f"{ch.group}: {ch.rule}" for ch in choices)
    return R.Table("Validation selection (what was chosen, from which candidates, on what)",
                   ["Selection", "Candidate", "Validation BPC", "Runs", "Outcome"], rows,
                   note=f"The chooser sees each run's identity and validation metrics only; test BPC is read for "
                        f"the chosen candidate alone (the others' test numbers are withheld from this report and "
                        f"results.json). {rules}")


def controls_table(targets: Sequence[Target]) -> R.Table:
    rows = []
    for t in targets:
        sig = ", ".join(t.signals) or "none"
        if t.controlled:
            status = "controlled" if t.signals else "no extra signal"
        else:
            status = "NOT CONTROLLED: no baseline with the same signal in the grid; left out of the verdict"
        rows.append([R._label(t.method) + f" ({t.method})", t.why, sig,
                     ", ".join(t.baselines) or "-", status])
    return R.Table("Targets and their controls", ["Target", "Why", "Training-only signals", "Compared with",
                                                   "Status"], rows,
                   note="A training-only signal (the encoder-BCE head and its targets) is a harness option of every "
                        "learned source (NAME+SIGNAL); a target is compared only with baselines that get the same "
                        "signals. Vanilla (SF 1) is listed in Table 1 but is no baseline of the tests.")


def frontier_points_table(all_curves: Mapping[tuple[str, str], F.Curve], corpora: Sequence[str]) -> R.Table:
    rows = []
    for corpus in corpora:
        for (method, c), cur in sorted(all_curves.items()):
            if c != corpus or len(cur.points) < 2:
                continue
            for knob, runs in sorted(cur.points.items(), key=lambda kv: np.mean([v[0] for v in kv[1].values()])):
                sf = R.Stat([v[0] for v in runs.values()])
                bpc = R.Stat([v[1] for v in runs.values()])
                rows.append([corpus, R._label(method), knob, str(sf.n), R._fmt_stat(sf, 2, "x"),
                             R._fmt_stat(bpc, 3)])
    return R.Table("Frontier points: each method's SF knob (test SF and BPC, mean ± std over seeds)",
                   ["Corpus", "Method", "Knob value", "Seeds", "SF", "BPC"], rows,
                   note="Knob: exemplar vocabulary (DTP-Unigram, SPEAK), Latin prior (MAGNET), threshold "
                        "(DTP-Entropy, BLT), target ratio (H-Net); 'default' is the method's run without a suffix.")


def matched_table(rows: Sequence[F.MatchedResult]) -> R.Table:
    body = []
    for r in rows:
        ci = "-" if not math.isfinite(r.ci_low) else f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
        body.append([r.corpus, R._label(r.target), R._label(r.baseline),
                     R._fmt_num(r.sf, 2) if math.isfinite(r.sf) else "no overlap",
                     R._fmt_num(r.target_bpc, 3), R._fmt_num(r.baseline_bpc, 3),
                     "-" if not math.isfinite(r.delta) else f"{r.delta:+.3f}", ci, R._fmt_p(r.p),
                     R._fmt_p(r.p_holm), f"{r.seeds}", f"{r.target_points}/{r.baseline_points}", str(r.resamples)])
    return R.Table("Headline: BPC at matched SF, each method interpolated on its own BPC-vs-SF curve",
                   ["Corpus", "Target", "Baseline", "Matched SF", "Target BPC", "Baseline BPC", "Δ BPC",
                    "95% CI", "p", "p (Holm)", "Seeds", "Points", "Resamples"], body,
                   note="Matched SF: the baseline's default point's SF when both curves reach it, else the geometric "
                        "middle of the SF range both cover (no overlap: no comparison). Δ < 0: the target is better "
                        f"at that SF. 95% CI: paired bootstrap over seeds ({F.BOOTSTRAP} resamples, fixed RNG; "
                        "with 3 seeds a resample is one of only 10 seed multisets, so it is coarse). p: paired "
                        "t-test over the seeds of the per-seed differences (each seed's own curves at the matched "
                        "SF); Holm over the corpora of each pair. Seeds: those whose curves reach the SF. "
                        "Resamples: bootstrap resamples where both curves reach it.")


def verdict_table(rows: Sequence[dict[str, Any]], sf_tolerance: float = 0.05) -> R.Table:
    """The one-point verdict rows (:func:`speak.experiments.report.verdicts`, with ``target``) of every target."""
    headers = ["Corpus", "Target", "Best baseline", "Target BPC", "Baseline BPC", "Target SF", "Baseline SF",
               "BPC <=", f"SF >= {1 - sf_tolerance:g} x", "Verdict"]
    body = [[r["corpus"], R._label(r["target"]), R._label(r["baseline"]), R._fmt_num(r["bpc"], 3),
             R._fmt_num(r["baseline_bpc"], 3), R._fmt_num(r["sf"], 2), R._fmt_num(r["baseline_sf"], 2),
             "yes" if r["bpc_ok"] else "no", "yes" if r["sf_ok"] else "no", "win" if r["win"] else "loss"]
            for r in rows]
    counts = {}
    for r in rows:
        won, n = counts.get(r["target"], (0, 0))
        counts[r["target"]] = (won + bool(r["win"]), n + 1)
    tally = "; ".join(f"{R._label(t)}: {w} of {n} corpora" for t, (w, n) in counts.items())
    return R.Table("One-point verdict: each controlled target vs its best baseline at a comparable SF", headers,
                   body, note=f"{tally}. Win: the target's mean test BPC at most the best baseline's, at a mean SF no "
                              f"lower than the baseline's minus {100 * sf_tolerance:g}%. One point per method cannot "
                              "tell a better trade-off from a different operating point; the matched-SF table can.")


def reported_methods(methods: Sequence[str], choices: Sequence[Choice]) -> tuple[list[str], set[str]]:
    """(the methods whose test numbers are reported, the withheld ones): a selection's candidates that were not
    chosen, and their knob points, are withheld."""
    withheld = {c for ch in choices for c in ch.candidates if c != ch.chosen}
    shown = [m for m in methods if base_method(m) not in withheld and m not in withheld]
    return shown, {m for m in methods if m not in shown}
