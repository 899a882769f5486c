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


def _save(fig: plt.Figure, path: str | os.PathLike[str], bottom: float = 0.0) -> None:
    fig.tight_layout(rect=(0, bottom, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def _errors(frame: pl.DataFrame, metric: str) -> np.ndarray:
    value = frame[metric].to_numpy().astype(float)
    low = frame[f"{metric}_ci_low"].fill_null(np.nan).to_numpy().astype(float)
    high = frame[f"{metric}_ci_high"].fill_null(np.nan).to_numpy().astype(float)
    return np.nan_to_num(np.vstack([value - low, high - value]), nan=0.0)


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
    ax.legend(title="circle = MedFuse (OPTIMAL)")
    _save(fig, path)


def plot_curves(frame: pl.DataFrame, path: str | os.PathLike[str], xlabel: str, title: str) -> None:
    """Figures A2 / A3: test AUROC (95% CI) against a percentage, one panel per task and one line per model."""
    tasks = frame["task"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = frame.filter(pl.col("task") == task)
        experiments = sub["experiment"].unique(maintain_order=True).to_list()
        width = 1.6  # horizontal offset (percentage points) between models, so error bars do not overlap
        for k, experiment in enumerate(experiments):
            line = sub.filter(pl.col("experiment") == experiment).sort("fraction")
            x = line["fraction"].to_numpy() * 100 + (k - (len(experiments) - 1) / 2) * width
            style = "--" if experiment.endswith("-zeros") else "-"
            ax.errorbar(x, line["auroc"].to_numpy(), yerr=_errors(line, "auroc"), marker="o", markersize=4,
                        linestyle=style, capsize=3, label=display_name(experiment))
        ax.set_title(TASK_TITLES.get(task, task))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Test AUROC (95% CI)")
        ax.grid(alpha=0.3)
    # one legend below the panels, so it never hides a curve
    handles, names = axes[0][0].get_legend_handles_labels()
    ncol = min(4, len(names))
    legend_rows = -(-len(names) // ncol)
    fig.set_figheight(4.6 + 0.3 * legend_rows)
    fig.legend(handles, names, loc="lower center", ncol=ncol, frameon=False)
    fig.suptitle(title)
    _save(fig, path, bottom=0.06 * legend_rows)


def plot_groups(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Figure 4: macro AUROC and AUPRC per phenotype group (acute, mixed, chronic), one bar per model."""
    groups = ["acute", "mixed", "chronic"]
    experiments = frame["experiment"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    width = 0.8 / max(len(experiments), 1)
    for ax, metric in zip(axes, ("auroc", "auprc"), strict=True):
        for k, experiment in enumerate(experiments):
            sub = frame.filter(pl.col("experiment") == experiment)
            sub = pl.DataFrame({"group": groups}).join(sub, on="group", how="left", maintain_order="left")
            x = np.arange(len(groups)) + (k - (len(experiments) - 1) / 2) * width
            values = sub[metric].fill_null(np.nan).to_numpy().astype(float)
            bars = ax.bar(x, np.nan_to_num(values), width, yerr=_errors(sub, metric), capsize=4,
                          label=display_name(experiment))
            ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in values], fontsize=8, padding=2)
        ax.set_xticks(np.arange(len(groups)), [g.capitalize() for g in groups])
        ax.set_ylabel(f"Macro {METRIC_TITLES[metric]} (95% CI)")
        ax.set_title(f"{METRIC_TITLES[metric]} by phenotype group")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle("Figure 4: phenotyping on the (EHR + CXR)_PAIRED test set")
    _save(fig, path)
