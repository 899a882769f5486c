"""Rows that a stage drops or changes for a reason, counted per file, column and reason.

Each stage adds its records to what it already writes (``exclusions`` in cohort_counts.json, variables_counts.json
and phenotype_mapping.json; a Parquet metadata key of the task tables and of CXR_UNI), and the ETL summary lists them
all in one table. A record: stage, file (the raw table the rows come from, or the stage's input), column, reason,
action (``dropped`` or ``changed``), rows, and an example (an identifier and the value) where one helps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

#: Parquet key-value metadata key under which a table stores the records of the stage that wrote it.
METADATA_KEY = "medfuse_bench.exclusions"

#: Order of the fields of a record (and of the summary's columns).
FIELDS: tuple[str, ...] = ("stage", "file", "column", "reason", "action", "rows", "example")


def record(stage: str, file: str, column: str, reason: str, rows: int, *, action: str = "dropped",
           example: str | None = None) -> dict[str, Any]:
    """One record (see the module docstring)."""
    if action not in ("dropped", "changed"):
        raise ValueError(action)
    return {"stage": stage, "file": file, "column": column, "reason": reason, "action": action, "rows": int(rows),
            "example": example}


def count_rows(frame: pl.DataFrame | pl.LazyFrame, condition: pl.Expr, *, stage: str, file: str, column: str,
               reason: str, action: str = "dropped", example: pl.Expr | None = None) -> dict[str, Any] | None:
    """A record counting the rows of ``frame`` where ``condition`` holds (None when none does), with ``example``
    (a String expression) taken from the first such row.

    >>> f = pl.DataFrame({"stay_id": [1, 2, 3], "los": [2.0, -1.0, -3.0]})
    >>> count_rows(f, pl.col("los") < 0, stage="cohort", file="icustays", column="los", reason="negative",
    ...            example=pl.format("stay_id {}: los {}", "stay_id", "los"))["example"]
    'stay_id 2: los -1.0'
    """
    hits = frame.lazy().filter(condition.fill_null(False))
    picks = [pl.len().alias("rows")]
    if example is not None:
        picks.append(example.cast(pl.String).first().alias("example"))
    found = hits.select(picks).collect()
    n = int(found["rows"][0])
    if n == 0:
        return None
    return record(stage, file, column, reason, n, action=action,
                  example=found["example"][0] if example is not None else None)


def compact(records: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The records that count at least one row."""
    return [r for r in records if r is not None and r["rows"] > 0]


def merge(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add up the rows of records with the same stage, file, column, reason and action (the batches of a stage);
    the least example in text order is kept, so the result does not depend on how the rows were cut. Order: first
    appearance."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = (r["stage"], r["file"], r["column"], r["reason"], r["action"])
        if key in out:
            out[key]["rows"] += r["rows"]
            examples = [e for e in (out[key]["example"], r.get("example")) if e is not None]
            out[key]["example"] = min(examples) if examples else None
        else:
            out[key] = dict(r)
    return list(out.values())


def ordered(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records merged and sorted by file, column, reason and action."""
    return sorted(merge(records), key=lambda r: (r["stage"], r["file"], r["column"], r["reason"], r["action"]))


def to_metadata(records: list[dict[str, Any]]) -> dict[str, str]:
    """Parquet key-value metadata holding ``records``."""
    return {METADATA_KEY: json.dumps(records)}


def from_parquet(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records a Parquet file stores in its metadata (none for a file written without them)."""
    meta = pl.read_parquet_metadata(path)
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else []


def from_json(document: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The ``exclusions`` list of a stage's JSON record (none when absent)."""
    if not document:
        return []
    return [dict(r) for r in document.get("exclusions") or [] if isinstance(r, Mapping)]
