"""The report's figures: legends beside the data, never over it; the chance line wherever AUROC is plotted; the
curves of Figures A2 / A3 named at their ends, the names apart."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text

from medfuse_bench.report import figures
from medfuse_bench.report.experiments import display_name

EXPERIMENTS = ["medfuse-optimal", "medfuse-pt", "medfuse-ri", "unified", "early-partial", "early-partial-zeros",
               "joint-partial", "joint-partial-zeros"]


@pytest.fixture
def drawn(monkeypatch) -> list[Figure]:
    """The figures the plot functions save, kept for inspection."""
    kept: list[Figure] = []
    save = figures._save

    def keep(fig, path, **kwargs):
        save(fig, path, **kwargs)
        FigureCanvasAgg(fig).draw()  # pyplot let go of it; a canvas of its own lays it out as saved
        kept.append(fig)

    monkeypatch.setattr(figures, "_save", keep)
    return kept


def _has_chance_line(ax) -> bool:
    return any(np.allclose(line.get_ydata(), 0.5) and len(line.get_ydata()) == 2 for line in ax.get_lines())


def _curves(close_ends: bool) -> pl.DataFrame:
    rows = []
    for k, experiment in enumerate(EXPERIMENTS):
        for fraction in np.linspace(0, 1, 11):
            value = 0.70 + 0.002 * k if close_ends else 0.55 + 0.04 * k
            rows.append({"task": "in-hospital-mortality", "experiment": experiment, "fraction": fraction,
                         "auroc": value, "auroc_ci_low": value - 0.1, "auroc_ci_high": value + 0.1})
    return pl.DataFrame(rows)


def test_figure4_legend_sits_outside_the_panels_and_auroc_shows_chance(drawn, tmp_path):
    rows = [{"group": group, "experiment": experiment, "auroc": 0.6, "auroc_ci_low": 0.5, "auroc_ci_high": 0.7,
             "auprc": 0.3, "auprc_ci_low": 0.2, "auprc_ci_high": 0.4}
            for group in ("acute", "mixed", "chronic") for experiment in EXPERIMENTS]
    figures.plot_groups(pl.DataFrame(rows), tmp_path / "figure4.png")
    (fig,) = drawn
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    legend_box = legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert not legend_box.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"
    auroc_ax, auprc_ax = fig.axes
    assert _has_chance_line(auroc_ax) and not _has_chance_line(auprc_ax)  # AUPRC's chance is the prevalence
    assert "chance (AUROC 0.5)" in [text.get_text() for text in legends[0].get_texts()]


@pytest.mark.parametrize("close_ends", [False, True])
def test_curves_are_named_at_their_ends_without_a_legend(drawn, tmp_path, close_ends):
    figures.plot_curves(_curves(close_ends), tmp_path / "figure_a2.png", "X-rays dropped (%)", "Figure A2")
    (fig,) = drawn
    (ax,) = fig.axes
    assert ax.get_legend() is None and not fig.legends
    assert _has_chance_line(ax)
    labels = [child for child in ax.get_children() if isinstance(child, Annotation) and child.arrow_patch is not None]
    assert sorted(label.get_text() for label in labels) == sorted(display_name(e) for e in EXPERIMENTS)
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(label, renderer) for label in labels]  # the names, without their leader lines
    for i, box in enumerate(boxes):
        assert box.x0 >= ax.get_window_extent(renderer).x1  # right of the panel, over no curve
        assert box.x1 <= fig.bbox.x1 + 1  # inside the image
        for other in boxes[i + 1:]:
            assert not box.overlaps(other), "two curve names overlap"


def test_sweep_shows_chance(drawn, tmp_path):
    frame = pl.DataFrame({"task": ["phenotyping"] * 3, "percent": [10, 20, 30], "val_auroc": [0.7, 0.72, 0.71]})
    figures.plot_sweep(frame, tmp_path / "figure_a1.png")
    (fig,) = drawn
    (ax,) = fig.axes
    assert _has_chance_line(ax) and ax.get_ylim()[0] < 0.5
