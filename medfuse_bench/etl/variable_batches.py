"""The variables stage's batching: the cohort's subjects cut into batches of consecutive subject ids, each batch's
events extracted (:mod:`.variable_extraction`) and appended to events.parquet in subject_id order, one batch written
on a second thread while the next is read and cleaned.
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from tqdm import tqdm

from medfuse_bench.etl import exclusions
from medfuse_bench.etl.variable_extraction import extract_coded_events
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.io import atomic_path

#: Rows per Parquet row group of events.parquet: small enough that the time-series stage, reading one chunk of
#: stays by subject_id range, skips most of the file.
EVENTS_ROW_GROUP = 131_072


def merge_counts(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add the counts of one batch of subjects to the running totals."""
    for key, value in part.items():
        if key == "exclusions":
            total[key] = exclusions.merge([*total.get(key, []), *value])
        elif isinstance(value, dict):
            total[key] = dict(Counter(total.get(key, {})) + Counter(value))
        else:
            total[key] = total.get(key, 0) + value
    return total


def subject_batches(stays: pl.DataFrame, batches: int) -> pl.DataFrame:
    """subject_id and ``batch``: the cohort's subjects in subject_id order cut into ``batches`` runs of equal size.

    Batches are subject_id ranges, so the batches' sorted outputs put together are sorted by subject_id, and a raw
    table stored in subject order is read one range of row groups per batch.

    >>> stays = pl.DataFrame({"subject_id": [5, 1, 5, 2, 3], "stay_id": [50, 10, 40, 20, 30]})
    >>> subject_batches(stays, 2).rows()
    [(1, 0), (2, 0), (3, 1), (5, 1)]
    """
    subjects = stays.select(pl.col("subject_id").unique().sort())
    n = subjects.height
    return subjects.with_columns(batch=pl.Series(np.arange(n, dtype=np.int64) * batches // max(n, 1)))


def write_events(scan: pl.LazyFrame, stays: pl.DataFrame, out: str | Path, policy: FidelityPolicy,
                 rows_per_batch: int) -> dict[str, Any]:
    """Write the events of the raw events ``scan`` (ingest schema) for the ``stays`` to ``out``; return the counts,
    ``rows_raw`` and ``batches`` included.

    Subjects are processed in batches of consecutive subject ids (about ``rows_per_batch`` events each), so memory
    stays bounded whatever the size of chartevents, and a raw table in subject order (as the generator writes it) is
    read once in all: the subject_id range of a batch lets the Parquet reader skip the other batches' row groups.
    A batch holds every event of its subjects, as the original's links to any stay of the subject need.
    Batch outputs are sorted and appended in subject_id order, so the file is sorted by subject_id, stay_id, hours,
    variable without a merge.
    """
    n_rows = scan.select(pl.len()).collect().item()
    batches = max(1, min(math.ceil(n_rows / rows_per_batch), stays["subject_id"].n_unique()))
    batch_of = subject_batches(stays, batches)
    counts: dict[str, Any] = {"batches": batches, "rows_raw": n_rows}
    with atomic_path(out) as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        writer = None
        written: Future | None = None
        try:
            for b in tqdm(range(batches), desc="variables", unit="batch"):
                subjects = batch_of.filter(pl.col("batch") == b)["subject_id"]
                subject = pl.col("subject_id")
                in_batch = subject.is_between(subjects.min(), subjects.max()) & subject.is_in(subjects.implode())
                events = scan.filter(in_batch).collect()
                part, part_counts = extract_coded_events(events, stays.filter(in_batch), policy=policy)
                del events
                merge_counts(counts, part_counts)
                # The Enum columns go to the writer as dictionaries, which it stores without re-encoding the texts
                # of every row; without the Arrow schema in the file, readers still see plain string columns.
                table = part.to_arrow()
                del part
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", store_schema=False)
                if written is not None:
                    written.result()
                # pyarrow encodes and compresses outside the GIL: the batch is written on a second thread while
                # the next one is read and cleaned, in order, one batch at a time.
                written = pool.submit(writer.write_table, table.cast(writer.schema), row_group_size=EVENTS_ROW_GROUP)
                del table
            if written is not None:
                written.result()
        finally:
            if written is not None:
                wait([written])
            if writer is not None:
                writer.close()
    return counts
