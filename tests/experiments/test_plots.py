"""plot_segmentation and line plots write PNGs."""

from __future__ import annotations

import numpy as np
import pytest

from speak.experiments.plots import plot_lines, plot_segmentation

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_segmentation_writes_png(tmp_path):
    text = "the cat sat on the mat"
    n = len(text)
    rng = np.random.default_rng(0)
    u = rng.random(n) * 1.4
    s = (u > 1.0).astype(np.float32)
    mask = rng.random(n) > 0.6
    p = plot_segmentation(text, u, s, mask, 0.8, 1.0, tmp_path / "seg" / "x.png")
    assert p.read_bytes()[:8] == PNG
    # no mask (no hard resets), more characters than max_chars
    p2 = plot_segmentation(text * 20, np.tile(u, 20), np.tile(s, 20), None, 0.8, 1.0, tmp_path / "y.png",
                           max_chars=50, title="t")
    assert p2.read_bytes()[:8] == PNG


def test_plot_segmentation_rejects_empty(tmp_path):
    with pytest.raises(ValueError):
        plot_segmentation("", np.zeros(0), np.zeros(0), None, 0.8, 1.0, tmp_path / "z.png")


def test_plot_lines_panels(tmp_path):
    p = plot_lines({}, tmp_path / "l.png", xlabel="step", ylabel="bpc",
                   panels={"a": {"m1": [([1, 2, 3], [3, 2, 1]), ([1, 2, 3], [3, 2.5, 1.5])]}, "b": {"m2": [([1], [2])]}})
    assert p.read_bytes()[:8] == PNG


def test_plot_lines_log_axis(tmp_path, monkeypatch):
    import matplotlib.axes

    scales = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_yscale", lambda self, v, **kw: scales.append(v))
    plot_lines({"sf": [([1, 2, 3], [300.0, 5.0, 4.0])]}, tmp_path / "l.png", xlabel="step", ylabel="sf", logy=True)
    plot_lines({"sf": [([1, 2], [5.0, 4.0])]}, tmp_path / "m.png", xlabel="step", ylabel="sf")
    assert scales == ["log"]
