"""Task presets and task tables: which stays are samples, their columns, windows and the leaky flag."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import presets, task_tables
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.resources import phenotype_labels

T0 = datetime(2150, 1, 1)
H = timedelta(hours=1)
CLI = "import sys; from medfuse_bench import cli; sys.exit(cli.main(sys.argv[1:]))"


# --- presets ----------------------------------------------------------------------------------------------------------


def test_presets_differ_as_specified():
    ihm = {p: presets.task_definition("in-hospital-mortality", p) for p in presets.PRESET_NAMES}
    ph = {p: presets.task_definition("phenotyping", p) for p in presets.PRESET_NAMES}
    med = ihm["medfuse"]
    assert (med.ts_window_hours, med.cxr_window_hours, med.min_stay_hours, med.views) == (48.0, 48.0, 48.0, ("AP",))
    assert not med.leaky
    assert ihm["medfuse-2022"].cxr_window_hours is None and ihm["medfuse-2022"].leaky
    assert ihm["medfuse-2022"].ts_window_hours == 48.0
    assert ihm["drfuse-48h"] == presets.TaskDefinition(**{**ihm["medfuse"].__dict__, "preset": "drfuse-48h"})
    p = ph["medfuse"]
    assert (p.ts_window_hours, p.cxr_window_hours, p.min_stay_hours, p.views) == (None, None, None, ("AP",))
    assert ph["medfuse-2022"] == presets.TaskDefinition(**{**p.__dict__, "preset": "medfuse-2022"})
    d = ph["drfuse-48h"]
    assert (d.ts_window_hours, d.cxr_window_hours, d.min_stay_hours) == (48.0, 48.0, 48.0) and not d.leaky
    assert not any(x.leaky for x in ph.values())


def test_overrides_and_their_errors():
    d = presets.task_definition("phenotyping", "medfuse", {"cxr_window_hours": 24, "views": ["AP", "PA"]})
    assert d.cxr_window_hours == 24.0 and d.views == ("AP", "PA") and d.overridden == ("cxr_window_hours", "views")
    whole = {"phenotyping": {"min_stay_hours": 4}, "in-hospital-mortality": {"cxr_window_hours": None}}
    assert presets.task_definition("phenotyping", "medfuse", whole).min_stay_hours == 4.0
    assert presets.task_definition("in-hospital-mortality", "medfuse", whole).leaky
    assert presets.task_definition("in-hospital-mortality", "medfuse", presets.parse_overrides("{}")) == \
        presets.task_definition("in-hospital-mortality", "medfuse")
    with pytest.raises(MedfuseError, match="unknown key 'window'"):
        presets.task_definition("phenotyping", "medfuse", {"window": 3})
    with pytest.raises(MedfuseError, match="ts_window_hours"):
        presets.task_definition("phenotyping", "medfuse", {"ts_window_hours": "48"})
    with pytest.raises(MedfuseError, match="unknown preset 'medfuse-2021'"):
        presets.task_definition("phenotyping", "medfuse-2021")
    with pytest.raises(MedfuseError, match="not valid JSON"):
        presets.parse_overrides("{cxr_window_hours: 3}")


# --- task tables ------------------------------------------------------------------------------------------------------


def _stays() -> pl.DataFrame:
    rows = [  # subject_id, stay_id, los_hours, mortality, age
        (1, 101, 50.0, 1, 70),  # event at 10 h: a sample of both tasks
        (2, 102, 47.9, 0, 60),  # shorter than 48 h: phenotyping only
        (3, 103, 48.0 - 1e-7, 0, 50),  # within eps of 48 h: kept
        (4, 104, 60.0, 0, 40),  # first event at 49 h: not a mortality sample
        (5, 105, 60.0, 1, 30),  # events only before intime: no sample
        (6, 106, 72.0, 0, 20),  # event at exactly 48 h: kept
    ]
    frame = pl.DataFrame(rows, schema={"subject_id": pl.Int64, "stay_id": pl.Int64, "los_hours": pl.Float64,
                                       "mortality": pl.Int8, "age": pl.Int64}, orient="row")
    return frame.with_columns(
        intime=pl.lit(T0, pl.Datetime("us")),
        outtime=pl.lit(T0, pl.Datetime("us")) + pl.duration(microseconds=(pl.col("los_hours") * 3.6e9).cast(pl.Int64)),
    ).with_columns(  # deaths in the unit, as the synthetic generator makes them: deathtime = dischtime = outtime
        dischtime=pl.when(pl.col("mortality") == 1).then(pl.col("outtime")).otherwise(pl.col("outtime") + 24 * H),
        deathtime=pl.when(pl.col("mortality") == 1).then(pl.col("outtime")),
    )


def _events() -> pl.DataFrame:
    rows = [(101, 10.0), (102, 1.0), (103, 0.0), (104, 49.0), (105, -1.0), (105, -0.01), (106, 48.0), (106, 70.0)]
    return pl.DataFrame(rows, schema={"stay_id": pl.Int64, "hours": pl.Float64}, orient="row").with_columns(
        variable=pl.lit("Heart Rate"), value=pl.lit(80.0), value_text=pl.lit(None, pl.String))


SPLITS = pl.DataFrame({"subject_id": [1, 2, 3, 4, 5, 6], "split": ["test", "train", "val", "train", "train", "train"]})
METADATA = pl.DataFrame({
    "dicom_id": ["early", "late", "pa"],
    "subject_id": [1, 1, 6],
    "ViewPosition": ["AP", "AP", "PA"],
    "StudyDate": [21500101, 21500103, 21500101],
    "StudyTime": [120000.0, 10000.0, 120000.0],  # 12 h and 49 h after intime; a PA at 12 h
})


def _phenotypes(stay_ids: list[int]) -> pl.DataFrame:
    labels = phenotype_labels()
    return pl.DataFrame({"stay_id": stay_ids}).with_columns(
        pl.Series(name, [int(i % (k + 2) == 0) for i in stay_ids], dtype=pl.Int8) for k, name in enumerate(labels)
    )


def test_mortality_samples_windows_columns_and_order():
    definition = presets.task_definition("in-hospital-mortality", "medfuse")
    got = task_tables.build_task_samples(_stays(), _events(), SPLITS, METADATA, definition)
    expected = pl.DataFrame(
        {"subject_id": [6, 3, 1], "stay_id": [106, 103, 101], "split": ["train", "val", "test"],
         "cxr_dicom_id": [None, None, "early"], "period_length": [48.0, 48.0 - 1e-7, 48.0], "age": [20, 50, 70],
         "mortality": [0, 0, 1]},
        schema_overrides={"cxr_dicom_id": pl.String, "mortality": pl.Int8},
    )
    assert_frame_equal(got, expected)


def test_mortality_leaky_preset_links_the_later_image():
    definition = presets.task_definition("in-hospital-mortality", "medfuse-2022")
    got = task_tables.build_task_samples(_stays(), _events(), SPLITS, METADATA, definition)
    assert got.filter(pl.col("stay_id") == 101)["cxr_dicom_id"].to_list() == ["late"]


def test_phenotyping_samples_and_labels():
    definition = presets.task_definition("phenotyping", "medfuse")
    phenos = _phenotypes([101, 102, 103, 104, 105, 106])
    got = task_tables.build_task_samples(_stays(), _events(), SPLITS, METADATA, definition, phenotypes=phenos)
    assert got.columns == [*task_tables.SAMPLE_COLUMNS, *phenotype_labels()]
    assert got["stay_id"].to_list() == [102, 104, 106, 103, 101]  # train, val, test; 105 has no event in the stay
    assert got["period_length"].to_list() == [47.9, 60.0, 72.0, 48.0 - 1e-7, 50.0]
    assert got["cxr_dicom_id"].to_list() == [None, None, None, None, "late"]
    assert_frame_equal(got.select("stay_id", *phenotype_labels()),
                       phenos.join(got.select("stay_id"), on="stay_id", how="semi").sort(
                           pl.col("stay_id").replace_strict({102: 0, 104: 1, 106: 2, 103: 3, 101: 4})))
    assert all(got.schema[c] == pl.Int8 for c in phenotype_labels())


def test_phenotyping_cut_at_48h():
    definition = presets.task_definition("phenotyping", "drfuse-48h")
    got = task_tables.build_task_samples(_stays(), _events(), SPLITS, METADATA, definition,
                                         phenotypes=_phenotypes([101, 102, 103, 104, 105, 106]))
    assert got["stay_id"].to_list() == [106, 103, 101]
    assert got["period_length"].to_list() == [48.0, 48.0 - 1e-7, 48.0]
    assert got["cxr_dicom_id"].to_list() == [None, None, "early"]


def test_overridden_views_link_a_pa():
    definition = presets.task_definition("in-hospital-mortality", "medfuse", {"views": ["AP", "PA"]})
    got = task_tables.build_task_samples(_stays(), _events(), SPLITS, METADATA, definition)
    assert got.filter(pl.col("stay_id") == 106)["cxr_dicom_id"].to_list() == ["pa"]


def test_missing_split_and_missing_phenotypes_are_reported():
    definition = presets.task_definition("in-hospital-mortality", "medfuse")
    with pytest.raises(MedfuseError, match="splits has no row for 1 subject"):
        task_tables.build_task_samples(_stays(), _events(), SPLITS.filter(pl.col("subject_id") != 6), METADATA,
                                       definition)
    with pytest.raises(MedfuseError, match="--phenotypes"):
        task_tables.build_task_samples(_stays(), _events(), SPLITS, METADATA,
                                       presets.task_definition("phenotyping", "medfuse"))


def _deaths() -> pl.DataFrame:
    """Deaths of stays of at least 48 h, each with an event at 1 h: (stay_id, los_hours, hours of the death)."""
    rows = [
        (201, 48.0, 48.0),  # dies as the stay ends, exactly at the prediction time
        (202, 50.0, 47.0),  # dies at 47 h, the ICU stay closed later (real MIMIC-IV has such stays)
        (203, 48.0 + 1 / 60, 48.0 + 1 / 60),  # one minute after the prediction time
    ]
    frame = pl.DataFrame(rows, schema={"stay_id": pl.Int64, "los_hours": pl.Float64, "died": pl.Float64}, orient="row")
    def at(column: str) -> pl.Expr:
        return pl.lit(T0, pl.Datetime("us")) + pl.duration(microseconds=(pl.col(column) * 3.6e9).round().cast(pl.Int64))

    return frame.with_columns(
        subject_id=pl.col("stay_id") - 200, mortality=pl.lit(1, pl.Int8), age=pl.lit(60),
        intime=pl.lit(T0, pl.Datetime("us")), outtime=at("los_hours"), deathtime=at("died"), dischtime=at("los_hours"),
    ).drop("died")


DEATH_SPLITS = pl.DataFrame({"subject_id": [1, 2, 3], "split": ["train"] * 3})
DEATH_EVENTS = pl.DataFrame({"stay_id": [201, 202, 203], "hours": [1.0] * 3, "value": [80.0] * 3})


@pytest.mark.parametrize("value", ["kept", "excluded"])
def test_deaths_at_or_before_the_prediction_time(value):
    """Under excluded a mortality stay dying at or before intime + 48 h is left out and counted; under kept (the
    original) it stays a sample. A death one minute later is a sample under both; phenotyping keeps them all."""
    policy = FidelityPolicy.preset("corrected").replace(death_before_prediction=value)
    definition = presets.task_definition("in-hospital-mortality", "medfuse")
    got, records = task_tables.build_task_table(_deaths(), DEATH_EVENTS, DEATH_SPLITS, METADATA, definition,
                                                policy=policy)
    died = [r for r in records if r["column"] == "deathtime"]
    if value == "kept":
        assert got["stay_id"].to_list() == [201, 202, 203] and died == []
    else:
        assert got["stay_id"].to_list() == [203]
        (record,) = died
        assert (record["stage"], record["file"], record["rows"], record["action"]) == \
            ("task_tables (in-hospital-mortality)", "stays.parquet", 2, "dropped")
        assert record["reason"] == "died at or before the prediction time (intime + 48 h)"
        assert record["example"] == "stay_id 201: intime 2150-01-01 00:00, died 2150-01-03 00:00 (48.0 h after intime)"
    assert task_tables.select_task_stays(_deaths(), task_tables.first_event_hours(DEATH_EVENTS), definition,
                                         policy)["stay_id"].to_list() == got.sort("stay_id")["stay_id"].to_list()
    phenotyping = presets.task_definition("phenotyping", "medfuse")
    ph, ph_records = task_tables.build_task_table(_deaths(), DEATH_EVENTS, DEATH_SPLITS, METADATA, phenotyping,
                                                  phenotypes=_phenotypes([201, 202, 203]), policy=policy)
    assert ph["stay_id"].to_list() == [201, 202, 203] and ph_records == []


def test_the_outcome_time_is_the_audits():
    """The leakage audit's outcome and prediction times are the task tables' (one definition)."""
    from medfuse_bench.leakage_audit.provenance import sample_times

    samples = _deaths().select("subject_id", "stay_id", split=pl.lit("train"), period_length=pl.lit(48.0))
    stays = _deaths().with_columns(hadm_id=pl.col("stay_id") + 1000)
    times = sample_times(samples, stays, 48.0)
    assert (times["outcome_time"] <= times["index_time"]).to_list() == [True, True, False]
    assert times["outcome_time"].to_list() == _deaths()["deathtime"].to_list()


def test_task_tables_cli_records_the_definition_and_leaky_flag(tmp_path):
    _stays().write_parquet(tmp_path / "stays.parquet")
    _events().write_parquet(tmp_path / "events.parquet")
    SPLITS.write_parquet(tmp_path / "splits.parquet")
    METADATA.write_parquet(tmp_path / "meta.parquet")
    out = tmp_path / "tasks" / "in-hospital-mortality" / "samples.parquet"
    args = ["task-tables", "--stays", str(tmp_path / "stays.parquet"), "--events", str(tmp_path / "events.parquet"),
            "--splits", str(tmp_path / "splits.parquet"), "--cxr-metadata", str(tmp_path / "meta.parquet"),
            "--task", "in-hospital-mortality", "--out", str(out)]
    res = subprocess.run([sys.executable, "-c", CLI, *args, "--preset", "medfuse-2022", "--overrides", "{}"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "LEAKY" in res.stderr
    definition = task_tables.read_task_definition(out)
    assert definition.preset == "medfuse-2022" and definition.leaky
    meta = json.loads(pl.read_parquet_metadata(out)[task_tables.METADATA_KEY])
    assert meta["leaky"] is True
    assert pl.read_parquet(out)["cxr_dicom_id"].to_list() == [None, None, "late"]

    res = subprocess.run([sys.executable, "-c", CLI, *args, "--overrides", '{"cxr_window_hours": 100}'],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert task_tables.read_task_definition(out).leaky  # an override can make a definition leaky too
    res = subprocess.run([sys.executable, "-c", CLI, *args, "--overrides", '{"bogus": 1}'],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "unknown key 'bogus'" in res.stderr


def test_task_tables_cli_takes_the_policy_and_records_it(tmp_path):
    _deaths().write_parquet(tmp_path / "stays.parquet")
    DEATH_EVENTS.write_parquet(tmp_path / "events.parquet")
    DEATH_SPLITS.write_parquet(tmp_path / "splits.parquet")
    METADATA.write_parquet(tmp_path / "meta.parquet")
    out = tmp_path / "samples.parquet"
    args = ["task-tables", "--stays", str(tmp_path / "stays.parquet"), "--events", str(tmp_path / "events.parquet"),
            "--splits", str(tmp_path / "splits.parquet"), "--cxr-metadata", str(tmp_path / "meta.parquet"),
            "--task", "in-hospital-mortality", "--out", str(out)]
    for extra, stays, value in (([], [203], "excluded"), (["--fidelity", "original"], [201, 202, 203], "kept"),
                                (["--switch", "death_before_prediction=kept"], [201, 202, 203], "kept")):
        res = subprocess.run([sys.executable, "-c", CLI, *args, *extra], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert pl.read_parquet(out)["stay_id"].to_list() == stays
        meta = pl.read_parquet_metadata(out)
        assert json.loads(meta[task_tables.FIDELITY_KEY])["death_before_prediction"] == value
        died = [r for r in json.loads(meta["medfuse_bench.exclusions"]) if r["column"] == "deathtime"]
        assert [r["rows"] for r in died] == ([2] if value == "excluded" else [])


def test_the_summary_counts_each_preset_under_the_run_policy():
    from medfuse_bench.etl.summary import preset_counts

    first = task_tables.first_event_hours(DEATH_EVENTS)
    for value, train in (("kept", 3), ("excluded", 1)):
        policy = FidelityPolicy.preset("corrected").replace(death_before_prediction=value)
        counts = preset_counts(_deaths(), first, DEATH_SPLITS, METADATA, ["in-hospital-mortality"], policy)
        assert {p: c["in-hospital-mortality"]["total"]["train"] for p, c in counts.items()} == \
            dict.fromkeys(presets.PRESET_NAMES, train)
