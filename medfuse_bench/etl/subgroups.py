"""``medfuse-bench subgroups``: the attributes of each sample that the report's subgroup table splits by.

``tasks/{task}/subgroups.parquet`` holds one row per sample of the task (same stays as ``samples.parquet``):

- ``stay_id``; ``sex`` (patients.gender); ``age`` (the samples' age, per the ``age`` fidelity switch);
- ``race`` as recorded and ``race_group``: White, Black, Hispanic/Latino, Asian, Other, Unknown (unknown, unable to
  obtain, declined, or missing). MIMIC-IV 1.0 calls the admissions column ``ethnicity``; ingest keeps it as ``race``.
- ``insurance`` (admissions.insurance; null when the release has no such column);
- ``cxr_linked`` (a linked X-ray) and ``cxr_age_hours``: hours from the linked X-ray's study time to the prediction
  time (intime + period_length; 48 h for mortality, the end of the stay for phenotyping); null without X-ray.

Race and insurance are the admission's of the stay (one ICU stay per admission in the cohort).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.cxr import with_study_datetime
from medfuse_bench.etl.stage_io import existing, log_rate, plain
from medfuse_bench.io import write_parquet

log = logging.getLogger(__name__)

RACE_GROUPS: tuple[str, ...] = ("White", "Black", "Hispanic/Latino", "Asian", "Other", "Unknown")

#: Output columns and types of subgroups.parquet.
SUBGROUP_SCHEMA: dict[str, pl.DataType] = {
    "stay_id": pl.Int64(),
    "sex": pl.String(),
    "age": pl.Float64(),
    "race": pl.String(),
    "race_group": pl.String(),
    "insurance": pl.String(),
    "cxr_linked": pl.Boolean(),
    "cxr_age_hours": pl.Float64(),
}


def race_group(race: pl.Expr) -> pl.Expr:
    """MIMIC-IV's race text (2.x ``race``, 1.0 ``ethnicity``) in six groups, by its leading words.

    >>> s = pl.Series(["WHITE - OTHER EUROPEAN", "BLACK/CAPE VERDEAN", "HISPANIC OR LATINO", "ASIAN - CHINESE",
    ...                "UNABLE TO OBTAIN", None, "AMERICAN INDIAN/ALASKA NATIVE", "PORTUGUESE", "SOUTH AMERICAN"])
    >>> pl.select(race_group(pl.lit(s))).to_series().to_list()
    ['White', 'Black', 'Hispanic/Latino', 'Asian', 'Unknown', 'Unknown', 'Other', 'White', 'Hispanic/Latino']
    """
    text = race.str.to_uppercase().str.strip_chars()
    return (
        pl.when(text.is_null() | text.str.contains(r"^(UNKNOWN|UNABLE|PATIENT DECLINED|DECLINED)"))
        .then(pl.lit("Unknown"))
        .when(text.str.contains(r"^(WHITE|PORTUGUESE)"))
        .then(pl.lit("White"))
        .when(text.str.contains(r"^BLACK"))
        .then(pl.lit("Black"))
        .when(text.str.contains(r"^(HISPANIC|SOUTH AMERICAN)"))
        .then(pl.lit("Hispanic/Latino"))
        .when(text.str.contains(r"^ASIAN"))
        .then(pl.lit("Asian"))
        .otherwise(pl.lit("Other"))
    )


def build_subgroups(samples: pl.DataFrame, stays: pl.DataFrame, admissions: pl.DataFrame,
                    cxr_metadata: pl.DataFrame) -> pl.DataFrame:
    """One row per sample with the columns of :data:`SUBGROUP_SCHEMA` (see the module notes).

    >>> from datetime import datetime
    >>> samples = pl.DataFrame({"stay_id": [1, 2], "cxr_dicom_id": ["a", None], "period_length": [48.0, 48.0],
    ...                         "age": [70, 30]})
    >>> stays = pl.DataFrame({"stay_id": [1, 2], "hadm_id": [10, 20], "gender": ["F", "M"],
    ...                       "intime": [datetime(2150, 1, 1), datetime(2150, 1, 1)]})
    >>> adm = pl.DataFrame({"hadm_id": [10, 20], "race": ["WHITE", None], "insurance": ["Medicare", "Other"]})
    >>> meta = pl.DataFrame({"dicom_id": ["a"], "study_datetime": [datetime(2150, 1, 2, 12)]})
    >>> build_subgroups(samples, stays, adm, meta).select("sex", "race_group", "cxr_linked", "cxr_age_hours").rows()
    [('F', 'White', True, 12.0), ('M', 'Unknown', False, None)]
    """
    for frame, name, needed in ((samples, "samples", ("stay_id", "cxr_dicom_id", "period_length", "age")),
                                (stays, "stays", ("stay_id", "hadm_id", "gender", "intime")),
                                (admissions, "admissions", ("hadm_id", "race")),
                                (cxr_metadata, "cxr_metadata", ("dicom_id",))):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise MedfuseError(f"{name} lacks column '{missing[0]}', needed for the subgroup table")
    if "insurance" not in admissions.columns:
        admissions = admissions.with_columns(pl.lit(None, dtype=pl.String).alias("insurance"))
    studies = with_study_datetime(cxr_metadata).select(
        pl.col("dicom_id").cast(pl.String).alias("cxr_dicom_id"), pl.col("study_datetime").cast(pl.Datetime("us"))
    ).unique("cxr_dicom_id")
    prediction_time = pl.col("intime").cast(pl.Datetime("us")) + pl.duration(
        microseconds=(pl.col("period_length") * 3.6e9).round().cast(pl.Int64))
    return (
        samples.select("stay_id", "cxr_dicom_id", "period_length", "age")
        .join(stays.select("stay_id", "hadm_id", "gender", "intime"), on="stay_id", how="left")
        .join(admissions.select("hadm_id", pl.col("race").cast(pl.String), pl.col("insurance").cast(pl.String))
              .unique("hadm_id"), on="hadm_id", how="left")
        .join(studies, on="cxr_dicom_id", how="left")
        .with_columns(
            pl.col("gender").alias("sex"),
            race_group(pl.col("race")).alias("race_group"),
            pl.col("cxr_dicom_id").is_not_null().alias("cxr_linked"),
            ((prediction_time - pl.col("study_datetime")).dt.total_microseconds() / 3.6e9).alias("cxr_age_hours"),
        )
        .select([pl.col(c).cast(t) for c, t in SUBGROUP_SCHEMA.items()])
        .sort("stay_id")
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "subgroups",
        help="per-sample attributes of a task (sex, age, race group, insurance, linked X-ray and its age) for the "
             "report's subgroup table",
        description=plain(__doc__),
    )
    p.add_argument("--samples", required=True, help="tasks/{task}/samples.parquet")
    p.add_argument("--stays", required=True, help="etl/stays.parquet (cohort)")
    p.add_argument("--raw-dir", required=True, help="ingest folder with admissions.parquet and cxr_metadata.parquet")
    p.add_argument("--out", required=True, help="tasks/{task}/subgroups.parquet")
    p.set_defaults(func=run_subgroups)


def _read(path: Path, hint: str, columns: list[str] | None = None) -> pl.DataFrame:
    """:func:`stage_io.read_parquet` that takes only the ``columns`` the file has (insurance is optional)."""
    path = existing(path, hint)
    try:
        schema = pl.read_parquet_schema(path)
        return pl.read_parquet(path, columns=[c for c in columns if c in schema] if columns else None)
    except pl.exceptions.PolarsError as exc:
        raise MedfuseError(f"'{path}' could not be read as Parquet ({exc}); {hint}") from exc


def run_subgroups(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    raw = Path(args.raw_dir)
    frame = build_subgroups(
        _read(Path(args.samples), "run `medfuse-bench task-tables` first"),
        _read(Path(args.stays), "run `medfuse-bench cohort` first", ["stay_id", "hadm_id", "gender", "intime"]),
        _read(raw / "admissions.parquet", "run `medfuse-bench ingest` first", ["hadm_id", "race", "insurance"]),
        _read(raw / "cxr_metadata.parquet", "run `medfuse-bench ingest` first",
              ["dicom_id", "study_datetime", "StudyDate", "StudyTime"]),
    )
    write_parquet(frame, args.out)
    log.info("subgroups: %d samples, %d with a linked X-ray -> %s", frame.height, int(frame["cxr_linked"].sum()),
             args.out)
    log_rate(log, "subgroups", frame.height, "samples", started)
    return 0
