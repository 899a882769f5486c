"""Models trained on the previous release, scored on the test stays that both releases keep, paired.

The common ground of two releases is the kept test stays: an added stay has no prediction of an old model, a
removed one no label of the new release. On those stays, two comparisons (docs/version-bump.md):

* ``new_labels``: the old model's predictions scored against the previous release's labels and against the
  current release's labels of the same stays. The difference is what the new release's labels alone change in the
  old model's numbers (zero when no label of a kept test stay changed). The old predictions were made from the old
  inputs: a change of a kept stay's time series or X-ray is not seen here.
* ``new_model`` (when the current workdir has its own predictions of the same experiment and test set): the old
  model on the old labels against the model retrained on the current release on its labels, same stays.

Both sides of a comparison use the same bootstrap resamples of the kept stays (same count and seed), so each
resample gives one difference and the interval is that of the paired difference. The macro average is over the
labels that have both classes on both sides.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.evaluation.bootstrap import percentile_interval
from medfuse_bench.evaluation.metrics import METRICS, Evaluation, evaluate
from medfuse_bench.evaluation.predictions import Predictions, read_predictions
from medfuse_bench.report.inputs import Workdir, select_test_set
from medfuse_bench.resources import task_labels

log = logging.getLogger(__name__)

TEST_SETS: tuple[str, ...] = ("paired", "partial", "paired_nocxr")


def _none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def paired_difference(y_a: np.ndarray, s_a: np.ndarray, y_b: np.ndarray, s_b: np.ndarray, labels: list[str],
                      n_resamples: int, seed: int) -> dict[str, dict[str, Any]]:
    """Macro AUROC and AUPRC of side A and side B on the same rows, and B - A with a paired bootstrap interval.

    >>> y = np.array([0, 1, 0, 1, 1, 0]); s = np.array([0.1, 0.9, 0.3, 0.6, 0.8, 0.2])
    >>> paired_difference(y, s, y, s, ["mortality"], 50, 0)["auroc"]["difference"]
    {'value': 0.0, 'ci_low': 0.0, 'ci_high': 0.0}
    """
    ev_a = evaluate(y_a, s_a, labels, n_resamples=n_resamples, seed=seed, micro=False)
    ev_b = evaluate(y_b, s_b, labels, n_resamples=n_resamples, seed=seed, micro=False)
    idx = [j for j, lab in enumerate(labels) if lab not in ev_a.macro_excluded and lab not in ev_b.macro_excluded]
    out = {}
    for metric in METRICS:
        if not idx:
            nan = {"value": None, "ci_low": None, "ci_high": None}
            out[metric] = {"previous": nan, "current": nan, "difference": nan, "labels": 0}
            continue
        sides = {name: _macro(ev, metric, idx) for name, ev in (("previous", ev_a), ("current", ev_b))}
        value = sides["current"][0] - sides["previous"][0]
        low, high, _ = percentile_interval(sides["current"][1] - sides["previous"][1])
        out[metric] = {
            **{name: _estimate(*side) for name, side in sides.items()},
            "difference": {"value": value, "ci_low": _none(low), "ci_high": _none(high)},
            "labels": len(idx),
        }
    return out


def _macro(ev: Evaluation, metric: str, idx: list[int]) -> tuple[float, np.ndarray]:
    return float(np.mean(ev.point[metric][idx])), ev.boot[metric][idx].mean(axis=0)


def _estimate(value: float, samples: np.ndarray) -> dict[str, float | None]:
    low, high, _ = percentile_interval(samples)
    return {"value": value, "ci_low": _none(low), "ci_high": _none(high)}


def _rows(pred: Predictions, stays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truth and scores of ``pred`` on ``stays`` (each present), in the order of ``stays``."""
    pos = pl.DataFrame({"stay_id": pred.stay_id, "_row": np.arange(len(pred.stay_id))})
    rows = pl.DataFrame({"stay_id": stays}).join(pos, on="stay_id", how="left", maintain_order="left")["_row"]
    idx = rows.to_numpy()
    return pred.y_true[idx], pred.y_score[idx]


def compare_models(task: str, previous_root: Workdir, current_samples: pl.DataFrame, current_root: Workdir | None,
                   n_resamples: int, seed: int) -> list[dict[str, Any]]:
    """Every old prediction file of ``task``: its kept test stays and the comparisons of the module docstring.

    ``current_root`` None leaves out the retrained models (``new_model``).
    """
    labels = task_labels(task)
    rows = []
    for test_set in TEST_SETS:
        current_test = select_test_set(current_samples, test_set).sort("stay_id")
        for experiment in previous_root.prediction_experiments(task, test_set):
            old = read_predictions(previous_root.predictions(task, experiment, test_set), labels)
            kept = current_test.filter(pl.col("stay_id").is_in(pl.Series(old.stay_id).implode()))
            row: dict[str, Any] = {"task": task, "experiment": experiment, "test_set": test_set,
                                   "previous_stays": len(old.stay_id), "current_stays": current_test.height,
                                   "kept_stays": kept.height, "comparisons": {}}
            rows.append(row)
            if kept.height == 0:
                continue
            stays = kept["stay_id"].to_numpy()
            y_old, s_old = _rows(old, stays)
            y_new = kept.select(labels).to_numpy().astype(np.int8)
            row["labels_changed"] = int((y_old != y_new).any(axis=1).sum())
            row["comparisons"]["new_labels"] = paired_difference(y_old, s_old, y_new, s_old, labels, n_resamples,
                                                                 seed)
            path = current_root.predictions(task, experiment, test_set) if current_root is not None else None
            if path is not None and path.exists():
                new = read_predictions(path, labels)
                missing = np.setdiff1d(stays, new.stay_id)
                if missing.size:
                    row["new_model_missing_stays"] = int(missing.size)
                    log.warning("%s: %d kept test stays have no prediction; new model not compared", path, missing.size)
                    continue
                y_b, s_b = _rows(new, stays)
                row["comparisons"]["new_model"] = paired_difference(y_old, s_old, y_b, s_b, labels, n_resamples, seed)
    return rows
