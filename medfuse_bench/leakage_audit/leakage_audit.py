"""The ``leakage-audit`` subcommand: read one task's files, run the audit, write the reports, fail on a blocking
finding."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import polars as pl

from medfuse_bench import leakage_audit
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.task_tables import read_task_definition
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args
from medfuse_bench.resources import TASKS

log = logging.getLogger(__name__)


def _exists(path: str | Path, hint: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise MedfuseError(f"'{path}' does not exist; {hint}")
    return path


def run_leakage_audit(args: argparse.Namespace) -> int:
    try:
        import icu_leakage_check
    except ImportError as exc:
        raise MedfuseError("the leakage audit needs icu-leakage-check; `pip install icu-leakage-check==0.1.0` "
                           "(a dependency of medfuse-bench)") from exc
    samples_path = _exists(args.samples, "run `medfuse-bench task-tables` first")
    inputs = leakage_audit.TaskInputs(
        task=args.task,
        samples=pl.read_parquet(samples_path),
        definition=read_task_definition(samples_path),
        stays=pl.read_parquet(_exists(args.stays, "run `medfuse-bench cohort` first")),
        events=pl.scan_parquet(_exists(args.events, "run `medfuse-bench variables` first")),
        cxr_metadata=pl.read_parquet(_exists(args.cxr_metadata, "run `medfuse-bench ingest` first")),
        timeseries_dir=_exists(args.timeseries_dir, "run `medfuse-bench timeseries` first"),
        policy=policy_from_args(args),
        raw_labevents=Path(args.raw_labevents) if args.raw_labevents else None,
        truncation_stays=args.truncation_stays,
        seed=args.seed,
        chunk_events=args.chunk_events,
    )
    log.info("auditing %s with icu-leakage-check %s (window_by %s)", args.task, icu_leakage_check.__version__,
             inputs.policy.window_by)
    result = leakage_audit.audit_task(inputs)
    summary = leakage_audit.summarize(result, args.task, inputs.policy, inputs.definition, inputs.facts)
    print(result.summary(), file=sys.stderr)
    paths = leakage_audit.write_reports(result, summary, args.out_dir)
    log.info("%s: %s; report %s", args.task, summary["verdict"], paths["html"])
    line = leakage_audit.blocking_line(summary)
    if line:
        raise MedfuseError(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leakage-audit", help="audit a task's cohort for leakage with icu-leakage-check",
                       description=leakage_audit.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--samples", required=True, help="tasks/<task>/samples.parquet")
    p.add_argument("--stays", required=True, help="etl/stays.parquet")
    p.add_argument("--events", required=True, help="etl/events.parquet (with available_hours)")
    p.add_argument("--cxr-metadata", required=True, help="the ingest folder's cxr_metadata.parquet")
    p.add_argument("--timeseries-dir", required=True,
                   help="folder of the task's timeseries_{train,val,test}.npy, timeseries_index.parquet and "
                        "normalizer.json")
    p.add_argument("--raw-labevents", default=None,
                   help="the ingest folder's labevents.parquet: tells lab from chart rows of glucose, pH and O2 "
                        "saturation")
    p.add_argument("--out-dir", required=True, help="folder for leakage.html, leakage.json, leakage.md, summary.json")
    p.add_argument("--truncation-stays", type=int, default=500,
                   help="stays of the truncation check, a seeded sample (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    p.add_argument("--chunk-events", type=int, default=leakage_audit.DEFAULT_CHUNK_EVENTS,
                   help="events per chunk of patients of the event-level check; bounds the audit's memory "
                        f"(default {leakage_audit.DEFAULT_CHUNK_EVENTS:,})")
    add_policy_arguments(p)
    p.set_defaults(func=run_leakage_audit)
