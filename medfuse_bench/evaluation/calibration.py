"""Calibration: expected calibration error (equal-mass bins), Brier score and reliability curves, with bootstrap CIs.

- **Bins**: per label, the test rows sorted by predicted probability (stable order, so tied scores keep file order)
  and cut into ``n_bins`` runs whose sizes differ by at most one (equal mass: every bin holds about ``n / n_bins``
  stays, so no bin is empty however the probabilities bunch up). The bins are fixed on the test set; a bootstrap
  resample reuses them, as it reuses the model.
- **ECE** = ``sum_b (n_b / n) * |mean(y)_b - mean(p)_b|`` = ``sum_b |sum_{i in b} (y_i - p_i)| / n``. The second form
  is linear in the row weights inside the absolute value, so all resamples of a chunk are one matrix product of
  their multiplicities ``[resamples, n]`` with ``[n, labels x bins]``.
- **Brier** = ``mean_i (p_i - y_i)^2``, likewise one product per chunk.
- **Macro** (phenotyping): the unweighted mean over labels, per resample; its interval is that of the mean. Both
  metrics are defined for a label with one class only, so no label is left out.

Every resample is drawn as in :mod:`.bootstrap` with the evaluation's seed: the same resamples as the AUROC's.

ECE's interval is bias-corrected: ECE sums absolute bin gaps, and resampling adds noise to every gap, so the ECE of
a resample is on average above that of the test set; with few stays per bin the plain percentile interval can sit
wholly above the point value. The resampled ECEs are therefore shifted by their mean excess over the point value
(the bootstrap estimate of the bias) before the percentiles are taken, and the lower end is kept at 0 or above
(:func:`bias_corrected`). Brier is a mean and has no such bias; its interval is the plain percentile one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from medfuse_bench.evaluation.bootstrap import iter_resample_counts, percentile_interval
from medfuse_bench.evaluation.metrics import Estimate

CALIBRATION_METRICS: tuple[str, ...] = ("ece", "brier")

_CHUNK_ELEMENTS = 2_000_000


def equal_mass_bins(y_score: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each row: rows sorted by score (stable), cut into ``n_bins`` runs of near-equal size.

    >>> equal_mass_bins(np.array([0.9, 0.1, 0.5, 0.3, 0.7]), 2).tolist()
    [1, 0, 0, 0, 1]
    """
    n = y_score.size
    order = np.argsort(y_score, kind="stable")
    bins = np.empty(n, dtype=np.int64)
    bins[order] = (np.arange(n) * min(n_bins, max(n, 1))) // max(n, 1)
    return bins


def expected_calibration_error(y_true: np.ndarray, y_score: np.ndarray, n_bins: int) -> float:
    """ECE of one label with equal-mass bins (NaN for no rows).

    >>> round(expected_calibration_error(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.6, 0.9]), 2), 12)
    0.3
    """
    y_true, y_score = np.asarray(y_true, dtype=np.float64), np.asarray(y_score, dtype=np.float64)
    if y_true.size == 0:
        return float("nan")
    bins = equal_mass_bins(y_score, n_bins)
    gap = np.bincount(bins, weights=y_true - y_score, minlength=n_bins)
    return float(np.abs(gap).sum() / y_true.size)


def bias_corrected(samples: np.ndarray, value: float) -> np.ndarray:
    """Resampled values shifted by their mean excess over ``value`` (the bootstrap bias), floored at 0.

    >>> bias_corrected(np.array([0.3, 0.4, 0.5]), 0.2).round(12).tolist()
    [0.1, 0.2, 0.3]
    """
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return samples
    return np.maximum(samples - (finite.mean() - value), 0.0)


@dataclass
class Calibration:
    """Per-label point values and bootstrap distributions ``[labels, resamples]`` of ECE and Brier, and the
    reliability curve of each label (one row per label and bin)."""

    labels: list[str]
    n: int
    n_bins: int
    n_resamples: int
    point: dict[str, np.ndarray]
    boot: dict[str, np.ndarray]
    reliability: pl.DataFrame

    def estimate(self, metric: str, label: str | None = None) -> Estimate:
        """``metric`` of ``label``, or the macro over labels (None) with the interval of the per-resample mean."""
        if label is None:
            value, samples = float(np.mean(self.point[metric])), self.boot[metric].mean(axis=0)
        else:
            j = self.labels.index(label)
            value, samples = float(self.point[metric][j]), self.boot[metric][j]
        if np.isnan(value):
            return Estimate(float("nan"), float("nan"), float("nan"), 0, self.n_resamples)
        if metric == "ece":
            samples = bias_corrected(samples, value)
        return Estimate(value, *percentile_interval(samples), self.n_resamples)

    def macro_reliability(self) -> pl.DataFrame:
        """Mean predicted probability and observed rate per bin, averaged over labels (the macro curve)."""
        return (
            self.reliability.group_by("bin")
            .agg(pl.col("mean_predicted").mean(), pl.col("observed").mean(), pl.col("n").mean())
            .sort("bin")
        )


def calibrate(
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: list[str],
    *,
    n_bins: int = 10,
    n_resamples: int = 1000,
    seed: int = 2022,
) -> Calibration:
    """ECE and Brier of predictions ``[n, labels]`` (or ``[n]``) with a seeded bootstrap (see the module notes).

    >>> cal = calibrate(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.6, 0.9]), ["y"], n_bins=2, n_resamples=20)
    >>> round(cal.estimate("ece").value, 6), round(cal.estimate("brier").value, 4)
    (0.3, 0.255)
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_score, dtype=np.float64)
    y, p = (y[:, None], p[:, None]) if y.ndim == 1 else (y, p)
    if y.shape != p.shape or y.shape[1] != len(labels):
        raise ValueError(f"shapes {y.shape} / {p.shape} do not match {len(labels)} labels")
    n, n_labels = y.shape
    bins = np.stack([equal_mass_bins(p[:, j], n_bins) for j in range(n_labels)], axis=1) if n else \
        np.zeros((0, n_labels), dtype=np.int64)
    # gap[i, j * n_bins + b] = y - p of row i for label j when row i is in bin b of label j
    gap = np.zeros((n, n_labels * n_bins))
    cols = bins + np.arange(n_labels)[None, :] * n_bins
    np.put_along_axis(gap, cols, y - p, axis=1)
    squared = (y - p) ** 2

    point = {"ece": np.abs(gap.sum(axis=0)).reshape(n_labels, n_bins).sum(axis=1) / max(n, 1),
             "brier": squared.mean(axis=0) if n else np.full(n_labels, np.nan)}
    if n == 0:
        point["ece"][:] = np.nan
    boot = {m: np.full((n_labels, n_resamples), np.nan) for m in CALIBRATION_METRICS}
    start = 0
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for counts in iter_resample_counts(n, n_resamples if n else 0, seed, chunk):
        stop = start + counts.shape[0]
        c = counts.astype(np.float64)
        boot["ece"][:, start:stop] = (np.abs(c @ gap).reshape(-1, n_labels, n_bins).sum(axis=2) / n).T
        boot["brier"][:, start:stop] = (c @ squared / n).T
        start = stop

    rows = []
    for j, label in enumerate(labels):
        frame = pl.DataFrame({"bin": bins[:, j], "y": y[:, j], "p": p[:, j]})
        rows.append(frame.group_by("bin").agg(
            pl.len().alias("n"), pl.col("p").mean().alias("mean_predicted"), pl.col("y").mean().alias("observed"),
        ).with_columns(pl.lit(label).alias("label")))
    reliability = (pl.concat(rows).select("label", "bin", pl.col("n").cast(pl.Int64), "mean_predicted", "observed")
                   .sort("label", "bin") if rows else pl.DataFrame())
    return Calibration(list(labels), n, n_bins, n_resamples, point, boot, reliability)
