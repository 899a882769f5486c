"""Normalisation of the time series: the 12 continuous columns are normalised with ``(x - mean) / std``; one-hots
and masks are not, as in the original's ``Normalizer.transform``. Where mean and std come from is switch
``normalizer``:

- ``train_split`` (corrected): all bins of all train samples of the task (std floored at 1e-7), as the original's
  normalizer builder computes them;
- ``original_mimic3`` (original): the fixed state the original's training code loads for both tasks, MIMIC-III
  statistics (``resources/original_normalizer.yaml``). It ships states for timesteps 1.0 and 0.8 h; for any other
  timestep the 1.0 h state is used, with a warning (the original's default path names a file it does not ship).
"""

from __future__ import annotations

import logging

import numpy as np

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.discretiser import N_FEATURES, ROWS_PER_PASS, channel_layout
from medfuse_bench.resources import feature_names, original_normalizer

log = logging.getLogger(__name__)

STD_FLOOR = 1e-7



class NormalizerFit:
    """Running sums of x and x^2 over every bin of the train samples (float64), as the original's builder."""

    def __init__(self, n_features: int = N_FEATURES) -> None:
        self.count = 0
        self.sum = np.zeros(n_features, dtype=np.float64)
        self.sum_sq = np.zeros(n_features, dtype=np.float64)

    def update(self, block: np.ndarray) -> None:
        self.count += block.shape[0]
        for start in range(0, block.shape[0], ROWS_PER_PASS):  # float64 copies that stay in cache
            part = np.asarray(block[start:start + ROWS_PER_PASS], dtype=np.float64)
            self.sum += part.sum(axis=0)
            self.sum_sq += np.einsum("ij,ij->j", part, part)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(means, stds): std = sqrt((sum x^2 - 2 mean sum x + N mean^2) / (N - 1)), floored at 1e-7."""
        if self.count == 0:
            raise MedfuseError("the train split has no time steps, so there is nothing to fit the normalizer on")
        n = self.count
        mean = self.sum / n
        var = (self.sum_sq - 2.0 * mean * self.sum + n * mean**2) / max(n - 1, 1)
        std = np.sqrt(np.maximum(var, 0.0))
        return mean, np.maximum(std, STD_FLOOR)


def fit_normalizer(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and stds of all 76 features over the rows of ``array`` (the train split)."""
    fit = NormalizerFit(array.shape[1])
    fit.update(array)
    return fit.result()


#: Timestep (hours) of the original's state used for a timestep it ships no state for.
FALLBACK_STATE_TIMESTEP = "1.0"


def original_state(timestep: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Means and stds (76 entries, NaN but for the 12 continuous columns) of the original's fixed MIMIC-III state
    for ``timestep``, and the timestep of the state used (the 1.0 h state when it ships none for ``timestep``).

    >>> means, stds, used = original_state(1.0)
    >>> round(float(means[feature_names().index("Heart Rate")]), 2), used
    (85.54, 1.0)
    """
    states = original_normalizer()
    key = next((k for k in states if abs(float(k) - timestep) < 1e-9), None)
    if key is None:
        key = FALLBACK_STATE_TIMESTEP
        log.warning("the original's normaliser states cover timesteps %s h, not %s h: using the %s h state",
                    ", ".join(states), timestep, key)
    features = feature_names()
    means, stds = np.full(N_FEATURES, np.nan), np.full(N_FEATURES, np.nan)
    for name, stat in states[key].items():
        means[features.index(name)], stds[features.index(name)] = stat["mean"], stat["std"]
    if np.isnan(means[channel_layout().continuous_columns]).any():
        raise MedfuseError("resources/original_normalizer.yaml lacks a continuous channel; reinstall the package")
    return means, stds, float(key)


def normalize(array: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Normalise the 12 continuous columns of ``array`` in place and return it."""
    columns = channel_layout().continuous_columns
    mean, std = means[columns], stds[columns]
    # A few thousand rows at a time: their 12 columns are read and written in cache, where passes over whole
    # strided columns would read the whole array from memory once per column.
    for start in range(0, array.shape[0], ROWS_PER_PASS):
        block = array[start:start + ROWS_PER_PASS]
        values = block[:, columns].astype(np.float64)
        values -= mean
        values /= std
        block[:, columns] = values
    return array
