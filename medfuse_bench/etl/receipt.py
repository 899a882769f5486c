"""``medfuse-bench receipt`` (rule ``receipt``): the cohort receipt ``{workdir}/receipt.json``, and the comparison of two receipts.

MIMIC is credentialed, so every group builds its own test set. The receipt says which data a number was measured
on without sharing it: for each task and split the number of stays, subjects, stays with a linked X-ray and
positives per label, and order-independent content hashes of the samples table and of the time series
(:mod:`medfuse_bench.etl.receipt_hash`); beside them the MIMIC-IV version detected by ingest, the cohort preset and
task definitions, the fidelity policy of the ETL stages and the package version. It holds no path, time or machine
detail, so two groups with the same data and settings get the same file byte for byte, whatever their row order or
number of cores; a change to one stay changes the hashes of its task and split. ``score`` records the receipt's
SHA-256 (:func:`receipt_id`) and ``leaderboard`` never ranks entries of two receipts together.

``medfuse-bench receipt --compare A B`` lists, per task and split, what differs between two receipts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench import __version__
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.receipt_hash import counts, split_timeseries_hash, table_hash
from medfuse_bench.etl.task_tables import METADATA_KEY
from medfuse_bench.fidelity import SWITCHES, FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import read_json_object, write_text
from medfuse_bench.resources import SPLITS, TASKS, task_labels

FORMAT = 1
#: The stages whose switches shape the task tables and time series; training and report switches do not.
ETL_STAGES: tuple[str, ...] = ("cohort", "variables", "phenotypes", "cxr_uni", "task_tables", "timeseries")


def fidelity_record(policy: FidelityPolicy) -> dict[str, Any]:
    """The preset, a summary line and the value of every switch of the ETL stages.

    >>> p = FidelityPolicy.from_switches("corrected", {"age": "anchor_age", "mmtm_step": "three_passes"})
    >>> r = fidelity_record(p)
    >>> r["preset"], r["summary"], r["switches"]["age"], "mmtm_step" in r["switches"]
    ('corrected', 'fidelity policy: corrected, with age=anchor_age', 'anchor_age', False)
    """
    etl = [s.name for s in SWITCHES if s.stage in ETL_STAGES]
    deviations = {k: v for k, v in policy.deviations().items() if k in etl}
    summary = FidelityPolicy.from_switches(policy.preset_name, deviations).summary_line()
    return {"preset": policy.preset_name, "summary": summary, "switches": {k: getattr(policy, k) for k in etl}}


def policy_args(policy: FidelityPolicy) -> str:
    """CLI arguments carrying the policy's preset and its deviating ETL switches (what the receipt records).

    >>> policy_args(FidelityPolicy.from_switches("corrected", {"age": "anchor_age", "mmtm_step": "three_passes"}))
    '--fidelity corrected --switch age=anchor_age'
    """
    etl = {s.name for s in SWITCHES if s.stage in ETL_STAGES}
    return " ".join([f"--fidelity {policy.preset_name}",
                     *(f"--switch {k}={v}" for k, v in policy.deviations().items() if k in etl)])


def task_definition(samples_path: Path) -> dict[str, Any] | None:
    """The task definition task-tables stored in the samples table's Parquet metadata, if any."""
    raw = (pl.read_parquet_metadata(samples_path) or {}).get(METADATA_KEY)
    try:
        value = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def task_record(task_dir: Path, task: str) -> dict[str, Any]:
    """Counts and hashes of every split of one task, from ``task_dir`` (samples table and time series)."""
    path = task_dir / "samples.parquet"
    if not path.exists():
        raise MedfuseError(f"'{path}' does not exist; run the task-tables step for '{task}' first")
    labels = task_labels(task)
    samples = pl.read_parquet(path)
    missing = [c for c in ("stay_id", "subject_id", "split", "cxr_dicom_id", *labels) if c not in samples.columns]
    if missing:
        raise MedfuseError(f"'{path}' lacks column '{missing[0]}' ({len(missing)} missing); rerun task-tables")
    if samples["stay_id"].is_duplicated().any():
        raise MedfuseError(f"'{path}' has duplicated stay_id values; rerun task-tables")
    unknown = sorted(set(samples["split"].unique().to_list()) - set(SPLITS))
    if unknown:
        raise MedfuseError(f"'{path}' has split '{unknown[0]}'; expected {', '.join(SPLITS)}")
    normalizer = read_json_object(task_dir / "normalizer.json", "run the timeseries step for this task first")
    splits = {}
    for split in SPLITS:
        part = samples.filter(pl.col("split") == split)
        splits[split] = counts(part, labels) | {
            "table_sha256": table_hash(part, labels),
            "timeseries_sha256": split_timeseries_hash(task_dir, split, part["stay_id"]),
        }
    combined = "".join(f"{s}:{r['table_sha256']}:{r['timeseries_sha256']}\n" for s, r in splits.items())
    return {
        "definition": task_definition(path),
        "labels": labels,
        "timestep_hours": normalizer.get("timestep_hours"),
        "normalizer": normalizer.get("normalizer"),
        "sha256": hashlib.sha256(combined.encode()).hexdigest(),
        "splits": splits,
    }


def build_receipt(
    workdir: str | os.PathLike[str],
    tasks: list[str],
    policy: FidelityPolicy,
    *,
    preset: str | None = None,
    synthetic: bool = False,
) -> dict[str, Any]:
    """The receipt of ``workdir``'s tasks (see the module's docstring). ``preset`` (``etl.cohort_preset``), when
    given, must be the preset the task tables were built with."""
    workdir = Path(workdir)
    provenance = read_json_object(workdir / "etl" / "provenance.json", "run the ingest step first")
    mimic = provenance.get("mimic_iv") or {}
    records = {}
    for task in tasks:
        if task not in TASKS:
            raise MedfuseError(f"unknown task '{task}'; expected one of {', '.join(TASKS)}")
        records[task] = task_record(workdir / "tasks" / task, task)
        built = (records[task]["definition"] or {}).get("preset")
        if preset is not None and built is not None and built != preset:
            raise MedfuseError(f"tasks/{task}/samples.parquet was built with cohort preset '{built}', not "
                               f"'{preset}'; rerun task-tables")
    presets = sorted({p for r in records.values() if (p := (r["definition"] or {}).get("preset"))} | (
        {preset} if preset else set()))
    return {
        "format": FORMAT,
        "package_version": __version__,
        "data": "synthetic" if synthetic else "MIMIC-IV + MIMIC-CXR-JPG",
        "mimic_iv": {"version": mimic.get("version"), "layout": mimic.get("layout")},
        "cohort_preset": ", ".join(presets) or None,
        "leaky": any((r["definition"] or {}).get("leaky") is True for r in records.values()),
        "fidelity": fidelity_record(policy),
        "tasks": records,
    }


def receipt_text(receipt: dict[str, Any]) -> str:
    """The receipt as the bytes written to receipt.json: indented JSON, keys in a fixed order, one final newline."""
    return json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def receipt_id(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a receipt file: what a score records and what the leaderboard groups by."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_receipt(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A receipt file, checked to be one."""
    path = Path(path)
    if path.is_dir():
        path = path / "receipt.json"  # a workdir
    data = read_json_object(path, "pass a receipt.json written by `medfuse-bench receipt`")
    if not isinstance(data.get("tasks"), dict) or "format" not in data:
        raise MedfuseError(f"'{path}' is not a cohort receipt (no 'format' or 'tasks'); "
                           "pass a receipt.json written by `medfuse-bench receipt`")
    return data


# --- command line ---------------------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "receipt",
        help="write {workdir}/receipt.json (counts and content hashes of every task and split), or compare two",
        description="Write the cohort receipt of a workdir: for each task and split the number of stays, subjects, "
                    "paired stays and positives per label, and order-independent SHA-256 hashes of the samples table "
                    "and the time series; with the MIMIC-IV version, cohort preset, ETL fidelity switches and package "
                    "version. With --compare A B, say per task and split what differs between two receipts (exit "
                    "code 1 when they differ, 0 when identical); no data is needed.",
    )
    p.add_argument("--workdir", default=None, help="pipeline workdir holding etl/provenance.json and tasks/")
    p.add_argument("--out", default=None, help="output file (default: {workdir}/receipt.json)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=None,
                   help="tasks (default: every task with tasks/{task}/samples.parquet)")
    p.add_argument("--preset", default=None,
                   help="etl.cohort_preset; checked against the preset stored in the samples tables")
    p.add_argument("--synthetic", action="store_true", help="the data are the generated synthetic dataset")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                   help="compare two receipt files (or workdirs holding receipt.json) instead of writing one")
    add_policy_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.compare:
        from medfuse_bench.etl.receipt_compare import compare_receipts

        first, second = args.compare
        lines = compare_receipts(read_receipt(first), read_receipt(second))
        if not lines:
            print(f"identical receipts: {first} and {second}")
            return 0
        print(f"receipts differ ({first} vs {second}):")
        print("\n".join(f"  {line}" for line in lines))
        return 1
    if args.workdir is None:
        raise MedfuseError("receipt needs --workdir (to write a receipt) or --compare A B")
    workdir = Path(args.workdir)
    tasks = args.tasks or [t for t in TASKS if (workdir / "tasks" / t / "samples.parquet").exists()]
    if not tasks:
        raise MedfuseError(f"no tasks/{{task}}/samples.parquet under '{workdir}'; run the ETL first")
    receipt = build_receipt(workdir, tasks, policy_from_args(args), preset=args.preset, synthetic=args.synthetic)
    out = Path(args.out) if args.out else workdir / "receipt.json"
    write_text(receipt_text(receipt), out)
    print(f"receipt {receipt_id(out)[:12]} written to {out}")
    return 0
