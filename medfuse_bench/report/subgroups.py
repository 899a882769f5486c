"""Report section: AUROC / AUPRC with 95% bootstrap intervals by subgroup, and each model's worst group and gap.

Subgroups come from ``tasks/{task}/subgroups.parquet`` (:mod:`medfuse_bench.etl.subgroups`): sex, age band
(``evaluation.subgroup_age_bands``), race group, insurance, linked X-ray (yes / no) and the age of the linked X-ray
at prediction time. A subgroup is scored like the whole test set, on its own stays with the report's bootstrap
setting. A label with fewer than ``evaluation.subgroup_min_positives`` positive or negative stays in a subgroup is
"too small" there: no number is shown for it, and for phenotyping it is left out of that subgroup's macro (a
subgroup where every label is too small is "too small"). Worst group: the lowest AUROC among the groups with a number;
largest gap: the widest AUROC spread between two groups of one attribute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from medfuse_bench.evaluation.metrics import METRICS
from medfuse_bench.io import atomic_path
from medfuse_bench.report.experiments import TASK_TITLES, display_name
from medfuse_bench.report.markdown import MISSING, format_estimate, markdown_table

TEST_SETS: tuple[str, ...] = ("partial", "paired")
TOO_SMALL = "too small"
#: Bands of the linked X-ray's age at prediction time (hours), upper edges.
CXR_AGE_BANDS: tuple[float, ...] = (12.0, 24.0, 48.0)
ATTRIBUTES: tuple[str, ...] = ("sex", "age_band", "race_group", "insurance", "cxr_linked", "cxr_age")


def age_band(age: pl.Expr, edges: Sequence[int]) -> pl.Expr:
    """``"40-59"``-style bands from the lower edges; the last band open (``"80+"``), below the first ``"<18"``.

    >>> pl.select(age_band(pl.lit(pl.Series([17.0, 18, 59.5, 60, 95])), [18, 40, 60, 80])).to_series().to_list()
    ['<18', '18-39', '40-59', '60-79', '80+']
    """
    edges = sorted(edges)
    expr = pl.when(age.is_null()).then(pl.lit("unknown")).when(age < edges[0]).then(pl.lit(f"<{edges[0]}"))
    for low, high in zip(edges, edges[1:], strict=False):
        expr = expr.when(age < high).then(pl.lit(f"{low}-{high - 1}"))
    return expr.otherwise(pl.lit(f"{edges[-1]}+"))


def cxr_age_band(hours: pl.Expr, linked: pl.Expr) -> pl.Expr:
    """The linked X-ray's age at prediction time in bands; ``no X-ray`` without one."""
    expr = pl.when(~linked).then(pl.lit("no X-ray")).when(hours.is_null()).then(pl.lit("unknown"))
    low = 0.0
    for high in CXR_AGE_BANDS:
        expr = expr.when(hours <= high).then(pl.lit(f"{low:g}-{high:g} h"))
        low = high
    return expr.otherwise(pl.lit(f"> {CXR_AGE_BANDS[-1]:g} h"))


def group_columns(subgroups: pl.DataFrame, age_edges: Sequence[int]) -> pl.DataFrame:
    """stay_id and one text column per attribute of :data:`ATTRIBUTES`."""
    return subgroups.select(
        "stay_id",
        pl.col("sex").fill_null("unknown"),
        age_band(pl.col("age"), age_edges).alias("age_band"),
        pl.col("race_group").fill_null("Unknown"),
        pl.col("insurance").fill_null("unknown"),
        pl.when(pl.col("cxr_linked")).then(pl.lit("X-ray")).otherwise(pl.lit("no X-ray")).alias("cxr_linked"),
        cxr_age_band(pl.col("cxr_age_hours"), pl.col("cxr_linked")).alias("cxr_age"),
    )


def kept_labels(y_true: np.ndarray, labels: list[str], min_count: int) -> list[str]:
    """Labels with at least ``min_count`` positive and ``min_count`` negative stays.

    >>> kept_labels(np.array([[1, 0], [1, 0], [0, 1], [0, 0]]), ["a", "b"], 2)
    ['a']
    """
    positives = y_true.sum(axis=0)
    negatives = y_true.shape[0] - positives
    return [lab for j, lab in enumerate(labels) if positives[j] >= min_count and negatives[j] >= min_count]


def subgroup_rows(preds, groups: pl.DataFrame, score, min_count: int) -> list[dict]:
    """One row per attribute and group for one prediction file; ``score(preds)`` evaluates a subset."""
    frame = pl.DataFrame({"stay_id": np.asarray(preds.stay_id, dtype=np.int64)}).join(
        groups, on="stay_id", how="left", maintain_order="left")
    rows = []
    for attribute in ATTRIBUTES:
        values = frame[attribute].fill_null("unknown").to_numpy()
        for group in sorted(set(values)):
            mask = values == group
            sub = preds.subset(mask)
            kept = kept_labels(sub.y_true, sub.labels, min_count)
            row = {"attribute": attribute, "group": str(group), "n": int(mask.sum()),
                   "positives": int(sub.y_true.sum()), "labels_scored": len(kept), "too_small": not kept}
            if kept:
                ev = score(sub)
                for m in METRICS:
                    est = ev.macro(m, kept).to_dict()
                    row |= {m: est["value"], f"{m}_ci_low": est["ci_low"], f"{m}_ci_high": est["ci_high"]}
            rows.append(row)
    return rows


def subgroup_table(tasks: list[str], experiments, predictions, read_groups, score, age_edges: Sequence[int],
                   min_count: int) -> pl.DataFrame:
    """Every model, task and test set by subgroup. ``read_groups(task)`` reads subgroups.parquet or None."""
    rows = []
    for task in tasks:
        subgroups = read_groups(task)
        if subgroups is None:
            continue
        groups = group_columns(subgroups, age_edges)
        for test_set in TEST_SETS:
            for e in experiments(task, test_set):
                preds = predictions(task, e, test_set)
                if preds is None:
                    continue
                for row in subgroup_rows(preds, groups, score, min_count):
                    rows.append({"task": task, "test_set": test_set, "experiment": e, **row})
    schema_numeric = {f"{m}{s}": pl.Float64() for m in METRICS for s in ("", "_ci_low", "_ci_high")}
    frame = pl.DataFrame(rows, infer_schema_length=None)
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in schema_numeric.items() if c not in frame.columns]
    return frame.with_columns(missing) if missing and frame.height else frame


def worst_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """Per task, test set and model: the worst group's AUROC and the largest AUROC gap within one attribute."""
    scored = frame.filter(~pl.col("too_small") & pl.col("auroc").is_not_null())
    keys = ["task", "test_set", "experiment"]
    worst = (scored.sort("auroc").group_by(keys, maintain_order=True)
             .agg(pl.col("auroc").first().alias("worst_auroc"),
                  pl.format("{}: {}", pl.col("attribute"), pl.col("group")).first().alias("worst_group")))
    gaps = (scored.group_by([*keys, "attribute"])
            .agg((pl.col("auroc").max() - pl.col("auroc").min()).alias("gap"),
                 pl.col("group").sort_by("auroc").last().alias("best"),
                 pl.col("group").sort_by("auroc").first().alias("worst"), pl.len().alias("groups"))
            .filter(pl.col("groups") > 1)
            .sort("gap", descending=True).group_by(keys, maintain_order=True)
            .agg(pl.col("gap").first().alias("largest_gap"),
                 pl.format("{}: {} vs {}", pl.col("attribute"), pl.col("best"), pl.col("worst")).first()
                 .alias("largest_gap_between")))
    return worst.join(gaps, on=keys, how="left").sort(keys)


def _cell(r: dict, m: str) -> str:
    if r["too_small"]:
        return TOO_SMALL
    return format_estimate(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"])


def subgroup_markdown(frame: pl.DataFrame, summary: pl.DataFrame, shown: Sequence[str], min_count: int) -> str:
    def fmt(x: float | None) -> str:
        return MISSING if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    summary_rows = [[TASK_TITLES.get(r["task"], r["task"]), r["test_set"], display_name(r["experiment"]),
                     fmt(r["worst_auroc"]), r["worst_group"], fmt(r["largest_gap"]), r["largest_gap_between"] or MISSING]
                    for r in summary.iter_rows(named=True)]
    detail = frame.filter(pl.col("experiment").is_in(list(shown)))
    detail_rows = [[TASK_TITLES.get(r["task"], r["task"]), r["test_set"], display_name(r["experiment"]),
                    r["attribute"], r["group"], str(r["n"]), str(r["positives"]), str(r["labels_scored"]),
                    *(_cell(r, m) for m in METRICS)]
                   for r in detail.iter_rows(named=True)]
    return "\n".join([
        "### Subgroups",
        "",
        "AUROC and AUPRC (95% bootstrap intervals) by sex, age band, race group, insurance, linked X-ray and the "
        "linked X-ray's age at prediction time (`tasks/{task}/subgroups.parquet`). A label with fewer than "
        f"{min_count} positive or negative stays in a group (`evaluation.subgroup_min_positives`) is left out of "
        "that group's macro; a group where no label is left is *too small*. Worst group: the lowest AUROC among "
        "groups with a number; largest gap: the widest AUROC spread within one attribute (worst-group and gap "
        "figures of every model: `subgroup_gaps.csv`). Intervals of small "
        "groups are wide; a gap is a lead to check, not a finding.",
        "",
        markdown_table(["Task", "Test set", "Model", "Worst AUROC", "Worst group", "Largest gap", "Between"],
                       summary_rows, numeric_from=3) if summary_rows else
        "No group of any model holds enough positive and negative stays for a number: every group is too small.",
        "",
        f"By group, for {', '.join(display_name(e) for e in shown)} (every model: CSV):",
        "",
        markdown_table(["Task", "Test set", "Model", "Attribute", "Group", "n", "Positives (all labels)",
                        "Labels scored", "AUROC", "AUPRC"],
                       detail_rows, numeric_from=5),
    ]) + "\n"


def add_sections(report, wd, tasks: list[str], store, age_edges: Sequence[int], min_count: int,
                 reference: str) -> None:
    """The subgroup tables into ``report``; skipped with a note without subgroups.parquet."""
    def read_groups(task: str) -> pl.DataFrame | None:
        path = wd.root / "tasks" / task / "subgroups.parquet"
        return pl.read_parquet(path) if path.exists() else None

    frame = subgroup_table(tasks, wd.prediction_experiments, store.predictions, read_groups,
                           lambda p: store.score(p, micro=False), age_edges, min_count)
    if not frame.height:
        report.notes.append("Subgroups: skipped, no tasks/{task}/subgroups.parquet (rule subgroups) or no predictions.")
        return
    summary = worst_groups(frame)
    present = set(frame["experiment"])
    shown = [e for e in (reference, "medfuse-optimal") if e in present] or sorted(present)[:1]
    report.table("subgroups", frame, subgroup_markdown(frame, summary, shown, min_count))
    path = report.out_dir / "subgroup_gaps.csv"
    with atomic_path(path) as tmp:
        summary.write_csv(tmp)
    report.files.append(path)
