"""Seed variance vs sampling variance of the headline numbers (Tables 1-3), from runs retrained with other seeds.

With ``train.seeds`` set, the workflow retrains every experiment of Tables 1-3 once per listed seed at its selected
learning rate, from the same selected pretrained encoders, and predicts the test sets again
(``seed_predictions/{task}/{experiment}/seed{seed}/{test_set}.parquet``). The original run, trained with the
top-level ``seed``, counts as one seed: its predictions are the usual ``predictions/{task}/{experiment}/``.

For every headline number (model x task x test set x metric) the table gives the mean over seeds, the standard
deviation across seeds (seed variance: how much the number moves when only the training seed changes) and the mean
over seeds of the bootstrap standard deviation (sampling variance: how much it moves over resamples of the test
set with the model fixed), and their ratio. The bootstrap intervals of Tables 1-3 contain only the second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.evaluation.metrics import METRICS, Evaluation
from medfuse_bench.evaluation.predictions import read_predictions
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.paths import Workdir
from medfuse_bench.report.experiments import TABLE1, TABLE2, TABLE3, TASK_TITLES, display_name
from medfuse_bench.report.markdown import MISSING, markdown_table
from medfuse_bench.report.policy import resolve_spec
from medfuse_bench.report.tables import METRIC_TITLES
from medfuse_bench.resources import task_labels

#: Tables whose numbers get the seed-variance treatment.
HEADLINE_TABLES = (TABLE1, TABLE2, TABLE3)

TITLE = "Seed variance vs sampling variance (Tables 1-3)"

NOTE = (
    "How to read it: *seed SD* is the standard deviation of the number across training seeds (same data, same "
    "selected learning rate and pretrained encoders, only the seed of weights, data order, augmentation and "
    "uni-modal sampling changed); *sampling SD* is the bootstrap standard deviation over test-set resamples, "
    "averaged over the seeds. The 95% intervals of Tables 1-3 reflect only the sampling SD. A ratio well below 1 "
    "means the test set's size dominates the uncertainty and the intervals are a fair guide; a ratio near or above "
    "1 means retraining with another seed moves the number about as much as (or more than) the interval suggests, "
    "so differences between models of that size are not established by one run. With few seeds the seed SD is "
    "itself rough: from 3 seeds a 95% confidence interval of the true SD runs from about 0.5x to 6x the value "
    "shown, from 5 seeds 0.6x to 2.9x. The original run counts as one seed; its learning rate was selected on "
    "validation with that seed, which can favour it slightly."
)


def headline_experiments(policy: FidelityPolicy) -> list[str]:
    """Experiments of Tables 1-3 (the Unified row resolved under ``policy``), in table order, each once.

    >>> "medfuse-optimal" in headline_experiments(FidelityPolicy.preset("corrected"))
    True
    """
    names = [row.experiment for spec in HEADLINE_TABLES for row in resolve_spec(spec, policy).rows]
    return list(dict.fromkeys(names))


def headline_rows(policy: FidelityPolicy) -> list[tuple[str, str]]:
    """(experiment, test set) pairs of Tables 1-3, in table order, each once."""
    pairs = [(row.experiment, row.test_set) for spec in HEADLINE_TABLES for row in resolve_spec(spec, policy).rows]
    return list(dict.fromkeys(pairs))


def extra_seeds(seed: int, seeds: Sequence[int]) -> list[int]:
    """The listed seeds that are retrained: the original run's ``seed`` is not trained again.

    >>> extra_seeds(1002, [1, 1002, 2])
    [1, 2]
    """
    return [s for s in dict.fromkeys(int(s) for s in seeds) if s != int(seed)]


def seed_statistics(values: Sequence[float], boot_samples: Sequence[np.ndarray]) -> dict[str, float | int | None]:
    """Mean and SD over seeds of a metric, the mean within-seed bootstrap SD, and their ratio.

    ``values`` holds one point estimate per seed, ``boot_samples`` that seed's bootstrap distribution (NaN =
    undefined resample, left out). Seeds with an undefined value are left out; fewer than two left gives None
    for the SD and the ratio.

    >>> s = seed_statistics([0.8, 0.8], [np.array([0.7, 0.9]), np.array([0.7, 0.9])])
    >>> s["seed_sd"], round(s["sampling_sd"], 4)
    (0.0, 0.1414)
    """
    pairs = [(float(v), np.asarray(b, dtype=float)) for v, b in zip(values, boot_samples, strict=True)
             if v is not None and not np.isnan(v)]
    n = len(pairs)
    points = np.array([v for v, _ in pairs])
    within = [float(np.std(b[~np.isnan(b)], ddof=1)) for _, b in pairs if np.count_nonzero(~np.isnan(b)) > 1]
    mean = float(points.mean()) if n else None
    # about the first value: identical seeds give exactly 0, not a rounding residue of the mean
    seed_sd = float(np.std(points - points[0], ddof=1)) if n > 1 else None
    sampling_sd = float(np.mean(within)) if within else None
    ratio = seed_sd / sampling_sd if seed_sd is not None and sampling_sd else None
    return {"seeds": n, "mean": mean, "seed_sd": seed_sd, "sampling_sd": sampling_sd, "ratio": ratio}


#: Evaluation of one run: (task, experiment, test set, seed) -> Evaluation or None when its predictions are absent.
SeedLookup = Callable[[str, str, str, int], Evaluation | None]

COLUMNS: dict[str, pl.DataType] = {
    "model": pl.String(), "experiment": pl.String(), "task": pl.String(), "test_set": pl.String(),
    "metric": pl.String(), "seeds": pl.Int64(), "seed_list": pl.String(), "mean": pl.Float64(),
    "seed_sd": pl.Float64(), "sampling_sd": pl.Float64(), "ratio": pl.Float64(),
}


def seed_table(rows: Sequence[tuple[str, str]], tasks: Sequence[str], seeds: Sequence[int],
               lookup: SeedLookup) -> pl.DataFrame:
    """One row per (experiment, test set) x task x metric: the statistics of :func:`seed_statistics` over ``seeds``
    (the macro over labels for phenotyping, as in Tables 1-3). Rows without any run are left out."""
    records: list[dict[str, Any]] = []
    for experiment, test_set in rows:
        for task in tasks:
            runs = [(s, lookup(task, experiment, test_set, s)) for s in seeds]
            runs = [(s, e) for s, e in runs if e is not None]
            if not runs:
                continue
            for metric in METRICS:
                macro = [e.macro_samples(metric) for _, e in runs]
                stats = seed_statistics([v for v, _ in macro], [b for _, b in macro])
                records.append({"model": display_name(experiment), "experiment": experiment, "task": task,
                                "test_set": test_set, "metric": metric,
                                "seed_list": " ".join(str(s) for s, _ in runs), **stats})
    return pl.DataFrame(records, schema=COLUMNS)


def _num(x: float | None, digits: int = 3) -> str:
    return MISSING if x is None or np.isnan(x) else f"{x:.{digits}f}"


def seed_table_markdown(frame: pl.DataFrame) -> str:
    headers = ["Model", "Task", "Test set", "Metric", "Seeds", "Mean", "Seed SD", "Sampling SD", "Ratio"]
    body = [[r["model"], TASK_TITLES.get(r["task"], r["task"]), r["test_set"], METRIC_TITLES[r["metric"]],
             str(r["seeds"]), _num(r["mean"]), _num(r["seed_sd"]), _num(r["sampling_sd"]), _num(r["ratio"], 2)]
            for r in frame.iter_rows(named=True)]
    return f"### {TITLE}\n\n" + markdown_table(headers, body, numeric_from=4) + "\n\n" + NOTE + "\n"


class SeedRuns:
    """Evaluations of the original run and of the per-seed runs, scored with ``score`` (the report's bootstrap)."""

    def __init__(self, root: Path, original_seed: int, original: Callable[[str, str, str], Evaluation | None],
                 score: Callable[[Any], Evaluation]) -> None:
        self.root, self.original_seed, self.original, self.score = root, original_seed, original, score

    def __call__(self, task: str, experiment: str, test_set: str, seed: int) -> Evaluation | None:
        if seed == self.original_seed:
            return self.original(task, experiment, test_set)
        path = Workdir.at(self.root).seed_predictions(task, experiment, seed, test_set)
        if not path.exists():
            return None
        return self.score(read_predictions(path, task_labels(task)))


def add_section(report: Any, root: Path, tasks: Sequence[str], store: Any, config: Mapping[str, Any] | None) -> None:
    """The seed-variance table, when the resolved config lists extra seeds (``train.seeds``)."""
    config = config or {}
    if "seed" not in config:  # no resolved config: which seeds ran is not known
        return
    seed = int(config["seed"])
    extra = extra_seeds(seed, (config.get("train") or {}).get("seeds") or [])
    if not extra:
        return
    seeds = [seed, *extra]
    runs = SeedRuns(root, seed, store.evaluation, store.score)
    frame = seed_table(headline_rows(report.policy.policy), tasks, seeds, runs)
    if frame.filter(pl.col("seeds") > 1).height == 0:
        report.notes.append(f"{TITLE}: skipped, fewer than two seeds have predictions (seeds {seeds}).")
        return
    report.table("seed_variance", frame, seed_table_markdown(frame), optimal=True, unified=True)
