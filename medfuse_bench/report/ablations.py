"""Data of the appendix figures: the uni-modal training sweep (A1), X-rays dropped from the paired test set (A2)
and uni-modal stays added to it (A3).

Which stays lose their X-ray (A2) or join the test set (A3) is one seeded permutation of the stay ids (sorted
first), shared by every model and fraction: the stays of a larger fraction include those of a smaller one, and
models are compared on the same stays. The permutations use their own seed streams (``[seed, 2]`` and
``[seed, 3]``), apart from the bootstrap's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.evaluation.metrics import METRICS, Evaluation
from medfuse_bench.evaluation.predictions import Predictions
from medfuse_bench.paths import Workdir
from medfuse_bench.report.inputs import read_json
from medfuse_bench.report.tables import estimate_columns

Score = Callable[[Predictions], Evaluation]

_A2_STREAM, _A3_STREAM = 2, 3


def seeded_order(stay_ids: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """The stay ids (sorted, then permuted by ``[seed, stream]``): a fraction f takes the first round(f * n).

    >>> a = seeded_order(np.array([30, 10, 20]), seed=0, stream=2)
    >>> a.tolist() == seeded_order(np.array([10, 20, 30]), seed=0, stream=2).tolist()
    True
    """
    ids = np.sort(np.asarray(stay_ids))
    return ids[np.random.default_rng([seed, stream]).permutation(ids.size)]


def take_first(order: np.ndarray, fraction: float) -> np.ndarray:
    """The first ``round(fraction * n)`` ids of ``order``.

    >>> take_first(np.array([5, 1, 3, 2]), 0.5).tolist()
    [5, 1]
    """
    return order[: int(round(fraction * order.size))]


def mix_predictions(paired: Predictions, nocxr: Predictions, dropped: np.ndarray) -> Predictions:
    """Paired-test predictions where the stays in ``dropped`` take their probabilities from the no-X-ray run.

    >>> p = Predictions(["m"], np.array([1, 2]), np.array([[0], [1]]), np.array([[0.1], [0.9]]))
    >>> q = Predictions(["m"], np.array([2, 1]), np.array([[1], [0]]), np.array([[0.6], [0.4]]))
    >>> mix_predictions(p, q, np.array([1])).y_score.ravel().tolist()
    [0.4, 0.9]
    """
    mismatch = MedfuseError("paired.parquet and paired_nocxr.parquet of one experiment must hold the same stays; "
                            "re-run predict for that experiment")
    if paired.stay_id.size != nocxr.stay_id.size:
        raise mismatch
    order = np.argsort(nocxr.stay_id)
    pos = np.minimum(np.searchsorted(nocxr.stay_id, paired.stay_id, sorter=order), max(order.size - 1, 0))
    aligned = order[pos]
    if not np.array_equal(nocxr.stay_id[aligned], paired.stay_id):
        raise mismatch
    drop = np.isin(paired.stay_id, dropped)
    scores = np.where(drop[:, None], nocxr.y_score[aligned], paired.y_score)
    return Predictions(paired.labels, paired.stay_id, paired.y_true, scores)


def curve_record(fraction: float, n_changed: int, ev: Evaluation) -> dict[str, object]:
    record: dict[str, object] = {"fraction": fraction, "stays_changed": n_changed, "n": ev.n}
    for m in METRICS:
        record |= estimate_columns(m, ev.macro(m))
    return record


_CURVE_SCHEMA = {
    "task": pl.String(),
    "experiment": pl.String(),
    "fraction": pl.Float64(),
    "stays_changed": pl.Int64(),
    "n": pl.Int64(),
    **{f"{m}{s}": pl.Float64() for m in METRICS for s in ("", "_ci_low", "_ci_high")},
}


def curve_frame(records: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(records, schema=_CURVE_SCHEMA)


def drop_cxr_curve(
    task: str, experiment: str, paired: Predictions, nocxr: Predictions, fractions: list[float], seed: int, score: Score
) -> list[dict[str, object]]:
    """Figure A2 points of one model: for each fraction, that share of paired test stays predicted without X-ray."""
    order = seeded_order(paired.stay_id, seed, _A2_STREAM)
    records = []
    for f in fractions:
        dropped = take_first(order, f)
        ev = score(mix_predictions(paired, nocxr, dropped))
        records.append({"task": task, "experiment": experiment} | curve_record(f, dropped.size, ev))
    return records


def unimodal_test_curve(
    task: str,
    experiment: str,
    partial: Predictions,
    paired_stays: np.ndarray,
    fractions: list[float],
    seed: int,
    score: Score,
) -> list[dict[str, object]]:
    """Figure A3 points of one model: the paired test stays plus each fraction of the unpaired test stays."""
    unpaired = partial.stay_id[~np.isin(partial.stay_id, paired_stays)]
    order = seeded_order(unpaired, seed, _A3_STREAM)
    records = []
    for f in fractions:
        added = take_first(order, f)
        ev = score(partial.subset(np.isin(partial.stay_id, paired_stays) | np.isin(partial.stay_id, added)))
        records.append({"task": task, "experiment": experiment} | curve_record(f, added.size, ev))
    return records


def sweep_frame(workdir: Workdir, tasks: list[str]) -> pl.DataFrame:
    """Figure A1 data: validation AUROC/AUPRC of every ``medfuse-p{N}`` (selected.json), by task and percent."""
    records = []
    for task in tasks:
        for percent, experiment in workdir.sweep(task):
            path = workdir.selected(task, experiment)
            selected = read_json(path) or {}
            if "val_auroc" not in selected:
                raise MedfuseError(f"'{path}' lacks key 'val_auroc'; re-run the select step")
            records.append({
                "task": task,
                "percent": percent,
                "experiment": experiment,
                "val_auroc": selected["val_auroc"],
                "val_auprc": selected.get("val_auprc"),
            })
    schema = {"task": pl.String(), "percent": pl.Int64(), "experiment": pl.String(),
              "val_auroc": pl.Float64(), "val_auprc": pl.Float64()}
    return pl.DataFrame(records, schema=schema)
