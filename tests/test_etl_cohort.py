"""Cohort stage: the original's filter order (care unit, one stay per admission, adults), the age, mortality and
los_hours switches on hand-built frames, each on its own; the command on Parquet inputs."""

from __future__ import annotations

import doctest
import json
import re
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from medfuse_bench.etl import cohort
from medfuse_bench.etl.cohort import STAYS_SCHEMA, build_cohort
from medfuse_bench.fidelity import FidelityPolicy, switch

DT = pl.Datetime("us")
ORIGINAL, CORRECTED = FidelityPolicy.preset("original"), FidelityPolicy.preset("corrected")


def alone(name: str) -> FidelityPolicy:
    """The corrected preset with one switch set to the original's behaviour."""
    return CORRECTED.replace(**{name: switch(name).original})


def icustays(*rows: tuple) -> pl.DataFrame:
    """(subject_id, hadm_id, stay_id, first_careunit, last_careunit, intime, outtime, los)."""
    cols = ["subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime", "outtime", "los"]
    return pl.DataFrame(list(rows), schema=dict(zip(cols, [pl.Int64] * 3 + [pl.String] * 2 + [DT] * 2 + [pl.Float64])),
                        orient="row")


def admissions(*rows: tuple) -> pl.DataFrame:
    """(subject_id, hadm_id, admittime, dischtime, deathtime, hospital_expire_flag)."""
    schema = {"subject_id": pl.Int64, "hadm_id": pl.Int64, "admittime": DT, "dischtime": DT, "deathtime": DT,
              "hospital_expire_flag": pl.Int32}
    return pl.DataFrame(list(rows), schema=schema, orient="row").with_columns(race=pl.lit("WHITE"))


def patients(*rows: tuple) -> pl.DataFrame:
    """(subject_id, gender, anchor_age, anchor_year, dod)."""
    schema = {"subject_id": pl.Int64, "gender": pl.String, "anchor_age": pl.Int32, "anchor_year": pl.Int32,
              "dod": pl.Date}
    return pl.DataFrame(list(rows), schema=schema, orient="row")


def d(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2150, 1, day, hour, minute)


def test_filters_in_the_original_order_with_counts():
    icu = icustays(
        (1, 10, 100, "MICU", "MICU", d(2), d(4), 2.0),  # kept
        (2, 20, 200, "MICU", "SICU", d(2), d(4), 2.0),  # transfer: dropped
        (3, 30, 300, "MICU", "MICU", d(2), d(3), 1.0),  # admission 30 has two same-unit stays: both dropped
        (3, 30, 301, "CCU", "CCU", d(5), d(6), 1.0),
        (4, 40, 400, "MICU", "SICU", d(2), d(3), 1.0),  # admission 40: the transfer goes first, so 401 stays
        (4, 40, 401, "CCU", "CCU", d(5), d(6), 1.0),
        (5, 50, 500, "MICU", "MICU", d(2), d(3), 1.0),  # no admission row: dropped by the join
    )
    adm = admissions(*[(s, h, d(1), d(9), None, 0) for s, h in ((1, 10), (2, 20), (3, 30), (4, 40))])
    pat = patients(*[(s, "F", 50, 2150, None) for s in (1, 2, 3, 4, 5)])
    stays, counts = build_cohort(icu, adm, pat, policy=CORRECTED)
    assert stays["stay_id"].to_list() == [100, 401]
    excluded = counts.pop("exclusions")
    assert counts == {
        "fidelity": {"preset": "corrected", "age": "age_at_stay", "mortality": "deathtime_or_flag",
                     "los_hours": "intime_to_outtime"},
        "icu_stays": 7,
        "after_careunit_filter": 5,
        "after_admission_patient_join": 4,
        "after_single_stay_per_admission": 2,
        "after_age_filter": 2,
        "after_missing_times": 2,
        "after_impossible_length_of_stay": 2,
        "stays": 2,
        "subjects": 2,
        "mortality_positive": 0,
    }
    assert [(r["file"], r["column"], r["rows"], r["example"]) for r in excluded] == [
        ("icustays", "first_careunit, last_careunit", 2, "stay_id 200: MICU -> SICU"),
        ("icustays", "subject_id, hadm_id", 1, None),
        ("icustays", "hadm_id", 2, "stay_id 300 of hadm_id 30"),
    ]
    assert all(r["stage"] == "cohort" and r["action"] == "dropped" for r in excluded)


@pytest.mark.parametrize("los_hours", ["icustays_los", "intime_to_outtime"])
def test_stay_ending_before_it_starts_is_dropped_and_counted(los_hours):
    icu = icustays((1, 10, 100, "MICU", "MICU", d(2), d(4), 2.0), (2, 20, 200, "MICU", "MICU", d(4), d(2), -2.0))
    adm = admissions((1, 10, d(1), d(9), None, 0), (2, 20, d(1), d(9), None, 0))
    pat = patients((1, "F", 50, 2150, None), (2, "M", 60, 2150, None))
    stays, counts = build_cohort(icu, adm, pat, policy=FidelityPolicy.preset("corrected").replace(los_hours=los_hours))
    assert stays["stay_id"].to_list() == [100]
    assert counts["after_missing_times"] == 2 and counts["after_impossible_length_of_stay"] == 1
    (negative,) = counts["exclusions"]
    assert negative["file"] == "icustays" and negative["column"] == ("los" if los_hours == "icustays_los" else "outtime")
    assert negative["reason"].startswith("impossible length of stay: outtime before intime")
    assert negative["rows"] == 1
    assert negative["example"] == "stay_id 200: intime 2150-01-04 00:00:00, outtime 2150-01-02 00:00:00, los -2.0"


def test_age_is_anchor_age_in_original_and_age_at_the_stay_in_corrected():
    icu = icustays((1, 10, 100, "MICU", "MICU", d(2), d(4), 2.0), (2, 20, 200, "MICU", "MICU", d(2), d(4), 2.0))
    adm = admissions((1, 10, d(1), d(9), None, 0), (2, 20, d(1), d(9), None, 0))
    # Patient 1: 17 at anchor year 2148, 19 in 2150. Patient 2: 18 at anchor year 2152, 16 in 2150.
    pat = patients((1, "F", 17, 2148, None), (2, "M", 18, 2152, None))
    original, _ = build_cohort(icu, adm, pat, policy=alone("age"))
    corrected, _ = build_cohort(icu, adm, pat, policy=CORRECTED)
    assert original.select("stay_id", "age").rows() == [(200, 18)]
    assert corrected.select("stay_id", "age").rows() == [(100, 19)]
    assert build_cohort(icu, adm, pat, policy=ORIGINAL)[0].equals(original)


@pytest.mark.parametrize(
    ("dod", "deathtime", "flag", "original", "corrected"),
    [
        (None, None, 0, 0, 0),
        (date(2150, 1, 9), None, 0, 1, 0),  # dod on the discharge date, no deathtime (date-only rule)
        (date(2150, 1, 20), None, 0, 0, 0),  # died after discharge
        (date(2150, 1, 1), None, 1, 0, 1),  # died on the admission date: dod midnight < admittime
        (None, d(9, 12, 10), 1, 0, 1),  # deathtime 10 minutes after dischtime, flagged as a hospital death
        (None, d(5), 0, 1, 1),  # deathtime inside the admission
    ],
)
def test_in_hospital_mortality_rules(dod, deathtime, flag, original, corrected):
    icu = icustays((1, 10, 100, "MICU", "MICU", d(2), d(4), 2.0))
    adm = admissions((1, 10, d(1, 8), d(9, 12), deathtime, flag))
    pat = patients((1, "F", 60, 2150, dod))
    assert build_cohort(icu, adm, pat, policy=alone("mortality"))[0]["mortality"].to_list() == [original]
    assert build_cohort(icu, adm, pat, policy=CORRECTED)[0]["mortality"].to_list() == [corrected]
    assert build_cohort(icu, adm, pat, policy=ORIGINAL)[0]["mortality"].to_list() == [original]


def test_output_columns_types_and_los():
    icu = icustays((1, 10, 100, "MICU", "MICU", d(2), d(3, 12), 1.4999))
    adm = admissions((1, 10, d(1), d(9), d(5), 1))
    pat = patients((1, "F", 70, 2150, date(2150, 1, 5)))
    original, _ = build_cohort(icu, adm, pat, policy=alone("los_hours"))
    corrected, _ = build_cohort(icu, adm, pat, policy=CORRECTED)
    want = pl.DataFrame(
        {"subject_id": [1], "hadm_id": [10], "stay_id": [100], "intime": [d(2)], "outtime": [d(3, 12)],
         "los_hours": [36.0], "admittime": [d(1)], "dischtime": [d(9)], "deathtime": [d(5)],
         "dod": [date(2150, 1, 5)], "age": [70], "gender": ["F"], "mortality": [1]},
        schema=STAYS_SCHEMA,
    )
    assert_frame_equal(corrected, want)
    assert original["los_hours"].round(4).to_list() == [35.9976]  # icustays.los (days) x 24


@pytest.mark.parametrize(("name", "column"), [("age", "age"), ("mortality", "mortality"), ("los_hours", "los_hours")])
def test_each_cohort_switch_alone_changes_only_its_column(name, column):
    # anchor_age 60 in 2148 (62 at the stay), los rounded, dod on the discharge date without a hospital death:
    # every switch changes this stay, and the original preset changes all three columns
    icu = icustays((1, 10, 100, "MICU", "MICU", d(2), d(3, 12), 1.4999))
    adm = admissions((1, 10, d(1), d(9), None, 0))
    pat = patients((1, "F", 60, 2148, date(2150, 1, 9)))
    corrected = build_cohort(icu, adm, pat, policy=CORRECTED)[0].row(0, named=True)
    changed = build_cohort(icu, adm, pat, policy=alone(name))[0].row(0, named=True)
    assert [k for k in corrected if corrected[k] != changed[k]] == [column]
    original = build_cohort(icu, adm, pat, policy=ORIGINAL)[0].row(0, named=True)
    assert {k for k in corrected if corrected[k] != original[k]} == {"age", "mortality", "los_hours"}


def test_stays_without_times_are_dropped():
    icu = icustays((1, 10, 100, "MICU", "MICU", d(2), None, None))
    adm = admissions((1, 10, d(1), d(9), None, 0))
    stays, counts = build_cohort(icu, adm, patients((1, "F", 50, 2150, None)))
    assert stays.height == 0 and counts["after_missing_times"] == 0


def test_cohort_command(tmp_path: Path, cli_process):
    raw = tmp_path / "raw"
    raw.mkdir()
    icustays((1, 10, 100, "MICU", "MICU", d(2), d(4), 2.0)).write_parquet(raw / "icustays.parquet")
    admissions((1, 10, d(1), d(9), None, 0)).write_parquet(raw / "admissions.parquet")
    patients((1, "F", 50, 2150, None)).write_parquet(raw / "patients.parquet")
    out = tmp_path / "etl" / "stays.parquet"
    result = cli_process("cohort", "--raw-dir", raw, "--out", out, "--fidelity", "original")
    assert result.returncode == 0, result.stderr
    assert re.search(r"cohort: 1 ICU stays in [\d.]+ s \([\d,]+ rows/s\)", result.stderr), result.stderr
    assert pl.read_parquet(out).schema == pl.Schema(STAYS_SCHEMA)
    counts = json.loads((tmp_path / "etl" / "cohort_counts.json").read_text())
    assert counts["stays"] == 1 and counts["fidelity"]["preset"] == "original"
    assert counts["fidelity"]["age"] == "anchor_age"
    result = cli_process("cohort", "--raw-dir", raw, "--out", out, "--switch", "age=anchor_age")
    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "etl" / "cohort_counts.json").read_text())
    assert counts["fidelity"] == {"preset": "corrected", "age": "anchor_age", "mortality": "deathtime_or_flag",
                                  "los_hours": "intime_to_outtime"}
    result = cli_process("cohort", "--raw-dir", raw, "--out", out, "--switch", "age=newborn")
    assert result.returncode == 2 and "switch 'age' must be one of" in result.stderr


def test_cohort_command_names_a_missing_table(tmp_path: Path, cli_process):
    result = cli_process("cohort", "--raw-dir", tmp_path, "--out", tmp_path / "stays.parquet")
    assert result.returncode == 2
    assert "icustays.parquet" in result.stderr and "ingest" in result.stderr
    assert not (tmp_path / "stays.parquet").exists()


def test_docstring_examples():
    assert doctest.testmod(cohort).failed == 0
