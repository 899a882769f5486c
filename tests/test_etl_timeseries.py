"""Discretiser, imputation, masks and train-only normalisation on hand-built events with exact expected values."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import discretiser, normaliser, timeseries_writer
from medfuse_bench.resources import feature_names

sys.path.insert(0, str(Path(__file__).parent))
from etl_world import make_world  # noqa: E402

F = {name: i for i, name in enumerate(feature_names())}
HR, GLU, TEMP = "Heart Rate", "Glucose", "Temperature"
EYE, CRR = "Glascow coma scale eye opening", "Capillary refill rate"


def ev(rows: list[tuple]) -> pl.DataFrame:
    """Events from (stay_id, hours, variable, value, value_text) tuples."""
    return pl.DataFrame(rows, schema={"stay_id": pl.Int64, "hours": pl.Float64, "variable": pl.String,
                                      "value": pl.Float64, "value_text": pl.String}, orient="row")


def samples(rows: list[tuple]) -> pl.DataFrame:
    """Samples from (stay_id, split, period_length) tuples."""
    return pl.DataFrame(rows, schema={"stay_id": pl.Int64, "split": pl.String, "period_length": pl.Float64},
                        orient="row")


def normal_row() -> np.ndarray:
    """One time step with every channel at its normal value and all masks 0."""
    row = np.zeros(76, dtype=np.float32)
    for name, value in [("Diastolic blood pressure", 59.0), ("Fraction inspired oxygen", 0.21), (GLU, 128.0),
                        (HR, 86.0), ("Height", 170.0), ("Mean blood pressure", 77.0), ("Oxygen saturation", 98.0),
                        ("Respiratory rate", 19.0), ("Systolic blood pressure", 118.0), (TEMP, 36.6),
                        ("Weight", 81.0), ("pH", 7.4)]:
        row[F[name]] = value
    for name in [f"{CRR}->0.0", f"{EYE}->4 Spontaneously", "Glascow coma scale motor response->6 Obeys Commands",
                 "Glascow coma scale total->15", "Glascow coma scale verbal response->5 Oriented"]:
        row[F[name]] = 1.0
    return row


def test_bin_counts_follow_the_original_rule():
    np.testing.assert_array_equal(discretiser.bin_counts(np.array([48.0, 47.5, 3.0, 1.0, 0.2]), 1.0), [48, 48, 3, 1, 1])
    np.testing.assert_array_equal(discretiser.bin_counts(np.array([48.0, 5.0]), 2.0), [24, 3])
    with pytest.raises(MedfuseError, match="timestep"):
        discretiser.bin_counts(np.array([1.0]), 0.0)


def test_worked_example_bins_last_value_imputation_one_hot_and_masks():
    events = ev([
        (1, 0.5, HR, 80.0, None),
        (1, 1.0, HR, 90.0, None),  # t = 1.0 lands in bin 0, and is the last value of bin 0
        (1, 2.5, HR, 100.0, None),
        (1, 1.5, EYE, None, "To Pain"),
        (1, 3.0, CRR, None, "1.0"),  # t = end: kept, last bin
        (1, -1e-7, TEMP, 37.0, None),  # within -eps of 0: kept, bin 0
        (1, -0.5, TEMP, 40.0, None),  # before intime: skipped
        (1, 3.5, HR, 120.0, None),  # after the end: skipped
        (3, 0.2, GLU, 200.0, None),
    ])
    array, index = discretiser.discretize(events, samples([(1, "train", 3.0), (2, "val", 1.0), (3, "train", 2.0)]))

    expected = np.tile(normal_row(), (6, 1))
    # stay 1: 3 bins (rows 0-2)
    expected[0:3, F[HR]] = [90.0, 90.0, 100.0]
    expected[[0, 2], F[f"mask->{HR}"]] = 1.0
    expected[1:3, F[f"{EYE}->4 Spontaneously"]] = 0.0
    expected[1:3, F[f"{EYE}->To Pain"]] = 1.0  # observed in bin 1, carried into bin 2
    expected[1, F[f"mask->{EYE}"]] = 1.0
    expected[2, F[f"{CRR}->0.0"]] = 0.0
    expected[2, F[f"{CRR}->1.0"]] = 1.0
    expected[2, F[f"mask->{CRR}"]] = 1.0
    expected[0:3, F[TEMP]] = 37.0
    expected[0, F[f"mask->{TEMP}"]] = 1.0
    # stay 3 (train, after stay 1): 2 bins (rows 3-4); stay 1's values do not leak into it
    expected[3:5, F[GLU]] = 200.0
    expected[3, F[f"mask->{GLU}"]] = 1.0
    # stay 2 (val): 1 bin (row 5), nothing observed: all normal values, masks 0
    np.testing.assert_array_equal(array, expected)
    assert array.dtype == np.float32
    assert index.to_dicts() == [
        {"stay_id": 1, "split": "train", "offset": 0, "length": 3},
        {"stay_id": 3, "split": "train", "offset": 3, "length": 2},
        {"stay_id": 2, "split": "val", "offset": 5, "length": 1},
    ]


def test_last_row_wins_within_a_bin_by_hour_then_row_order():
    events = ev([(1, 0.9, HR, 70.0, None), (1, 0.1, HR, 60.0, None), (1, 0.5, HR, 65.0, None),
                 (1, 1.5, HR, 71.0, None), (1, 1.5, HR, 72.0, None)])
    array, _ = discretiser.discretize(events, samples([(1, "train", 2.0)]))
    np.testing.assert_array_equal(array[:, F[HR]], [70.0, 72.0])


def test_two_hour_step():
    events = ev([(1, 2.0, HR, 70.0, None), (1, 2.01, HR, 75.0, None), (1, 5.0, HR, 80.0, None)])
    array, index = discretiser.discretize(events, samples([(1, "train", 5.0)]), timestep=2.0)
    assert index["length"].to_list() == [3]
    np.testing.assert_array_equal(array[:, F[HR]], [70.0, 75.0, 80.0])
    np.testing.assert_array_equal(array[:, F[f"mask->{HR}"]], [1.0, 1.0, 1.0])


def test_categorical_value_given_as_a_number_reads_as_its_text():
    # value_text null, value 1.0: the category "1.0"; a text, where present, wins over the number
    events = ev([(1, 0.5, CRR, 1.0, None), (1, 1.5, CRR, 1.0, "0.0"), (1, 0.5, HR, 80.0, None)])
    array, _ = discretiser.discretize(events, samples([(1, "train", 2.0)]))
    np.testing.assert_array_equal(array[:, F[f"{CRR}->1.0"]], [1.0, 0.0])
    np.testing.assert_array_equal(array[:, F[f"{CRR}->0.0"]], [0.0, 1.0])
    with pytest.raises(MedfuseError, match="'7.0' for 'Capillary refill rate'"):
        discretiser.discretize(ev([(1, 0.5, CRR, 7.0, None)]), samples([(1, "train", 2.0)]))


def test_unknown_category_and_unknown_variable_are_named():
    with pytest.raises(MedfuseError, match="'Eyes closed' for 'Glascow coma scale eye opening'"):
        discretiser.discretize(ev([(1, 0.5, EYE, None, "Eyes closed")]), samples([(1, "train", 2.0)]))
    with pytest.raises(MedfuseError, match="'Pulse'"):
        discretiser.discretize(ev([(1, 0.5, "Pulse", 1.0, None)]), samples([(1, "train", 2.0)]))


def test_normalizer_uses_train_bins_only_and_floors_std():
    events = ev([(1, 0.5, HR, 80.0, None), (2, 0.5, HR, 110.0, None), (3, 0.5, HR, 1000.0, None)])
    array, index = discretiser.discretize(events, samples([(1, "train", 2.0), (2, "train", 1.0), (3, "val", 1.0)]))
    assert index["length"].to_list() == [2, 1, 1]
    means, stds = normaliser.fit_normalizer(array[:3])  # the train rows
    # train HR over all bins: 80, 80 (imputed), 110 -> mean 90, sample std sqrt(300)
    assert means[F[HR]] == pytest.approx(90.0)
    assert stds[F[HR]] == pytest.approx(math.sqrt(300.0))
    assert stds[F[GLU]] == pytest.approx(1e-7)  # constant column: floored
    normed = normaliser.normalize(array.copy(), means, stds)
    assert normed[3, F[HR]] == pytest.approx((1000.0 - 90.0) / math.sqrt(300.0), rel=1e-6)
    assert normed[0, F[GLU]] == 0.0
    # one-hots and masks are not normalised
    np.testing.assert_array_equal(normed[:, 59:], array[:, 59:])
    np.testing.assert_array_equal(normed[:, F[f"{CRR}->0.0"]], [1, 1, 1, 1])


def test_write_timeseries_files_match_discretize_and_do_not_depend_on_chunking(tmp_path):
    world = make_world(60, seed=3)
    stays = world["stays"]
    split = np.array(["train", "val", "test"])[np.arange(stays.height) % 3]
    table = stays.select("stay_id", pl.Series("split", split), pl.col("los_hours").alias("period_length"))
    table = table.sample(fraction=1.0, shuffle=True, seed=1)  # samples.parquet order is kept within a split
    normalizer = timeseries_writer.write_timeseries(world["events"], table, tmp_path / "a", 1.0, chunk_rows=50)
    timeseries_writer.write_timeseries(world["events"], table, tmp_path / "b", 1.0, chunk_rows=10**6)

    array, index = discretiser.discretize(world["events"], table)
    written_index = pl.read_parquet(tmp_path / "a" / "timeseries_index.parquet")
    assert written_index["stay_id"].to_list() == index["stay_id"].to_list()
    for s in ("train", "val", "test"):
        assert written_index.filter(pl.col("split") == s)["stay_id"].to_list() == \
            table.filter(pl.col("split") == s)["stay_id"].to_list()
    train_rows = int(index.filter(pl.col("split") == "train")["length"].sum())
    means, stds = normaliser.fit_normalizer(array[:train_rows])
    expected = normaliser.normalize(array.copy(), means, stds)
    start = 0
    for s in ("train", "val", "test"):
        part = np.load(tmp_path / "a" / f"timeseries_{s}.npy")
        assert part.dtype == np.float32 and part.shape[1] == 76
        np.testing.assert_allclose(part, expected[start:start + part.shape[0]], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(part, np.load(tmp_path / "b" / f"timeseries_{s}.npy"))
        offsets = written_index.filter(pl.col("split") == s)
        assert offsets["offset"].to_list() == (np.cumsum([0, *offsets["length"].to_list()])[:-1]).tolist()
        start += part.shape[0]
    saved = json.loads((tmp_path / "a" / "normalizer.json").read_text())
    assert saved == normalizer
    assert saved["features"] == feature_names() and saved["timestep_hours"] == 1.0
    np.testing.assert_allclose(saved["means"], means, rtol=1e-6)
    assert len(saved["normalized_features"]) == 12 and saved["train_steps"] == train_rows
    assert not list(tmp_path.glob("a/.*"))  # no temporary files left


def test_write_timeseries_in_subject_order_equals_stay_order(tmp_path):
    # events.parquet from the variables stage is sorted by subject, then stay; subject order here runs against
    # stay order, so the chunks of the two orders hold different stays
    world = make_world(40, seed=5)
    stays = world["stays"].with_columns(subject_id=pl.lit(20_000_000) - pl.col("subject_id"))
    split = np.array(["train", "val", "test"])[np.arange(stays.height) % 3]
    table = stays.select("subject_id", "stay_id", pl.Series("split", split), pl.col("los_hours").alias("period_length"))
    by_subject = (world["events"].join(stays.select("stay_id", "subject_id"), on="stay_id", maintain_order="left")
                  .sort(["subject_id", "stay_id", "hours"], maintain_order=True))
    timeseries_writer.write_timeseries(by_subject, table, tmp_path / "subject", 1.0, chunk_rows=40)
    timeseries_writer.write_timeseries(world["events"], table.drop("subject_id"), tmp_path / "stay", 1.0, chunk_rows=40)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(np.load(tmp_path / "subject" / f"timeseries_{name}.npy"),
                                      np.load(tmp_path / "stay" / f"timeseries_{name}.npy"))
    indexes = [pl.read_parquet(tmp_path / d / "timeseries_index.parquet") for d in ("subject", "stay")]
    assert indexes[0].equals(indexes[1])


def test_write_timeseries_without_train_samples_fails_and_leaves_nothing(tmp_path):
    with pytest.raises(MedfuseError, match="train split"):
        timeseries_writer.write_timeseries(ev([(1, 0.5, HR, 80.0, None)]), samples([(1, "val", 2.0)]), tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


# --- the normalizer switch: train_split or the original's fixed MIMIC-III state ------------------------------------

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is absent")


@needs_reference
def test_original_state_is_the_original_normalizer_file():
    # the original's state: 76 means and stds in the Discretizer's header order, which is feature_names()
    reference = json.loads((REFERENCE / "original_normalizer_ph.json").read_text())
    continuous = discretiser.channel_layout().continuous_columns
    assert continuous.tolist() == [2, 3, *range(49, 59)]
    for step in (1.0, 0.8):
        means, stds, used = normaliser.original_state(step)
        assert used == step
        state = reference[f"timestep_{step}"]
        assert means[continuous].tolist() == [state["means"][i] for i in continuous]
        assert stds[continuous].tolist() == [state["stds"][i] for i in continuous]


def _two_stays() -> tuple[pl.DataFrame, pl.DataFrame]:
    events = ev([(1, 0.5, HR, 80.0, None), (1, 1.5, GLU, 200.0, None), (1, 0.5, EYE, None, "To Pain"),
                 (2, 0.5, HR, 110.0, None), (2, 0.5, "Oxygen saturation", 97.0, None)])
    return events, samples([(1, "train", 2.0), (2, "test", 1.0)])


def test_original_mimic3_standardises_with_the_original_state(tmp_path):
    events, table = _two_stays()
    record = timeseries_writer.write_timeseries(events, table, tmp_path, 1.0, normalizer="original_mimic3")
    raw, _ = discretiser.discretize(events, table)
    train, test = np.load(tmp_path / "timeseries_train.npy"), np.load(tmp_path / "timeseries_test.npy")
    # (x - mean) / std with the state's numbers for timestep 1.0 (heart rate, glucose, O2 saturation)
    assert train[:, F[HR]] == pytest.approx([(80.0 - 85.53853938464474) / 57.11693013941011] * 2, rel=1e-6)
    assert train[1, F[GLU]] == pytest.approx((200.0 - 140.38699662380586) / 1766.7412133808477, rel=1e-6)
    assert test[0, F["Oxygen saturation"]] == pytest.approx((97.0 - 104.98108350952208) / 5135.238732591619, rel=1e-5)
    # one-hots and masks untouched, as the original's Normalizer.transform
    np.testing.assert_array_equal(np.vstack([train, test])[:, 4:49], raw[:, 4:49])
    np.testing.assert_array_equal(np.vstack([train, test])[:, 59:], raw[:, 59:])
    assert record["normalizer"] == "original_mimic3" and record["state_timestep_hours"] == 1.0
    assert record["means"][F[HR]] == 85.53853938464474 and record["means"][F[f"mask->{HR}"]] is None
    assert json.loads((tmp_path / "normalizer.json").read_text()) == record


def test_the_two_normalizers_differ_only_in_the_continuous_columns(tmp_path):
    events, table = _two_stays()
    fitted = timeseries_writer.write_timeseries(events, table, tmp_path / "fit", 1.0)
    timeseries_writer.write_timeseries(events, table, tmp_path / "m3", 1.0, normalizer="original_mimic3")
    assert fitted["normalizer"] == "train_split" and fitted["state_timestep_hours"] is None
    a, b = (np.load(tmp_path / d / "timeseries_train.npy") for d in ("fit", "m3"))
    continuous = discretiser.channel_layout().continuous_columns
    others = np.setdiff1d(np.arange(76), continuous)
    np.testing.assert_array_equal(a[:, others], b[:, others])
    # train_split centres the train heart rate (80 in both bins: mean 80); the MIMIC-III state does not
    assert a[:, F[HR]].tolist() == [0.0, 0.0] and b[0, F[HR]] < -0.09


def test_a_timestep_without_an_original_state_uses_the_one_hour_state(tmp_path, caplog):
    events, table = _two_stays()
    with caplog.at_level("WARNING"):
        record = timeseries_writer.write_timeseries(events, table, tmp_path, 2.0, normalizer="original_mimic3")
    assert record["timestep_hours"] == 2.0 and record["state_timestep_hours"] == 1.0
    assert "using the 1.0 h state" in caplog.text
    assert record["means"][F[HR]] == normaliser.original_state(1.0)[0][F[HR]]
    with pytest.raises(MedfuseError, match="normalizer must be one of"):
        timeseries_writer.write_timeseries(events, table, tmp_path / "x", 1.0, normalizer="mimic4")


def test_timeseries_command_takes_the_policy(tmp_path):
    import subprocess

    events, table = _two_stays()
    events.write_parquet(tmp_path / "events.parquet")
    table.write_parquet(tmp_path / "samples.parquet")
    for args, want in (([], "train_split"), (["--fidelity", "original"], "original_mimic3"),
                       (["--fidelity", "original", "--switch", "normalizer=train_split"], "train_split")):
        result = subprocess.run([sys.executable, "-m", "medfuse_bench.cli", "timeseries", "--events",
                                 str(tmp_path / "events.parquet"), "--samples", str(tmp_path / "samples.parquet"),
                                 "--out-dir", str(tmp_path / "out"), *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert json.loads((tmp_path / "out" / "normalizer.json").read_text())["normalizer"] == want


# the port's std of a constant column is the square root of a rounding error, negative or not, as the original's
@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
def test_the_discretiser_and_normaliser_equal_the_original_port():
    from original_discretiser import Discretizer, Normalizer

    rows = [(1, 0.5, HR, 80.0, None), (1, 1.0, HR, 90.0, None), (1, 1.5, EYE, None, "3 To speech"),
            (1, 3.2, GLU, 120.0, None), (1, 3.4, GLU, 140.0, None), (1, 4.9, CRR, None, "1.0"),
            (2, 0.2, TEMP, 37.5, None), (2, 2.0, HR, 70.0, None), (3, 0.7, HR, 110.0, None),
            (3, 1.2, "Weight", 81.5, None)]
    events = ev(rows)
    table = samples([(1, "train", 5.0), (2, "train", 2.5), (3, "val", 2.0)])
    ours, index = discretiser.discretize(events, table)
    header = ["Hours", *[v for v in dict.fromkeys(r[2] for r in rows)]]
    port, fit = Discretizer(), Normalizer([i for i, name in enumerate(feature_names()) if "->" not in name])
    theirs = {}
    for stay_id, _, period in table.iter_rows():
        X = np.array([[str(h)] + ["" if v != var else (text if text is not None else str(value))
                                 for v in header[1:]] for s, h, var, value, text in rows if s == stay_id])
        theirs[stay_id] = port.transform(X, header, end=period)
    for stay_id, split, offset, length in index.iter_rows():
        np.testing.assert_allclose(ours[offset:offset + length], theirs[stay_id], rtol=1e-6, err_msg=str(stay_id))
        if split == "train":
            fit.feed(theirs[stay_id])
    fit.fit()
    train = index.filter(pl.col("split") == "train")
    means, stds = normaliser.fit_normalizer(ours[: int(train["length"].sum())])
    # the columns that vary in the train samples (the port's std of a constant column is NaN or rounding noise)
    columns = [c for c in discretiser.channel_layout().continuous_columns if np.isfinite(fit._stds[c])
               and fit._stds[c] > 1e-3]
    assert len(columns) >= 3
    np.testing.assert_allclose(means[columns], fit._means[columns], rtol=1e-6)
    np.testing.assert_allclose(stds[columns], fit._stds[columns], rtol=1e-5)
    normed = normaliser.normalize(ours.copy(), means, stds)
    for stay_id, _, offset, length in index.iter_rows():
        np.testing.assert_allclose(normed[offset:offset + length][:, columns],
                                   fit.transform(theirs[stay_id])[:, columns], rtol=1e-4, atol=1e-5)
