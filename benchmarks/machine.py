"""The machine check: a fixed workload timed beside each benchmark run, so that a slow moment of a shared machine
shows as such rather than as a slow run."""

from __future__ import annotations

import os
import time


def machine_check() -> float:
    """Seconds of a fixed single-core workload (a Python loop and a NumPy sort), timed beside each ETL run: on a
    shared machine whose speed drifts, it tells a slow run from a slow moment."""
    import numpy as np

    values = np.random.default_rng(0).random(2_000_000)
    start = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    np.sort(values, kind="stable")
    return round(time.perf_counter() - start, 3)


def machine_check_all_cores(workers: int | None = None) -> float:
    """The slowest of :func:`machine_check` run in ``workers`` processes at once (default: one per CPU): the
    stages use every core, and a neighbour holding one core slows them while a single-core check barely moves."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = workers or os.cpu_count() or 1
    # spawn, not fork: this process may hold DuckDB's and Polars' threads.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_noop, range(workers)))  # start every worker before the timed round
        return max(pool.map(_timed_check, range(workers)))


def _noop(_: int) -> None:
    return None


def _timed_check(_: int) -> float:
    return machine_check()


def spread_runs(repeat: int, points: int) -> list[int]:
    """The point (0 .. points - 1) of each of ``repeat`` runs spread evenly over ``points`` points, first and last
    included.

    >>> spread_runs(2, 6), spread_runs(4, 6), spread_runs(6, 6), spread_runs(1, 6)
    ([0, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5], [0])
    """
    if repeat == 1:
        return [0]
    return [int(r * (points - 1) / (repeat - 1) + 0.5) for r in range(repeat)]
