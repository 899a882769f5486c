"""The paper's figures as PNG (matplotlib, Agg backend), drawn from the frames of :mod:`.ablations` and
:func:`.tables.group_table`; error bars are the 95% bootstrap intervals."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from medfuse_bench.io import atomic_path  # noqa: E402
from medfuse_bench.report.experiments import TASK_TITLES, display_name  # noqa: E402

TASK_COLORS = {"in-hospital-mortality": "tab:red", "phenotyping": "tab:blue"}
METRIC_TITLES = {"auroc": "AUROC", "auprc": "AUPRC"}

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9})


def _save(fig: plt.Figure, path: str | os.PathLike[str], bottom: float = 0.0, right: float = 1.0,
          top: float = 1.0) -> None:
    fig.tight_layout(rect=(0, bottom, right, top))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def _errors(frame: pl.DataFrame, metric: str) -> np.ndarray:
    value = frame[metric].to_numpy().astype(float)
    low = frame[f"{metric}_ci_low"].fill_null(np.nan).to_numpy().astype(float)
    high = frame[f"{metric}_ci_high"].fill_null(np.nan).to_numpy().astype(float)
    return np.nan_to_num(np.vstack([value - low, high - value]), nan=0.0)


CHANCE_AUROC = 0.5


def _chance_line(ax: plt.Axes) -> None:
    """The AUROC of a model that guesses, drawn behind the data and labelled at its left end."""
    ax.axhline(CHANCE_AUROC, color="0.35", linestyle=":", linewidth=1.2, zorder=0)
    ax.annotate("chance", xy=(0.0, CHANCE_AUROC), xycoords=ax.get_yaxis_transform(), xytext=(3, 2),
                textcoords="offset points", fontsize=8, color="0.35", va="bottom")


def _include_chance(ax: plt.Axes) -> None:
    low, high = ax.get_ylim()
    if low > CHANCE_AUROC - 0.02:
        ax.set_ylim(CHANCE_AUROC - 0.02, max(high, CHANCE_AUROC + 0.02))


def spread_labels(values: list[float], gap: float, low: float, high: float) -> list[float]:
    """Label positions near ``values`` at least ``gap`` apart and inside [low, high] where they fit, in the
    order of the values (for labels at the ends of lines).

    >>> spread_labels([0.50, 0.51, 0.90], gap=0.05, low=0.0, high=1.0)
    [0.5, 0.55, 0.9]
    >>> spread_labels([0.99, 0.98], gap=0.05, low=0.0, high=1.0)
    [1.0, 0.95]
    """
    order = np.argsort(values, kind="stable")
    y = np.asarray(values, dtype=float)[order]
    for i in range(1, len(y)):
        y[i] = max(y[i], y[i - 1] + gap)
    if len(y) and y[-1] > high:
        y[-1] = high
        for i in range(len(y) - 2, -1, -1):
            y[i] = min(y[i], y[i + 1] - gap)
    out = np.empty_like(y)
    out[order] = y
    return [round(float(v), 10) for v in out]


def _label_line_ends(ax: plt.Axes, ends: list[tuple[float, float, str, str]]) -> None:
    """Write each line's name beside its last point, right of the axes, linked to it by a thin line."""
    low, high = ax.get_ylim()
    height_in = ax.get_window_extent().height / ax.figure.dpi
    gap = (high - low) * (11.5 / 72) / max(height_in, 0.5)  # one line of 8 pt text and some air, in data units
    positions = spread_labels([y for _, y, _, _ in ends], gap, low, high)
    for (x, y, name, color), label_y in zip(ends, positions, strict=True):
        text = ax.annotate(name, xy=(x, y), xytext=(1.03, label_y), textcoords=ax.get_yaxis_transform(),
                           fontsize=8, color=color, va="center", annotation_clip=False,
                           arrowprops={"arrowstyle": "-", "color": color, "linewidth": 0.6, "alpha": 0.7,
                                       "shrinkA": 0, "shrinkB": 2})
        text.set_in_layout(False)


def plot_sweep(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Figure A1: validation AUROC against the percentage of uni-modal training samples, one line per task; the
    points of column ``chosen`` (MedFuse (OPTIMAL), see report.optimal.mark_chosen) are circled."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for task in frame["task"].unique(maintain_order=True):
        sub = frame.filter(pl.col("task") == task).sort("percent")
        color = TASK_COLORS.get(task)
        ax.plot(sub["percent"], sub["val_auroc"], marker="o", color=color, label=TASK_TITLES.get(task, task))
        chosen = sub.filter(pl.col("chosen")) if "chosen" in sub.columns else sub.clear()
        ax.scatter(chosen["percent"], chosen["val_auroc"], s=160, facecolors="none", edgecolors=color, linewidths=2)
    ax.set_xlabel("Uni-modal (EHR-only) training samples used (%)")
    ax.set_ylabel("Validation AUROC")
    ax.set_title("Figure A1: validation AUROC vs uni-modal training samples")
    ax.grid(alpha=0.3)
    _include_chance(ax)
    _chance_line(ax)
    ax.legend(title="circle = MedFuse (OPTIMAL)")
    _save(fig, path)


def plot_curves(frame: pl.DataFrame, path: str | os.PathLike[str], xlabel: str, title: str) -> None:
    """Figures A2 / A3: test AUROC against a percentage, one panel per task and one line per model, its 95% CI
    as a band; each line is named at its end (no legend to match colours against) and chance is marked."""
    tasks = frame["task"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(len(tasks), 1, figsize=(9.5, 4.4 * len(tasks)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        sub = frame.filter(pl.col("task") == task)
        ends = []
        for k, experiment in enumerate(sub["experiment"].unique(maintain_order=True).to_list()):
            line = sub.filter(pl.col("experiment") == experiment).sort("fraction")
            x = line["fraction"].to_numpy() * 100
            y = line["auroc"].fill_null(np.nan).to_numpy().astype(float)
            color = colors[k % len(colors)]
            style = "--" if experiment.endswith("-zeros") else "-"
            ax.plot(x, y, marker="o", markersize=3, linestyle=style, color=color, linewidth=1.5)
            low = line["auroc_ci_low"].fill_null(np.nan).to_numpy().astype(float)
            high = line["auroc_ci_high"].fill_null(np.nan).to_numpy().astype(float)
            ax.fill_between(x, low, high, color=color, alpha=0.08, linewidth=0)
            finite = np.flatnonzero(np.isfinite(y))
            if finite.size:
                ends.append((float(x[finite[-1]]), float(y[finite[-1]]), display_name(experiment), color))
        ax.set_title(TASK_TITLES.get(task, task))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Test AUROC (band: 95% CI)")
        ax.grid(alpha=0.3)
        _include_chance(ax)
        _chance_line(ax)
        fig.tight_layout(rect=(0, 0, 0.72, 0.97))  # final axes size before the labels are spread
        _label_line_ends(ax, ends)
    fig.suptitle(title)
    _save(fig, path, right=0.72, top=0.97)


def plot_groups(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Figure 4: macro AUROC and AUPRC per phenotype group (acute, mixed, chronic), one bar per model, its value
    written above its interval; the legend sits below the panels and the AUROC panel marks chance."""
    groups = ["acute", "mixed", "chronic"]
    experiments = frame["experiment"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    width = 0.8 / max(len(experiments), 1)
    for ax, metric in zip(axes, ("auroc", "auprc"), strict=True):
        for k, experiment in enumerate(experiments):
            sub = frame.filter(pl.col("experiment") == experiment)
            sub = pl.DataFrame({"group": groups}).join(sub, on="group", how="left", maintain_order="left")
            x = np.arange(len(groups)) + (k - (len(experiments) - 1) / 2) * width
            values = sub[metric].fill_null(np.nan).to_numpy().astype(float)
            errors = _errors(sub, metric)
            ax.bar(x, np.nan_to_num(values), width, yerr=errors, capsize=3, label=display_name(experiment))
            for xi, value, above in zip(x, values, errors[1], strict=True):
                if not np.isnan(value):
                    ax.text(xi, value + above + 0.015, f"{value:.3f}", rotation=90, ha="center", va="bottom",
                            fontsize=7)
        ax.set_xticks(np.arange(len(groups)), [g.capitalize() for g in groups])
        ax.set_ylabel(f"Macro {METRIC_TITLES[metric]} (95% CI)")
        ax.set_title(f"{METRIC_TITLES[metric]} by phenotype group")
        ax.set_ylim(0, 1.15)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.grid(axis="y", alpha=0.3)
    axes[0].axhline(CHANCE_AUROC, color="0.35", linestyle=":", linewidth=1.2, zorder=0.5,
                    label=f"chance (AUROC {CHANCE_AUROC})")
    # one legend below the panels, so it never covers a bar
    handles, names = axes[0].get_legend_handles_labels()
    ncol = min(4, max(len(names), 1))
    legend_rows = -(-len(names) // ncol)
    height = 4.6 + 0.28 * legend_rows
    fig.set_figheight(height)
    fig.legend(handles, names, loc="lower center", ncol=ncol, frameon=False)
    fig.suptitle("Figure 4: phenotyping on the (EHR + CXR)_PAIRED test set")
    _save(fig, path, bottom=(0.28 * legend_rows + 0.1) / height)


def plot_reliability(frame: pl.DataFrame, path: str | os.PathLike[str], title: str) -> None:
    """Reliability diagrams, one panel per model: observed rate against mean predicted probability per equal-mass
    bin; the macro over labels (column ``label`` = ``macro``) in colour, each label in thin grey, the diagonal of
    perfect calibration dotted."""
    experiments = frame["experiment"].unique(maintain_order=True).to_list()
    ncol = min(4, max(len(experiments), 1))
    nrow = -(-len(experiments) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 3.3 * nrow + 0.4), squeeze=False)
    for ax, experiment in zip(axes.ravel(), experiments, strict=False):
        sub = frame.filter(pl.col("experiment") == experiment)
        ax.plot([0, 1], [0, 1], color="0.35", linestyle=":", linewidth=1.0)
        for label in sub.filter(pl.col("label") != "macro")["label"].unique(maintain_order=True).to_list():
            line = sub.filter(pl.col("label") == label).sort("bin")
            ax.plot(line["mean_predicted"], line["observed"], color="0.6", linewidth=0.6, alpha=0.6)
        macro = sub.filter(pl.col("label") == "macro").sort("bin")
        ax.plot(macro["mean_predicted"], macro["observed"], marker="o", markersize=3, color="tab:blue", linewidth=1.6)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(display_name(experiment), fontsize=10)
        ax.set_xlabel("Mean predicted probability")
        ax.set_ylabel("Observed rate")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(experiments):]:
        ax.set_visible(False)
    fig.suptitle(title)
    _save(fig, path, top=0.95)
