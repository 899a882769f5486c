"""Order-independent content hashes and counts of one task's split, for the cohort receipt.

Both hashes are SHA-256 over a canonical byte stream in which the stays appear in ``stay_id`` order, so neither the
row order of the samples table nor how the time-series arrays were written (chunks, threads) changes them:

* the table hash covers, per stay: ``stay_id``, ``subject_id``, ``split``, the linked X-ray ``cxr_dicom_id`` and
  every label, written as CSV with a header of those column names (labels in the package's label order);
* the time-series hash covers the number of features, then per stay ``stay_id`` and its number of time steps
  (little-endian int64), then every stay's rows as little-endian float32 (``-0.0`` written as ``0.0``).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError

TABLE_COLUMNS: tuple[str, ...] = ("stay_id", "subject_id", "split", "cxr_dicom_id")

#: Time steps hashed per block: bounds the memory of the reordered copy (76 float32 features: about 300 MB).
ROWS_PER_BLOCK = 1_000_000


def table_hash(samples: pl.DataFrame, labels: list[str]) -> str:
    """SHA-256 of the stays' ids, split, linked X-ray and labels, whatever the row order.

    >>> a = pl.DataFrame({"stay_id": [2, 1], "subject_id": [20, 10], "split": ["test", "test"],
    ...                   "cxr_dicom_id": [None, "x"], "mortality": [1, 0]})
    >>> table_hash(a, ["mortality"]) == table_hash(a.reverse(), ["mortality"])
    True
    >>> table_hash(a, ["mortality"]) == table_hash(a.with_columns(pl.lit(0).alias("mortality")), ["mortality"])
    False
    """
    columns = [*TABLE_COLUMNS, *labels]
    canonical = samples.select(
        pl.col("stay_id").cast(pl.Int64),
        pl.col("subject_id").cast(pl.Int64),
        pl.col("split").cast(pl.String),
        pl.col("cxr_dicom_id").cast(pl.String),
        *(pl.col(lab).cast(pl.Int64) for lab in labels),
    ).sort("stay_id")
    buffer = io.BytesIO()
    canonical.select(columns).write_csv(buffer, include_header=True, line_terminator="\n", null_value="")
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def counts(samples: pl.DataFrame, labels: list[str]) -> dict[str, Any]:
    """Stays, subjects, stays with a linked X-ray and positives per label.

    >>> counts(pl.DataFrame({"stay_id": [1, 2, 3], "subject_id": [7, 7, 8], "cxr_dicom_id": ["a", None, None],
    ...                      "mortality": [1, 0, 1]}), ["mortality"])
    {'stays': 3, 'subjects': 2, 'paired': 1, 'positives': {'mortality': 2}}
    """
    row = samples.select(
        pl.len().alias("stays"),
        pl.col("subject_id").n_unique().alias("subjects"),
        pl.col("cxr_dicom_id").is_not_null().sum().alias("paired"),
        *((pl.col(lab) == 1).sum().alias(f"+{lab}") for lab in labels),
    ).row(0, named=True) if samples.height else {"stays": 0, "subjects": 0, "paired": 0}
    return {
        "stays": int(row["stays"]),
        "subjects": int(row["subjects"]),
        "paired": int(row["paired"]),
        "positives": {lab: int(row.get(f"+{lab}") or 0) for lab in labels},
    }


def timeseries_hash(array: np.ndarray, index: pl.DataFrame, source: str) -> str:
    """SHA-256 of each stay's time steps in ``stay_id`` order; ``index`` holds stay_id, offset, length of the stays
    whose rows ``array`` holds (in any order). A hole or overlap between the stays' rows is an error naming
    ``source``.

    >>> x = np.arange(12, dtype=np.float32).reshape(6, 2)
    >>> i = pl.DataFrame({"stay_id": [5, 3], "offset": [0, 4], "length": [4, 2]})
    >>> y = np.concatenate([x[4:], x[:4]])  # the same stays, written in the other order
    >>> j = pl.DataFrame({"stay_id": [3, 5], "offset": [0, 2], "length": [2, 4]})
    >>> timeseries_hash(x, i, "a") == timeseries_hash(y, j, "b")
    True
    """
    ordered = index.select(pl.col("stay_id").cast(pl.Int64), pl.col("offset").cast(pl.Int64),
                           pl.col("length").cast(pl.Int64)).sort("stay_id")
    stay = ordered["stay_id"].to_numpy()
    offset = ordered["offset"].to_numpy()
    length = ordered["length"].to_numpy()
    if (length < 0).any():
        raise MedfuseError(f"{source}: the index has negative lengths; rerun the timeseries step")
    rows = np.repeat(offset, length) + _within(length)  # the array's rows in stay order
    covered = np.bincount(rows[rows >= 0], minlength=array.shape[0])
    if rows.size != array.shape[0] or covered.size != array.shape[0] or (covered != 1).any():
        raise MedfuseError(
            f"{source}: the index's offsets and lengths ({rows.size} time steps) do not cover the array's "
            f"{array.shape[0]} rows once each; rerun the timeseries step"
        )
    digest = hashlib.sha256()
    digest.update(np.asarray([array.shape[1] if array.ndim == 2 else 0], dtype="<i8").tobytes())
    digest.update(np.stack([stay, length], axis=1).astype("<i8").tobytes())
    for start in range(0, rows.size, ROWS_PER_BLOCK):
        block = np.asarray(array[rows[start:start + ROWS_PER_BLOCK]], dtype="<f4") + np.float32(0.0)  # -0.0 -> 0.0
        digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


def _within(length: np.ndarray) -> np.ndarray:
    """0, 1, ..., length-1 for each stay, concatenated."""
    total = int(length.sum())
    starts = np.repeat(np.cumsum(length) - length, length)
    return np.arange(total, dtype=np.int64) - starts


def split_timeseries_hash(task_dir: Path, split: str, stays: pl.Series) -> str:
    """:func:`timeseries_hash` of ``timeseries_{split}.npy``; its stays must be exactly ``stays``."""
    array_path = task_dir / f"timeseries_{split}.npy"
    index_path = task_dir / "timeseries_index.parquet"
    for path in (array_path, index_path):
        if not path.exists():
            raise MedfuseError(f"'{path}' does not exist; run the timeseries step for this task first")
    index = pl.read_parquet(index_path).filter(pl.col("split") == split)
    expected = set(stays.to_list())
    found = set(index["stay_id"].to_list())
    if found != expected:
        diff = sorted(expected ^ found)
        raise MedfuseError(
            f"'{index_path}' lists {len(found)} {split} stays where the samples table has {len(expected)} "
            f"({len(diff)} differ, e.g. stay_id {diff[0]}); rerun the timeseries step"
        )
    try:
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise MedfuseError(f"'{array_path}' is not a readable .npy array ({exc}); rerun the timeseries step") from exc
    return timeseries_hash(array, index, str(array_path))
