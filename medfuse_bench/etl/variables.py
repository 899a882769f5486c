"""``medfuse-bench variables`` (rule ``variables``): chart and lab events -> the 17 clinical variables, cleaned,
assigned to stays, one value per time: events.parquet and its counts.

The clinical rules are in :mod:`.variable_rules` (values) and :mod:`.variable_linking` (stays, duplicates, GCS total);
:mod:`.variable_extraction` applies them to one batch of subjects. This module cuts the cohort into batches of
subjects and streams their events to the file.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from tqdm import tqdm

from medfuse_bench.etl import DEFAULT_POLICY, exclusions, policy_record
from medfuse_bench.etl.stage_io import raw_table
from medfuse_bench.etl.variable_extraction import RAW_EVENT_SCHEMA, extract_coded_events
from medfuse_bench.fidelity import FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import atomic_path, write_json

log = logging.getLogger(__name__)


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


def run_variables(
    raw_dir: str | Path,
    stays_path: str | Path,
    out: str | Path,
    stats_path: str | Path | None = None,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
    rows_per_batch: int = 5_000_000,
) -> dict[str, Any]:
    """The stage: write events.parquet from the ingest folder and the cohort, and the counts to ``stats_path`` when
    given; return the counts.

    Subjects are processed in batches of consecutive subject ids (about ``rows_per_batch`` events each), so memory
    stays bounded whatever the size of chartevents, and a raw table in subject order (as the generator writes it) is
    read once in all: the subject_id range of a batch lets the Parquet reader skip the other batches' row groups.
    A batch holds every event of its subjects, as the original's links to any stay of the subject need.
    Batch outputs are sorted and appended in subject_id order, so the file is sorted by subject_id, stay_id, hours,
    variable without a merge.
    """
    raw_dir = Path(raw_dir)
    stays = pl.read_parquet(stays_path)
    sources = [raw_table(raw_dir, "chartevents"), raw_table(raw_dir, "labevents")]
    scan = pl.concat([pl.scan_parquet(p).select(list(RAW_EVENT_SCHEMA)) for p in sources], how="vertical_relaxed")
    n_rows = scan.select(pl.len()).collect().item()
    batches = max(1, min(math.ceil(n_rows / rows_per_batch), stays["subject_id"].n_unique()))
    batch_of = subject_batches(stays, batches)
    counts: dict[str, Any] = {"fidelity": policy_record(policy, "variables"), "batches": batches, "rows_raw": n_rows}
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
    outside = n_rows - counts.get("rows_in", 0)
    found = counts.get("exclusions", [])
    if outside:
        found.append(exclusions.record("variables", "chartevents, labevents", "subject_id",
                                       "subject not in the cohort", outside))
    counts["exclusions"] = exclusions.ordered(found)
    log.info("variables (%s): %d events in, %d out", policy.summary_line(), n_rows,
             sum(counts.get("rows_out", {}).values()))
    if stats_path is not None:
        write_json(counts, stats_path)
    return counts


#: Rows per Parquet row group of events.parquet: small enough that the time-series stage, reading one chunk of
#: stays by subject_id range, skips most of the file.
EVENTS_ROW_GROUP = 131_072


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("variables", help="map events to the 17 clinical variables, clean them, assign them to stays")
    p.add_argument("--raw-dir", required=True,
                   help="folder of raw Parquet tables written by `ingest` ({workdir}/etl/raw)")
    p.add_argument("--stays", required=True, help="stays table written by `cohort`")
    p.add_argument("--out", required=True, help="output long events table ({workdir}/etl/events.parquet)")
    add_policy_arguments(p)
    p.add_argument("--stats", default=None, help="optional output JSON of what each cleaning step removed")
    p.add_argument("--rows-per-batch", type=int, default=5_000_000,
                   help="events processed per batch of subjects; bounds memory at about 0.5 KB per event "
                   "(default: 5000000)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    run_variables(args.raw_dir, args.stays, args.out, args.stats, policy=policy_from_args(args),
                  rows_per_batch=args.rows_per_batch)
    return 0
