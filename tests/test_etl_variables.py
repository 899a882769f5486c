"""Variables stage: item mapping, cleaning and unit rules, outliers, stay assignment and dedup under each fidelity
switch of the stage (each also on its own), on hand-built frames with exact expected outputs; the command on a tiny
CSV tree."""

from __future__ import annotations

import doctest
import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from medfuse_bench import resources
from medfuse_bench.etl import variable_batches
from medfuse_bench.etl import variable_extraction as VX
from medfuse_bench.etl import variable_rules as VR
from medfuse_bench.etl import variables as V
from medfuse_bench.etl.variable_extraction import RAW_EVENT_SCHEMA, extract_events
from medfuse_bench.fidelity import SWITCHES, FidelityPolicy, switch

ORIGINAL, CORRECTED = FidelityPolicy.preset("original"), FidelityPolicy.preset("corrected")


def alone(name: str) -> FidelityPolicy:
    """The corrected preset with one switch set to the original's behaviour."""
    return CORRECTED.replace(**{name: switch(name).original})

T0 = datetime(2150, 1, 2)  # intime of stay 100
H = timedelta(hours=1)

STAYS = pl.DataFrame(
    {
        "subject_id": [1, 1, 2],
        "hadm_id": [10, 30, 20],
        "stay_id": [100, 300, 200],
        "intime": [T0, T0 + 100 * H, T0],
        "outtime": [T0 + 48 * H, T0 + 148 * H, T0 + 24 * H],
    }
)


def events(*rows: tuple) -> pl.DataFrame:
    """Raw events: (stay_id or None, hours after T0, itemid, value[, storetime offset in minutes[, hadm_id]]).

    subject and hadm_id follow the stay (stays 100 / 300: subject 1; 200: subject 2); labs pass stay None and a hadm.
    """
    stay_subject = {100: (1, 10), 300: (1, 30), 200: (2, 20)}
    out = []
    for row in rows:
        stay, hours, itemid, value, *rest = row
        minutes = rest[0] if rest else 0
        if stay is None:
            hadm = rest[1] if len(rest) > 1 else 10
            subject = {10: 1, 30: 1, 20: 2, None: 1}[hadm]
        else:
            subject, hadm = stay_subject[stay]
        t = T0 + hours * H
        out.append((subject, hadm, stay, t, t + timedelta(minutes=minutes), itemid, value))
    return pl.DataFrame(out, schema=RAW_EVENT_SCHEMA, orient="row")


STAY_SUBJECT = {100: 1, 300: 1, 200: 2}


def expected(*rows: tuple) -> pl.DataFrame:
    """(stay_id, hours, variable, value, value_text) rows in output order; subject_id follows the stay."""
    return pl.DataFrame([(STAY_SUBJECT[row[0]], *row) for row in rows], schema=VX.EVENTS_SCHEMA, orient="row")


def run(frame: pl.DataFrame, policy: FidelityPolicy, outliers: str | None = "keep") -> tuple[pl.DataFrame, dict]:
    """The stage on ``frame``; ``outliers`` (default keep) overrides the policy's switch unless None."""
    policy = policy if outliers is None else policy.replace(outliers=outliers)
    return extract_events(frame, STAYS, policy=policy)


def values(frame: pl.DataFrame, variable: str) -> list:
    return frame.filter(pl.col("variable") == variable)["value"].round(4).to_list()


# --- cleaning and units ---------------------------------------------------------------------------------------


def test_fio2_always_divide_divides_every_value_percent_only_only_percentages():
    ev = events((100, 1, 223835, "50"), (100, 2, 223835, "0.5"), (100, 3, 223835, "1"))
    assert values(run(ev, alone("fio2"))[0], VR.FIO2) == [0.5, 0.005, 0.01]
    assert values(run(ev, ORIGINAL)[0], VR.FIO2) == [0.5, 0.005, 0.01]
    assert values(run(ev, CORRECTED)[0], VR.FIO2) == [0.5, 0.5, 1.0]


def test_temperature_by_value_converts_by_value_by_item_by_item():
    # 223762 is Celsius but 79 >= 79; 223761 is Fahrenheit but 78 < 79.
    ev = events((100, 1, 223762, "79"), (100, 2, 223761, "78"), (100, 3, 223761, "98.6"), (100, 4, 223762, "36.6"))
    assert values(run(ev, alone("temperature"))[0], VR.TEMPERATURE) == [26.1111, 78.0, 37.0, 36.6]
    assert values(run(ev, ORIGINAL)[0], VR.TEMPERATURE) == [26.1111, 78.0, 37.0, 36.6]
    assert values(run(ev, CORRECTED)[0], VR.TEMPERATURE) == [79.0, 25.5556, 37.0, 36.6]


def test_height_in_inches_converted_only_under_converted_and_pounds_always():
    ev = events((100, 1, 226707, "70"), (100, 1, 226730, "170"), (100, 2, 226531, "200"), (100, 3, 224639, "80"))
    original, corrected = run(ev, ORIGINAL)[0], run(ev, CORRECTED)[0]
    kept = run(ev, alone("height_inches"))[0]
    assert values(kept, VR.HEIGHT) == [120.0]  # inches kept, then the mean of 70 and 170 (same storetime)
    assert values(corrected, VR.WEIGHT) == values(original, VR.WEIGHT) == [90.7184, 80.0]
    # 226707 and 226730 at the same time: one value per (stay, time, variable).
    assert values(original, VR.HEIGHT) == [170.0]  # numeric sort: 170 (cm) beats 70 (inches, unconverted)
    assert values(corrected, VR.HEIGHT) == [173.9]  # mean of 177.8 and 170 (same storetime)


def test_unit_items_match_the_variable_table_labels():
    labels = {item["itemid"]: (item["label"], item["unit"]) for v in resources.variables() for item in v["itemids"]}
    assert labels[VR.FAHRENHEIT_ITEMS[0]][0] == "Temperature Fahrenheit"
    assert labels[VR.POUND_ITEMS[0]][0] == "Admission Weight (lbs.)"
    assert labels[VR.INCH_ITEMS[0]][1] == "Inch"


def test_blood_pressure_split_o2sat_fraction_and_non_numeric_labs():
    ev = events(
        (100, 1, 220050, "120/80"),
        (100, 1, 220051, "120/80"),
        (100, 2, 220277, "0.95"),
        (100, 3, 220621, "abc"),
        (100, 4, 223830, "-7.4"),
        (100, 5, 223830, "7.4"),
    )
    for policy in (ORIGINAL, CORRECTED):
        out, counts = run(ev, policy)
        assert values(out, VR.SBP) == [120.0]
        assert values(out, VR.DBP) == [80.0]
        assert values(out, VR.O2SAT) == [95.0]
        assert values(out, VR.GLUCOSE) == []
        assert values(out, VR.PH) == [7.4]
        assert counts["dropped_no_value"] == {VR.GLUCOSE: 1, VR.PH: 1}


def test_every_dropped_or_changed_value_is_counted_per_file_column_and_reason():
    ev = events(
        (100, 1, 220621, "abc"),  # glucose (chartevents): not a number
        (100, 2, 220621, "see comment"),
        (None, 3, 50931, "pending", 0, 10),  # glucose (labevents): not a number
        (100, 4, 220045, None),  # heart rate: empty
        (100, 5, 220739, "Bogus"),  # GCS eye: not a possible value
        (100, 6, 223761, "98.6"),  # temperature °F: converted
        (100, 7, 220045, "400"),  # heart rate: outlier removed
        (None, 60, 50931, "105", 0, 10),  # a glucose lab of subject 1 between its two stays: in no stay
    )
    out, counts = run(ev, CORRECTED, outliers="range")
    found = {(r["file"], r["column"], r["reason"]): (r["action"], r["rows"], r["example"])
             for r in counts["exclusions"]}
    assert found[("chartevents", "value (Glucose)", "not a number")] == ("dropped", 2, "'abc'")
    assert found[("labevents", "value (Glucose)", "not a number")] == ("dropped", 1, "'pending'")
    assert found[("chartevents", "value (Heart Rate)", "empty value")] == ("dropped", 1, None)
    assert found[("chartevents", "value (Glascow coma scale eye opening)",
                  "not one of the channel's possible values")] == ("dropped", 1, "'Bogus'")
    assert found[("chartevents", "value (Temperature)", "converted to the channel's unit or scale")] == (
        "changed", 1, "'98.6'")
    assert found[("chartevents", "value (Heart Rate)", "outside the outlier bounds (switch outliers: range)")] \
        == ("dropped", 1, "'400'")
    (lost,) = [v for k, v in found.items() if k[2].startswith("in no cohort stay")]
    assert lost == ("dropped", 1, None)
    assert [k[0] for k in found if k[2].startswith("in no cohort stay")] == ["labevents"]
    # every raw row is either in the output or counted as dropped
    assert sum(r["rows"] for r in counts["exclusions"] if r["action"] == "dropped") + out.height == ev.height


def test_gcs_text_kept_when_a_possible_value_else_dropped_and_counted():
    ev = events((200, 1, 220739, "Spontaneously"), (200, 2, 220739, "Bogus"), (200, 3, 223900, "No Response-ETT"))
    out, counts = run(ev, ORIGINAL)
    assert_frame_equal(
        out,
        expected(
            (200, 1.0, VR.GCS_EYE, None, "Spontaneously"),
            (200, 3.0, VR.GCS_VERBAL, None, "No Response-ETT"),
        ),
    )
    assert counts["dropped_not_a_possible_value"] == {VR.GCS_EYE: 1}


def test_capillary_refill_only_observed_with_mimic_iv():
    ev = events((100, 1, 223951, "Normal <3 Seconds"), (100, 2, 224308, "Abnormal >3 Seconds"),
                (100, 3, 223951, "Comment"))
    for policy in (ORIGINAL, alone("capillary_refill")):
        original, counts = run(ev, policy)
        assert original.height == 0 and counts["rows_unmapped_itemid"] == 3
    corrected, counts = run(ev, CORRECTED)
    assert_frame_equal(corrected, expected((100, 1.0, VR.CRR, None, "0.0"), (100, 2.0, VR.CRR, None, "1.0")))
    assert counts["dropped_no_value"] == {VR.CRR: 1}


def test_capillary_refill_text_of_the_original():
    ev = pl.LazyFrame({"itemid": [1, 2, 3, 4], "variable": [VR.CRR] * 4,
                       "value": ["Brisk", "Delayed", "Normal <3 secs", "Normal <3 Seconds"]})
    texts = {p: VR.clean_values(ev, p).collect()["value_text"].to_list() for p in (alone("capillary_refill"), CORRECTED)}
    assert list(texts.values()) == [["0.0", "1.0", "0.0", None], ["0.0", "1.0", "0.0", "0.0"]]


def test_gcs_total_derived_from_three_components_only_under_derived():
    ev = events(
        (200, 1, 220739, "None"),  # eye: "None" counts 1
        (200, 1, 223901, "Obeys Commands"),
        (200, 1, 223900, "No Response-ETT"),
        (200, 2, 220739, "Spontaneously"),  # no motor / verbal at hour 2: no total
        (200, 3, 220739, "Spontaneously"),
        (200, 3, 223901, "Obeys Commands"),
        (200, 3, 223900, "Oriented"),
    )
    for policy in (ORIGINAL, alone("gcs_total")):
        original, counts = run(ev, policy)
        assert VR.GCS_TOTAL not in original["variable"].to_list() and "gcs_total_derived" not in counts
    corrected, counts = run(ev, CORRECTED)
    totals = corrected.filter(pl.col("variable") == VR.GCS_TOTAL)
    assert_frame_equal(totals, expected((200, 1.0, VR.GCS_TOTAL, None, "8"), (200, 3.0, VR.GCS_TOTAL, None, "15")))
    assert counts["gcs_total_derived"] == 2
    assert set(totals["value_text"]) <= set(resources.variable(VR.GCS_TOTAL)["possible_values"])


# --- outliers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [ORIGINAL, CORRECTED], ids=["original", "corrected"])
def test_outliers_keep_and_range(policy):
    # Heart rate: valid [0, 350], outlier [0, 390].
    ev = events((100, 1, 220045, "400"), (100, 2, 220045, "360"), (100, 3, 220045, "80"))
    kept, counts = run(ev, policy, "keep")
    assert values(kept, "Heart Rate") == [400.0, 360.0, 80.0] and "outliers_removed" not in counts
    ranged, counts = run(ev, policy, "range")
    assert values(ranged, "Heart Rate") == [350.0, 80.0]
    assert counts["outliers_removed"] == {"Heart Rate": 1}
    assert counts["outliers_clipped"] == {"Heart Rate": 1}


def test_outliers_switch_follows_the_preset_and_can_be_set_alone():
    ev = events((100, 1, 220045, "400"))
    assert run(ev, ORIGINAL, None)[0].height == 1
    assert run(ev, CORRECTED, None)[0].height == 0
    assert run(ev, alone("outliers"), None)[0].height == 1


def test_range_table_is_the_resource_table():
    table = VR.range_table().filter(pl.col("variable") == VR.FIO2)
    assert table.row(0) == (VR.FIO2, 0.2, 0.21, 1.0, 1.1)


# --- one value per time -----------------------------------------------------------------------------------------


def test_last_by_value_keeps_text_greatest_for_uncleaned_and_number_greatest_for_cleaned_channels():
    ev = events(
        (100, 1, 220045, "12", 9), (100, 1, 220045, "8", 0),  # heart rate: text order, "8" wins
        (100, 1, 220050, "95", 0), (100, 1, 220050, "120", 9),  # systolic BP (cleaned): numeric order, 120 wins
    )
    for policy in (ORIGINAL, alone("same_time_values")):
        out, counts = run(ev, policy)
        assert_frame_equal(out, expected((100, 1.0, "Heart Rate", 8.0, None), (100, 1.0, VR.SBP, 120.0, None)))
        assert counts["duplicates_collapsed"] == 2


def test_latest_storetime_keeps_latest_storetime_and_averages_ties():
    ev = events(
        (100, 1, 220045, "12", 9), (100, 1, 220045, "8", 0),  # latest stored: 12
        (100, 1, 220050, "95", 5), (100, 1, 220050, "120", 5),  # same storetime: mean 107.5
        (100, 2, 220045, "70", 1),
    )
    out, _ = run(ev, CORRECTED)
    assert_frame_equal(
        out,
        expected((100, 1.0, "Heart Rate", 12.0, None), (100, 1.0, VR.SBP, 107.5, None),
                 (100, 2.0, "Heart Rate", 70.0, None)),
    )


def test_latest_storetime_counts_a_null_storetime_as_oldest():
    ev = events((100, 1, 220045, "12"), (100, 1, 220045, "8")).with_columns(
        storetime=pl.Series([None, T0], dtype=pl.Datetime("us"))
    )
    assert values(run(ev, CORRECTED)[0], "Heart Rate") == [8.0]


# --- stay assignment --------------------------------------------------------------------------------------------


def test_labs_join_by_admission_under_hadm_id_and_by_time_window_under_stay_window():
    ev = events(
        (None, -15, 50931, "105", 0, 10),  # admission 10, before intime of stay 100
        (None, 5, 50931, "110", 0, None),  # no hadm_id, inside stay 100
        (None, 60, 50931, "120", 0, 10),  # admission 10, after outtime of stay 100
    )
    for policy in (ORIGINAL, alone("lab_link")):
        original, _ = run(ev, policy)
        assert_frame_equal(original, expected((100, -15.0, VR.GLUCOSE, 105.0, None),
                                              (100, 60.0, VR.GLUCOSE, 120.0, None)))
    corrected, _ = run(ev, CORRECTED)
    assert_frame_equal(corrected, expected((100, 5.0, VR.GLUCOSE, 110.0, None)))


def test_time_window_also_takes_chart_events_in_another_stays_window():
    # Charted for stay 300 (admission 30) but at hour 10, inside stay 100 of the same subject.
    ev = events((300, 10, 220045, "90"), (100, 1, 220045, "80"))
    for policy in (ORIGINAL, alone("chart_link")):
        original, _ = run(ev, policy)
        assert_frame_equal(
            original,
            expected((100, 1.0, "Heart Rate", 80.0, None), (100, 10.0, "Heart Rate", 90.0, None),
                     (300, -90.0, "Heart Rate", 90.0, None)),
        )
    corrected, _ = run(ev, CORRECTED)
    assert_frame_equal(
        corrected, expected((100, 1.0, "Heart Rate", 80.0, None), (300, -90.0, "Heart Rate", 90.0, None))
    )


def test_both_chart_links_drop_chart_events_of_a_stay_outside_the_cohort():
    frame = events((100, 1, 220045, "80")).with_columns(stay_id=pl.lit(999, dtype=pl.Int64))
    assert run(frame, ORIGINAL)[0].height == 0
    assert run(frame, CORRECTED)[0].height == 0


# --- each switch on its own ---------------------------------------------------------------------------------------

#: One raw row (or group) per switch of the stage, and the output key it alone must change (corrected preset, so
#: outliers are handled: each value is chosen so that both of its switch's rules survive or differ under the ranges).
PER_SWITCH = {
    "fio2": ([(100, 1, 223835, "0.5")], (100, 1.0, VR.FIO2)),  # 0.005 under always_divide: an outlier
    # 78.9 °F: 26.06 °C by item, inside the valid range; kept as 78.9 by value, an outlier
    "temperature": ([(100, 2, 223761, "78.9")], (100, 2.0, VR.TEMPERATURE)),
    "height_inches": ([(100, 3, 226707, "70")], (100, 3.0, VR.HEIGHT)),
    "outliers": ([(100, 4, 220045, "400")], (100, 4.0, "Heart Rate")),
    "capillary_refill": ([(100, 5, 223951, "Normal <3 Seconds")], (100, 5.0, VR.CRR)),
    "same_time_values": ([(100, 6, 220045, "12", 9), (100, 6, 220045, "8", 0)], (100, 6.0, "Heart Rate")),
    "gcs_total": ([(200, 1, 220739, "Spontaneously"), (200, 1, 223901, "Obeys Commands"),
                   (200, 1, 223900, "Oriented")], (200, 1.0, VR.GCS_TOTAL)),
    "lab_link": ([(None, -15, 50931, "105", 0, 10)], (100, -15.0, VR.GLUCOSE)),
    "chart_link": ([(300, 10, 220045, "90")], (100, 10.0, "Heart Rate")),
}


def _changed_keys(a: pl.DataFrame, b: pl.DataFrame) -> set[tuple]:
    """(stay_id, hours, variable) of the rows only one of the two outputs holds."""
    rows_a, rows_b = set(a.rows()), set(b.rows())
    return {(stay, hours, variable) for _, stay, hours, variable, *_ in rows_a ^ rows_b}


def test_every_switch_of_the_stage_has_a_case():
    assert set(PER_SWITCH) == {s.name for s in SWITCHES if s.stage == "variables"}


@pytest.mark.parametrize("name", list(PER_SWITCH))
def test_one_switch_alone_changes_only_its_own_rows(name: str):
    frame = events(*(row for rows, _ in PER_SWITCH.values() for row in rows))
    corrected, _ = run(frame, CORRECTED, outliers=None)
    changed, _ = run(frame, alone(name), outliers=None)
    assert _changed_keys(corrected, changed) == {PER_SWITCH[name][1]}
    original, _ = run(frame, ORIGINAL, outliers=None)
    assert _changed_keys(corrected, original) == {key for _, key in PER_SWITCH.values()}


def test_output_schema_and_order():
    ev = events((200, 2, 220045, "80"), (100, 3, 220045, "70"), (100, 1, 220739, "Spontaneously"))
    out, _ = run(ev, CORRECTED)
    assert out.schema == pl.Schema(VX.EVENTS_SCHEMA)
    assert out.select("stay_id", "hours").rows() == [(100, 1.0), (100, 3.0), (200, 2.0)]


# --- command ----------------------------------------------------------------------------------------------------


def test_variables_command_writes_events_and_stats(tmp_path: Path, cli_process):
    raw = tmp_path / "raw"
    raw.mkdir()
    ev = events((100, 1, 220045, "80"), (None, 2, 50931, "105", 0, 10), (100, 1, 223951, "Normal <3 Seconds"))
    ev.filter(pl.col("stay_id").is_not_null()).write_parquet(raw / "chartevents.parquet")
    ev.filter(pl.col("stay_id").is_null()).write_parquet(raw / "labevents.parquet")
    STAYS.write_parquet(tmp_path / "stays.parquet")
    # the lab at hour 2 counts under both lab links; the capillary refill row only with MIMIC-IV's items
    for name, args, n in (("original", ["--fidelity", "original"], 2), ("corrected", [], 3),
                          ("crr", ["--switch", "capillary_refill=carevue_only"], 2)):
        out = tmp_path / f"events_{name}.parquet"
        result = cli_process("variables", "--raw-dir", raw, "--stays", tmp_path / "stays.parquet", "--out", out, *args,
                             "--stats", tmp_path / f"{name}.json", "--rows-per-batch", "1")
        assert result.returncode == 0, result.stderr
        frame = pl.read_parquet(out)
        assert frame.height == n and frame.schema == pl.Schema(VX.FILE_SCHEMA)
        keys = frame.select("subject_id", "stay_id", "hours").rows()
        assert keys == sorted(keys)
        stats = json.loads((tmp_path / f"{name}.json").read_text())
        assert stats["batches"] == 2 and stats["rows_raw"] == 3
        assert stats["fidelity"]["capillary_refill"] == ("with_mimic_iv" if name == "corrected" else "carevue_only")


def test_variables_command_names_a_missing_raw_table(tmp_path: Path, cli_process):
    STAYS.write_parquet(tmp_path / "stays.parquet")
    result = cli_process("variables", "--raw-dir", tmp_path, "--stays", tmp_path / "stays.parquet", "--out",
                         tmp_path / "events.parquet")
    assert result.returncode == 2
    assert "chartevents.parquet" in result.stderr
    assert not (tmp_path / "events.parquet").exists()


def test_docstring_examples():
    assert doctest.testmod(V).failed == 0


# --- the batch machinery: distinct pairs, counting, sorting --------------------------------------------------------


def test_distinct_values_index_every_row_including_nulls():
    frame = pl.DataFrame({"itemid": [220045, None, 220045, 220210, 220045, None],
                          "value": ["80", "80", None, "80", "80", "80"]}, schema={"itemid": pl.Int64, "value": pl.String})
    pairs, index = VX.distinct_values(frame)
    assert pairs.height == 4
    assert_frame_equal(pairs[index.tolist()], frame)


@pytest.mark.parametrize("policy", [ORIGINAL, CORRECTED], ids=["original", "corrected"])
def test_batches_change_neither_the_events_nor_the_counts(tmp_path: Path, policy: FidelityPolicy):
    # subject 1 has two stays (100, 300) and a lab; one batch per subject must give what one batch gives
    ev = events((300, 101, 220045, "80"), (100, 1, 220045, "70"), (200, 2, 220045, "abc"), (200, 1, 220210, "20"),
                (None, 2, 50931, "105", 0, 10), (100, 3, 223951, "Normal <3 Seconds"), (300, 102, 220739, "4"))
    raw = tmp_path / "raw"
    raw.mkdir()
    ev.filter(pl.col("stay_id").is_not_null()).write_parquet(raw / "chartevents.parquet")
    ev.filter(pl.col("stay_id").is_null()).write_parquet(raw / "labevents.parquet")
    STAYS.write_parquet(tmp_path / "stays.parquet")
    runs = {}
    for rows in (1, 10**9):
        out = tmp_path / f"events_{rows}.parquet"
        counts = V.run_variables(raw, tmp_path / "stays.parquet", out, policy=policy, rows_per_batch=rows)
        runs[rows] = (pl.read_parquet(out), counts)
    (few, few_counts), (many, many_counts) = runs[10**9], runs[1]
    assert (few_counts.pop("batches"), many_counts.pop("batches")) == (1, 2)  # at most one batch per subject
    assert few_counts == many_counts and few_counts["rows_in"] == ev.height
    assert_frame_equal(few, many)
    assert_frame_equal(few, few.sort(["subject_id", "stay_id", "hours", "variable"]))
    assert few.select("subject_id", "stay_id").unique(maintain_order=True).rows() == [(1, 100), (1, 300), (2, 200)]


@pytest.mark.parametrize("with_stays", [False, True])
@pytest.mark.parametrize("offset", [timedelta(0), timedelta(microseconds=500)])
def test_sort_events_equals_a_sort_on_four_columns(offset, with_stays):
    # whole seconds take the packed key, sub-second times the four-column sort: both give the same order; stay 300
    # (subject 1) comes before stay 200 (subject 2)
    times = [T0 + k * H + offset * (k % 2) for k in (3, 1, 2, 1, 0, 1)]
    frame = pl.DataFrame({"subject_id": [1, 1, 1, 1, 1, 2], "stay_id": [300, 100, 100, 100, 300, 200],
                          "charttime": times,
                          "variable": ["pH", "Glucose", "Weight", "Capillary refill rate", "Heart Rate", "pH"],
                          "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, schema_overrides={"variable": VR.VARIABLE})
    stays = pl.DataFrame({"subject_id": [2, 1, 1, 3], "stay_id": [200, 300, 100, 400]}) if with_stays else None
    assert_frame_equal(VX.sort_events(frame, stays), frame.sort(["subject_id", "stay_id", "charttime", "variable"]))


def test_subject_batches_cover_every_subject_once_in_subject_order():
    stays = pl.DataFrame({"subject_id": [5, 1, 5, 2, 3], "stay_id": [50, 10, 40, 20, 30]})
    batches = variable_batches.subject_batches(stays, 3)
    assert batches["subject_id"].to_list() == [1, 2, 3, 5]
    assert batches["batch"].to_list() == [0, 0, 1, 2] and batches["batch"].is_sorted()


@pytest.mark.parametrize("policy", [ORIGINAL, CORRECTED], ids=["original", "corrected"])
def test_the_packed_sort_equals_the_four_column_sort(monkeypatch: pytest.MonkeyPatch, policy: FidelityPolicy):
    # many repeated (stay, time, variable) keys with differing storetimes and values, GCS components to total, a
    # lab in a stay's window: sorting on the packed key must give the events and counts of the sort on four
    # columns, which the stage takes when the key does not pack
    import random

    rng = random.Random(7)
    texts = {220739: ["4 Spontaneously", "To Pain", "1 No Response"], 223901: ["6 Obeys Commands", "1 No Response"],
             223900: ["5 Oriented", "Confused", "1 No Response"], 223951: ["Normal <3 Seconds", "Abnormal >3 Seconds"]}
    rows = []
    for _ in range(400):
        stay = rng.choice([100, 300, 200])
        hours = (100 if stay == 300 else 0) + rng.randrange(6)
        item = rng.choice([220045, 220210, 223835, 220739, 223901, 223900, 223951])
        value = rng.choice(texts[item]) if item in texts else str(rng.choice([0.5, 21, 80, 80.5, 95, 120]))
        rows.append((stay, hours, item, value, rng.choice([0, 0, 5, 10])))
    rows += [(None, 2, 50931, "105", 0, 10), (None, 2, 50931, "110", 5, 10)]
    frame = events(*rows)
    packed, packed_counts = extract_events(frame, STAYS, policy=policy)
    monkeypatch.setattr(VX, "event_packing", lambda *args: None)
    hashed, hashed_counts = extract_events(frame, STAYS, policy=policy)
    assert packed_counts == hashed_counts and packed_counts["duplicates_collapsed"] > 100
    if policy.gcs_total == "derived":
        assert packed_counts["gcs_total_derived"] > 0
    assert_frame_equal(packed, hashed)
