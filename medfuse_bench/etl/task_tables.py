"""``medfuse-bench task-tables`` (rule ``task_tables``): one table per task: which stays are samples, their split,
linked X-ray, time-series length and labels.

A stay is a sample of a task when its ICU stay lasts at least the task's minimum (eps 1e-6, as the original) and it
has at least one event with ``-eps < hours < period_length + eps``, where period_length is the length of its time
series: the stay's length, cut at the task's time-series window (48 h for in-hospital mortality). Stays without
such an event are not samples (the original wrote no file for them). Under ``death_before_prediction: excluded``
an in-hospital-mortality stay whose death (:func:`outcome_time`) is at or before the prediction time, intime +
period_length, is not a sample either; the original keeps it (``kept``).

Columns of ``samples.parquet``, in order: subject_id, stay_id, split, cxr_dicom_id (null = no linked X-ray),
period_length (Float64 hours), age, then the labels (Int8): ``mortality``, or the 25 phenotypes. Rows sorted by
split (train, val, test) then stay_id. The task definition (preset, windows, views, ``leaky``) is stored in the
Parquet key-value metadata under :data:`METADATA_KEY`.
"""

from __future__ import annotations

import argparse
import time
import json
import logging
import os
from typing import Any

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import DEFAULT_POLICY, exclusions, policy_record, presets
from medfuse_bench.etl.cxr import link_cxr, require_columns
from medfuse_bench.etl.presets import TaskDefinition
from medfuse_bench.etl.stage_io import log_rate, plain, read_parquet, scan_events
from medfuse_bench.fidelity import FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import atomic_path
from medfuse_bench.resources import SPLITS, TASKS, phenotype_labels, task_labels

log = logging.getLogger(__name__)

EPS = 1e-6
METADATA_KEY = "medfuse_bench.task_definition"
SAMPLE_COLUMNS: tuple[str, ...] = ("subject_id", "stay_id", "split", "cxr_dicom_id", "period_length", "age")
#: Parquet key-value metadata key of the preset and the task_tables switches the table was built under.
FIDELITY_KEY = "medfuse_bench.fidelity"
#: The columns of stays that :func:`outcome_time` reads.
OUTCOME_COLUMNS: tuple[str, ...] = ("mortality", "deathtime", "dischtime")


def split_rank() -> pl.Expr:
    """train < val < test, for sorting."""
    return pl.col("split").replace_strict({s: i for i, s in enumerate(SPLITS)}, default=len(SPLITS),
                                          return_dtype=pl.Int8)


def after_intime(hours: str | pl.Expr) -> pl.Expr:
    """intime + ``hours``, in whole microseconds (so a time at the end of a window is not pushed past it)."""
    hours = pl.col(hours) if isinstance(hours, str) else hours
    return pl.col("intime") + pl.duration(microseconds=(hours * 3.6e9).round().cast(pl.Int64))


def outcome_time() -> pl.Expr:
    """When a positive in-hospital-mortality sample's outcome happened: its deathtime, else the admission's end (an
    in-hospital death ends it); null for a negative. The one definition of the task tables and the leakage audit."""
    return pl.when(pl.col("mortality") == 1).then(pl.coalesce("deathtime", "dischtime"))


def died_by_prediction(period_length: str | pl.Expr = "period_length") -> pl.Expr:
    """Whether a stay's outcome (:func:`outcome_time`) is at or before its prediction time, intime + period_length;
    False for a negative or a death without a time."""
    return (outcome_time() <= after_intime(period_length)).fill_null(False)


def drops_deaths(definition: TaskDefinition, policy: FidelityPolicy) -> bool:
    """Whether the task leaves out the stays of :func:`died_by_prediction` (``death_before_prediction``); phenotype
    labels have no time, so only in-hospital mortality does."""
    return definition.task == "in-hospital-mortality" and policy.death_before_prediction == "excluded"


def observed_events(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Events that carry a value (a null value and a null value_text count as no observation)."""
    lazy = events.lazy()
    names = lazy.collect_schema().names()
    require_columns(lazy, ("stay_id", "hours"), "events")
    present = [pl.col(c).is_not_null() for c in ("value", "value_text") if c in names]
    if present:
        lazy = lazy.filter(pl.any_horizontal(present))
    return lazy


def first_event_hours(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Hour of the first observed event after ``-eps`` of each stay: stay_id, first_hours.

    A stay has an event inside ``(-eps, end + eps)`` exactly when ``first_hours < end + eps``, so one pass over the
    events serves every window (used to count samples under every preset).
    """
    return (
        observed_events(events)
        .filter(pl.col("hours") > -EPS)
        .group_by(pl.col("stay_id").cast(pl.Int64))
        .agg(pl.col("hours").min().alias("first_hours"))
        .collect()
    )


def select_task_stays(stays: pl.DataFrame, first_events: pl.DataFrame, definition: TaskDefinition,
                      policy: FidelityPolicy = DEFAULT_POLICY) -> pl.DataFrame:
    """The stays that are samples of the task: subject_id, stay_id, intime, outtime, period_length, age."""
    require_columns(stays, ("subject_id", "stay_id", "intime", "outtime", "los_hours", "age"), "stays")
    deaths = drops_deaths(definition, policy)
    if deaths:
        require_columns(stays, OUTCOME_COLUMNS, "stays")
    out = stays.select(
        pl.col("subject_id").cast(pl.Int64),
        pl.col("stay_id").cast(pl.Int64),
        "intime",
        "outtime",
        pl.col("los_hours").cast(pl.Float64),
        "age",
        *(OUTCOME_COLUMNS if deaths else ()),
    ).filter(pl.col("los_hours").is_not_null())
    if definition.min_stay_hours is not None:
        out = out.filter(pl.col("los_hours") >= definition.min_stay_hours - EPS)
    period = pl.col("los_hours")
    if definition.ts_window_hours is not None:
        period = pl.min_horizontal(period, pl.lit(definition.ts_window_hours))
    out = out.with_columns(period.alias("period_length"))
    first = first_events.select(pl.col("stay_id").cast(pl.Int64), "first_hours")
    out = out.join(first, on="stay_id", how="inner").filter(pl.col("first_hours") < pl.col("period_length") + EPS)
    if deaths:
        out = out.filter(~died_by_prediction())
    return out.select("subject_id", "stay_id", "intime", "outtime", "period_length", "age")


def attach_splits(samples: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """Add each sample's patient split; raise when a subject has none."""
    require_columns(splits, ("subject_id", "split"), "splits")
    out = samples.join(splits.select(pl.col("subject_id").cast(pl.Int64), "split"), on="subject_id", how="left")
    missing = out.filter(pl.col("split").is_null())
    if missing.height:
        raise MedfuseError(
            f"splits has no row for {missing['subject_id'].n_unique()} subject(s) of the cohort "
            f"(e.g. subject_id {missing['subject_id'][0]}); rebuild splits.parquet from the current stays.parquet"
        )
    return out


def task_label_frame(task: str, stays: pl.DataFrame, phenotypes: pl.DataFrame | None) -> pl.DataFrame:
    """stay_id and the task's Int8 label columns."""
    if task == "in-hospital-mortality":
        require_columns(stays, ("stay_id", "mortality"), "stays")
        return stays.select(pl.col("stay_id").cast(pl.Int64), pl.col("mortality").cast(pl.Int8))
    if phenotypes is None:
        raise MedfuseError("task phenotyping needs the phenotype labels; pass --phenotypes etl/phenotypes.parquet")
    labels = phenotype_labels()
    require_columns(phenotypes, ("stay_id", *labels), "phenotypes")
    return phenotypes.select(pl.col("stay_id").cast(pl.Int64), *(pl.col(c).cast(pl.Int8) for c in labels))


def build_task_samples(stays: pl.DataFrame, events: pl.DataFrame | pl.LazyFrame | None, splits: pl.DataFrame,
                       cxr_metadata: pl.DataFrame, definition: TaskDefinition,
                       phenotypes: pl.DataFrame | None = None,
                       first_events: pl.DataFrame | None = None,
                       policy: FidelityPolicy = DEFAULT_POLICY) -> pl.DataFrame:
    """The samples table of ``definition.task`` (columns and order in the module docstring).

    Pass ``first_events`` (from :func:`first_event_hours`) instead of ``events`` to reuse one pass over events.
    """
    return build_task_table(stays, events, splits, cxr_metadata, definition, phenotypes, first_events, policy)[0]


def build_task_table(stays: pl.DataFrame, events: pl.DataFrame | pl.LazyFrame | None, splits: pl.DataFrame,
                     cxr_metadata: pl.DataFrame, definition: TaskDefinition,
                     phenotypes: pl.DataFrame | None = None,
                     first_events: pl.DataFrame | None = None,
                     policy: FidelityPolicy = DEFAULT_POLICY) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """:func:`build_task_samples` and the records of the cohort stays it leaves out or changes, with their
    reasons (:func:`selection_exclusions`)."""
    if first_events is None:
        if events is None:
            raise MedfuseError("build_task_samples needs events or first_events")
        first_events = first_event_hours(events)
    found = selection_exclusions(stays, first_events, definition, policy)
    chosen = attach_splits(select_task_stays(stays, first_events, definition, policy), splits)
    links = link_cxr(chosen, cxr_metadata, definition.cxr_window_hours, definition.views)
    labels = task_label_frame(definition.task, stays, phenotypes)
    names = task_labels(definition.task)
    out = chosen.join(links.select("stay_id", pl.col("dicom_id").alias("cxr_dicom_id")), on="stay_id", how="left")
    out = out.join(labels, on="stay_id", how="left")
    unlabelled = out.filter(pl.any_horizontal(pl.col(n).is_null() for n in names)).height
    if unlabelled:
        if definition.task == "in-hospital-mortality":
            raise MedfuseError(f"stays has {unlabelled} null 'mortality' value(s) among the task's stays")
        log.warning("%d stay(s) have no row in phenotypes; their 25 labels are set to 0", unlabelled)
        found.append(exclusions.record(_stage(definition), "phenotypes.parquet", "stay_id",
                                       "stay without a row in phenotypes: its 25 labels set to 0", unlabelled,
                                       action="changed"))
        out = out.with_columns(pl.col(n).fill_null(0) for n in names)
    samples = (
        out.select(*SAMPLE_COLUMNS, *names)
        .with_columns(pl.col("period_length").cast(pl.Float64))
        .sort([split_rank(), pl.col("stay_id")])
    )
    return samples, found


def _stage(definition: TaskDefinition) -> str:
    return f"task_tables ({definition.task})"


def selection_exclusions(stays: pl.DataFrame, first_events: pl.DataFrame, definition: TaskDefinition,
                         policy: FidelityPolicy = DEFAULT_POLICY) -> list[dict[str, Any]]:
    """Records of the cohort stays that are not samples of the task, by reason (the rules of
    :func:`select_task_stays`, each stay counted under the first rule it fails)."""
    deaths = drops_deaths(definition, policy)
    if deaths:
        require_columns(stays, ("intime", *OUTCOME_COLUMNS), "stays")
    frame = stays.select(pl.col("stay_id").cast(pl.Int64), pl.col("los_hours").cast(pl.Float64),
                         *(("intime", *OUTCOME_COLUMNS) if deaths else ())).join(
        first_events.select(pl.col("stay_id").cast(pl.Int64), "first_hours"), on="stay_id", how="left")
    stay = pl.format("stay_id {}", pl.col("stay_id"))
    no_length = pl.col("los_hours").is_null()
    too_short = pl.lit(False)
    if definition.min_stay_hours is not None:
        too_short = pl.col("los_hours") < definition.min_stay_hours - EPS
    period = pl.col("los_hours")
    if definition.ts_window_hours is not None:
        period = pl.min_horizontal(period, pl.lit(definition.ts_window_hours))
    window = ("the stay" if definition.ts_window_hours is None
              else f"the first {definition.ts_window_hours:g} h of the stay")
    no_event = pl.col("first_hours").is_null() | (pl.col("first_hours") >= period + EPS)
    stage = _stage(definition)
    minimum = definition.min_stay_hours or 0.0
    found = [
        exclusions.count_rows(frame, no_length, stage=stage, file="stays.parquet", column="los_hours",
                              reason="length of stay missing", example=stay),
        exclusions.count_rows(frame, ~no_length & too_short, stage=stage, file="stays.parquet", column="los_hours",
                              reason=f"ICU stay shorter than the task's minimum of {minimum:g} h",
                              example=pl.format("{}: {} h", stay, pl.col("los_hours").round(2))),
        exclusions.count_rows(frame, ~no_length & ~too_short & no_event, stage=stage, file="events.parquet",
                              column="hours", reason=f"no observed event within {window}", example=stay),
    ]
    if deaths:
        when = ("the end of the stay" if definition.ts_window_hours is None
                else f"intime + {definition.ts_window_hours:g} h")
        hours = (outcome_time() - pl.col("intime")).dt.total_seconds() / 3600.0
        found.append(exclusions.count_rows(
            frame, ~no_length & ~too_short & ~no_event & died_by_prediction(period), stage=stage,
            file="stays.parquet", column="deathtime", reason=f"died at or before the prediction time ({when})",
            example=pl.format("{}: intime {}, died {} ({} h after intime)", stay,
                              pl.col("intime").dt.strftime("%Y-%m-%d %H:%M"),
                              outcome_time().dt.strftime("%Y-%m-%d %H:%M"), hours.round(2))),
        )
    return exclusions.compact(found)


def write_samples(samples: pl.DataFrame, definition: TaskDefinition, path: str | os.PathLike[str],
                  excluded: list[dict[str, Any]] | None = None, policy: FidelityPolicy | None = None) -> None:
    """Write the samples atomically, with the task definition, the records of the stays left out
    (:func:`build_task_table`) and the policy's task_tables switches (when given) in the Parquet metadata."""
    metadata = {METADATA_KEY: json.dumps(definition.to_dict()), **exclusions.to_metadata(excluded or [])}
    if policy is not None:
        metadata[FIDELITY_KEY] = json.dumps(policy_record(policy, "task_tables"))
    with atomic_path(path) as tmp:
        samples.write_parquet(tmp, compression="zstd", metadata=metadata)


def read_task_definition(path: str | os.PathLike[str]) -> TaskDefinition | None:
    """The task definition stored in a samples.parquet (None for a file written without one)."""
    meta = pl.read_parquet_metadata(path)
    if METADATA_KEY not in meta:
        return None
    return TaskDefinition.from_dict(json.loads(meta[METADATA_KEY]))


def sample_counts(samples: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Samples (= the partial set) and paired samples (cxr_dicom_id not null) per split."""
    total = {s: 0 for s in SPLITS}
    paired = {s: 0 for s in SPLITS}
    counts = samples.group_by("split").agg(pl.len().alias("n"), pl.col("cxr_dicom_id").is_not_null().sum().alias("p"))
    for split, n, p in counts.iter_rows():
        total[split] = int(n)
        paired[split] = int(p)
    return {"total": total, "paired": paired}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("task-tables", help="one row per sample of a task: split, linked X-ray, labels",
                       description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
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
    add_policy_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    definition = presets.task_definition(args.task, args.preset, presets.parse_overrides(args.overrides))
    presets.warn_if_leaky(definition)
    stays = read_parquet(args.stays, "run `medfuse-bench cohort` first")
    patient_splits = read_parquet(args.splits, "run `medfuse-bench splits` first")
    metadata = read_parquet(args.cxr_metadata, "run `medfuse-bench ingest` with the MIMIC-CXR-JPG tables")
    phenotypes = None
    if args.task == "phenotyping":
        if not args.phenotypes:
            raise MedfuseError("task phenotyping needs --phenotypes etl/phenotypes.parquet")
        phenotypes = read_parquet(args.phenotypes, "run `medfuse-bench phenotypes` first")
    policy = policy_from_args(args)
    samples, excluded = build_task_table(stays, scan_events(args.events), patient_splits, metadata, definition,
                                         phenotypes=phenotypes, policy=policy)
    counts = sample_counts(samples)
    log.info("%s (%s, %s): samples %s, paired %s", args.task, args.preset, policy.summary_line(), counts["total"],
             counts["paired"])
    for r in excluded:
        log.info("%s: %d stay(s) left out: %s", args.task, r["rows"], r["reason"])
    write_samples(samples, definition, args.out, excluded, policy)
    log_rate(log, f"task-tables {args.task}", stays.height, "cohort stays", started)
    return 0
