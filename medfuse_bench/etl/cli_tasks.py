"""Subcommands of the second half of the ETL: ``splits``, ``cxr-uni``, ``task-tables``, ``timeseries``,
``check-splits`` and ``etl-summary``. Each reads and writes files around the pure functions of its module."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import cxr, exclusions, presets, splits, summary, task_tables, timeseries
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args
from medfuse_bench.io import atomic_path, write_json, write_parquet, write_text
from medfuse_bench.resources import TASKS

log = logging.getLogger(__name__)

CXR_TABLES = ("cxr_metadata", "cxr_chexpert", "cxr_split")


def _exists(path: str | Path, hint: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise MedfuseError(f"'{path}' does not exist; {hint}")
    return path


def _read(path: str | Path, hint: str, columns: list[str] | None = None) -> pl.DataFrame:
    path = _exists(path, hint)
    try:
        return pl.read_parquet(path, columns=columns)
    except pl.exceptions.PolarsError as exc:
        raise MedfuseError(f"'{path}' could not be read as Parquet ({exc}); {hint}") from exc


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MedfuseError(f"'{path}' is not valid JSON ({exc}); rerun the step that writes it") from exc


def _scan_events(path: str | Path) -> pl.LazyFrame:
    return pl.scan_parquet(_exists(path, "run `medfuse-bench variables` first"))


# --- splits ---------------------------------------------------------------------------------------------------------


def run_splits(args: argparse.Namespace) -> int:
    stays = _read(args.stays, "run `medfuse-bench cohort` first", columns=["subject_id"])
    raw = Path(args.raw_dir)
    others = []
    for table in CXR_TABLES:
        path = raw / f"{table}.parquet"
        if path.exists():
            others.append(_read(path, "rerun ingest", columns=["subject_id"])["subject_id"])
        else:
            log.warning("'%s' is missing: its subjects get no split row", path)
    test_list = splits.read_split_list(args.test_list, "--test-list") if args.test_list else None
    val_list = splits.read_split_list(args.val_list, "--val-list") if args.val_list else None
    out = splits.build_splits(stays["subject_id"], others, args.salt, args.train, args.val, test_list, val_list)
    counts = dict(out.group_by("split").len().iter_rows())
    log.info("splits of %d subjects (%d in the EHR cohort): %s", out.height, int(out["ehr"].sum()), counts)
    write_parquet(out, args.out)
    return 0


# --- cxr-uni --------------------------------------------------------------------------------------------------------


def run_cxr_uni(args: argparse.Namespace) -> int:
    raw = Path(args.raw_dir)
    hint = "run `medfuse-bench ingest` with the MIMIC-CXR-JPG tables"
    frames = {t: _read(raw / f"{t}.parquet", hint) for t in CXR_TABLES}
    patient_splits = _read(args.splits, "run `medfuse-bench splits` first")
    out = cxr.build_cxr_uni(frames["cxr_metadata"], frames["cxr_chexpert"], frames["cxr_split"], patient_splits,
                            cxr_uni_split=policy_from_args(args).cxr_uni_split)
    excluded = cxr.cxr_uni_exclusions(frames["cxr_metadata"], frames["cxr_chexpert"], frames["cxr_split"])
    with atomic_path(args.out) as tmp:
        out.write_parquet(tmp, compression="zstd", metadata=exclusions.to_metadata(excluded))
    return 0


# --- task-tables ----------------------------------------------------------------------------------------------------


def run_task_tables(args: argparse.Namespace) -> int:
    definition = presets.task_definition(args.task, args.preset, presets.parse_overrides(args.overrides))
    presets.warn_if_leaky(definition)
    stays = _read(args.stays, "run `medfuse-bench cohort` first")
    patient_splits = _read(args.splits, "run `medfuse-bench splits` first")
    metadata = _read(args.cxr_metadata, "run `medfuse-bench ingest` with the MIMIC-CXR-JPG tables")
    phenotypes = None
    if args.task == "phenotyping":
        if not args.phenotypes:
            raise MedfuseError("task phenotyping needs --phenotypes etl/phenotypes.parquet")
        phenotypes = _read(args.phenotypes, "run `medfuse-bench phenotypes` first")
    samples, excluded = task_tables.build_task_table(stays, _scan_events(args.events), patient_splits, metadata,
                                                     definition, phenotypes=phenotypes)
    counts = task_tables.sample_counts(samples)
    log.info("%s (%s): samples %s, paired %s", args.task, args.preset, counts["total"], counts["paired"])
    for r in excluded:
        log.info("%s: %d stay(s) left out: %s", args.task, r["rows"], r["reason"])
    task_tables.write_samples(samples, definition, args.out, excluded)
    return 0


# --- timeseries -----------------------------------------------------------------------------------------------------


def run_timeseries(args: argparse.Namespace) -> int:
    samples = _read(args.samples, "run `medfuse-bench task-tables` first")
    policy = policy_from_args(args)
    timeseries.write_timeseries(_scan_events(args.events), samples, args.out_dir, args.timestep, args.chunk_rows,
                                normalizer=policy.normalizer, window_by=policy.window_by)
    return 0


# --- check-splits ---------------------------------------------------------------------------------------------------


def _workdir_samples(workdir: Path) -> dict[str, Path]:
    return {t: workdir / "tasks" / t / "samples.parquet" for t in TASKS
            if (workdir / "tasks" / t / "samples.parquet").exists()}


def _parse_task_paths(items: list[str] | None) -> dict[str, Path]:
    out = {}
    for item in items or []:
        task, sep, path = item.partition("=")
        if not sep or task not in TASKS:
            raise MedfuseError(f"--samples expects TASK=PATH with TASK one of {', '.join(TASKS)}, got '{item}'")
        out[task] = Path(path)
    return out


def run_check_splits(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir) if args.workdir else None
    samples = _parse_task_paths(args.samples) or (_workdir_samples(workdir) if workdir else {})
    cxr_path = args.cxr_uni or (workdir / "cxr" / "cxr_uni.parquet" if workdir else None)
    splits_path = args.splits or (workdir / "etl" / "splits.parquet" if workdir else None)
    datasets = {task: _read(path, "run `medfuse-bench task-tables` first", columns=["subject_id", "split"])
                for task, path in samples.items()}
    if cxr_path is not None and Path(cxr_path).exists():
        datasets["cxr_uni"] = _read(cxr_path, "run `medfuse-bench cxr-uni` first", columns=["subject_id", "split"])
    if not datasets:
        raise MedfuseError("check-splits found no dataset; pass --workdir or --samples TASK=PATH / --cxr-uni PATH")
    reference = None
    if splits_path is not None and Path(splits_path).exists():
        reference = _read(splits_path, "run `medfuse-bench splits` first", columns=["subject_id", "split"])
    table = splits.check_splits(datasets, cxr_uni="cxr_uni" if "cxr_uni" in datasets else None, reference=reference)
    with pl.Config(tbl_rows=100, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_formatting="ASCII_MARKDOWN"):
        text = f"split check passed: no subject in two splits of any dataset\n{table}\n"
    print(text, end="")
    if args.out:
        write_text(text, args.out)
    return 0


# --- etl-summary ----------------------------------------------------------------------------------------------------


def run_etl_summary(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    etl_dir = workdir / "etl"
    samples = _parse_task_paths(args.samples) or _workdir_samples(workdir)
    if not samples:
        raise MedfuseError(f"no tasks/<task>/samples.parquet under '{workdir}'; run `medfuse-bench task-tables` first")
    tasks = {}
    for task, path in samples.items():
        tasks[task] = (_read(path, "run `medfuse-bench task-tables` first"), task_tables.read_task_definition(path))
        if tasks[task][1] is not None:
            presets.warn_if_leaky(tasks[task][1])
    cxr_path = Path(args.cxr_uni) if args.cxr_uni else workdir / "cxr" / "cxr_uni.parquet"
    cxr_uni = _read(cxr_path, "run `medfuse-bench cxr-uni` first") if cxr_path.exists() else None
    paths = {
        "stays": Path(args.stays) if args.stays else etl_dir / "stays.parquet",
        "events": Path(args.events) if args.events else etl_dir / "events.parquet",
        "splits": Path(args.splits) if args.splits else etl_dir / "splits.parquet",
        "cxr_metadata": Path(args.cxr_metadata) if args.cxr_metadata else etl_dir / "raw" / "cxr_metadata.parquet",
    }
    preset_part = None
    if all(p.exists() for p in paths.values()):
        preset_part = summary.preset_counts(
            _read(paths["stays"], ""), task_tables.first_event_hours(pl.scan_parquet(paths["events"])),
            _read(paths["splits"], ""), _read(paths["cxr_metadata"], ""), list(samples),
        )
    else:
        log.warning("preset counts skipped: missing %s", ", ".join(str(p) for p in paths.values() if not p.exists()))
    cohort_counts = _read_json(Path(args.cohort_counts) if args.cohort_counts else etl_dir / "cohort_counts.json")
    mapping = _read_json(Path(args.phenotype_mapping) if args.phenotype_mapping else etl_dir / "phenotype_mapping.json")
    variables_counts = _read_json(Path(args.variables_counts) if args.variables_counts
                                  else etl_dir / "variables_counts.json")
    excluded = [*exclusions.from_json(cohort_counts), *exclusions.from_json(variables_counts),
                *exclusions.from_json(mapping)]
    if cxr_uni is not None:
        excluded += exclusions.from_parquet(cxr_path)
    for path in samples.values():
        excluded += exclusions.from_parquet(path)
    result = summary.build_summary(tasks, cxr_uni, cohort_counts, mapping, preset_part, excluded)
    write_json(result, args.out_json or workdir / "tasks" / "summary.json")
    write_text(summary.render_markdown(result), args.out_md or workdir / "tasks" / "summary.md")
    if args.presets_out and preset_part is not None:
        write_json(preset_part, args.presets_out)
    return 0


# --- registration ---------------------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("splits", help="patient-level train/val/test split from a salted hash of subject_id",
                       description=splits.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stays", required=True, help="stays.parquet of the cohort (its subjects are the EHR patients)")
    p.add_argument("--raw-dir", required=True, help="ingest folder holding cxr_metadata/cxr_chexpert/cxr_split.parquet")
    p.add_argument("--out", required=True, help="output splits.parquet (subject_id, split, ehr)")
    p.add_argument("--salt", default=splits.DEFAULT_SALT, help="salt of the hash (etl.split.salt; keep it fixed)")
    p.add_argument("--train", type=float, default=0.7, help="fraction of patients in train (etl.split.train)")
    p.add_argument("--val", type=float, default=0.1, help="fraction of patients in val (etl.split.val)")
    p.add_argument("--test-list", default=None,
                   help="optional headerless 'subject_id,flag' list, flag 1 = test (e.g. testset_iv.csv)")
    p.add_argument("--val-list", default=None,
                   help="optional headerless 'subject_id,flag' list, flag 1 = val (e.g. valset_iv.csv)")
    p.set_defaults(func=run_splits)

    p = sub.add_parser("cxr-uni", help="CXR_UNI: every labelled X-ray with its split",
                       description=cxr.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw-dir", required=True, help="ingest folder holding cxr_metadata/cxr_chexpert/cxr_split.parquet")
    p.add_argument("--splits", required=True, help="splits.parquet (EHR patients' splits)")
    p.add_argument("--out", required=True, help="output cxr_uni.parquet")
    add_policy_arguments(p)
    p.set_defaults(func=run_cxr_uni)

    p = sub.add_parser("task-tables", help="one row per sample of a task: split, linked X-ray, labels",
                       description=task_tables.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stays", required=True, help="stays.parquet of the cohort")
    p.add_argument("--events", required=True, help="events.parquet (long cleaned events)")
    p.add_argument("--phenotypes", default=None, help="phenotypes.parquet (needed for phenotyping)")
    p.add_argument("--splits", required=True, help="splits.parquet")
    p.add_argument("--cxr-metadata", required=True, help="raw cxr_metadata.parquet of the ingest folder")
    p.add_argument("--task", required=True, choices=TASKS, help="the task to build")
    p.add_argument("--preset", default="medfuse", choices=presets.PRESET_NAMES,
                   help="task definitions (etl.cohort_preset); medfuse-2022 is leaky, only for reproducing "
                        "published numbers")
    p.add_argument("--overrides", default=None,
                   help="JSON object of etl.task_overrides for this task (ts_window_hours, cxr_window_hours, "
                        "min_stay_hours, views), or the whole etl.task_overrides mapping keyed by task")
    p.add_argument("--out", required=True, help="output tasks/<task>/samples.parquet")
    p.set_defaults(func=run_task_tables)

    p = sub.add_parser("timeseries", help="discretised, imputed, normalised 76-feature time series per split",
                       description=timeseries.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", required=True, help="events.parquet (long cleaned events)")
    p.add_argument("--samples", required=True, help="tasks/<task>/samples.parquet")
    p.add_argument("--out-dir", required=True,
                   help="folder for timeseries_{train,val,test}.npy, timeseries_index.parquet, normalizer.json")
    p.add_argument("--timestep", type=float, default=1.0, help="bin width in hours (etl.timestep_hours; default 1.0)")
    p.add_argument("--chunk-rows", type=int, default=250_000,
                   help="time steps densified at once; bounds memory at about 1 KB per step (default 250000)")
    add_policy_arguments(p)
    p.set_defaults(func=run_timeseries)

    p = sub.add_parser("check-splits", help="fail if any subject appears in two splits of any dataset",
                       description=splits.check_splits.__doc__)
    p.add_argument("--workdir", default=None,
                   help="pipeline workdir: checks tasks/*/samples.parquet and cxr/cxr_uni.parquet "
                        "(and the samples against etl/splits.parquet)")
    p.add_argument("--samples", nargs="*", default=None, metavar="TASK=PATH",
                   help="samples tables (instead of --workdir)")
    p.add_argument("--cxr-uni", default=None, help="cxr_uni.parquet (instead of --workdir)")
    p.add_argument("--splits", default=None, help="splits.parquet the task samples must agree with (optional)")
    p.add_argument("--out", default=None, help="also write the count table to this text file")
    p.set_defaults(func=run_check_splits)

    p = sub.add_parser("etl-summary", help="samples, paired vs partial, prevalence, preset counts (JSON + Markdown)",
                       description=summary.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True,
                   help="pipeline workdir; inputs default to its etl/, cxr/ and tasks/ files")
    p.add_argument("--out-json", default=None, help="output JSON (default {workdir}/tasks/summary.json)")
    p.add_argument("--out-md", default=None, help="output Markdown (default {workdir}/tasks/summary.md)")
    p.add_argument("--presets-out", default=None, help="also write the per-preset sample counts to this JSON file")
    p.add_argument("--samples", nargs="*", default=None, metavar="TASK=PATH",
                   help="samples tables (default: every tasks/<task>/samples.parquet under the workdir)")
    p.add_argument("--cxr-uni", default=None, help="cxr_uni.parquet (default {workdir}/cxr/cxr_uni.parquet)")
    p.add_argument("--stays", default=None, help="stays.parquet for the preset counts (default {workdir}/etl/)")
    p.add_argument("--events", default=None, help="events.parquet for the preset counts (default {workdir}/etl/)")
    p.add_argument("--splits", default=None, help="splits.parquet for the preset counts (default {workdir}/etl/)")
    p.add_argument("--cxr-metadata", default=None,
                   help="cxr_metadata.parquet for the preset counts (default {workdir}/etl/raw/)")
    p.add_argument("--cohort-counts", default=None, help="cohort_counts.json (default {workdir}/etl/)")
    p.add_argument("--phenotype-mapping", default=None, help="phenotype_mapping.json (default {workdir}/etl/)")
    p.add_argument("--variables-counts", default=None,
                   help="variables_counts.json, the --stats of `variables` (default {workdir}/etl/)")
    p.set_defaults(func=run_etl_summary)
