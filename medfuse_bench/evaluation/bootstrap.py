"""Seeded bootstrap resamples of the test set and percentile confidence intervals.

A resample draws ``n`` rows with replacement; every label of a task is scored on the same resamples, so the
bootstrap distribution of a macro average is that of the macro statistic itself. The metrics only need how
often each row was drawn, so resamples travel as count matrices ``[resamples, n]`` (one row per resample),
produced chunk by chunk to bound memory. Chunking never changes the draws: NumPy's generator fills the
index matrix in row order, so the rows are the same whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: The percentiles of the 95% interval.
CI_PERCENTILES: tuple[float, float] = (2.5, 97.5)


def resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """All resamples as row indices ``[n_resamples, n]`` (what a loop over scikit-learn calls would index with).

    >>> resample_indices(4, 2, seed=0).shape
    (2, 4)
    """
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n), dtype=np.int64)


def iter_resample_counts(n: int, n_resamples: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """Yield the resamples of :func:`resample_indices` as multiplicity matrices ``[rows, n]``, ``chunk`` rows at a time.

    Row ``r`` counts how often each of the ``n`` rows was drawn in resample ``r``; each row sums to ``n``.

    >>> counts = np.concatenate(list(iter_resample_counts(3, 5, seed=1, chunk=2)))
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((5, 3), [3, 3, 3, 3, 3])
    """
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        rows = min(chunk, n_resamples - done)
        yield indices_to_counts(rng.integers(0, n, size=(rows, n), dtype=np.int64), n)
        done += rows


def indices_to_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """Turn resample indices ``[rows, k]`` into multiplicities ``[rows, n]`` (int32: cheap to gather and sum).

    >>> indices_to_counts(np.array([[0, 0, 2], [1, 2, 2]]), 3).tolist()
    [[2, 0, 1], [0, 1, 2]]
    """
    rows = indices.shape[0]
    flat = (indices + (np.arange(rows, dtype=np.int64) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.int32)


def percentile_interval(samples: np.ndarray) -> tuple[float, float, int]:
    """95% percentile interval of a bootstrap distribution, ignoring NaN (degenerate) resamples.

    Returns ``(low, high, n_valid)``; both bounds are NaN when no resample is valid.

    >>> percentile_interval(np.array([np.nan, *np.linspace(0, 1, 101)]))
    (0.025, 0.975, 101)
    """
    valid = samples[~np.isnan(samples)]
    if valid.size == 0:
        return float("nan"), float("nan"), 0
    low, high = np.percentile(valid, CI_PERCENTILES)
    return float(low), float(high), int(valid.size)
