"""X-ray linking windows and CXR_UNI on hand-built metadata with exact expected rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import cxr
from medfuse_bench.resources import CHEXPERT_LABELS

INTIME = datetime(2150, 3, 1, 8, 0, 0)


def meta(rows: list[tuple]) -> pl.DataFrame:
    """Metadata from (dicom_id, subject_id, view, datetime) tuples, in the raw StudyDate/StudyTime form."""
    frame = pl.DataFrame(rows, schema={"dicom_id": pl.String, "subject_id": pl.Int64, "ViewPosition": pl.String,
                                       "when": pl.Datetime("us")}, orient="row")
    return frame.with_columns(
        study_id=pl.int_range(pl.len()) + 50000000,
        StudyDate=pl.col("when").dt.strftime("%Y%m%d").cast(pl.Int64),
        StudyTime=pl.col("when").dt.strftime("%H%M%S").cast(pl.Float64) + 0.875,
    ).drop("when")


def stays(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"subject_id": pl.Int64, "stay_id": pl.Int64, "intime": pl.Datetime("us"),
                                      "outtime": pl.Datetime("us")}, orient="row")


def test_study_datetime_truncates_fraction_and_zero_pads():
    frame = pl.DataFrame({"StudyDate": [21500301, 21500301, 21501231], "StudyTime": [93512.5, 5.999, 235959.0]})
    got = cxr.with_study_datetime(frame)["study_datetime"].to_list()
    assert got == [datetime(2150, 3, 1, 9, 35, 12), datetime(2150, 3, 1, 0, 0, 5), datetime(2150, 12, 31, 23, 59, 59)]


@pytest.mark.parametrize(
    ("date", "time"),
    [(21501301, 93512.5), (21500230, 93512.5), (2150301, 93512.5), (21500301, 246000.0), (21500301, 96000.0),
     (21500301, 95960.0), (None, 93512.5), (21500301, None)],
    ids=["month-13", "february-30", "seven-digits", "hour-24", "minute-60", "second-60", "no-date", "no-time"],
)
def test_impossible_study_date_or_time_is_an_error_naming_the_image_and_values(date, time):
    frame = meta([("ok", 1, "AP", INTIME), ("bad", 1, "AP", INTIME)]).with_columns(
        StudyDate=pl.when(pl.col("dicom_id") == "bad").then(pl.lit(date, pl.Int64)).otherwise("StudyDate"),
        StudyTime=pl.when(pl.col("dicom_id") == "bad").then(pl.lit(time, pl.Float64)).otherwise("StudyTime"),
    )
    message = f"cxr_metadata: 1 row(s) .* e.g. dicom_id 'bad': StudyDate {date}, StudyTime {time}"
    with pytest.raises(MedfuseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cxr.link_cxr(stays([(1, 10, INTIME, INTIME + 48 * H)]), frame)


def test_cxr_uni_counts_the_images_it_leaves_out():
    metadata = meta([("a", 1, "AP", INTIME), ("b", 1, "AP", INTIME), ("c", 2, "PA", INTIME)])
    chexpert = metadata.filter(pl.col("dicom_id") != "c").select("study_id")
    split = pl.DataFrame({"dicom_id": ["a"], "split": ["train"]})
    records = cxr.cxr_uni_exclusions(metadata, chexpert, split)
    found = {r["reason"]: (r["file"], r["rows"], r["example"]) for r in records}
    assert found == {
        "study without CheXpert labels (mimic-cxr-2.0.0-chexpert)": ("cxr_metadata", 1, "dicom_id 'c'"),
        "labelled image without a row in mimic-cxr-2.0.0-split": ("cxr_split", 1, "dicom_id 'b'"),
    }


H = timedelta(hours=1)
S = timedelta(seconds=1)
IMAGES = meta([
    ("a_at_intime", 1, "AP", INTIME),
    ("b_at_48h", 1, "AP", INTIME + 48 * H),
    ("c_48h_plus_1s", 1, "AP", INTIME + 48 * H + S),
    ("d_before_intime", 1, "AP", INTIME - S),
    ("e_lateral", 1, "LATERAL", INTIME + 60 * H),
    ("f_pa", 1, "PA", INTIME + 47 * H),
    ("g_after_outtime", 1, "AP", INTIME + 96 * H + S),
    ("z_other_patient", 2, "AP", INTIME + 10 * H),
])
STAY = stays([(1, 100, INTIME, INTIME + 96 * H)])


@pytest.mark.parametrize(
    ("window", "views", "expected"),
    [
        (48.0, ("AP",), "b_at_48h"),  # 48 h inclusive; 48 h + 1 s excluded
        (None, ("AP",), "c_48h_plus_1s"),  # whole stay; after outtime excluded
        (47.5, ("AP",), "a_at_intime"),  # intime inclusive; before intime excluded
        (47.5, ("AP", "PA"), "f_pa"),
        (None, None, "e_lateral"),  # no view filter: the lateral is the last in the stay
    ],
)
def test_link_cxr_windows_and_views(window, views, expected):
    got = cxr.link_cxr(STAY, IMAGES, window, views)
    assert got["stay_id"].to_list() == [100]
    assert got["dicom_id"].to_list() == [expected]


def test_link_cxr_no_image_in_window_gives_no_row():
    early = stays([(1, 100, INTIME + 200 * H, INTIME + 300 * H), (3, 300, INTIME, INTIME + 96 * H)])
    assert cxr.link_cxr(early, IMAGES, 48.0).height == 0


def test_link_cxr_ties_go_to_the_largest_dicom_id_whatever_the_input_order():
    when = INTIME + 5 * H
    rows = [("x1", 1, "AP", when), ("x3", 1, "AP", when), ("x2", 1, "AP", when), ("x0", 1, "AP", when - S)]
    for order in (rows, rows[::-1]):
        got = cxr.link_cxr(STAY, meta(order), 48.0)
        expected = pl.DataFrame(
            {"stay_id": [100], "dicom_id": ["x3"], "study_datetime": [when]},
            schema={"stay_id": pl.Int64, "dicom_id": pl.String, "study_datetime": pl.Datetime("us")},
        )
        assert_frame_equal(got, expected)


def test_link_cxr_one_pick_per_stay_of_the_same_patient():
    two = stays([(1, 100, INTIME, INTIME + 24 * H), (1, 101, INTIME + 40 * H, INTIME + 96 * H)])
    got = cxr.link_cxr(two, IMAGES, None).sort("stay_id")
    assert got["dicom_id"].to_list() == ["a_at_intime", "c_48h_plus_1s"]


def _chexpert(study_ids: list[int], values: list[list[float | None]]) -> pl.DataFrame:
    data = {"subject_id": [0] * len(study_ids), "study_id": study_ids}
    for j, name in enumerate(CHEXPERT_LABELS):
        data[name] = [row[j] if j < len(row) else None for row in values]
    return pl.DataFrame(data, schema_overrides={name: pl.Float64 for name in CHEXPERT_LABELS})


def test_cxr_uni_labels_splits_paths_and_moves_ehr_val_test_patients_out_of_train():
    metadata = pl.DataFrame({
        "dicom_id": ["i1", "i2", "i3", "i4", "i5", "i6"],
        "subject_id": [10000032, 10000032, 11000011, 12000012, 13000013, 14000014],
        "study_id": [501, 501, 502, 503, 504, 505],
        "ViewPosition": ["AP", "LATERAL", "PA", "AP", "AP", "AP"],
        "StudyDate": [21500301] * 6,
        "StudyTime": [93512.5, 93512.5, 120000.0, 10.0, 0.0, 0.0],
    })
    chexpert = _chexpert([501, 502, 503, 504], [[1.0, 0.0, -1.0, None], [0.0], [1.0], [-1.0, 1.0]])
    official = pl.DataFrame({
        "dicom_id": ["i1", "i2", "i3", "i4", "i5", "i6"], "study_id": [501, 501, 502, 503, 504, 505],
        "subject_id": [10000032, 10000032, 11000011, 12000012, 13000013, 14000014],
        "split": ["train", "train", "test", "validate", "train", "train"],
    })
    # Integer ids on both sides (Int32 here), as ids must be compared: the original compared int to str.
    patient_splits = pl.DataFrame({
        "subject_id": [10000032, 11000011, 12000012, 13000013],
        "split": ["test", "val", "train", "val"],
        "ehr": [True, True, True, False],
    }, schema_overrides={"subject_id": pl.Int32})
    got = cxr.build_cxr_uni(metadata, chexpert, official, patient_splits)
    assert got.columns == ["dicom_id", "subject_id", "study_id", "study_datetime", "view_position", "split", "path",
                           *CHEXPERT_LABELS]
    assert got["dicom_id"].to_list() == ["i1", "i2", "i3", "i4", "i5"]  # i6 has no CheXpert row
    # i1, i2: CXR train, EHR test -> test; i3: CXR test stays test (EHR val does not pull it out of test);
    # i4: validate -> val (EHR train does not move it); i5: not an EHR patient -> keeps train.
    assert got["split"].to_list() == ["test", "test", "test", "val", "train"]
    assert got["view_position"].to_list() == ["AP", "LATERAL", "PA", "AP", "AP"]  # all views kept
    assert got["path"][0] == "files/p10/p10000032/s501/i1.jpg"
    assert got["study_datetime"][3] == datetime(2150, 3, 1, 0, 0, 10)
    labels = got.select(CHEXPERT_LABELS[:4])
    assert labels.rows() == [(1, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0)]
    assert all(got.schema[name] == pl.Int8 for name in CHEXPERT_LABELS)


def test_cxr_uni_without_ehr_column_treats_every_listed_subject_as_ehr():
    metadata = pl.DataFrame({"dicom_id": ["i1"], "subject_id": [7], "study_id": [1], "ViewPosition": ["AP"],
                             "StudyDate": [21500101], "StudyTime": [0.0]})
    official = pl.DataFrame({"dicom_id": ["i1"], "split": ["train"]})
    got = cxr.build_cxr_uni(metadata, _chexpert([1], [[1.0]]), official,
                            pl.DataFrame({"subject_id": ["7"], "split": ["val"]}))  # ids as text: cast to int
    assert got["split"].to_list() == ["val"]


def test_cxr_uni_rejects_bad_inputs():
    metadata = pl.DataFrame({"dicom_id": ["i1"], "subject_id": [7], "study_id": [1], "ViewPosition": ["AP"],
                             "StudyDate": [21500101], "StudyTime": [0.0]})
    with pytest.raises(MedfuseError, match="cxr_split column 'split' holds 'holdout'"):
        cxr.build_cxr_uni(metadata, _chexpert([1], [[1.0]]), pl.DataFrame({"dicom_id": ["i1"], "split": ["holdout"]}),
                          pl.DataFrame({"subject_id": [7], "split": ["val"]}))
    with pytest.raises(MedfuseError, match="cxr_metadata lacks column"):
        cxr.build_cxr_uni(metadata.drop("StudyTime"), _chexpert([1], [[1.0]]),
                          pl.DataFrame({"dicom_id": ["i1"], "split": ["train"]}),
                          pl.DataFrame({"subject_id": [7], "split": ["val"]}))


def _uni_inputs() -> tuple[pl.DataFrame, ...]:
    """Five labelled images: (official split, EHR split of the patient) = (train, test), (test, val),
    (validate, train), (train, not EHR), (test, not EHR)."""
    ids = ["i1", "i2", "i3", "i4", "i5"]
    subjects = [10, 11, 12, 13, 14]
    metadata = pl.DataFrame({"dicom_id": ids, "subject_id": subjects, "study_id": [1, 2, 3, 4, 5],
                             "ViewPosition": ["AP", "PA", "AP", "LATERAL", "AP"], "StudyDate": [21500101] * 5,
                             "StudyTime": [0.0] * 5})
    official = pl.DataFrame({"dicom_id": ids, "split": ["train", "test", "validate", "train", "test"]})
    patient_splits = pl.DataFrame({"subject_id": [10, 11, 12, 13, 14], "split": ["test", "val", "train", "val", "val"],
                                   "ehr": [True, True, True, False, False]})
    return metadata, _chexpert([1, 2, 3, 4, 5], [[1.0]] * 5), official, patient_splits


@pytest.mark.parametrize(("value", "splits"), [
    # official: EHR val/test patients leave train only; the rest keep MIMIC-CXR's split
    ("official", ["test", "test", "val", "train", "test"]),
    # all_train (the original's create_split.py): train, then the EHR val/test patients' split; nothing dropped
    ("all_train", ["test", "val", "train", "train", "train"]),
])
def test_cxr_uni_split_switch(value, splits):
    got = cxr.build_cxr_uni(*_uni_inputs(), cxr_uni_split=value)
    assert got["dicom_id"].to_list() == ["i1", "i2", "i3", "i4", "i5"]
    assert got["split"].to_list() == splits
    with pytest.raises(MedfuseError, match="cxr_uni_split must be one of"):
        cxr.build_cxr_uni(*_uni_inputs(), cxr_uni_split="random")


def test_cxr_uni_command_takes_the_policy(tmp_path):
    import subprocess
    import sys

    metadata, chexpert, official, patient_splits = _uni_inputs()
    for name, frame in (("cxr_metadata", metadata), ("cxr_chexpert", chexpert), ("cxr_split", official)):
        frame.write_parquet(tmp_path / f"{name}.parquet")
    patient_splits.write_parquet(tmp_path / "splits.parquet")
    for args, want in (([], "test"), (["--fidelity", "original"], "train"),
                       (["--switch", "cxr_uni_split=all_train"], "train")):
        out = tmp_path / "cxr_uni.parquet"
        result = subprocess.run([sys.executable, "-m", "medfuse_bench.cli", "cxr-uni", "--raw-dir", str(tmp_path),
                                 "--splits", str(tmp_path / "splits.parquet"), "--out", str(out), *args],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert pl.read_parquet(out)["split"][4] == want  # i5: official test, no EHR patient
