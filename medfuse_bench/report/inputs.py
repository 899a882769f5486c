"""How the report, scores and leaderboard read their inputs (the workdir layout is :mod:`medfuse_bench.paths`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import read_json_object
from medfuse_bench.paths import Workdir
from medfuse_bench.resources import task_labels

__all__ = ["Workdir", "read_json", "read_samples", "select_test_set"]


def read_json(path: Path, hint: str = "rerun the step that writes it") -> dict[str, Any] | None:
    """A JSON object file as a dict, None when absent; a broken file is an error naming it."""
    return read_json_object(path, hint) if path.exists() else None


def read_samples(path: Path, task: str) -> pl.DataFrame:
    """The task's samples table with the columns evaluation needs (checked, with a message naming the file)."""
    if not path.exists():
        raise MedfuseError(f"samples table '{path}' does not exist; run the task-tables step for '{task}' first")
    frame = pl.read_parquet(path)
    needed = ["stay_id", "split", "cxr_dicom_id", *task_labels(task)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise MedfuseError(f"samples table '{path}' lacks column '{missing[0]}' ({len(missing)} missing)")
    duplicated = frame.filter(pl.col("stay_id").is_duplicated())
    if duplicated.height:
        raise MedfuseError(
            f"samples table '{path}' has {duplicated['stay_id'].n_unique()} duplicated stay_id value(s), "
            f"e.g. {duplicated['stay_id'][0]}"
        )
    return frame


def select_test_set(samples: pl.DataFrame, test_set: str) -> pl.DataFrame:
    """Test rows of a samples table: ``partial`` = every test stay, ``paired`` = those with a linked X-ray.

    >>> s = pl.DataFrame({"stay_id": [1, 2, 3], "split": ["test", "test", "train"], "cxr_dicom_id": ["a", None, "b"]})
    >>> select_test_set(s, "paired")["stay_id"].to_list(), select_test_set(s, "partial")["stay_id"].to_list()
    ([1], [1, 2])
    """
    test = samples.filter(pl.col("split") == "test")
    if test_set == "partial":
        return test
    if test_set in ("paired", "paired_nocxr"):
        return test.filter(pl.col("cxr_dicom_id").is_not_null())
    raise MedfuseError(f"unknown test set '{test_set}'; expected partial or paired")
