"""Small vectorised helpers shared by the synthetic generators (grouped cumulative sums, draws, time formats)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

HOUR = 3600
DAY = 86400


def split_total(rng: np.random.Generator, total: int, sizes: Sequence[int], p: Sequence[float]) -> np.ndarray:
    """Random group sizes drawn from ``sizes`` (probabilities ``p``) that add up to exactly ``total``.

    >>> split_total(np.random.default_rng(0), 7, [1, 2], [0.5, 0.5]).sum()
    np.int64(7)
    """
    draws = rng.choice(np.asarray(sizes), size=total, p=np.asarray(p))
    cum = np.cumsum(draws)
    n = int(np.searchsorted(cum, total)) + 1
    out = draws[:n].copy()
    out[-1] -= cum[n - 1] - total
    return out


def group_starts(sizes: np.ndarray) -> np.ndarray:
    """Index of the first member of each group, for groups stored one after another."""
    return np.cumsum(sizes) - sizes


def group_exclusive_cumsum(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Sum of the earlier members of the same group, for each member (groups stored one after another).

    >>> group_exclusive_cumsum(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2, 2]))
    array([0., 1., 0., 3.])
    """
    cs = np.cumsum(values)
    before = np.concatenate([[0.0], cs])[np.repeat(group_starts(sizes), sizes)]
    return cs - values - before


def within_group_index(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ... within each group.

    >>> within_group_index(np.array([2, 0, 3]))
    array([0, 1, 0, 1, 2])
    """
    total = int(sizes.sum())
    return np.arange(total) - np.repeat(group_starts(sizes), sizes)


def pick(rng: np.random.Generator, values: Sequence[str | None], p: Sequence[float], n: int) -> np.ndarray:
    """``n`` draws of ``values`` (None allowed) with probabilities ``p``, as an object array."""
    p = np.asarray(p, dtype=float)
    idx = rng.choice(len(values), size=n, p=p / p.sum())
    return np.array(list(values), dtype=object)[idx]


def unique_ids(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct integers in [low, high), in increasing order."""
    if n > high - low:
        raise ValueError(f"cannot draw {n} distinct ids from [{low}, {high})")
    return np.sort(rng.choice(high - low, size=n, replace=False)) + low


def to_minute(seconds: np.ndarray) -> np.ndarray:
    """Round seconds since the epoch to whole minutes (monotone, so ordering is kept)."""
    return (np.floor(np.asarray(seconds, dtype=np.float64) / 60.0 + 0.5) * 60).astype(np.int64)


def year_start_seconds(years: np.ndarray) -> np.ndarray:
    """Seconds since the epoch of 1 January of each year (works far beyond 2100)."""
    return (np.asarray(years) - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def number_text(expr: pl.Expr) -> pl.Expr:
    """Numbers as MIMIC's CSV exports print them: ``86`` not ``86.0``, ``37.2`` as is, null stays null."""
    return expr.cast(pl.String).str.replace(r"\.0$", "")


def str_series(values: np.ndarray | list, name: str = "") -> pl.Series:
    """A String series from an object array that may hold None (or only None)."""
    return pl.Series(name, np.asarray(values, dtype=object).tolist(), dtype=pl.String)
