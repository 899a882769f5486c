"""Data drift between two releases: who was added, removed and kept, splits, cohort sizes, labels and X-ray links.

Statistics:

* a proportion (a prevalence, a linked-X-ray share) has a 95% Wilson score interval;
* the change of a prevalence between the releases has a 95% percentile interval from a bootstrap over *patients*
  of the union of both releases: the kept patients are in both samples, so the two prevalences are not
  independent, and a patient's stays go together. Each resample draws the patients with replacement and takes
  both prevalences from the same draw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.evaluation.bootstrap import iter_resample_counts, percentile_interval
from medfuse_bench.resources import SPLITS, task_labels

Z95 = 1.959963984540054
#: Exceptions listed one by one in drift.json (the count is always complete).
MAX_LISTED = 1000
#: Elements of one resample-count matrix per step (patients x resamples).
_CHUNK_ELEMENTS = 4_000_000


def wilson(successes: int, n: int) -> tuple[float | None, float | None, float | None]:
    """Share and 95% Wilson score interval; (None, None, None) when n is 0.

    >>> [round(x, 4) for x in wilson(5, 20)]
    [0.25, 0.1119, 0.4687]
    """
    if n == 0:
        return None, None, None
    p = successes / n
    denom = 1.0 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 / denom * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    return p, max(0.0, centre - half), min(1.0, centre + half)


def membership(previous: pl.Series, current: pl.Series) -> dict[str, int]:
    """Counts of ids only in ``previous`` (removed), only in ``current`` (added), and in both (kept).

    >>> membership(pl.Series([1, 2, 3]), pl.Series([2, 3, 4, 5]))
    {'previous': 3, 'current': 4, 'kept': 2, 'removed': 1, 'added': 2}
    """
    a, b = set(previous.drop_nulls().to_list()), set(current.drop_nulls().to_list())
    return {"previous": len(a), "current": len(b), "kept": len(a & b), "removed": len(a - b), "added": len(b - a)}


def split_stability(previous: pl.DataFrame, current: pl.DataFrame) -> dict[str, Any]:
    """Kept patients (subject_id in both splits tables) and how many kept their split; the exceptions listed."""
    joined = previous.select("subject_id", pl.col("split").alias("previous")).join(
        current.select("subject_id", pl.col("split").alias("current")), on="subject_id", how="inner")
    moved = joined.filter(pl.col("previous") != pl.col("current")).sort("subject_id")
    kept = joined.height
    same = kept - moved.height
    return {
        "kept_patients": kept,
        "same_split": same,
        "share_same_split": same / kept if kept else None,
        "moved": moved.height,
        "moved_patients": moved.head(MAX_LISTED).to_dicts(),
    }


def cohort_counts(task: str, previous: pl.DataFrame, current: pl.DataFrame) -> list[dict[str, Any]]:
    """Samples (PARTIAL) and samples with a linked X-ray (PAIRED) per split in both releases, with the paired share."""
    rows = []
    for split in SPLITS:
        row: dict[str, Any] = {"task": task, "split": split}
        for name, frame in (("previous", previous), ("current", current)):
            part = frame.filter(pl.col("split") == split)
            paired = int(part["cxr_dicom_id"].is_not_null().sum())
            share, low, high = wilson(paired, part.height)
            row |= {f"{name}_partial": part.height, f"{name}_paired": paired, f"{name}_paired_share": share,
                    f"{name}_paired_share_ci": [low, high]}
        rows.append(row)
    return rows


def _subject_sums(frame: pl.DataFrame, subjects: pl.DataFrame, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Stays per subject ``[S]`` and positives per subject and label ``[S, L]``, in the order of ``subjects``."""
    sums = frame.group_by("subject_id").agg(pl.len().alias("_n"), *(pl.col(lab).cast(pl.Int64).sum() for lab in labels))
    full = subjects.join(sums, on="subject_id", how="left", maintain_order="left").fill_null(0)
    return full["_n"].to_numpy().astype(np.float64), full.select(labels).to_numpy().astype(np.float64)


def prevalence_change(task: str, previous: pl.DataFrame, current: pl.DataFrame, n_resamples: int,
                      seed: int) -> list[dict[str, Any]]:
    """Prevalence of each label in both releases (Wilson intervals) and its change, with a patient bootstrap."""
    labels = task_labels(task)
    subjects = pl.concat([previous.select("subject_id"), current.select("subject_id")]).unique().sort("subject_id")
    n_a, pos_a = _subject_sums(previous, subjects, labels)
    n_b, pos_b = _subject_sums(current, subjects, labels)
    diff = np.full((len(labels), n_resamples), np.nan)
    chunk = max(1, _CHUNK_ELEMENTS // max(subjects.height, 1))
    start = 0
    for counts in iter_resample_counts(subjects.height, n_resamples if subjects.height else 0, seed, chunk):
        w = counts.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            prev_a = (w @ pos_a) / (w @ n_a)[:, None]
            prev_b = (w @ pos_b) / (w @ n_b)[:, None]
        diff[:, start:start + counts.shape[0]] = (prev_b - prev_a).T
        start += counts.shape[0]
    changed = _label_changes(previous, current, labels)
    rows = []
    for j, label in enumerate(labels):
        a = wilson(int(pos_a[:, j].sum()), int(n_a.sum()))
        b = wilson(int(pos_b[:, j].sum()), int(n_b.sum()))
        low, high, _ = percentile_interval(diff[j])
        delta = None if a[0] is None or b[0] is None else b[0] - a[0]
        rows.append({
            "task": task, "label": label,
            "previous": a[0], "previous_ci": [a[1], a[2]],
            "current": b[0], "current_ci": [b[1], b[2]],
            "change": delta, "change_ci": [None if math.isnan(low) else low, None if math.isnan(high) else high],
            **changed[label],
        })
    return rows


def _label_changes(previous: pl.DataFrame, current: pl.DataFrame, labels: list[str]) -> dict[str, dict[str, int]]:
    """Per label, the kept stays whose label went 0 -> 1 and 1 -> 0 between the releases."""
    both = previous.select("stay_id", *labels).join(current.select("stay_id", *labels), on="stay_id", suffix="_new")
    out = {}
    for label in labels:
        old, new = pl.col(label), pl.col(f"{label}_new")
        out[label] = {
            "kept_became_positive": int(both.filter((old == 0) & (new == 1)).height),
            "kept_became_negative": int(both.filter((old == 1) & (new == 0)).height),
        }
    return out


def kept_rows(task: str, previous: pl.DataFrame, current: pl.DataFrame) -> dict[str, Any]:
    """How the task rows of the kept stays (stay_id in both) differ: per column, the kept stays whose value changed.

    A kept stay whose raw data did not change has the same row in both releases (same split, X-ray, length, age and
    labels); every difference listed here comes from a changed raw table or a changed ETL setting.
    """
    columns = [c for c in previous.columns if c in current.columns and c != "stay_id"]
    both = previous.select("stay_id", *columns).join(current.select("stay_id", *columns), on="stay_id",
                                                        suffix="_new")
    differs = {c: both.filter(pl.col(c).ne_missing(pl.col(f"{c}_new"))).height for c in columns}
    any_diff = both.filter(pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_new")) for c in columns)) \
        if columns else both.head(0)
    link = {
        "gained_xray": both.filter(pl.col("cxr_dicom_id").is_null() & pl.col("cxr_dicom_id_new").is_not_null()).height,
        "lost_xray": both.filter(pl.col("cxr_dicom_id").is_not_null() & pl.col("cxr_dicom_id_new").is_null()).height,
        "other_xray": both.filter(pl.col("cxr_dicom_id").is_not_null() & pl.col("cxr_dicom_id_new").is_not_null()
                                  & (pl.col("cxr_dicom_id") != pl.col("cxr_dicom_id_new"))).height,
    } if "cxr_dicom_id" in columns else {}
    return {
        "task": task,
        "kept_stays": both.height,
        "identical": both.height - any_diff.height,
        "changed": any_diff.height,
        "changed_by_column": {c: n for c, n in differs.items() if n},
        "changed_stays": sorted(any_diff["stay_id"].to_list())[:MAX_LISTED],
        **link,
    }
