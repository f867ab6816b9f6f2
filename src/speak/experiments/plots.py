"""Plots for the experiment reports (matplotlib, Agg backend; every function writes one PNG and returns its path).

- :func:`plot_segmentation`: a learned segmentation like the paper's Fig. 1/2: the membrane potential u over the
  characters, the threshold, the spikes (token ends) and which spikes hard-reset (contextual boundary, m = 1) or
  soft-reset (m = 0, by theta * u_th). Standalone: numpy arrays in, a PNG out (also used by ``speak tokenize --plot``).
- :func:`plot_lines`: one line per label (training curves, SF trajectories, rejection rates).
- :func:`plot_frontier`: BPC against SF per corpus, one curve per method over its SF knob's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_frontier", "plot_lines", "plot_segmentation"]

HARD_COLOR = "#c0392b"
SOFT_COLOR = "#2874a6"
U_COLOR = "#333333"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _visible(ch: str) -> str:
    if ch == " ":
        return "␣"
    if ch == "\n":
        return "↵"
    if ch == "\t":
        return "⇥"
    return ch


def plot_segmentation(
    text: str,
    u: Any,
    s: Any,
    mask: Any,
    theta: float,
    u_th: float,
    path: str | Path,
    *,
    title: str | None = None,
    u_reset: float = 0.0,
    max_chars: int = 160,
    dpi: int = 120,
) -> Path:
    """Draw u_t over the characters of ``text`` with the threshold line, the spikes and hard vs soft resets.

    ``u``, ``s``, ``mask``: 1-D arrays of ``len(text)`` (pre-reset potential, spikes in {0, 1}, contextual-boundary
    mask; ``mask`` may be None = no hard resets). A spike with ``mask = 1`` is a hard reset (to ``u_reset``), without
    it a soft reset by ``theta * u_th``. Tokens (Eq. 5: a spike closes its token) are shaded alternately. At most
    ``max_chars`` characters are drawn. Returns the PNG path.
    """
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    s = np.asarray(s, dtype=np.float64).reshape(-1) > 0.5
    m = np.zeros_like(s) if mask is None else np.asarray(mask).reshape(-1).astype(bool)
    n = min(len(text), u.size, s.size, m.size, int(max_chars))
    if n <= 0:
        raise ValueError("plot_segmentation needs at least one character")
    text, u, s, m = text[:n], u[:n], s[:n], m[:n]
    plt = _pyplot()
    width = min(40.0, max(6.0, 0.16 * n + 1.5))
    fig, ax = plt.subplots(figsize=(width, 4.0))
    x = np.arange(n)
    # token shading: a token runs from after the previous spike to its own spike (the text's end closes the last)
    start = 0
    k = 0
    for t in range(n):
        if s[t] or t == n - 1:
            if k % 2 == 0:
                ax.axvspan(start - 0.5, t + 0.5, color="#f2f2f2", zorder=0, lw=0)
            start, k = t + 1, k + 1
    ax.plot(x, u, color=U_COLOR, lw=1.2, marker="o", ms=2.5, zorder=3, label="membrane potential $u_t$")
    ax.axhline(u_th, color="#888888", ls="--", lw=1.0, zorder=2, label=f"threshold $u_{{th}}$ = {u_th:g}")
    if theta > 0 and (s & ~m).any():
        ax.axhline(u_th - theta * u_th, color=SOFT_COLOR, ls=":", lw=0.8, zorder=2, alpha=0.7,
                   label=fr"$u_{{th}} - \theta u_{{th}}$: soft reset from threshold ($\theta$ = {theta:g})")
    hard = s & m
    soft = s & ~m
    for t in np.flatnonzero(hard):
        ax.axvline(t + 0.5, color=HARD_COLOR, lw=1.6, zorder=1)
    for t in np.flatnonzero(soft):
        ax.axvline(t + 0.5, color=SOFT_COLOR, lw=1.0, ls="--", zorder=1)
    if hard.any():
        ax.scatter(x[hard], u[hard], color=HARD_COLOR, s=30, zorder=4, label="spike, hard reset (c. boundary)")
    if soft.any():
        ax.scatter(x[soft], u[soft], color=SOFT_COLOR, s=30, zorder=4, marker="s", label="spike, soft reset")
    ax.set_xticks(x)
    ax.set_xticklabels([_visible(c) for c in text], fontsize=8, family="monospace")
    ax.set_xlim(-0.7, n - 0.3)
    lo = min(float(np.nanmin(u)), u_reset) if np.isfinite(u).any() else u_reset
    hi = max(float(np.nanmax(u)), u_th) if np.isfinite(u).any() else u_th
    pad = 0.1 * (hi - lo + 1e-6)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel("$u_t$")
    n_tok = int(s[: n - 1].sum()) + 1
    fig.suptitle(title or f"{n} characters, {n_tok} tokens (SF {n / n_tok:.2f}); "
                          f"{int(hard.sum())} hard, {int(soft.sum())} soft resets", fontsize=10)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncol=5, frameon=False)
    return _save(plt, fig, path, dpi)


def _panels(plt, panels: Mapping[str, Mapping[str, Any]], *, width: float, height: float, max_width: float):
    """(figure, one axis per panel in a row, a colour per series label shared by every panel)."""
    k = max(1, len(panels))
    fig, axes = plt.subplots(1, k, figsize=(min(width * k, max_width), height), squeeze=False)
    labels = sorted({lab for series in panels.values() for lab in series})
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return fig, axes[0], {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _save(plt, fig, path: str | Path, dpi: int) -> Path:
    """Lay out, write the PNG atomically (creating its folder) and free the figure."""
    from speak.atomic import atomic_write

    fig.tight_layout()
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png"))
    finally:
        plt.close(fig)
    return path


def plot_lines(
    series: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    panels: Mapping[str, Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]]] | None = None,
    dpi: int = 110,
    logy: bool = False,
) -> Path:
    """Lines per label: ``series[label] = [(x, y), ...]`` (one pair per run, e.g. per seed; same colour per label).

    With ``panels`` ({panel title: series}) one subplot per panel is drawn instead (e.g. one per corpus).
    ``logy``: a log y axis (an untrained tokenizer's SF of 100+ in the first steps would flatten the rest).
    """
    plt = _pyplot()
    groups = dict(panels) if panels else {title: series}
    fig, axes, colors = _panels(plt, groups, width=6.0, height=3.8, max_width=24.0)
    for ax, (ptitle, ser) in zip(axes, groups.items()):
        for lab in sorted(ser):
            for j, (xs, ys) in enumerate(ser[lab]):
                xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
                if xs.size == 0:
                    continue
                ax.plot(xs, ys, color=colors[lab], lw=1.2, alpha=0.85 if j == 0 else 0.45,
                        marker="o" if xs.size < 30 else None, ms=3, label=lab if j == 0 else None)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        if ptitle:
            ax.set_title(ptitle, fontsize=10)
        ax.grid(alpha=0.3)
        if ser:
            ax.legend(fontsize=7)
    return _save(plt, fig, path, dpi)


def plot_frontier(
    panels: Mapping[str, Mapping[str, Sequence[tuple[str, float, float, float, float]]]],
    path: str | Path,
    *,
    matched: Mapping[str, Sequence[float]] | None = None,
    dpi: int = 110,
) -> Path:
    """BPC against SF (log axis), one subplot per corpus: ``panels[corpus][method] = [(knob label, sf, bpc, sf_std,
    bpc_std)]``
    (means over seeds, one per knob value); a method's points are joined in SF order and labelled with their knob
    value. ``matched[corpus]``: SFs drawn as dotted vertical lines (where the methods were compared)."""
    plt = _pyplot()
    fig, axes, colors = _panels(plt, panels, width=5.5, height=4.2, max_width=27.5)
    for ax, (corpus, ser) in zip(axes, panels.items()):
        for m in sorted(ser):
            pts = sorted(ser[m], key=lambda p: p[1])
            xs = np.array([p[1] for p in pts])
            ys = np.array([p[2] for p in pts])
            xe = np.nan_to_num(np.array([p[3] for p in pts]))
            ye = np.nan_to_num(np.array([p[4] for p in pts]))
            xlo = np.minimum(xe, 0.5 * xs)  # a log axis: the bar's left end stays positive
            ax.errorbar(xs, ys, xerr=np.stack([xlo, xe]), yerr=ye, color=colors[m], marker="o", ms=4, lw=1.2,
                        capsize=2, label=m)
            for p in pts:
                if p[0] != "default":
                    ax.annotate(p[0], (p[1], p[2]), textcoords="offset points", xytext=(3, 3), fontsize=6,
                                color=colors[m])
        for s in (matched or {}).get(corpus, ()):
            ax.axvline(s, color="#888888", ls=":", lw=1.0)
        ax.set_xscale("log")  # SF is a ratio; a collapsed tokenizer's SF of 100+ would flatten the rest
        ax.xaxis.set_major_formatter(_plain_ticks())
        ax.xaxis.set_minor_formatter(_plain_ticks(minor=True))
        ax.set_xlabel("shortening factor SF (test, log scale)")
        ax.set_ylabel("test BPC")
        ax.set_title(corpus, fontsize=10)
        ax.grid(alpha=0.3)
        if ser:
            ax.legend(fontsize=7)
    return _save(plt, fig, path, dpi)


def _plain_ticks(minor: bool = False):
    """Tick labels of a log axis as plain numbers (2, 3, 4 rather than 2 x 10^0); minor ticks labelled sparsely."""
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: int) -> str:
        if minor and round(x / 10 ** np.floor(np.log10(x))) not in (2, 5):
            return ""
        return f"{x:g}"
    return FuncFormatter(fmt)
