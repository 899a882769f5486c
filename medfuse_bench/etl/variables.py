"""``medfuse-bench variables`` (rule ``variables``): chart and lab events -> the 17 clinical variables, cleaned,
assigned to stays, one value per time: events.parquet and its counts.

The clinical rules are in :mod:`.variable_rules` (values) and :mod:`.variable_linking` (stays, duplicates, GCS total);
:mod:`.variable_extraction` applies them to one batch of subjects, and :mod:`.variable_batches` cuts the cohort into
batches of subjects and streams their events to the file.
"""

from __future__ import annotations

import argparse
import time
import logging
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.etl import DEFAULT_POLICY, exclusions, policy_record
from medfuse_bench.etl.stage_io import log_rate, raw_table
from medfuse_bench.etl.variable_batches import write_events
from medfuse_bench.etl.variable_extraction import RAW_EVENT_SCHEMA
from medfuse_bench.fidelity import FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import write_json

log = logging.getLogger(__name__)


def run_variables(
    raw_dir: str | Path,
    stays_path: str | Path,
    out: str | Path,
    stats_path: str | Path | None = None,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
    rows_per_batch: int = 5_000_000,
) -> dict[str, Any]:
    """The stage: write events.parquet from the ingest folder and the cohort, batch by batch of subjects
    (:func:`.variable_batches.write_events`), and the counts to ``stats_path`` when given; return the counts."""
    stays = pl.read_parquet(stays_path)
    sources = [raw_table(raw_dir, "chartevents"), raw_table(raw_dir, "labevents")]
    scan = pl.concat([pl.scan_parquet(p).select(list(RAW_EVENT_SCHEMA)) for p in sources], how="vertical_relaxed")
    counts = {"fidelity": policy_record(policy, "variables"), **write_events(scan, stays, out, policy, rows_per_batch)}
    n_rows = counts["rows_raw"]
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
    started = time.perf_counter()
    counts = run_variables(args.raw_dir, args.stays, args.out, args.stats, policy=policy_from_args(args),
                           rows_per_batch=args.rows_per_batch)
    log_rate(log, "variables", counts["rows_raw"], "raw events", started)
    return 0
