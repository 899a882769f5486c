"""Timing of the vectorised bootstrap against a loop of scikit-learn calls on the same resamples."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from medfuse_bench.evaluation.bootstrap import resample_indices
from medfuse_bench.evaluation.metrics import bootstrap_resamples, evaluate


@dataclass(frozen=True)
class BenchResult:
    n: int
    labels: int
    n_resamples: int
    sklearn_resamples: int
    vectorised_s: float
    sklearn_s: float
    sklearn_extrapolated_s: float
    max_abs_diff: float

    @property
    def speedup(self) -> float:
        return self.sklearn_extrapolated_s / self.vectorised_s


def synthetic_scores(n: int, n_labels: int, prevalence: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced 0/1 labels and informative scores rounded to 2 decimals (so there are ties)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < prevalence).astype(np.int8)
    scores = np.clip(rng.normal(0.35 + 0.25 * y, 0.2), 0, 1).round(2)
    return y, scores


def sklearn_loop(y: np.ndarray, scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference: one ``roc_auc_score`` and one ``average_precision_score`` call per resample and label."""
    from sklearn.metrics import average_precision_score, roc_auc_score  # slow to import; only this command needs it

    n_labels = y.shape[1]
    auroc = np.full((n_labels, indices.shape[0]), np.nan)
    ap = np.full_like(auroc, np.nan)
    for r, idx in enumerate(indices):
        for j in range(n_labels):
            yr = y[idx, j]
            if 0 < yr.sum() < yr.size:
                auroc[j, r] = roc_auc_score(yr, scores[idx, j])
                ap[j, r] = average_precision_score(yr, scores[idx, j])
    return auroc, ap


def run_benchmark(
    n: int = 2000,
    n_labels: int = 25,
    n_resamples: int = 1000,
    sklearn_resamples: int = 200,
    prevalence: float = 0.15,
    seed: int = 2022,
) -> BenchResult:
    """Time :func:`evaluate` (all ``n_resamples``, per-label metrics) against the scikit-learn loop.

    The loop runs on the first ``sklearn_resamples`` resamples and its time is scaled linearly to
    ``n_resamples``; the largest absolute difference between both on those resamples is reported too.
    """
    y, scores = synthetic_scores(n, n_labels, prevalence, seed)
    labels = [f"label{j}" for j in range(n_labels)]
    start = time.perf_counter()
    evaluate(y, scores, labels, n_resamples=n_resamples, seed=seed, micro=False)
    vectorised_s = time.perf_counter() - start

    k = min(sklearn_resamples, n_resamples)
    indices = resample_indices(n, n_resamples, seed)[:k]
    start = time.perf_counter()
    ref_auroc, ref_ap = sklearn_loop(y, scores, indices)
    sklearn_s = time.perf_counter() - start

    counts = np.stack([np.bincount(idx, minlength=n) for idx in indices]).astype(np.int32)
    auroc, ap = bootstrap_resamples(y, scores, counts)
    diff = max(float(np.nanmax(np.abs(auroc - ref_auroc))), float(np.nanmax(np.abs(ap - ref_ap))))
    return BenchResult(n, n_labels, n_resamples, k, vectorised_s, sklearn_s, sklearn_s * n_resamples / k, diff)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.metrics``: print both timings, the speed-up and the largest difference."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.metrics",
        description="Time the vectorised bootstrap against a loop of scikit-learn calls and check they agree, on "
                    "synthetic imbalanced labels with tied scores.",
    )
    p.add_argument("--n", type=int, default=2000, help="test rows (default: %(default)s)")
    p.add_argument("--labels", type=int, default=25, help="labels (default: %(default)s, as phenotyping)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    p.add_argument("--sklearn-resamples", type=int, default=200,
                   help="resamples the scikit-learn loop runs; its time is scaled to --bootstrap (default: %(default)s)")
    p.add_argument("--prevalence", type=float, default=0.15, help="positive fraction per label (default: %(default)s)")
    p.add_argument("--seed", type=int, default=2022, help="seed of data and resamples (default: %(default)s)")
    args = p.parse_args(argv)
    r = run_benchmark(args.n, args.labels, args.bootstrap, args.sklearn_resamples, args.prevalence, args.seed)
    print(f"data: n={r.n}, labels={r.labels}, resamples={r.n_resamples} (AUROC + AUPRC per label and resample)")
    print(f"vectorised bootstrap:        {r.vectorised_s:8.2f} s")
    scaled = ""
    if r.sklearn_resamples != r.n_resamples:
        scaled = f" (measured {r.sklearn_s:.2f} s on {r.sklearn_resamples} resamples, scaled)"
    print(f"scikit-learn loop:           {r.sklearn_extrapolated_s:8.2f} s{scaled}")
    print(f"speed-up:                    {r.speedup:8.1f}x")
    print(f"max |difference| vs sklearn: {r.max_abs_diff:.2e}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
