"""The subgroup side table (medfuse_bench.etl.subgroups)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from medfuse_bench.cli import main
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.subgroups import SUBGROUP_SCHEMA, build_subgroups


def _inputs() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    samples = pl.DataFrame({"subject_id": [1, 2, 3], "stay_id": [11, 12, 13], "split": ["test"] * 3,
                            "cxr_dicom_id": ["a", None, "c"], "period_length": [48.0, 100.0, 60.0], "age": [25, 50, 85]})
    stays = pl.DataFrame({"stay_id": [11, 12, 13], "hadm_id": [1, 2, 3], "gender": ["F", "M", "F"],
                          "intime": [datetime(2150, 1, 1)] * 3})
    admissions = pl.DataFrame({"hadm_id": [1, 2, 3], "race": ["HISPANIC/LATINO - PUERTO RICAN", "WHITE", "OTHER"],
                               "insurance": ["Medicaid", "Medicare", None]})
    # c: StudyDate/StudyTime as in MIMIC-CXR's metadata; 2150-01-03 06:00 is 6 h before intime + 60 h
    meta = pl.DataFrame({"dicom_id": ["a", "c"], "StudyDate": [21500101, 21500103], "StudyTime": [120000.0, 60000.0]})
    return samples, stays, admissions, meta


def test_columns_and_xray_age_at_prediction_time() -> None:
    out = build_subgroups(*_inputs())
    assert out.schema == pl.Schema(SUBGROUP_SCHEMA)
    assert out["race_group"].to_list() == ["Hispanic/Latino", "White", "Other"]
    assert out["cxr_linked"].to_list() == [True, False, True]
    assert out["cxr_age_hours"].to_list() == [36.0, None, 6.0]  # 48 h - 12 h; 60 h - 54 h
    assert out["insurance"].to_list() == ["Medicaid", "Medicare", None]


def test_a_release_without_insurance_gives_nulls_and_a_missing_race_column_one_error() -> None:
    samples, stays, admissions, meta = _inputs()
    out = build_subgroups(samples, stays, admissions.drop("insurance"), meta)
    assert out["insurance"].null_count() == 3
    with pytest.raises(MedfuseError, match="admissions lacks column 'race'"):
        build_subgroups(samples, stays, admissions.drop("race"), meta)


def test_command_writes_the_table(tmp_path: Path) -> None:
    samples, stays, admissions, meta = _inputs()
    raw = tmp_path / "raw"
    raw.mkdir()
    admissions.write_parquet(raw / "admissions.parquet")
    meta.write_parquet(raw / "cxr_metadata.parquet")
    samples.write_parquet(tmp_path / "samples.parquet")
    stays.write_parquet(tmp_path / "stays.parquet")
    out = tmp_path / "subgroups.parquet"
    assert main(["subgroups", "--samples", str(tmp_path / "samples.parquet"), "--stays", str(tmp_path / "stays.parquet"),
                 "--raw-dir", str(raw), "--out", str(out)]) == 0
    assert pl.read_parquet(out).height == 3
    assert main(["subgroups", "--samples", str(tmp_path / "none.parquet"), "--stays", str(tmp_path / "stays.parquet"),
                 "--raw-dir", str(raw), "--out", str(out)]) != 0
