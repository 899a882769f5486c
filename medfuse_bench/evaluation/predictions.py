"""Prediction files (``predictions/{task}/{experiment}/{test_set}.parquet``): read, check, turn into arrays.

A prediction file holds ``stay_id``, then ``target:<label>`` (Int8 0/1 truth) and ``<label>`` (Float64
probability) for every label of the task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError

TARGET_PREFIX = "target:"


@dataclass(frozen=True)
class Predictions:
    """Truth and probabilities of one prediction file as arrays ``[n, labels]``, rows in file order."""

    labels: list[str]
    stay_id: np.ndarray
    y_true: np.ndarray
    y_score: np.ndarray

    def subset(self, mask: np.ndarray) -> Predictions:
        return Predictions(self.labels, self.stay_id[mask], self.y_true[mask], self.y_score[mask])


def target_column(label: str) -> str:
    return f"{TARGET_PREFIX}{label}"


def labels_of(frame: pl.DataFrame) -> list[str]:
    """The labels of a prediction frame, in column order of its ``target:`` columns.

    >>> labels_of(pl.DataFrame({"stay_id": [1], "target:mortality": [0], "mortality": [0.2]}))
    ['mortality']
    """
    return [c[len(TARGET_PREFIX) :] for c in frame.columns if c.startswith(TARGET_PREFIX)]


def check_prediction_frame(frame: pl.DataFrame, labels: list[str], source: str) -> None:
    """Raise :class:`MedfuseError` naming the column at fault unless ``frame`` is a complete prediction table."""
    needed = ["stay_id", *(target_column(lab) for lab in labels), *labels]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise MedfuseError(f"{source}: missing column '{missing[0]}' ({len(missing)} missing); expected stay_id, "
                           "target:<label> and <label> for every label of the task")
    if frame.height == 0:
        raise MedfuseError(f"{source}: no rows")
    for lab in labels:
        target = target_column(lab)
        bad = frame.filter(pl.col(target).is_null() | ~pl.col(target).is_in([0, 1])).height
        if bad:
            raise MedfuseError(f"{source}: column '{target}' has {bad} value(s) that are not 0 or 1")
        if not frame.schema[lab].is_numeric():
            raise MedfuseError(f"{source}: column '{lab}' must hold numeric probabilities, not {frame.schema[lab]}")
        bad = frame.filter(pl.col(lab).is_null() | ~pl.col(lab).cast(pl.Float64).is_finite()).height
        if bad:
            raise MedfuseError(f"{source}: column '{lab}' has {bad} missing or non-finite probabilities")


def to_predictions(frame: pl.DataFrame, labels: list[str]) -> Predictions:
    """Arrays of a checked prediction frame."""
    return Predictions(
        labels=list(labels),
        stay_id=frame["stay_id"].to_numpy(),
        y_true=frame.select(target_column(lab) for lab in labels).to_numpy().astype(np.int8),
        y_score=frame.select(pl.col(lab).cast(pl.Float64) for lab in labels).to_numpy(),
    )


def read_predictions(path: str | os.PathLike[str], labels: list[str] | None = None) -> Predictions:
    """Read and check a prediction file; ``labels`` None takes them from its ``target:`` columns."""
    path = Path(path)
    if not path.exists():
        raise MedfuseError(f"prediction file '{path}' does not exist")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unusable
        raise MedfuseError(f"prediction file '{path}' is not readable Parquet: {exc}") from exc
    labels = labels_of(frame) if labels is None else labels
    if not labels:
        raise MedfuseError(f"prediction file '{path}' has no 'target:<label>' columns")
    check_prediction_frame(frame, labels, str(path))
    return to_predictions(frame, labels)
