"""Ingest stage: layout detection (1.0 core/ + ethnicity + .csv, 2.x hosp/ + race + .csv.gz), typed conversion,
event filtering, provenance, and every bad-input error through the command (exit 2, message, nothing left)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from etl_raw_tree import base_tables, write_mimic_cxr, write_mimic_iv
from medfuse_bench import resources
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.ingest import ingest
from medfuse_bench.etl.table_conversion import _connect, convert_events, convert_table, event_itemids
from medfuse_bench.etl.layout import LAYOUT_V1, LAYOUT_V2, MIMIC_IV_TABLES, detect_layout
from medfuse_bench.fidelity import FidelityPolicy

RAW_TABLES = {"patients", "admissions", "icustays", "transfers", "diagnoses_icd", "d_icd_diagnoses", "chartevents",
              "labevents", "cxr_metadata", "cxr_chexpert", "cxr_split"}


def _ingest(tmp_path: Path, layout: str = "2.x", tables: dict | None = None, name: str = "iv") -> dict:
    iv = write_mimic_iv(tmp_path / name, layout, tables)
    cxr = write_mimic_cxr(tmp_path / "cxr")
    return ingest(iv, cxr, tmp_path / "out" / name / "raw", tmp_path / "out" / name / "provenance.json",
                  memory_limit="1GB", threads=1)


def test_detects_both_layouts(tmp_path: Path):
    v1 = detect_layout(write_mimic_iv(tmp_path / "v1", "1.0"))
    assert v1.layout == LAYOUT_V1 and v1.version == "1.0"
    assert v1.files["patients"] == tmp_path / "v1" / "core" / "patients.csv"
    v2 = detect_layout(write_mimic_iv(tmp_path / "mimic-iv-2.2", "2.x"))
    assert v2.layout == LAYOUT_V2 and v2.version == "2.2"
    assert v2.files["patients"] == tmp_path / "mimic-iv-2.2" / "hosp" / "patients.csv.gz"
    assert v2.files["chartevents"].name == "chartevents.csv.gz"


def test_unknown_layout_and_missing_folder(tmp_path: Path):
    (tmp_path / "x" / "data").mkdir(parents=True)
    with pytest.raises(MedfuseError, match="unknown MIMIC-IV layout"):
        detect_layout(tmp_path / "x")
    with pytest.raises(MedfuseError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")


def test_optional_transfers_table(tmp_path: Path):
    tables = base_tables()
    del tables["transfers"]
    assert "transfers" not in detect_layout(write_mimic_iv(tmp_path, "2.x", tables)).files


def test_both_layouts_give_the_same_tables(tmp_path: Path):
    p1 = _ingest(tmp_path, "1.0", name="v1")
    p2 = _ingest(tmp_path, "2.x", name="v2")
    assert p1["mimic_iv"]["race_column"] == "ethnicity" and p2["mimic_iv"]["race_column"] == "race"
    for table in RAW_TABLES:
        a = pl.read_parquet(tmp_path / "out" / "v1" / "raw" / f"{table}.parquet")
        b = pl.read_parquet(tmp_path / "out" / "v2" / "raw" / f"{table}.parquet")
        assert_frame_equal(a.sort(a.columns), b.sort(b.columns))


def test_typed_tables_and_filtered_events(tmp_path: Path):
    provenance = _ingest(tmp_path)
    raw = tmp_path / "out" / "iv" / "raw"
    assert {p.stem for p in raw.iterdir()} == RAW_TABLES
    admissions = pl.read_parquet(raw / "admissions.parquet")
    assert admissions.schema["admittime"] == pl.Datetime("us") and "race" in admissions.columns
    assert pl.read_parquet(raw / "patients.parquet").schema["dod"] == pl.Date
    chart = pl.read_parquet(raw / "chartevents.parquet")
    assert chart.columns == ["subject_id", "hadm_id", "stay_id", "charttime", "storetime", "itemid", "value"]
    assert sorted(chart["itemid"]) == [220045, 220739, 223761]  # 220046 (HR alarm) is not a variable's item
    labs = pl.read_parquet(raw / "labevents.parquet")
    assert labs.columns == chart.columns and labs["stay_id"].null_count() == labs.height
    assert labs["itemid"].to_list() == [50931]  # 50912 (creatinine) is filtered out
    meta = pl.read_parquet(raw / "cxr_metadata.parquet")
    assert meta.select("StudyDate", "StudyTime").row(0) == (21500102, 93015.25)
    assert provenance["outputs"]["chartevents"]["rows"] == 3
    assert provenance["inputs"]["chartevents"]["bytes"] > 0
    assert provenance["mimic_iv"]["layout"] == LAYOUT_V2
    on_disk = json.loads((tmp_path / "out" / "iv" / "provenance.json").read_text())
    assert on_disk["outputs"]["labevents"]["rows"] == 1 and on_disk["package_version"]


@pytest.mark.parametrize("table", ["chartevents", "labevents"])
@pytest.mark.parametrize("layout", ["1.0", "2.x"])
def test_polars_event_reader_equals_duckdb(tmp_path: Path, layout: str, table: str):
    tables = base_tables()
    # quoted commas and quotes, empty fields and an absent optional column must come out as DuckDB gives them
    tables["chartevents"] = pl.concat([tables["chartevents"], tables["chartevents"].head(1).with_columns(
        value=pl.lit('say "hi", then'), valuenum=pl.lit(None, pl.Float64), valueuom=pl.lit(None, pl.String))])
    tables["labevents"] = tables["labevents"].drop("storetime")
    files = detect_layout(write_mimic_iv(tmp_path / "iv", layout, tables)).files
    spec = next(s for s in MIMIC_IV_TABLES if s.name == table)
    ids = event_itemids()[table]
    fast = convert_events(spec, files[table], tmp_path / "fast.parquet", ids)
    con = _connect("1GB", 1, tmp_path / "spill")
    slow = convert_table(con, spec, files[table], tmp_path / "slow.parquet", ids)
    assert (fast.pop("reader"), slow.pop("reader")) == ("polars", "duckdb") and fast == slow
    a, b = pl.read_parquet(tmp_path / "fast.parquet"), pl.read_parquet(tmp_path / "slow.parquet")
    assert_frame_equal(a.sort(a.columns, nulls_last=True), b.sort(b.columns, nulls_last=True))
    if table == "chartevents":
        assert 'say "hi", then' in a["value"].to_list()
    else:
        assert fast["absent"] == ["stay_id", "storetime"]


def test_timestamps_outside_mimic_format_fall_back_to_duckdb(tmp_path: Path, caplog):
    provenance = _ingest(tmp_path, tables=_chart(charttime=pl.lit("2150-01-02T01:00:00")))
    chart = pl.read_parquet(tmp_path / "out" / "iv" / "raw" / "chartevents.parquet")
    assert provenance["outputs"]["chartevents"]["rows"] == 3
    assert chart["charttime"].dt.hour().to_list() == [1, 1, 1]
    assert "reading it again with DuckDB" in caplog.text
    assert provenance["outputs"]["chartevents"]["reader"] == "duckdb"
    assert provenance["outputs"]["labevents"]["reader"] == "polars"


def test_event_itemids_cover_both_modes():
    ids = event_itemids()
    assert 223951 in ids["chartevents"] and 224308 in ids["chartevents"]  # corrected capillary refill
    mapped = resources.itemid_map(include_corrected=True)
    assert sorted(ids["chartevents"] + ids["labevents"]) == sorted(mapped)


def test_invalid_memory_limit(tmp_path: Path):
    iv, cxr = write_mimic_iv(tmp_path / "iv"), write_mimic_cxr(tmp_path / "cxr")
    with pytest.raises(MedfuseError, match="--memory-limit"):
        ingest(iv, cxr, tmp_path / "raw", memory_limit="lots")
    assert not (tmp_path / "raw").exists()


# --- bad input through the command ------------------------------------------------------------------------------


def _ingest_args(tmp_path: Path) -> list[object]:
    """``ingest`` of ``tmp_path/iv`` and ``tmp_path/cxr`` into ``tmp_path/work/etl``."""
    out = tmp_path / "work" / "etl"
    return ["ingest", "--mimic-iv", tmp_path / "iv", "--mimic-cxr", tmp_path / "cxr", "--out-dir", out / "raw",
            "--provenance", out / "provenance.json", "--threads", "1", "--memory-limit", "1GB"]




def _chart(**changes) -> dict[str, pl.DataFrame]:
    tables = base_tables()
    tables["chartevents"] = tables["chartevents"].with_columns(**changes)
    return tables


def _changed(table: str, **changes) -> dict[str, pl.DataFrame]:
    tables = base_tables()
    tables[table] = tables[table].with_columns(**changes)
    return tables


def _without(table: str) -> dict[str, pl.DataFrame]:
    tables = base_tables()
    del tables[table]
    return tables


@pytest.mark.parametrize(
    ("tables", "words"),
    [
        (_without("icustays"), ["missing table", "icustays.csv.gz"]),
        ({**base_tables(), "chartevents": base_tables()["chartevents"].drop("value")},
         ["chartevents.csv.gz", "'value'"]),
        (_chart(charttime=pl.lit("next tuesday")), ["chartevents.csv.gz", "column 'charttime'", "timestamp"]),
        (_changed("admissions", admittime=pl.Series(["2150-13-01 08:00:00", "2160-03-01 10:00:00",
                                                      "2151-05-01 00:00:00"])),
         ["admissions.csv.gz", "column 'admittime'", "not a valid timestamp", "'2150-13-01 08:00:00'",
          "row with hadm_id 10"]),
        (_changed("diagnoses_icd", icd_version=pl.Series([9, 11, 10])),
         ["diagnoses_icd.csv.gz", "column 'icd_version'", "11 (1 rows)", "hadm_id 20"]),
        ({**base_tables(), "icustays": pl.concat([base_tables()["icustays"], base_tables()["icustays"].head(1)])},
         ["icustays.csv.gz", "'stay_id'", "stay_id 100"]),
        (_chart(itemid=pl.lit(220046)), ["chartevents.csv.gz", "no rows left", "itemid"]),
        (_chart(stay_id=pl.lit("n/a")), ["chartevents.csv.gz", "column 'stay_id'"]),
    ],
    ids=["missing-table", "missing-column", "bad-timestamp", "impossible-date", "icd-11", "duplicated-stay",
         "empty-chartevents", "bad-number"],
)
def test_bad_input_fails_with_a_message_and_leaves_nothing(tmp_path: Path, tables, words, cli_process):
    write_mimic_iv(tmp_path / "iv", "2.x", tables)
    write_mimic_cxr(tmp_path / "cxr")
    result = cli_process(*_ingest_args(tmp_path))
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("medfuse-bench: error:")
    for word in words:
        assert word in message
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work" / "etl").iterdir())


@pytest.mark.parametrize(
    ("date", "time", "shown"),
    [(21501302, 93015.25, "StudyDate 21501302"), (21500230, 93015.25, "StudyDate 21500230"),
     (21500102, 256000.0, "StudyTime 256000.0"), (21500102, 96100.0, "StudyTime 96100.0")],
    ids=["month-13", "february-30", "hour-25", "minute-61"],
)
def test_impossible_study_date_or_time_names_file_image_and_value(tmp_path: Path, date, time, shown, cli_process):
    write_mimic_iv(tmp_path / "iv")
    write_mimic_cxr(tmp_path / "cxr")
    metadata = tmp_path / "cxr" / "mimic-cxr-2.0.0-metadata.csv.gz"
    frame = pl.read_csv(metadata).with_columns(StudyDate=pl.lit(date), StudyTime=pl.lit(time))
    metadata.write_bytes(gzip.compress(frame.write_csv().encode()))
    result = cli_process(*_ingest_args(tmp_path))
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert str(metadata) in message and "dicom_id 'd1'" in message and shown in message, message


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_file_not_in_utf8_is_named_in_one_line(tmp_path: Path, encoding, cli_process):
    write_mimic_iv(tmp_path / "iv")
    write_mimic_cxr(tmp_path / "cxr")
    patients = tmp_path / "iv" / "hosp" / "patients.csv.gz"
    text = "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod,région\n1,F,60,2150,2011 - 2013,,\n"
    patients.write_bytes(gzip.compress(text.encode(encoding)))
    result = cli_process(*_ingest_args(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert f"'{patients}' is not UTF-8 text" in message and "encoding is unsupported" in message, message


def test_missing_cxr_table_through_the_command(tmp_path: Path, cli_process):
    write_mimic_iv(tmp_path / "iv")
    write_mimic_cxr(tmp_path / "cxr")
    (tmp_path / "cxr" / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    result = cli_process(*_ingest_args(tmp_path))
    assert result.returncode == 2 and "mimic-cxr-2.0.0-split.csv.gz" in result.stderr


def test_command_succeeds_and_replaces_an_old_output(tmp_path: Path, cli_process):
    write_mimic_iv(tmp_path / "iv", "1.0")
    write_mimic_cxr(tmp_path / "cxr", compress=False)
    stale = tmp_path / "work" / "etl" / "raw" / "stale.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    result = cli_process(*_ingest_args(tmp_path))
    assert result.returncode == 0, result.stderr
    raw = tmp_path / "work" / "etl" / "raw"
    assert {p.name for p in raw.iterdir()} == {f"{t}.parquet" for t in RAW_TABLES}
    assert sorted(p.name for p in raw.parent.iterdir()) == ["provenance.json", "raw"]


# --- end to end on the synthetic generator ----------------------------------------------------------------------


def test_first_stages_on_a_synthetic_dataset(tmp_path: Path):
    synth = pytest.importorskip("medfuse_bench.synth")
    from medfuse_bench.etl.cohort import run_cohort
    from medfuse_bench.etl.phenotypes import run_phenotypes
    from medfuse_bench.etl.variables import run_variables

    synth.generate(tmp_path / "synthetic", 60, 7, image_size=16, progress=False)
    raw = tmp_path / "raw"
    ingest(tmp_path / "synthetic" / "mimic-iv", tmp_path / "synthetic" / "mimic-cxr-jpg", raw, threads=1)
    for policy in (FidelityPolicy.preset("original"), FidelityPolicy.preset("corrected")):
        stays, counts = run_cohort(raw, policy=policy)
        assert 0 < stays.height <= 60 and counts["icu_stays"] == 60
        stays.write_parquet(tmp_path / "stays.parquet")
        one = run_variables(raw, tmp_path / "stays.parquet", tmp_path / "one.parquet", policy=policy)
        many = run_variables(raw, tmp_path / "stays.parquet", tmp_path / "many.parquet", policy=policy,
                             rows_per_batch=5_000)
        assert many["batches"] > 1 and one["batches"] == 1
        # batches share the subjects with stays in several of them: each raw event is still counted once
        assert {k: v for k, v in many.items() if k != "batches"} == {k: v for k, v in one.items() if k != "batches"}
        events = pl.read_parquet(tmp_path / "one.parquet")
        assert_frame_equal(events, pl.read_parquet(tmp_path / "many.parquet"))
        assert set(events["stay_id"]) <= set(stays["stay_id"])
        observed = set(events["variable"])
        # MIMIC-IV charts capillary refill under items the original map lacks, and no GCS total
        assert ("Capillary refill rate" in observed) == (policy.capillary_refill == "with_mimic_iv")
        assert ("Glascow coma scale total" in observed) == (policy.gcs_total == "derived")
        labels, stats = run_phenotypes(raw, tmp_path / "stays.parquet", policy=policy)
        assert labels.height == stays.height and stats["stays_with_any_label"] > 0
