"""``medfuse-bench cohort`` (rule ``cohort``): the ICU stays of the benchmark, with age and in-hospital mortality
(original notes §1.3).

Filters, in the original's order: stays whose first and last care unit differ are dropped; stays are joined to their
admission and patient; admissions left with two or more ICU stays are dropped whole; adults (age >= 18) are kept.

Fidelity switches of this stage (docs/fidelity.md; original value first):

- ``age``: ``anchor_age``; or ``age_at_stay`` = anchor_age + (year of intime - anchor_year).
- ``mortality``: ``dod_or_deathtime`` = dod (a date, compared as midnight) or deathtime within [admittime,
  dischtime]; or ``deathtime_or_flag`` = deathtime within [admittime, dischtime] or hospital_expire_flag == 1, because
  dod also records deaths after discharge (MIMIC-IV >= 2.0) and deathtime is sometimes minutes past dischtime.
- ``los_hours``: ``icustays_los`` = icustays.los (days) x 24; or ``intime_to_outtime`` = outtime - intime.

Every stay a filter drops is counted with its reason in ``counts["exclusions"]`` (see :mod:`.exclusions`); a stay
whose length is impossible (outtime before intime) is dropped here, and counted, rather than silently later.
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
from medfuse_bench.fidelity import FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import write_json, write_parquet

log = logging.getLogger(__name__)

MIN_AGE = 18

#: Output columns and types of stays.parquet.
STAYS_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.Int64(),
    "hadm_id": pl.Int64(),
    "stay_id": pl.Int64(),
    "intime": pl.Datetime("us"),
    "outtime": pl.Datetime("us"),
    "los_hours": pl.Float64(),
    "admittime": pl.Datetime("us"),
    "dischtime": pl.Datetime("us"),
    "deathtime": pl.Datetime("us"),
    "dod": pl.Date(),
    "age": pl.Int64(),
    "gender": pl.String(),
    "mortality": pl.Int8(),
}


def _between(t: pl.Expr, start: str, end: str) -> pl.Expr:
    """``start <= t <= end``, false (not null) when any side is missing."""
    return (t.is_not_null() & (t >= pl.col(start)) & (t <= pl.col(end))).fill_null(False)


def _text_time(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y-%m-%d %H:%M:%S")


def stay_age(age: str) -> pl.Expr:
    """Switch ``age``: the patient's anchor_age (``anchor_age``) or the age at the stay (``age_at_stay``)."""
    if age == "anchor_age":
        return pl.col("anchor_age").cast(pl.Int64)
    return (pl.col("anchor_age") + pl.col("intime").dt.year() - pl.col("anchor_year")).cast(pl.Int64)


def in_hospital_mortality(mortality: str) -> pl.Expr:
    """1 when the patient died during the hospital admission, else 0 (switch ``mortality``, module docstring)."""
    death_in_stay = _between(pl.col("deathtime"), "admittime", "dischtime")
    if mortality == "dod_or_deathtime":
        died = _between(pl.col("dod").cast(pl.Datetime("us")), "admittime", "dischtime") | death_in_stay
    else:
        died = death_in_stay | (pl.col("hospital_expire_flag") == 1).fill_null(False)
    return died.cast(pl.Int8)


def stay_hours(los_hours: str) -> pl.Expr:
    """Switch ``los_hours``: icustays.los (days) x 24 (``icustays_los``) or outtime - intime."""
    if los_hours == "icustays_los":
        return pl.col("los").cast(pl.Float64) * 24.0
    return (pl.col("outtime") - pl.col("intime")).dt.total_microseconds().cast(pl.Float64) / 3.6e9


def build_cohort(
    icustays: pl.DataFrame, admissions: pl.DataFrame, patients: pl.DataFrame, *,
    policy: FidelityPolicy = DEFAULT_POLICY,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Apply the stay filters and compute age and mortality; return the stays and the count after each filter.

    >>> import datetime as dt
    >>> icu = pl.DataFrame({"subject_id": [1, 2], "hadm_id": [10, 20], "stay_id": [100, 200],
    ...     "first_careunit": ["MICU", "MICU"], "last_careunit": ["MICU", "SICU"],
    ...     "intime": [dt.datetime(2150, 1, 1)] * 2, "outtime": [dt.datetime(2150, 1, 3)] * 2, "los": [2.0, 2.0]})
    >>> adm = pl.DataFrame({"subject_id": [1, 2], "hadm_id": [10, 20],
    ...     "admittime": [dt.datetime(2149, 12, 31)] * 2, "dischtime": [dt.datetime(2150, 1, 5)] * 2,
    ...     "deathtime": [None, None], "hospital_expire_flag": [0, 0]},
    ...     schema_overrides={"deathtime": pl.Datetime("us")})
    >>> pat = pl.DataFrame({"subject_id": [1, 2], "gender": ["F", "M"], "anchor_age": [60, 70],
    ...     "anchor_year": [2148, 2150], "dod": [None, None]}, schema_overrides={"dod": pl.Date})
    >>> stays, counts = build_cohort(icu, adm, pat)
    >>> stays.select("stay_id", "age", "los_hours", "mortality").rows(), counts["after_careunit_filter"]
    ([(100, 62, 48.0, 0)], 1)
    """
    counts: dict[str, Any] = {"fidelity": policy_record(policy, "cohort"), "icu_stays": icustays.height}
    found: list[dict[str, Any] | None] = []

    def exclude(frame: pl.DataFrame, condition: pl.Expr, file: str, column: str, reason: str,
                example: pl.Expr) -> pl.DataFrame:
        found.append(exclusions.count_rows(frame, condition, stage="cohort", file=file, column=column, reason=reason,
                                           example=example))
        return frame.filter(~condition.fill_null(False))

    stay = pl.format("stay_id {}", pl.col("stay_id"))
    same_unit = pl.col("first_careunit") == pl.col("last_careunit")
    stays = exclude(icustays, ~same_unit.fill_null(False), "icustays", "first_careunit, last_careunit",
                    "first and last care unit differ or are missing (benchmark rule)",
                    pl.format("{}: {} -> {}", stay, pl.col("first_careunit"), pl.col("last_careunit")))
    counts["after_careunit_filter"] = stays.height
    joined = stays.join(admissions, on=["subject_id", "hadm_id"], how="inner").join(
        patients, on="subject_id", how="inner"
    )
    found.append(exclusions.record("cohort", "icustays", "subject_id, hadm_id",
                                   "no matching admissions or patients row", stays.height - joined.height))
    stays = joined
    counts["after_admission_patient_join"] = stays.height
    stays = exclude(stays, pl.len().over("hadm_id") > 1, "icustays", "hadm_id",
                    "admission with two or more ICU stays (benchmark rule)",
                    pl.format("{} of hadm_id {}", stay, pl.col("hadm_id")))
    counts["after_single_stay_per_admission"] = stays.height
    stays = stays.with_columns(age=stay_age(policy.age))
    stays = exclude(stays, pl.col("age").is_null() | (pl.col("age") < MIN_AGE), "patients",
                    "anchor_age" if policy.age == "anchor_age" else "anchor_age, anchor_year",
                    f"age at the stay missing or below {MIN_AGE} (benchmark rule)",
                    pl.format("{}: age {}", stay, pl.col("age")))
    counts["after_age_filter"] = stays.height
    # A stay without times cannot be placed on the time axis of any later stage.
    stays = exclude(stays, pl.col("intime").is_null() | pl.col("outtime").is_null(), "icustays", "intime, outtime",
                    "intime or outtime missing", stay)
    counts["after_missing_times"] = stays.height
    from_los = policy.los_hours == "icustays_los"
    stays = stays.with_columns(los_hours=stay_hours(policy.los_hours))
    # An ICU stay that ends before it starts (or, with los_hours=icustays_los, has no los) has no time series and no
    # window; the original drops it silently when it builds the tasks. Here it is dropped and counted.
    stays = exclude(stays, pl.col("los_hours").is_null() | (pl.col("los_hours") < 0), "icustays",
                    "los" if from_los else "outtime",
                    "impossible length of stay: outtime before intime" + (" or los missing" if from_los else ""),
                    pl.format("{}: intime {}, outtime {}, los {}", stay, _text_time("intime"), _text_time("outtime"),
                              pl.col("los")))
    counts["after_impossible_length_of_stay"] = stays.height
    stays = (
        stays.with_columns(mortality=in_hospital_mortality(policy.mortality))
        .select([pl.col(name).cast(dtype) for name, dtype in STAYS_SCHEMA.items()])
        .sort("stay_id")
    )
    counts["stays"] = stays.height
    counts["subjects"] = stays["subject_id"].n_unique()
    counts["mortality_positive"] = int(stays["mortality"].sum())
    counts["exclusions"] = exclusions.compact(found)
    return stays, counts


def run_cohort(raw_dir: str | Path, out: str | Path | None = None, counts_path: str | Path | None = None, *,
               policy: FidelityPolicy = DEFAULT_POLICY) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The stage: read icustays, admissions and patients from the ingest folder, build the cohort, write the stays
    to ``out`` and the counts to ``counts_path`` (default: cohort_counts.json beside ``out``); return both."""
    frames = {name: pl.read_parquet(raw_table(raw_dir, name)) for name in ("icustays", "admissions", "patients")}
    stays, counts = build_cohort(frames["icustays"], frames["admissions"], frames["patients"], policy=policy)
    log.info("cohort (%s): %d stays of %d ICU stays", policy.summary_line(), counts["stays"], counts["icu_stays"])
    if out is not None:
        write_parquet(stays, out)
        write_json(counts, counts_path or Path(out).with_name("cohort_counts.json"))
    return stays, counts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cohort", help="ICU stays of the benchmark cohort with age and in-hospital mortality")
    p.add_argument("--raw-dir", required=True,
                   help="folder of raw Parquet tables written by `ingest` ({workdir}/etl/raw)")
    p.add_argument("--out", required=True, help="output stays table ({workdir}/etl/stays.parquet)")
    p.add_argument("--counts", default=None,
                   help="output JSON of the stays left after each filter (default: cohort_counts.json beside --out)")
    add_policy_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    _, counts = run_cohort(args.raw_dir, args.out, args.counts, policy=policy_from_args(args))
    log_rate(log, "cohort", counts["icu_stays"], "ICU stays", started)
    return 0
